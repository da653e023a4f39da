//! The `/hydra/sync/1` codec: each request and response is one postcard
//! message on its own substream, read to its end under a size bound, so a
//! peer can neither make a node buffer more than the bound nor crash it
//! with bytes that do not decode.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::{MAX_REQUEST, MAX_RESPONSE, SyncRequest, SyncResponse};

#[derive(Debug, Clone, Copy, Default)]
pub struct Codec;

/// Decodes a request as received from a peer.
pub fn decode_request(bytes: &[u8]) -> Result<SyncRequest, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// Decodes a response as received from a peer.
pub fn decode_response(bytes: &[u8]) -> Result<SyncResponse, postcard::Error> {
    postcard::from_bytes(bytes)
}

async fn read<T, M>(io: &mut T, max: u64, what: &str) -> io::Result<M>
where
    T: AsyncRead + Unpin + Send,
    M: DeserializeOwned,
{
    let mut bytes = Vec::new();
    io.take(max + 1).read_to_end(&mut bytes).await?;
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

impl request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        read(io, MAX_REQUEST, "a request").await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        read(io, MAX_RESPONSE, "a response").await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: SyncRequest,
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
        response: SyncResponse,
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
    use crate::wire::{RequestV1, ResponseV1};

    #[test]
    fn messages_round_trip() {
        let req = SyncRequest::V1(RequestV1::Export {
            streams: vec![("orders-1".into(), 7)],
        });
        let bytes = postcard::to_allocvec(&req).unwrap();
        assert_eq!(decode_request(&bytes).unwrap(), req);
        let res = SyncResponse::V1(ResponseV1::Heads {
            heads: vec![("orders-1".into(), 8)],
            next: 42,
        });
        let bytes = postcard::to_allocvec(&res).unwrap();
        assert_eq!(decode_response(&bytes).unwrap(), res);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_request(&bytes);
            let _ = decode_response(&bytes);
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
