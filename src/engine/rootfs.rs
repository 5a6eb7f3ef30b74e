//! How an image's layers become a directory tree: the [`RootfsDriver`] of a run.
//!
//! A [`Mutation`] is a stage's rootfs while a step changes it: the parent's layers plus
//! a fresh upper directory, committed as a new layer when the step is done. A [`View`]
//! is an image's layers for reading only (`COPY --from`, a read-only
//! `RUN --mount=from=`), with no upper directory at all.
//!
//! Layers are mounted as lower directories, with native overlayfs or with
//! fuse-overlayfs (a view is a mount without upper directory). With the vfs driver
//! (`WERF_BUILDAH_STORAGE_DRIVER=vfs`, or automatically where nothing can be mounted) a
//! mutation copies the layers into a plain directory and works the changes out
//! afterwards, and a view hard-links the layers' files into a directory tree
//! (`slipway_storage::vfs`). Either way a mutation's upper directory comes out in
//! overlayfs format (fuse-overlayfs' own markers are rewritten by
//! `slipway_storage::fuse_upper`), so committing is the same.
//!
//! Which way is used: storage.conf's `mount_program` forces fuse-overlayfs; else native
//! overlayfs, then fuse-overlayfs (if installed), then copies (only under the automatic
//! choice; `overlay` makes it an error naming both). A way is given up for the rest of
//! the run when a minimal mount of its own fails too ([`RootfsMounter::probe`]); the way
//! in use is said once, in one info line, and every fallback is warned about.

use super::log::Log;
use super::settings::{Backend, FuseProgram, StorageDriver};
use anyhow::Context;
use slipway_runtime::RuntimeError;
use slipway_runtime::fuse::FuseOverlay;
use slipway_runtime::mount::{NativeOverlay, RootfsDirs, RootfsMounter};
use slipway_storage::Digest;
use slipway_storage::commit::commit_dir;
use slipway_storage::image::OCI_LAYER_GZIP;
use slipway_storage::store::{LayerMeta, Store};
use slipway_storage::unpack::Ownership;
use slipway_storage::vfs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Where messages for the user go (a warning, or the info line).
type Notify = Box<dyn Fn(&str) + Send + Sync>;

/// One way of mounting layers.
pub struct Way {
    /// For messages: `native overlayfs`, `fuse-overlayfs /usr/bin/fuse-overlayfs`.
    name: String,
    /// Its upper directories are in fuse-overlayfs' format until rewritten.
    fuse: bool,
    mounter: Box<dyn RootfsMounter + Send + Sync>,
}

impl Way {
    fn native() -> Way {
        Way { name: "native overlayfs".into(), fuse: false, mounter: Box::new(NativeOverlay) }
    }

    fn fuse(p: &FuseProgram) -> Way {
        Way {
            name: format!("fuse-overlayfs {}", p.path.display()),
            fuse: true,
            mounter: Box::new(FuseOverlay::new(p.path.clone())),
        }
    }
}

/// Turns layers into rootfs trees for one run; shared by the images built in parallel.
pub struct RootfsDriver {
    /// The ways to mount, in the order tried.
    ways: Vec<Way>,
    /// Copies when no way mounts (the automatic choice); else that is an error.
    copies_last: bool,
    /// Why the first way (or copies, without ways) is used: for the info line.
    why: String,
    /// How strictly owners are copied (as when unpacking).
    ownership: Ownership,
    warn: Notify,
    info: Notify,
    /// The way in use: those before it proved unusable here (a minimal mount of their
    /// own failed too). Past the last: copies.
    current: AtomicUsize,
    /// What the ways given up said, for the error when none is left.
    failures: Mutex<Vec<String>>,
    /// Whether the info line was printed.
    announced: AtomicBool,
    /// Printed after it: which step isolation is used and why (empty: nothing).
    isolation_why: String,
}

