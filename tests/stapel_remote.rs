//! Stapel remote `git` mappings (`git: - url:`), built end to end as the unprivileged
//! user from repositories served by `git daemon` on 127.0.0.1 and by `file://`.

use crate::common::{Env, GitDaemon, git, git_cmd, git_project, registry, rootless_env, run_ok, stderr, stdout, write};
use crate::stapel::build_app;
use std::path::Path;

fn rev_parse(dir: &Path, rev: &str) -> String {
    let out = git_cmd(dir, &["rev-parse", rev]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

const ALLOW_BRANCH: &str = "giterminismConfigVersion: 1\nconfig:\n  stapel:\n    git:\n      allowBranch: true\n";

/// A local mapping beside remote ones on a tag (git://), a commit (file://), a branch
/// (git://) and the default branch (file://; both allowed by werf-giterminism.yaml): the files are in the image with
/// their owners; a second build is fully cached; a new commit on the remote branch adds
/// only a gitLatestPatch stage that changes that mapping's files, as does a new local
/// commit for the local one; a branch without `allowBranch` is refused with werf's
/// reason.
#[test]
fn remote_git_mappings_are_fetched_archived_and_patched_per_repository() {
    let test = "remote_git_mappings_are_fetched_archived_and_patched_per_repository";
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else {
        return;
    };
    let env = Env::new();
    // The remote: lib/a.txt, lib/skip.md, lib/sub/b.txt, tagged v1; served bare.
    let work = env.path().join("remote-work");
    git_project(&work, &[("lib/a.txt", "a1\n"), ("lib/skip.md", "md\n"), ("lib/sub/b.txt", "b1\n")], &[]);
    git(&work, &["tag", "v1"]);
    let c1 = rev_parse(&work, "HEAD");
    let repos = env.path().join("repos");
    let bare = repos.join("lib.git");
    git(&work, &["clone", "-q", "--bare", work.to_str().unwrap(), bare.to_str().unwrap()]);
    let daemon = GitDaemon::start(&repos);
    let url = format!("git://{}/lib.git", daemon.addr);

    let dir = env.path().join("project");
    let werf_yaml = format!(
        r#"project: demo
configVersion: 1
---
image: app
from: {reg}/base/busybox
git:
- add: /src
  to: /app
- url: {url}
  tag: v1
  add: /lib
  to: /vendor/tagged
  owner: nobody
  excludePaths: "*.md"
- url: file://{bare}
  commit: {c1}
  to: /vendor/pinned
  includePaths: [lib/a.txt]
- url: {url}
  branch: main
  add: /lib
  to: /vendor/branch
  stageDependencies:
    install: sub
- url: file://{bare}
  add: /lib/sub
  to: /vendor/head
shell:
  install: cat /vendor/branch/sub/b.txt > /installed.txt
"#,
        bare = bare.display()
    );
    let files = [("werf.yaml", werf_yaml.as_str()), ("werf-giterminism.yaml", ALLOW_BRANCH), ("src/l.txt", "l1\n")];
    git_project(&dir, &files, &[]);
    let build = || build_app(&env, &dir);
    let sh = |script: &str| {
        let out = run_ok(env.slipway().args(["run", "app", "--dir"]).arg(&dir).args(["--", "/bin/sh", "-c", script]));
        stdout(&out)
    };
    const FILES: &str = "cd / && find app vendor -type f | sort | xargs -n1 sh -c 'echo \"$0 $(cat $0)\"'; \
                         cat /installed.txt";

    let (log, names, built) = build();
    assert_eq!(names, ["from", "gitArchive", "install"], "{log}");
    assert_eq!(built.len(), 3, "{log}");
    assert_eq!(
        sh(FILES),
        "app/l.txt l1\nvendor/branch/a.txt a1\nvendor/branch/skip.md md\nvendor/branch/sub/b.txt b1\n\
         vendor/head/b.txt b1\nvendor/pinned/lib/a.txt a1\nvendor/tagged/a.txt a1\nvendor/tagged/sub/b.txt b1\nb1\n"
    );
    assert_eq!(
        sh("stat -c '%u:%g %n' /vendor/tagged/a.txt /vendor/tagged/sub /vendor/pinned/lib/a.txt"),
        "65534:65534 /vendor/tagged/a.txt\n65534:65534 /vendor/tagged/sub\n0:0 /vendor/pinned/lib/a.txt\n"
    );

    // Nothing changed anywhere: fully cached.
    let (log, _, built) = build();
    assert!(built.is_empty(), "{log}");

    // A new commit on the remote branch: gitLatestPatch only, with that mapping's
    // changes (the tag and the commit stay where they were).
    write(&work, "lib/a.txt", "a2\n");
    git(&work, &["rm", "-q", "lib/skip.md"]);
    git(&work, &["commit", "-q", "-am", "a2"]);
    git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    let (log, names, built) = build();
    assert_eq!(names, ["from", "gitArchive", "install", "gitLatestPatch"], "{log}");
    assert_eq!(built.len(), 1, "{log}");
    assert!(built[0].contains("gitLatestPatch"), "{log}");
    assert_eq!(
        sh(FILES),
        "app/l.txt l1\nvendor/branch/a.txt a2\nvendor/branch/sub/b.txt b1\n\
         vendor/head/b.txt b1\nvendor/pinned/lib/a.txt a1\nvendor/tagged/a.txt a1\nvendor/tagged/sub/b.txt b1\nb1\n"
    );
    let (log, _, built) = build();
    assert!(built.is_empty(), "{log}");

    // A local commit: the local mapping's changes on top, in a new gitLatestPatch.
    write(&dir, "src/l.txt", "l2\n");
    git(&dir, &["commit", "-q", "-am", "l2"]);
    let (log, names, built) = build();
    assert_eq!(names, ["from", "gitArchive", "install", "gitLatestPatch"], "{log}");
    assert_eq!(built.len(), 1, "{log}");
    assert_eq!(sh("cat /app/l.txt /vendor/branch/a.txt"), "l2\na2\n");

    // A change in the remote branch's install dependency rebuilds install on the
    // patched files.
    write(&work, "lib/sub/b.txt", "b2\n");
    git(&work, &["commit", "-q", "-am", "b2"]);
    git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    let (log, names, built) = build();
    assert_eq!(names, ["from", "gitArchive", "install"], "{log}");
    assert_eq!(built.len(), 1, "{log}");
    assert!(built[0].contains("install"), "{log}");
    assert_eq!(sh("cat /installed.txt /vendor/head/b.txt /vendor/tagged/sub/b.txt"), "b2\nb2\nb1\n");

    // Without allowBranch, the branch mapping is refused with werf's reason.
    git(&dir, &["rm", "-q", "werf-giterminism.yaml"]);
    git(&dir, &["commit", "-q", "-m", "strict"]);
    let out = env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&dir).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        "Error: image app (werf.yaml:4): werf.yaml:19: git branch directive not allowed by giterminism: a remote \
         git mapping on a branch (the remote's default branch when no branch, tag or commit is given) puts the \
         branch's latest commit into the stage digests, so a new commit there makes every earlier build unusable; \
         to allow it, set config.stapel.git.allowBranch: true in werf-giterminism.yaml (or map a tag or a commit)\n"
    );
}

