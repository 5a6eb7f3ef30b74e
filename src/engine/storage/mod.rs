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
//! can share a digest (racing builders); a [`Selector`] chooses the one to use, the
//! oldest by default ([`Oldest`]). Stapel's git stages will plug in a selector that
//! keeps only stages whose commit is an ancestor of the current one, as werf does.
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

/// Chooses the stage to use among the stages of one digest.
pub trait Selector {
    /// `candidates` are oldest first; `None` when none of them will do.
    fn choose<'c>(&self, candidates: &'c [StageId]) -> Option<&'c StageId>;
}

/// werf's default selection: the oldest stage of the digest.
pub struct Oldest;

impl Selector for Oldest {
    fn choose<'c>(&self, candidates: &'c [StageId]) -> Option<&'c StageId> {
        candidates.iter().min_by_key(|c| c.timestamp_ms)
    }
}

/// A place that keeps the stages of one project.
pub trait StageStorage {
    /// How stages are named in reports: the project (local store) or `registry/repository`.
    fn name(&self) -> &str;

    /// Every stage, oldest first, with its manifest.
    fn list(&self) -> anyhow::Result<Vec<ListedStage>>;

    /// The stages of `digest`, oldest first (a registry lists its tags once per run).
    fn candidates(&self, digest: &str) -> anyhow::Result<Vec<StageId>>;

    /// The stage of `digest` to use, as `selector` chooses among [`Self::candidates`].
    fn select(&self, digest: &str, selector: &dyn Selector) -> anyhow::Result<Option<StageId>> {
        Ok(selector.choose(&self.candidates(digest)?).cloned())
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
        selector: &dyn Selector,
    ) -> anyhow::Result<(ImageState, bool)>;

    /// Remove a stage: its record, or its manifest in a registry (every tag naming
    /// that manifest goes with it).
    fn delete(&self, id: &StageId) -> anyhow::Result<()>;

    /// The stage of `digest` in this storage, fetched.
    fn find(&self, digest: &str, selector: &dyn Selector) -> anyhow::Result<Option<Found>> {
        match self.select(digest, selector)? {
            Some(id) => Ok(Some(self.fetch(&id)?)),
            None => Ok(None),
        }
    }

    /// A stage of `digest` that this storage can take from elsewhere (secondary repos)
    /// instead of having it built.
    fn find_elsewhere(&self, _digest: &str, _selector: &dyn Selector) -> anyhow::Result<Option<Found>> {
        Ok(None)
    }

    /// The stage to report for an image whose final stage is `state`: where builders on
    /// several hosts may race, the one they all agree on.
    fn settle(&self, state: ImageState, _digest: &str, _selector: &dyn Selector) -> anyhow::Result<ImageState> {
        Ok(state)
    }

    /// Copy a final image to the final repository, if there is one; returns its name.
    fn to_final_repo(&self, _state: &ImageState) -> anyhow::Result<Option<&str>> {
        Ok(None)
    }
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
    fn oldest_is_the_default_and_a_selector_can_refuse_or_prefer() {
        let c = [id(300), id(100), id(200)];
        assert_eq!(Oldest.choose(&c), Some(&id(100)));
        assert_eq!(Oldest.choose(&[]), None);
        // A filter like Stapel's ancestry check: the oldest of the acceptable ones.
        struct NotBefore(u64);
        impl Selector for NotBefore {
            fn choose<'c>(&self, candidates: &'c [StageId]) -> Option<&'c StageId> {
                candidates.iter().filter(|c| c.timestamp_ms >= self.0).min_by_key(|c| c.timestamp_ms)
            }
        }
        assert_eq!(NotBefore(150).choose(&c), Some(&id(200)));
        assert_eq!(NotBefore(400).choose(&c), None);
    }
}
