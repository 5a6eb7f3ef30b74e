//! The repositories of an image's `git` mappings ([`sources`]): the project's own, and
//! for remote mappings (`git: - url:`) a bare cache repository per URL in the store,
//! fetched as werf's `git_repo.Remote` refreshes its clone, at the commit werf takes.
//!
//! - the commit: `commit:` as given (fetched only when the cache does not have it yet),
//!   `tag:` the tag's commit, `branch:` the branch's latest commit, none of them the
//!   remote's default branch (its `HEAD`), as werf's `GitMapping.getCommit`;
//! - `branch:`, and no ref at all (werf's "master branch by default"), need
//!   `config.stapel.git.allowBranch` in werf-giterminism.yaml (or loose giterminism),
//!   else werf's refusal;
//! - the cache: `<store>/git-repos/<sha256 of the URL>`, a bare repository, locked per
//!   URL while it is fetched; `git fetch` runs with only the `http(s)`, `git` and `file`
//!   transports (`refuse.rs` refuses ssh), no prompt, no credential helper but
//!   `basicAuth`'s, no hooks, no user or system configuration, and a time limit
//!   ([`FETCH_TIMEOUT`]); only the ref asked for is fetched;
//! - `basicAuth`: `username` and `password.value` (`refuse.rs` refuses `env` and `src`:
//!   werf.yaml's `{{ env "NAME" }}`, which giterminism gates, gives a value from the
//!   environment) reach git through a credential helper that prints them from its
//!   environment, never on a command line.
//!
//! What the remote holds is untrusted as the own repository is: the mappings read it
//! through [`Repo`] (names checked, paths inside `add`, symlinks as data).

use super::git::{LOCAL_REPO_NAME, Source};
use crate::config::{BasicAuth, GitMapping, GitRef, GitSource, PasswordSource};
use crate::engine::Job;
use crate::git::Repo;
use anyhow::{Context, bail};
use sha2::{Digest as _, Sha256};
use std::path::Path;
use std::time::Duration;

/// How long one `git fetch` of a remote may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The transports a remote `url` may use.
const SCHEMES: [&str; 4] = ["https://", "http://", "git://", "file://"];

/// The sources of an image's mappings, in order of first use, and the index of each
/// mapping's source. Remote repositories are fetched here.
pub fn sources(job: &Job<'_>, git: &[GitMapping]) -> anyhow::Result<(Vec<Source>, Vec<usize>)> {
    let mut keys: Vec<&GitSource> = Vec::new();
    let mut sources: Vec<Source> = Vec::new();
    let mut of = Vec::with_capacity(git.len());
    for g in git {
        if let Some(i) = keys.iter().position(|k| *k == &g.source) {
            of.push(i);
            continue;
        }
        let source = match &g.source {
            GitSource::Local => Source {
                repo: job.repo.clone(),
                head: job.run.commit.id.clone(),
                full_name: LOCAL_REPO_NAME.to_string(),
                refs: Default::default(),
                shown: "the project's repository".to_string(),
            },
            GitSource::Remote { url, reference, basic_auth } => {
                check_branch_allowed(job, g.line, reference.as_ref())?;
                remote(job, g.line, url, reference.as_ref(), basic_auth.as_ref())?
            }
        };
        keys.push(&g.source);
        sources.push(source);
        of.push(sources.len() - 1);
    }
    Ok((sources, of))
}

/// werf's giterminism check of a remote mapping on a branch (`branch:` or no ref).
fn check_branch_allowed(job: &Job<'_>, line: usize, reference: Option<&GitRef>) -> anyhow::Result<()> {
    if matches!(reference, Some(GitRef::Tag(_) | GitRef::Commit(_))) {
        return Ok(());
    }
    if job.run.mount_allow.is_some_and(|g| !g.config.stapel.git.allow_branch) {
        bail!(
            "werf.yaml:{line}: git branch directive not allowed by giterminism: a remote git mapping on a branch \
             (the remote's default branch when no branch, tag or commit is given) puts the branch's latest commit \
             into the stage digests, so a new commit there makes every earlier build unusable; to allow it, set \
             config.stapel.git.allowBranch: true in werf-giterminism.yaml (or map a tag or a commit)"
        );
    }
    Ok(())
}

