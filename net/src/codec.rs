//! The codec of both protocols: each request and response is one postcard
//! message on its own substream, read to its end under a size bound, so a
//! peer can neither make a node buffer more than the bound nor crash it
//! with bytes that do not decode.

use std::io;
use std::marker::PhantomData;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::{
    BlocksRequest, BlocksResponse, MAX_REQUEST, MAX_RESPONSE, SyncRequest, SyncResponse,
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

async fn read<T, M>(io: &mut T, max: u64, what: &str) -> io::Result<M>
where
    T: AsyncRead + Unpin + Send,
    M: DeserializeOwned,
{
    // Read in chunks rather than with `read_to_end`, which zeroes every
    // stretch of the buffer it grows into: answers run to 16 MiB, and a
    // catch-up reads one after another.
    let mut io = io.take(max + 1);
    let mut bytes = Vec::new();
    let mut chunk = vec![0; 64 << 10];
    loop {
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what} is larger than {max} bytes"),
        ));
    }
    postcard::from_bytes(&bytes)
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
}
