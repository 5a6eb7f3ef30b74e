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

/// A way of presenting lower layers plus an upper directory as one rootfs.
pub trait RootfsMounter {
    fn mount(&self, dirs: &RootfsDirs) -> Result<()>;
    fn unmount(&self, dirs: &RootfsDirs) -> Result<()>;
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
        let mut lowers: Vec<PathBuf> = dirs.lowers.iter().rev().cloned().collect();
        if lowers.is_empty() {
            // overlayfs needs a lower directory; `FROM scratch` gets an empty one.
            let empty = dirs.work.with_extension("empty");
            std::fs::create_dir_all(&empty).map_err(RuntimeError::io("creating", &empty))?;
            lowers.push(empty);
        }
        for l in &lowers {
            let s = l.to_string_lossy();
            if s.contains(':') || s.contains(',') {
                return Err(RuntimeError::Other(format!(
                    "layer path {s} contains ':' or ',', which overlayfs cannot take; use a storage root without them"
                )));
            }
        }
        let lowerdir = lowers.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>().join(":");
        let data =
            format!("lowerdir={lowerdir},upperdir={},workdir={},userxattr", dirs.upper.display(), dirs.work.display());
        tracing::debug!(target = %dirs.target.display(), lowers = lowers.len(), "mounting overlay");
        let res = if data.len() <= MAX_MOUNT_DATA {
            nix::mount::mount(Some("overlay"), &dirs.target, Some("overlay"), MsFlags::empty(), Some(data.as_str()))
        } else {
            crate::sys::mount_overlay_fsconfig(&lowers, &dirs.upper, &dirs.work, &dirs.target)
        };
        res.map_err(|source| RuntimeError::Overlay { target: dirs.target.clone(), source })
    }

    fn unmount(&self, dirs: &RootfsDirs) -> Result<()> {
        nix::mount::umount2(&dirs.target, MntFlags::MNT_DETACH)
            .map_err(RuntimeError::sys(format!("unmounting {}", dirs.target.display())))
    }
}

/// Probe whether native overlayfs works here, by mounting a tiny overlay under `scratch`.
pub fn probe_native_overlay(scratch: &Path) -> Result<()> {
    let dirs = RootfsDirs {
        lowers: vec![scratch.join("l")],
        upper: scratch.join("u"),
        work: scratch.join("w"),
        target: scratch.join("m"),
    };
    std::fs::create_dir_all(&dirs.lowers[0]).map_err(RuntimeError::io("creating", &dirs.lowers[0]))?;
    NativeOverlay.mount(&dirs)?;
    NativeOverlay.unmount(&dirs)?;
    let _ = std::fs::remove_dir_all(scratch);
    Ok(())
}
