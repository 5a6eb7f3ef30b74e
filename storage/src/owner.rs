//! Owners a single-id user namespace cannot hold, recorded instead of lost.
//!
//! In a namespace that maps one id (a user without `/etc/subuid` ranges) only root can
//! own a file: `chown` to anyone else fails with EINVAL. Where slipway itself sets an
//! owner (unpacking a layer, COPY/ADD, git mappings) and the real chown fails that way,
//! the wanted owner is recorded in the `user.containers.override_stat` xattr of the file
//! or directory, in the format containers/storage writes and fuse-overlayfs reads
//! (`uid:gid:0mode`, mode in octal; a fourth `:type` field, which newer
//! containers/storage adds, is accepted when reading). Committing a layer writes the
//! recorded owner into the tar header and never the xattr itself ([`crate::commit`]).
//!
//! The kernel allows `user.*` xattrs on regular files and directories only: a symlink or
//! fifo whose owner cannot be set keeps root as its owner (noted at debug level).
//!
//! fuse-overlayfs (1.10) refuses to set any `user.containers.*` xattr through its mount
//! (EPERM; it reads and removes them, and copies them up). On a FUSE filesystem the
//! record goes under slipway's own name, [`PRIVATE_XATTR`], in the same format; reading
//! prefers that name, and `fuse_upper::normalize` renames it to [`OVERRIDE_XATTR`] in
//! the upper directory before the commit, so layers are the same as native overlayfs'.
//!
//! The record counts only while the file on disk is root's: a file chowned for real
//! later (in a namespace with the full range) is judged by its real owner.

use nix::errno::Errno;
use nix::unistd::{Gid, Uid};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::sync::OnceLock;

/// The xattr containers/storage and fuse-overlayfs use for an owner and mode that the
/// filesystem cannot hold.
pub const OVERRIDE_XATTR: &str = "user.containers.override_stat";

/// The same record where [`OVERRIDE_XATTR`] cannot be set: through a fuse-overlayfs
/// mount. Read first; never in a layer (`unpack::keep_xattr` drops `user.slipway.*`).
pub const PRIVATE_XATTR: &str = "user.slipway.override_stat";

/// Whether `fd` is on a FUSE filesystem (fuse-overlayfs).
fn on_fuse(fd: impl AsFd) -> bool {
    nix::sys::statfs::fstatfs(fd).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::FUSE_SUPER_MAGIC)
}

/// A recorded owner and mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Override {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
}

impl Override {
    /// `uid:gid:0mode`, as containers/storage's `FormatContainersOverrideXattr`.
    pub fn encode(&self) -> String {
        format!("{}:{}:0{:o}", self.uid, self.gid, self.mode & 0o7777)
    }

    /// Reads `uid:gid:mode[:type]` (mode in octal). Anything else is `None`.
    pub fn decode(value: &[u8]) -> Option<Override> {
        let text = std::str::from_utf8(value).ok()?;
        let mut f = text.trim_end_matches('\0').split(':');
        let uid = f.next()?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        let mode = u32::from_str_radix(f.next()?, 8).ok()?;
        if mode > 0o7777 || f.count() > 1 {
            return None;
        }
        Some(Override { uid, gid, mode })
    }
}

/// Whether this process runs in a user namespace that maps a single uid (read once from
/// `/proc/self/uid_map`).
pub fn single_id_namespace() -> bool {
    static SINGLE: OnceLock<bool> = OnceLock::new();
    *SINGLE.get_or_init(|| {
        let Ok(map) = std::fs::read_to_string("/proc/self/uid_map") else { return false };
        let total: u64 = map.lines().filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok()).sum();
        total <= 1
    })
}

/// How an owner was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// `chown` worked.
    Set,
    /// Recorded in [`OVERRIDE_XATTR`] (single-id namespace).
    Recorded,
}

/// `fchown(fd, uid, gid)`; in a single-id namespace, where that fails with EINVAL, the
/// owner is recorded with `mode` instead. Any other failure is returned.
pub fn chown_fd(fd: impl AsFd, uid: u32, gid: u32, mode: u32) -> nix::Result<Applied> {
    match nix::unistd::fchown(fd.as_fd(), Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))) {
        Ok(()) => {
            // A file that had a record (copied up from a layer) has a real owner now.
            if uid == 0 && gid == 0 {
                drop_record(fd.as_fd(), mode)?;
            }
            Ok(Applied::Set)
        }
        Err(Errno::EINVAL) if single_id_namespace() => record(fd, uid, gid, mode).map(|()| Applied::Recorded),
        Err(e) => Err(e),
    }
}

