//! A stage's rootfs while it is being changed: the parent's layers plus a fresh upper
//! directory, committed as a new layer when the step is done.
//!
//! With native overlayfs the layers are mounted as lower directories. With the vfs
//! driver (`WERF_BUILDAH_STORAGE_DRIVER=vfs`, or automatically where overlayfs cannot be
//! mounted) they are copied into a plain directory and the changes are worked out
//! afterwards (`slipway_storage::vfs`). Either way the upper directory comes out in
//! overlayfs format, so committing is the same.

use anyhow::Context;
use slipway_runtime::mount::{NativeOverlay, RootfsDirs, RootfsMounter};
use slipway_storage::Digest;
use slipway_storage::commit::commit_dir;
use slipway_storage::image::OCI_LAYER_GZIP;
use slipway_storage::store::{LayerMeta, Store};
use slipway_storage::unpack::Ownership;
use slipway_storage::vfs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// How layers become a rootfs.
enum Driver {
    /// Mounted overlay (true while mounted).
    Overlay(bool),
    /// Copies, with what the rootfs held before the step, and how strictly owners are
    /// copied (as when unpacking).
    Vfs(Option<vfs::Snapshot>, Ownership),
}

pub struct Mutation<'s> {
    store: &'s Store,
    dirs: RootfsDirs,
    driver: Driver,
}

/// Set once overlayfs proved unusable here (a minimal overlay cannot be mounted either)
/// under the automatic driver choice: use copies from then on.
static OVERLAY_FAILED: AtomicBool = AtomicBool::new(false);

fn want_vfs() -> bool {
    std::env::var("WERF_BUILDAH_STORAGE_DRIVER").is_ok_and(|v| v == "vfs") || OVERLAY_FAILED.load(Ordering::Relaxed)
}

impl<'s> Mutation<'s> {
    /// The layers `diff_ids` (bottom first) as a rootfs with an empty upper directory.
    pub fn begin(store: &'s Store, diff_ids: &[Digest]) -> anyhow::Result<Self> {
        let scratch = store.scratch_dir("rootfs")?;
        let dirs = RootfsDirs {
            lowers: unique_lowers(diff_ids).into_iter().map(|d| store.layer_diff(d)).collect(),
            upper: scratch.join("upper"),
            work: scratch.join("work"),
            target: scratch.join("merged"),
        };
        if !want_vfs() {
            match NativeOverlay.mount(&dirs) {
                Ok(()) => return Ok(Mutation { store, dirs, driver: Driver::Overlay(true) }),
                Err(e @ slipway_runtime::RuntimeError::Overlay { .. }) => {
                    if std::env::var("WERF_BUILDAH_STORAGE_DRIVER").is_ok_and(|v| v == "overlay") {
                        return Err(e.into());
                    }
                    // Only a kernel that cannot mount even a minimal overlay makes the
                    // fallback last; anything else about this mount is this mount's problem.
                    let probe = store.scratch_dir("probe")?;
                    if slipway_runtime::mount::probe_native_overlay(&probe).is_err() {
                        eprintln!("Warning: {e}; falling back to the vfs driver (plain copies: slower, more disk)");
                        OVERLAY_FAILED.store(true, Ordering::Relaxed);
                    } else {
                        let slipway_runtime::RuntimeError::Overlay { target, source } = &e else { unreachable!() };
                        eprintln!(
                            "Warning: mounting overlayfs at {} with {} layers failed: {source}; using plain copies for this step",
                            target.display(),
                            dirs.lowers.len()
                        );
                    }
                    let _ = std::fs::remove_dir_all(&probe);
                }
                Err(e) => return Err(e.into()),
            }
        }
        for d in [&dirs.upper, &dirs.target] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let ownership = super::pull::ownership();
        let snapshot = vfs::materialize(&dirs.lowers, &dirs.target, ownership)
            .with_context(|| format!("copying layers into {}", dirs.target.display()))?;
        Ok(Mutation { store, dirs, driver: Driver::Vfs(Some(snapshot), ownership) })
    }

    /// The rootfs (host path).
    pub fn root(&self) -> &Path {
        &self.dirs.target
    }

    fn unmount(&mut self) -> anyhow::Result<()> {
        if let Driver::Overlay(mounted @ true) = &mut self.driver {
            *mounted = false;
            NativeOverlay.unmount(&self.dirs)?;
        }
        Ok(())
    }

    /// Commit the changes as a layer; `None` when nothing changed.
    pub fn finish(mut self) -> anyhow::Result<Option<LayerMeta>> {
        self.unmount()?;
        if let Driver::Vfs(snapshot, ownership) = &mut self.driver {
            let snapshot = snapshot.take().expect("finish runs once");
            vfs::diff(&self.dirs.target, &snapshot, &self.dirs.upper, *ownership)
                .with_context(|| format!("finding the changes in {}", self.dirs.target.display()))?;
        }
        let upper = &self.dirs.upper;
        let empty = std::fs::read_dir(upper).with_context(|| format!("reading {}", upper.display()))?.next().is_none();
        if empty {
            return Ok(None);
        }
        let c = commit_dir(upper, self.store.blobs()).with_context(|| format!("committing {}", upper.display()))?;
        let meta = LayerMeta {
            diff_id: c.diff_id,
            digest: c.digest,
            media_type: OCI_LAYER_GZIP.into(),
            size: c.size,
            uncompressed_size: c.uncompressed_size,
            skipped_devices: Vec::new(),
        };
        self.store.add_layer(upper, &meta)?;
        Ok(Some(meta))
    }
}

/// `diff_ids` (bottom first) with each layer once, keeping its topmost position:
/// overlayfs refuses the same lower directory twice (ELOOP). Two steps can commit
/// byte-identical layers; dropping the lower copy changes nothing, since the same
/// content higher up already hides everything the lower copy holds.
fn unique_lowers(diff_ids: &[Digest]) -> Vec<&Digest> {
    let mut seen = std::collections::HashSet::new();
    let mut top_first: Vec<&Digest> = diff_ids.iter().rev().filter(|d| seen.insert(*d)).collect();
    top_first.reverse();
    top_first
}

impl Drop for Mutation<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            tracing::warn!(error = %e, "unmounting a stage rootfs");
        }
        let scratch = self.dirs.target.parent().map(Path::to_path_buf);
        if let Some(s) = scratch {
            let _ = std::fs::remove_dir_all(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::unique_lowers;
    use slipway_storage::Digest;

    #[test]
    fn duplicate_layers_keep_their_topmost_position() {
        let d = |c: char| Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap();
        let (a, b, c) = (d('a'), d('b'), d('c'));
        let ids = [a.clone(), b.clone(), a.clone(), c.clone(), b.clone()];
        assert_eq!(unique_lowers(&ids), [&a, &c, &b]);
        assert_eq!(unique_lowers(&[a.clone(), b.clone()]), [&a, &b]);
        assert!(unique_lowers(&[]).is_empty());
    }
}
