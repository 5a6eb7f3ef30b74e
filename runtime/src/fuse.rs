//! fuse-overlayfs as a [`RootfsMounter`]: for kernels or sandboxes that refuse native
//! overlayfs in a user namespace but give the process a usable `/dev/fuse`.
//!
//! `fuse-overlayfs -f` runs as a child of slipway, inside slipway's user and mount
//! namespaces (it mounts with mount(2) there, no set-uid `fusermount3`), with
//! `allow_other` so that a step running as another user of the namespace can use the
//! rootfs. Unmounting is `umount2` followed by waiting for that child, so every write it
//! was asked to do is in the upper directory before the layer is committed.
//!
//! It reads overlayfs' own layer format (0/0 character-device whiteouts,
//! `user.overlay.opaque`); what it writes in an upper directory is brought back to that
//! format by `slipway_storage::fuse_upper` after unmounting.

use crate::error::{Result, RuntimeError};
use crate::mount::{RootfsDirs, RootfsMounter, with_empty_lowers};
use nix::mount::MntFlags;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long fuse-overlayfs may take to mount, and to exit after its unmount.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Mounts with the fuse-overlayfs program at `program`.
pub struct FuseOverlay {
    program: PathBuf,
    /// The running fuse-overlayfs of each mount point.
    children: Mutex<HashMap<PathBuf, Child>>,
}

