//! The store's collector: what nothing references, and the least recently used stages.
//!
//! [`Inventory::scan`] reads the whole store under the exclusive store lock
//! ([`Store::open_exclusive`]): stage records, image refs, import metadata, blobs, layers,
//! the `layers-by-blob` index and leftovers in `tmp/`. The roots are the stage records
//! and the `images/` refs; from each, the walk follows a manifest (or an index's
//! manifests) to its config and layer blobs, the config's diffIDs to `layers/`, and each
//! layer's `meta.json` to its blob. Import metadata lives as long as its source stage
//! (or, for an external image, its `images/` ref).
//!
//! [`Inventory::plan`] lists what to remove in an order where every crash point leaves a
//! usable store: stage records and refs first (a stage is gone once its record is), then
//! import metadata, index entries, layers (renamed into the collector's own temp dir,
//! then deleted), blobs, and leftovers. Nothing a kept root reaches is ever removed.

use crate::digest::Digest;
use crate::error::{Result, StorageError};
use crate::store::{LayerMeta, StageRecord, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The largest manifest, index or config the walk reads.
const MAX_JSON: u64 = 16 << 20;
/// How deep an index may nest other indexes.
const MAX_INDEX_DEPTH: usize = 4;

/// Something the walk reaches: a blob or an unpacked layer (by diffID hex).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Key {
    Blob(Digest),
    Layer(String),
}

/// One stage record.
#[derive(Debug, Clone)]
pub struct StageEntry {
    /// The directory under `stages/`.
    pub project: String,
    /// `DIGEST-TIMESTAMP_MS`.
    pub id: String,
    /// The record's mtime: when a build last found or stored the stage.
    pub last_used: SystemTime,
    bytes: u64,
    reaches: BTreeSet<Key>,
}

/// What a removal is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Stage {
        project: String,
        id: String,
    },
    ImageRef(String),
    ImportMetadata {
        project: String,
        id: String,
    },
    LayerIndex(String),
    Layer(String),
    Blob(Digest),
    /// A leftover in `tmp/` or a half-written `.tmp-*` file.
    Temp,
    /// A directory purge removes (RUN cache mounts, Stapel build_dir mounts).
    Dir,
}

/// One thing to remove, with its path and size (a layer's size is its unpacked size as
/// recorded; a directory's is measured).
#[derive(Debug, Clone)]
pub struct Removal {
    pub kind: Kind,
    pub path: PathBuf,
    pub bytes: u64,
}

impl Removal {
    /// One line: what it is and its size.
    pub fn describe(&self, root: &Path) -> String {
        let rel = self.path.strip_prefix(root).unwrap_or(&self.path).display().to_string();
        let what = match &self.kind {
            Kind::Stage { project, id } => format!("stage {project}:{id}"),
            Kind::ImageRef(_) => format!("image ref {rel}"),
            Kind::ImportMetadata { project, id } => format!("import metadata {project}/{id}"),
            Kind::LayerIndex(_) => format!("layer index {rel}"),
            Kind::Layer(hex) => format!("layer sha256:{hex}"),
            Kind::Blob(d) => format!("blob {d}"),
            Kind::Temp => format!("leftover {rel}"),
            Kind::Dir => format!("directory {rel}"),
        };
        format!("{what} ({} bytes)", self.bytes)
    }
}

/// What to remove besides garbage.
#[derive(Debug, Clone, Default)]
pub struct Discard {
    /// Stage records, as `(project, id)`.
    pub stages: BTreeSet<(String, String)>,
    /// Every `images/` ref.
    pub image_refs: bool,
    /// Directories under the root to remove whole (purge).
    pub dirs: Vec<PathBuf>,
}

/// Everything in the store, as the walk saw it.
pub struct Inventory {
    root: PathBuf,
    pub stages: Vec<StageEntry>,
    image_refs: Vec<(PathBuf, u64, BTreeSet<Key>)>,
    /// `(project dir, id, path, bytes, source stage id)`.
    imports: Vec<(String, String, PathBuf, u64, Option<String>)>,
    blobs: BTreeMap<Digest, (PathBuf, u64)>,
    layers: BTreeMap<String, u64>,
    /// `(path, blob hex, diffID hex)`.
    index: Vec<(PathBuf, String, Option<String>)>,
    temps: Vec<(PathBuf, u64)>,
}

