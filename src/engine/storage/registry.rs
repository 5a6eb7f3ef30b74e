//! One registry repository as stage storage: the primary `--repo`, a read-only
//! `--secondary-repo`, a read-write `--cache-repo` or the `--final-repo`.
//!
//! Stages are tagged `REPO:DIGEST-TIMESTAMP_MS` (werf's naming). The repository's tags
//! are listed once per run and kept (tags this process pushes are added); storing lists
//! them again, bypassing that cache, under the host lock.

use super::{
    Found, ImportMetadata, ListedStage, Selector, StageId, StageStorage, choose, is_import_source_id, labels_of,
};
use crate::engine::pull::Puller;
use crate::engine::push::{push_blobs, put_manifest};
use crate::engine::state::{ImageState, StageLabels, now_ms, write_image, write_manifest};
use anyhow::{Context, bail};
use slipway_storage::Digest;
use slipway_storage::image::Manifest;
use slipway_storage::reference::Reference;
use slipway_storage::registry::{Client, RawManifest, RegistryError};
use slipway_storage::store::{StageRecord, StageRef, lock_in};
use std::cell::RefCell;
use std::path::Path;
use std::time::Duration;

/// What a repository is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Secondary,
    Cache,
    Final,
}

impl Role {
    /// The role's name in flags and messages; also the `source` of stages fetched from
    /// such a repository.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
            Role::Cache => "cache",
            Role::Final => "final",
        }
    }
}

/// What [`RegistryStorage::push_stage`] did.
pub enum Pushed {
    /// Our stage is in the repository under this ID.
    Ours(StageId),
    /// A stage of the digest appeared meanwhile: use it, ours was not pushed.
    Theirs(StageId),
}

pub struct RegistryStorage<'a> {
    pub role: Role,
    /// `registry/repository` (no tag).
    pub name: String,
    base: Reference,
    tags: RefCell<Option<Vec<String>>>,
    puller: &'a Puller<'a>,
    /// The host lock directory (`$XDG_RUNTIME_DIR/slipway/locks`).
    lock_dir: &'a Path,
}

impl<'a> RegistryStorage<'a> {
    pub fn new(name: &str, role: Role, puller: &'a Puller<'a>, lock_dir: &'a Path) -> anyhow::Result<Self> {
        let base = Reference::parse(name).with_context(|| format!("--{}-repo {name:?}", role.as_str()))?;
        if name.contains('@') || name.rsplit('/').next().is_some_and(|last| last.contains(':')) {
            bail!("{} repo {name:?} must be a repository without a tag or digest", role.as_str());
        }
        let name = format!("{}/{}", base.registry, base.repository);
        Ok(RegistryStorage { role, name, base, tags: RefCell::new(None), puller, lock_dir })
    }

