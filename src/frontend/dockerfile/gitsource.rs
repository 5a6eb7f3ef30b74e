//! `ADD <git URL>`: a repository fetched with the `git` CLI (as `stapel::git_apply` and
//! `git::diff` use it), bounded in time, at the commit the plan resolved.
//!
//! BuildKit's forms: `git://host/repo`, `http(s)://host/repo.git`, each with an optional
//! `#ref:subdir` fragment. The plan resolves the ref to a commit (`git ls-remote`), which
//! is what the step's digest holds, as BuildKit's cache key; the step fetches that ref
//! (depth 1), checks it is still that commit, and copies the tree (or `subdir`) without
//! `.git` unless `--keep-git-dir`. `ssh://`, `user@host:path` and `github.com/…` need
//! credentials or are deprecated: refused, as are the `?ref=` query forms.

use anyhow::{Context, bail};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `git ls-remote` or the fetch and checkout of one repository may take.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The most `git ls-remote` output read.
const MAX_LS_REMOTE_BYTES: usize = 64 << 20;
/// The largest file git may write for a remote (its pack): 8 GiB.
const MAX_GIT_FILE_BYTES: u64 = 8 << 30;

/// A parsed git source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    pub remote: String,
    /// The ref of the fragment (`#ref`), else the remote's HEAD.
    pub reference: Option<String>,
    /// The directory of the fragment (`#ref:dir`), "" for the whole tree.
    pub subdir: String,
}

impl GitSource {
    pub fn parse(src: &str) -> anyhow::Result<GitSource> {
        if !(src.starts_with("git://") || src.starts_with("http://") || src.starts_with("https://")) {
            bail!(
                "ADD {src}: only git://, http:// and https:// repositories are supported (no ssh or scp-like forms yet)"
            );
        }
        let (remote, fragment) = src.split_once('#').unwrap_or((src, ""));
        if remote.contains('?') {
            bail!("ADD {src}: the ?ref=/?subdir= query forms are not supported yet: use #ref:subdir");
        }
        let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
        if reference.starts_with('-') || reference.chars().any(|c| c.is_whitespace() || c.is_control()) {
            bail!("ADD {src}: invalid ref {reference:?}");
        }
        let subdir = crate::project::join_rel("", subdir);
        Ok(GitSource {
            remote: remote.to_string(),
            reference: (!reference.is_empty()).then(|| reference.to_string()),
            subdir,
        })
    }

    /// The commit the ref names now (`git ls-remote`); a full commit id is taken as is.
    pub fn resolve(&self) -> anyhow::Result<String> {
        if let Some(r) = &self.reference
            && is_commit_id(r)
        {
            return Ok(r.clone());
        }
        let out = git(None, &["ls-remote", "--", &self.remote], &self.remote)?;
        let want = self.reference.as_deref().unwrap_or("HEAD");
        let refs: Vec<(&str, &str)> = out.lines().filter_map(|l| l.split_once('\t')).collect();
        let find = |name: &str| refs.iter().find(|(_, n)| *n == name).map(|(id, _)| id.to_string());
        let found = if want == "HEAD" {
            find("HEAD")
        } else {
            find(&format!("refs/tags/{want}^{{}}"))
                .or_else(|| find(&format!("refs/tags/{want}")))
                .or_else(|| find(&format!("refs/heads/{want}")))
                .or_else(|| find(want))
        };
        found.with_context(|| format!("ADD {}: no ref {want} in the repository", self.remote))
    }

