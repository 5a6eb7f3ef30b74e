//! Where stages live: the local store alone, or a primary `--repo` with the local store
//! as a cache in front of it, plus secondary, cache and final repositories.
//!
//! Storing is optimistic (werf's model): a stage is built without a lock; then, under a
//! lock, the primary's tags are listed again bypassing the cache, and if a stage with
//! that digest appeared meanwhile ours is dropped and that one used. Locks are file
//! locks: in the local store for builds sharing it, and in `$XDG_RUNTIME_DIR` for all
//! builds of this user on this host. Across hosts the registry is the arbiter: the
//! oldest tag of a digest wins, and a build re-checks its final stage after a short
//! grace period so that racing builders settle on one final image.

use super::log::Log;
use super::pull::Puller;
use super::repo::{Role, StageRepo, StageTag, push_blobs, push_image, put_manifest};
use super::state::{ImageState, StageLabels, now_ms, write_image};
use anyhow::Context;
use slipway_storage::Digest;
use slipway_storage::registry::Client;
use slipway_storage::store::{StageRecord, StageRef, Store, lock_in};
use std::path::PathBuf;

/// A stage found by digest, and where it came from: `local`, `primary`, `cache`
/// (the primary's stage, fetched from a cache repo) or `secondary`.
pub struct Found {
    pub state: ImageState,
    pub source: &'static str,
}

pub struct Stages<'a> {
    pub store: &'a Store,
    pub client: &'a Client,
    pub puller: &'a Puller<'a>,
    pub log: &'a Log,
    pub project: &'a str,
    pub primary: Option<StageRepo>,
    pub secondary: Vec<StageRepo>,
    pub cache: Vec<StageRepo>,
    pub final_repo: Option<StageRepo>,
}