    fn client(&self) -> &'a Client {
        self.puller.client
    }

    /// The repository, untagged: where the blobs of its stages are.
    pub fn reference(&self) -> &Reference {
        &self.base
    }

    pub fn tagged(&self, id: &StageId) -> anyhow::Result<Reference> {
        Ok(self.base.with_tag(&id.to_string())?)
    }

    /// The repository's tags; `fresh` bypasses the per-run cache.
    fn tags(&self, fresh: bool) -> anyhow::Result<Vec<String>> {
        if !fresh && let Some(t) = self.tags.borrow().as_ref() {
            return Ok(t.clone());
        }
        let tags = self.client().list_tags(&self.base).with_context(|| format!("listing tags of {}", self.name))?;
        *self.tags.borrow_mut() = Some(tags.clone());
        Ok(tags)
    }

    fn stage_ids(&self, digest: Option<&str>, fresh: bool) -> anyhow::Result<Vec<StageId>> {
        Ok(stage_ids(&self.tags(fresh)?, digest))
    }

    /// [`StageStorage::select`] on a fresh listing of the repository.
    pub fn select_fresh(&self, digest: &str, selector: Option<&dyn Selector>) -> anyhow::Result<Option<StageId>> {
        choose(self.stage_ids(Some(digest), true)?, selector, |id| Ok(labels_of(self.fetch(id)?)))
    }

    /// Remember a stage we pushed, so the cached list stays true.
    pub fn note(&self, id: &StageId) {
        self.note_tag(&id.to_string());
    }

    fn note_tag(&self, tag: &str) {
        if let Some(t) = self.tags.borrow_mut().as_mut() {
            t.push(tag.to_string());
        }
    }

    /// werf's tag of import metadata: `import-metadata-<id>`.
    fn import_metadata_tag(id: &str) -> anyhow::Result<String> {
        anyhow::ensure!(is_import_source_id(id), "import source ID {id:?} is not a sha256 hex digest");
        Ok(format!("import-metadata-{id}"))
    }

    /// A lock shared by every build of this user on this host for this repository and
    /// `digest`.
    pub fn lock(&self, digest: &str) -> anyhow::Result<std::fs::File> {
        Ok(lock_in(self.lock_dir, &format!("{}.{digest}", self.name))?)
    }

    /// Push the stage whose manifest is in the local blob store (its blobs there or in
    /// `source`) as the stage of `digest`, unless a stage `selector` accepts appeared
    /// meanwhile (werf's optimistic storing, under the host lock).
    pub fn push_stage(
        &self,
        manifest: &Digest,
        source: Option<&Reference>,
        digest: &str,
        name: &str,
        selector: Option<&dyn Selector>,
    ) -> anyhow::Result<Pushed> {
        let _lock = self.lock(digest)?;
        if let Some(theirs) = self.select_fresh(digest, selector)? {
            self.puller.log.info(&format!(
                "discarding the newly built {name}: stage {theirs} appeared in {} meanwhile",
                self.name
            ));
            return Ok(Pushed::Theirs(theirs));
        }
        // The timestamp is taken after the blobs, right before the manifest goes up, so
        // the window in which a racing builder cannot see our older tag is one request.
        push_blobs(self.client(), self.puller.store, manifest, source, &self.base)
            .with_context(|| format!("storing stage {digest} in {}", self.name))?;
        let id = StageId { digest: digest.to_string(), timestamp_ms: now_ms() };
        put_manifest(self.client(), self.puller.store, manifest, &self.tagged(&id)?, self.puller.log)
            .with_context(|| format!("storing stage {id} in {}", self.name))?;
        self.note(&id);
        Ok(Pushed::Ours(id))
    }
}

impl StageStorage for RegistryStorage<'_> {
    fn name(&self) -> &str {
        &self.name
    }

    /// The labels of the image tagged `import-metadata-<id>` (werf's), if listed.
    fn import_metadata(&self, id: &str) -> anyhow::Result<Option<ImportMetadata>> {
        let tag = Self::import_metadata_tag(id)?;
        if !self.tags(false)?.contains(&tag) {
            return Ok(None);
        }
        let reference = self.base.with_tag(&tag)?;
        let raw = match get_listed_manifest(self.client(), &reference) {
            Err(RegistryError::ManifestNotFound { .. }) => return Ok(None),
            other => other.with_context(|| format!("reading import metadata {reference}"))?,
        };
        let store = self.puller.store;
        if !store.blobs().exists(&raw.digest) {
            store.blobs().put_stream(&mut &raw.bytes[..], Some(&raw.digest))?;
        }
        let state = self
            .puller
            .local_image(&raw.digest, Some(&self.base))
            .with_context(|| format!("reading import metadata {reference}"))?;
        Ok(ImportMetadata::from_labels(id, &state.config.config.labels.unwrap_or_default()))
    }

    /// An image with no layers and the metadata as labels, tagged
    /// `import-metadata-<id>` (werf's `PutImportMetadata`).
    fn put_import_metadata(&self, metadata: &ImportMetadata) -> anyhow::Result<()> {
        let tag = Self::import_metadata_tag(&metadata.import_source_id)?;
        let reference = self.base.with_tag(&tag)?;
        let mut config = ImageState::scratch().config;
        config.config.labels = Some(metadata.to_labels());
        let store = self.puller.store;
        let manifest = write_manifest(store, &config, Vec::new())?;
        let pushed = push_blobs(self.client(), store, &manifest, None, &self.base)
            .and_then(|()| put_manifest(self.client(), store, &manifest, &reference, self.puller.log));
        match pushed {
            Ok(()) => self.note_tag(&tag),
            Err(e) => self.puller.log.warn(&format!("storing import metadata {reference}: {e:#}")),
        }
        Ok(())
    }

    /// One manifest GET per stage.
    fn list(&self) -> anyhow::Result<Vec<ListedStage>> {
        let mut out = Vec::new();
        for id in self.stage_ids(None, true)? {
            let raw = self.client().get_manifest(&self.tagged(&id)?).with_context(|| format!("reading stage {id}"))?;
            let manifest: Manifest =
                serde_json::from_slice(&raw.bytes).with_context(|| format!("reading the manifest of stage {id}"))?;
            out.push(ListedStage { id, manifest });
        }
        Ok(out)
    }

    fn candidates(&self, digest: &str) -> anyhow::Result<Vec<StageId>> {
        self.stage_ids(Some(digest), false)
    }

    /// The stage's manifest and config into the local store; the stage is not recorded
    /// there (the layered storage does that).
    fn fetch(&self, id: &StageId) -> anyhow::Result<Found> {
        let reference = self.tagged(id)?;
        let raw =
            get_listed_manifest(self.client(), &reference).with_context(|| format!("fetching stage {reference}"))?;
        let manifest = raw.digest.clone();
        let store = self.puller.store;
        if !store.blobs().exists(&manifest) {
            store.blobs().put_stream(&mut &raw.bytes[..], Some(&manifest))?;
        }
        let mut state = self.puller.local_image(&manifest, Some(&self.base))?;
        let record = StageRecord { manifest, git_commit: None, repo: Some(self.name.clone()) };
        state.stage = Some(StageRef { digest: id.digest.clone(), timestamp_ms: id.timestamp_ms, record });
        Ok(Found { state, source: self.role.as_str() })
    }

    fn publish(
        &self,
        built: &ImageState,
        digest: &str,
        name: &str,
        labels: &StageLabels<'_>,
        selector: Option<&dyn Selector>,
    ) -> anyhow::Result<(ImageState, bool)> {
        let (manifest, config) = write_image(self.puller.store, built, digest, name, labels)?;
        match self.push_stage(&manifest, built.source.as_ref(), digest, name, selector)? {
            Pushed::Theirs(id) => Ok((self.fetch(&id)?.state, false)),
            Pushed::Ours(id) => {
                let record = StageRecord { manifest, git_commit: None, repo: Some(self.name.clone()) };
                let stage = StageRef { digest: id.digest, timestamp_ms: id.timestamp_ms, record };
                let state = ImageState {
                    config,
                    layers: built.layers.clone(),
                    stage: Some(stage),
                    source: Some(self.base.clone()),
                };
                Ok((state, true))
            }
        }
    }

    fn delete(&self, id: &StageId) -> anyhow::Result<()> {
        self.client()
            .delete_manifest(&self.tagged(id)?)
            .with_context(|| format!("deleting stage {id} in {}", self.name))?;
        if let Some(t) = self.tags.borrow_mut().as_mut() {
            let tag = id.to_string();
            t.retain(|x| *x != tag);
        }
        Ok(())
    }
}