    /// Fetch `commit` (through the ref it was resolved from) into `dir` and check it out
    /// there; `.git` is removed unless `keep_git_dir`. Returns the commit's time.
    pub fn checkout(&self, commit: &str, dir: &Path, keep_git_dir: bool) -> anyhow::Result<i64> {
        let d = dir.to_str().context("a scratch path that is not UTF-8")?;
        git(None, &["init", "-q", d], &self.remote)?;
        let what = self.reference.as_deref().unwrap_or("HEAD");
        git(Some(dir), &["fetch", "-q", "--depth=1", "--no-tags", "--", &self.remote, what], &self.remote)?;
        let fetched = git(Some(dir), &["rev-parse", "FETCH_HEAD^{commit}"], &self.remote)?;
        if fetched.trim() != commit {
            bail!(
                "ADD {}#{what}: the ref moved to {} since the build was planned at {commit}: build again",
                self.remote,
                fetched.trim()
            );
        }
        git(Some(dir), &["-c", "core.symlinks=true", "checkout", "-q", "--detach", commit], &self.remote)?;
        let time = git(Some(dir), &["log", "-1", "--format=%ct", commit], &self.remote)?;
        let time = time.trim().parse::<i64>().with_context(|| format!("reading the time of commit {commit}"))?;
        if !keep_git_dir {
            slipway_storage::remove::remove_tree(&dir.join(".git")).context("removing the fetched .git")?;
        }
        Ok(time)
    }
}

fn is_commit_id(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Run `git ARGS` (in `cwd`) with only the network transports BuildKit's forms use.
fn git(cwd: Option<&Path>, args: &[&str], remote: &str) -> anyhow::Result<String> {
    let protocols = ["-c", "protocol.allow=never", "-c", "protocol.git.allow=always"];
    let http = ["-c", "protocol.http.allow=always", "-c", "protocol.https.allow=always"];
    let all: Vec<&str> = protocols.iter().chain(&http).chain(args).copied().collect();
    run_git(cwd, &all, &[], &format!("ADD {remote}"), GIT_TIMEOUT)
}

/// Run `git ARGS` (in `cwd`) without prompts, without the system's or the user's
/// configuration or `GIT_*` environment, with `env` added, within `timeout`; its stdout
/// (at most [`MAX_LS_REMOTE_BYTES`]). Errors start with `who` and end with git's stderr
/// on one line.
pub(crate) fn run_git(
    cwd: Option<&Path>,
    args: &[&str],
    env: &[(&str, &str)],
    who: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let mut cmd = Command::new("git");
    // Nothing of the caller's git environment (GIT_DIR, GIT_CONFIG_PARAMETERS,
    // GIT_SSH_COMMAND, alternates, ...) reaches it.
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_none_or(|k| k.starts_with("GIT_")) {
            cmd.env_remove(&k);
        }
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env_remove("SSH_ASKPASS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    // A remote is untrusted: the pack (or any file) it makes git write is bounded, as
    // the time is.
    slipway_runtime::rlimit::limit_file_size(&mut cmd, MAX_GIT_FILE_BYTES);
    let mut child = cmd.spawn().context("running git (is it installed?)")?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::Read::take(&mut stdout, MAX_LS_REMOTE_BYTES as u64), &mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::Read::take(&mut stderr, 64 << 10), &mut buf);
        buf
    });
    let command = args.iter().find(|a| !a.starts_with('-') && !a.contains('=')).copied().unwrap_or("");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{who}: git {command} took longer than {} s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if std::os::unix::process::ExitStatusExt::signal(&status) == Some(libc::SIGXFSZ) {
        bail!("{who}: git {command} stopped: the remote sent more than {} GiB in one file", MAX_GIT_FILE_BYTES >> 30);
    }
    if !status.success() {
        let err = String::from_utf8_lossy(&err);
        let lines: Vec<&str> = err.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        bail!("{who}: git {command} failed: {}", lines.join(" "));
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildkit_fragments() {
        let g = GitSource::parse("https://h/r.git#v1.2:sub/dir").unwrap();
        assert_eq!(
            (g.remote.as_str(), g.reference.as_deref(), g.subdir.as_str()),
            ("https://h/r.git", Some("v1.2"), "sub/dir")
        );
        let g = GitSource::parse("git://h/r").unwrap();
        assert_eq!((g.reference, g.subdir.as_str()), (None, ""));
        let g = GitSource::parse("git://h/r#:../x").unwrap();
        assert_eq!(g.subdir, "x");
        assert!(GitSource::parse("git@h:r.git").is_err());
        assert!(GitSource::parse("https://h/r.git?ref=v1").is_err());
        assert!(GitSource::parse("git://h/r#--upload-pack=x").is_err());
    }
}