/// The remote `url`'s cache, fetched as `reference` needs, and the commit it names.
fn remote(
    job: &Job<'_>,
    line: usize,
    url: &str,
    reference: Option<&GitRef>,
    auth: Option<&BasicAuth>,
) -> anyhow::Result<Source> {
    let at = || format!("werf.yaml:{line}: git url {url}");
    if !SCHEMES.iter().any(|s| url.starts_with(s)) || url.starts_with('-') {
        bail!("{}: only https://, http://, git:// and file:// urls are supported", at());
    }
    let refs: [String; 3] = match reference {
        Some(GitRef::Branch(b)) => [check_ref(b).with_context(at)?.to_string(), String::new(), String::new()],
        Some(GitRef::Tag(t)) => [String::new(), check_ref(t).with_context(at)?.to_string(), String::new()],
        Some(GitRef::Commit(c)) => {
            if c.len() != 40 || !c.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                bail!("{}: commit {c:?} is not a full commit id (40 lowercase hex digits)", at());
            }
            [String::new(), String::new(), c.clone()]
        }
        None => Default::default(),
    };
    let hash = hex::encode(Sha256::digest(url));
    let dir = job.run.store.root().join("git-repos").join(&hash);
    let _lock = job.run.store.lock(&format!("git-repo-{hash}")).with_context(at)?;
    if !dir.join("HEAD").exists() {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        git(&dir, &["init", "--bare", "-q"], &[], url).with_context(at)?;
    }
    let repo = Repo::open_bare(&dir).with_context(at)?;
    let (specs, rev): (Vec<String>, String) = match reference {
        Some(GitRef::Commit(c)) if repo.has_commit(c) => (Vec::new(), c.clone()),
        Some(GitRef::Commit(c)) => {
            (vec!["+refs/heads/*:refs/heads/*".into(), "+refs/tags/*:refs/tags/*".into()], c.clone())
        }
        Some(GitRef::Branch(b)) => (vec![format!("+refs/heads/{b}:refs/heads/{b}")], format!("refs/heads/{b}")),
        Some(GitRef::Tag(t)) => (vec![format!("+refs/tags/{t}:refs/tags/{t}")], format!("refs/tags/{t}")),
        None => (vec!["+HEAD:refs/slipway/remote-HEAD".into()], "refs/slipway/remote-HEAD".into()),
    };
    // Once per run and refspecs: images mapping one branch all see the same commit.
    let done = format!("{hash} {}", specs.join(" "));
    let fetched = || job.run.git_fetched.lock().unwrap_or_else(|p| p.into_inner()).contains(&done);
    if !specs.is_empty() && !fetched() {
        job.run.log.info(&format!("{}/git: fetching {url} {}", job.shown, specs.join(" ")));
        fetch(&dir, url, &specs, auth).with_context(at)?;
        job.run.git_fetched.lock().unwrap_or_else(|p| p.into_inner()).insert(done);
    }
    // A fresh handle: the fetch wrote packs the one above has not seen.
    let repo = Repo::open_bare(&dir).with_context(at)?;
    let head = repo.commit_id(&rev).map_err(|_| match reference {
        Some(GitRef::Commit(c)) => anyhow::anyhow!(
            "{}: commit {c} not found in the repository; ensure it has not been squashed or rebased",
            at()
        ),
        Some(GitRef::Tag(t)) => anyhow::anyhow!("{}: no tag {t} in the repository", at()),
        Some(GitRef::Branch(b)) => anyhow::anyhow!("{}: no branch {b} in the repository", at()),
        None => anyhow::anyhow!("{}: the repository has no default branch (HEAD)", at()),
    })?;
    let id = repository_id(url);
    Ok(Source { repo, head, full_name: format!("{id}_{id}"), refs, shown: url.to_string() })
}

/// A branch or tag name as a ref name: no option, no pattern, nothing git refuses.
fn check_ref(name: &str) -> anyhow::Result<&str> {
    let bad = name.is_empty()
        || name.starts_with(['-', '/'])
        || name.ends_with(['/', '.'])
        || name.contains("..")
        || name.contains("//")
        || name.contains("@{")
        || name.chars().any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c));
    if bad {
        bail!("{name:?} is not a valid branch or tag name");
    }
    Ok(name)
}

