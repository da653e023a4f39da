//! Connections in two lanes, so that subscribers never slow appends. With
//! thousands of subscribers every append becomes a socket write per
//! subscriber of its stream, and those writes, on the threads that also
//! parse and answer appends, used to take most of the CPU at the moment
//! an append needed it (append p99 rose tenfold with 10,000 SSE
//! subscribers on two cores).
//!
//! Every connection, of every API (HTTP/1.1, HTTP/2, TLS, gRPC, RESP3),
//! starts on the daemon's runtime. The first request on it that subscribes
//! (SSE, gRPC `SubscribeTo*`, `ESUB`/`EPSUB`) throws the connection's
//! [`Lane`] switch, found in its request's extensions, and the connection
//! moves to the *subscriber runtime*, whose threads run at a lower CPU
//! priority (nice [`NICE`]): the connection's task, and with HTTP/2 every
//! task it runs for its requests, including the subscription's own. The
//! kernel then runs appends first and subscribers with the CPU left: a
//! subscriber that falls behind the live feed reads the rest from the log
//! when it gets its turn, so none loses an event, and appends keep their
//! latency whatever the number of subscribers.
//!
//! ```text
//!  accept ──> daemon runtime ──(a request subscribes)──> subscriber runtime (nice 10)
//!             parse, append, read                        deliveries, and whatever else
//!                                                        that connection asks from then on
//! ```
//!
//! A task moves between polls: it is a boxed future, polled here until
//! the switch is thrown, then spawned on the other runtime. Its sockets
//! and timers stay registered with the runtime that made them, which wakes
//! the task wherever it runs. A connection never moves back: a client that
//! subscribes and appends on one connection has its appends served at the
//! subscribers' priority, so it should open subscriptions on a connection
//! of their own (as Redis clients do for pub/sub).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::metrics::gauge::Gauge;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::watch;
use tower_service::Service;

/// How much lower subscribers' threads run than the daemon's (the nice
/// value added; 10 gives them about a tenth of the CPU appends want).
pub const NICE: i32 = 10;

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

/// The two lanes: the daemon's runtime (the one connections are accepted
/// on) and the subscribers'.
#[derive(Clone)]
pub struct Lanes {
    subscribers: Handle,
    /// Connections in the subscribers' lane now.
    moved: Gauge,
}

impl Lanes {
    pub fn new(subscribers: Handle, moved: Gauge) -> Lanes {
        Lanes { subscribers, moved }
    }

    /// A new connection's switch, in the daemon's lane until thrown.
    pub fn connection(&self) -> Lane {
        Lane {
            lanes: self.clone(),
            subscribed: Arc::new(watch::Sender::new(false)),
        }
    }
}

/// One connection's lane switch. Handlers that subscribe throw it; the
/// connection's tasks watch it.
#[derive(Clone)]
pub struct Lane {
    lanes: Lanes,
    subscribed: Arc<watch::Sender<bool>>,
}

impl Lane {
    /// Moves this connection to the subscribers' lane (at its tasks' next
    /// turn; a second call does nothing).
    pub fn subscribe(&self) {
        self.subscribed.send_replace(true);
    }

    /// Moves the connection a request came on to the subscribers' lane:
    /// its switch is in the request's extensions when the lanes' loop
    /// serves it.
    pub fn subscribe_from(extensions: &axum::http::Extensions) {
        if let Some(lane) = extensions.get::<Lane>() {
            lane.subscribe();
        }
    }

    fn subscribed(&self) -> bool {
        *self.subscribed.borrow()
    }

    /// Runs the connection: here until a request on it subscribes, then
    /// on the subscribers' runtime (counted in the gauge while it lasts).
    pub async fn serve(self, connection: impl Future<Output = ()> + Send + 'static) {
        let Some(rest) = self.until_subscribed(connection).await else {
            return;
        };
        let moved = InLane::new(self.lanes.moved.clone());
        self.lanes.subscribers.spawn(async move {
            let _moved = moved;
            rest.await;
        });
    }

    /// Spawns a task of this connection in its lane: it moves with the
    /// connection.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if self.subscribed() {
            self.lanes.subscribers.spawn(task);
            return;
        }
        let lane = self.clone();
        tokio::spawn(async move {
            if let Some(rest) = lane.until_subscribed(task).await {
                lane.lanes.subscribers.spawn(rest);
            }
        });
    }

    /// Polls `task` until it ends (`None`) or the connection subscribes:
    /// then what is left of it.
    async fn until_subscribed<F: Future + Send + 'static>(&self, task: F) -> Option<Pin<Box<F>>> {
        let mut task = Box::pin(task);
        let mut subscribed = self.subscribed.subscribe();
        tokio::select! {
            _ = &mut task => None,
            _ = subscribed.wait_for(|s| *s) => Some(task),
        }
    }
}

