//! How an image's layers become a directory tree: the [`RootfsDriver`] of a run.
//!
//! A [`Mutation`] is a stage's rootfs while a step changes it: the parent's layers plus
//! a fresh upper directory, committed as a new layer when the step is done. A [`View`]
//! is an image's layers for reading only (`COPY --from`, a read-only
//! `RUN --mount=from=`), with no upper directory at all.
//!
//! With native overlayfs the layers are mounted as lower directories (a view is an
//! overlay without upper directory). With the vfs driver (`WERF_BUILDAH_STORAGE_DRIVER=vfs`,
//! or automatically where overlayfs cannot be mounted) a mutation copies the layers into
//! a plain directory and works the changes out afterwards, and a view hard-links the
//! layers' files into a directory tree (`slipway_storage::vfs`). Either way a mutation's
//! upper directory comes out in overlayfs format, so committing is the same.
//!
//! The driver owns the "overlayfs does not work here" state of its run, and mounts
//! through a [`RootfsMounter`] (native overlayfs; fuse-overlayfs would be another).

use super::settings::{Backend, StorageDriver};
use anyhow::Context;
use slipway_runtime::RuntimeError;
use slipway_runtime::mount::{NativeOverlay, RootfsDirs, RootfsMounter};
use slipway_storage::Digest;
use slipway_storage::commit::commit_dir;
use slipway_storage::image::OCI_LAYER_GZIP;
use slipway_storage::store::{LayerMeta, Store};
use slipway_storage::unpack::Ownership;
use slipway_storage::vfs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Where warnings for the user go.
type Warn = Box<dyn Fn(&str) + Send + Sync>;

/// Turns layers into rootfs trees for one run; shared by the images built in parallel.
pub struct RootfsDriver {
    choice: StorageDriver,
    /// How strictly owners are copied (as when unpacking).
    ownership: Ownership,
    mounter: Box<dyn RootfsMounter + Send + Sync>,
    warn: Warn,
    /// Set once overlayfs proved unusable here (a minimal overlay cannot be mounted
    /// either) under the automatic choice: copies from then on.
    overlay_failed: AtomicBool,
}

impl RootfsDriver {
    /// The driver `backend` asks for, mounting native overlayfs, warning on stderr.
    pub fn new(backend: &Backend) -> Self {
        RootfsDriver::with_mounter(
            backend.storage_driver,
            backend.id_mapping.ownership(),
            Box::new(NativeOverlay),
            Box::new(|w| eprintln!("Warning: {w}")),
        )
    }

    fn with_mounter(
        choice: StorageDriver,
        ownership: Ownership,
        mounter: Box<dyn RootfsMounter + Send + Sync>,
        warn: Warn,
    ) -> Self {
        RootfsDriver { choice, ownership, mounter, warn, overlay_failed: AtomicBool::new(false) }
    }

    /// The layers `diff_ids` (bottom first) as a rootfs with an empty upper directory.
    pub fn begin<'d>(&'d self, store: &'d Store, diff_ids: &[Digest]) -> anyhow::Result<Mutation<'d>> {
        let scratch = store.scratch_dir("rootfs")?;
        let dirs = RootfsDirs {
            lowers: lowers(store, diff_ids),
            upper: scratch.join("upper"),
            work: scratch.join("work"),
            target: scratch.join("merged"),
        };
        let mut m = Mutation { driver: self, store, dirs, how: How::Overlay { mounted: false }, new_owner: None };
        if self.overlay(store, m.dirs.lowers.len(), |mounter| mounter.mount(&m.dirs))? {
            m.how = How::Overlay { mounted: true };
            return Ok(m);
        }
        for d in [&m.dirs.upper, &m.dirs.target] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let snapshot = vfs::materialize(&m.dirs.lowers, &m.dirs.target, self.ownership)
            .with_context(|| format!("copying layers into {}", m.dirs.target.display()))?;
        m.how = How::Copies(Some(snapshot));
        Ok(m)
    }

