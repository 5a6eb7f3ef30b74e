//! Stage storage: where stages live, behind one trait with three implementations.
//!
//! ```text
//! StageStorage          name · list · candidates · select · fetch · publish · delete
//! ├── LocalStorage      stages/<project>/<digest>-<ts> records in the local store (no --repo)
//! ├── RegistryStorage   REPO:<digest>-<ts> tags of one registry repository
//! └── Layered           --repo: the local store as a cache over the primary repository,
//!                       plus --secondary-repo, --cache-repo and --final-repo
//! ```
//!
//! A stage is named by its [`StageId`], werf's `DIGEST-TIMESTAMP_MS`. Several stages
//! can share a digest (racing builders, or Stapel git stages built on several
//! branches); the oldest is used, or, when a stage passes a [`Selector`], the oldest it
//! accepts ([`choose`]). Only then are the candidates' configs read, one by one.
//!
//! Storing is optimistic (werf's model): a stage is built without a lock; then, under a
//! lock, the storage is asked again (bypassing any cache), and if a suitable stage of
//! that digest appeared meanwhile ours is dropped and that one used. The file locks
//! live in the local store (builds sharing it) and in the host lock directory
//! (`$XDG_RUNTIME_DIR/slipway/locks`: every build of this user on this host that uses a
//! registry). Across hosts the registry is the arbiter: see `docs/STAGE-STORAGE.md`.

pub mod layered;
pub mod local;
pub mod registry;

use super::state::{ImageState, StageLabels};
use slipway_storage::image::Manifest;
use slipway_storage::store::StageRef;
use std::collections::BTreeMap;

/// werf's stage ID, `DIGEST-TIMESTAMP_MS`: a 56-hex digest and the UTC millisecond time
/// the stage was stored. In a registry it is the stage's tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageId {
    pub digest: String,
    pub timestamp_ms: u64,
}

impl StageId {
    /// werf's shape: 56 hex digest, `-`, a millisecond timestamp. Other tags (`latest`,
    /// `…-rejected`) are not stages.
    pub fn parse(tag: &str) -> Option<StageId> {
        let (digest, ts) = tag.split_once('-')?;
        if digest.len() != 56
            || !digest.bytes().all(|b| b.is_ascii_hexdigit())
            || ts.is_empty()
            || !ts.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(StageId { digest: digest.into(), timestamp_ms: ts.parse().ok()? })
    }
}

impl std::fmt::Display for StageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.digest, self.timestamp_ms)
    }
}

impl From<&StageRef> for StageId {
    fn from(s: &StageRef) -> StageId {
        StageId { digest: s.digest.clone(), timestamp_ms: s.timestamp_ms }
    }
}

/// A stage as [`StageStorage::list`] shows it.
pub struct ListedStage {
    pub id: StageId,
    pub manifest: Manifest,
}

/// A stage found by digest, and where it came from: `local` (the local store without
/// `--repo`), `primary`, `cache` (the primary's stage, fetched from a cache repo) or
/// `secondary`. The report and the log show it.
pub struct Found {
    pub state: ImageState,
    pub source: &'static str,
}

/// Which stages of one digest may be used (werf's `SelectSuitableStage`); without one,
/// any stage may, and the oldest is used.
pub trait Selector {
    /// Whether a stored stage with these config `labels` will do. The candidates are
    /// asked oldest first; the first one accepted is used.
    fn accepts(&self, labels: &BTreeMap<String, String>) -> bool;
}

/// The stage to use among `candidates`: the oldest without a selector (nothing is
/// read), else the oldest `selector` accepts, reading the labels of each candidate it
/// is asked about with `labels` (a registry: one manifest and one config request).
pub fn choose(
    mut candidates: Vec<StageId>,
    selector: Option<&dyn Selector>,
    labels: impl Fn(&StageId) -> anyhow::Result<BTreeMap<String, String>>,
) -> anyhow::Result<Option<StageId>> {
    candidates.sort_by_key(|c| c.timestamp_ms);
    let Some(selector) = selector else { return Ok(candidates.into_iter().next()) };
    for id in candidates {
        if selector.accepts(&labels(&id)?) {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// The labels of a stage's config.
pub fn labels_of(found: Found) -> BTreeMap<String, String> {
    found.state.config.config.labels.unwrap_or_default()
}

/// werf's import metadata: the checksum of the files an import takes from its source,
/// kept under the import source ID (what the source holds and which files the import
/// selects), so a later build needs neither the source's layers nor a walk of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportMetadata {
    pub import_source_id: String,
    pub source_stage_id: String,
    pub checksum: String,
}

/// werf's labels of an import metadata image (`pkg/image/const.go`).
const IMPORT_SOURCE_ID_LABEL: &str = "import-source-id";
const SOURCE_STAGE_ID_LABEL: &str = "source-stage-id";
const CHECKSUM_LABEL: &str = "checksum";

impl ImportMetadata {
    pub fn to_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (IMPORT_SOURCE_ID_LABEL.to_string(), self.import_source_id.clone()),
            (SOURCE_STAGE_ID_LABEL.to_string(), self.source_stage_id.clone()),
            (CHECKSUM_LABEL.to_string(), self.checksum.clone()),
        ])
    }

    /// The metadata in `labels`, if they are whole and for `id` (werf regenerates a
    /// record with an empty checksum; so does slipway).
    pub fn from_labels(id: &str, labels: &BTreeMap<String, String>) -> Option<ImportMetadata> {
        let m = ImportMetadata {
            import_source_id: labels.get(IMPORT_SOURCE_ID_LABEL)?.clone(),
            source_stage_id: labels.get(SOURCE_STAGE_ID_LABEL)?.clone(),
            checksum: labels.get(CHECKSUM_LABEL)?.clone(),
        };
        (m.import_source_id == id && !m.checksum.is_empty()).then_some(m)
    }
}