impl Inventory {
    /// Read the store. `store` must hold the store lock exclusive: nothing else may add
    /// to it meanwhile. An unreadable record or a referenced blob that does not parse
    /// stops the scan (nothing is removed on a guess).
    pub fn scan(store: &Store) -> Result<Inventory> {
        let root = store.root().to_path_buf();
        let mut inv = Inventory {
            root: root.clone(),
            stages: Vec::new(),
            image_refs: Vec::new(),
            imports: Vec::new(),
            blobs: BTreeMap::new(),
            layers: BTreeMap::new(),
            index: Vec::new(),
            temps: Vec::new(),
        };
        for alg in ["sha256", "sha512"] {
            for (path, name, meta) in files(&root.join("blobs").join(alg))? {
                if let Ok(d) = Digest::parse(&format!("{alg}:{name}")) {
                    inv.blobs.insert(d, (path, meta.len()));
                }
            }
        }
        for (path, name, meta) in entries(&root.join("layers"))? {
            if name.starts_with('.') || !meta.is_dir() {
                continue;
            }
            let size = read_layer_meta(&path.join("meta.json"))?.map_or(0, |m| m.uncompressed_size);
            inv.layers.insert(name, size);
        }
        for (path, name, meta) in files(&root.join("layers-by-blob"))? {
            if name.starts_with(".tmp-") {
                inv.temps.push((path, meta.len()));
                continue;
            }
            let target = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| Digest::parse(s.trim()).ok())
                .map(|d| d.hex().to_string());
            inv.index.push((path, name, target));
        }
        let mut walk = Walk { inv: &inv, store, memo: BTreeMap::new() };
        let mut stages = Vec::new();
        for (dir, project, meta) in entries(&root.join("stages"))? {
            if !meta.is_dir() {
                continue;
            }
            for (path, name, meta) in files(&dir)? {
                if name.starts_with(".tmp-") {
                    stages.push(Err((path, meta.len())));
                    continue;
                }
                let Some((_, ts)) = name.rsplit_once('-') else { continue };
                if ts.parse::<u64>().is_err() {
                    continue;
                }
                let bytes = std::fs::read(&path).map_err(StorageError::io("reading", &path))?;
                let record: StageRecord = serde_json::from_slice(&bytes)
                    .map_err(|source| StorageError::Json { what: path.display().to_string(), source })?;
                let reaches = walk.manifest(&record.manifest, 0)?;
                let last_used = meta.modified().map_err(StorageError::io("reading the mtime of", &path))?;
                stages.push(Ok(StageEntry {
                    project: project.clone(),
                    id: name,
                    last_used,
                    bytes: meta.len(),
                    reaches,
                }));
            }
        }
        let mut refs = Vec::new();
        for (path, name, meta) in files(&root.join("images"))? {
            if name.starts_with(".tmp-") {
                refs.push(Err((path, meta.len())));
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(StorageError::io("reading", &path))?;
            let reaches = walk.manifest(&Digest::parse(text.trim())?, 0)?;
            refs.push(Ok((path, meta.len(), reaches)));
        }
        drop(walk);
        for s in stages {
            match s {
                Ok(s) => inv.stages.push(s),
                Err(t) => inv.temps.push(t),
            }
        }
        for r in refs {
            match r {
                Ok(r) => inv.image_refs.push(r),
                Err(t) => inv.temps.push(t),
            }
        }
        for (dir, project, meta) in entries(&root.join("import-metadata"))? {
            if !meta.is_dir() {
                continue;
            }
            for (path, id, meta) in files(&dir)? {
                if id.starts_with(".tmp-") {
                    inv.temps.push((path, meta.len()));
                    continue;
                }
                let source = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<BTreeMap<String, String>>(&b).ok())
                    .and_then(|l| l.get("source-stage-id").cloned());
                inv.imports.push((project.clone(), id, path, meta.len(), source));
            }
        }
        let own = store.scratch();
        for (path, _, _) in entries(&root.join("tmp"))? {
            if path == own || path == own.with_extension("lock") {
                continue;
            }
            let bytes = disk_usage(&path);
            inv.temps.push((path, bytes));
        }
        inv.stages.sort_by(|a, b| (a.last_used, &a.project, &a.id).cmp(&(b.last_used, &b.project, &b.id)));
        Ok(inv)
    }

    fn size(&self, k: &Key) -> u64 {
        match k {
            Key::Blob(d) => self.blobs.get(d).map_or(0, |b| b.1),
            Key::Layer(h) => self.layers.get(h).copied().unwrap_or(0),
        }
    }

    fn exists(&self, k: &Key) -> bool {
        match k {
            Key::Blob(d) => self.blobs.contains_key(d),
            Key::Layer(h) => self.layers.contains_key(h),
        }
    }

    /// The least recently used stages (oldest first) whose removal, with what only they
    /// reach and the garbage there is anyway, frees about `need` bytes (all stages if
    /// that is not enough).
    pub fn least_recently_used(&self, need: u64) -> Vec<(String, String)> {
        let mut counts: BTreeMap<&Key, u32> = BTreeMap::new();
        for r in self.stages.iter().map(|s| &s.reaches).chain(self.image_refs.iter().map(|r| &r.2)) {
            for k in r {
                *counts.entry(k).or_default() += 1;
            }
        }
        let unreferenced = |k: &Key| !counts.contains_key(k);
        let mut freed: u64 = self
            .blobs
            .keys()
            .map(|d| Key::Blob(d.clone()))
            .filter(|k| unreferenced(k))
            .map(|k| self.size(&k))
            .sum::<u64>()
            + self
                .layers
                .keys()
                .map(|h| Key::Layer(h.clone()))
                .filter(|k| unreferenced(k))
                .map(|k| self.size(&k))
                .sum::<u64>()
            + self.temps.iter().map(|t| t.1).sum::<u64>();
        let mut chosen = Vec::new();
        for s in &self.stages {
            if freed >= need {
                break;
            }
            chosen.push((s.project.clone(), s.id.clone()));
            freed += s.bytes;
            for k in &s.reaches {
                let c = counts.get_mut(k).expect("counted");
                *c -= 1;
                if *c == 0 {
                    freed += self.size(k);
                }
            }
        }
        chosen
    }

    /// Every stage, as [`Discard::stages`] takes them (all, or one project's).
    pub fn stages_of(&self, project: Option<&str>) -> BTreeSet<(String, String)> {
        self.stages
            .iter()
            .filter(|s| project.is_none_or(|p| p == s.project))
            .map(|s| (s.project.clone(), s.id.clone()))
            .collect()
    }

    /// What to remove, in removal order: `discard`, then whatever nothing kept reaches.
    pub fn plan(&self, discard: &Discard) -> Vec<Removal> {
        let mut out = Vec::new();
        let mut reachable: BTreeSet<&Key> = BTreeSet::new();
        let mut kept_stages: BTreeSet<(String, &str)> = BTreeSet::new();
        for s in &self.stages {
            if discard.stages.contains(&(s.project.clone(), s.id.clone())) {
                out.push(Removal {
                    kind: Kind::Stage { project: s.project.clone(), id: s.id.clone() },
                    path: self.root.join("stages").join(&s.project).join(&s.id),
                    bytes: s.bytes,
                });
            } else {
                reachable.extend(&s.reaches);
                kept_stages.insert((crate::store::escape(&s.project), &s.id));
            }
        }
        for (path, bytes, reaches) in &self.image_refs {
            if discard.image_refs {
                let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
                out.push(Removal { kind: Kind::ImageRef(name), path: path.clone(), bytes: *bytes });
            } else {
                reachable.extend(reaches);
            }
        }
        let kept_refs: BTreeSet<String> = if discard.image_refs {
            BTreeSet::new()
        } else {
            self.image_refs.iter().filter_map(|r| r.0.file_name()).map(|n| n.to_string_lossy().into_owned()).collect()
        };
        for (project, id, path, bytes, source) in &self.imports {
            let kept = match source.as_deref().map(|s| (s, s.strip_prefix("external-image:"))) {
                // An external image's import lives as long as the pulled image's ref.
                Some((_, Some(reference))) => crate::reference::Reference::parse(reference)
                    .is_ok_and(|r| kept_refs.contains(&crate::store::escape(&r.to_string()))),
                Some((stage, None)) => kept_stages.contains(&(project.clone(), stage)),
                None => false,
            };
            if !kept {
                let kind = Kind::ImportMetadata { project: project.clone(), id: id.clone() };
                out.push(Removal { kind, path: path.clone(), bytes: *bytes });
            }
        }
        for (path, blob, target) in &self.index {
            let kept = target
                .as_ref()
                .is_some_and(|t| reachable.contains(&Key::Layer(t.clone())) && self.layers.contains_key(t));
            if !kept {
                out.push(Removal { kind: Kind::LayerIndex(blob.clone()), path: path.clone(), bytes: 0 });
            }
        }
        for (hex, size) in &self.layers {
            if !reachable.contains(&Key::Layer(hex.clone())) {
                let path = self.root.join("layers").join(hex);
                out.push(Removal { kind: Kind::Layer(hex.clone()), path, bytes: *size });
            }
        }
        for (d, (path, size)) in &self.blobs {
            if !reachable.contains(&Key::Blob(d.clone())) {
                out.push(Removal { kind: Kind::Blob(d.clone()), path: path.clone(), bytes: *size });
            }
        }
        for (path, bytes) in &self.temps {
            out.push(Removal { kind: Kind::Temp, path: path.clone(), bytes: *bytes });
        }
        for d in &discard.dirs {
            let path = self.root.join(d);
            if std::fs::symlink_metadata(&path).is_ok() {
                out.push(Removal { kind: Kind::Dir, bytes: disk_usage(&path), path });
            }
        }
        out
    }
}

