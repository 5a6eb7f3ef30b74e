//! The local store as stage storage (no `--repo`): a stage is the record
//! `stages/<project>/<digest>-<timestamp_ms>` naming its manifest in the blob store.

use super::{Found, ImportMetadata, ListedStage, Selector, StageId, StageStorage, is_import_source_id};
use crate::engine::log::Log;
use crate::engine::state::{ImageState, StageLabels, now_ms, write_image};
use anyhow::Context;
use slipway_storage::store::{StageRecord, StageRef, Store};

#[derive(Clone, Copy)]
pub struct LocalStorage<'a> {
    pub store: &'a Store,
    pub project: &'a str,
    pub log: &'a Log,
}

impl LocalStorage<'_> {
    /// The record of stage `id`, if the local store has it.
    pub fn stage(&self, id: &StageId) -> anyhow::Result<Option<StageRef>> {
        Ok(self.store.stages(self.project, Some(&id.digest))?.into_iter().find(|s| s.timestamp_ms == id.timestamp_ms))
    }

    /// An image named `PROJECT:DIGEST-TS` (a dependency's `ImageName` without `--repo`):
    /// that stage of the local store.
    pub fn image(&self, reference: &str) -> anyhow::Result<Option<ImageState>> {
        let Some(id) = reference.strip_prefix(&format!("{}:", self.project)).and_then(StageId::parse) else {
            return Ok(None);
        };
        self.stage(&id)?.map(|s| ImageState::load(self.store, &s)).transpose()
    }
}

impl LocalStorage<'_> {
    /// `import-metadata/<project>/<id>`: the record's labels as JSON.
    fn import_metadata_path(&self, id: &str) -> anyhow::Result<std::path::PathBuf> {
        anyhow::ensure!(is_import_source_id(id), "import source ID {id:?} is not a sha256 hex digest");
        let project = slipway_storage::store::escape(self.project);
        Ok(self.store.root().join("import-metadata").join(project).join(id))
    }
}