/// hyper runs each request of a multiplexed (HTTP/2) connection as a task
/// of its own: in the connection's lane.
impl<F> hyper::rt::Executor<F> for Lane
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, task: F) {
        self.spawn(task);
    }
}

/// Counts a connection in the subscribers' lane while it lasts.
struct InLane(Gauge);

impl InLane {
    fn new(gauge: Gauge) -> InLane {
        gauge.inc();
        InLane(gauge)
    }
}

impl Drop for InLane {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Bytes an HTTP/2 stream's answer may queue for its socket.
const SEND_BUFFER: usize = 16 << 10;

/// Which HTTP a listener speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Http {
    /// HTTP/1.1 and HTTP/2 (the REST API).
    Any,
    /// HTTP/2 only (gRPC).
    Two,
}

/// Serves `router` on `listener` until `shutdown`, each connection in its
/// lane (its switch in every request's extensions); then waits for the
/// connections in flight to finish.
pub async fn serve<L: Listener>(
    mut listener: L,
    router: Router,
    http: Http,
    lanes: Lanes,
    shutdown: impl Future<Output = ()>,
) {
    // Routes become services once here, not once per connection: a bare
    // `Router` rebuilds its route table for every connection (axum turns
    // its routes into services then), 30 KB a connection with ours, most
    // of the daemon's memory with 10,000 subscribers (heaptrack).
    let router = router.with_state(());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (io, _) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let lane = lanes.connection();
        let (router, switch) = (router.clone(), lane.clone());
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(switch.clone());
            let mut router = router.clone();
            async move { Ok::<_, Infallible>(router.call(req).await.unwrap_or_else(|e| match e {})) }
        });
        let mut builder = Builder::new(lane.clone());
        if http == Http::Two {
            builder = builder.http2_only();
        }
        // What an HTTP/2 stream may hold that its socket has not taken
        // yet (hyper's default is 400 KiB): a subscriber whose client
        // grants a large window and stops reading holds this much.
        builder.http2().max_send_buf_size(SEND_BUFFER);
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(lane.serve(async move {
            let _ = connection.await;
        }));
    }
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The name of the thread a task runs on.
    fn thread() -> String {
        std::thread::current().name().unwrap_or("").to_owned()
    }

    #[test]
    fn a_connection_moves_when_a_request_subscribes_and_its_tasks_follow() {
        let subscribers = subscriber_runtime().unwrap();
        let daemon = tokio::runtime::Builder::new_multi_thread()
            .thread_name("hydra-daemon")
            .enable_all()
            .build()
            .unwrap();
        let gauge = Gauge::default();
        let lanes = Lanes::new(subscribers.handle().clone(), gauge.clone());
        let lane = lanes.connection();
        let (said, mut heard) = tokio::sync::mpsc::unbounded_channel::<String>();
        let (go, mut told) = tokio::sync::mpsc::unbounded_channel::<()>();
        let (switch, tasks) = (lane.clone(), lane.clone());
        let connection = async move {
            // A request before the switch, one after, each a task of the
            // connection as HTTP/2 runs them; then the connection itself.
            while told.recv().await.is_some() {
                let request = said.clone();
                tasks.spawn(async move {
                    request.send(thread()).unwrap();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    request.send(thread()).unwrap();
                });
                tokio::time::sleep(Duration::from_millis(10)).await;
                said.send(thread()).unwrap();
            }
        };
        daemon.block_on(async {
            tokio::spawn(lane.serve(connection));
            go.send(()).unwrap();
            let first: Vec<String> = vec![heard.recv().await.unwrap(), heard.recv().await.unwrap()];
            assert_eq!(first, ["hydra-daemon", "hydra-daemon"]);
            assert_eq!(gauge.get(), 0);
            // The request task sleeping on the daemon's runtime moves when
            // the connection subscribes, and so does the connection.
            switch.subscribe();
            assert_eq!(heard.recv().await.unwrap(), "hydra-subscribers");
            go.send(()).unwrap();
            for _ in 0..3 {
                assert_eq!(heard.recv().await.unwrap(), "hydra-subscribers");
            }
            assert_eq!(gauge.get(), 1);
            drop(go);
            // The connection ends: no longer counted.
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(gauge.get(), 0);
        });
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