/// Remove `plan` in its order, calling `done` after each removal. Stops at the first
/// error: what was removed stays removed, the rest is garbage for the next run.
pub fn apply(store: &Store, plan: &[Removal], mut done: impl FnMut(&Removal)) -> Result<()> {
    for r in plan {
        match &r.kind {
            Kind::Stage { .. }
            | Kind::ImageRef(_)
            | Kind::ImportMetadata { .. }
            | Kind::LayerIndex(_)
            | Kind::Blob(_) => {
                match std::fs::remove_file(&r.path) {
                    Ok(()) => crate::blob::sync_dir(r.path.parent().expect("a file under the store")),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StorageError::io("removing", &r.path)(e)),
                }
                if matches!(r.kind, Kind::Stage { .. } | Kind::ImportMetadata { .. }) {
                    // The project's directory, once empty.
                    let _ = std::fs::remove_dir(r.path.parent().expect("a file under the store"));
                }
            }
            // Renamed out of sight first: a crash mid-removal leaves only a temp dir.
            Kind::Layer(_) | Kind::Dir => {
                let away = store.scratch_dir("gc")?.join("tree");
                match std::fs::rename(&r.path, &away) {
                    Ok(()) => crate::remove::remove_tree(&away)?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StorageError::io("moving aside", &r.path)(e)),
                }
            }
            Kind::Temp => crate::remove::remove_tree(&r.path)?,
        }
        done(r);
    }
    Ok(())
}

