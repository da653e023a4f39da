//! Plain-HTTP connections in two lanes, so that subscribers never slow
//! appends. With thousands of subscribers every append becomes a socket
//! write per subscriber of its stream, and those writes, on the threads
//! that also parse and answer appends, used to take most of the CPU at the
//! moment an append needed it (append p99 rose tenfold with 10,000 SSE
//! subscribers on two cores).
//!
//! A connection whose first request starts `GET /subscribe/` is served on
//! the *subscriber runtime*, whose threads run at a lower CPU priority
//! (nice [`NICE`]); every other connection on the daemon's runtime. The
//! kernel then runs appends first and subscribers with the CPU left: a
//! subscriber that falls behind the live feed reads the rest from the log
//! when it gets its turn, so none loses an event, and appends keep their
//! latency whatever the number of subscribers.
//!
//! The lane is chosen by peeking at the connection's first bytes, without
//! reading them. TLS connections (their first bytes are a handshake) and
//! HTTP/2 (its preface names no path) are served by the daemon's runtime
//! (see `mod.rs`), as are gRPC and RESP3 subscriptions.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::{Handle, Runtime};

/// How much lower subscribers' threads run than the daemon's (the nice
/// value added; 10 gives them about a tenth of the CPU appends want).
pub const NICE: i32 = 10;

/// What a subscription's first request starts with.
const SUBSCRIBE: &[u8] = b"GET /subscribe/";

/// The runtime subscribers' connections are served on: as many threads as
/// the daemon's, each at [`NICE`].
pub fn subscriber_runtime() -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("hydra-subscribers")
        .on_thread_start(|| {
            let me = rustix::thread::gettid();
            if let Err(e) = rustix::process::setpriority_process(Some(me), NICE) {
                tracing::warn!("subscriber threads run at the daemon's priority: {e}");
            }
        })
        .enable_all()
        .build()
}

/// Whether the connection's first request is a subscription: its first
/// bytes, peeked (they stay for the server to read). A client that sends
/// less than the prefix within a moment is served in the daemon's lane.
async fn subscribes(stream: &TcpStream) -> bool {
    let mut first = [0u8; SUBSCRIBE.len()];
    for _ in 0..20 {
        let n = match stream.peek(&mut first).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        if n == first.len() || !SUBSCRIBE.starts_with(&first[..n]) {
            return first[..n] == *SUBSCRIBE;
        }
        // Peeking again returns at once with what is there: wait for more.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

/// Serves `router` on `listener` until `shutdown`, each connection in its
/// lane; then waits for the connections in flight to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    subscribers: Handle,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // Routes become services once here, not once per connection.
    let router = router.with_state(());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of files or memory for a moment: as axum does,
                    // wait, then accept again.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (router, watcher) = (router.clone(), graceful.watcher());
        let subscribers = subscribers.clone();
        tokio::spawn(async move {
            let connection = |stream: TcpStream| {
                let service = TowerToHyperService::new(router);
                let conn = Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                watcher.watch(conn)
            };
            if !subscribes(&stream).await {
                let _ = connection(stream).await;
                return;
            }
            // A socket is registered with the runtime that polls it: it
            // moves as a plain one.
            let Ok(stream) = stream.into_std() else {
                return;
            };
            subscribers.spawn(async move {
                if let Ok(stream) = TcpStream::from_std(stream) {
                    let _ = connection(stream).await;
                }
            });
        });
    }
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// A connection's server side, after the client sent `parts` (a pause
    /// between them).
    async fn lane_of(parts: &[&[u8]]) -> bool {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let parts: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
        tokio::spawn(async move {
            for p in parts {
                client.write_all(&p).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        });
        let lane = subscribes(&server).await;
        // Peeked, not read: the server still gets every byte.
        let mut first = [0u8; 3];
        server.peek(&mut first).await.unwrap();
        lane
    }

    #[tokio::test]
    async fn subscriptions_are_told_from_their_first_bytes() {
        assert!(lane_of(&[b"GET /subscribe/streams/s HTTP/1.1\r\n"]).await);
        assert!(lane_of(&[b"GET /sub", b"scribe/all HTTP/1.1\r\n"]).await);
        assert!(!lane_of(&[b"POST /streams/s HTTP/1.1\r\n"]).await);
        assert!(!lane_of(&[b"GET /streams/s HTTP/1.1\r\n"]).await);
        assert!(!lane_of(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]).await);
        // Too short, then nothing more: the daemon's lane.
        assert!(!lane_of(&[b"GET /subscr"]).await);
    }

    #[test]
    fn subscriber_threads_run_at_a_lower_priority() {
        let runtime = subscriber_runtime().unwrap();
        let nice = runtime.block_on(async {
            tokio::spawn(async {
                rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
            })
            .await
            .unwrap()
        });
        let here = rustix::process::getpriority_process(None).unwrap();
        assert_eq!(nice, (here + NICE).min(19));
    }
}
