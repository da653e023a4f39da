//! `async` durability: the writer commits without fsync and a flusher
//! thread makes the commits durable every `interval` after the first
//! unflushed one, or as soon as `bytes` are unflushed, whichever comes
//! first.
//!
//! The writer only adds each commit's bytes to a shared counter; it wakes
//! the flusher for the first unflushed commit (which starts the interval)
//! and for the one that crosses `bytes`, not for every commit: a wake is a
//! futex call and a thread switch, which cost a single-event append about
//! a fifth of its time when every commit sent one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The writer's side: told the bytes of each commit.
pub(crate) struct Flusher {
    pending: Arc<AtomicU64>,
    wake: mpsc::Sender<()>,
    bytes: u64,
}

impl Flusher {
    /// Starts the flusher thread, which makes the commits durable with
    /// `flush` (retried at the next interval when it fails; the data
    /// stays committed and visible meanwhile). The thread ends when the
    /// returned [`Flusher`] is dropped.
    pub fn start<E>(
        interval: Duration,
        bytes: u64,
        flush: impl Fn() -> Result<(), E> + Send + 'static,
    ) -> (Flusher, JoinHandle<()>) {
        let pending = Arc::new(AtomicU64::new(0));
        let (wake, woken) = mpsc::channel();
        let counted = pending.clone();
        let handle = std::thread::Builder::new()
            .name("hydra-flusher".into())
            .spawn(move || run(&counted, &woken, (interval, bytes), flush))
            .expect("spawn the flusher thread");
        (
            Flusher {
                pending,
                wake,
                bytes,
            },
            handle,
        )
    }

    /// A commit of `n` bytes, not yet durable.
    pub fn committed(&self, n: u64) {
        let before = self.pending.fetch_add(n, Ordering::AcqRel);
        if before == 0 || (before < self.bytes && before + n >= self.bytes) {
            let _ = self.wake.send(());
        }
    }
}

/// The flusher thread: idle until a commit is pending, then flushes once
/// `interval` has passed since or `bytes` are pending; again while
/// commits came in meanwhile (they did not wake it).
fn run<E>(
    pending: &AtomicU64,
    woken: &mpsc::Receiver<()>,
    (interval, bytes): (Duration, u64),
    flush: impl Fn() -> Result<(), E>,
) {
    loop {
        if pending.load(Ordering::Acquire) == 0 && woken.recv().is_err() {
            return;
        }
        let since = Instant::now();
        let mut open = true;
        while open && pending.load(Ordering::Acquire) < bytes {
            let left = interval.saturating_sub(since.elapsed());
            if left.is_zero() {
                break;
            }
            match woken.recv_timeout(left) {
                Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                // The writer is gone: flush what it left, and end.
                Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
            }
        }
        let n = pending.load(Ordering::Acquire);
        if n > 0 && flush().is_ok() {
            // Commits since the load are flushed too, but stay counted:
            // they make one more flush, never one fewer.
            pending.fetch_sub(n, Ordering::AcqRel);
        }
        if !open {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// A flusher whose flushes are counted (and fail while `failing`).
    fn counted(
        interval: Duration,
        bytes: u64,
    ) -> (Flusher, JoinHandle<()>, Arc<AtomicU64>, Arc<AtomicBool>) {
        let (flushes, failing) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (f, fail) = (flushes.clone(), failing.clone());
        let (flusher, handle) = Flusher::start(interval, bytes, move || {
            if fail.load(Ordering::SeqCst) {
                return Err(());
            }
            f.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        (flusher, handle, flushes, failing)
    }

    /// Waits up to 5 s for `flushes` to reach `n`.
    fn reaches(flushes: &AtomicU64, n: u64) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if flushes.load(Ordering::SeqCst) >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }

    #[test]
    fn commits_within_an_interval_share_one_flush() {
        let (flusher, handle, flushes, _) = counted(Duration::from_millis(300), 1 << 30);
        let start = Instant::now();
        for _ in 0..1000 {
            flusher.committed(100);
        }
        assert!(start.elapsed() < Duration::from_millis(250), "slow machine");
        assert_eq!(
            flushes.load(Ordering::SeqCst),
            0,
            "none before the interval"
        );
        assert!(reaches(&flushes, 1));
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(flushes.load(Ordering::SeqCst), 1, "one flush, then idle");
        // A commit after the flush starts another interval.
        flusher.committed(1);
        assert!(reaches(&flushes, 2));
        drop(flusher);
        handle.join().unwrap();
    }

    #[test]
    fn crossing_the_bytes_flushes_at_once() {
        let (flusher, handle, flushes, _) = counted(Duration::from_secs(3600), 1000);
        flusher.committed(600);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(flushes.load(Ordering::SeqCst), 0);
        flusher.committed(600);
        assert!(reaches(&flushes, 1), "flushed when the bytes were crossed");
        // What came in after is flushed by the next crossing.
        flusher.committed(999);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(flushes.load(Ordering::SeqCst), 1);
        flusher.committed(1);
        assert!(reaches(&flushes, 2));
        drop(flusher);
        handle.join().unwrap();
    }

    #[test]
    fn a_failed_flush_is_retried_and_the_last_commits_are_flushed_at_the_end() {
        let (flusher, handle, flushes, failing) = counted(Duration::from_millis(20), 1 << 30);
        failing.store(true, Ordering::SeqCst);
        flusher.committed(10);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(flushes.load(Ordering::SeqCst), 0);
        failing.store(false, Ordering::SeqCst);
        assert!(reaches(&flushes, 1), "retried once it works");

        // Dropped with a commit pending: flushed before the thread ends.
        let (flusher2, handle2, flushes2, _) = counted(Duration::from_secs(3600), 1 << 30);
        flusher2.committed(10);
        drop(flusher2);
        handle2.join().unwrap();
        assert_eq!(flushes2.load(Ordering::SeqCst), 1);
        drop(flusher);
        handle.join().unwrap();
    }
}
