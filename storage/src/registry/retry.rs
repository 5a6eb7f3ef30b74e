//! When to try a request again, and how long to wait first.
//!
//! Only idempotent requests are retried (GET, HEAD, PUT of a manifest, DELETE, and an
//! upload whose body can be re-opened): the same request twice must not do harm.

use std::io;
use std::time::Duration;

/// Exponential backoff: `initial`, doubled each time, never above `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first included (1 = never retry).
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 5, initial: Duration::from_millis(200), max: Duration::from_secs(3) }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy { attempts: 1, ..Default::default() }
    }

    /// Wait before attempt number `attempt + 1`, where `attempt` counts from 1.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The wait after a response carrying `Retry-After: <seconds>`: the server's wish,
    /// but never more than four times our own ceiling.
    pub fn delay_after(&self, attempt: u32, retry_after: Option<&str>) -> Duration {
        let ours = self.delay(attempt);
        match retry_after.and_then(|v| v.trim().parse::<u64>().ok()) {
            Some(secs) => Duration::from_secs(secs).clamp(ours, self.max * 4),
            None => ours,
        }
    }
}

/// A transport error that a later attempt may not hit: timeouts, resets, refused
/// connections. Not TLS, DNS or protocol violations.
pub(crate) fn is_transient(err: &ureq::Error) -> bool {
    match err {
        ureq::Error::Io(e) => is_transient_io(e),
        ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed | ureq::Error::BodyStalled => true,
        _ => false,
    }
}

pub(crate) fn is_transient_io(err: &io::Error) -> bool {
    use io::ErrorKind::*;
    if matches!(
        err.kind(),
        ConnectionReset
            | ConnectionAborted
            | ConnectionRefused
            | BrokenPipe
            | TimedOut
            | UnexpectedEof
            | Interrupted
            | NotConnected
    ) {
        return true;
    }
    // ureq wraps its own errors (timeouts, premature close) into io::Error when they
    // surface through a body reader.
    err.get_ref().and_then(|inner| inner.downcast_ref::<ureq::Error>()).is_some_and(is_transient)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_max() {
        let p = RetryPolicy::default();
        let delays: Vec<_> = (1..=6).map(|a| p.delay(a).as_millis()).collect();
        assert_eq!(delays, [200, 400, 800, 1600, 3000, 3000]);
        assert_eq!(p.delay(100).as_millis(), 3000);
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay_after(1, Some("2")), Duration::from_secs(2));
        assert_eq!(p.delay_after(1, Some("3600")), Duration::from_secs(12));
        assert_eq!(p.delay_after(1, Some("0")), Duration::from_millis(200));
        assert_eq!(p.delay_after(2, Some("soon")), Duration::from_millis(400));
    }

    #[test]
    fn classifies_errors() {
        assert!(is_transient(&ureq::Error::ConnectionFailed));
        assert!(is_transient(&ureq::Error::Io(io::Error::from(io::ErrorKind::ConnectionReset))));
        assert!(!is_transient(&ureq::Error::HostNotFound));
        assert!(!is_transient(&ureq::Error::BadUri("x".into())));
        let wrapped = io::Error::other(ureq::Error::ConnectionFailed);
        assert!(is_transient_io(&wrapped));
        assert!(!is_transient_io(&io::Error::other("disk full")));
    }
}
