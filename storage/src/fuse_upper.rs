//! A fuse-overlayfs upper directory rewritten in overlayfs' own format.
//!
//! fuse-overlayfs (1.10, measured inside slipway's user namespace) writes whiteouts as
//! overlayfs does (character devices 0/0; `.wh.<name>` files where it cannot create
//! those), but marks an opaque directory its own way: `trusted.overlay.opaque` is refused
//! in a user namespace, so it sets `user.fuseoverlayfs.opaque=y` and also creates a
//! `.wh..wh..opq` file in the directory (and sometimes a whiteout `.wh..opq` beside it).
//! It also marks every directory it creates opaque, where overlayfs marks only one made
//! in place of a path the lower layers show (a mark on a new path hides nothing).
//! Copied-up files carry `user.fuseoverlayfs.origin` (copied-up directories carry
//! nothing). fuse-overlayfs refuses `user.containers.*` xattrs set through its mount,
//! so an owner record made through it is under [`crate::owner::PRIVATE_XATTR`].
//! [`normalize`] rewrites all of that the way overlayfs with `userxattr` writes it (the
//! record under [`crate::owner::OVERRIDE_XATTR`]), so a layer is the same bytes
//! whichever driver made it, later mounts of any kind read it, and no fuse-overlayfs
//! bookkeeping reaches a layer tar.

use crate::error::{Result, StorageError};
use crate::owner::{OVERRIDE_XATTR, Override, PRIVATE_XATTR};
use crate::unpack::OPAQUE_XATTR;
use nix::sys::stat::{Mode, SFlag};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// fuse-overlayfs' own xattrs (`opaque`, `origin`), never part of a layer.
const FUSE_XATTR_PREFIX: &[u8] = b"user.fuseoverlayfs.";
const FUSE_OPAQUE_XATTR: &[u8] = b"user.fuseoverlayfs.opaque";
const FUSE_ORIGIN_XATTR: &[u8] = b"user.fuseoverlayfs.origin";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const WHITEOUT_PREFIX: &[u8] = b".wh.";

