//! The build's SSH agent, as werf chooses it: an `ssh-agent` slipway starts with the
//! `--ssh-key` keys; else the caller's `SSH_AUTH_SOCK`; else an agent with `~/.ssh/id_rsa`
//! and `~/.ssh/id_dsa` when they exist. The build owns its [`Agent`] (`engine::Run`);
//! a step reaches it through a per-step socket ([`StepSocket`]) owned and moded as the
//! step asks: `RUN --mount=type=ssh`, and Stapel `shell` stages as werf binds it.
//! `HOME`, `SSH_AUTH_SOCK` and `TMPDIR` come from the settings' [`HostEnv`].

use crate::engine::settings::HostEnv;
use anyhow::{Context, bail};
use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Which agent a build gets (`BuildSettings::ssh`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Choice {
    /// None: the command builds nothing (`stage image`), or a test asks for none.
    #[default]
    Off,
    /// werf's choice: these `--ssh-key` values (`$WERF_SSH_KEY_*` included), else
    /// `SSH_AUTH_SOCK`, else `~/.ssh/id_rsa` and `~/.ssh/id_dsa`.
    Werf(Vec<String>),
}

/// A new private dir of a short path under `tmp`: a socket's path is at most 107 bytes.
fn private_dir(tmp: &Path) -> anyhow::Result<PathBuf> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let dir = tmp.join(format!("slipway-ssh-{}-{nanos}", std::process::id()));
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&dir)
        .with_context(|| format!("creating the ssh agent's dir {}", dir.display()))?;
    Ok(dir)
}

/// `$TMPDIR` of `host`, else `/tmp` (as `std::env::temp_dir` reads the process's).
fn temp_dir(host: &HostEnv) -> PathBuf {
    host.path("TMPDIR").filter(|p| !p.as_os_str().is_empty()).unwrap_or_else(|| PathBuf::from("/tmp"))
}

