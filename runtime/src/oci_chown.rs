//! `chown` inside an OCI runtime's step in a single-id user namespace, recorded as the
//! built-in sandbox records it ([`crate::chown_notify`]).
//!
//! The bundle's seccomp section sends the chown family to a user-space listener
//! (`SCMP_ACT_NOTIFY`) and allows everything else; `listenerPath` names a unix socket of
//! slipway's, where runc and crun hand over the listener fd (with the container's state
//! as payload, which is not read). A thread of slipway takes it and answers each call
//! with the same [`Supervisor`] until the runtime has exited. The socket lives in a
//! directory of its own, mode 0700 (a path a socket can have: at most 107 bytes), removed
//! when the step ends; only the first connection is taken.

use crate::chown_notify::Supervisor;
use crate::error::{Result, RuntimeError};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// The syscalls sent to the listener (libseccomp names; those this arch lacks are
/// skipped by the runtimes).
const CHOWN_SYSCALLS: &[&str] = &["chown", "fchown", "lchown", "fchownat"];

/// How long a poll waits (ms) before looking at the stop flag again.
const TICK_MS: u8 = 200;

/// The bundle's `linux.seccomp` for a listener at `socket`.
pub(crate) fn seccomp_section(socket: &Path) -> serde_json::Value {
    serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": socket,
        "syscalls": [{"names": CHOWN_SYSCALLS, "action": "SCMP_ACT_NOTIFY"}],
    })
}

/// The listening socket and the thread answering the step's chown calls; [`finish`]
/// stops it after the runtime has exited.
///
/// [`finish`]: ChownListener::finish
pub(crate) struct ChownListener {
    dir: PathBuf,
    socket: PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<std::result::Result<(), String>>>,
}

impl ChownListener {
    /// Listen on a fresh socket; the thread runs until [`ChownListener::finish`].
    pub(crate) fn start() -> Result<ChownListener> {
        let sup = Supervisor::new().map_err(RuntimeError::sys("opening /proc for the chown supervisor"))?;
        let dir = private_dir()?;
        let socket = dir.join("chown.sock");
        let listener = match UnixListener::bind(&socket) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(RuntimeError::io("listening on", &socket)(e));
            }
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("chown-listener".into())
            .spawn(move || serve(&listener, &sup, &stopped).map_err(|e| e.to_string()))
            .map_err(RuntimeError::io("starting the chown listener thread for", &socket))?;
        Ok(ChownListener { dir, socket, stop, thread: Some(thread) })
    }

    /// Where the runtime connects (`listenerPath`).
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// Stop answering (the runtime has exited) and say whether the thread failed.
    pub(crate) fn finish(mut self) -> Result<()> {
        self.stop_thread()
    }

    fn stop_thread(&mut self) -> Result<()> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::fs::remove_dir_all(&self.dir);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(Err(e))) => Err(RuntimeError::Other(format!("answering the step's chown calls: {e}"))),
            Some(Err(_)) => Err(RuntimeError::Other("the chown listener thread panicked".into())),
            _ => Ok(()),
        }
    }
}

impl Drop for ChownListener {
    fn drop(&mut self) {
        let _ = self.stop_thread();
    }
}

/// Take the first connection's listener fd, then answer its calls until stopped or
/// until every task of the step has gone (the listener hangs up).
fn serve(sock: &UnixListener, sup: &Supervisor, stop: &std::sync::atomic::AtomicBool) -> nix::Result<()> {
    let stopped = || stop.load(std::sync::atomic::Ordering::SeqCst);
    let mut listener: Option<OwnedFd> = None;
    while !stopped() {
        let fd = match &listener {
            Some(l) => l.as_fd(),
            None => sock.as_fd(),
        };
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(TICK_MS)) {
            Err(Errno::EINTR) | Ok(0) => continue,
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let revents = fds[0].revents().unwrap_or(PollFlags::empty());
        match &listener {
            Some(l) if revents.contains(PollFlags::POLLIN) => sup.handle_one(l),
            // Every task that had the filter is gone.
            Some(_) => return Ok(()),
            None => {
                let (conn, _) = match sock.accept() {
                    Ok(c) => c,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
                };
                match crate::sandbox::receive_fd(&OwnedFd::from(conn))? {
                    Some(fd) => listener = Some(fd),
                    None => return Err(Errno::EBADMSG),
                }
            }
        }
    }
    Ok(())
}

/// A new directory, mode 0700, for the socket: in `TMPDIR` when the socket's path fits
/// there, else in `/tmp`.
fn private_dir() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let mut last = None;
    for base in [std::env::temp_dir(), PathBuf::from("/tmp")] {
        for _ in 0..8 {
            let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let dir = base.join(format!("slipway-chown-{}-{n}-{nanos:x}", std::process::id()));
            // "/chown.sock" and the NUL must fit in sun_path (108 bytes).
            if dir.as_os_str().len() + 12 > 108 {
                break;
            }
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    last = Some((dir, e));
                    break;
                }
            }
        }
    }
    Err(match last {
        Some((dir, e)) => RuntimeError::io("creating", &dir)(e),
        None => RuntimeError::Other(
            "no directory for the chown listener's socket: TMPDIR and /tmp are too long or taken; set TMPDIR to a short, writable path".into(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seccomp_section_sends_the_chown_family_to_the_listener() {
        let s = seccomp_section(Path::new("/tmp/x/chown.sock"));
        assert_eq!(s["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(s["listenerPath"], "/tmp/x/chown.sock");
        assert_eq!(s["syscalls"][0]["action"], "SCMP_ACT_NOTIFY");
        assert_eq!(s["syscalls"][0]["names"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn the_socket_directory_is_private_and_goes_away() {
        let l = ChownListener::start().unwrap();
        let dir = l.socket().parent().unwrap().to_path_buf();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(l.socket().as_os_str().len() < 108);
        l.finish().unwrap();
        assert!(!dir.exists());
    }
}
