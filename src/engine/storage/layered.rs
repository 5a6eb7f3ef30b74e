//! `--repo`: the primary registry repository holds the stages; the local store is a
//! cache in front of it (a stage fetched from or pushed to the primary is recorded
//! locally under the same ID, so it is fetched once). Around it:
//!
//! - secondary repos (read-only): a stage missing in the primary but found there is
//!   copied into the primary under the same ID instead of being built;
//! - cache repos (read-write): preferred for fetching a stage the primary names, and
//!   filled, best-effort, with every stage built or fetched from the primary;
//! - the final repo: the last stage of each final image is copied there.

use super::local::LocalStorage;
use super::registry::{Pushed, RegistryStorage, Role};
use super::{Found, ImportMetadata, ListedStage, Selector, StageId, StageStorage};
use crate::engine::push::push_image;
use crate::engine::state::{ImageState, StageLabels, now_ms, write_image};
use anyhow::Context;
use slipway_storage::Digest;
use slipway_storage::reference::Reference;
use slipway_storage::registry::Client;
use slipway_storage::store::StageRecord;
use std::time::Duration;

pub struct Layered<'a> {
    pub client: &'a Client,
    pub local: LocalStorage<'a>,
    pub primary: RegistryStorage<'a>,
    pub secondary: Vec<RegistryStorage<'a>>,
    pub cache: Vec<RegistryStorage<'a>>,
    pub final_repo: Option<RegistryStorage<'a>>,
    /// How long after its manifest request a racing builder's tag is surely listed
    /// (`SLIPWAY_PUBLISH_GRACE_MS`).
    pub grace: Duration,
}

impl Layered<'_> {
    /// A stage of `repo`: from the local store if it was fetched before, else its
    /// manifest and config (never its layers) from a cache repo that has it or `repo`,
    /// then recorded locally (and copied into the cache repos if `repo` served it).
    fn load_or_fetch(&self, repo: &RegistryStorage<'_>, id: &StageId) -> anyhow::Result<Found> {
        if let Some(s) = self.local.stage(id)? {
            let mut state = ImageState::load(self.local.store, &s)?;
            state.source = Some(repo.reference().clone());
            return Ok(Found { state, source: repo.role.as_str() });
        }
        let mut from = repo;
        for c in &self.cache {
            if c.select(&id.digest, None)?.is_some_and(|t| t == *id) {
                from = c;
                break;
            }
        }
        let mut found = from.fetch(id)?;
        let fetched = found.state.stage.take().expect("fetched stages have a record");
        found.state.stage =
            Some(self.local.store.put_stage(self.local.project, &id.digest, id.timestamp_ms, &fetched.record)?);
        if from.role != Role::Cache {
            self.fill_caches(&fetched.record.manifest, found.state.source.as_ref(), id);
        }
        Ok(found)
    }

    /// Copy a stage into every cache repo that lacks it; a failure is a warning.
    fn fill_caches(&self, manifest: &Digest, source: Option<&Reference>, id: &StageId) {
        let log = self.local.log;
        for c in &self.cache {
            if c.select(&id.digest, None).ok().flatten().is_some_and(|t| t == *id) {
                continue;
            }
            let res =
                c.tagged(id).and_then(|dest| push_image(self.client, self.local.store, manifest, source, &dest, log));
            match res {
                Ok(()) => c.note(id),
                Err(e) => log.warn(&format!("filling cache repo {} with {id}: {e:#}", c.name)),
            }
        }
    }
}

