//! The Redis protocol (RESP3, and RESP2 for clients that never say
//! `HELLO 3`) on the daemon, with SierraDB's event commands, so that
//! `redis-cli` and every Redis client can drive Hydra.
//!
//! Frames are decoded with the `redis-protocol` crate; a connection's
//! unread input is capped ([`MAX_FRAME`]): a frame that would exceed it is
//! an error and the connection closes, so a client cannot make the daemon
//! hold unbounded memory. Commands on one connection run in order;
//! concurrent connections share group commits.

mod args;
mod commands;
pub mod frame;
mod numbering;
mod reply;
mod subscribe;

use bytes::BufMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use self::args::Args;
use self::reply::Reply;
pub use self::reply::SharedReply;
use self::subscribe::Subscriptions;
use super::app::Shared;
use super::auth::Caller;
use super::lanes::{Lane, Lanes};

/// Largest frame (and unread input) a connection may send.
pub const MAX_FRAME: usize = 64 << 20;

/// Pushes queued for a subscribed connection are written together, up to
/// about this many bytes a write.
const PUSH_BYTES: usize = 64 << 10;

/// Most pipelined EAPPENDs that go to the log together.
const PIPELINED_APPENDS: usize = 256;

/// What a connection's input and output buffers keep between commands:
/// a large frame or reply grows them for a moment, and thousands of idle
/// subscribers' connections hold this much each, not the most they ever
/// took.
const IDLE_BUFFER: usize = 4 << 10;

/// Reads what the socket has onto the end of `input`, at most 64 KiB at
/// a time; the bytes read (0 at the end).
async fn read(socket: &mut Box<dyn Socket>, input: &mut Vec<u8>) -> std::io::Result<usize> {
    if input.is_empty() && input.capacity() > IDLE_BUFFER {
        *input = Vec::new();
    }
    input.reserve(IDLE_BUFFER);
    let room = input.capacity() - input.len();
    socket
        .read_buf(&mut (&mut *input).limit(room.min(64 << 10)))
        .await
}

fn is_eappend(words: &[Vec<u8>]) -> bool {
    words
        .first()
        .is_some_and(|w| w.eq_ignore_ascii_case(b"EAPPEND"))
}

/// A connection's byte stream: TCP, or TLS over it.
trait Socket: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static> Socket for T {}

/// Accepts connections (over TLS with `tls`) until the daemon shuts down.
pub async fn serve(
    app: Shared,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    lanes: Lanes,
) {
    let mut source = match tls {
        Some(a) => Source::Tls(super::tls::incoming(listener, a)),
        None => Source::Tcp(listener),
    };
    loop {
        let next = tokio::select! {
            c = source.next() => c,
            _ = wait_shutdown(&app) => return,
        };
        let Some((socket, peer)) = next else { continue };
        let (app, lane) = (app.clone(), lanes.connection());
        let connection = Connection::new(app, socket, lane.clone());
        tokio::spawn(lane.serve(async move {
            if let Err(e) = connection.run().await {
                tracing::debug!(%peer, "resp connection ended: {e}");
            }
        }));
    }
}

/// Where connections come from.
enum Source {
    Tcp(TcpListener),
    /// Connections whose TLS handshake is done (see `tls.rs`).
    Tls(
        tokio::sync::mpsc::Receiver<(
            tokio_rustls::server::TlsStream<TcpStream>,
            std::net::SocketAddr,
        )>,
    ),
}

impl Source {
    /// The next connection; `None` after a failed accept.
    async fn next(&mut self) -> Option<(Box<dyn Socket>, std::net::SocketAddr)> {
        match self {
            Source::Tcp(l) => match l.accept().await {
                Ok((s, peer)) => {
                    let _ = s.set_nodelay(true);
                    Some((Box::new(s), peer))
                }
                Err(e) => {
                    tracing::warn!("resp accept: {e}");
                    None
                }
            },
            Source::Tls(rx) => match rx.recv().await {
                Some((s, peer)) => Some((Box::new(s), peer)),
                None => std::future::pending().await,
            },
        }
    }
}

