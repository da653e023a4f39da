//! The codec of both protocols: each request and response is one postcard
//! message on its own substream, read to its end under a size bound, so a
//! peer can neither make a node buffer more than the bound nor crash it
//! with bytes that do not decode.

use std::io;
use std::marker::PhantomData;
use std::sync::Mutex;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::fetch::IN_FLIGHT;
use crate::wire::{
    BlocksRequest, BlocksResponse, MAX_BLOCKS_BYTES, MAX_REQUEST, MAX_RESPONSE, SyncRequest,
    SyncResponse,
};

/// Reads and writes `Req` and `Resp` as bounded postcard messages.
pub struct Codec<Req, Resp>(PhantomData<fn() -> (Req, Resp)>);

impl<Req, Resp> Clone for Codec<Req, Resp> {
    fn clone(&self) -> Self {
        Codec(PhantomData)
    }
}

impl<Req, Resp> Default for Codec<Req, Resp> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

/// Decodes a `/hydra/sync/1` request as received from a peer.
pub fn decode_request(bytes: &[u8]) -> Result<SyncRequest, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// Decodes a `/hydra/sync/1` response as received from a peer.
pub fn decode_response(bytes: &[u8]) -> Result<SyncResponse, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// Decodes a `/hydra/blocks/1` request as received from a peer.
pub fn decode_blocks_request(bytes: &[u8]) -> Result<BlocksRequest, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// Decodes a `/hydra/blocks/1` response as received from a peer.
pub fn decode_blocks_response(bytes: &[u8]) -> Result<BlocksResponse, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// Receive buffers kept between messages: a catch-up reads answers of up
/// to [`MAX_BLOCKS_BYTES`] one after another, [`IN_FLIGHT`] at a time, and
/// a buffer grown afresh for each (doubling from nothing, every page new
/// memory to fault in and every doubling a copy) was most of the copying
/// and page faults of fetching a large object. An idle node keeps at most
/// [`KEPT`] of them, each no larger than [`KEPT_BYTES`].
static BUFFERS: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
const KEPT: usize = IN_FLIGHT;
const KEPT_BYTES: usize = MAX_BLOCKS_BYTES + (1 << 20);
/// The first read's size, and the least a buffer grows by.
const CHUNK: usize = 64 << 10;

/// A buffer from [`BUFFERS`], given back when dropped. Its bytes are all
/// initialised (zeroed once when it grew), so reads go straight into it.
struct Buffer(Vec<u8>);

impl Buffer {
    fn take() -> Buffer {
        Buffer(lock_buffers().pop().unwrap_or_default())
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        let mut kept = lock_buffers();
        if kept.len() < KEPT && buf.len() <= KEPT_BYTES {
            kept.push(buf);
        }
    }
}

fn lock_buffers() -> std::sync::MutexGuard<'static, Vec<Vec<u8>>> {
    // A buffer list is valid whatever a panic interrupted.
    BUFFERS.lock().unwrap_or_else(|e| e.into_inner())
}

async fn read<T, M>(io: &mut T, max: u64, what: &str) -> io::Result<M>
where
    T: AsyncRead + Unpin + Send,
    M: DeserializeOwned,
{
    read_into(&mut Buffer::take().0, io, max, what).await
}

/// Reads a message of at most `max` bytes into `buf` (whose bytes past
/// what this message fills are left as they were) and decodes it.
async fn read_into<T, M>(buf: &mut Vec<u8>, io: &mut T, max: u64, what: &str) -> io::Result<M>
where
    T: AsyncRead + Unpin + Send,
    M: DeserializeOwned,
{
    // Read to the end, one byte past the bound at most: a message that
    // reaches it is refused.
    let limit = usize::try_from(max).unwrap_or(usize::MAX - 1) + 1;
    let mut io = io.take(limit as u64);
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            if filled == limit {
                break;
            }
            buf.resize((filled * 2).max(CHUNK).min(limit), 0);
        }
        let n = io.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    if filled as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what} is larger than {max} bytes"),
        ));
    }
    postcard::from_bytes(&buf[..filled])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}")))
}

async fn write<T, M>(io: &mut T, message: &M) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
    M: Serialize,
{
    let bytes = postcard::to_allocvec(message)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    io.write_all(&bytes).await?;
    io.close().await
}

