//! Building one Dockerfile image: plan every step's digest, find the newest step
//! already stored, and execute only the steps after it, storing each as a stage.

use super::plan::{Base, Plan, PlannedStage};
use super::steps::{self, StepEnv};
use crate::context::BuildContext;
use crate::engine::log::Log;
use crate::engine::pull::Puller;
use crate::engine::report::{StageMeta, StageRecord, dockerfile_stage_name};
use crate::engine::stages::Stages;
use crate::engine::state::{ImageState, StageLabels};
use crate::frontend::dockerfile::syntax::StageRef;
use anyhow::Context;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

pub struct DockerfileBuild<'a> {
    pub stages: &'a Stages<'a>,
    pub puller: &'a Puller<'a>,
    pub log: &'a Log,
    pub project: &'a str,
    pub commit: &'a str,
    pub image: &'a str,
    pub plan: &'a Plan,
    pub context: &'a BuildContext,
    pub backend: &'a crate::engine::Backend,
    pub rootfs: &'a crate::engine::RootfsDriver,
    /// Fail instead of building a missing stage (`--require-built-images`).
    pub require_built: bool,
    /// werf's `imageSpec` (merged with `build.imageSpec` for final images): one more
    /// stage after the Dockerfile's.
    pub image_spec: Option<&'a crate::config::ImageSpec>,
    /// werf.yaml `secrets` for `RUN --mount=type=secret`.
    pub secrets: &'a [crate::config::Secret],
    /// Results of Dockerfile stages already built in this run.
    pub built: RefCell<HashMap<usize, ImageState>>,
    /// Where stages are named (`DockerRepo` of stage records): the primary repo or the
    /// project (local store).
    pub stage_repo: &'a str,
    /// The report's stage records and the seconds each took, by Dockerfile stage index
    /// (the imageSpec stage goes with the target).
    pub report: RefCell<BTreeMap<usize, Vec<(StageRecord, f64)>>>,
}

