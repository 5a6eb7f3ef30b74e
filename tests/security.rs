//! The hostile corpus: repository content and build steps that try to read the host or
//! write outside the store, run as the unprivileged user against the real registry. Each
//! test asserts the exact refusal or the exact harmless result, and that nothing leaked.

use crate::common::{Env, git, git_cmd, git_project, registry, rootless_env, run_ok, stderr, stdout};
use std::path::Path;

const SECRET: &str = "host-secret-3f1c9a";

/// A directory outside the project that an attacker would like to read: `<test>/host`
/// with `key` holding [`SECRET`].
fn host_secret(env: &Env) -> std::path::PathBuf {
    let host = env.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("key"), SECRET).unwrap();
    host
}

/// Every entry under `dir`, symlinks not followed.
fn entries_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
            out.push(e.path());
        }
    }
    out
}

/// A regular file under `dir` (symlinks not followed) that holds [`SECRET`], if any.
fn leaked(dir: &Path) -> Option<std::path::PathBuf> {
    entries_under(dir).into_iter().find(|p| {
        std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file())
            && std::fs::read(p).is_ok_and(|b| b.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()))
    })
}

#[test]
fn committed_symlinks_are_copied_as_symlinks_never_followed() {
    let t = "committed_symlinks_are_copied_as_symlinks_never_followed";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let host = host_secret(&env);
    let dir = env.path().join("project");
    let df = format!("FROM {reg}/base/busybox:latest\nCOPY . /ctx/\nCOPY sub/ /s/\n");
    git_project(
        &dir,
        &[
            ("werf.yaml", "project: links\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\n"),
            ("Dockerfile", &df),
        ],
        &[],
    );
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::os::unix::fs::symlink(&host, dir.join("sub/loot")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("sub/x")).unwrap();
    std::os::unix::fs::symlink("/", dir.join("sub/b")).unwrap();
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "links"]);

    let show = "for f in /ctx/sub/b /ctx/sub/loot /ctx/sub/x /s/b /s/loot /s/x; do echo \"$f $(stat -c %F $f) $(readlink $f)\"; done; cat /s/loot/key 2>&1 || true";
    let out = run_ok(
        env.slipway().args(["run", "--insecure-registry", "--dir"]).arg(&dir).args(["--", "/bin/sh", "-c", show]),
    );
    let h = host.display();
    assert_eq!(
        stdout(&out),
        format!(
            "/ctx/sub/b symbolic link /\n/ctx/sub/loot symbolic link {h}\n/ctx/sub/x symbolic link /etc/passwd\n\
             /s/b symbolic link /\n/s/loot symbolic link {h}\n/s/x symbolic link /etc/passwd\n\
             cat: can't open '/s/loot/key': No such file or directory\n"
        )
    );
    assert_eq!(leaked(&env.path().join("data")), None, "the host secret reached the store");
}

#[test]
fn copy_from_a_stage_never_follows_a_symlink_the_step_made() {
    let t = "copy_from_a_stage_never_follows_a_symlink_the_step_made";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let host = host_secret(&env);
    let dir = env.path().join("project");
    let h = host.display();
    let df = format!(
        "FROM {reg}/base/busybox:latest AS build\nRUN mkdir -p /out/d && ln -s {h} /out/loot && ln -s {h}/key /out/d/k && ln -s / /out/root \\\n && mkdir /out/many && cd /out/many && for i in $(seq 1500); do : > f$i; done\n\
         FROM {reg}/base/busybox:latest\nCOPY --from=build /out/ /x/\nCOPY --from=build /out/d /y/\n"
    );
    git_project(
        &dir,
        &[
            ("werf.yaml", "project: stagelinks\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\n"),
            ("Dockerfile", &df),
        ],
        &[],
    );
    let show = "for f in /x/loot /x/d/k /x/root /y/k; do echo \"$f $(stat -c %F $f) $(readlink $f)\"; done; ls /x/many | wc -l";
    let out = run_ok(
        env.slipway().args(["run", "--insecure-registry", "--dir"]).arg(&dir).args(["--", "/bin/sh", "-c", show]),
    );
    assert_eq!(
        stdout(&out),
        format!(
            "/x/loot symbolic link {h}\n/x/d/k symbolic link {h}/key\n/x/root symbolic link /\n/y/k symbolic link {h}/key\n1500\n"
        )
    );
    assert_eq!(leaked(&env.path().join("data")), None, "the host secret reached the store");
}

