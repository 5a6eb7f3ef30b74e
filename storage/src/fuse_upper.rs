//! A fuse-overlayfs upper directory rewritten in overlayfs' own format.
//!
//! fuse-overlayfs (1.10, measured inside slipway's user namespace) writes whiteouts as
//! overlayfs does (character devices 0/0; `.wh.<name>` files where it cannot create
//! those), but marks an opaque directory its own way: `trusted.overlay.opaque` is refused
//! in a user namespace, so it sets `user.fuseoverlayfs.opaque=y` and also creates a
//! `.wh..wh..opq` file in the directory (and sometimes a whiteout `.wh..opq` beside it).
//! Copied-up files carry `user.fuseoverlayfs.origin`. [`normalize`] rewrites all of that
//! the way overlayfs with `userxattr` writes it, so a layer is the same bytes whichever
//! driver made it, later mounts of any kind read it, and no fuse-overlayfs bookkeeping
//! reaches a layer tar.

use crate::error::{Result, StorageError};
use crate::unpack::OPAQUE_XATTR;
use nix::sys::stat::{Mode, SFlag};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// fuse-overlayfs' own xattrs (`opaque`, `origin`), never part of a layer.
const FUSE_XATTR_PREFIX: &[u8] = b"user.fuseoverlayfs.";
const FUSE_OPAQUE_XATTR: &[u8] = b"user.fuseoverlayfs.opaque";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const WHITEOUT_PREFIX: &[u8] = b".wh.";

/// Rewrite the upper directory `upper` (not mounted any more) in overlayfs format.
/// Symlinks are never followed; at most [`crate::MAX_TREE_DEPTH`] levels.
pub fn normalize(upper: &Path) -> Result<()> {
    let mut stack: Vec<(PathBuf, usize)> = vec![(upper.to_path_buf(), 0)];
    drop_fuse_xattrs(upper)?;
    while let Some((dir, depth)) = stack.pop() {
        if depth >= crate::MAX_TREE_DEPTH {
            return Err(StorageError::TooDeep { path: dir, limit: crate::MAX_TREE_DEPTH });
        }
        normalize_dir(&dir)?;
        for e in std::fs::read_dir(&dir).map_err(StorageError::io("reading directory", &dir))? {
            let e = e.map_err(StorageError::io("reading directory", &dir))?;
            let path = e.path();
            drop_fuse_xattrs(&path)?;
            if e.file_type().map_err(StorageError::io("stat", &path))?.is_dir() {
                stack.push((path, depth + 1));
            }
        }
    }
    Ok(())
}

/// The opaque marker and `.wh.` files of `dir` as overlayfs writes them.
fn normalize_dir(dir: &Path) -> Result<()> {
    let marker = dir.join(OPAQUE_MARKER);
    let has_marker = std::fs::symlink_metadata(&marker).is_ok_and(|m| m.is_file());
    let fuse_opaque = crate::sys::lgetxattr(dir, FUSE_OPAQUE_XATTR).is_ok_and(|v| v == b"y");
    if has_marker || fuse_opaque {
        crate::sys::lsetxattr(dir, OPAQUE_XATTR.as_bytes(), b"y")
            .map_err(StorageError::sys("marking opaque", dir.display().to_string()))?;
        if has_marker {
            std::fs::remove_file(&marker).map_err(StorageError::io("removing", &marker))?;
        }
        // A whiteout of the marker's own name hides nothing in an opaque directory.
        let stray = dir.join(".wh..opq");
        if std::fs::symlink_metadata(&stray).is_ok_and(|m| is_whiteout(&m)) {
            std::fs::remove_file(&stray).map_err(StorageError::io("removing", &stray))?;
        }
    }
    for e in std::fs::read_dir(dir).map_err(StorageError::io("reading directory", dir))? {
        let e = e.map_err(StorageError::io("reading directory", dir))?;
        let name = e.file_name();
        let Some(hidden) = name.as_bytes().strip_prefix(WHITEOUT_PREFIX) else { continue };
        let path = e.path();
        if hidden.is_empty() || !e.file_type().map_err(StorageError::io("stat", &path))?.is_file() {
            continue;
        }
        let target = dir.join(std::ffi::OsStr::from_bytes(hidden));
        if std::fs::symlink_metadata(&target).is_err() {
            nix::sys::stat::mknod(&target, SFlag::S_IFCHR, Mode::empty(), 0)
                .map_err(StorageError::sys("creating whiteout", target.display().to_string()))?;
        }
        std::fs::remove_file(&path).map_err(StorageError::io("removing", &path))?;
    }
    Ok(())
}

fn is_whiteout(m: &std::fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn drop_fuse_xattrs(path: &Path) -> Result<()> {
    let names =
        crate::sys::llistxattr(path).map_err(StorageError::sys("listing xattrs of", path.display().to_string()))?;
    for n in names.iter().filter(|n| n.starts_with(FUSE_XATTR_PREFIX)) {
        crate::sys::lremovexattr(path, n)
            .map_err(StorageError::sys("removing an xattr of", path.display().to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuse_overlayfs_markers_become_overlayfs_ones() {
        let t = tempfile::tempdir().unwrap();
        let u = t.path();
        std::fs::create_dir_all(u.join("d/sub")).unwrap();
        std::fs::write(u.join("d/.wh..wh..opq"), "").unwrap();
        std::fs::write(u.join("d/new"), "n").unwrap();
        std::fs::write(u.join("d/sub/.wh.gone"), "").unwrap();
        std::fs::write(u.join("kept"), "k").unwrap();
        let xattrs = crate::sys::lsetxattr(&u.join("d"), FUSE_OPAQUE_XATTR, b"y").is_ok()
            && crate::sys::lsetxattr(&u.join("kept"), b"user.fuseoverlayfs.origin", b"kept").is_ok()
            && crate::sys::lsetxattr(&u.join("kept"), b"user.mine", b"1").is_ok();
        // Whiteouts (0/0) may be created by anyone since Linux 5.8; skip where refused.
        let stray = nix::sys::stat::mknod(&u.join("d/.wh..opq"), SFlag::S_IFCHR, Mode::empty(), 0).is_ok();
        if !stray {
            std::fs::remove_file(u.join("d/sub/.wh.gone")).unwrap();
        }
        normalize(u).unwrap();

        let names = |d: &str| {
            let mut v: Vec<String> =
                std::fs::read_dir(u.join(d)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            v.sort();
            v
        };
        assert_eq!(names("d"), ["new", "sub"]);
        if stray {
            assert_eq!(names("d/sub"), ["gone"]);
            assert!(is_whiteout(&std::fs::symlink_metadata(u.join("d/sub/gone")).unwrap()));
        }
        if xattrs {
            assert_eq!(crate::sys::lgetxattr(&u.join("d"), OPAQUE_XATTR.as_bytes()).unwrap(), b"y");
            assert!(crate::sys::lgetxattr(&u.join("d"), FUSE_OPAQUE_XATTR).is_err());
            let left = crate::sys::llistxattr(&u.join("kept")).unwrap();
            assert_eq!(left, [b"user.mine".to_vec()]);
        }
    }
}
