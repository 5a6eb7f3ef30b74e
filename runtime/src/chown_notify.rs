//! `chown` inside a step of a single-id user namespace, recorded instead of failing.
//!
//! There only root can own a file, so `chown 123:456 f` would fail with EINVAL. The
//! step's pid 1 installs a seccomp filter right before `execve` that sends the chown
//! family (`chown`, `fchown`, `lchown`, `fchownat`) to a listener, and hands the
//! listener to the helper's parent over a socketpair. The parent ([`Supervisor`])
//! resolves each call's target inside the step's root (never the host's: its own root
//! is the step's after `pivot_root`, paths go through `openat2(RESOLVE_IN_ROOT)`, and
//! `/proc` is the one opened before the fork, since the one under its root now is the
//! step's), and records the owner in the
//! `user.containers.override_stat` xattr of a file or directory — the format
//! containers/storage writes and slipway's layer commit reads back (under fuse-overlayfs,
//! which refuses that name through its mount, in `user.slipway.override_stat`). A chown to root
//! drops the record and lets the kernel do the call; anything it does not handle (a
//! pipe, a socket) is passed to the kernel as the task would have made it
//! (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`), so nothing the step could not do itself is
//! done for it. `SECCOMP_IOCTL_NOTIF_ID_VALID` is checked after reading the task's
//! memory and after opening the target, so a path from a task that has gone (and a
//! pid reused) is never acted on.

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

/// The owner record (see `slipway_storage::owner`, which reads it at commit).
pub const OVERRIDE_XATTR: &str = "user.containers.override_stat";

/// The same record where fuse-overlayfs refuses [`OVERRIDE_XATTR`] (it blocks setting
/// `user.containers.*` through its mount): read first, renamed by
/// `slipway_storage::fuse_upper::normalize` before the commit.
pub const PRIVATE_XATTR: &str = "user.slipway.override_stat";

/// `uid:gid:0mode`, as containers/storage writes it.
pub fn encode(uid: u32, gid: u32, mode: u32) -> String {
    format!("{uid}:{gid}:0{:o}", mode & 0o7777)
}

fn decode(v: &[u8]) -> Option<(u32, u32)> {
    let t = std::str::from_utf8(v).ok()?;
    let mut f = t.split(':');
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// Record `value` on `file`: [`OVERRIDE_XATTR`], or [`PRIVATE_XATTR`] where a FUSE
/// filesystem (fuse-overlayfs) refuses the former.
fn set_record(file: &OwnedFd, value: &str) -> nix::Result<()> {
    match crate::sys::fsetxattr(file, OVERRIDE_XATTR, value.as_bytes()) {
        Ok(()) => match crate::sys::fremovexattr(file, PRIVATE_XATTR) {
            Ok(()) | Err(Errno::ENODATA) => Ok(()),
            Err(e) => Err(e),
        },
        Err(Errno::EPERM) if on_fuse(file) => crate::sys::fsetxattr(file, PRIVATE_XATTR, value.as_bytes()),
        Err(e) => Err(e),
    }
}

/// Whether `fd` is on a FUSE filesystem.
fn on_fuse(fd: &OwnedFd) -> bool {
    nix::sys::statfs::fstatfs(fd).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::FUSE_SUPER_MAGIC)
}

/// How to answer one intercepted call.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// Let the kernel run it as the task made it.
    Continue,
    /// Done here: 0, or a negative errno for the task.
    Done(i32),
}

/// The helper's side of the listener.
pub(crate) struct Supervisor {
    /// `/proc` of the helper's pid namespace, opened before the step's `pivot_root`.
    proc_dir: OwnedFd,
}

impl Supervisor {
    /// Opens `/proc`; call before forking the step.
    pub(crate) fn new() -> nix::Result<Supervisor> {
        let proc_dir = nix::fcntl::open("/proc", OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())?;
        Ok(Supervisor { proc_dir })
    }