/// The stages among `tags` (of `digest`, if given), oldest first.
fn stage_ids(tags: &[String], digest: Option<&str>) -> Vec<StageId> {
    let mut ids: Vec<StageId> =
        tags.iter().filter_map(|t| StageId::parse(t)).filter(|id| digest.is_none_or(|d| id.digest == d)).collect();
    ids.sort_by(|a, b| (a.timestamp_ms, &a.digest).cmp(&(b.timestamp_ms, &b.digest)));
    ids
}

/// The manifest of a tag that was just listed. A registry lists a tag while another
/// builder's manifest PUT is still linking it, and then answers 404 for a moment: retry
/// briefly before calling it missing.
fn get_listed_manifest(client: &Client, reference: &Reference) -> Result<RawManifest, RegistryError> {
    let mut delay = Duration::from_millis(50);
    for _ in 0..8 {
        match client.get_manifest(reference) {
            Err(RegistryError::ManifestNotFound { .. }) => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(800));
            }
            other => return other,
        }
    }
    client.get_manifest(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_the_tags_of_werfs_shape_and_the_oldest_wins() {
        let (a, b) = ("a".repeat(56), "b".repeat(56));
        let tags: Vec<String> = vec![
            format!("{a}-1700000000300"),
            format!("{a}-1700000000100-rejected"),
            format!("{a}-1700000000200"),
            format!("{b}-1700000000000"),
            "latest".into(),
        ];
        let id = |d: &str, ts| StageId { digest: d.to_string(), timestamp_ms: ts };
        let of_a = stage_ids(&tags, Some(&a));
        assert_eq!(of_a, [id(&a, 1_700_000_000_200), id(&a, 1_700_000_000_300)]);
        assert_eq!(stage_ids(&tags, None).len(), 3);
        assert_eq!(stage_ids(&tags, None)[0], id(&b, 1_700_000_000_000));
        assert!(stage_ids(&tags, Some(&"c".repeat(56))).is_empty());
    }
}