impl FuseOverlay {
    pub fn new(program: PathBuf) -> Self {
        FuseOverlay { program, children: Mutex::new(HashMap::new()) }
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    fn refused(&self, target: &Path, message: impl Into<String>) -> RuntimeError {
        RuntimeError::FuseOverlay { target: target.to_path_buf(), message: message.into() }
    }

    /// Run fuse-overlayfs with `options` at `target` and wait until the mount is there.
    fn start(&self, options: String, target: &Path) -> Result<()> {
        let dev = crate::hostfacts::fuse_device();
        if !dev.ok {
            return Err(self.refused(
                target,
                format!("{}; fuse-overlayfs needs it readable and writable (as root: chmod 0666 /dev/fuse)", dev.value),
            ));
        }
        let parent_dev = dev_of(target.parent().unwrap_or(Path::new("/")), target)?;
        let log = target.with_extension("fuse-overlayfs.log");
        let stderr = std::fs::File::create(&log).map_err(RuntimeError::io("creating", &log))?;
        let mut cmd = Command::new(&self.program);
        cmd.arg("-f").arg("-o").arg(&options).arg(target).stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
        crate::sys::only_stdio_on_exec(&mut cmd);
        tracing::debug!(program = %self.program.display(), %options, target = %target.display(), "starting fuse-overlayfs");
        let mut child =
            cmd.spawn().map_err(|e| self.refused(target, format!("running {}: {e}", self.program.display())))?;
        let started = Instant::now();
        loop {
            if dev_of(target, target)? != parent_dev {
                break;
            }
            let done =
                child.try_wait().map_err(|e| self.refused(target, format!("waiting for fuse-overlayfs: {e}")))?;
            if let Some(status) = done {
                let err = std::fs::read_to_string(&log).unwrap_or_default();
                let err = err.lines().filter(|l| !l.starts_with("unknown argument ignored")).collect::<Vec<_>>();
                return Err(self.refused(target, format!("fuse-overlayfs exited with {status}: {}", err.join("; "))));
            }
            if started.elapsed() > MOUNT_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(self.refused(target, format!("fuse-overlayfs did not mount within {MOUNT_TIMEOUT:?}")));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        self.children.lock().unwrap_or_else(|p| p.into_inner()).insert(target.to_path_buf(), child);
        Ok(())
    }
}

/// The device of `path` (an error names `target`, the mount point being set up).
fn dev_of(path: &Path, target: &Path) -> Result<u64> {
    std::fs::metadata(path).map(|m| m.dev()).map_err(|e| RuntimeError::FuseOverlay {
        target: target.to_path_buf(),
        message: format!("stat {}: {e}", path.display()),
    })
}

/// `lowerdir=` for fuse-overlayfs: top layer first. fuse-overlayfs parses its options
/// itself (no page-size limit as with mount(2); one argument may be 128 KiB), and
/// separates them with `,` and layers with `:`, with `\` as escape.
fn lowerdir(lowers: &[PathBuf], target: &Path) -> Result<String> {
    let mut parts = Vec::with_capacity(lowers.len());
    for l in lowers.iter().rev() {
        let s = l.to_string_lossy();
        if s.contains([':', ',', '\\']) {
            return Err(RuntimeError::FuseOverlay {
                target: target.to_path_buf(),
                message: format!(
                    "layer path {s} contains ':', ',' or '\\', which fuse-overlayfs cannot take; use a storage root without them"
                ),
            });
        }
        parts.push(s.into_owned());
    }
    Ok(parts.join(":"))
}

impl RootfsMounter for FuseOverlay {
    fn mount(&self, dirs: &RootfsDirs) -> Result<()> {
        for d in [&dirs.upper, &dirs.work, &dirs.target] {
            std::fs::create_dir_all(d).map_err(RuntimeError::io("creating", d))?;
        }
        let lowers = with_empty_lowers(&dirs.lowers, 1, &dirs.work.with_extension("empty"))?;
        for d in [&dirs.upper, &dirs.work] {
            if d.to_string_lossy().contains([':', ',', '\\']) {
                return Err(self.refused(&dirs.target, format!("{} contains ':', ',' or '\\'", d.display())));
            }
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={},allow_other",
            lowerdir(&lowers, &dirs.target)?,
            dirs.upper.display(),
            dirs.work.display()
        );
        self.start(options, &dirs.target)
    }

    fn mount_readonly(&self, lowers: &[PathBuf], target: &Path) -> Result<()> {
        std::fs::create_dir_all(target).map_err(RuntimeError::io("creating", target))?;
        let lowers = with_empty_lowers(lowers, 1, &target.with_extension("empty"))?;
        self.start(format!("lowerdir={},allow_other", lowerdir(&lowers, target)?), target)
    }

    fn unmount(&self, target: &Path) -> Result<()> {
        let child = self.children.lock().unwrap_or_else(|p| p.into_inner()).remove(target);
        // A plain unmount flushes everything through fuse-overlayfs before it returns; a
        // busy mount point (a step left a process behind) is detached instead.
        let res = nix::mount::umount2(target, MntFlags::empty())
            .or_else(|_| nix::mount::umount2(target, MntFlags::MNT_DETACH))
            .map_err(RuntimeError::sys(format!("unmounting {}", target.display())));
        if let Some(mut child) = child {
            let started = Instant::now();
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if started.elapsed() > EXIT_TIMEOUT => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(self.refused(
                            target,
                            format!("fuse-overlayfs did not exit within {EXIT_TIMEOUT:?} of the unmount"),
                        ));
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        }
        let _ = std::fs::remove_file(target.with_extension("fuse-overlayfs.log"));
        res
    }
}

impl Drop for FuseOverlay {
    /// Mounts still up (an error path skipped their unmount) are detached and their
    /// fuse-overlayfs ended, never left running.
    fn drop(&mut self) {
        let children = std::mem::take(self.children.get_mut().unwrap_or_else(|p| p.into_inner()));
        for (target, mut child) in children {
            let _ = nix::mount::umount2(&target, MntFlags::MNT_DETACH);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_layers_go_top_first_and_separators_are_refused() {
        let t = Path::new("/m");
        let l = [PathBuf::from("/s/a"), PathBuf::from("/s/b")];
        assert_eq!(lowerdir(&l, t).unwrap(), "/s/b:/s/a");
        for bad in ["/s/a:b", "/s/a,b", "/s/a\\b"] {
            let e = lowerdir(&[PathBuf::from(bad)], t).unwrap_err().to_string();
            assert!(e.starts_with("mounting fuse-overlayfs at /m: layer path"), "{e}");
        }
    }
}