/// The walk from a manifest to what it reaches, memoized.
struct Walk<'a> {
    inv: &'a Inventory,
    store: &'a Store,
    memo: BTreeMap<Digest, BTreeSet<Key>>,
}

impl Walk<'_> {
    /// The manifest or index `d`, and everything it reaches that is in the store.
    fn manifest(&mut self, d: &Digest, depth: usize) -> Result<BTreeSet<Key>> {
        if let Some(r) = self.memo.get(d) {
            return Ok(r.clone());
        }
        let mut out = BTreeSet::from([Key::Blob(d.clone())]);
        if let Some(v) = self.json(d)? {
            if let Some(list) = v.get("manifests").and_then(|m| m.as_array())
                && depth < MAX_INDEX_DEPTH
            {
                for m in list {
                    if let Some(child) = descriptor(m)? {
                        out.extend(self.manifest(&child, depth + 1)?);
                    }
                }
            }
            if let Some(config) = v.get("config").map(descriptor).transpose()?.flatten() {
                out.insert(Key::Blob(config.clone()));
                if let Some(c) = self.json(&config)? {
                    let ids = c.pointer("/rootfs/diff_ids").and_then(|i| i.as_array()).cloned().unwrap_or_default();
                    for id in ids {
                        let id = id.as_str().map(Digest::parse).transpose()?;
                        if let Some(id) = id {
                            out.insert(Key::Layer(id.hex().to_string()));
                            if let Some(meta) =
                                read_layer_meta(&self.store.layer_diff(&id).with_file_name("meta.json"))?
                            {
                                out.insert(Key::Blob(meta.digest));
                            }
                        }
                    }
                }
            }
            for l in v.get("layers").and_then(|l| l.as_array()).into_iter().flatten() {
                if let Some(b) = descriptor(l)? {
                    out.insert(Key::Blob(b));
                }
            }
        }
        out.retain(|k| self.inv.exists(k));
        self.memo.insert(d.clone(), out.clone());
        Ok(out)
    }

    /// Blob `d` as JSON; `None` when the store does not have it.
    fn json(&self, d: &Digest) -> Result<Option<serde_json::Value>> {
        let Some((path, size)) = self.inv.blobs.get(d) else { return Ok(None) };
        if *size > MAX_JSON {
            return Err(StorageError::Other(format!(
                "{}: {size} bytes is too large for a manifest or config the collector reads",
                path.display()
            )));
        }
        let bytes = std::fs::read(path).map_err(StorageError::io("reading", path))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StorageError::Json { what: path.display().to_string(), source })
    }
}

