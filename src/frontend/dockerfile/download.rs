//! `ADD <http(s) URL>`: which sources are URLs (and which are git repositories, as
//! BuildKit tells them), and downloading one, bounded in size and time, to a file of
//! the build's scratch directory while hashing it.
//!
//! BuildKit's cache key for a URL is the checksum of its content, so a step's digest
//! needs the content: the plan downloads every URL without `--checksum` once and the
//! step copies that same file (`Downloads` keeps it for the build). With `--checksum`,
//! the digest takes the checksum and the download waits until the step runs; either
//! way the content is verified against `--checksum` before anything is written to the
//! image.

use anyhow::{Context, bail};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// The largest file `ADD <URL>` downloads.
pub const MAX_DOWNLOAD_BYTES: u64 = 4 << 30;
/// How long one download may take in all.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long a connection, or a read that makes no progress, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// A downloaded URL.
#[derive(Debug, Clone)]
pub struct Download {
    /// The content, in the build's scratch directory: mode 0600, its time the
    /// `Last-Modified` time, else the epoch (BuildKit's download).
    pub path: PathBuf,
    /// `sha256:HEX` of the content.
    pub digest: String,
}

/// The URLs downloaded in one build, each once.
pub struct Downloads {
    dir: PathBuf,
    done: Mutex<BTreeMap<String, Download>>,
    /// `ADD <git URL>`: the commit each source's ref was resolved to while planning.
    commits: Mutex<BTreeMap<String, String>>,
}

impl Downloads {
    /// Downloads go to files in `dir` (a scratch directory of the build).
    pub fn new(dir: PathBuf) -> Downloads {
        Downloads { dir, done: Mutex::new(BTreeMap::new()), commits: Mutex::new(BTreeMap::new()) }
    }

    /// The commit the git source `src` names, resolved once per build.
    pub fn git_commit(&self, src: &str) -> anyhow::Result<String> {
        if let Some(c) = self.commits.lock().expect("downloads lock").get(src) {
            return Ok(c.clone());
        }
        let commit = super::gitsource::GitSource::parse(src)?.resolve()?;
        self.commits.lock().expect("downloads lock").insert(src.to_string(), commit.clone());
        Ok(commit)
    }

    /// The content of `url`, downloaded now unless it already was; checked against
    /// `checksum` (`sha256:HEX`) when given.
    pub fn get(&self, url: &str, checksum: Option<&str>) -> anyhow::Result<Download> {
        let known = self.done.lock().expect("downloads lock").get(url).cloned();
        let d = match known {
            Some(d) => d,
            None => {
                std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
                let n = self.done.lock().expect("downloads lock").len();
                let d = fetch(url, &self.dir.join(format!("url-{n}")))?;
                self.done.lock().expect("downloads lock").insert(url.to_string(), d.clone());
                d
            }
        };
        if let Some(want) = checksum
            && want != d.digest
        {
            bail!("ADD {url}: checksum mismatch: the content is {} but --checksum={want}", d.digest);
        }
        Ok(d)
    }
}

/// `--checksum=sha256:HEX` as BuildKit accepts it (a digest; slipway knows sha256).
pub fn parse_checksum(value: &str) -> anyhow::Result<String> {
    let Some(hex) = value.strip_prefix("sha256:") else {
        bail!("--checksum={value}: expected sha256:<64 hex digits>");
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        bail!("--checksum={value}: expected sha256:<64 lowercase hex digits>");
    }
    Ok(value.to_string())
}

/// Whether an ADD source is an http(s) URL that BuildKit downloads (not a git URL).
pub fn is_http_source(src: &str) -> bool {
    (src.starts_with("http://") || src.starts_with("https://")) && !is_git_source(src)
}

/// Whether an ADD source is a git repository by BuildKit's rules (`dfgitutil.ParseGitRef`):
/// `git://` and `ssh://` URLs, `user@host:path` (scp-like), `github.com/…`, and
/// `http(s)://` URLs whose path ends with `.git` (a `#ref:subdir` fragment may follow).
pub fn is_git_source(src: &str) -> bool {
    if src.starts_with("git://") || src.starts_with("ssh://") || src.starts_with("github.com/") {
        return true;
    }
    if let Some(rest) = src.strip_prefix("http://").or_else(|| src.strip_prefix("https://")) {
        let rest = rest.split(['#', '?']).next().unwrap_or("");
        let path = rest.split_once('/').map_or("", |(_, p)| p);
        return path.ends_with(".git");
    }
    // scp-like: user@host:path, no scheme, no slash before the colon.
    match src.split_once(':') {
        Some((head, _)) => !head.contains('/') && head.contains('@') && !src.contains("://"),
        None => false,
    }
}

