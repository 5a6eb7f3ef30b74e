//! `WERF_BUILDAH_ULIMIT`: rlimits for build steps.
//!
//! werf's code parses each comma-separated item as `name=soft[:hard]` (go-units); its docs
//! say `name:soft[:hard]`. Both are accepted. `-1` means unlimited; `unlimited` is accepted
//! too (werf refuses it, but it is what users type).

use crate::error::{Result, RuntimeError};
use serde::{Deserialize, Serialize};

/// One limit for the sandboxed process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// The `RLIMIT_*` resource number.
    pub resource: i32,
    pub soft: u64,
    pub hard: u64,
}

const NAMES: &[(&str, i32)] = &[
    ("core", libc::RLIMIT_CORE as i32),
    ("cpu", libc::RLIMIT_CPU as i32),
    ("data", libc::RLIMIT_DATA as i32),
    ("fsize", libc::RLIMIT_FSIZE as i32),
    ("locks", libc::RLIMIT_LOCKS as i32),
    ("memlock", libc::RLIMIT_MEMLOCK as i32),
    ("msgqueue", libc::RLIMIT_MSGQUEUE as i32),
    ("nice", libc::RLIMIT_NICE as i32),
    ("nofile", libc::RLIMIT_NOFILE as i32),
    ("nproc", libc::RLIMIT_NPROC as i32),
    ("rss", libc::RLIMIT_RSS as i32),
    ("rtprio", libc::RLIMIT_RTPRIO as i32),
    ("rttime", libc::RLIMIT_RTTIME as i32),
    ("sigpending", libc::RLIMIT_SIGPENDING as i32),
    ("stack", libc::RLIMIT_STACK as i32),
];

/// Name of a resource number, for messages.
pub fn name_of(resource: i32) -> &'static str {
    NAMES.iter().find(|(_, r)| *r == resource).map_or("?", |(n, _)| n)
}

/// Parse a `WERF_BUILDAH_ULIMIT` value. `current` gives the process's own (soft, hard) for a
/// resource; `-1` is replaced by the current hard limit, as buildah does.
pub fn parse_list(value: &str, current: impl Fn(i32) -> (u64, u64)) -> Result<Vec<Rlimit>> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|item| parse_one(item, &current)).collect()
}

fn parse_one(item: &str, current: &impl Fn(i32) -> (u64, u64)) -> Result<Rlimit> {
    let err = |reason: &str| RuntimeError::Ulimit { spec: item.to_string(), reason: reason.to_string() };
    let (name, values) =
        item.split_once('=').or_else(|| item.split_once(':')).ok_or_else(|| err("expected name=soft[:hard]"))?;
    let resource = NAMES
        .iter()
        .find(|(n, _)| *n == name.trim())
        .map(|(_, r)| *r)
        .ok_or_else(|| err("unknown limit name (known: core cpu data fsize locks memlock msgqueue nice nofile nproc rss rtprio rttime sigpending stack)"))?;
    let (soft, hard) = match values.split_once(':') {
        Some((s, h)) => (s, Some(h)),
        None => (values, None),
    };
    let host_hard = current(resource).1;
    let value = |v: &str| -> Result<u64> {
        match v.trim() {
            "-1" | "unlimited" => Ok(host_hard),
            v => v.parse::<u64>().map_err(|_| err("values must be integers, -1 or unlimited")),
        }
    };
    let soft_v = value(soft)?;
    let hard_v = match hard {
        Some(h) => value(h)?,
        None => soft_v,
    };
    if soft_v > hard_v {
        return Err(err("soft limit is above the hard limit"));
    }
    if hard_v > host_hard {
        return Err(err(&format!(
            "hard limit {hard_v} is above this process's hard limit {host_hard}, which an unprivileged user cannot raise"
        )));
    }
    Ok(Rlimit { resource, soft: soft_v, hard: hard_v })
}

/// The current (soft, hard) limits of this process for `resource`.
pub fn current(resource: i32) -> (u64, u64) {
    crate::sys::getrlimit(resource)
}

/// Spawn settings for a tool that writes what an untrusted source sends (git fetching a
/// remote): no file it writes may grow beyond `bytes` (`RLIMIT_FSIZE`; the tool is
/// killed by SIGXFSZ at the limit).
pub fn limit_file_size(cmd: &mut std::process::Command, bytes: u64) {
    crate::sys::limit_file_size(cmd, bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limited_writer_stops_at_the_file_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c").arg(format!("head -c 5000 /dev/zero > {}", file.display()));
        limit_file_size(&mut cmd, 1000);
        let status = cmd.status().unwrap();
        // `head` is killed by SIGXFSZ (or fails with EFBIG where the signal is ignored).
        assert!(!status.success(), "{status:?}");
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 1000);
    }

    fn host(_: i32) -> (u64, u64) {
        (1024, 4096)
    }

    #[test]
    fn accepts_both_syntaxes() {
        let got = parse_list("nofile=100:200, nproc:50", host).unwrap();
        assert_eq!(got[0], Rlimit { resource: libc::RLIMIT_NOFILE as i32, soft: 100, hard: 200 });
        assert_eq!(got[1], Rlimit { resource: libc::RLIMIT_NPROC as i32, soft: 50, hard: 50 });
    }

    #[test]
    fn minus_one_is_host_hard() {
        let got = parse_list("nofile=-1", host).unwrap();
        assert_eq!((got[0].soft, got[0].hard), (4096, 4096));
        let got = parse_list("core=0:unlimited", host).unwrap();
        assert_eq!((got[0].soft, got[0].hard), (0, 4096));
    }

    #[test]
    fn rejects_bad_items() {
        for (input, needle) in [
            ("nofile", "expected name=soft"),
            ("files=1", "unknown limit name"),
            ("nofile=abc", "integers"),
            ("nofile=10:5", "soft limit is above"),
            ("nofile=10:99999", "above this process's hard limit 4096"),
        ] {
            let e = parse_list(input, host).unwrap_err().to_string();
            assert!(e.contains(needle), "{input}: {e}");
        }
    }
}