impl RootfsDriver {
    /// The driver `backend` asks for; the info line and warnings go to `log`.
    pub fn new(backend: &Backend, log: &Log) -> Self {
        let (ways, copies_last, why) = match (backend.storage_driver, &backend.fuse_overlayfs) {
            (StorageDriver::Vfs, _) => (Vec::new(), true, "WERF_BUILDAH_STORAGE_DRIVER=vfs".to_string()),
            (_, Some(p @ FuseProgram { forced_by: Some(file), .. })) => {
                (vec![Way::fuse(p)], false, format!("mount_program in {}", file.display()))
            }
            (choice, fuse) => {
                let ways = std::iter::once(Way::native()).chain(fuse.as_ref().map(Way::fuse)).collect();
                match choice {
                    StorageDriver::Overlay => (ways, false, "WERF_BUILDAH_STORAGE_DRIVER=overlay".to_string()),
                    _ => (ways, true, "the default: it mounts here".to_string()),
                }
            }
        };
        let (w, i) = (log.clone(), log.clone());
        let mut driver = RootfsDriver::with_ways(
            ways,
            copies_last,
            why,
            backend.id_mapping.ownership(),
            Box::new(move |s| w.warn(s)),
            Box::new(move |s| i.info(s)),
        );
        driver.isolation_why = backend.isolation_why.clone();
        driver
    }