/// Whether `id` has the shape of an import source ID (sha256 hex), so it can name a file
/// or a tag.
pub fn is_import_source_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A place that keeps the stages of one project.
pub trait StageStorage {
    /// How stages are named in reports: the project (local store) or `registry/repository`.
    fn name(&self) -> &str;

    /// Every stage, oldest first, with its manifest.
    fn list(&self) -> anyhow::Result<Vec<ListedStage>>;

    /// The stages of `digest`, oldest first (a registry lists its tags once per run).
    fn candidates(&self, digest: &str) -> anyhow::Result<Vec<StageId>>;

    /// The stage of `digest` to use among [`Self::candidates`] (see [`choose`]).
    fn select(&self, digest: &str, selector: Option<&dyn Selector>) -> anyhow::Result<Option<StageId>> {
        choose(self.candidates(digest)?, selector, |id| Ok(labels_of(self.fetch(id)?)))
    }

    /// A listed stage as an image: its manifest and config in the local store, never
    /// its layers (they come from the repository `state.source` when a step needs them).
    fn fetch(&self, id: &StageId) -> anyhow::Result<Found>;

    /// Store a newly built stage: optimistic, under a lock, dropping ours if a stage of
    /// `digest` that `selector` accepts appeared meanwhile. Returns the stage to continue
    /// from and whether it is ours.
    fn publish(
        &self,
        built: &ImageState,
        digest: &str,
        name: &str,
        labels: &StageLabels<'_>,
        selector: Option<&dyn Selector>,
    ) -> anyhow::Result<(ImageState, bool)>;

    /// Remove a stage: its record, or its manifest in a registry (every tag naming
    /// that manifest goes with it).
    fn delete(&self, id: &StageId) -> anyhow::Result<()>;

    /// The stage of `digest` in this storage, fetched.
    fn find(&self, digest: &str, selector: Option<&dyn Selector>) -> anyhow::Result<Option<Found>> {
        match self.select(digest, selector)? {
            Some(id) => Ok(Some(self.fetch(&id)?)),
            None => Ok(None),
        }
    }

    /// A stage of `digest` that this storage can take from elsewhere (secondary repos)
    /// instead of having it built.
    fn find_elsewhere(&self, _digest: &str, _selector: Option<&dyn Selector>) -> anyhow::Result<Option<Found>> {
        Ok(None)
    }

    /// The stage to report for an image whose final stage is `state`: where builders on
    /// several hosts may race, the one they all agree on.
    fn settle(&self, state: ImageState, _digest: &str, _selector: Option<&dyn Selector>) -> anyhow::Result<ImageState> {
        Ok(state)
    }

    /// Copy a final image to the final repository, if there is one; returns its name.
    fn to_final_repo(&self, _state: &ImageState) -> anyhow::Result<Option<&str>> {
        Ok(None)
    }

    /// The import metadata recorded under `id` ([`is_import_source_id`]), if any.
    fn import_metadata(&self, id: &str) -> anyhow::Result<Option<ImportMetadata>>;

    /// Record import metadata; a registry that refuses it is a warning (it is a cache).
    fn put_import_metadata(&self, metadata: &ImportMetadata) -> anyhow::Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ts: u64) -> StageId {
        StageId { digest: "a".repeat(56), timestamp_ms: ts }
    }

    #[test]
    fn stage_ids_parse_werfs_shape_only() {
        let d = "a".repeat(56);
        assert_eq!(StageId::parse(&format!("{d}-1700000000300")), Some(id(1_700_000_000_300)));
        assert_eq!(id(1_700_000_000_300).to_string(), format!("{d}-1700000000300"));
        for bad in [format!("{d}-1700000000100-rejected"), format!("{d}-"), "latest".into(), format!("{d}x-1")] {
            assert_eq!(StageId::parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn oldest_is_the_default_and_a_selector_reads_labels_oldest_first() {
        let c = vec![id(300), id(100), id(200)];
        let asked = std::cell::RefCell::new(Vec::new());
        let labels = |i: &StageId| {
            asked.borrow_mut().push(i.timestamp_ms);
            Ok(BTreeMap::from([("ts".to_string(), i.timestamp_ms.to_string())]))
        };
        assert_eq!(choose(c.clone(), None, labels).unwrap(), Some(id(100)));
        assert!(asked.borrow().is_empty(), "the default reads no labels");
        assert_eq!(choose(Vec::new(), None, labels).unwrap(), None);
        // A filter like Stapel's ancestry check: the oldest of the acceptable ones.
        struct NotBefore(u64);
        impl Selector for NotBefore {
            fn accepts(&self, labels: &BTreeMap<String, String>) -> bool {
                labels["ts"].parse::<u64>().unwrap() >= self.0
            }
        }
        assert_eq!(choose(c.clone(), Some(&NotBefore(150)), labels).unwrap(), Some(id(200)));
        assert_eq!(*asked.borrow(), [100, 200], "read lazily, oldest first");
        assert_eq!(choose(c, Some(&NotBefore(400)), labels).unwrap(), None);
    }
}