/// `git` with `input` on stdin; its stdout, trimmed.
fn git_stdin(dir: &Path, args: &[&str], input: &[u8]) -> String {
    use std::io::Write;
    let mut child =
        git_cmd(dir, args).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "git {args:?} failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A tree object with one entry `name` (mode `mode`) for `oid`, ahead of the raw
/// entries `rest` (git's own tree format; `hash-object --literally` skips its checks).
fn tree_with(dir: &Path, mode: &str, name: &str, oid: &str, rest: &[u8]) -> String {
    let mut raw = format!("{mode} {name}\0").into_bytes();
    raw.extend(hex_bytes(oid));
    raw.extend_from_slice(rest);
    git_stdin(dir, &["hash-object", "-t", "tree", "--literally", "-w", "--stdin"], &raw)
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn tree_entries_named_dotdot_are_refused_and_nothing_is_written_outside() {
    let t = "tree_entries_named_dotdot_are_refused_and_nothing_is_written_outside";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let dir = env.path().join("project");
    let df = format!("FROM {reg}/base/busybox:latest\nCOPY . /ctx/\n");
    git_project(
        &dir,
        &[
            ("werf.yaml", "project: dotdot\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\n"),
            ("Dockerfile", &df),
        ],
        &[],
    );
    // HEAD's tree plus `../../../../pwned`: from the materialized context
    // (<store>/tmp/run-*/context) that is the test directory.
    let blob = git_stdin(&dir, &["hash-object", "-w", "--stdin"], b"pwned\n");
    let mut inner = tree_with(&dir, "100644", "pwned", &blob, b"");
    for _ in 0..4 {
        inner = tree_with(&dir, "40000", "..", &inner, b"");
    }
    let head_tree = git_cmd(&dir, &["cat-file", "tree", "HEAD^{tree}"]).output().unwrap().stdout;
    let root = tree_with(&dir, "40000", "..", &inner, &head_tree);
    let commit = git_stdin(&dir, &["commit-tree", &root, "-p", "HEAD", "-m", "hostile"], b"");
    git(&dir, &["update-ref", "refs/heads/main", &commit]);

    let out = env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&dir).output().unwrap();
    assert!(!out.status.success(), "a tree entry named .. was built");
    let err = stderr(&out);
    let want = format!("commit {}: tree entry \"..\" is not a valid path", &commit[..12]);
    assert!(err.contains(&want), "{err}");
    let written: Vec<_> =
        entries_under(env.path()).into_iter().filter(|p| p.file_name().is_some_and(|n| n == "pwned")).collect();
    assert!(written.is_empty(), "written outside the context: {written:?}");
}

#[test]
fn context_add_files_never_leave_the_working_tree() {
    let t = "context_add_files_never_leave_the_working_tree";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let host = host_secret(&env);
    let dir = env.path().join("project");
    let werf =
        "project: addlink\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\ncontextAddFiles:\n- link/key\n";
    let giterminism = "giterminismConfigVersion: 1\nconfig:\n  dockerfile:\n    allowContextAddFiles:\n    - link\n";
    let df = format!("FROM {reg}/base/busybox:latest\nCOPY link/key /k\n");
    git_project(&dir, &[("werf.yaml", werf), ("werf-giterminism.yaml", giterminism), ("Dockerfile", &df)], &[]);
    std::os::unix::fs::symlink(&host, dir.join("link")).unwrap();
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "link"]);

    let out = env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&dir).output().unwrap();
    assert!(!out.status.success(), "contextAddFiles read through a symlink out of the working tree");
    let err = stderr(&out);
    assert!(
        err.contains("contextAddFiles \"link/key\": link/key leads outside") && err.contains("through a symlink"),
        "{err}"
    );
    assert_eq!(leaked(&env.path().join("data")), None, "the host secret reached the store");
}

#[test]
fn deep_trees_a_step_leaves_are_refused_clearly_and_the_run_dir_is_removed() {
    let t = "deep_trees_a_step_leaves_are_refused_clearly_and_the_run_dir_is_removed";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let dir = env.path().join("project");
    let werf = "project: deep\nconfigVersion: 1\n---\nimage: commit\ndockerfile: Dockerfile.commit\n---\nimage: copy\ndockerfile: Dockerfile.copy\n";
    // 1100 levels (deeper than the commit walk's 1024), one of them mode 0000.
    let commit = format!(
        "FROM {reg}/base/busybox:latest\nRUN mkdir -p /deep/$(printf 'd/%.0s' $(seq 1100)) && chmod 0 /deep/d/d\n"
    );
    // 600 levels commit fine, but COPY copies at most 512.
    let copy = format!(
        "FROM {reg}/base/busybox:latest AS build\nRUN mkdir -p /deep/$(printf 'd/%.0s' $(seq 600))\n\
         FROM {reg}/base/busybox:latest\nCOPY --from=build /deep /deep\n"
    );
    git_project(&dir, &[("werf.yaml", werf), ("Dockerfile.commit", &commit), ("Dockerfile.copy", &copy)], &[]);
    let tmp = env.path().join("data/slipway/tmp");
    let leftovers = || -> Vec<String> {
        std::fs::read_dir(&tmp)
            .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    };

    let out = env.slipway().args(["build", "commit", "--insecure-registry", "--dir"]).arg(&dir).output().unwrap();
    assert!(!out.status.success(), "a 1100-level tree was committed");
    assert!(stderr(&out).contains("directory tree deeper than 1024 levels at"), "{}", stderr(&out));
    assert_eq!(leftovers(), Vec::<String>::new(), "the run dir was left behind");

    let out = env.slipway().args(["build", "copy", "--insecure-registry", "--dir"]).arg(&dir).output().unwrap();
    assert!(!out.status.success(), "a 600-level tree was copied");
    assert!(
        stderr(&out).contains("cannot copy build:/deep") && stderr(&out).contains("deeper than 512 levels"),
        "{}",
        stderr(&out)
    );
    assert_eq!(leftovers(), Vec::<String>::new(), "the run dir was left behind");
}
