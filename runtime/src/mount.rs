//! Assembling a step's rootfs from layer directories.
//!
//! Layers are directories in overlayfs' own format (whiteouts are 0/0 character devices,
//! opaque directories carry `user.overlay.opaque=y`), so a layer's `diff/` can be an
//! overlay lower directory as it is, and a step's upper directory can become the next
//! layer's `diff/` by a rename.

use crate::error::{Result, RuntimeError};
use nix::mount::{MntFlags, MsFlags};
use std::path::{Path, PathBuf};

/// The directories of one mounted rootfs.
#[derive(Debug, Clone)]
pub struct RootfsDirs {
    /// Layer directories, bottom first.
    pub lowers: Vec<PathBuf>,
    /// Where the step's changes go.
    pub upper: PathBuf,
    /// overlayfs' scratch directory, on the same filesystem as `upper`.
    pub work: PathBuf,
    /// The merged view the step runs in.
    pub target: PathBuf,
}

/// A way of presenting lower layers plus an upper directory as one rootfs, or lower
/// layers alone as a read-only tree. Kept small so the rootfs driver above it can be
/// given a mounter that fails (its fallbacks are tested that way); [`crate::fuse::FuseOverlay`]
/// is the second implementation.
pub trait RootfsMounter {
    /// `dirs.lowers` (bottom first) under the empty `dirs.upper`, merged at `dirs.target`.
    fn mount(&self, dirs: &RootfsDirs) -> Result<()>;
    /// `lowers` (bottom first, at least one) merged read-only at `target`, with no upper
    /// directory.
    fn mount_readonly(&self, lowers: &[PathBuf], target: &Path) -> Result<()>;
    fn unmount(&self, target: &Path) -> Result<()>;
    /// Whether this kind of mount works here at all: a tiny mount under `scratch`.
    fn probe(&self, scratch: &Path) -> Result<()> {
        let dirs = RootfsDirs {
            lowers: vec![scratch.join("l")],
            upper: scratch.join("u"),
            work: scratch.join("w"),
            target: scratch.join("m"),
        };
        std::fs::create_dir_all(&dirs.lowers[0]).map_err(RuntimeError::io("creating", &dirs.lowers[0]))?;
        self.mount(&dirs)?;
        self.unmount(&dirs.target)?;
        let _ = std::fs::remove_dir_all(scratch);
        Ok(())
    }
}

/// Native overlayfs with `userxattr` (Linux >= 5.11 inside a user namespace).
pub struct NativeOverlay;

/// The longest option string mount(2) takes is one page; stay well below it and switch
/// to the new mount API (`lowerdir+`, Linux >= 6.8) for longer layer lists.
const MAX_MOUNT_DATA: usize = 3800;

impl RootfsMounter for NativeOverlay {
    fn mount(&self, dirs: &RootfsDirs) -> Result<()> {
        for d in [&dirs.upper, &dirs.work, &dirs.target] {
            std::fs::create_dir_all(d).map_err(RuntimeError::io("creating", d))?;
        }
        // overlayfs needs a lower directory; `FROM scratch` gets an empty one.
        let lowers = with_empty_lowers(&dirs.lowers, 1, &dirs.work.with_extension("empty"))?;
        overlay(&lowers, Some((&dirs.upper, &dirs.work)), &dirs.target)
    }

    fn mount_readonly(&self, lowers: &[PathBuf], target: &Path) -> Result<()> {
        std::fs::create_dir_all(target).map_err(RuntimeError::io("creating", target))?;
        // Without an upper directory overlayfs wants at least two lower directories
        // ("at least 2 lowerdir are needed while upperdir nonexistent"): an empty one
        // at the bottom changes nothing.
        let lowers = with_empty_lowers(lowers, 2, &target.with_extension("empty"))?;
        overlay(&lowers, None, target)
    }

    fn unmount(&self, target: &Path) -> Result<()> {
        nix::mount::umount2(target, MntFlags::MNT_DETACH)
            .map_err(RuntimeError::sys(format!("unmounting {}", target.display())))
    }
}

/// `lowers`, with the empty directory `empty` (created) below them if they are fewer
/// than `at_least`.
pub(crate) fn with_empty_lowers(lowers: &[PathBuf], at_least: usize, empty: &Path) -> Result<Vec<PathBuf>> {
    let mut all = lowers.to_vec();
    if all.len() < at_least {
        std::fs::create_dir_all(empty).map_err(RuntimeError::io("creating", empty))?;
        all.insert(0, empty.to_path_buf());
    }
    Ok(all)
}

/// Mount overlayfs over `lowers` (bottom first), writable when `upper_work` is given.
fn overlay(lowers: &[PathBuf], upper_work: Option<(&Path, &Path)>, target: &Path) -> Result<()> {
    let lowers: Vec<PathBuf> = lowers.iter().rev().cloned().collect();
    for l in &lowers {
        let s = l.to_string_lossy();
        if s.contains(':') || s.contains(',') {
            return Err(RuntimeError::Other(format!(
                "layer path {s} contains ':' or ',', which overlayfs cannot take; use a storage root without them"
            )));
        }
    }
    let lowerdir = lowers.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>().join(":");
    let data = match upper_work {
        Some((upper, work)) => {
            format!("lowerdir={lowerdir},upperdir={},workdir={},userxattr", upper.display(), work.display())
        }
        None => format!("lowerdir={lowerdir},userxattr"),
    };
    tracing::debug!(target = %target.display(), lowers = lowers.len(), writable = upper_work.is_some(), "mounting overlay");
    let res = if data.len() <= MAX_MOUNT_DATA {
        nix::mount::mount(Some("overlay"), target, Some("overlay"), MsFlags::empty(), Some(data.as_str()))
    } else {
        crate::sys::mount_overlay_fsconfig(&lowers, upper_work, target)
    };
    res.map_err(|source| RuntimeError::Overlay { target: target.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_few_lowers_get_an_empty_one_below() {
        let t = tempfile::tempdir().unwrap();
        let empty = t.path().join("empty");
        let (a, b) = (PathBuf::from("/a"), PathBuf::from("/b"));
        assert_eq!(with_empty_lowers(&[a.clone(), b.clone()], 2, &empty).unwrap(), [a.clone(), b]);
        assert!(!empty.exists());
        assert_eq!(with_empty_lowers(std::slice::from_ref(&a), 2, &empty).unwrap(), [empty.clone(), a]);
        assert!(empty.is_dir());
        assert_eq!(with_empty_lowers(&[], 1, &empty).unwrap(), [empty]);
    }
}