impl StageStorage for Layered<'_> {
    fn name(&self) -> &str {
        &self.primary.name
    }

    /// The local store's record, else the primary's (then kept locally).
    fn import_metadata(&self, id: &str) -> anyhow::Result<Option<ImportMetadata>> {
        if let Some(m) = self.local.import_metadata(id)? {
            return Ok(Some(m));
        }
        let found = self.primary.import_metadata(id)?;
        if let Some(m) = &found {
            self.local.put_import_metadata(m)?;
        }
        Ok(found)
    }

    fn put_import_metadata(&self, metadata: &ImportMetadata) -> anyhow::Result<()> {
        self.primary.put_import_metadata(metadata)?;
        self.local.put_import_metadata(metadata)
    }

    fn list(&self) -> anyhow::Result<Vec<ListedStage>> {
        self.primary.list()
    }

    fn candidates(&self, digest: &str) -> anyhow::Result<Vec<StageId>> {
        self.primary.candidates(digest)
    }

    /// `source` is `primary`, or `cache` when a cache repo served it.
    fn fetch(&self, id: &StageId) -> anyhow::Result<Found> {
        self.load_or_fetch(&self.primary, id)
    }

    fn publish(
        &self,
        built: &ImageState,
        digest: &str,
        name: &str,
        labels: &StageLabels<'_>,
        selector: Option<&dyn Selector>,
    ) -> anyhow::Result<(ImageState, bool)> {
        let store = self.local.store;
        let (manifest, config) = write_image(store, built, digest, name, labels)?;
        let id = match self.primary.push_stage(&manifest, built.source.as_ref(), digest, name, selector)? {
            Pushed::Theirs(id) => return Ok((self.fetch(&id)?.state, false)),
            Pushed::Ours(id) => id,
        };
        let record =
            StageRecord { manifest: manifest.clone(), git_commit: None, repo: Some(self.primary.name.clone()) };
        let stage = store.put_stage(self.local.project, digest, id.timestamp_ms, &record)?;
        self.fill_caches(&manifest, None, &id);
        let state = ImageState {
            config,
            layers: built.layers.clone(),
            stage: Some(stage),
            source: Some(self.primary.reference().clone()),
        };
        Ok((state, true))
    }

    /// Deletes the stage in the primary and its local record.
    fn delete(&self, id: &StageId) -> anyhow::Result<()> {
        self.primary.delete(id)?;
        self.local.delete(id)
    }

    /// A stage of a secondary repo, copied into the primary (if nobody did meanwhile).
    fn find_elsewhere(&self, digest: &str, selector: Option<&dyn Selector>) -> anyhow::Result<Option<Found>> {
        let primary = &self.primary;
        for sec in &self.secondary {
            let Some(id) = sec.select(digest, selector)? else { continue };
            let _lock = primary.lock(digest)?;
            if let Some(theirs) = primary.select_fresh(digest, selector)? {
                return Ok(Some(Found { state: self.fetch(&theirs)?.state, source: "primary" }));
            }
            let Found { mut state, .. } = self.load_or_fetch(sec, &id)?;
            let manifest = state.stage.as_ref().expect("fetched stages are recorded").record.manifest.clone();
            push_image(
                self.client,
                self.local.store,
                &manifest,
                state.source.as_ref(),
                &primary.tagged(&id)?,
                self.local.log,
            )
            .with_context(|| format!("copying stage {id} from {} to {}", sec.name, primary.name))?;
            primary.note(&id);
            self.local.log.info(&format!("copied stage {id} from secondary repo {} into {}", sec.name, primary.name));
            self.fill_caches(&manifest, state.source.as_ref(), &id);
            state.source = Some(primary.reference().clone());
            return Ok(Some(Found { state, source: "secondary" }));
        }
        Ok(None)
    }

    /// When an image's final stage is young (builders may be racing to store it), wait
    /// briefly and take the stage of that digest `selector` chooses (the oldest by default): racing builders on other hosts
    /// all end on the same image, whether they pushed theirs or took another's.
    fn settle(&self, state: ImageState, digest: &str, selector: Option<&dyn Selector>) -> anyhow::Result<ImageState> {
        let age = state.stage.as_ref().map_or(0, |s| now_ms().saturating_sub(s.timestamp_ms));
        if age > 60_000 {
            return Ok(state);
        }
        // A racing builder takes its timestamp right before its manifest request, so
        // `grace` after our stage's timestamp every older tag is visible.
        std::thread::sleep(self.grace.saturating_sub(Duration::from_millis(age)));
        let Some(chosen) = self.primary.select_fresh(digest, selector)? else { return Ok(state) };
        if state.stage.as_ref().is_some_and(|s| s.timestamp_ms == chosen.timestamp_ms) {
            return Ok(state);
        }
        self.local
            .log
            .info(&format!("an older stage {chosen} of the same digest is in {}: using it", self.primary.name));
        Ok(self.fetch(&chosen)?.state)
    }

    /// Copies under the stage's tag, unless the final repo has that stage already.
    fn to_final_repo(&self, state: &ImageState) -> anyhow::Result<Option<&str>> {
        let Some(fr) = &self.final_repo else { return Ok(None) };
        let stage = state.stage.as_ref().expect("final images are stored");
        let id = StageId::from(stage);
        if fr.select(&id.digest, None)?.is_none_or(|t| t.timestamp_ms != id.timestamp_ms) {
            push_image(
                self.client,
                self.local.store,
                &stage.record.manifest,
                state.source.as_ref(),
                &fr.tagged(&id)?,
                self.local.log,
            )
            .with_context(|| format!("copying the final image to {}", fr.name))?;
            fr.note(&id);
        }
        Ok(Some(&fr.name))
    }
}