impl StageStorage for LocalStorage<'_> {
    fn name(&self) -> &str {
        self.project
    }

    fn import_metadata(&self, id: &str) -> anyhow::Result<Option<ImportMetadata>> {
        let path = self.import_metadata_path(id)?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        // A record that does not parse is regenerated, as werf does with a broken one.
        let labels = serde_json::from_slice(&bytes).unwrap_or_default();
        Ok(ImportMetadata::from_labels(id, &labels))
    }

    fn put_import_metadata(&self, metadata: &ImportMetadata) -> anyhow::Result<()> {
        let path = self.import_metadata_path(&metadata.import_source_id)?;
        let dir = path.parent().expect("a file under the store");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        slipway_storage::store::write_atomic(&path, &serde_json::to_vec(&metadata.to_labels())?)?;
        Ok(())
    }

    fn list(&self) -> anyhow::Result<Vec<ListedStage>> {
        self.store
            .stages(self.project, None)?
            .iter()
            .map(|s| Ok(ListedStage { id: s.into(), manifest: self.store.manifest(&s.record.manifest)? }))
            .collect()
    }

    fn candidates(&self, digest: &str) -> anyhow::Result<Vec<StageId>> {
        Ok(self.store.stages(self.project, Some(digest))?.iter().map(StageId::from).collect())
    }

    fn fetch(&self, id: &StageId) -> anyhow::Result<Found> {
        let stage = self.stage(id)?.with_context(|| format!("stage {id} is not in the local store"))?;
        // The record's mtime is its last use, which `host cleanup` orders by.
        if let Err(e) = self.store.touch_stage(self.project, &id.digest, id.timestamp_ms) {
            tracing::debug!(stage = %id, error = %e, "cannot record the stage's use");
        }
        Ok(Found { state: ImageState::load(self.store, &stage)?, source: "local" })
    }

    fn publish(
        &self,
        built: &ImageState,
        digest: &str,
        name: &str,
        labels: &StageLabels<'_>,
        selector: Option<&dyn Selector>,
    ) -> anyhow::Result<(ImageState, bool)> {
        let (manifest, config) = write_image(self.store, built, digest, name, labels)?;
        let _lock = self.store.lock(&format!("{}.{digest}", self.project))?;
        if let Some(existing) = self.select(digest, selector)? {
            self.log.info(&format!("discarding the newly built {name}: another build stored stage {existing} first"));
            return Ok((self.fetch(&existing)?.state, false));
        }
        let record = StageRecord { manifest, git_commit: None, repo: None };
        let stage = self.store.put_stage(self.project, digest, now_ms(), &record)?;
        Ok((
            ImageState { config, layers: built.layers.clone(), stage: Some(stage), source: built.source.clone() },
            true,
        ))
    }

    fn delete(&self, id: &StageId) -> anyhow::Result<()> {
        Ok(self.store.remove_stage(self.project, &id.digest, id.timestamp_ms)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn labels() -> StageLabels<'static> {
        StageLabels { project: "p", commit: "c0ffee", parent_stage_id: None }
    }

    fn digest(c: char) -> String {
        c.to_string().repeat(56)
    }

    #[test]
    fn publish_list_select_fetch_delete() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let log = Log::new(true).quiet(true);
        let local = LocalStorage { store: &store, project: "p", log: &log };
        let (a, b) = (digest('a'), digest('b'));
        assert!(local.list().unwrap().is_empty());
        assert!(local.select(&a, None).unwrap().is_none());

        let (stored, ours) = local.publish(&ImageState::scratch(), &a, "image/1-FROM", &labels(), None).unwrap();
        assert!(ours);
        let first = StageId::from(stored.stage.as_ref().unwrap());
        let labels_of = |s: &ImageState| s.config.config.labels.clone().unwrap();
        assert_eq!(labels_of(&stored)["werf"], "p");

        // A second build of the same digest keeps the stage stored first.
        let (again, ours) = local.publish(&ImageState::scratch(), &a, "image/1-FROM", &labels(), None).unwrap();
        assert!(!ours);
        assert_eq!(StageId::from(again.stage.as_ref().unwrap()), first);

        let (other, _) = local.publish(&ImageState::scratch(), &b, "image/2-RUN", &labels(), None).unwrap();
        let second = StageId::from(other.stage.as_ref().unwrap());
        let listed: Vec<StageId> = local.list().unwrap().into_iter().map(|l| l.id).collect();
        assert_eq!(listed, [first.clone(), second.clone()]);
        assert_eq!(local.select(&a, None).unwrap(), Some(first.clone()));

        // Finding a stage records its use: the record's mtime, host cleanup's LRU order.
        let record = tmp.path().join("stages/p").join(first.to_string());
        let long_ago = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options().write(true).open(&record).unwrap().set_modified(long_ago).unwrap();
        let found = local.fetch(&first).unwrap();
        assert!(std::fs::metadata(&record).unwrap().modified().unwrap() > long_ago);
        assert_eq!(found.source, "local");
        assert_eq!(labels_of(&found.state)["werf-project-repo-commit"], "c0ffee");
        assert_eq!(local.image(&format!("p:{first}")).unwrap().unwrap().stage, found.state.stage);
        assert!(local.image(&format!("q:{first}")).unwrap().is_none());

        local.delete(&first).unwrap();
        assert!(local.select(&a, None).unwrap().is_none());
        assert!(local.fetch(&first).is_err());
        assert_eq!(local.list().unwrap().into_iter().map(|l| l.id).collect::<Vec<_>>(), [second]);
        local.delete(&first).unwrap();
    }

    #[test]
    fn a_selector_picks_among_stages_of_one_digest_and_publish_rechecks_with_it() {
        /// Accepts the stages a build at `commit` stored.
        struct Commit(&'static str);
        impl Selector for Commit {
            fn accepts(&self, labels: &BTreeMap<String, String>) -> bool {
                labels.get("werf-project-repo-commit").is_some_and(|v| v == self.0)
            }
        }
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let log = Log::new(true).quiet(true);
        let local = LocalStorage { store: &store, project: "p", log: &log };
        let a = digest('a');
        let at = |commit| StageLabels { project: "p", commit, parent_stage_id: None };
        let id = |s: &ImageState| s.stage.as_ref().map(StageId::from);
        let (first, _) = local.publish(&ImageState::scratch(), &a, "s", &at("c1"), None).unwrap();
        // Timestamps are milliseconds: make sure the second stage gets its own.
        std::thread::sleep(std::time::Duration::from_millis(2));
        // The stage stored first does not do for c2: a second stage of the digest.
        let (second, ours) = local.publish(&ImageState::scratch(), &a, "s", &at("c2"), Some(&Commit("c2"))).unwrap();
        assert!(ours);
        assert_ne!(id(&first), id(&second));
        assert_eq!(local.candidates(&a).unwrap().len(), 2);
        // Under the lock, publish asks the selector again: the second stage does now.
        let (again, ours) = local.publish(&ImageState::scratch(), &a, "s", &at("c2"), Some(&Commit("c2"))).unwrap();
        assert!(!ours);
        assert_eq!(id(&again), id(&second));
        assert_eq!(local.candidates(&a).unwrap().len(), 2);
        // The default is still the oldest; the selector picks the second; none may do.
        assert_eq!(local.select(&a, None).unwrap(), id(&first));
        assert_eq!(local.select(&a, Some(&Commit("c2"))).unwrap(), id(&second));
        assert_eq!(local.select(&a, Some(&Commit("c1"))).unwrap(), id(&first));
        assert_eq!(local.select(&a, Some(&Commit("c3"))).unwrap(), None);
        assert_eq!(id(&local.find(&a, Some(&Commit("c2"))).unwrap().unwrap().state), id(&second));
    }
}
