//! Removing a directory tree that a build step may have made hostile: thousands of
//! levels deep (past `remove_dir_all`'s fd and path limits), directories with mode 0000,
//! symlinks anywhere.
//!
//! [`remove_tree`] is iterative and holds two directory fds at any time: it descends
//! with `openat(O_NOFOLLOW)`, remembers each level by name and (dev, inode), and climbs
//! back through `..`, checking that it lands on the directory it came from (if not, the
//! tree moved under it, and it stops with an error). Symlinks are unlinked, never
//! followed. A directory missing `rwx` for its owner gets it first.

use crate::error::{Result, StorageError};
use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag};
use nix::unistd::UnlinkatFlags;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One level of the descent: the directory's name in its parent, its identity, and the
/// subdirectories still to remove.
struct Level {
    name: OsString,
    id: (u64, u64),
    subdirs: Vec<OsString>,
}

/// Removes `path` and everything below it; a missing `path` is fine.
pub fn remove_tree(path: &Path) -> Result<()> {
    let (parent, name) = match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) => (if p.as_os_str().is_empty() { Path::new(".") } else { p }, n),
        _ => return Err(StorageError::Other(format!("refusing to remove {}", path.display()))),
    };
    let parent_fd = match nix::fcntl::open(parent, dir_flags(), Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(StorageError::sys("opening", parent.display().to_string())(e)),
    };
    remove_tree_at(&parent_fd, name, path)
}

/// Removes the entry `name` of the directory `parent` (whatever it is, never following
/// a symlink). `shown` names it in errors.
pub fn remove_tree_at(parent: &OwnedFd, name: &OsStr, shown: &Path) -> Result<()> {
    let st = match nix::sys::stat::fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(StorageError::sys("stat", shown.display().to_string())(e)),
    };
    if !is_dir(st.st_mode) {
        return unlink(parent, name, false, shown);
    }
    let err = |action: &'static str, stack: &[Level]| {
        let mut p = shown.to_path_buf();
        p.extend(stack.iter().skip(1).map(|l| &l.name));
        StorageError::sys(action, p.display().to_string())
    };
    let top = enter(parent, name, st.st_mode).map_err(err("opening", &[]))?;
    let mut stack = vec![Level { name: name.to_owned(), id: (st.st_dev, st.st_ino), subdirs: Vec::new() }];
    let mut cur = top;
    stack[0].subdirs = clear_files(&cur).map_err(err("emptying", &stack))?;
    loop {
        let level = stack.last_mut().expect("the stack holds the top");
        if let Some(sub) = level.subdirs.pop() {
            match nix::sys::stat::fstatat(&cur, sub.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if is_dir(st.st_mode) => {
                    let next = enter(&cur, &sub, st.st_mode).map_err(err("opening", &stack))?;
                    stack.push(Level { name: sub, id: (st.st_dev, st.st_ino), subdirs: Vec::new() });
                    cur = next;
                    let subdirs = clear_files(&cur).map_err(err("emptying", &stack))?;
                    stack.last_mut().expect("just pushed").subdirs = subdirs;
                }
                Ok(_) => unlink(&cur, &sub, false, shown)?,
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(err("stat", &stack)(e)),
            }
            continue;
        }
        // `cur` is empty: climb to its parent and remove it there.
        let done = stack.pop().expect("non-empty");
        if stack.is_empty() {
            drop(cur);
            return unlink(parent, &done.name, true, shown);
        }
        let up = nix::fcntl::openat(&cur, "..", dir_flags(), Mode::empty()).map_err(err("climbing out of", &stack))?;
        let st = nix::sys::stat::fstat(&up).map_err(err("stat", &stack))?;
        let want = stack.last().expect("non-empty").id;
        if (st.st_dev, st.st_ino) != want {
            return Err(StorageError::Other(format!(
                "removing {}: the tree moved while it was being removed; try again",
                shown.display()
            )));
        }
        cur = up;
        let mut p = shown.to_path_buf();
        p.extend(stack.iter().skip(1).map(|l| &l.name));
        unlink(&cur, &done.name, true, &p)?;
    }
}

fn dir_flags() -> OFlag {
    OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC
}

fn is_dir(mode: libc::mode_t) -> bool {
    SFlag::from_bits_truncate(mode & libc::S_IFMT) == SFlag::S_IFDIR
}