impl DockerfileBuild<'_> {
    /// Build (or find) the target stage (and the imageSpec stage); returns the last
    /// stage and its digest.
    pub fn run(&self) -> anyhow::Result<(ImageState, String)> {
        let state = self.stage(self.plan.target)?;
        let last = &self.plan.stages[&self.plan.target].steps.last().expect("FROM step").digest;
        match self.image_spec {
            Some(spec) => self.image_spec_stage(state, last, spec),
            None => Ok((state, last.clone())),
        }
    }

    /// The imageSpec stage: the config rewritten, no layer.
    fn image_spec_stage(
        &self,
        state: ImageState,
        prev: &str,
        spec: &crate::config::ImageSpec,
    ) -> anyhow::Result<(ImageState, String)> {
        let digest = crate::frontend::image_spec::stage_digest(prev, spec);
        let name = "imageSpec".to_string();
        if let Some(found) = self.stages.lookup(&digest)? {
            self.log.stage(self.image, &name, &digest, &format!("cached ({})", found.source));
            self.record(self.plan.target, &name, &found.state, found_meta(found.source), 0.0)?;
            return Ok((found.state, digest));
        }
        if self.require_built {
            anyhow::bail!(
                "image {} is not built: its imageSpec stage ({digest}) is not in the stage storage",
                self.shown()
            );
        }
        let t = Instant::now();
        let meta = self.meta_on(&state, "local")?;
        let mut built = state.clone();
        crate::frontend::image_spec::apply(spec, &mut built.config, self.project, self.shown())?;
        let labels = StageLabels {
            project: self.project,
            commit: self.commit,
            parent_stage_id: state.stage.as_ref().map(|s| s.id()),
        };
        let (stored, _) = self.stages.publish(&built, &digest, &name, &labels)?;
        let secs = t.elapsed().as_secs_f64();
        self.log.stage(self.image, &name, &digest, &format!("built in {secs:.2}s"));
        self.record(self.plan.target, &name, &stored, meta, secs)?;
        Ok((stored, digest))
    }

    fn stage(&self, index: usize) -> anyhow::Result<ImageState> {
        if let Some(s) = self.built.borrow().get(&index) {
            return Ok(s.clone());
        }
        let ps = &self.plan.stages[&index];
        let state = self.build_stage(ps)?;
        self.built.borrow_mut().insert(index, state.clone());
        Ok(state)
    }

    /// An image named outside this Dockerfile: another werf image's stage in the local
    /// store (`PROJECT:DIGEST-TS`), else pulled from its registry.
    fn external_image(&self, reference: &str) -> anyhow::Result<ImageState> {
        Ok(self.external_image_pulled(reference)?.0)
    }

    /// [`Self::external_image`], and whether a layer had to be downloaded for it.
    fn external_image_pulled(&self, reference: &str) -> anyhow::Result<(ImageState, bool)> {
        match self.stages.local_image(reference)? {
            Some(state) => Ok((state, false)),
            None => self.puller.pull_counted(reference).map(|(s, fetched)| (s, fetched > 0)),
        }
    }

    fn step_env(&self) -> StepEnv<'_> {
        StepEnv {
            secrets: self.secrets,
            stdout_to_stderr: self.log.to_stderr(),
            puller: self.puller,
            plan: self.plan,
            context: self.context,
            backend: self.backend,
            rootfs: self.rootfs,
            images: self,
        }
    }

    fn stage_name(&self, ps: &PlannedStage, step: &str) -> String {
        if ps.index == self.plan.target { step.to_string() } else { format!("stage{}/{step}", ps.index) }
    }

    fn shown(&self) -> &str {
        if self.image.is_empty() { "~" } else { self.image }
    }

    fn build_stage(&self, ps: &PlannedStage) -> anyhow::Result<ImageState> {
        // The newest step with a stored stage: everything before it is not needed.
        let mut start = 0;
        let mut state = None;
        // Where the current state came from (`Found::source`), for the next stage's meta.
        let mut origin = "local";
        for (k, step) in ps.steps.iter().enumerate().rev() {
            if let Some(found) = self.stages.lookup(&step.digest)? {
                for earlier in &ps.steps[..k] {
                    // Only for the report: werf lists every stage with its image.
                    let peeked = self.stages.lookup_primary(&earlier.digest)?;
                    self.cached(ps, earlier, "cached", peeked.as_ref())?;
                }
                self.cached(ps, step, &format!("cached ({})", found.source), Some(&found))?;
                origin = found.source;
                state = Some(found.state);
                start = k + 1;
                break;
            }
        }
        if self.require_built && start < ps.steps.len() {
            let missing = &ps.steps[ps.steps.len() - 1];
            anyhow::bail!(
                "image {} is not built: stage {} ({}) is not in the stage storage; build it first or drop --require-built-images",
                self.shown(),
                self.stage_name(ps, &missing.name),
                missing.digest
            );
        }
        let df = &self.plan.dockerfile;
        for k in start..ps.steps.len() {
            let planned = &ps.steps[k];
            let name = self.stage_name(ps, &planned.name);
            let t = Instant::now();
            let parent_id = state.as_ref().and_then(|s: &ImageState| s.stage.as_ref().map(|st| st.id()));
            let mut meta = match &state {
                Some(prev) => self.meta_on(prev, origin)?,
                None => StageMeta::BUILT_ON_LOCAL,
            };
            let built = match &planned.step {
                None => match &ps.base {
                    Base::Scratch => ImageState::scratch(),
                    Base::Image(r) => {
                        let (base, pulled) = self
                            .external_image_pulled(r)
                            .with_context(|| format!("{}:{}: FROM {r}", df.file, df.stages[ps.index].line))?;
                        if pulled {
                            meta = StageMeta::BUILT_ON_PULLED_IMAGE;
                        }
                        self.run_triggers(ps, planned, r, base)?
                    }
                    Base::Stage(s) => {
                        let parent = self.stage(*s)?;
                        meta = self.meta_on(&parent, "local")?;
                        let shown = match &df.stages[*s].name {
                            Some(n) => format!("stage {n}"),
                            None => format!("stage {s}"),
                        };
                        self.run_triggers(ps, planned, &shown, parent)?
                    }
                },
                Some(step) => {
                    self.log.step_command(&step.original);
                    let cmd_set = steps::cmd_set_before(&ps.steps[1..k]);
                    steps::execute(&self.step_env(), state.as_ref().expect("FROM comes first"), planned, cmd_set)
                        .with_context(|| format!("building image {}", self.shown()))?
                }
            };
            let labels = StageLabels { project: self.project, commit: self.commit, parent_stage_id: parent_id };
            let (stored, ours) = self.stages.publish(&built, &planned.digest, &name, &labels)?;
            let secs = t.elapsed().as_secs_f64();
            let status =
                if ours { format!("built in {secs:.2}s") } else { "built, but another build stored it first".into() };
            self.log.stage(self.image, &name, &planned.digest, &status);
            self.record(ps.index, &planned.name, &stored, meta, secs)?;
            origin = "local";
            state = Some(stored);
        }
        Ok(state.expect("a stage has at least its FROM step"))
    }

    /// Run the ONBUILD triggers of the base image or parent stage as part of the FROM
    /// step, and clear them from the config, as Docker does. They belong to the base,
    /// which the FROM digest names; COPY and ADD triggers
    /// would read the build context, which that digest does not cover, so they are
    /// refused.
    fn run_triggers(
        &self,
        ps: &PlannedStage,
        from: &super::plan::PlannedStep,
        base_ref: &str,
        mut state: ImageState,
    ) -> anyhow::Result<ImageState> {
        let Some(triggers) = state.config.config.on_build.take() else { return Ok(state) };
        let df = &self.plan.dockerfile;
        let line = df.stages[ps.index].line;
        for expression in triggers {
            let instruction = crate::frontend::dockerfile::syntax::parse_trigger(base_ref, &expression)?;
            if matches!(
                instruction,
                crate::frontend::dockerfile::syntax::Instruction::Copy(_)
                    | crate::frontend::dockerfile::syntax::Instruction::Add(_)
            ) {
                anyhow::bail!(
                    "{}:{line}: base {base_ref} has the ONBUILD trigger {expression:?}: COPY and ADD triggers are not supported yet",
                    df.file
                );
            }
            self.log.step_command(&format!("ONBUILD {expression}"));
            let step = crate::frontend::dockerfile::syntax::Step { line, original: expression, instruction };
            let planned = super::plan::PlannedStep { step: Some(step), ..from.clone() };
            state = steps::execute(&self.step_env(), &state, &planned, false)
                .with_context(|| format!("running ONBUILD triggers of {base_ref} for image {}", self.shown()))?;
        }
        Ok(state)
    }

    /// Log a stage found in storage and report it (`found` is `None` for an earlier
    /// stage the primary storage no longer has: it is left out, as werf leaves out a
    /// stage without an image).
    fn cached(
        &self,
        ps: &PlannedStage,
        step: &super::plan::PlannedStep,
        status: &str,
        found: Option<&crate::engine::stages::Found>,
    ) -> anyhow::Result<()> {
        let name = self.stage_name(ps, &step.name);
        self.log.stage(self.image, &name, &step.digest, status);
        match found {
            Some(f) => self.record(ps.index, &step.name, &f.state, found_meta(f.source), 0.0),
            None => Ok(()),
        }
    }

    /// Add a stage record; `step_name` is the plan's (`3-RUN`), reported as werf's
    /// staged mode names the stage (`run`).
    fn record(
        &self,
        index: usize,
        step_name: &str,
        state: &ImageState,
        meta: StageMeta,
        secs: f64,
    ) -> anyhow::Result<()> {
        let keyword = step_name.split_once('-').map_or(step_name, |(_, k)| k);
        let name = if step_name == "imageSpec" { step_name.to_string() } else { dockerfile_stage_name(keyword) };
        let facts = crate::engine::stage_facts(self.stages.store, self.stage_repo, state)?;
        let record = StageRecord::new(&name, &facts, meta, 0.0);
        self.report.borrow_mut().entry(index).or_default().push((record, secs));
        Ok(())
    }

    /// werf's meta of a stage built on `base`: no fetch when its layers are all local;
    /// else fetched from a cache repo (pulled) or the primary.
    fn meta_on(&self, base: &ImageState, origin: &str) -> anyhow::Result<StageMeta> {
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

impl steps::Images for DockerfileBuild<'_> {
    fn image_of(&self, which: &StageRef) -> anyhow::Result<ImageState> {
        match which {
            StageRef::Stage(i) => self.stage(*i),
            StageRef::Image(r) => self.external_image(r),
        }
    }
}

/// The report's meta of a stage found in storage.
fn found_meta(source: &str) -> StageMeta {
    if source == "secondary" { StageMeta::SECONDARY } else { StageMeta::FOUND }
}