    fn with_ways(
        ways: Vec<Way>,
        copies_last: bool,
        why: String,
        ownership: Ownership,
        warn: Notify,
        info: Notify,
    ) -> Self {
        RootfsDriver {
            ways,
            copies_last,
            why,
            ownership,
            warn,
            info,
            current: AtomicUsize::new(0),
            failures: Mutex::new(Vec::new()),
            announced: AtomicBool::new(false),
            isolation_why: String::new(),
        }
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
        let mut m = Mutation { driver: self, store, dirs, how: How::Copies(None), new_owner: None };
        if let Some(way) = self.mount(store, m.dirs.lowers.len(), |mounter| {
            // A way tried before may have left its directories behind.
            let _ = std::fs::remove_dir_all(&m.dirs.upper);
            let _ = std::fs::remove_dir_all(&m.dirs.work);
            mounter.mount(&m.dirs)
        })? {
            m.how = How::Mounted { way, mounted: true };
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
    /// a read-only mount, or directories of hard links to the layers' files.
    pub fn view<'d>(&'d self, store: &'d Store, diff_ids: &[Digest]) -> anyhow::Result<View<'d>> {
        let lowers = lowers(store, diff_ids);
        let mut v = View { driver: self, root: store.scratch_dir("view")?.join("root"), mounted: None };
        // No layers (`FROM scratch` and nothing else): the empty directory is the view.
        if !lowers.is_empty() {
            v.mounted = self.mount(store, lowers.len(), |mounter| mounter.mount_readonly(&lowers, &v.root))?;
            if v.mounted.is_some() {
                return Ok(v);
            }
        }
        std::fs::create_dir_all(&v.root).with_context(|| format!("creating {}", v.root.display()))?;
        vfs::link_view(&lowers, &v.root, self.ownership)
            .with_context(|| format!("linking layers into {}", v.root.display()))?;
        Ok(v)
    }

    /// Mount with the way in use: `Some(way)` when mounted, `None` when copies are to be
    /// used. A refused mount whose way cannot mount a minimal tree either gives that way
    /// up for good and tries the next one (copies last, under the automatic choice); a
    /// refused mount whose way works otherwise is this mount's problem: copies for it
    /// under the automatic choice, else the error.
    fn mount(
        &self,
        store: &Store,
        layers: usize,
        mount: impl Fn(&dyn RootfsMounter) -> Result<(), RuntimeError>,
    ) -> anyhow::Result<Option<usize>> {
        loop {
            let i = self.current.load(Ordering::Relaxed);
            let Some(way) = self.ways.get(i) else {
                anyhow::ensure!(self.copies_last, "no way to mount layers here: {}", self.failed().join("; "));
                self.announce(None);
                return Ok(None);
            };
            let e = match mount(way.mounter.as_ref()) {
                Ok(()) => {
                    self.announce(Some(i));
                    return Ok(Some(i));
                }
                Err(e) => e,
            };
            let last = i + 1 == self.ways.len() && !self.copies_last;
            if !e.is_mount_refused() || last {
                let mut tried = self.failed();
                if tried.is_empty() {
                    return Err(e.into());
                }
                tried.push(format!("{}: {e}", way.name));
                anyhow::bail!("no way to mount layers here: {}", tried.join("; "));
            }
            let probe = store.scratch_dir("probe")?;
            let works = way.mounter.probe(&probe).is_ok();
            let _ = std::fs::remove_dir_all(&probe);
            if works {
                if !self.copies_last {
                    return Err(e.into());
                }
                (self.warn)(&format!("{}; using plain copies for this step", refusal(&e, layers)));
                return Ok(None);
            }
            // Parallel images may fail at once: give up the way, and warn, once.
            if self.current.compare_exchange(i, i + 1, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                self.failures.lock().unwrap_or_else(|p| p.into_inner()).push(format!("{}: {e}", way.name));
                let next = match self.ways.get(i + 1) {
                    Some(n) => n.name.clone(),
                    None => "the vfs driver (plain copies: slower, more disk)".into(),
                };
                (self.warn)(&format!("{e}; falling back to {next}"));
            }
        }
    }

    fn failed(&self) -> Vec<String> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The one info line: which way is used (`None`: copies) and why.
    fn announce(&self, way: Option<usize>) {
        if self.announced.swap(true, Ordering::Relaxed) {
            return;
        }
        let given_up: Vec<&str> = self.ways[..way.unwrap_or(self.ways.len())].iter().map(|w| w.name.as_str()).collect();
        let why = match given_up.is_empty() {
            true => self.why.clone(),
            false => format!("{} cannot be mounted here", given_up.join(" and ")),
        };
        let what = match way {
            Some(i) => self.ways[i].name.as_str(),
            None => "vfs (plain copies)",
        };
        (self.info)(&format!("storage driver: {what} ({why})"));
        if !self.isolation_why.is_empty() {
            (self.info)(&self.isolation_why);
        }
    }
}

/// A refused mount in one line, with the number of layers.
fn refusal(e: &RuntimeError, layers: usize) -> String {
    match e {
        RuntimeError::Overlay { target, source } => {
            format!("mounting overlayfs at {} with {layers} layers failed: {source}", target.display())
        }
        RuntimeError::FuseOverlay { target, message } => {
            format!("mounting fuse-overlayfs at {} with {layers} layers failed: {message}", target.display())
        }
        other => other.to_string(),
    }
}

/// The stored layer directories of `diff_ids` (bottom first), each once.
fn lowers(store: &Store, diff_ids: &[Digest]) -> Vec<PathBuf> {
    unique_lowers(diff_ids).into_iter().map(|d| store.layer_diff(d)).collect()
}

/// How a mutation's rootfs is made.
enum How {
    /// Mounted by the driver's way number `way` (`mounted` until unmounted).
    Mounted { way: usize, mounted: bool },
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
        if let How::Mounted { way, mounted: mounted @ true } = &mut self.how {
            *mounted = false;
            self.driver.ways[*way].mounter.unmount(&self.dirs.target)?;
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
        // How a copy-up is told from an entry the step made: native overlayfs marks
        // copy-ups (`user.overlay.origin`); fuse-overlayfs marks copied-up files and made
        // directories its own way, read before `fuse_upper::normalize` drops the marks.
        let copied_up: Option<fn(&Path) -> bool> = match self.how {
            How::Mounted { way, .. } if self.driver.ways[way].fuse => Some(slipway_storage::fuse_upper::copied_up),
            How::Mounted { .. } => Some(slipway_storage::owner::copied_up),
            How::Copies(_) => None,
        };
        if let How::Copies(snapshot) = &mut self.how {
            let snapshot = snapshot.take().expect("finish runs once");
            vfs::diff(&self.dirs.target, &snapshot, &self.dirs.upper, self.driver.ownership)
                .with_context(|| format!("finding the changes in {}", self.dirs.target.display()))?;
        }
        if let Some((uid, gid)) = self.new_owner {
            // New: in no lower layer, or (mounted) not a copy-up, so a path deleted and
            // made again counts as new there.
            let lowers = &self.dirs.lowers;
            let existed = |path: &Path, rel: &Path| {
                lowers.iter().any(|l| l.join(rel).symlink_metadata().is_ok()) && copied_up.is_none_or(|f| f(path))
            };
            let upper = &self.dirs.upper;
            slipway_storage::owner::record_new_entries(upper, uid, gid, &existed).with_context(|| {
                format!("recording the owner {uid}:{gid} of what the step created in {}", upper.display())
            })?;
        }
        if let How::Mounted { way, .. } = self.how
            && self.driver.ways[way].fuse
        {
            slipway_storage::fuse_upper::normalize(&self.dirs.upper, &self.dirs.lowers)
                .with_context(|| format!("reading fuse-overlayfs' changes in {}", self.dirs.upper.display()))?;
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
    /// The way that mounted it, until unmounted.
    mounted: Option<usize>,
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
        if let Some(way) = self.mounted
            && let Err(e) = self.driver.ways[way].mounter.unmount(&self.root)
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

    type Calls = Arc<Mutex<Vec<String>>>;

    /// A way that refuses every mount as a kernel would (EINVAL), with a probe that works
    /// or not; or (`accepts`) one that "mounts" by creating the directories only.
    struct Fake {
        tag: &'static str,
        accepts: bool,
        probe_works: bool,
        calls: Calls,
    }

    impl Fake {
        fn call(&self, what: &str) {
            self.calls.lock().unwrap().push(format!("{}:{what}", self.tag));
        }
    }

    impl RootfsMounter for Fake {
        fn mount(&self, dirs: &RootfsDirs) -> Result<(), RuntimeError> {
            self.call("mount");
            if self.accepts {
                std::fs::create_dir_all(&dirs.upper).unwrap();
                std::fs::create_dir_all(&dirs.target).unwrap();
                return Ok(());
            }
            Err(RuntimeError::Overlay { target: dirs.target.clone(), source: nix::Error::EINVAL })
        }

        fn mount_readonly(&self, _: &[PathBuf], target: &Path) -> Result<(), RuntimeError> {
            self.call("mount_readonly");
            if self.accepts {
                std::fs::create_dir_all(target).unwrap();
                return Ok(());
            }
            Err(RuntimeError::FuseOverlay { target: target.to_path_buf(), message: "refused".into() })
        }

        fn unmount(&self, _: &Path) -> Result<(), RuntimeError> {
            assert!(self.accepts, "nothing is ever mounted");
            self.call("unmount");
            Ok(())
        }

        fn probe(&self, scratch: &Path) -> Result<(), RuntimeError> {
            self.call("probe");
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
        infos: Arc<Mutex<Vec<String>>>,
    }

    /// A driver with the fake ways `(tag, accepts, probe_works)`, copies last or not.
    fn driver(ways: &[(&'static str, bool, bool)], copies_last: bool) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (calls, warnings, infos) =
            (Calls::default(), Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        let (w, i) = (warnings.clone(), infos.clone());
        let ways = ways
            .iter()
            .map(|&(tag, accepts, probe_works)| Way {
                name: tag.to_string(),
                fuse: false,
                mounter: Box::new(Fake { tag, accepts, probe_works, calls: calls.clone() }),
            })
            .collect();
        let driver = RootfsDriver::with_ways(
            ways,
            copies_last,
            "the reason".into(),
            Ownership::Exact,
            Box::new(move |s| w.lock().unwrap().push(s.to_string())),
            Box::new(move |s| i.lock().unwrap().push(s.to_string())),
        );
        Fixture { _dir: dir, store, driver, calls, warnings, infos }
    }

    /// The automatic choice with native overlayfs only (the fake), or forced.
    fn fixture(choice: StorageDriver, probe_works: bool) -> Fixture {
        match choice {
            StorageDriver::Vfs => driver(&[], true),
            StorageDriver::Auto => driver(&[("native", false, probe_works)], true),
            StorageDriver::Overlay => driver(&[("native", false, probe_works)], false),
        }
    }

    impl Fixture {
        fn calls(&self) -> Vec<String> {
            let c = self.calls.lock().unwrap().clone();
            c.into_iter().map(|c| c.trim_start_matches("native:").to_string()).collect()
        }

        fn warnings(&self) -> Vec<String> {
            self.warnings.lock().unwrap().clone()
        }

        fn infos(&self) -> Vec<String> {
            self.infos.lock().unwrap().clone()
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
        assert_eq!(f.infos(), ["storage driver: vfs (plain copies) (native cannot be mounted here)"]);

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
        assert_eq!(f.infos().len(), 1);
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
        assert!(
            f.warnings()[1].contains("fuse-overlayfs at") && f.warnings()[1].contains("with 1 layers failed: refused")
        );
        assert!(f.infos().is_empty(), "no way settled: {:?}", f.infos());
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
        assert_eq!(f.infos(), ["storage driver: vfs (plain copies) (the reason)"]);
    }

    #[test]
    fn the_first_way_that_mounts_is_said_once() {
        let f = driver(&[("native", true, true), ("fuse", true, true)], true);
        drop(f.driver.begin(&f.store, &[]).unwrap());
        drop(f.driver.begin(&f.store, &[]).unwrap());
        assert_eq!(f.calls(), ["mount", "unmount", "mount", "unmount"]);
        assert_eq!(f.infos(), ["storage driver: native (the reason)"]);
        assert!(f.warnings().is_empty());
    }

    #[test]
    fn native_overlay_refused_falls_back_to_fuse_overlayfs_for_good() {
        for copies_last in [true, false] {
            let f = driver(&[("native", false, false), ("fuse", true, true)], copies_last);
            drop(f.driver.begin(&f.store, &[]).unwrap());
            let layer = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
            drop(f.driver.view(&f.store, &[layer]).unwrap());
            assert_eq!(
                f.calls(),
                ["mount", "probe", "fuse:mount", "fuse:unmount", "fuse:mount_readonly", "fuse:unmount"]
            );
            let w = f.warnings();
            assert_eq!(w.len(), 1, "{w:?}");
            assert!(w[0].starts_with("mounting overlayfs at ") && w[0].ends_with("; falling back to fuse"), "{w:?}");
            assert_eq!(f.infos(), ["storage driver: fuse (native cannot be mounted here)"]);
        }
    }

    #[test]
    fn when_nothing_mounts_the_overlay_choice_names_both_and_auto_copies() {
        let f = driver(&[("native", false, false), ("fuse", false, false)], false);
        let e = format!("{:#}", f.driver.begin(&f.store, &[]).map(|_| ()).unwrap_err());
        assert!(e.starts_with("no way to mount layers here: native: mounting overlayfs at "), "{e}");
        assert!(e.contains("; fuse: mounting overlayfs at "), "{e}");
        assert_eq!(f.calls(), ["mount", "probe", "fuse:mount"]);
        assert!(f.infos().is_empty());

        let f = driver(&[("native", false, false), ("fuse", false, false)], true);
        f.layer();
        assert_eq!(f.calls(), ["mount", "probe", "fuse:mount", "fuse:probe"]);
        let w = f.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].ends_with("; falling back to fuse"), "{w:?}");
        assert!(w[1].ends_with("; falling back to the vfs driver (plain copies: slower, more disk)"), "{w:?}");
        assert_eq!(f.infos(), ["storage driver: vfs (plain copies) (native and fuse cannot be mounted here)"]);
    }
}