    /// The layers `diff_ids` (bottom first) as a tree to read from, never written to:
    /// a read-only overlay, or directories of hard links to the layers' files.
    pub fn view<'d>(&'d self, store: &'d Store, diff_ids: &[Digest]) -> anyhow::Result<View<'d>> {
        let lowers = lowers(store, diff_ids);
        let mut v = View { driver: self, root: store.scratch_dir("view")?.join("root"), mounted: false };
        // No layers (`FROM scratch` and nothing else): the empty directory is the view.
        if !lowers.is_empty()
            && self.overlay(store, lowers.len(), |mounter| mounter.mount_readonly(&lowers, &v.root))?
        {
            v.mounted = true;
            return Ok(v);
        }
        std::fs::create_dir_all(&v.root).with_context(|| format!("creating {}", v.root.display()))?;
        vfs::link_view(&lowers, &v.root, self.ownership)
            .with_context(|| format!("linking layers into {}", v.root.display()))?;
        Ok(v)
    }

    /// Mount with overlayfs unless copies are chosen: true when mounted, false when
    /// copies are to be used. Under the automatic choice a failed overlay mount falls
    /// back to copies: for good if a minimal overlay cannot be mounted either, else for
    /// this mount only (anything else about this mount is this mount's problem).
    fn overlay(
        &self,
        store: &Store,
        layers: usize,
        mount: impl FnOnce(&dyn RootfsMounter) -> Result<(), RuntimeError>,
    ) -> anyhow::Result<bool> {
        if self.choice == StorageDriver::Vfs || self.overlay_failed.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let e = match mount(self.mounter.as_ref()) {
            Ok(()) => return Ok(true),
            Err(e @ RuntimeError::Overlay { .. }) if self.choice == StorageDriver::Auto => e,
            Err(e) => return Err(e.into()),
        };
        let probe = store.scratch_dir("probe")?;
        if self.mounter.probe(&probe).is_err() {
            // Parallel images may fail at once: warn once.
            if !self.overlay_failed.swap(true, Ordering::Relaxed) {
                (self.warn)(&format!("{e}; falling back to the vfs driver (plain copies: slower, more disk)"));
            }
        } else {
            let RuntimeError::Overlay { target, source } = &e else { unreachable!("matched above") };
            (self.warn)(&format!(
                "mounting overlayfs at {} with {layers} layers failed: {source}; using plain copies for this step",
                target.display()
            ));
        }
        let _ = std::fs::remove_dir_all(&probe);
        Ok(false)
    }
}

/// The stored layer directories of `diff_ids` (bottom first), each once.
fn lowers(store: &Store, diff_ids: &[Digest]) -> Vec<PathBuf> {
    unique_lowers(diff_ids).into_iter().map(|d| store.layer_diff(d)).collect()
}

/// How a mutation's rootfs is made.
enum How {
    /// A mounted overlay (`mounted` until unmounted).
    Overlay { mounted: bool },
    /// Copies, with what the rootfs held before the step.
    Copies(Option<vfs::Snapshot>),
}

/// A step's writable rootfs, committed as a layer by [`Mutation::finish`] or thrown
/// away when dropped.
pub struct Mutation<'d> {
    driver: &'d RootfsDriver,
    store: &'d Store,
    dirs: RootfsDirs,
    how: How,
    /// The owner of what the step created, when a single-id namespace ran it as root
    /// in place of that user ([`Mutation::new_entries_owned_by`]).
    new_owner: Option<(u32, u32)>,
}