/// Opens the subdirectory `name` of `parent`, giving its owner `rwx` first if it lacks
/// it (a step may leave 0000 directories).
fn enter(parent: &OwnedFd, name: &OsStr, mode: libc::mode_t) -> nix::Result<OwnedFd> {
    if mode & 0o700 != 0o700 {
        let m = Mode::from_bits_truncate((mode & 0o7777) | 0o700);
        nix::sys::stat::fchmodat(parent, name, m, FchmodatFlags::NoFollowSymlink)
            .or_else(|e| if e == Errno::EOPNOTSUPP { fchmodat_follow(parent, name, m) } else { Err(e) })?;
    }
    nix::fcntl::openat(parent, name, dir_flags(), Mode::empty())
}

/// `fchmodat` without `AT_SYMLINK_NOFOLLOW` (older kernels refuse the flag); the entry
/// was just seen to be a directory, and `openat(O_NOFOLLOW)` after it re-checks.
fn fchmodat_follow(parent: &OwnedFd, name: &OsStr, m: Mode) -> nix::Result<()> {
    nix::sys::stat::fchmodat(parent, name, m, FchmodatFlags::FollowSymlink)
}

/// Unlinks every non-directory in `dir`; returns the names of its subdirectories.
fn clear_files(dir: &OwnedFd) -> nix::Result<Vec<OsString>> {
    let fd = dir.as_fd().try_clone_to_owned().map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
    let mut d = Dir::from_fd(fd)?;
    let mut subdirs = Vec::new();
    let mut files = Vec::new();
    for entry in d.iter() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = OsStr::from_bytes(name).to_owned();
        let dir = match entry.file_type() {
            Some(Type::Directory) => true,
            Some(_) => false,
            None => nix::sys::stat::fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                .is_ok_and(|st| is_dir(st.st_mode)),
        };
        if dir { subdirs.push(name) } else { files.push(name) }
    }
    for f in files {
        match nix::unistd::unlinkat(dir, f.as_os_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(subdirs)
}

fn unlink(parent: &OwnedFd, name: &OsStr, dir: bool, shown: &Path) -> Result<()> {
    let flags = if dir { UnlinkatFlags::RemoveDir } else { UnlinkatFlags::NoRemoveDir };
    match nix::unistd::unlinkat(parent, name, flags) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => {
            let p: PathBuf = if shown.file_name() == Some(name) { shown.to_path_buf() } else { shown.join(name) };
            Err(StorageError::sys("removing", p.display().to_string())(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// `levels` nested directories named `d`, made with mkdirat so no path grows long.
    fn deep_tree(root: &Path, levels: usize) {
        let mut fd = nix::fcntl::open(root, dir_flags(), Mode::empty()).unwrap();
        for i in 0..levels {
            nix::sys::stat::mkdirat(&fd, "d", Mode::from_bits_truncate(0o755)).unwrap();
            if i % 500 == 0 {
                let f = nix::fcntl::openat(&fd, "f", OFlag::O_CREAT | OFlag::O_WRONLY, Mode::from_bits_truncate(0o644))
                    .unwrap();
                drop(f);
                nix::unistd::symlinkat("/", &fd, "up").unwrap();
            }
            fd = nix::fcntl::openat(&fd, "d", dir_flags(), Mode::empty()).unwrap();
        }
        // A 0000 directory at the bottom, holding a file.
        nix::sys::stat::mkdirat(&fd, "locked", Mode::from_bits_truncate(0o755)).unwrap();
        let locked = nix::fcntl::openat(&fd, "locked", dir_flags(), Mode::empty()).unwrap();
        drop(
            nix::fcntl::openat(&locked, "x", OFlag::O_CREAT | OFlag::O_WRONLY, Mode::from_bits_truncate(0o644))
                .unwrap(),
        );
        nix::sys::stat::fchmod(&locked, Mode::empty()).unwrap();
    }

    #[test]
    fn removes_a_3000_level_tree_with_a_0000_directory() {
        let t = tempfile::tempdir().unwrap();
        let run = t.path().join("run-x");
        std::fs::create_dir(&run).unwrap();
        deep_tree(&run, 3000);
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o000)).unwrap();
        remove_tree(&run).unwrap();
        assert!(!run.exists());
        assert!(t.path().exists());
    }

    #[test]
    fn never_follows_symlinks_and_accepts_missing_paths() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"k").unwrap();
        let tree = t.path().join("tree");
        std::fs::create_dir_all(tree.join("a")).unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/link")).unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        assert!(outside.join("keep").exists());
        remove_tree(&tree).unwrap();
        // A symlink given as the path itself is unlinked, not followed.
        std::os::unix::fs::symlink(&outside, t.path().join("l")).unwrap();
        remove_tree(&t.path().join("l")).unwrap();
        assert!(outside.join("keep").exists());
    }
}
