//! The local store.
//!
//! ```text
//! <root>/                       $XDG_DATA_HOME/slipway or --storage-root
//! ├── blobs/sha256/<hex>        layer blobs, configs, manifests (see blob.rs; sha512/ too)
//! ├── layers/<diffid hex>/
//! │   ├── diff/                 the unpacked tree, overlayfs format (a lowerdir)
//! │   └── meta.json             LayerMeta: diffID, blob digest, sizes
//! ├── layers-by-blob/<hex>      blob digest → diffID (to skip downloads)
//! ├── images/<escaped ref>      pulled base images: reference → manifest digest
//! ├── stages/<project>/<digest>-<timestamp_ms>   StageRecord (manifest digest, …)
//! ├── import-metadata/<project>/<id>   an import's checksum (engine::storage::local)
//! ├── cache/<sha256 of id>/     RUN --mount=type=cache directories, kept between builds
//! ├── mounts/projects/<project>/<slug>/   Stapel `build_dir` mounts, kept between builds
//! ├── locks/                    flock files
//! ├── git-repos/<sha256 of URL>  bare caches of Stapel remote `git` repositories (written
//! │                             by the `git` CLI from the Stapel front end, not here)
//! ├── store.lock                shared flock of every process using the store; the
//! │                             collector (`gc`) takes it exclusive
//! └── tmp/run-<id>/             one per running process, held by tmp/run-<id>.lock
//! ```
//!
//! Everything becomes visible by a rename of a complete file or directory, so a kill -9
//! leaves at most garbage in `tmp/`, which the next process removes (only directories
//! whose lock no live process holds).
//!
//! A stage record's mtime is its last use: [`Store::touch_stage`] sets it when a build
//! finds the stage, and `host cleanup` removes the least recently used first.

use crate::blob::{BlobStore, random_suffix, sync_dir};
use crate::digest::Digest;
use crate::error::{Result, StorageError};
use crate::image::{ImageConfig, Manifest};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Metadata of a stored layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerMeta {
    pub diff_id: Digest,
    /// The compressed blob in `blobs/`.
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub uncompressed_size: u64,
    /// Device nodes the layer holds that could not be created on disk.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_devices: Vec<String>,
}

/// A stage in the store: `stages/<project>/<digest>-<timestamp_ms>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageRecord {
    pub manifest: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    /// A repository holding every blob of the stage (`registry/repository`), for
    /// stages whose layers were not downloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
}

/// A stage reference with its parsed name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageRef {
    pub digest: String,
    pub timestamp_ms: u64,
    pub record: StageRecord,
}

impl StageRef {
    /// werf's stage ID, `DIGEST-TIMESTAMP_MS`.
    pub fn id(&self) -> String {
        format!("{}-{}", self.digest, self.timestamp_ms)
    }
}

pub struct Store {
    root: PathBuf,
    blobs: BlobStore,
    run_dir: PathBuf,
    _run_lock: File,
    /// `store.lock`, shared (every user) or exclusive (the collector), held for the
    /// store's life. Dropped last: the run dir is gone before a collector may start.
    _store_lock: File,
}

/// The store is in use: the exclusive lock was not granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// The process ids of the live slipway processes holding the store (from their
    /// `tmp/run-<pid>-…` locks); empty when none could be named.
    pub pids: Vec<u32>,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.pids.is_empty() {
            return f.write_str("another slipway process");
        }
        let pids: Vec<String> = self.pids.iter().map(u32::to_string).collect();
        write!(f, "slipway process{} {}", if pids.len() == 1 { "" } else { "es" }, pids.join(", "))
    }
}

/// The file name of the store-wide lock under the root.
pub const STORE_LOCK: &str = "store.lock";

