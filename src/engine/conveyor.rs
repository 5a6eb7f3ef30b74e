//! The stage loop every front end uses (werf calls it the conveyor).
//!
//! A front end plans an image as a list of stages, each with its digest already known.
//! [`Conveyor::run`] finds the newest stage the stage storage has (everything before it
//! is not needed and only reported), requires the rest to be built if asked to, and
//! builds each later stage with the front end's [`Stage::build`], then publishes, logs
//! and records it for the build report.

use super::log::Log;
use super::report::{StageMeta, StageRecord};
use super::stage_facts;
use super::stages::{Found, Stages};
use super::state::{ImageState, StageLabels};
use super::storage::Selector;
use std::time::Instant;

/// One stage as a front end planned it.
pub trait Stage {
    /// The stage's name in the log (`3-RUN`, `stage1/2-COPY`, `imageSpec`).
    fn log_name(&self) -> String;
    /// The stage's name in the build report (werf's: `run`, `from`, `imageSpec`).
    fn report_name(&self) -> String;
    fn digest(&self) -> &str;
    /// Build the stage on the previous stage's result (`None` for the first stage).
    fn build(&self, prev: Option<&ImageState>) -> anyhow::Result<BuiltStage>;
    /// The first stage of an image based on another werf image: that image's last stage
    /// ID, werf's `werf.io/parent-stage-id` of this stage (errata 4). Later stages take
    /// the previous stage's.
    fn base_stage_id(&self) -> Option<String> {
        None
    }
    /// Which stored stages of the digest may be used (Stapel's git stages: those whose
    /// recorded commit is an ancestor of HEAD); `None`: any, the oldest is used.
    fn selector(&self) -> Option<&dyn Selector> {
        None
    }
}

/// What [`Stage::build`] made: the image before it is stored, and the report's meta
/// when the stage knows it better than the engine (a FROM that pulled its base).
pub struct BuiltStage {
    pub state: ImageState,
    pub meta: Option<StageMeta>,
}

impl From<ImageState> for BuiltStage {
    fn from(state: ImageState) -> Self {
        BuiltStage { state, meta: None }
    }
}

/// What the stage loop of one image needs.
pub struct Conveyor<'a> {
    pub stages: &'a Stages<'a>,
    pub log: &'a Log,
    pub project: &'a str,
    pub commit: &'a str,
    /// The image's name as logged (`~` for the nameless image).
    pub image: &'a str,
    /// Fail instead of building a missing stage (`--require-built-images`).
    pub require_built: bool,
}

