//! `hydra`: the command-line interface to a Hydra data directory (see the
//! library, `lib.rs`, for what it does and its exit codes).

use std::process::ExitCode;

/// Reads allocate a few small buffers per event and open 64 KiB bundles;
/// glibc's allocator spends a third of a `$all` read in its own
/// bookkeeping there, mimalloc a fraction (measured: `$all` 0.56M to 1.2M
/// events/s, one stream 0.77M to 1.7M).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    hydra::main()
}
