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
//! which refuses that name through its mount, in `user.slipway.override_stat`). A
//! symlink or fifo can carry no `user.*` xattr: it is chowned to root for real (so a
//! mount copies it up) and its owner recorded on its directory, in
//! `user.slipway.child_owners` (see `slipway_storage::child_owners`). A chown to root
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

/// A directory's record of the owners of its symlinks and fifos (see
/// `slipway_storage::child_owners`, which reads it at commit): `uid:gid:sec.nsec:name`
/// per child, NUL after each.
pub const CHILD_OWNERS_XATTR: &str = "user.slipway.child_owners";

/// The largest record value written (`XATTR_SIZE_MAX`).
const MAX_CHILD_OWNERS: usize = 64 * 1024;

/// One child's record: name, uid, gid, mtime.
type ChildRecord = (Vec<u8>, u32, u32, (i64, i64));

fn mtime(st: &libc::stat) -> (i64, i64) {
    (st.st_mtime, st.st_mtime_nsec)
}

fn decode_children(v: &[u8]) -> Vec<ChildRecord> {
    v.split(|b| *b == 0).filter(|r| !r.is_empty()).filter_map(decode_child).collect()
}

fn decode_child(rec: &[u8]) -> Option<ChildRecord> {
    let mut f = rec.splitn(4, |b| *b == b':');
    let num = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u32>().ok();
    let (uid, gid) = (num(f.next()?)?, num(f.next()?)?);
    let (sec, nsec) = std::str::from_utf8(f.next()?).ok()?.split_once('.')?;
    let mtime = (sec.parse().ok()?, nsec.parse().ok()?);
    let name = f.next()?;
    if name.is_empty() || name.contains(&b'/') {
        return None;
    }
    Some((name.to_vec(), uid, gid, mtime))
}