/// Rewrite the upper directory `upper` (not mounted any more) over the layer
/// directories `lowers` (bottom first) in overlayfs format. Symlinks are never followed;
/// at most [`crate::MAX_TREE_DEPTH`] levels.
pub fn normalize(upper: &Path, lowers: &[PathBuf]) -> Result<()> {
    let mut stack: Vec<(PathBuf, usize)> = vec![(upper.to_path_buf(), 0)];
    drop_fuse_xattrs(upper)?;
    while let Some((dir, depth)) = stack.pop() {
        if depth >= crate::MAX_TREE_DEPTH {
            return Err(StorageError::TooDeep { path: dir, limit: crate::MAX_TREE_DEPTH });
        }
        let rel = dir.strip_prefix(upper).unwrap_or(Path::new(""));
        normalize_dir(&dir, rel, lowers)?;
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

/// The opaque marker and `.wh.` files of `dir` (`rel` in the rootfs) as overlayfs
/// writes them.
fn normalize_dir(dir: &Path, rel: &Path, lowers: &[PathBuf]) -> Result<()> {
    let marker = dir.join(OPAQUE_MARKER);
    let has_marker = std::fs::symlink_metadata(&marker).is_ok_and(|m| m.is_file());
    let fuse_opaque = crate::sys::lgetxattr(dir, FUSE_OPAQUE_XATTR).is_ok_and(|v| v == b"y");
    if has_marker || fuse_opaque {
        if !rel.as_os_str().is_empty() && shown_by(lowers, rel) {
            crate::sys::lsetxattr(dir, OPAQUE_XATTR.as_bytes(), b"y")
                .map_err(StorageError::sys("marking opaque", dir.display().to_string()))?;
        }
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

/// Whether the layers `lowers` (bottom first) show something at `rel`: the topmost
/// layer that says anything about it (an entry, a whiteout, a non-directory or an opaque
/// directory on the way) decides.
fn shown_by(lowers: &[PathBuf], rel: &Path) -> bool {
    let parts: Vec<_> = rel.components().collect();
    for layer in lowers.iter().rev() {
        let mut p = layer.clone();
        for (i, c) in parts.iter().enumerate() {
            p.push(c);
            let Ok(m) = std::fs::symlink_metadata(&p) else { break };
            if is_whiteout(&m) {
                return false;
            }
            if i + 1 == parts.len() {
                return true;
            }
            if !m.is_dir() {
                return false;
            }
            if crate::sys::lgetxattr(&p, OPAQUE_XATTR.as_bytes()).is_ok_and(|v| v == b"y") {
                // Nothing below this layer shows under `p`: this layer alone decides.
                let rest: PathBuf = parts[i + 1..].iter().collect();
                return std::fs::symlink_metadata(p.join(rest)).is_ok_and(|m| !is_whiteout(&m));
            }
        }
    }
    false
}

fn is_whiteout(m: &std::fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

/// Whether the upper-directory entry `path` (before [`normalize`]) was copied up from a
/// lower layer rather than made by the step: a file copied up carries
/// `user.fuseoverlayfs.origin`; a directory copied up carries nothing, while one the
/// step made (also in place of a deleted one) is marked opaque.
pub fn copied_up(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            !(crate::sys::lgetxattr(path, FUSE_OPAQUE_XATTR).is_ok_and(|v| v == b"y")
                || std::fs::symlink_metadata(path.join(OPAQUE_MARKER)).is_ok_and(|m| m.is_file()))
        }
        Ok(_) => crate::sys::lgetxattr(path, FUSE_ORIGIN_XATTR).is_ok(),
        Err(_) => false,
    }
}

/// fuse-overlayfs' own xattrs go; an owner record under the private name becomes the
/// shared one (a record of root: none).
fn drop_fuse_xattrs(path: &Path) -> Result<()> {
    let names =
        crate::sys::llistxattr(path).map_err(StorageError::sys("listing xattrs of", path.display().to_string()))?;
    let shown = || path.display().to_string();
    for n in names.iter().filter(|n| n.starts_with(FUSE_XATTR_PREFIX)) {
        crate::sys::lremovexattr(path, n).map_err(StorageError::sys("removing an xattr of", shown()))?;
    }
    if names.iter().any(|n| n == PRIVATE_XATTR.as_bytes()) {
        let value = crate::sys::lgetxattr(path, PRIVATE_XATTR.as_bytes())
            .map_err(StorageError::sys("reading the owner record of", shown()))?;
        match Override::decode(&value) {
            Some(o) if (o.uid, o.gid) != (0, 0) => crate::sys::lsetxattr(path, OVERRIDE_XATTR.as_bytes(), &value)
                .map_err(StorageError::sys("recording the owner of", shown()))?,
            // A record of root: the real owner counts. An unreadable one (a step's own
            // setfattr) says nothing.
            Some(_) => match crate::sys::lremovexattr(path, OVERRIDE_XATTR.as_bytes()) {
                Ok(()) | Err(nix::errno::Errno::ENODATA) => {}
                Err(e) => return Err(StorageError::sys("dropping the owner record of", shown())(e)),
            },
            None => {}
        }
        crate::sys::lremovexattr(path, PRIVATE_XATTR.as_bytes())
            .map_err(StorageError::sys("removing an xattr of", shown()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_lower_layers_show() {
        let t = tempfile::tempdir().unwrap();
        let (l1, l2) = (t.path().join("l1"), t.path().join("l2"));
        std::fs::create_dir_all(l1.join("a/b")).unwrap();
        std::fs::create_dir_all(l1.join("o/old")).unwrap();
        std::fs::create_dir_all(l2.join("o")).unwrap();
        std::fs::write(l2.join("f"), "").unwrap();
        let lowers = [l1, l2.clone()];
        let shown = |p: &str| shown_by(&lowers, Path::new(p));
        assert!(shown("a") && shown("a/b") && shown("o") && shown("o/old") && shown("f"));
        assert!(!shown("new") && !shown("a/new") && !shown("f/x"));
        if crate::sys::lsetxattr(&l2.join("o"), OPAQUE_XATTR.as_bytes(), b"y").is_ok() {
            assert!(!shown("o/old"), "an opaque directory above hides it");
        }
        if nix::sys::stat::mknod(&l2.join("a"), SFlag::S_IFCHR, Mode::empty(), 0).is_ok() {
            assert!(!shown("a/b"), "a whiteout above hides it");
        }
    }

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
        if xattrs {
            assert!(copied_up(&u.join("kept")) && !copied_up(&u.join("d")) && !copied_up(&u.join("d/new")));
            // Owner records made through the mount: `d/new`'s replaces the shared one,
            // `kept`'s of root drops it.
            for (p, name, v) in [
                ("d/new", OVERRIDE_XATTR, "1:1:0644"),
                ("d/new", PRIVATE_XATTR, "1000:1000:0644"),
                ("kept", OVERRIDE_XATTR, "5:5:0644"),
                ("kept", PRIVATE_XATTR, "0:0:0644"),
            ] {
                crate::sys::lsetxattr(&u.join(p), name.as_bytes(), v.as_bytes()).unwrap();
            }
        }
        // Whiteouts (0/0) may be created by anyone since Linux 5.8; skip where refused.
        let stray = nix::sys::stat::mknod(&u.join("d/.wh..opq"), SFlag::S_IFCHR, Mode::empty(), 0).is_ok();
        if !stray {
            std::fs::remove_file(u.join("d/sub/.wh.gone")).unwrap();
        }
        // `d` is in a lower layer, `d/sub` is new: only `d` stays opaque.
        let lower = t.path().join("lower");
        std::fs::create_dir_all(lower.join("d")).unwrap();
        std::fs::write(u.join("d/sub/.wh..wh..opq"), "").unwrap();
        let u = &u.join("upper");
        std::fs::create_dir(u).unwrap();
        for n in ["d", "kept"] {
            std::fs::rename(t.path().join(n), u.join(n)).unwrap();
        }
        normalize(u, &[lower]).unwrap();

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
            assert!(crate::sys::lgetxattr(&u.join("d/sub"), OPAQUE_XATTR.as_bytes()).is_err());
            let left = crate::sys::llistxattr(&u.join("kept")).unwrap();
            assert_eq!(left, [b"user.mine".to_vec()]);
            assert_eq!(crate::sys::llistxattr(&u.join("d/new")).unwrap(), [OVERRIDE_XATTR.as_bytes().to_vec()]);
            assert_eq!(crate::sys::lgetxattr(&u.join("d/new"), OVERRIDE_XATTR.as_bytes()).unwrap(), b"1000:1000:0644");
        }
    }
}
