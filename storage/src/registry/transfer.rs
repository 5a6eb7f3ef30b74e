//! Bounds on a transfer in flight: how fast it must make progress.
//!
//! A registry (or a proxy in front of one) that trickles a body, one byte every few
//! seconds, never trips a per-read timeout; without a progress rule it holds a build
//! forever. [`ProgressDeadline`] says how many bytes must arrive in each window of time;
//! [`ProgressReader`] enforces it on a body and fails with a [`Stall`] that says what it
//! saw. The HTTP agent's per-read timeout is set to the same window, so a body (or a
//! response head) that sends nothing at all fails just the same.

use std::io::{self, Read};
use std::time::{Duration, Instant};

/// At least `min_bytes` must arrive in every `window` of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressDeadline {
    pub window: Duration,
    pub min_bytes: u64,
}

impl ProgressDeadline {
    /// The default: at least 1 KiB in every 60 s.
    pub const DEFAULT: ProgressDeadline = ProgressDeadline { window: Duration::from_secs(60), min_bytes: 1024 };

    /// The default rule (1 KiB) over a window of `secs` seconds (at least 1).
    pub fn from_secs(secs: u64) -> Self {
        ProgressDeadline { window: Duration::from_secs(secs.max(1)), ..Self::DEFAULT }
    }
}

impl Default for ProgressDeadline {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A transfer that broke the progress rule: `seen` bytes in the last `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{seen} bytes in {window:?}, less than {min_bytes}")]
pub struct Stall {
    pub seen: u64,
    pub window: Duration,
    pub min_bytes: u64,
}

/// Counts the bytes of the current window and judges it when it is over.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    deadline: ProgressDeadline,
    window_start: Instant,
    in_window: u64,
}

impl Progress {
    pub(crate) fn new(deadline: ProgressDeadline, now: Instant) -> Self {
        Progress { deadline, window_start: now, in_window: 0 }
    }

    /// Records `n` bytes that arrived at `now`. A window that is over with fewer than
    /// `min_bytes` in it is a stall; otherwise a new window starts.
    pub(crate) fn record(&mut self, n: u64, now: Instant) -> Result<(), Stall> {
        self.in_window += n;
        if now.duration_since(self.window_start) < self.deadline.window {
            return Ok(());
        }
        if self.in_window < self.deadline.min_bytes {
            return Err(self.stall());
        }
        self.window_start = now;
        self.in_window = 0;
        Ok(())
    }

    /// The stall as it stands (for a read that timed out).
    pub(crate) fn stall(&self) -> Stall {
        Stall { seen: self.in_window, window: self.deadline.window, min_bytes: self.deadline.min_bytes }
    }
}

/// A body reader that enforces a [`ProgressDeadline`]. A stall, or a read the HTTP agent
/// gave up on (its per-read timeout), comes out as a `TimedOut` I/O error carrying a
/// [`Stall`]; see [`stall_of`].
pub(crate) struct ProgressReader<R> {
    pub(crate) inner: R,
    pub(crate) progress: Progress,
}

impl<R: Read> ProgressReader<R> {
    pub(crate) fn new(inner: R, deadline: ProgressDeadline) -> Self {
        ProgressReader { inner, progress: Progress::new(deadline, Instant::now()) }
    }
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                if n > 0 {
                    self.progress
                        .record(n as u64, Instant::now())
                        .map_err(|s| io::Error::new(io::ErrorKind::TimedOut, s))?;
                }
                Ok(n)
            }
            Err(e) if is_timeout(&e) => Err(io::Error::new(io::ErrorKind::TimedOut, self.progress.stall())),
            Err(e) => Err(e),
        }
    }
}

/// Whether `e` is a read timeout of the HTTP agent.
fn is_timeout(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut
        || e.get_ref().and_then(|inner| inner.downcast_ref::<ureq::Error>()).is_some_and(|u| {
            matches!(u, ureq::Error::Timeout(_) | ureq::Error::BodyStalled)
                || matches!(u, ureq::Error::Io(io) if io.kind() == io::ErrorKind::TimedOut)
        })
}

/// The [`Stall`] an I/O error from a [`ProgressReader`] carries, if it is one.
pub(crate) fn stall_of(e: &io::Error) -> Option<Stall> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<Stall>()).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_with_too_few_bytes_are_stalls() {
        let t0 = Instant::now();
        let d = ProgressDeadline { window: Duration::from_secs(10), min_bytes: 100 };
        let mut p = Progress::new(d, t0);
        // Fast enough: 100 bytes within the first window, then a new window starts.
        p.record(60, t0 + Duration::from_secs(3)).unwrap();
        p.record(40, t0 + Duration::from_secs(10)).unwrap();
        // A trickle: 1 byte every 5 s never reaches 100 in 10 s.
        p.record(1, t0 + Duration::from_secs(15)).unwrap();
        let stall = p.record(1, t0 + Duration::from_secs(20)).unwrap_err();
        assert_eq!(stall, Stall { seen: 2, window: Duration::from_secs(10), min_bytes: 100 });
    }

    #[test]
    fn a_stall_survives_the_io_error_round_trip() {
        struct Trickle;
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                std::thread::sleep(Duration::from_millis(30));
                buf[0] = b'x';
                Ok(1)
            }
        }
        let d = ProgressDeadline { window: Duration::from_millis(100), min_bytes: 1024 };
        let mut r = ProgressReader::new(Trickle, d);
        let err = io::copy(&mut r, &mut io::sink()).unwrap_err();
        let stall = stall_of(&err).expect("a stall");
        assert!(stall.seen >= 3 && stall.seen < 1024, "{stall:?}");
        assert_eq!(ProgressDeadline::from_secs(0).window, Duration::from_secs(1));
    }
}
