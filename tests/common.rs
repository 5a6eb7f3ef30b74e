//! Shared helpers: the slipway command, environment checks, fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Whether the rootless environment is here; otherwise skip (or fail in CI) with `why`.
pub fn rootless_env(test: &str) -> bool {
    let problem = if nix_is_root() {
        Some(
            "running as root proves nothing about rootless builds; run scripts/test.sh (it runs the suite as an unprivileged user)",
        )
    } else if which("newuidmap").is_none() {
        Some("newuidmap is missing (Debian package uidmap)")
    } else {
        None
    };
    skip_or_fail(test, problem)
}

/// The plain-HTTP registry address, if the environment provides one.
pub fn registry(test: &str) -> Option<String> {
    let r = std::env::var("SLIPWAY_TEST_REGISTRY").ok().filter(|s| !s.is_empty());
    if r.is_none() {
        skip_or_fail(test, Some("SLIPWAY_TEST_REGISTRY is not set (scripts/test.sh starts a registry and sets it)"));
    }
    r
}

fn skip_or_fail(test: &str, problem: Option<&str>) -> bool {
    match problem {
        None => true,
        Some(p) if std::env::var("SLIPWAY_REQUIRE_PRIVILEGED_TESTS").is_ok_and(|v| v == "1") => {
            panic!("{test}: cannot run: {p}")
        }
        Some(p) => {
            eprintln!("SKIP {test}: {p}");
            false
        }
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

pub fn which(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// A fresh per-test directory with its own store and home.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// Environment for every `slipway` this test runs.
    vars: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new().prefix("slipway-test-").tempdir().expect("creating test dir");
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Env { dir, vars: Vec::new() }
    }

    /// Run every `slipway` of this test with `key=value` set.
    pub fn with_var(mut self, key: &str, value: &str) -> Env {
        self.vars.push((key.into(), value.into()));
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `slipway ARGS` with this test's store and home.
    pub fn slipway(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_slipway"));
        c.env("XDG_DATA_HOME", self.path().join("data"))
            .env("HOME", self.path().join("home"))
            .env_remove("SLIPWAY_STORAGE_ROOT")
            .env_remove("WERF_REPO")
            .envs(self.vars.iter().map(|(k, v)| (k, v)));
        c
    }

    /// A busybox rootfs made from the host's static busybox, owned by the current user.
    pub fn busybox_rootfs(&self, name: &str) -> PathBuf {
        let root = self.path().join(name);
        for d in ["bin", "etc", "tmp", "root"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let busybox = which("busybox").expect("busybox-static is not installed");
        std::fs::copy(&busybox, root.join("bin/busybox")).unwrap();
        for applet in ["sh", "id", "ls", "cat", "echo", "mkdir", "rm", "chown", "stat", "hostname", "touch", "ln"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
            .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
        root
    }
}

/// An [`Env`] with a `TMPDIR` of its own (where slipway's ssh-agent makes its socket
/// directory) and a fresh key at `id_test` in it: the env, the key's path and the public
/// key.
pub fn ssh_env() -> (Env, PathBuf, String) {
    let env = Env::new();
    let tmp = env.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let env = env.with_var("TMPDIR", tmp.to_str().unwrap());
    let key = env.path().join("id_test");
    let public = ssh_key(&key);
    (env, key, public)
}

/// A new ed25519 key without a passphrase at `path`; returns its public line.
pub fn ssh_key(path: &Path) -> String {
    run_ok(
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "slipway-test-key", "-f"]).arg(path),
    );
    std::fs::read_to_string(path.with_extension("pub")).unwrap()
}

/// The host's `ssh-add` and its libraries, copied into `dir` (busybox has no unix-socket
/// client): a step runs it as `DIR/ld.so --library-path DIR DIR/ssh-add`.
pub fn ssh_add_tools(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let ldd = run_ok(Command::new("ldd").arg("/usr/bin/ssh-add"));
    for lib in stdout(&ldd).split_whitespace().filter(|w| w.starts_with('/')) {
        let name = if lib.contains("ld-linux") { "ld.so" } else { lib.rsplit('/').next().unwrap() };
        std::fs::copy(lib, dir.join(name)).unwrap();
    }
    std::fs::copy("/usr/bin/ssh-add", dir.join("ssh-add")).unwrap();
}

/// Processes whose command line mentions `needle` (e.g. the test's temporary dir).
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(cmdline);
        }
    }
    found
}

/// Run and return output, panicking with both streams if the exit code differs.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawning slipway");
    assert!(
        out.status.success(),
        "command {cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A git repository with `files` committed, plus `uncommitted` files left in the tree.
pub fn git_project(dir: &Path, files: &[(&str, &str)], uncommitted: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    for (name, content) in files {
        write(dir, name, content);
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "project"]);
    for (name, content) in uncommitted {
        write(dir, name, content);
    }
}

pub fn write(dir: &Path, name: &str, content: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// `git ARGS` in `dir` with a fixed identity and no system or user config.
pub fn git_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir);
    c
}

pub fn git(dir: &Path, args: &[&str]) {
    let out = git_cmd(dir, args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A tiny HTTP/1.1 server on 127.0.0.1 for `ADD <URL>`: `routes` maps a path to
/// (extra header lines, body); every other path is a 404. Returns its `host:port`.
pub fn serve_http(routes: Vec<(String, String, Vec<u8>)>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let (status, headers, body) = match routes.iter().find(|(p, _, _)| *p == path) {
                Some((_, h, b)) => ("200 OK", h.clone(), b.clone()),
                None => ("404 Not Found", String::new(), b"no".to_vec()),
            };
            let head =
                format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n", body.len());
            let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
        }
    });
    addr
}

/// `podman` with HOME `home` and its storage under `dirs` (a short directory of the
/// caller's: podman refuses a runroot path longer than 50 characters).
pub fn podman(home: &Path, dirs: &Path) -> Command {
    let mut c = Command::new("podman");
    c.env("HOME", home).arg("--root").arg(dirs.join("root")).arg("--runroot").arg(dirs.join("run"));
    c
}

/// Remove podman's storage under `dirs` from inside its namespace (it holds files of
/// subordinate ids).
pub fn podman_cleanup(home: &Path, dirs: &Path) {
    let _ = podman(home, dirs).args(["unshare", "rm", "-rf"]).arg(dirs.join("root")).output();
}

/// `git daemon` on 127.0.0.1 serving the bare repositories under `base`; killed on drop.
pub struct GitDaemon {
    child: std::process::Child,
    pub addr: String,
}

impl GitDaemon {
    pub fn start(base: &std::path::Path) -> GitDaemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // `git daemon` would run git-daemon as a child of its own, which killing `git`
        // leaves behind: start git-daemon itself.
        let exec_path = std::process::Command::new("git").arg("--exec-path").output().unwrap();
        let exec_path = String::from_utf8(exec_path.stdout).unwrap();
        let child = std::process::Command::new(std::path::Path::new(exec_path.trim()).join("git-daemon"))
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}");
        for _ in 0..200 {
            if std::net::TcpStream::connect(&addr).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        GitDaemon { child, addr }
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