/// Record `uid:gid` and `mode` on `fd` (a regular file or directory opened for reading
/// or writing, not `O_PATH`): [`OVERRIDE_XATTR`], or [`PRIVATE_XATTR`] on a FUSE
/// filesystem that refuses the former.
pub fn record(fd: impl AsFd, uid: u32, gid: u32, mode: u32) -> nix::Result<()> {
    let value = Override { uid, gid, mode }.encode();
    match crate::sys::fsetxattr(fd.as_fd(), OVERRIDE_XATTR, value.as_bytes()) {
        Ok(()) => {
            // An older record under the private name would win when read.
            match crate::sys::fremovexattr(fd.as_fd(), PRIVATE_XATTR) {
                Ok(()) | Err(Errno::ENODATA) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(Errno::EPERM) if on_fuse(fd.as_fd()) => crate::sys::fsetxattr(fd, PRIVATE_XATTR, value.as_bytes()),
        Err(e) => Err(e),
    }
}

/// Drop the record of `fd` (its real owner, root, counts again). Where the shared
/// record cannot be removed (FUSE), a private record of root says the same.
fn drop_record(fd: impl AsFd, mode: u32) -> nix::Result<()> {
    for name in [PRIVATE_XATTR, OVERRIDE_XATTR] {
        match crate::sys::fremovexattr(fd.as_fd(), name) {
            Ok(()) | Err(Errno::ENODATA) | Err(Errno::ENOTSUP) => {}
            Err(Errno::EPERM) if on_fuse(fd.as_fd()) => return record(fd, 0, 0, mode),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The record of `path` (not following a final symlink): the private name first.
fn lread(path: &Path) -> Option<Override> {
    [PRIVATE_XATTR, OVERRIDE_XATTR]
        .iter()
        .find_map(|n| crate::sys::lgetxattr(path, n.as_bytes()).ok())
        .and_then(|v| Override::decode(&v))
}

/// Whether `path` (not following a final symlink) carries a record under either name.
pub fn has_record(path: &Path) -> bool {
    [PRIVATE_XATTR, OVERRIDE_XATTR].iter().any(|n| crate::sys::lgetxattr(path, n.as_bytes()).is_ok())
}

/// The recorded owner of `path` (not following a final symlink), if it has one and its
/// real owner is root (the only owner a single-id namespace gives).
pub fn recorded(path: &Path, real_uid: u32, real_gid: u32) -> Option<Override> {
    if real_uid != 0 || real_gid != 0 {
        return None;
    }
    lread(path)
}

/// The owner of the file `fd` refers to (any kind of fd, `O_PATH` included): its record
/// if it has one, else its real owner. COPY --from keeps owners through this.
pub fn effective_owner(fd: impl AsFd) -> nix::Result<(u32, u32)> {
    let st = nix::sys::stat::fstat(fd.as_fd())?;
    if st.st_uid != 0 || st.st_gid != 0 {
        return Ok((st.st_uid, st.st_gid));
    }
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFREG && kind != libc::S_IFDIR {
        return Ok((0, 0));
    }
    // getxattr through /proc follows the magic link to the file itself, which works
    // for O_PATH fds (fgetxattr does not).
    let proc = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
    Ok([PRIVATE_XATTR, OVERRIDE_XATTR]
        .iter()
        .find_map(|n| crate::sys::getxattr(Path::new(&proc), n.as_bytes()).ok())
        .and_then(|v| Override::decode(&v))
        .map_or((0, 0), |o| (o.uid, o.gid)))
}

/// Record `uid:gid` on every file and directory of the upper directory `upper` that a
/// step running as root (in place of that unmapped user) created: root's on disk, with
/// no record yet, and new by `existed` (called with the entry's path and its path
/// relative to `upper`) saying no; symlinks and fifos likewise, on their directory
/// ([`crate::child_owners`]). Whiteouts are left alone. A
/// fuse-overlayfs upper directory may be passed before `fuse_upper::normalize`: a
/// private record counts as a record.
/// Returns how many entries got the record.
pub fn record_new_entries(
    upper: &Path,
    uid: u32,
    gid: u32,
    existed: &dyn Fn(&Path, &Path) -> bool,
) -> crate::error::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let io = |what: &'static str, p: &Path| crate::error::StorageError::io(what, p.to_path_buf());
    let mut todo = vec![std::path::PathBuf::new()];
    let mut n = 0;
    while let Some(rel) = todo.pop() {
        if rel.components().count() >= crate::MAX_TREE_DEPTH {
            return Err(crate::error::StorageError::TooDeep { path: upper.join(&rel), limit: crate::MAX_TREE_DEPTH });
        }
        let dir = upper.join(&rel);
        for e in std::fs::read_dir(&dir).map_err(io("reading directory", &dir))? {
            let e = e.map_err(io("reading directory", &dir))?;
            let (path, r) = (e.path(), rel.join(e.file_name()));
            let meta = std::fs::symlink_metadata(&path).map_err(io("stat", &path))?;
            let ft = meta.file_type();
            if ft.is_symlink() || std::os::unix::fs::FileTypeExt::is_fifo(&ft) {
                let name = std::os::unix::ffi::OsStrExt::as_bytes(e.file_name().as_os_str()).to_vec();
                if meta.uid() == 0
                    && meta.gid() == 0
                    && crate::child_owners::recorded(&dir, &name, &meta).is_none()
                    && !existed(&path, &r)
                {
                    let parent = nix::fcntl::open(
                        &dir,
                        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
                        nix::sys::stat::Mode::empty(),
                    )
                    .map_err(crate::error::StorageError::sys("opening", dir.display().to_string()))?;
                    crate::child_owners::set(&parent, &name, Some((uid, gid))).map_err(
                        crate::error::StorageError::sys(
                            "recording (on its directory) the owner of",
                            path.display().to_string(),
                        ),
                    )?;
                    n += 1;
                }
                continue;
            }
            if !(ft.is_file() || ft.is_dir()) {
                continue;
            }
            if meta.uid() == 0 && meta.gid() == 0 && !has_record(&path) && !existed(&path, &r) {
                let value = Override { uid, gid, mode: meta.mode() & 0o7777 }.encode();
                crate::sys::lsetxattr(&path, OVERRIDE_XATTR.as_bytes(), value.as_bytes())
                    .map_err(crate::error::StorageError::sys("recording the owner of", path.display().to_string()))?;
                n += 1;
            }
            if ft.is_dir() {
                todo.push(r);
            }
        }
    }
    Ok(n)
}

/// Whether the upper-directory entry `path` was copied up by overlayfs from a lower
/// layer (overlayfs marks copies with `user.overlay.origin` under `userxattr`).
pub fn copied_up(path: &Path) -> bool {
    crate::sys::lgetxattr(path, b"user.overlay.origin").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_containers_storage_and_decodes_what_fuse_overlayfs_reads() {
        let o = Override { uid: 123, gid: 456, mode: 0o4755 };
        assert_eq!(o.encode(), "123:456:04755");
        assert_eq!(Override::decode(b"123:456:04755"), Some(o));
        // fuse-overlayfs' own tools write the mode without the leading 0.
        assert_eq!(Override::decode(b"1000:1000:644"), Some(Override { uid: 1000, gid: 1000, mode: 0o644 }));
        // Newer containers/storage adds the file type.
        assert_eq!(Override::decode(b"0:5:0700:dir"), Some(Override { uid: 0, gid: 5, mode: 0o700 }));
        assert_eq!(Override { uid: 0, gid: 0, mode: 0o100644 }.encode(), "0:0:0644", "type bits dropped");
        for bad in [&b""[..], b"1:2", b"a:2:0644", b"1:2:0999", b"1:2:017777", b"-1:2:0644", b"1:2:0644:dir:x"] {
            assert_eq!(Override::decode(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    const IN_USERNS: &str = "SLIPWAY_TEST_OWNER_IN_SINGLE_ID_USERNS";

    #[test]
    fn single_id_namespace_records_what_it_cannot_chown() {
        if std::env::var_os(IN_USERNS).is_some() {
            assert!(single_id_namespace());
            let t = tempfile::tempdir().unwrap();
            let f = std::fs::File::create(t.path().join("f")).unwrap();
            assert_eq!(chown_fd(&f, 123, 456, 0o640).unwrap(), Applied::Recorded);
            let path = t.path().join("f");
            assert_eq!(recorded(&path, 0, 0), Some(Override { uid: 123, gid: 456, mode: 0o640 }));
            assert_eq!(recorded(&path, 5, 0), None, "a real owner wins");
            let opath = nix::fcntl::open(&path, nix::fcntl::OFlag::O_PATH, nix::sys::stat::Mode::empty()).unwrap();
            assert_eq!(effective_owner(&opath).unwrap(), (123, 456));
            // Root is a real owner here: the record goes.
            assert_eq!(chown_fd(&f, 0, 0, 0o640).unwrap(), Applied::Set);
            assert_eq!(recorded(&path, 0, 0), None);
            println!("{}", crate::userns_test::CHECKED);
            return;
        }
        crate::userns_test::rerun_under_unshare(
            &["-r"],
            "owner::tests::single_id_namespace_records_what_it_cannot_chown",
            &[(IN_USERNS, std::ffi::OsStr::new("1"))],
            120,
        );
    }
}