/// A remote that cannot be reached, or a tag it does not have, fails in one line naming
/// the werf.yaml line and the url, without waiting.
#[test]
fn unreachable_remotes_and_missing_refs_fail_in_one_line() {
    let test = "unreachable_remotes_and_missing_refs_fail_in_one_line";
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else {
        return;
    };
    let env = Env::new();
    let work = env.path().join("remote-work");
    git_project(&work, &[("a.txt", "a\n")], &[]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cases = [
        (
            format!("git://127.0.0.1:{port}/none.git\n  tag: v1"),
            format!(
                "fetching git://127.0.0.1:{port}/none.git: git fetch failed: fatal: unable to connect to 127.0.0.1:"
            ),
        ),
        (
            format!("file://{}\n  tag: v9", work.display()),
            "git fetch failed: fatal: couldn't find remote ref refs/tags/v9".to_string(),
        ),
    ];
    for (remote, want) in cases {
        let dir = env.path().join("project");
        let _ = std::fs::remove_dir_all(&dir);
        let werf_yaml = format!(
            "project: demo\nconfigVersion: 1\n---\nimage: app\nfrom: {reg}/base/busybox\ngit:\n- url: {remote}\n  to: /x\n"
        );
        git_project(&dir, &[("werf.yaml", &werf_yaml)], &[]);
        let started = std::time::Instant::now();
        let out = env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&dir).output().unwrap();
        assert!(started.elapsed().as_secs() < 60);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("Error: image app (werf.yaml:4): werf.yaml:7: git url "), "{err}");
        assert!(err.contains(&want), "{err}");
    }
}

/// A dumb-HTTP git server on 127.0.0.1 serving the files under `root` to requests with
/// `Authorization: Basic <auth>`, 401 to the others. Returns its `host:port`.
fn serve_with_basic_auth(root: std::path::PathBuf, auth: &'static str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut out) = conn else { continue };
            let root = root.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(out.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let path = target.split('?').next().unwrap().trim_start_matches('/').to_string();
                    let mut authorized = false;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                        let h = h.trim_end();
                        if h.to_ascii_lowercase().starts_with("authorization:") && h.ends_with(&format!("Basic {auth}"))
                        {
                            authorized = true;
                        }
                    }
                    let (status, extra, body) = if !authorized {
                        ("401 Unauthorized", "WWW-Authenticate: Basic realm=\"git\"\r\n", Vec::new())
                    } else {
                        match std::fs::read(root.join(&path)) {
                            Ok(b) if !path.contains("..") => ("200 OK", "", b),
                            _ => ("404 Not Found", "", Vec::new()),
                        }
                    };
                    let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}\r\n", body.len());
                    if out.write_all(head.as_bytes()).and_then(|_| out.write_all(&body)).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// `basicAuth` with `password.value` reaches an http remote through git's credential
