//! The `hydra` command-line interface and daemon, as a library: the
//! binary is [`main`]; the fuzz targets (`fuzz/`) reach the decoders of
//! what clients send, [`parse_events`] (HTTP event bodies) and
//! [`Config::parse`] (the YAML config); load tests with thousands of
//! connections raise their own limit with [`raise_open_files`].
//!
//! Exit codes: 0 success; 1 an error (one line on stderr), or a negative
//! answer (`block has` on an absent block, `volume verify` finding
//! corruption); 2 a usage error.

pub mod access;
mod cli;
mod context;
mod daemon;
mod events;
mod output;

use std::io::ErrorKind;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
pub use crate::daemon::config::Config;
/// The gRPC API's messages, client and server (`proto/hydra/v1`), for
/// Rust clients of the daemon.
pub use crate::daemon::grpc::pb as proto;
pub use crate::events::parse_events;

/// Runs the command line: what the `hydra` binary does.
pub fn main() -> ExitCode {
    no_huge_pages();
    let cli = Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hydra: {}", one_line(&err));
            ExitCode::from(1)
        }
    }
}

/// mimalloc asks the kernel for transparent huge pages, and each first
/// touch of one zeroes 2 MiB: with 64 appenders that was 18% of the CPU of
/// the 64-writer benchmark (`clear_page_erms`), and plain 4 KiB pages ran
/// it at 1.3-1.5x the rate. Where the kernel refuses, nothing changes.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

/// Raises the soft limit on open files to the hard one (a subscriber is a
/// connection, a connection a file: the usual soft limit of 1,024 would cap
/// subscribers below that); returns the limit now in force.
pub fn raise_open_files() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!("could not raise the open-file limit: {e}");
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// The error and its causes on one line, without repeating a cause that
/// the message above it already quotes.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !line.contains(&c) {
            line.push_str(": ");
            line.push_str(&c);
        }
    }
    line.replace('\n', " ")
}

/// A closed stdout (`hydra object get k | head`) is how pipes end, not an
/// error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == ErrorKind::BrokenPipe)
            || matches!(
                c.downcast_ref::<hydra_bucket::BucketError>(),
                Some(hydra_bucket::BucketError::Write(e)) if e.kind() == ErrorKind::BrokenPipe
            )
    })
}