impl Store {
    /// Open (creating) the store at `root` for use: take the store lock shared (waiting
    /// while a collector holds it exclusive), claim a private temp directory and remove
    /// temp directories left by dead processes.
    pub fn open(root: &Path) -> Result<Store> {
        let lock = open_store_lock(root)?;
        if lock.try_lock_shared().is_err() {
            tracing::warn!(store = %root.display(), "waiting for the store: a host cleanup or purge is running");
            lock.lock_shared().map_err(StorageError::io("locking", root.join(STORE_LOCK)))?;
        }
        clean_dead_runs(&root.join("tmp"));
        Store::claim(root, lock)
    }

    /// Open the store at `root` for the collector: the store lock exclusive, at once, or
    /// `Err(Busy)` naming the processes that hold it. Temp directories are left for the
    /// collector to list.
    pub fn open_exclusive(root: &Path) -> Result<std::result::Result<Store, Busy>> {
        let lock = open_store_lock(root)?;
        if lock.try_lock().is_err() {
            return Ok(Err(Busy { pids: live_run_pids(&root.join("tmp")) }));
        }
        Store::claim(root, lock).map(Ok)
    }

    fn claim(root: &Path, store_lock: File) -> Result<Store> {
        let tmp = root.join("tmp");
        let id = random_suffix();
        // Locked before it gets its name, so no cleaner ever sees it unlocked.
        let lock_path = tmp.join(format!("run-{id}.lock"));
        let pending = tmp.join(format!(".pending-{id}"));
        let lock = File::create(&pending).map_err(StorageError::io("creating", &pending))?;
        lock.lock().map_err(StorageError::io("locking", &pending))?;
        std::fs::rename(&pending, &lock_path).map_err(StorageError::io("renaming", &lock_path))?;
        let run_dir = tmp.join(format!("run-{id}"));
        std::fs::create_dir(&run_dir).map_err(StorageError::io("creating", &run_dir))?;
        Ok(Store {
            blobs: BlobStore::new(root.join("blobs"), run_dir.clone()),
            root: root.to_path_buf(),
            run_dir,
            _run_lock: lock,
            _store_lock: store_lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// This process's private scratch directory (removed on drop).
    pub fn scratch(&self) -> &Path {
        &self.run_dir
    }

    /// A fresh directory under the scratch directory.
    pub fn scratch_dir(&self, prefix: &str) -> Result<PathBuf> {
        let p = self.run_dir.join(format!("{prefix}-{}", random_suffix()));
        std::fs::create_dir_all(&p).map_err(StorageError::io("creating", &p))?;
        Ok(p)
    }

    fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    /// The unpacked tree of a stored layer.
    pub fn layer_diff(&self, diff_id: &Digest) -> PathBuf {
        self.layer_path(diff_id).join("diff")
    }

    pub fn layer_meta(&self, diff_id: &Digest) -> Result<Option<LayerMeta>> {
        let p = self.layer_path(diff_id).join("meta.json");
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|source| StorageError::Json { what: p.display().to_string(), source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io("reading", p)(e)),
        }
    }

    /// The diffID of the layer stored for a compressed blob, if any.
    pub fn layer_for_blob(&self, blob: &Digest) -> Result<Option<Digest>> {
        let p = self.root.join("layers-by-blob").join(blob.hex());
        let diff_id = match std::fs::read_to_string(&p) {
            Ok(s) => Digest::parse(s.trim())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("reading", p)(e)),
        };
        Ok(self.layer_meta(&diff_id)?.is_some().then_some(diff_id))
    }

    /// Make `tree` (a directory under the scratch dir, in overlayfs format) the layer
    /// described by `meta`. If another process stored the same layer meanwhile, ours is
    /// removed and theirs kept (same content by construction).
    pub fn add_layer(&self, tree: &Path, meta: &LayerMeta) -> Result<()> {
        let staging = self.scratch_dir("layer")?;
        let diff = staging.join("diff");
        std::fs::rename(tree, &diff).map_err(StorageError::io("moving layer tree to", &diff))?;
        write_atomic(&staging.join("meta.json"), &serde_json::to_vec_pretty(meta).expect("layer meta serializes"))?;
        let dest = self.layer_path(&meta.diff_id);
        match std::fs::rename(&staging, &dest) {
            Ok(()) => sync_dir(&self.root.join("layers")),
            Err(e) if dest.exists() => {
                tracing::debug!(layer = %meta.diff_id, error = %e, "layer already stored by another process");
                if let Err(e) = crate::remove::remove_tree(&staging) {
                    // Left in the run dir, which is removed (or retried) as a whole.
                    tracing::warn!(dir = %staging.display(), error = %e, "cannot remove a duplicate layer");
                }
            }
            Err(e) => return Err(StorageError::io("storing layer at", dest)(e)),
        }
        write_atomic(&self.root.join("layers-by-blob").join(meta.digest.hex()), meta.diff_id.as_str().as_bytes())?;
        Ok(())
    }

    pub fn manifest(&self, d: &Digest) -> Result<Manifest> {
        let bytes = self.blobs.read(d)?;
        serde_json::from_slice(&bytes).map_err(|source| StorageError::Json { what: format!("manifest {d}"), source })
    }

    pub fn config(&self, d: &Digest) -> Result<ImageConfig> {
        let bytes = self.blobs.read(d)?;
        serde_json::from_slice(&bytes)
            .map_err(|source| StorageError::Json { what: format!("image config {d}"), source })
    }

    /// Record that reference `name` (a pulled image) resolved to `manifest`.
    pub fn set_image_ref(&self, name: &str, manifest: &Digest) -> Result<()> {
        write_atomic(&self.root.join("images").join(escape(name)), manifest.as_str().as_bytes())
    }

    pub fn image_ref(&self, name: &str) -> Result<Option<Digest>> {
        let p = self.root.join("images").join(escape(name));
        match std::fs::read_to_string(&p) {
            Ok(s) => Ok(Some(Digest::parse(s.trim())?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io("reading", p)(e)),
        }
    }

    fn stage_dir(&self, project: &str) -> PathBuf {
        self.root.join("stages").join(project)
    }

    pub fn put_stage(&self, project: &str, digest: &str, timestamp_ms: u64, record: &StageRecord) -> Result<StageRef> {
        let dir = self.stage_dir(project);
        std::fs::create_dir_all(&dir).map_err(StorageError::io("creating", &dir))?;
        write_atomic(
            &dir.join(format!("{digest}-{timestamp_ms}")),
            &serde_json::to_vec(record).expect("stage record serializes"),
        )?;
        Ok(StageRef { digest: digest.to_string(), timestamp_ms, record: record.clone() })
    }

    /// Forget the stage `<digest>-<timestamp_ms>` of `project` (its blobs and layers stay).
    /// Removing a stage that is not there is not an error.
    pub fn remove_stage(&self, project: &str, digest: &str, timestamp_ms: u64) -> Result<()> {
        let dir = self.stage_dir(project);
        let p = dir.join(format!("{digest}-{timestamp_ms}"));
        match std::fs::remove_file(&p) {
            Ok(()) => {
                sync_dir(&dir);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io("removing", p)(e)),
        }
    }

    /// Record that stage `<digest>-<timestamp_ms>` of `project` was used now (its record's
    /// mtime, which `host cleanup` orders by). A missing record is not an error.
    pub fn touch_stage(&self, project: &str, digest: &str, timestamp_ms: u64) -> Result<()> {
        let p = self.stage_dir(project).join(format!("{digest}-{timestamp_ms}"));
        match File::options().write(true).open(&p) {
            Ok(f) => f.set_modified(std::time::SystemTime::now()).map_err(StorageError::io("touching", &p)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io("opening", p)(e)),
        }
    }

    /// All stages of `project`, optionally only those with `digest`, oldest first.
    pub fn stages(&self, project: &str, digest: Option<&str>) -> Result<Vec<StageRef>> {
        let dir = self.stage_dir(project);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StorageError::io("reading", dir)(e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(StorageError::io("reading", &dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some((d, ts)) = name.rsplit_once('-') else { continue };
            let Ok(ts) = ts.parse::<u64>() else { continue };
            if digest.is_some_and(|want| want != d) {
                continue;
            }
            let bytes = std::fs::read(e.path()).map_err(StorageError::io("reading", e.path()))?;
            let record = serde_json::from_slice(&bytes)
                .map_err(|source| StorageError::Json { what: e.path().display().to_string(), source })?;
            out.push(StageRef { digest: d.to_string(), timestamp_ms: ts, record });
        }
        out.sort_by(|a, b| (a.timestamp_ms, &a.digest).cmp(&(b.timestamp_ms, &b.digest)));
        Ok(out)
    }

    /// An exclusive lock on `name` (e.g. `<project>.<digest>`), held until dropped.
    pub fn lock(&self, name: &str) -> Result<File> {
        lock_in(&self.root.join("locks"), name)
    }
}

impl Drop for Store {
    /// Removes the run dir, then its lock. If the tree cannot be removed, the lock file
    /// stays: once this process is gone nobody holds it, and the next `Store::open`
    /// retries (see `clean_dead_runs`).
    fn drop(&mut self) {
        match crate::remove::remove_tree(&self.run_dir) {
            Ok(()) => {
                let _ = std::fs::remove_file(self.run_dir.with_extension("lock"));
            }
            Err(e) => {
                tracing::warn!(dir = %self.run_dir.display(), error = %e, "cannot remove this process's temp dir; the next run retries");
            }
        }
    }
}

/// `<root>/store.lock`, created with the store's directories.
fn open_store_lock(root: &Path) -> Result<File> {
    for d in ["blobs/sha256", "layers", "layers-by-blob", "images", "stages", "locks", "tmp"] {
        let p = root.join(d);
        std::fs::create_dir_all(&p).map_err(StorageError::io("creating", &p))?;
    }
    let p = root.join(STORE_LOCK);
    File::options().create(true).truncate(false).write(true).open(&p).map_err(StorageError::io("opening lock", &p))
}

/// The pids of the processes whose `tmp/run-<pid>-….lock` is held.
fn live_run_pids(tmp: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(tmp) else { return Vec::new() };
    let mut pids = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_prefix("run-").and_then(|n| n.strip_suffix(".lock")) else { continue };
        let Ok(f) = File::options().write(true).open(e.path()) else { continue };
        if f.try_lock().is_ok() {
            continue;
        }
        if let Some(pid) = id.split('-').next().and_then(|p| p.parse().ok()) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// An exclusive flock on `dir/<name escaped>`, held until the file is dropped.
pub fn lock_in(dir: &Path, name: &str) -> Result<File> {
    std::fs::create_dir_all(dir).map_err(StorageError::io("creating", dir))?;
    let p = dir.join(escape(name));
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(StorageError::io("opening lock", &p))?;
    f.lock().map_err(StorageError::io("locking", &p))?;
    Ok(f)
}

/// Remove `tmp/run-*` directories whose lock file no live process holds.
fn clean_dead_runs(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // A pending lock is being created by a live process unless it is old.
        let old = |e: &std::fs::DirEntry| {
            e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|d| d.as_secs() > 60))
        };
        let pending = name.starts_with(".pending-") && old(&e);
        let id = name.strip_prefix("run-").and_then(|n| n.strip_suffix(".lock"));
        if id.is_none() && !pending {
            continue;
        }
        let Ok(f) = File::options().write(true).open(e.path()) else {
            continue;
        };
        if f.try_lock().is_err() {
            continue;
        }
        if let Some(id) = id {
            let dir = tmp.join(format!("run-{id}"));
            if let Err(err) = crate::remove::remove_tree(&dir) {
                tracing::warn!(dir = %dir.display(), error = %err, "cannot remove a dead process's temp dir");
                continue;
            }
        }
        let _ = std::fs::remove_file(e.path());
    }
}

/// Write `bytes` to `path` via a temp file + fsync + rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().expect("path has a parent");
    let tmp = dir.join(format!(".tmp-{}", random_suffix()));
    let mut f = File::create(&tmp).map_err(StorageError::io("creating", &tmp))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(StorageError::io("writing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        StorageError::io("renaming into", path)(e)
    })?;
    sync_dir(dir);
    Ok(())
}

/// A reference or lock name as one safe file name.
pub fn escape(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02x}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_sorted_and_filtered() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let rec = StageRecord { manifest: Digest::of(b"m"), git_commit: None, repo: None };
        s.put_stage("p", "aaa", 20, &rec).unwrap();
        s.put_stage("p", "aaa", 10, &rec).unwrap();
        s.put_stage("p", "bbb", 5, &rec).unwrap();
        let got: Vec<String> = s.stages("p", Some("aaa")).unwrap().iter().map(StageRef::id).collect();
        assert_eq!(got, ["aaa-10", "aaa-20"]);
        assert_eq!(s.stages("p", None).unwrap().len(), 3);
        assert!(s.stages("other", None).unwrap().is_empty());
        s.remove_stage("p", "aaa", 10).unwrap();
        s.remove_stage("p", "aaa", 10).unwrap();
        let got: Vec<String> = s.stages("p", None).unwrap().iter().map(StageRef::id).collect();
        assert_eq!(got, ["bbb-5", "aaa-20"]);
    }

    #[test]
    fn dead_temp_dirs_are_removed_live_ones_kept() {
        let t = tempfile::tempdir().unwrap();
        let live = Store::open(t.path()).unwrap();
        std::fs::write(live.scratch().join("x"), b"x").unwrap();
        // A dead process: a run dir whose lock nobody holds.
        let dead = t.path().join("tmp/run-dead");
        std::fs::create_dir_all(&dead).unwrap();
        std::fs::write(t.path().join("tmp/run-dead.lock"), b"").unwrap();
        let _second = Store::open(t.path()).unwrap();
        assert!(!dead.exists());
        assert!(live.scratch().join("x").exists());
    }

    #[test]
    fn a_run_dir_with_a_deep_tree_is_removed_with_its_lock() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let run = s.scratch().to_path_buf();
        // 3000 levels, built with relative mkdir so no path passes PATH_MAX.
        let mut fd = nix::fcntl::open(&run, nix::fcntl::OFlag::O_DIRECTORY, nix::sys::stat::Mode::empty()).unwrap();
        for _ in 0..3000 {
            nix::sys::stat::mkdirat(&fd, "d", nix::sys::stat::Mode::from_bits_truncate(0o755)).unwrap();
            fd = nix::fcntl::openat(&fd, "d", nix::fcntl::OFlag::O_DIRECTORY, nix::sys::stat::Mode::empty()).unwrap();
        }
        nix::sys::stat::mkdirat(&fd, "locked", nix::sys::stat::Mode::empty()).unwrap();
        drop(fd);
        drop(s);
        assert!(!run.exists(), "run dir removed");
        assert!(!run.with_extension("lock").exists(), "lock removed after the dir");
        assert_eq!(std::fs::read_dir(t.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn a_user_waits_for_the_collector_and_the_collector_never_waits() {
        let t = tempfile::tempdir().unwrap();
        let gc = Store::open_exclusive(t.path()).unwrap().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let root = t.path().to_path_buf();
        let user = std::thread::spawn(move || {
            let s = Store::open(&root).unwrap();
            tx.send(()).unwrap();
            // Held: a collector is refused at once, naming this process.
            let busy = Store::open_exclusive(&root).unwrap().err().unwrap();
            assert_eq!(busy.pids, [std::process::id()]);
            drop(s);
        });
        assert!(rx.recv_timeout(std::time::Duration::from_millis(300)).is_err(), "open did not wait");
        drop(gc);
        rx.recv_timeout(std::time::Duration::from_secs(10)).expect("open went on once the collector was done");
        user.join().unwrap();
        assert!(Store::open_exclusive(t.path()).unwrap().is_ok());
    }

    #[test]
    fn escape_is_flat() {
        assert_eq!(escape("127.0.0.1:5000/base/busybox:latest"), "127.0.0.1%3a5000%2fbase%2fbusybox%3alatest");
    }
}