impl<Req, Resp> request_response::Codec for Codec<Req, Resp>
where
    Req: Serialize + DeserializeOwned + Send + Sync + 'static,
    Resp: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        read(io, MAX_REQUEST, "a request").await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        read(io, MAX_RESPONSE, "a response").await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Req,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write(io, &request).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Resp,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write(io, &response).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Block, BlocksRequestV1, BlocksResponseV1, RequestV1, ResponseV1};

    #[test]
    fn messages_round_trip() {
        let req = SyncRequest::V1(RequestV1::Storage {
            stream: "orders-1".into(),
            after: Some(3),
        });
        let bytes = postcard::to_allocvec(&req).unwrap();
        assert_eq!(decode_request(&bytes).unwrap(), req);
        let res = SyncResponse::V1(ResponseV1::Heads {
            heads: vec![crate::wire::StreamHead {
                stream: "orders-1".into(),
                length: 8,
                writer: [7; 32],
            }],
            next: 42,
            position: 40,
            storages: vec![crate::wire::StreamStorage {
                root: vec![1, 2].into(),
                edges: vec![vec![3].into()],
                tree: vec![vec![4, 5].into()],
            }],
        });
        let bytes = postcard::to_allocvec(&res).unwrap();
        assert_eq!(decode_response(&bytes).unwrap(), res);
        for req in [
            BlocksRequest::V1(BlocksRequestV1::Want {
                bucket: "b".into(),
                refs: vec![hydra_block::Ref::raw(b"x")],
            }),
            BlocksRequest::V1(BlocksRequestV1::StreamBlocks {
                stream: "orders-1".into(),
                refs: vec![hydra_block::Ref::raw(b"x")],
            }),
        ] {
            let bytes = postcard::to_allocvec(&req).unwrap();
            assert_eq!(decode_blocks_request(&bytes).unwrap(), req);
        }
        let res = BlocksResponse::V1(BlocksResponseV1::Blocks(vec![
            Block::Have(b"x".to_vec().into()),
            Block::DontHave,
            Block::Later,
        ]));
        let bytes = postcard::to_allocvec(&res).unwrap();
        assert_eq!(decode_blocks_response(&bytes).unwrap(), res);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_request(&bytes);
            let _ = decode_response(&bytes);
            let _ = decode_blocks_request(&bytes);
            let _ = decode_blocks_response(&bytes);
        }
    }

    #[test]
    fn oversized_messages_are_refused_unread() {
        let big = vec![0u8; (MAX_REQUEST + 10) as usize];
        let err = futures::executor::block_on(read::<_, SyncRequest>(
            &mut futures::io::Cursor::new(big),
            MAX_REQUEST,
            "a request",
        ))
        .unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    }

    /// One buffer, as the kept ones are used: a large answer grows it, a
    /// smaller message after it decodes from its own bytes only, and the
    /// bound holds however large the buffer already is.
    #[test]
    fn a_kept_buffer_reads_each_message_alone_and_within_its_bound() {
        let read_blocks = |buf: &mut Vec<u8>, bytes: Vec<u8>, max: u64| {
            futures::executor::block_on(read_into::<_, BlocksResponse>(
                buf,
                &mut futures::io::Cursor::new(bytes),
                max,
                "a response",
            ))
        };
        let blocks = |sizes: &[usize]| {
            BlocksResponse::V1(BlocksResponseV1::Blocks(
                sizes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| Block::Have(vec![i as u8 + 1; *n].into()))
                    .collect(),
            ))
        };
        let mut buf = Vec::new();
        let large = blocks(&[1 << 20, 700_000, 1 << 20, 5]);
        let bytes = postcard::to_allocvec(&large).unwrap();
        assert_eq!(
            read_blocks(&mut buf, bytes.clone(), MAX_RESPONSE).unwrap(),
            large
        );
        assert!(buf.len() >= bytes.len());
        let small = blocks(&[3]);
        let bytes = postcard::to_allocvec(&small).unwrap();
        assert_eq!(read_blocks(&mut buf, bytes, MAX_RESPONSE).unwrap(), small);
        // Exactly at the bound is read; one byte past it is not, with a
        // buffer already far larger than the bound.
        let at = postcard::to_allocvec(&blocks(&[100])).unwrap();
        let max = at.len() as u64;
        assert_eq!(read_blocks(&mut buf, at, max).unwrap(), blocks(&[100]));
        let past = postcard::to_allocvec(&blocks(&[101])).unwrap();
        let err = read_blocks(&mut buf, past, max).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    }
}
