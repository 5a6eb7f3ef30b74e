//! Owners of symlinks and fifos a single-id user namespace cannot hold, recorded on
//! their parent directory.
//!
//! The kernel allows no `user.*` xattr on a symlink or fifo, so [`crate::owner`]'s
//! record cannot go on the entry itself. Instead the parent directory carries
//! [`CHILD_OWNERS_XATTR`]: one record per child, `uid:gid:mtime_sec.mtime_nsec:name`,
//! records separated by NUL (a name holds no NUL; it may hold `:`, which is why it comes
//! last). A record counts only for a child that is a symlink or fifo, owned by root on
//! disk, whose mtime is the recorded one: a child deleted and made again by a step gets
//! a new mtime, so an old record never gives a new entry an owner. Commit writes the
//! recorded owner into the child's tar header; the xattr itself never reaches a layer
//! (`unpack::keep_xattr` drops `user.slipway.*`, and a layer cannot bring one either).
//!
//! The value is bounded by the filesystem's xattr size (ext4: one block for all xattrs
//! of an inode) and by [`MAX_VALUE`]: past that, recording fails with E2BIG and the
//! caller says which directory holds too many.
//!
//! Made by: layer unpack, COPY/ADD (`--chown` and owners kept by `COPY --from`), Stapel
//! git mappings, and `lchown` in RUN steps (`runtime/src/chown_notify.rs`, its own copy
//! of this format: the runtime knows nothing of `storage`).

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The parent directory's record of its symlinks' and fifos' owners.
pub const CHILD_OWNERS_XATTR: &str = "user.slipway.child_owners";

/// The largest value written (the kernel's `XATTR_SIZE_MAX`).
pub const MAX_VALUE: usize = 64 * 1024;

/// One child's recorded owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildOwner {
    pub uid: u32,
    pub gid: u32,
    /// The child's mtime (seconds, nanoseconds) when recorded.
    pub mtime: (i64, i64),
}

/// The records of one directory: (name, owner), in the order written.
pub fn decode(value: &[u8]) -> Vec<(Vec<u8>, ChildOwner)> {
    value.split(|b| *b == 0).filter(|r| !r.is_empty()).filter_map(decode_one).collect()
}

fn decode_one(rec: &[u8]) -> Option<(Vec<u8>, ChildOwner)> {
    let mut f = rec.splitn(4, |b| *b == b':');
    let num = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u32>().ok();
    let uid = num(f.next()?)?;
    let gid = num(f.next()?)?;
    let (sec, nsec) = std::str::from_utf8(f.next()?).ok()?.split_once('.')?;
    let mtime = (sec.parse().ok()?, nsec.parse().ok()?);
    let name = f.next()?;
    if name.is_empty() || name.contains(&b'/') {
        return None;
    }
    Some((name.to_vec(), ChildOwner { uid, gid, mtime }))
}

/// The value for `records`.
pub fn encode(records: &[(Vec<u8>, ChildOwner)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, o) in records {
        out.extend_from_slice(format!("{}:{}:{}.{}:", o.uid, o.gid, o.mtime.0, o.mtime.1).as_bytes());
        out.extend_from_slice(name);
        out.push(0);
    }
    out
}

/// Record (`Some`) or forget (`None`) the owner of the child `name` of the directory
/// `dir` (any fd, `O_PATH` included). The child's mtime is read now: call this after
/// the child's times are final. E2BIG when the records would not fit.
pub fn set(dir: impl AsFd, name: &[u8], owner: Option<(u32, u32)>) -> nix::Result<()> {
    let dir = reopen(dir.as_fd())?;
    let st = nix::sys::stat::fstatat(&dir, std::ffi::OsStr::from_bytes(name), AtFlags::AT_SYMLINK_NOFOLLOW)?;
    let mut records = match crate::sys::fgetxattr(&dir, CHILD_OWNERS_XATTR) {
        Ok(v) => decode(&v),
        Err(Errno::ENODATA) => Vec::new(),
        Err(e) => return Err(e),
    };
    records.retain(|(n, _)| n != name);
    if let Some((uid, gid)) = owner.filter(|o| *o != (0, 0)) {
        records.push((name.to_vec(), ChildOwner { uid, gid, mtime: (st.st_mtime, st.st_mtime_nsec) }));
    }
    if records.is_empty() {
        return match crate::sys::fremovexattr(&dir, CHILD_OWNERS_XATTR) {
            Ok(()) | Err(Errno::ENODATA) => Ok(()),
            Err(e) => Err(e),
        };
    }
    let value = encode(&records);
    if value.len() > MAX_VALUE {
        return Err(Errno::E2BIG);
    }
    match crate::sys::fsetxattr(&dir, CHILD_OWNERS_XATTR, &value) {
        // ext4 says ENOSPC when the inode's xattr space is full.
        Err(Errno::ENOSPC | Errno::ERANGE) => Err(Errno::E2BIG),
        r => r,
    }
}