impl Conveyor<'_> {
    /// Find or build `list` (not empty) in order; returns the last stage and the report's
    /// records of every stage with the seconds each took.
    pub fn run(&self, list: &[&dyn Stage]) -> anyhow::Result<(ImageState, Vec<(StageRecord, f64)>)> {
        let mut records = Vec::new();
        // The newest stage with a stored stage: everything before it is not needed.
        let mut start = 0;
        let mut state = None;
        // Where the current state came from (`Found::source`), for the next stage's meta.
        let mut origin = "local";
        for (k, stage) in list.iter().enumerate().rev() {
            if let Some(found) = self.stages.lookup(stage.digest(), stage.selector())? {
                for earlier in &list[..k] {
                    // Only for the report: werf lists every stage with its image.
                    let peeked = self.stages.lookup_primary(earlier.digest(), earlier.selector())?;
                    self.cached(*earlier, "cached", peeked.as_ref(), &mut records)?;
                }
                self.cached(*stage, &format!("cached ({})", found.source), Some(&found), &mut records)?;
                origin = found.source;
                state = Some(found.state);
                start = k + 1;
                break;
            }
        }
        if self.require_built && start < list.len() {
            let missing = list[list.len() - 1];
            anyhow::bail!(
                "image {} is not built: stage {} ({}) is not in the stage storage; build it first or drop --require-built-images",
                self.image,
                missing.log_name(),
                missing.digest()
            );
        }
        for stage in &list[start..] {
            let t = Instant::now();
            let parent_id = match &state {
                Some(prev) => prev.stage.as_ref().map(|st| st.id()),
                None => stage.base_stage_id(),
            };
            let built = stage.build(state.as_ref())?;
            let meta = match (built.meta, &state) {
                (Some(meta), _) => meta,
                (None, Some(prev)) => self.meta_on(prev, origin)?,
                (None, None) => StageMeta::BUILT_ON_LOCAL,
            };
            let labels = StageLabels { project: self.project, commit: self.commit, parent_stage_id: parent_id };
            let name = stage.log_name();
            let (stored, ours) = self.stages.publish(&built.state, stage.digest(), &name, &labels, stage.selector())?;
            let secs = t.elapsed().as_secs_f64();
            let status =
                if ours { format!("built in {secs:.2}s") } else { "built, but another build stored it first".into() };
            self.log.stage(self.image, &name, stage.digest(), &status);
            records.push((self.record(*stage, &stored, meta)?, secs));
            origin = "local";
            state = Some(stored);
        }
        Ok((state.expect("a stage list is not empty"), records))
    }

    /// Log a stage found in storage and report it (`found` is `None` for an earlier
    /// stage the primary storage no longer has: it is left out, as werf leaves out a
    /// stage without an image).
    fn cached(
        &self,
        stage: &dyn Stage,
        status: &str,
        found: Option<&Found>,
        records: &mut Vec<(StageRecord, f64)>,
    ) -> anyhow::Result<()> {
        self.log.stage(self.image, &stage.log_name(), stage.digest(), status);
        if let Some(f) = found {
            let meta = if f.source == "secondary" { StageMeta::SECONDARY } else { StageMeta::FOUND };
            records.push((self.record(stage, &f.state, meta)?, 0.0));
        }
        Ok(())
    }

    fn record(&self, stage: &dyn Stage, state: &ImageState, meta: StageMeta) -> anyhow::Result<StageRecord> {
        let repo = self.stages.name();
        let facts = stage_facts(self.stages.store, repo, state)?;
        Ok(StageRecord::new(&stage.report_name(), &facts, meta, 0.0))
    }

    /// werf's meta of a stage built on `base`: no fetch when its layers are all local;
    /// else fetched from a cache repo (pulled) or the primary. `origin` is where `base`
    /// came from (`Found::source`).
    pub fn meta_on(&self, base: &ImageState, origin: &str) -> anyhow::Result<StageMeta> {
        let store = self.stages.store;
        for (layer, diff_id) in base.layers.iter().zip(base.diff_ids()) {
            if store.layer_meta(diff_id)?.is_none() && store.layer_for_blob(&layer.digest)?.is_none() {
                return Ok(if origin == "cache" {
                    StageMeta::BUILT_ON_CACHE_STAGE
                } else {
                    StageMeta::BUILT_ON_REPO_STAGE
                });
            }
        }
        Ok(StageMeta::BUILT_ON_LOCAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::storage::local::LocalStorage;
    use slipway_storage::store::Store;
    use std::cell::Cell;

    /// A stage that sets one env var and counts its builds.
    struct Fake {
        name: &'static str,
        digest: String,
        builds: Cell<usize>,
        /// Use only a stored stage that a build at this commit stored.
        commit: Option<&'static str>,
    }

    impl Fake {
        fn new(name: &'static str, c: char) -> Self {
            Fake { name, digest: c.to_string().repeat(56), builds: Cell::new(0), commit: None }
        }
    }

    impl Selector for &'static str {
        fn accepts(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
            labels.get("werf-project-repo-commit").is_some_and(|c| c == self)
        }
    }

    impl Stage for Fake {
        fn log_name(&self) -> String {
            self.name.into()
        }

        fn report_name(&self) -> String {
            self.name.to_lowercase()
        }

        fn digest(&self) -> &str {
            &self.digest
        }

        fn selector(&self) -> Option<&dyn Selector> {
            self.commit.as_ref().map(|c| c as &dyn Selector)
        }

        fn build(&self, prev: Option<&ImageState>) -> anyhow::Result<BuiltStage> {
            self.builds.set(self.builds.get() + 1);
            let mut state = prev.cloned().unwrap_or_else(ImageState::scratch);
            state.config.config.set_env(self.name, "1");
            Ok(state.into())
        }
    }

    #[test]
    fn builds_what_is_missing_after_the_newest_stored_stage() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let log = Log::new(true).quiet(true);
        let local = || LocalStorage { store: &store, project: "p", log: &log };
        let stages = Stages::new(local(), Box::new(local()));
        let at = |commit, require_built| Conveyor {
            stages: &stages,
            log: &log,
            project: "p",
            commit,
            image: "app",
            require_built,
        };
        let conveyor = |require_built| at("c0ffee", require_built);
        let (a, b, c) = (Fake::new("A", 'a'), Fake::new("B", 'b'), Fake::new("C", 'c'));
        let builds = || [&a, &b, &c].map(|s| s.builds.get());

        // Nothing stored: every stage is built, each on the one before.
        let (state, records) = conveyor(false).run(&[&a, &b]).unwrap();
        assert_eq!(builds(), [1, 1, 0]);
        assert_eq!(state.config.config.env.as_deref().unwrap()[1..], ["A=1", "B=1"]);
        assert_eq!(records.iter().map(|(r, _)| r.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        let labels = state.config.config.labels.clone().unwrap();
        let a_id = stages.lookup(&a.digest, None).unwrap().unwrap().state.stage.unwrap().id();
        assert_eq!(labels["werf.io/parent-stage-id"], a_id);

        // The newest stored stage is B: only C is built, on B's stored state; A and B
        // are reported as cached.
        let (state, records) = conveyor(false).run(&[&a, &b, &c]).unwrap();
        assert_eq!(builds(), [1, 1, 1]);
        assert_eq!(state.config.config.env.as_deref().unwrap()[1..], ["A=1", "B=1", "C=1"]);
        assert_eq!(records.len(), 3);

        // Everything stored: nothing is built, even under --require-built-images.
        conveyor(true).run(&[&a, &b, &c]).unwrap();
        assert_eq!(builds(), [1, 1, 1]);

        // A missing stage under --require-built-images is an error naming it.
        let d = Fake::new("D", 'd');
        let err = conveyor(true).run(&[&a, &d]).unwrap_err().to_string();
        assert!(err.contains("image app is not built: stage D") && err.contains(&d.digest), "{err}");
        assert_eq!(d.builds.get(), 0);

        // A stage's selector is handed down: A of another commit is not used, a second
        // stage of A's digest is stored and found from then on.
        let a2 = Fake { commit: Some("c2"), ..Fake::new("A", 'a') };
        at("c2", false).run(&[&a2]).unwrap();
        at("c2", false).run(&[&a2]).unwrap();
        assert_eq!(a2.builds.get(), 1);
        let found = stages.lookup(&a.digest, a2.selector()).unwrap().unwrap();
        assert_ne!(found.state.stage.unwrap().id(), a_id);
        assert_eq!(stages.lookup(&a.digest, None).unwrap().unwrap().state.stage.unwrap().id(), a_id);
    }
}
