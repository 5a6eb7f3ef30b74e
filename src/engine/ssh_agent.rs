//! The build's SSH agent, as werf chooses it: an `ssh-agent` slipway starts with the
//! `--ssh-key` keys; else the caller's `SSH_AUTH_SOCK`; else an agent with `~/.ssh/id_rsa`
//! and `~/.ssh/id_dsa` when they exist. `RUN --mount=type=ssh` reaches it through a
//! per-step socket (`StepSocket`) owned and moded as the mount asks.

use anyhow::{Context, bail};
use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The agent socket of the running build and the private dir step sockets are made in.
static SOCKET: Mutex<Option<(PathBuf, PathBuf)>> = Mutex::new(None);

/// The agent socket `RUN --mount=type=ssh` (id `default`) shows and a private (0700) dir
/// of a short path for step sockets, if the build has an agent.
pub fn socket() -> Option<(PathBuf, PathBuf)> {
    SOCKET.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn set_socket(s: Option<(PathBuf, PathBuf)>) {
    *SOCKET.lock().unwrap_or_else(|e| e.into_inner()) = s;
}

/// A new private dir of a short path: a socket's path is at most 107 bytes.
fn private_dir() -> anyhow::Result<PathBuf> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let dir = std::env::temp_dir().join(format!("slipway-ssh-{}-{nanos}", std::process::id()));
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&dir)
        .with_context(|| format!("creating the ssh agent's dir {}", dir.display()))?;
    Ok(dir)
}

/// The build's agent; dropping it kills the `ssh-agent` slipway started and forgets the socket.
pub struct Agent {
    child: Option<Child>,
    /// The agent's private (0700) dir, removed with it.
    dir: Option<PathBuf>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        set_socket(None);
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn is_socket(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

impl Agent {
    /// Choose the build's agent from the `--ssh-key` values (`$WERF_SSH_KEY_*` included).
    pub fn start(keys: &[String]) -> anyhow::Result<Agent> {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
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
        // Built only where returned: dropping an Agent forgets the socket.
        let none = || Agent { child: None, dir: None };
        if paths.is_empty() {
            if let Some(sock) = std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) {
                let sock = PathBuf::from(sock);
                // A stale variable must not stop builds that use no ssh at all: a step
                // that requires the agent says so itself.
                if is_socket(&sock) {
                    let dir = private_dir()?;
                    set_socket(Some((sock, dir.clone())));
                    return Ok(Agent { child: None, dir: Some(dir) });
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
                return Ok(none());
            }
        }
        // Only werf's default keys (no --ssh-key): an agent that cannot start is a warning.
        let defaults_only = paths.iter().all(|(_, lenient)| *lenient);
        match launch(paths) {
            Err(e) if defaults_only => {
                eprintln!("Warning: no ssh agent for this build: {e:#}");
                Ok(none())
            }
            result => result,
        }
    }
}

/// Start `ssh-agent` with `paths` (a lenient one only warns when `ssh-add` refuses it).
fn launch(paths: Vec<(PathBuf, bool)>) -> anyhow::Result<Agent> {
    let dir = private_dir()?;
    let sock = dir.join("agent.sock");
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
    let mut agent = Agent { child: Some(child), dir: Some(dir.clone()) };
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
    set_socket(Some((sock, dir)));
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
    pub fn new(agent: &Path, dir: &Path, uid: u32, gid: u32, mode: u32) -> anyhow::Result<StepSocket> {
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

    #[test]
    fn refuses_keys_it_cannot_use() {
        let e = Agent::start(&["file://pw@/k".into()]).err().unwrap().to_string();
        assert!(e.contains("keys with a passphrase"), "{e}");
        let e = Agent::start(&["/nonexistent/key".into()]).err().unwrap().to_string();
        assert!(e.contains("does not exist"), "{e}");
        if which_ok("ssh-keygen") && which_ok("ssh-agent") {
            let dir = tempfile::tempdir().unwrap();
            let key = dir.path().join("k");
            let made = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "secret-pass", "-f"])
                .arg(&key)
                .status()
                .unwrap();
            assert!(made.success());
            let e = Agent::start(&[key.to_string_lossy().into_owned()]).err().unwrap().to_string();
            assert!(e.contains("ssh-add failed") && e.contains("without a passphrase"), "{e}");
            assert!(socket().is_none());
        }
    }

    fn which_ok(bin: &str) -> bool {
        Command::new(bin).arg("-h").stderr(Stdio::null()).stdout(Stdio::null()).status().is_ok()
    }
}