/// A real fd of the directory `dir` (which may be `O_PATH`), for the xattr calls.
fn reopen(dir: std::os::fd::BorrowedFd<'_>) -> nix::Result<std::os::fd::OwnedFd> {
    nix::fcntl::open(
        format!("/proc/self/fd/{}", dir.as_raw_fd()).as_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// The recorded owner of the symlink or fifo `name` in the directory `parent` (a path,
/// a final symlink not followed), whose metadata is `meta`: only while it is root's on
/// disk and its mtime is the recorded one.
pub fn recorded(parent: &Path, name: &[u8], meta: &std::fs::Metadata) -> Option<(u32, u32)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let ft = meta.file_type();
    if !(ft.is_symlink() || ft.is_fifo()) || meta.uid() != 0 || meta.gid() != 0 {
        return None;
    }
    let value = crate::sys::lgetxattr(parent, CHILD_OWNERS_XATTR.as_bytes()).ok()?;
    lookup(&value, name, (meta.mtime(), meta.mtime_nsec()))
}

/// The owner `value` records for `name` with that mtime.
pub fn lookup(value: &[u8], name: &[u8], mtime: (i64, i64)) -> Option<(u32, u32)> {
    decode(value).into_iter().rev().find(|(n, o)| n == name && o.mtime == mtime).map(|(_, o)| (o.uid, o.gid))
}

/// The owner of the symlink or fifo `name` of the directory `dir` (any fd): its record
/// if it is root's and has one, else its real owner. COPY --from keeps owners with it.
pub fn effective_owner(dir: impl AsFd, name: &[u8]) -> nix::Result<(u32, u32)> {
    let st = nix::sys::stat::fstatat(&dir, std::ffi::OsStr::from_bytes(name), AtFlags::AT_SYMLINK_NOFOLLOW)?;
    let kind = st.st_mode & libc::S_IFMT;
    if st.st_uid != 0 || st.st_gid != 0 || !(kind == libc::S_IFLNK || kind == libc::S_IFIFO) {
        return Ok((st.st_uid, st.st_gid));
    }
    let proc = format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd());
    Ok(crate::sys::getxattr(Path::new(&proc), CHILD_OWNERS_XATTR.as_bytes())
        .ok()
        .and_then(|v| lookup(&v, name, (st.st_mtime, st.st_mtime_nsec)))
        .unwrap_or((0, 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_junk_is_ignored() {
        let o = |uid, gid, s| ChildOwner { uid, gid, mtime: (s, 5) };
        let recs = vec![(b"l".to_vec(), o(1000, 1000, 7)), (b"a:b".to_vec(), o(1, 2, 8))];
        let v = encode(&recs);
        assert_eq!(v, b"1000:1000:7.5:l\x001:2:8.5:a:b\x00");
        assert_eq!(decode(&v), recs);
        assert_eq!(lookup(&v, b"a:b", (8, 5)), Some((1, 2)));
        assert_eq!(lookup(&v, b"l", (7, 6)), None, "another mtime: made again since");
        assert_eq!(
            decode(b"x:1:1.0:n\0\0 1:1:1.0:\x001:1:1:n\x001:1:1.0:a/b\x002:2:3.4:ok\0"),
            [(b"ok".to_vec(), ChildOwner { uid: 2, gid: 2, mtime: (3, 4) })]
        );
    }

    const IN_USERNS: &str = "SLIPWAY_TEST_CHILD_OWNERS_IN_SINGLE_ID_USERNS";

    #[test]
    fn single_id_namespace_records_symlink_owners_on_the_parent() {
        if std::env::var_os(IN_USERNS).is_some() {
            let t = tempfile::tempdir().unwrap();
            std::os::unix::fs::symlink("x", t.path().join("l")).unwrap();
            nix::unistd::mkfifo(&t.path().join("p"), Mode::from_bits_truncate(0o600)).unwrap();
            let dir = nix::fcntl::open(t.path(), OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
            set(&dir, b"l", Some((1000, 1001))).unwrap();
            set(&dir, b"p", Some((7, 8))).unwrap();
            let meta = |n: &str| std::fs::symlink_metadata(t.path().join(n)).unwrap();
            assert_eq!(recorded(t.path(), b"l", &meta("l")), Some((1000, 1001)));
            assert_eq!(effective_owner(&dir, b"p").unwrap(), (7, 8));
            // Made again: the old record does not count.
            std::fs::remove_file(t.path().join("l")).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
            std::os::unix::fs::symlink("x", t.path().join("l")).unwrap();
            assert_eq!(recorded(t.path(), b"l", &meta("l")), None);
            // Root: the record goes; the last one takes the xattr with it.
            set(&dir, b"l", Some((0, 0))).unwrap();
            set(&dir, b"p", None).unwrap();
            assert!(crate::sys::lgetxattr(t.path(), CHILD_OWNERS_XATTR.as_bytes()).is_err());
            // Bounded: too many long names is E2BIG, not a lost record.
            let mut full = false;
            for i in 0..2000 {
                let n = format!("{i:0>200}");
                std::os::unix::fs::symlink("x", t.path().join(&n)).unwrap();
                match set(&dir, n.as_bytes(), Some((1, 1))) {
                    Ok(()) => {}
                    Err(e) => {
                        assert_eq!(e, Errno::E2BIG);
                        full = true;
                        break;
                    }
                }
            }
            assert!(full);
            println!("{}", crate::userns_test::CHECKED);
            return;
        }
        crate::userns_test::rerun_under_unshare(
            &["-r"],
            "child_owners::tests::single_id_namespace_records_symlink_owners_on_the_parent",
            &[(IN_USERNS, std::ffi::OsStr::new("1"))],
            120,
        );
    }
}
