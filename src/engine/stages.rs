//! The stage storage of one image build, as the stage loop uses it: the project's
//! [`StageStorage`] (the local store, or `--repo` with its companions), selecting the
//! stage of a digest with the stage's [`Selector`] (the oldest without one), plus the
//! local store for images named `PROJECT:DIGEST-TS`.

use super::state::{ImageState, StageLabels};
pub use super::storage::Found;
use super::storage::local::LocalStorage;
use super::storage::{ImportMetadata, Selector, StageStorage};
use slipway_storage::store::Store;

pub struct Stages<'a> {
    pub store: &'a Store,
    local: LocalStorage<'a>,
    storage: Box<dyn StageStorage + 'a>,
}

impl<'a> Stages<'a> {
    pub fn new(local: LocalStorage<'a>, storage: Box<dyn StageStorage + 'a>) -> Self {
        Stages { store: local.store, local, storage }
    }

    /// Where stages are named: the primary repo, or the project (local store).
    pub fn name(&self) -> &str {
        self.storage.name()
    }

    /// The stage with `digest`, if the storage has one or can take one from elsewhere
    /// (a secondary repo).
    pub fn lookup(&self, digest: &str, selector: Option<&dyn Selector>) -> anyhow::Result<Option<Found>> {
        match self.storage.find(digest, selector)? {
            Some(found) => Ok(Some(found)),
            None => self.storage.find_elsewhere(digest, selector),
        }
    }

    /// The stage with `digest` in the primary storage; secondary repos are not asked.
    pub fn lookup_primary(&self, digest: &str, selector: Option<&dyn Selector>) -> anyhow::Result<Option<Found>> {
        self.storage.find(digest, selector)
    }

    /// Store a newly built stage; returns the stage to continue from and whether it is ours.
    pub fn publish(
        &self,
        built: &ImageState,
        digest: &str,
        name: &str,
        labels: &StageLabels<'_>,
        selector: Option<&dyn Selector>,
    ) -> anyhow::Result<(ImageState, bool)> {
        self.storage.publish(built, digest, name, labels, selector)
    }

    /// The stage to report for an image whose final stage is `state` (see
    /// [`StageStorage::settle`]).
    pub fn settle(
        &self,
        state: ImageState,
        digest: &str,
        selector: Option<&dyn Selector>,
    ) -> anyhow::Result<ImageState> {
        self.storage.settle(state, digest, selector)
    }

    /// Copy a final image to `--final-repo`; returns that repository's name.
    pub fn to_final_repo(&self, state: &ImageState) -> anyhow::Result<Option<&str>> {
        self.storage.to_final_repo(state)
    }

    /// An image named `PROJECT:DIGEST-TS` (a dependency's `ImageName` without `--repo`):
    /// that stage of the local store.
    pub fn local_image(&self, reference: &str) -> anyhow::Result<Option<ImageState>> {
        self.local.image(reference)
    }

    /// Import metadata recorded under `id` (see [`StageStorage::import_metadata`]).
    pub fn import_metadata(&self, id: &str) -> anyhow::Result<Option<ImportMetadata>> {
        self.storage.import_metadata(id)
    }

    pub fn put_import_metadata(&self, metadata: &ImportMetadata) -> anyhow::Result<()> {
        self.storage.put_import_metadata(metadata)
    }
}