    /// Receive and answer one call (a task that died meanwhile is skipped).
    pub(crate) fn handle_one(&self, listener: &OwnedFd) {
        let Ok(req) = crate::sys::notif_recv(listener) else { return };
        let answer = self.decide(&req, listener);
        let _ = match answer {
            Answer::Continue => crate::sys::notif_send(listener, req.id, 0, true),
            Answer::Done(e) => crate::sys::notif_send(listener, req.id, e, false),
        };
    }

    fn decide(&self, req: &libc::seccomp_notif, listener: &OwnedFd) -> Answer {
        let a = req.data.args;
        let nr = libc::c_long::from(req.data.nr);
        #[cfg(target_arch = "x86_64")]
        let (dirfd, path_at, uid, gid, flags) = match nr {
            libc::SYS_chown => (libc::AT_FDCWD, Some(a[0]), a[1], a[2], 0),
            libc::SYS_lchown => (libc::AT_FDCWD, Some(a[0]), a[1], a[2], libc::AT_SYMLINK_NOFOLLOW),
            libc::SYS_fchown => (a[0] as i32, None, a[1], a[2], libc::AT_EMPTY_PATH),
            libc::SYS_fchownat => (a[0] as i32, Some(a[1]), a[2], a[3], a[4] as i32),
            _ => return Answer::Continue,
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (dirfd, path_at, uid, gid, flags) = match nr {
            libc::SYS_fchown => (a[0] as i32, None, a[1], a[2], libc::AT_EMPTY_PATH),
            libc::SYS_fchownat => (a[0] as i32, Some(a[1]), a[2], a[3], a[4] as i32),
            _ => return Answer::Continue,
        };
        let (uid, gid) = (uid as u32, gid as u32);
        let pid = req.pid;
        let path = match path_at {
            Some(addr) => match self.read_path(pid, addr) {
                Ok(p) => p,
                Err(e) => return Answer::Done(-(e as i32)),
            },
            None => Vec::new(),
        };
        if !crate::sys::notif_id_valid(listener, req.id) {
            return Answer::Done(-libc::ESRCH);
        }
        let fd = match self.open_target(pid, dirfd, &path, flags) {
            Ok(Some(fd)) => fd,
            Ok(None) => return Answer::Continue,
            Err(e) => return Answer::Done(-(e as i32)),
        };
        if !crate::sys::notif_id_valid(listener, req.id) {
            return Answer::Done(-libc::ESRCH);
        }
        let Ok(st) = nix::sys::stat::fstat(&fd) else { return Answer::Continue };
        let kind = st.st_mode & libc::S_IFMT;
        let unchanged = u32::MAX;
        if kind != libc::S_IFREG && kind != libc::S_IFDIR {
            // A symlink cannot carry a record: it stays root's (a chown to root is real).
            let to_root = (uid == 0 || uid == unchanged) && (gid == 0 || gid == unchanged);
            return if kind == libc::S_IFLNK && !to_root { Answer::Done(0) } else { Answer::Continue };
        }
        // A real fd for the xattr calls, through this process's own /proc (the one under
        // its root now is the step's).
        let dir = if kind == libc::S_IFDIR { OFlag::O_DIRECTORY } else { OFlag::empty() };
        let Ok(file) = nix::fcntl::openat(
            &self.proc_dir,
            format!("self/fd/{}", fd.as_raw_fd()).as_str(),
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | dir,
            Mode::empty(),
        ) else {
            return Answer::Continue;
        };
        let current = [PRIVATE_XATTR, OVERRIDE_XATTR]
            .iter()
            .find_map(|n| crate::sys::fgetxattr(&file, n).ok())
            .and_then(|v| decode(&v))
            .filter(|_| st.st_uid == 0 && st.st_gid == 0)
            .unwrap_or((st.st_uid, st.st_gid));
        let new = (if uid == unchanged { current.0 } else { uid }, if gid == unchanged { current.1 } else { gid });
        let value = encode(new.0, new.1, st.st_mode);
        if new == (0, 0) {
            // The real owner counts again: no record (a private record of root where the
            // shared one cannot be removed).
            let _ = crate::sys::fremovexattr(&file, PRIVATE_XATTR);
            if crate::sys::fremovexattr(&file, OVERRIDE_XATTR) == Err(Errno::EPERM) && on_fuse(&file) {
                let _ = crate::sys::fsetxattr(&file, PRIVATE_XATTR, value.as_bytes());
            }
            return Answer::Continue;
        }
        match set_record(&file, &value) {
            Ok(()) => Answer::Done(0),
            Err(e) => Answer::Done(-(e as i32)),
        }
    }

    /// The NUL-terminated path at `addr` in the task's memory (at most `PATH_MAX`).
    fn read_path(&self, pid: u32, addr: u64) -> nix::Result<Vec<u8>> {
        let mem = nix::fcntl::openat(
            &self.proc_dir,
            format!("{pid}/mem").as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mem = std::fs::File::from(mem);
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        while out.len() < libc::PATH_MAX as usize {
            let n = mem
                .read_at(&mut buf, addr + out.len() as u64)
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EFAULT)))?;
            if n == 0 {
                return Err(Errno::EFAULT);
            }
            if let Some(end) = buf[..n].iter().position(|b| *b == 0) {
                out.extend_from_slice(&buf[..end]);
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
        Err(Errno::ENAMETOOLONG)
    }

    /// The target as an `O_PATH` fd resolved inside the task's root; `None` for one this
    /// supervisor leaves to the kernel (an fd or directory not under the root, such as a
    /// pipe).
    fn open_target(&self, pid: u32, dirfd: i32, path: &[u8], flags: i32) -> nix::Result<Option<OwnedFd>> {
        let proc_path = |rest: &str| format!("{pid}/{rest}");
        if path.is_empty() {
            if flags & libc::AT_EMPTY_PATH == 0 {
                return Err(Errno::ENOENT);
            }
            // fchown(fd): only an fd naming a path under the root (not a pipe, not a file
            // of the host the step was handed).
            let link = nix::fcntl::readlinkat(&self.proc_dir, proc_path(&format!("fd/{dirfd}")).as_str())?;
            if !link.as_encoded_bytes().starts_with(b"/") {
                return Ok(None);
            }
            return self.open_in_root(pid, link.as_encoded_bytes(), true).map(Some);
        }
        let full = if path.starts_with(b"/") {
            path.to_vec()
        } else {
            let base = if dirfd == libc::AT_FDCWD { "cwd".to_string() } else { format!("fd/{dirfd}") };
            let base = nix::fcntl::readlinkat(&self.proc_dir, proc_path(&base).as_str())?;
            if !base.as_encoded_bytes().starts_with(b"/") {
                return Ok(None);
            }
            let mut f = base.as_encoded_bytes().to_vec();
            f.push(b'/');
            f.extend_from_slice(path);
            f
        };
        self.open_in_root(pid, &full, flags & libc::AT_SYMLINK_NOFOLLOW == 0).map(Some)
    }

    fn open_in_root(&self, pid: u32, path: &[u8], follow: bool) -> nix::Result<OwnedFd> {
        let root = nix::fcntl::openat(
            &self.proc_dir,
            format!("{pid}/root").as_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut oflags = OFlag::O_PATH | OFlag::O_CLOEXEC;
        if !follow {
            oflags |= OFlag::O_NOFOLLOW;
        }
        let how =
            OpenHow::new().flags(oflags).resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let rel = std::ffi::OsStr::from_bytes(path.strip_prefix(b"/").unwrap_or(path));
        let rel = if rel.is_empty() { std::ffi::OsStr::new(".") } else { rel };
        nix::fcntl::openat2(&root, rel, how)
    }
}

use std::os::unix::ffi::OsStrExt;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_as_containers_storage_writes_them() {
        assert_eq!(encode(123, 456, 0o100644), "123:456:0644");
        assert_eq!(decode(b"123:456:0644"), Some((123, 456)));
        assert_eq!(decode(b"x"), None);
    }
}