/// helper: a wrong password fails in one line, the right one builds; `password.env` is
/// refused in one line. An image with only remote mappings builds with `--dev`.
#[test]
fn basic_auth_reaches_an_http_remote() {
    let test = "basic_auth_reaches_an_http_remote";
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else {
        return;
    };
    let env = Env::new();
    let work = env.path().join("remote-work");
    git_project(&work, &[("lib/a.txt", "secret-a\n")], &[]);
    git(&work, &["tag", "v1"]);
    let repos = env.path().join("repos");
    let bare = repos.join("lib.git");
    git(&work, &["clone", "-q", "--bare", work.to_str().unwrap(), bare.to_str().unwrap()]);
    git(&bare, &["update-server-info"]);
    // slipway:s3cret
    let addr = serve_with_basic_auth(repos, "c2xpcHdheTpzM2NyZXQ=");
    let dir = env.path().join("project");
    let project = |password: &str| {
        let _ = std::fs::remove_dir_all(&dir);
        let werf_yaml = format!(
            "project: demo\nconfigVersion: 1\n---\nimage: app\nfrom: {reg}/base/busybox\ngit:\n\
             - url: http://{addr}/lib.git\n  tag: v1\n  add: /lib\n  to: /lib\n  basicAuth:\n    username: slipway\n\
             \x20   password: {password}\n"
        );
        git_project(&dir, &[("werf.yaml", &werf_yaml)], &[]);
        env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&dir).output().unwrap()
    };
    let out = project("{value: wrong}");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "Error: image app (werf.yaml:4): werf.yaml:7: git url http://{addr}/lib.git: fetching http://{addr}/lib.git: \
             git fetch failed: fatal: Authentication failed"
        )),
        "{err}"
    );
    let out = project("{env: GIT_PASSWORD}");
    assert_eq!(
        stderr(&out),
        "Error: image app (werf.yaml:7): git basicAuth.password: only `value` is supported (`env` and `src` are not \
         yet); `value: {{ env \"NAME\" }}` reads a variable werf-giterminism.yaml allows\n"
    );
    let out = project("{value: s3cret}");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run_ok(env.slipway().args(["run", "app", "--dir"]).arg(&dir).args(["--", "cat", "/lib/a.txt"]));
    assert_eq!(stdout(&out), "secret-a\n");
    // Remote mappings do not read the working tree: `--dev` builds the image (found
    // whole).
    let out = run_ok(env.slipway().args(["build", "--dev", "--insecure-registry", "--dir"]).arg(&dir));
    assert!(!stdout(&out).contains("built in"), "{}", stdout(&out));
}

/// Two images mapping one remote branch: the run fetches it once, and both images get
/// the commit that fetch left (a commit pushed meanwhile could not split them).
#[test]
fn a_remote_mapped_by_two_images_is_fetched_once_per_build() {
    let test = "a_remote_mapped_by_two_images_is_fetched_once_per_build";
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else {
        return;
    };
    let env = Env::new();
    let work = env.path().join("remote-work");
    git_project(&work, &[("lib/a.txt", "a1\n")], &[]);
    let bare = env.path().join("lib.git");
    git(&work, &["clone", "-q", "--bare", work.to_str().unwrap(), bare.to_str().unwrap()]);
    let image = |name: &str| {
        format!(
            "---\nimage: {name}\nfrom: {reg}/base/busybox\ngit:\n- url: file://{}\n  branch: main\n  add: /lib\n  to: /lib\n",
            bare.display()
        )
    };
    let werf_yaml = format!("project: twice\nconfigVersion: 1\n{}{}", image("one"), image("two"));
    let dir = env.path().join("project");
    git_project(&dir, &[("werf.yaml", werf_yaml.as_str()), ("werf-giterminism.yaml", ALLOW_BRANCH)], &[]);
    let out = run_ok(env.slipway().args(["build", "--insecure-registry", "--log-verbose", "--dir"]).arg(&dir));
    let log = format!("{}{}", stdout(&out), stderr(&out));
    let fetches = log.lines().filter(|l| l.contains("/git: fetching file://")).count();
    assert_eq!(fetches, 1, "{log}");
    for name in ["one", "two"] {
        let mut cmd = env.slipway();
        cmd.args(["run", name, "--dir"]).arg(&dir).args(["--", "cat", "/lib/a.txt"]);
        assert_eq!(stdout(&run_ok(&mut cmd)), "a1\n");
    }
}