fn encode_children(records: &[ChildRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, uid, gid, (sec, nsec)) in records {
        out.extend_from_slice(format!("{uid}:{gid}:{sec}.{nsec}:").as_bytes());
        out.extend_from_slice(name);
        out.push(0);
    }
    out
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
        let (fd, full) = match self.open_target(pid, dirfd, &path, flags) {
            Ok(Some(target)) => target,
            Ok(None) => return Answer::Continue,
            Err(e) => return Answer::Done(-(e as i32)),
        };
        if !crate::sys::notif_id_valid(listener, req.id) {
            return Answer::Done(-libc::ESRCH);
        }
        let Ok(st) = nix::sys::stat::fstat(&fd) else { return Answer::Continue };
        let kind = st.st_mode & libc::S_IFMT;
        let unchanged = u32::MAX;
        if kind == libc::S_IFLNK || kind == libc::S_IFIFO {
            return self.chown_child(pid, &st, &full, (uid, gid));
        }
        if kind != libc::S_IFREG && kind != libc::S_IFDIR {
            return Answer::Continue;
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

    /// A symlink or fifo, which can carry no xattr: its owner is recorded on its
    /// directory ([`CHILD_OWNERS_XATTR`]). The entry is chowned to root for real first
    /// (what the step could do itself), so a mount copies it up into the step's layer,
    /// and the record holds the mtime it has then. A target whose directory entry is not
    /// the object the call resolved to (a followed symlink to a fifo) goes to the kernel.
    fn chown_child(&self, pid: u32, st: &libc::stat, full: &[u8], (uid, gid): (u32, u32)) -> Answer {
        let trimmed = full.strip_suffix(b"/").unwrap_or(full);
        let (parent, name) = match trimmed.iter().rposition(|b| *b == b'/') {
            Some(i) => (if i == 0 { &b"/"[..] } else { &trimmed[..i] }, &trimmed[i + 1..]),
            None => return Answer::Continue,
        };
        if name.is_empty() || name == b"." || name == b".." {
            return Answer::Continue;
        }
        let Ok(dir) = self.open_in_root(pid, parent, true) else { return Answer::Continue };
        let name = std::ffi::OsStr::from_bytes(name);
        let nofollow = nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW;
        match nix::sys::stat::fstatat(&dir, name, nofollow) {
            Ok(e) if (e.st_dev, e.st_ino) == (st.st_dev, st.st_ino) => {}
            _ => return Answer::Continue,
        }
        let Ok(dir_file) = nix::fcntl::openat(
            &self.proc_dir,
            format!("self/fd/{}", dir.as_raw_fd()).as_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) else {
            return Answer::Continue;
        };
        let mut records =
            crate::sys::fgetxattr(&dir_file, CHILD_OWNERS_XATTR).map(|v| decode_children(&v)).unwrap_or_default();
        let unchanged = u32::MAX;
        let current = match records.iter().rev().find(|r| r.0 == name.as_bytes() && r.3 == mtime(st)) {
            Some(r) if st.st_uid == 0 && st.st_gid == 0 => (r.1, r.2),
            _ => (st.st_uid, st.st_gid),
        };
        let new = (if uid == unchanged { current.0 } else { uid }, if gid == unchanged { current.1 } else { gid });
        let root = (Some(nix::unistd::Uid::from_raw(0)), Some(nix::unistd::Gid::from_raw(0)));
        if let Err(e) = nix::unistd::fchownat(&dir, name, root.0, root.1, nofollow) {
            return Answer::Done(-(e as i32));
        }
        let Ok(now) = nix::sys::stat::fstatat(&dir, name, nofollow) else { return Answer::Done(-libc::ENOENT) };
        records.retain(|r| r.0 != name.as_bytes());
        if new != (0, 0) {
            records.push((name.as_bytes().to_vec(), new.0, new.1, mtime(&now)));
        }
        let r = if records.is_empty() {
            match crate::sys::fremovexattr(&dir_file, CHILD_OWNERS_XATTR) {
                Err(Errno::ENODATA) => Ok(()),
                r => r,
            }
        } else {
            let value = encode_children(&records);
            if value.len() > MAX_CHILD_OWNERS {
                Err(Errno::ENOSPC)
            } else {
                crate::sys::fsetxattr(&dir_file, CHILD_OWNERS_XATTR, &value)
            }
        };
        match r {
            Ok(()) => Answer::Done(0),
            Err(Errno::E2BIG | Errno::ERANGE) => Answer::Done(-libc::ENOSPC),
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
    fn open_target(&self, pid: u32, dirfd: i32, path: &[u8], flags: i32) -> nix::Result<Option<(OwnedFd, Vec<u8>)>> {
        let proc_path = |rest: &str| format!("{pid}/{rest}");
        if path.is_empty() {
            if flags & libc::AT_EMPTY_PATH == 0 {
                return Err(Errno::ENOENT);
            }
            // fchown(fd): only an fd naming a path under the root (not a pipe, not a file
            // of the host the step was handed).
            let link = nix::fcntl::readlinkat(&self.proc_dir, proc_path(&format!("fd/{dirfd}")).as_str())?;
            let link = link.as_encoded_bytes();
            if !link.starts_with(b"/") {
                return Ok(None);
            }
            // The fd itself is the target: its path is not followed again.
            return self.open_in_root(pid, link, false).map(|fd| Some((fd, link.to_vec())));
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
        self.open_in_root(pid, &full, flags & libc::AT_SYMLINK_NOFOLLOW == 0).map(|fd| Some((fd, full)))
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
        // EAGAIN: a rename anywhere raced a `..` of the path; openat2(2) says to retry.
        let mut tries = 0;
        loop {
            match nix::fcntl::openat2(&root, rel, how) {
                Err(Errno::EAGAIN) if tries < 8 => tries += 1,
                r => return r,
            }
        }
    }
}

use std::os::unix::ffi::OsStrExt;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_records_as_storage_reads_them() {
        let recs = vec![(b"l".to_vec(), 1000, 1000, (7, 5)), (b"a:b".to_vec(), 1, 2, (8, 0))];
        let v = encode_children(&recs);
        assert_eq!(v, b"1000:1000:7.5:l\x001:2:8.0:a:b\x00");
        assert_eq!(decode_children(&v), recs);
        assert_eq!(decode_children(b"x:1:1.0:n\0 1:1:1.0:\x001:1:1:n\x001:1:1.0:a/b\x00"), []);
    }

    #[test]
    fn records_as_containers_storage_writes_them() {
        assert_eq!(encode(123, 456, 0o100644), "123:456:0644");
        assert_eq!(decode(b"123:456:0644"), Some((123, 456)));
        assert_eq!(decode(b"x"), None);
    }
}