/// A descriptor's digest.
fn descriptor(v: &serde_json::Value) -> Result<Option<Digest>> {
    v.get("digest").and_then(|d| d.as_str()).map(Digest::parse).transpose()
}

fn read_layer_meta(p: &Path) -> Result<Option<LayerMeta>> {
    match std::fs::read(p) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|source| StorageError::Json { what: p.display().to_string(), source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io("reading", p)(e)),
    }
}

/// The entries of `dir` (none if it is missing) with their names and lstat.
fn entries(dir: &Path) -> Result<Vec<(PathBuf, String, std::fs::Metadata)>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io("reading", dir)(e)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(StorageError::io("reading", dir))?;
        let path = e.path();
        let meta = std::fs::symlink_metadata(&path).map_err(StorageError::io("stat", &path))?;
        out.push((path, e.file_name().to_string_lossy().into_owned(), meta));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// The regular files of `dir`.
fn files(dir: &Path) -> Result<Vec<(PathBuf, String, std::fs::Metadata)>> {
    Ok(entries(dir)?.into_iter().filter(|e| e.2.is_file()).collect())
}

/// The bytes a tree takes on disk (best effort: unreadable parts count as nothing).
/// The bytes the files below `path` take (a directory walk, symlinks not followed).
pub fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else { continue };
        total += m.blocks() * 512;
        if m.is_dir()
            && let Ok(rd) = std::fs::read_dir(&p)
        {
            stack.extend(rd.flatten().map(|e| e.path()));
        }
    }
    total
}

/// Used and total bytes of the filesystem holding `path` (`statvfs`).
pub fn volume_usage(path: &Path) -> Result<(u64, u64)> {
    let s = nix::sys::statvfs::statvfs(path).map_err(StorageError::sys("statvfs", path.display().to_string()))?;
    let frsize = s.fragment_size();
    let total = s.blocks() * frsize;
    let free = s.blocks_free() * frsize;
    Ok((total.saturating_sub(free), total))
}

#[cfg(test)]
#[path = "gc_tests.rs"]
mod tests;