impl Stages<'_> {
    /// The stage with `digest`, if any storage has one.
    pub fn lookup(&self, digest: &str) -> anyhow::Result<Option<Found>> {
        if let Some(found) = self.lookup_primary(digest)? {
            return Ok(Some(found));
        }
        let Some(primary) = &self.primary else { return Ok(None) };
        for sec in &self.secondary {
            let Some(tag) = sec.find(self.client, digest, false)? else { continue };
            // Copy it into the primary instead of building it (if nobody did meanwhile).
            let _lock = self.host_lock(primary, digest)?;
            if let Some(t) = primary.find(self.client, digest, true)? {
                return Ok(Some(Found { state: self.load_or_fetch(primary, &t)?.0, source: "primary" }));
            }
            let (mut state, _) = self.load_or_fetch(sec, &tag)?;
            let manifest = state.stage.as_ref().expect("fetched stages are recorded").record.manifest.clone();
            push_image(
                self.client,
                self.store,
                &manifest,
                state.source.as_ref(),
                &primary.tagged(&tag.tag())?,
                self.log,
            )
            .with_context(|| format!("copying stage {} from {} to {}", tag.tag(), sec.name, primary.name))?;
            primary.note_tag(&tag.tag());
            self.log.info(&format!(
                "copied stage {} from secondary repo {} into {}",
                tag.tag(),
                sec.name,
                primary.name
            ));
            self.fill_caches(&manifest, state.source.as_ref(), &tag);
            state.source = Some(primary.reference().clone());
            return Ok(Some(Found { state, source: "secondary" }));
        }
        Ok(None)
    }

    /// The stage with `digest` in the primary storage (the local store without `--repo`);
    /// secondary repos are not asked.
    pub fn lookup_primary(&self, digest: &str) -> anyhow::Result<Option<Found>> {
        let Some(primary) = &self.primary else {
            return Ok(match self.store.stages(self.project, Some(digest))?.into_iter().next() {
                Some(s) => Some(Found { state: ImageState::load(self.store, &s)?, source: "local" }),
                None => None,
            });
        };
        match primary.find(self.client, digest, false)? {
            Some(tag) => {
                let (state, from_cache) = self.load_or_fetch(primary, &tag)?;
                Ok(Some(Found { state, source: if from_cache { "cache" } else { "primary" } }))
            }
            None => Ok(None),
        }
    }

    /// An image named `PROJECT:DIGEST-TS` (a dependency's `ImageName` without `--repo`):
    /// that stage of the local store.
    pub fn local_image(&self, reference: &str) -> anyhow::Result<Option<ImageState>> {
        let Some(tag) = reference.strip_prefix(&format!("{}:", self.project)).and_then(StageTag::parse) else {
            return Ok(None);
        };
        match self
            .store
            .stages(self.project, Some(&tag.digest))?
            .into_iter()
            .find(|s| s.timestamp_ms == tag.timestamp_ms)
        {
            Some(s) => Ok(Some(ImageState::load(self.store, &s)?)),
            None => Ok(None),
        }
    }

    /// A stage of `repo`: from the local store if it was fetched before, else its
    /// manifest and config (never its layers) from a cache repo that has it or `repo`.
    /// Returns the state and whether a cache repo served it.
    fn load_or_fetch(&self, repo: &StageRepo, tag: &StageTag) -> anyhow::Result<(ImageState, bool)> {
        let local = self.store.stages(self.project, Some(&tag.digest))?;
        if let Some(s) = local.iter().find(|s| s.timestamp_ms == tag.timestamp_ms) {
            let mut state = ImageState::load(self.store, s)?;
            state.source = Some(repo.reference().clone());
            return Ok((state, false));
        }
        let mut from = repo;
        for c in &self.cache {
            if c.find(self.client, &tag.digest, false)?.is_some_and(|t| t == *tag) {
                from = c;
                break;
            }
        }
        let reference = from.tagged(&tag.tag())?;
        let raw =
            get_listed_manifest(self.client, &reference).with_context(|| format!("fetching stage {reference}"))?;
        let digest = raw.digest.clone();
        if !self.store.blobs().exists(&digest) {
            self.store.blobs().put_stream(&mut &raw.bytes[..], Some(&digest))?;
        }
        let mut state = self.puller.local_image(&digest, Some(from.reference()))?;
        let record = StageRecord { manifest: digest.clone(), git_commit: None, repo: Some(from.name.clone()) };
        state.stage = Some(self.store.put_stage(self.project, &tag.digest, tag.timestamp_ms, &record)?);
        let from_cache = from.role == Role::Cache;
        if !from_cache {
            self.fill_caches(&digest, state.source.as_ref(), tag);
        }
        Ok((state, from_cache))
    }

    /// Store a newly built stage; returns the stage to continue from and whether it is ours.
    pub fn publish(
        &self,
        built: &ImageState,
        digest: &str,
        name: &str,
        labels: &StageLabels<'_>,
    ) -> anyhow::Result<(ImageState, bool)> {
        let (manifest, config) = write_image(self.store, built, digest, name, labels)?;
        let Some(primary) = &self.primary else {
            let _lock = self.store.lock(&format!("{}.{digest}", self.project))?;
            if let Some(existing) = self.store.stages(self.project, Some(digest))?.into_iter().next() {
                self.log.info(&format!(
                    "discarding the newly built {name}: another build stored stage {} first",
                    existing.id()
                ));
                return Ok((ImageState::load(self.store, &existing)?, false));
            }
            let stage = self.store.put_stage(
                self.project,
                digest,
                now_ms(),
                &StageRecord { manifest, git_commit: None, repo: None },
            )?;
            return Ok((self.stored(built, config, stage), true));
        };
        let _lock = self.host_lock(primary, digest)?;
        if let Some(tag) = primary.find(self.client, digest, true)? {
            self.log.info(&format!(
                "discarding the newly built {name}: stage {} appeared in {} meanwhile",
                tag.tag(),
                primary.name
            ));
            return Ok((self.load_or_fetch(primary, &tag)?.0, false));
        }
        // The timestamp is taken after the blobs, right before the manifest goes up, so
        // the window in which a racing builder cannot see our older tag is one request.
        push_blobs(self.client, self.store, &manifest, built.source.as_ref(), primary.reference())
            .with_context(|| format!("storing stage {digest} in {}", primary.name))?;
        let tag = StageTag { digest: digest.to_string(), timestamp_ms: now_ms() };
        put_manifest(self.client, self.store, &manifest, &primary.tagged(&tag.tag())?, self.log)
            .with_context(|| format!("storing stage {} in {}", tag.tag(), primary.name))?;
        primary.note_tag(&tag.tag());
        let stage = self.store.put_stage(
            self.project,
            digest,
            tag.timestamp_ms,
            &StageRecord { manifest: manifest.clone(), git_commit: None, repo: Some(primary.name.clone()) },
        )?;
        self.fill_caches(&manifest, None, &tag);
        let mut state = self.stored(built, config, stage);
        state.source = Some(primary.reference().clone());
        Ok((state, true))
    }

    fn stored(&self, built: &ImageState, config: slipway_storage::image::ImageConfig, stage: StageRef) -> ImageState {
        ImageState { config, layers: built.layers.clone(), stage: Some(stage), source: built.source.clone() }
    }

    /// When an image's final stage is young (builders may be racing to store it), wait
    /// briefly and take the oldest stage of that digest: racing builders on other hosts
    /// all end on the same image, whether they pushed theirs or took another's.
    pub fn settle(&self, state: ImageState, digest: &str) -> anyhow::Result<ImageState> {
        let Some(primary) = &self.primary else { return Ok(state) };
        let grace: u64 = std::env::var("SLIPWAY_PUBLISH_GRACE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
        let age = state.stage.as_ref().map_or(0, |s| now_ms().saturating_sub(s.timestamp_ms));
        if age > 60_000 {
            return Ok(state);
        }
        // A racing builder takes its timestamp right before its manifest request, so
        // `grace` after our stage's timestamp every older tag is visible.
        std::thread::sleep(std::time::Duration::from_millis(grace.saturating_sub(age)));
        let Some(oldest) = primary.find(self.client, digest, true)? else { return Ok(state) };
        if state.stage.as_ref().is_some_and(|s| s.timestamp_ms == oldest.timestamp_ms) {
            return Ok(state);
        }
        self.log.info(&format!("an older stage {} of the same digest is in {}: using it", oldest.tag(), primary.name));
        Ok(self.load_or_fetch(primary, &oldest)?.0)
    }

    /// Copy a final image to `--final-repo` under its stage tag; returns the repository.
    pub fn to_final_repo(&self, state: &ImageState) -> anyhow::Result<Option<&StageRepo>> {
        let Some(fr) = &self.final_repo else { return Ok(None) };
        let stage = state.stage.as_ref().expect("final images are stored");
        let dest = fr.tagged(&stage.id())?;
        if fr.find(self.client, &stage.digest, false)?.is_none_or(|t| t.timestamp_ms != stage.timestamp_ms) {
            push_image(self.client, self.store, &stage.record.manifest, state.source.as_ref(), &dest, self.log)
                .with_context(|| format!("copying the final image to {}", fr.name))?;
            fr.note_tag(&stage.id());
        }
        Ok(Some(fr))
    }

    fn fill_caches(&self, manifest: &Digest, source: Option<&slipway_storage::reference::Reference>, tag: &StageTag) {
        for c in &self.cache {
            if c.find(self.client, &tag.digest, false).ok().flatten().is_some_and(|t| t == *tag) {
                continue;
            }
            let res = c
                .tagged(&tag.tag())
                .and_then(|dest| push_image(self.client, self.store, manifest, source, &dest, self.log));
            match res {
                Ok(()) => c.note_tag(&tag.tag()),
                Err(e) => self.log.warn(&format!("filling cache repo {} with {}: {e:#}", c.name, tag.tag())),
            }
        }
    }

    /// A lock shared by every build of this user on this host for one repo and digest.
    fn host_lock(&self, repo: &StageRepo, digest: &str) -> anyhow::Result<std::fs::File> {
        Ok(lock_in(&host_lock_dir(), &format!("{}.{digest}", repo.name))?)
    }
}

/// The manifest of a tag that was just listed. A registry lists a tag while another
/// builder's manifest PUT is still linking it, and then answers 404 for a moment: retry
/// briefly before calling it missing.
fn get_listed_manifest(
    client: &Client,
    reference: &slipway_storage::reference::Reference,
) -> Result<slipway_storage::registry::RawManifest, slipway_storage::registry::RegistryError> {
    use slipway_storage::registry::RegistryError;
    let mut delay = std::time::Duration::from_millis(50);
    for _ in 0..8 {
        match client.get_manifest(reference) {
            Err(RegistryError::ManifestNotFound { .. }) => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(std::time::Duration::from_millis(800));
            }
            other => return other,
        }
    }
    client.get_manifest(reference)
}

fn host_lock_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("slipway/locks"),
        None => std::env::temp_dir().join(format!("slipway-{}/locks", nix::unistd::getuid())),
    }
}