/// `git fetch URL SPECS` into the cache `dir`, bounded and without anything of the
/// user's git setup.
fn fetch(dir: &Path, url: &str, specs: &[String], auth: Option<&BasicAuth>) -> anyhow::Result<()> {
    let mut args = vec!["-c", "protocol.allow=never"];
    for p in ["protocol.file.allow=always", "protocol.git.allow=always", "protocol.http.allow=always"] {
        args.extend(["-c", p]);
    }
    args.extend([
        "-c",
        "protocol.https.allow=always",
        "-c",
        "core.hooksPath=/dev/null",
        "-c",
        "credential.helper=",
        "-c",
        "gc.auto=0",
        "-c",
        "http.lowSpeedLimit=1024",
        "-c",
        "http.lowSpeedTime=60",
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        "--no-recurse-submodules",
        "--update-head-ok",
        "--",
        url,
    ]);
    args.extend(specs.iter().map(String::as_str));
    let mut env = Vec::new();
    if let Some(a) = auth {
        // After `credential.helper=` (which drops every helper before it), the one that
        // answers `get` with the username and password from its environment.
        let at = args.iter().position(|a| *a == "fetch").expect("fetch is there");
        args.splice(at..at, ["-c", CREDENTIAL_HELPER]);
        let password = match &a.password {
            Some(PasswordSource::Value(v)) => v.as_str(),
            None => "",
            Some(_) => bail!("basicAuth.password: only `value` is supported"),
        };
        let username = a.username.as_deref().unwrap_or("");
        if [username, password].iter().any(|v| v.contains(['\n', '\0'])) {
            bail!("basicAuth: a username or password with a newline cannot be given to git");
        }
        env.push(("SLIPWAY_GIT_USERNAME", username));
        env.push(("SLIPWAY_GIT_PASSWORD", password));
    }
    git(dir, &args, &env, url)
}

/// git's credential helper for `basicAuth` (run by `sh`, the variables set for git only).
const CREDENTIAL_HELPER: &str = "credential.helper=!f() { test \"$1\" = get || exit 0; \
                                 printf 'username=%s\\npassword=%s\\n' \"$SLIPWAY_GIT_USERNAME\" \"$SLIPWAY_GIT_PASSWORD\"; }; f";

fn git(dir: &Path, args: &[&str], env: &[(&str, &str)], url: &str) -> anyhow::Result<()> {
    let d = format!("--git-dir={}", dir.to_str().context("a store path that is not UTF-8")?);
    let all: Vec<&str> = [d.as_str()].into_iter().chain(args.iter().copied()).collect();
    let who = format!("fetching {url}");
    crate::frontend::dockerfile::gitsource::run_git(Some(dir), &all, env, &who, FETCH_TIMEOUT)?;
    Ok(())
}

/// werf's `getRepositoryID`: the last two path parts of the URL without `.git`
/// (`https://github.com/golang/example.git` → `golang/example`), the URL itself when it
/// has no such parts; the regular expression `(?U).*?[:/](.*/[^/ ]+)(\.git)?/?$`.
pub fn repository_id(url: &str) -> String {
    // `(?U)` makes the prefix greedy: the last `:` or `/` after which the rest matches.
    for (p, _) in url.char_indices().rev().filter(|(_, c)| *c == ':' || *c == '/') {
        let rest = &url[p + 1..];
        let body = rest.strip_suffix('/').unwrap_or(rest);
        let Some((dir, last)) = body.rsplit_once('/') else { continue };
        if last.is_empty() || last.contains(' ') || rest.contains('\n') {
            continue;
        }
        let last = last.strip_suffix(".git").filter(|l| !l.is_empty()).unwrap_or(last);
        return format!("{dir}/{last}");
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_ids_are_werfs() {
        let cases = [
            ("https://github.com/golang/example", "golang/example"),
            ("https://github.com/golang/example.git", "golang/example"),
            ("https://github.com/golang/example.git/", "golang/example"),
            ("git@github.com:werf/werf.git", "werf/werf"),
            ("git://127.0.0.1:9418/repo.git", "9418/repo"),
            ("file:///tmp/x/repo.git", "x/repo"),
            ("https://host/group/sub/repo.git", "sub/repo"),
            ("repo", "repo"),
        ];
        for (url, id) in cases {
            assert_eq!(repository_id(url), id, "{url}");
        }
    }

    #[test]
    fn ref_names_are_checked() {
        for ok in ["main", "release/1.x", "v1.2.3"] {
            assert!(check_ref(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a..b", "a b", "a:b", "x/", "a*", "--upload-pack=x"] {
            assert!(check_ref(bad).is_err(), "{bad}");
        }
    }
}