async fn wait_shutdown(app: &Shared) {
    while !app.shutting_down() {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

struct Connection {
    app: Shared,
    socket: Box<dyn Socket>,
    /// 2 until `HELLO 3`.
    version: u8,
    name: Option<String>,
    /// Set by `AUTH` (or `HELLO ... AUTH`); until then the connection is
    /// anyone's, which is enough only while no token is required.
    caller: Option<Caller>,
    /// Who opened this connection's subscriptions, when nobody had
    /// authenticated: they end when tokens become required.
    subscribed_as: Option<Caller>,
    input: Vec<u8>,
    output: Vec<u8>,
    subs: Subscriptions,
}

/// A command that reads or writes the log, run on a blocking thread; it
/// checks what its arguments need of the caller.
type StorageCommand = fn(&super::app::App, &Caller, Args) -> Result<Reply, Reply>;

/// What a command asks of the connection.
enum Outcome {
    Reply(Reply),
    /// Reply, then close (QUIT, protocol errors).
    Close(Reply),
}

impl Connection {
    fn new(app: Shared, socket: Box<dyn Socket>, lane: Lane) -> Connection {
        Connection {
            subs: Subscriptions::new(app.clone(), lane),
            app,
            socket,
            version: 2,
            name: None,
            caller: None,
            subscribed_as: None,
            input: Vec::new(),
            output: Vec::new(),
        }
    }

    async fn run(mut self) -> std::io::Result<()> {
        loop {
            // Answer every complete frame already read (pipelining); a run
            // of EAPPENDs goes to the log together.
            let mut next = self.next_command();
            loop {
                let words = match next {
                    Ok(Some(words)) => words,
                    Ok(None) => break,
                    Err(reply) => {
                        reply.encode(self.version, &mut self.output);
                        self.socket.write_all(&self.output).await?;
                        return Ok(());
                    }
                };
                if is_eappend(&words) {
                    let mut run = vec![words];
                    next = self.next_command();
                    while run.len() < PIPELINED_APPENDS
                        && let Ok(Some(w)) = &next
                        && is_eappend(w)
                    {
                        run.push(next.expect("matched").expect("matched"));
                        next = self.next_command();
                    }
                    for r in self.eappends(run).await {
                        r.encode(self.version, &mut self.output);
                    }
                    continue;
                }
                match self.dispatch(words).await {
                    Outcome::Reply(r) => r.encode(self.version, &mut self.output),
                    Outcome::Close(r) => {
                        r.encode(self.version, &mut self.output);
                        self.socket.write_all(&self.output).await?;
                        return Ok(());
                    }
                }
                next = self.next_command();
            }
            if !self.output.is_empty() {
                self.socket.write_all(&self.output).await?;
                self.output.clear();
                if self.output.capacity() > IDLE_BUFFER {
                    self.output = Vec::new();
                }
            }
            let caller = self.caller.clone().or_else(|| self.subscribed_as.clone());
            let revoked = async move {
                match caller {
                    Some(c) => c.revoked().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                n = read(&mut self.socket, &mut self.input) => {
                    let n = n?;
                    if n == 0 {
                        return Ok(()); // closed, or half-closed: nothing more will come
                    }
                    if self.input.len() > MAX_FRAME {
                        Reply::err("ERR", format!("Protocol error: a frame exceeds {MAX_FRAME} bytes")).encode(self.version, &mut self.output);
                        self.socket.write_all(&self.output).await?;
                        return Ok(());
                    }
                }
                Some(push) = self.subs.next() => {
                    // Every push already queued goes in the same write.
                    push.encode(self.version, &mut self.output);
                    while self.output.len() < PUSH_BYTES
                        && let Some(push) = self.subs.try_next()
                    {
                        push.encode(self.version, &mut self.output);
                    }
                }
                _ = wait_shutdown(&self.app) => return Ok(()),
                () = revoked => {
                    Reply::err("NOAUTH", "the token this connection used was revoked, or tokens are now required").encode(self.version, &mut self.output);
                    self.socket.write_all(&self.output).await?;
                    return Ok(());
                }
            }
        }
    }

    fn next_command(&mut self) -> Result<Option<Vec<Vec<u8>>>, Reply> {
        take_command(&mut self.input)
    }

    /// The caller this connection authenticated as, or anyone while no
    /// token is required.
    fn caller(&self) -> Result<Caller, Reply> {
        match &self.caller {
            Some(c) => Ok(c.clone()),
            None => self.app.gate.authenticate(None).map_err(commands::denied),
        }
    }

    /// Runs EAPPENDs (each command's words after its name) together.
    async fn eappends(&self, run: Vec<Vec<Vec<u8>>>) -> Vec<Reply> {
        let n = run.len();
        let caller = match self.caller() {
            Ok(c) => c,
            Err(r) => return vec![r; n],
        };
        let commands = run
            .into_iter()
            .map(|words| Args::new(words.into_iter().skip(1).collect()))
            .collect();
        let app = self.app.clone();
        match tokio::task::spawn_blocking(move || commands::eappends(&app, &caller, commands)).await
        {
            Ok(replies) => replies,
            Err(e) => vec![Reply::err("ERR", format!("command failed: {e}")); n],
        }
    }

    async fn dispatch(&mut self, words: Vec<Vec<u8>>) -> Outcome {
        let mut words = words.into_iter();
        let name = String::from_utf8_lossy(&words.next().unwrap_or_default()).to_uppercase();
        let args = Args::new(words.collect());
        match name.as_str() {
            "AUTH" => return Outcome::Reply(self.auth(args)),
            "HELLO" => return Outcome::Reply(self.hello(args)),
            "QUIT" => return Outcome::Close(Reply::ok()),
            _ => {}
        }
        let caller = match self.caller() {
            Ok(c) => c,
            Err(r) => return Outcome::Reply(r),
        };
        let storage: Option<StorageCommand> = match name.as_str() {
            "EMAPPEND" => Some(commands::emappend),
            "EGET" => Some(commands::eget),
            "ESCAN" => Some(commands::escan),
            "ESVER" => Some(commands::esver),
            "EPSCAN" => Some(commands::epscan),
            "EPSEQ" => Some(commands::epseq),
            _ => None,
        };
        if let Some(f) = storage {
            let app = self.app.clone();
            return Outcome::Reply(
                match tokio::task::spawn_blocking(move || f(&app, &caller, args)).await {
                    Ok(Ok(r)) | Ok(Err(r)) => r,
                    Err(e) => Reply::err("ERR", format!("command failed: {e}")),
                },
            );
        }
        Outcome::Reply(match name.as_str() {
            "PING" => self.ping(args),
            "CLIENT" => self.client(args),
            "COMMAND" => command(args),
            "SELECT" => Reply::ok(),
            "ESUB" | "EPSUB" => {
                let reply = if name == "ESUB" {
                    self.subs.esub(&caller, args).await
                } else {
                    self.subs.epsub(&caller, args).await
                };
                if self.caller.is_none() {
                    self.subscribed_as = Some(caller);
                }
                reply
            }
            "EACK" => self.subs.eack(args),
            _ => Reply::err("ERR", format!("unknown command '{name}'")),
        })
    }

    fn ping(&self, mut args: Args) -> Reply {
        match args.next_bytes("message") {
            Ok(m) => Reply::Bulk(m),
            Err(_) => Reply::str("PONG"),
        }
    }

    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
    fn hello(&mut self, mut args: Args) -> Reply {
        if !args.is_empty() {
            match args.u64("protocol version") {
                Ok(v @ (2 | 3)) => self.version = v as u8,
                Ok(v) => return Reply::err("NOPROTO", format!("unsupported protocol version {v}")),
                Err(e) => return e,
            }
        }
        while !args.is_empty() {
            if args.keyword("AUTH") {
                let _user = args.next_bytes("user");
                let token = match args.next_str("password") {
                    Ok(t) => t,
                    Err(e) => return e,
                };
                if let Err(e) = self.login(&token) {
                    return e;
                }
            } else if args.keyword("SETNAME") {
                self.name = args.next_str("name").ok();
            } else {
                return args::syntax("HELLO [protover [AUTH user pass] [SETNAME name]]");
            }
        }
        if self.caller().is_err() {
            return Reply::err(
                "NOAUTH",
                "HELLO must be called with AUTH user TOKEN: a token is required",
            );
        }
        Reply::map([
            ("server", Reply::bulk("hydra")),
            ("version", Reply::bulk(env!("CARGO_PKG_VERSION"))),
            ("proto", Reply::Int(self.version as i64)),
            ("id", Reply::Int(0)),
            ("mode", Reply::bulk("standalone")),
            ("role", Reply::bulk("master")),
            ("modules", Reply::Array(Vec::new())),
            (
                "peer_id",
                Reply::bulk(self.app.log.identity().peer_id().to_string()),
            ),
            (
                "num_partitions",
                Reply::Int(hydra_eventlog::PARTITIONS as i64),
            ),
        ])
    }

    /// `AUTH [user] TOKEN`: the user name is ignored (a token names
    /// itself), so `AUTH default TOKEN` and `AUTH TOKEN` are the same.
    fn auth(&mut self, mut args: Args) -> Reply {
        let first = match args.next_str("token") {
            Ok(t) => t,
            Err(_) => return args::syntax("AUTH [user] TOKEN"),
        };
        let token = match args.next_str("token") {
            Ok(t) => t,
            Err(_) => first,
        };
        if !args.is_empty() {
            return args::syntax("AUTH [user] TOKEN");
        }
        match self.login(&token) {
            Ok(()) => Reply::ok(),
            Err(e) => e,
        }
    }

    fn login(&mut self, token: &str) -> Result<(), Reply> {
        let caller = self
            .app
            .gate
            .authenticate(Some(token))
            .map_err(commands::denied)?;
        // Anyone is asked again at each command: the first token made
        // later must close this connection's door too.
        if let Caller::Token(_) = caller {
            self.caller = Some(caller);
        }
        Ok(())
    }

    fn client(&mut self, mut args: Args) -> Reply {
        match args.peek_upper().as_deref() {
            Some("SETNAME") => {
                args.keyword("SETNAME");
                match args.next_str("name") {
                    Ok(n) => {
                        self.name = Some(n);
                        Reply::ok()
                    }
                    Err(e) => e,
                }
            }
            Some("GETNAME") => self.name.clone().map_or(Reply::Null, Reply::bulk),
            Some("ID") => Reply::Int(0),
            Some("SETINFO") => Reply::ok(),
            _ => Reply::err("ERR", "CLIENT supports SETNAME, GETNAME, ID and SETINFO"),
        }
    }
}

/// `COMMAND [COUNT|DOCS|INFO ...]`: enough for redis-cli's interactive
/// mode, which asks for docs to drive its hints.
fn command(args: Args) -> Reply {
    match args.peek_upper().as_deref() {
        Some("COUNT") => Reply::Int(COMMANDS.len() as i64),
        Some("DOCS") => Reply::Map(Vec::new()),
        _ => Reply::Array(
            COMMANDS
                .iter()
                .map(|c| Reply::bulk(c.to_lowercase()))
                .collect(),
        ),
    }
}

const COMMANDS: &[&str] = &[
    "EAPPEND", "EMAPPEND", "EGET", "ESCAN", "ESVER", "ESUB", "EACK", "EPSCAN", "EPSEQ", "EPSUB",
    "HELLO", "AUTH", "PING", "QUIT", "CLIENT", "COMMAND", "SELECT",
];

/// Takes the next complete command off `input` (see [`frame::take`]).
pub fn take_command(input: &mut Vec<u8>) -> Result<Option<Vec<Vec<u8>>>, Reply> {
    frame::take(input).map_err(|e| Reply::err("ERR", format!("Protocol error: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_inline_commands_and_partial_input() {
        let mut input = b"*2\r\n$4\r\nPING\r\n$2\r\nhi\r\nPING\r\n*1\r\n$4\r\nPI".to_vec();
        assert_eq!(
            take_command(&mut input).unwrap(),
            Some(vec![b"PING".to_vec(), b"hi".to_vec()])
        );
        assert_eq!(
            take_command(&mut input).unwrap(),
            Some(vec![b"PING".to_vec()])
        );
        assert_eq!(
            take_command(&mut input).unwrap(),
            None,
            "an incomplete frame waits"
        );
        input.extend_from_slice(b"NG\r\n");
        assert_eq!(
            take_command(&mut input).unwrap(),
            Some(vec![b"PING".to_vec()])
        );
        assert!(input.is_empty());
        let mut bad = b"*1\r\n:x\r\n".to_vec();
        assert!(take_command(&mut bad).is_err());
        let mut not_array = b"$4\r\nPING\r\n".to_vec();
        assert!(take_command(&mut not_array).is_err());
    }

    proptest! {
        /// The decoder never panics, and never claims more than it read.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let mut input = bytes.clone();
            for _ in 0..64 {
                match take_command(&mut input) {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            prop_assert!(input.len() <= bytes.len());
        }

        /// Truncations of valid frames ask for more bytes, never fail.
        #[test]
        fn any_prefix_of_a_frame_waits(words in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..5), cut in any::<prop::sample::Index>()) {
            let mut frame = format!("*{}\r\n", words.len()).into_bytes();
            for w in &words {
                frame.extend_from_slice(format!("${}\r\n", w.len()).as_bytes());
                frame.extend_from_slice(w);
                frame.extend_from_slice(b"\r\n");
            }
            let n = cut.index(frame.len());
            let mut prefix = frame[..n].to_vec();
            prop_assert_eq!(take_command(&mut prefix).unwrap(), None);
            let mut whole = frame.clone();
            prop_assert_eq!(take_command(&mut whole).unwrap(), Some(words));
        }
    }
}