/// The build's agent, if it has one. Dropping it kills the `ssh-agent` slipway started
/// and removes its private dir.
#[derive(Default)]
pub struct Agent {
    child: Option<Child>,
    /// The agent's socket and its private (0700) dir, removed with it, where step
    /// sockets are made; `None`: the build has no agent.
    socket: Option<(PathBuf, PathBuf)>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some((_, d)) = &self.socket {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn is_socket(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

impl Agent {
    /// The agent `choice` asks for; `host` gives `HOME` (for `~/` and werf's default
    /// keys), `SSH_AUTH_SOCK` and `TMPDIR`. Only `--ssh-key` problems are errors.
    pub fn start(choice: &Choice, host: &HostEnv) -> anyhow::Result<Agent> {
        let Choice::Werf(keys) = choice else { return Ok(Agent::default()) };
        let home = host.path("HOME").unwrap_or_default();
        let tmp = temp_dir(host);
        let expand = |k: &str| match k.strip_prefix("~/") {
            Some(rest) => home.join(rest),
            None => PathBuf::from(k),
        };
        let mut paths = Vec::new();
        for k in keys {
            if k.starts_with("file://") {
                bail!(
                    "--ssh-key {k}: keys with a passphrase (file://PASSPHRASE@PATH) are not supported by slipway; \
                     give a key without a passphrase, or run an ssh-agent and set SSH_AUTH_SOCK"
                );
            }
            let p = expand(k);
            if !p.is_file() {
                bail!("--ssh-key {k}: the ssh key {} does not exist", p.display());
            }
            paths.push((p, false));
        }
        if paths.is_empty() {
            if let Some(sock) = host.path("SSH_AUTH_SOCK").filter(|s| !s.as_os_str().is_empty()) {
                // A stale variable must not stop builds that use no ssh at all: a step
                // that requires the agent says so itself.
                if is_socket(&sock) {
                    let dir = private_dir(&tmp)?;
                    return Ok(Agent { child: None, socket: Some((sock, dir)) });
                }
                eprintln!("Warning: SSH_AUTH_SOCK={} is not a socket; it is not used", sock.display());
            }
            for name in ["id_rsa", "id_dsa"] {
                let p = home.join(".ssh").join(name);
                if p.is_file() {
                    paths.push((p, true));
                }
            }
            if paths.is_empty() {
                return Ok(Agent::default());
            }
        }
        // Only werf's default keys (no --ssh-key): an agent that cannot start is a warning.
        let defaults_only = paths.iter().all(|(_, lenient)| *lenient);
        match launch(&tmp, paths) {
            Err(e) if defaults_only => {
                eprintln!("Warning: no ssh agent for this build: {e:#}");
                Ok(Agent::default())
            }
            result => result,
        }
    }

    /// A new socket for one step, relayed to the agent, owned `uid:gid` (ids of the
    /// build's namespace) with `mode`; `None` if the build has no agent.
    pub fn step_socket(&self, uid: u32, gid: u32, mode: u32) -> anyhow::Result<Option<StepSocket>> {
        let Some((agent, dir)) = &self.socket else { return Ok(None) };
        StepSocket::new(agent, dir, uid, gid, mode).map(Some)
    }
}

/// Start `ssh-agent` in a private dir under `tmp` with `paths` (a lenient one only warns
/// when `ssh-add` refuses it).
fn launch(tmp: &Path, paths: Vec<(PathBuf, bool)>) -> anyhow::Result<Agent> {
    let dir = private_dir(tmp)?;
    let sock = dir.join("agent.sock");
    // Dropped on an error below: kills the agent and removes its dir.
    let mut agent = Agent { child: None, socket: Some((sock.clone(), dir)) };
    let mut agent_cmd = Command::new("ssh-agent");
    slipway_runtime::fds::helper_daemon(&mut agent_cmd);
    let child = agent_cmd
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting ssh-agent (install openssh-client)")?;
    agent.child = Some(child);
    let started = Instant::now();
    while !is_socket(&sock) {
        if let Some(c) = &mut agent.child
            && let Some(status) = c.try_wait()?
        {
            bail!("ssh-agent exited before it listened ({status})");
        }
        if started.elapsed() > Duration::from_secs(10) {
            bail!("ssh-agent did not create {} within 10 s", sock.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for (p, lenient) in paths {
        let out = Command::new("ssh-add")
            .arg("-q")
            .arg(&p)
            .env("SSH_AUTH_SOCK", &sock)
            .env("SSH_ASKPASS_REQUIRE", "never")
            .env_remove("DISPLAY")
            .stdin(Stdio::null())
            .output()
            .context("running ssh-add (install openssh-client)")?;
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if lenient {
                eprintln!("WARNING: unable to add ssh key {}: {why}", p.display());
                continue;
            }
            bail!("--ssh-key {}: ssh-add failed ({why}); slipway takes keys without a passphrase only", p.display());
        }
    }
    Ok(agent)
}

/// A socket one step sees at its `--mount=type=ssh` target; each connection is passed
/// through to the build's agent. Dropping it stops listening and removes the socket.
pub struct StepSocket {
    path: PathBuf,
    stop: std::sync::Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StepSocket {
    /// Listen at a new socket in `dir`, owned `uid:gid` (ids of the build's namespace) with `mode`.
    fn new(agent: &Path, dir: &Path, uid: u32, gid: u32, mode: u32) -> anyhow::Result<StepSocket> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let path = dir.join(format!("step-{}", N.fetch_add(1, Ordering::SeqCst)));
        let listener = UnixListener::bind(&path).with_context(|| format!("listening at {}", path.display()))?;
        if let Err(e) = std::os::unix::fs::chown(&path, Some(uid), Some(gid))
            && !(e.raw_os_error() == Some(libc::EINVAL) && slipway_storage::owner::single_id_namespace())
        {
            return Err(e).with_context(|| format!("chown of the ssh socket to {uid}:{gid}"));
        }
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (agent, stopping) = (agent.to_path_buf(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let Ok(up) = UnixStream::connect(&agent) else { continue };
                relay(conn, up);
            }
        });
        Ok(StepSocket { path, stop, thread: Some(thread) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Copy both ways between a step's connection and the agent, each way on its own thread.
fn relay(a: UnixStream, b: UnixStream) {
    let pipe = |mut from: UnixStream, mut to: UnixStream| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    };
    if let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) {
        pipe(a, b2);
        pipe(b, a2);
    }
}

impl Drop for StepSocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees `stop`.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn werf(keys: &[&str], host: &[(&str, &str)]) -> anyhow::Result<Agent> {
        let keys = keys.iter().map(|k| k.to_string()).collect();
        Agent::start(&Choice::Werf(keys), &host.iter().copied().collect())
    }

    #[test]
    fn refuses_keys_it_cannot_use() {
        let e = werf(&["file://pw@/k"], &[]).err().unwrap().to_string();
        assert!(e.contains("keys with a passphrase"), "{e}");
        let e = werf(&["/nonexistent/key"], &[]).err().unwrap().to_string();
        assert!(e.contains("does not exist"), "{e}");
        // `~/` is the settings' HOME, not the process's.
        let home = tempfile::tempdir().unwrap();
        let e = werf(&["~/k"], &[("HOME", home.path().to_str().unwrap())]).err().unwrap().to_string();
        assert!(e.contains(&home.path().join("k").display().to_string()), "{e}");
        if which_ok("ssh-keygen") && which_ok("ssh-agent") {
            let dir = tempfile::tempdir().unwrap();
            let key = dir.path().join("k");
            let made = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "secret-pass", "-f"])
                .arg(&key)
                .status()
                .unwrap();
            assert!(made.success());
            let tmp = dir.path().join("tmp");
            std::fs::create_dir(&tmp).unwrap();
            let e = werf(&[key.to_str().unwrap()], &[("TMPDIR", tmp.to_str().unwrap())]).err().unwrap().to_string();
            assert!(e.contains("ssh-add failed") && e.contains("without a passphrase"), "{e}");
            // The failed agent is killed and its dir (in the settings' TMPDIR) removed.
            assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
        }
    }

    /// What the settings hold decides, never the process environment.
    #[test]
    fn takes_the_agent_from_the_host_env() {
        assert!(Agent::start(&Choice::Off, &HostEnv::default()).unwrap().socket.is_none());
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let _listener = UnixListener::bind(&sock).unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let (sock_s, tmp_s, home) = (sock.to_str().unwrap(), tmp.to_str().unwrap(), dir.path().to_str().unwrap());
        let host = [("SSH_AUTH_SOCK", sock_s), ("TMPDIR", tmp_s), ("HOME", home)];
        let agent = werf(&[], &host).unwrap();
        assert!(agent.socket.is_some());
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 1, "the step sockets' dir");
        drop(agent);
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "the dir is removed with the agent");
        // A stale SSH_AUTH_SOCK and no ~/.ssh keys: no agent, no error.
        let stale = [("SSH_AUTH_SOCK", "/nonexistent/agent.sock"), ("TMPDIR", tmp_s), ("HOME", home)];
        let agent = werf(&[], &stale).unwrap();
        assert!(agent.socket.is_none() && agent.step_socket(0, 0, 0o600).unwrap().is_none());
    }

    fn which_ok(bin: &str) -> bool {
        Command::new(bin).arg("-h").stderr(Stdio::null()).stdout(Stdio::null()).status().is_ok()
    }
}