/// The file name BuildKit gives a downloaded URL: the last element of the URL's path
/// (percent-decoded), else `__unnamed__`.
pub fn file_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['#', '?']).next().unwrap_or("");
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    let path = percent_decode(path);
    let base = path.trim_end_matches('/').rsplit('/').next().unwrap_or("").trim().to_string();
    if base.is_empty() || base == "." || base == ".." || base.chars().any(char::is_control) {
        return "__unnamed__".to_string();
    }
    base
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Download `url` to `dest` (created, mode 0600), at most [`MAX_DOWNLOAD_BYTES`] within
/// [`DOWNLOAD_TIMEOUT`], hashing it on the way.
fn fetch(url: &str, dest: &Path) -> anyhow::Result<Download> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_per_read(Some(READ_TIMEOUT))
        .timeout_global(Some(DOWNLOAD_TIMEOUT))
        .user_agent(concat!("slipway/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent();
    let mut response = agent.get(url).call().with_context(|| format!("ADD {url}: downloading"))?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        bail!("ADD {url}: the server answered {status}");
    }
    let mtime =
        response.headers().get("last-modified").and_then(|v| v.to_str().ok()).and_then(parse_http_date).unwrap_or(0);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .with_context(|| format!("creating {}", dest.display()))?;
    let mut reader = response.body_mut().as_reader().take(MAX_DOWNLOAD_BYTES + 1);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = reader.read(&mut buf).with_context(|| format!("ADD {url}: reading the response"))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX_DOWNLOAD_BYTES {
            bail!("ADD {url}: the file is larger than {MAX_DOWNLOAD_BYTES} bytes, the most ADD downloads");
        }
        hash.update(&buf[..n]);
        out.write_all(&buf[..n]).with_context(|| format!("writing {}", dest.display()))?;
    }
    // The file carries its time, as BuildKit's download does; COPY keeps it.
    let t = nix::sys::time::TimeSpec::new(mtime, 0);
    nix::sys::stat::futimens(&out, &t, &t).with_context(|| format!("setting the time of {}", dest.display()))?;
    Ok(Download { path: dest.to_path_buf(), digest: format!("sha256:{}", hex::encode(hash.finalize())) })
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 850's `Sunday, 06-Nov-94 08:49:37
/// GMT`, or asctime's `Sun Nov  6 08:49:37 1994`, the forms Go's `http.ParseTime` reads)
/// as seconds since the epoch.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let words: Vec<&str> = s.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    let (day, month, year, time) = match words.as_slice() {
        [_, d, m, y, t, "GMT"] => (d.parse().ok()?, *m, y.parse::<i64>().ok()?, *t),
        [_, dmy, t, "GMT"] => {
            let mut p = dmy.split('-');
            let (d, m, y) = (p.next()?.parse().ok()?, p.next()?, p.next()?.parse::<i64>().ok()?);
            (
                d,
                m,
                if y < 70 {
                    2000 + y
                } else if y < 100 {
                    1900 + y
                } else {
                    y
                },
                *t,
            )
        }
        [_, m, d, t, y] => (d.parse().ok()?, *m, y.parse::<i64>().ok()?, *t),
        _ => return None,
    };
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let mut hms = time.split(':').map(|x| x.parse::<i64>().ok());
    let (h, mi, se) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86400 + h * 3600 + mi * 60 + se)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_git_from_http_as_buildkit() {
        for (src, git, http) in [
            ("https://example.com/file.tar.gz", false, true),
            ("http://example.com/a/repo.git", true, false),
            ("https://example.com/repo.git#v1:sub", true, false),
            ("git://example.com/repo", true, false),
            ("git@github.com:org/repo.git", true, false),
            ("ssh://git@example.com/repo", true, false),
            ("github.com/org/repo", true, false),
            ("dir/file", false, false),
            ("a:b/c", false, false),
        ] {
            assert_eq!((is_git_source(src), is_http_source(src)), (git, http), "{src}");
        }
    }

    #[test]
    fn names_files_after_the_url_path() {
        assert_eq!(file_name("http://h:8080/a/b/file.txt?x=1#y"), "file.txt");
        assert_eq!(file_name("http://h/a/dir/"), "dir");
        assert_eq!(file_name("http://h/a%20b"), "a b");
        assert_eq!(file_name("http://h"), "__unnamed__");
        assert_eq!(file_name("http://h/"), "__unnamed__");
        assert_eq!(file_name("http://h/x/.."), "__unnamed__");
    }

    #[test]
    fn reads_http_dates() {
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784111777));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(784111777));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(784111777));
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn checksums_are_sha256_digests() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert_eq!(parse_checksum(&ok).unwrap(), ok);
        assert!(parse_checksum("sha256:abc").is_err());
        assert!(parse_checksum(&format!("md5:{}", "a".repeat(64))).is_err());
    }
}