impl Mutation<'_> {
    /// The rootfs (host path).
    pub fn root(&self) -> &Path {
        &self.dirs.target
    }

    fn unmount(&mut self) -> anyhow::Result<()> {
        if let How::Overlay { mounted: mounted @ true } = &mut self.how {
            *mounted = false;
            self.driver.mounter.unmount(&self.dirs.target)?;
        }
        Ok(())
    }

    /// The files and directories the step created belong to `owner` (a RUN whose USER
    /// the single-id namespace could not map ran as root): recorded at [`Mutation::finish`].
    pub fn new_entries_owned_by(&mut self, owner: (u32, u32)) {
        self.new_owner = Some(owner);
    }

    /// Commit the changes as a layer; `None` when nothing changed.
    pub fn finish(mut self) -> anyhow::Result<Option<LayerMeta>> {
        self.unmount()?;
        let overlay = matches!(self.how, How::Overlay { .. });
        if let How::Copies(snapshot) = &mut self.how {
            let snapshot = snapshot.take().expect("finish runs once");
            vfs::diff(&self.dirs.target, &snapshot, &self.dirs.upper, self.driver.ownership)
                .with_context(|| format!("finding the changes in {}", self.dirs.target.display()))?;
        }
        if let Some((uid, gid)) = self.new_owner {
            // New: in no lower layer, or (overlayfs) not a copy-up, so a path deleted and
            // made again counts as new there.
            let lowers = &self.dirs.lowers;
            let existed = |path: &Path, rel: &Path| {
                lowers.iter().any(|l| l.join(rel).symlink_metadata().is_ok())
                    && (!overlay || slipway_storage::owner::copied_up(path))
            };
            let upper = &self.dirs.upper;
            slipway_storage::owner::record_new_entries(upper, uid, gid, &existed).with_context(|| {
                format!("recording the owner {uid}:{gid} of what the step created in {}", upper.display())
            })?;
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

impl Drop for Mutation<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            tracing::warn!(error = %e, "unmounting a stage rootfs");
        }
        if let Some(scratch) = self.dirs.target.parent() {
            let _ = std::fs::remove_dir_all(scratch);
        }
    }
}

/// An image's layers to read from ([`RootfsDriver::view`]); gone when dropped.
pub struct View<'d> {
    driver: &'d RootfsDriver,
    root: PathBuf,
    mounted: bool,
}

