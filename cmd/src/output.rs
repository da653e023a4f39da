//! Output helpers: JSON for machines, progress bars for people.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// Progress is shown for transfers of at least this many bytes.
const PROGRESS_MIN: u64 = 4 << 20;

/// Prints `value` as pretty JSON on stdout.
pub fn json(value: &impl Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A byte-count progress bar on stderr, hidden unless stderr is a
/// terminal and the transfer is (or may be) large.
pub fn bytes_bar(len: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() || len.is_some_and(|l| l < PROGRESS_MIN) {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(l) => ProgressBar::new(l).with_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template"),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec}")
                .expect("valid template"),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Human-readable byte counts.
pub fn human(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}
