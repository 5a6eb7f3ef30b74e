//! A stage's rootfs while it is being changed: an overlay of the parent's layers plus a
//! fresh upper directory, committed as a new layer when the step is done.

use anyhow::Context;
use slipway_runtime::mount::{NativeOverlay, RootfsDirs, RootfsMounter};
use slipway_storage::Digest;
use slipway_storage::commit::commit_dir;
use slipway_storage::image::OCI_LAYER_GZIP;
use slipway_storage::store::{LayerMeta, Store};
use std::path::Path;

pub struct Mutation<'s> {
    store: &'s Store,
    dirs: RootfsDirs,
    mounted: bool,
}

impl<'s> Mutation<'s> {
    /// Mount the layers `diff_ids` (bottom first) with an empty upper directory.
    pub fn begin(store: &'s Store, diff_ids: &[Digest]) -> anyhow::Result<Self> {
        let scratch = store.scratch_dir("rootfs")?;
        let dirs = RootfsDirs {
            lowers: diff_ids.iter().map(|d| store.layer_diff(d)).collect(),
            upper: scratch.join("upper"),
            work: scratch.join("work"),
            target: scratch.join("merged"),
        };
        NativeOverlay.mount(&dirs)?;
        Ok(Mutation { store, dirs, mounted: true })
    }

    /// The merged rootfs (host path).
    pub fn root(&self) -> &Path {
        &self.dirs.target
    }

    fn unmount(&mut self) -> anyhow::Result<()> {
        if self.mounted {
            self.mounted = false;
            NativeOverlay.unmount(&self.dirs)?;
        }
        Ok(())
    }

    /// Unmount and commit the changes as a layer; `None` when nothing changed.
    pub fn finish(mut self) -> anyhow::Result<Option<LayerMeta>> {
        self.unmount()?;
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