impl View<'_> {
    /// The tree (host path). Read it only: with the vfs driver its files are the
    /// stored layers' own.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for View<'_> {
    fn drop(&mut self) {
        if self.mounted
            && let Err(e) = self.driver.mounter.unmount(&self.root)
        {
            tracing::warn!(error = %e, "unmounting an image view");
            // Never walk into a tree that may still show the layers.
            return;
        }
        if let Some(scratch) = self.root.parent() {
            // Unlinks the hard links only; the layers' files stay as they are.
            let _ = slipway_storage::remove::remove_tree(scratch);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::sync::{Arc, Mutex};

    #[test]
    fn duplicate_layers_keep_their_topmost_position() {
        let d = |c: char| Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap();
        let (a, b, c) = (d('a'), d('b'), d('c'));
        let ids = [a.clone(), b.clone(), a.clone(), c.clone(), b.clone()];
        assert_eq!(unique_lowers(&ids), [&a, &c, &b]);
        assert_eq!(unique_lowers(&[a.clone(), b.clone()]), [&a, &b]);
        assert!(unique_lowers(&[]).is_empty());
    }

    type Calls = Arc<Mutex<Vec<&'static str>>>;

    /// Refuses every overlay mount as a kernel would (EINVAL); its probe works or not.
    struct Refusing {
        probe_works: bool,
        calls: Calls,
    }

    impl RootfsMounter for Refusing {
        fn mount(&self, dirs: &RootfsDirs) -> Result<(), RuntimeError> {
            self.calls.lock().unwrap().push("mount");
            Err(RuntimeError::Overlay { target: dirs.target.clone(), source: nix::Error::EINVAL })
        }

        fn mount_readonly(&self, _: &[PathBuf], target: &Path) -> Result<(), RuntimeError> {
            self.calls.lock().unwrap().push("mount_readonly");
            Err(RuntimeError::Overlay { target: target.to_path_buf(), source: nix::Error::EINVAL })
        }

        fn unmount(&self, _: &Path) -> Result<(), RuntimeError> {
            unreachable!("nothing is ever mounted")
        }

        fn probe(&self, scratch: &Path) -> Result<(), RuntimeError> {
            self.calls.lock().unwrap().push("probe");
            match self.probe_works {
                true => Ok(()),
                false => Err(RuntimeError::Overlay { target: scratch.to_path_buf(), source: nix::Error::ENODEV }),
            }
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        driver: RootfsDriver,
        calls: Calls,
        warnings: Arc<Mutex<Vec<String>>>,
    }

    fn fixture(choice: StorageDriver, probe_works: bool) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (calls, warnings) = (Calls::default(), Arc::new(Mutex::new(Vec::new())));
        let w = warnings.clone();
        let driver = RootfsDriver::with_mounter(
            choice,
            Ownership::Exact,
            Box::new(Refusing { probe_works, calls: calls.clone() }),
            Box::new(move |s| w.lock().unwrap().push(s.to_string())),
        );
        Fixture { _dir: dir, store, driver, calls, warnings }
    }

    impl Fixture {
        fn calls(&self) -> Vec<&'static str> {
            self.calls.lock().unwrap().clone()
        }

        fn warnings(&self) -> Vec<String> {
            self.warnings.lock().unwrap().clone()
        }

        /// One step that writes `/f` on an empty rootfs, committed as a layer.
        fn layer(&self) -> Digest {
            let m = self.driver.begin(&self.store, &[]).unwrap();
            std::fs::write(m.root().join("f"), "content").unwrap();
            m.finish().unwrap().expect("a layer").diff_id
        }
    }

    #[test]
    fn overlay_that_cannot_work_here_falls_back_to_copies_for_good() {
        let f = fixture(StorageDriver::Auto, false);
        let layer = f.layer();
        assert_eq!(f.calls(), ["mount", "probe"]);
        let w = f.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].ends_with("falling back to the vfs driver (plain copies: slower, more disk)"), "{w:?}");
        assert!(w[0].contains("mounting overlayfs"), "{w:?}");

        // Later steps and views of the same driver never try overlayfs again.
        let m = f.driver.begin(&f.store, std::slice::from_ref(&layer)).unwrap();
        assert_eq!(std::fs::read_to_string(m.root().join("f")).unwrap(), "content");
        drop(m);
        let v = f.driver.view(&f.store, std::slice::from_ref(&layer)).unwrap();
        let stored = f.store.layer_diff(&layer).join("f");
        assert_eq!(std::fs::metadata(v.root().join("f")).unwrap().ino(), std::fs::metadata(&stored).unwrap().ino());
        drop(v);
        assert_eq!(std::fs::read_to_string(&stored).unwrap(), "content", "dropping a view keeps the layer");
        assert_eq!(f.calls(), ["mount", "probe"]);
        assert_eq!(f.warnings().len(), 1);
    }

    #[test]
    fn a_failed_mount_where_overlay_works_uses_copies_for_that_step_only() {
        let f = fixture(StorageDriver::Auto, true);
        let layer = f.layer();
        let w = f.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("mounting overlayfs at "), "{w:?}");
        assert!(
            w[0].ends_with("with 0 layers failed: EINVAL: Invalid argument; using plain copies for this step"),
            "{w:?}"
        );
        let v = f.driver.view(&f.store, std::slice::from_ref(&layer)).unwrap();
        assert_eq!(std::fs::read_to_string(v.root().join("f")).unwrap(), "content");
        drop(v);
        assert_eq!(f.calls(), ["mount", "probe", "mount_readonly", "probe"]);
        assert!(f.warnings()[1].contains("with 1 layers failed"), "{:?}", f.warnings());
    }

    #[test]
    fn a_forced_overlay_driver_returns_the_mount_error() {
        let f = fixture(StorageDriver::Overlay, false);
        let e = f.driver.begin(&f.store, &[]).map(|_| ()).unwrap_err();
        assert!(matches!(e.downcast_ref::<RuntimeError>(), Some(RuntimeError::Overlay { .. })), "{e:#}");
        let layer = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        assert!(f.driver.view(&f.store, &[layer]).is_err());
        // An image without layers is an empty directory, nothing to mount.
        let v = f.driver.view(&f.store, &[]).unwrap();
        assert_eq!(std::fs::read_dir(v.root()).unwrap().count(), 0);
        assert_eq!(f.calls(), ["mount", "mount_readonly"]);
        assert!(f.warnings().is_empty());
    }

    #[test]
    fn the_vfs_driver_never_mounts() {
        let f = fixture(StorageDriver::Vfs, false);
        let layer = f.layer();
        f.driver.view(&f.store, &[layer]).unwrap();
        assert!(f.calls().is_empty());
        assert!(f.warnings().is_empty());
    }
}
