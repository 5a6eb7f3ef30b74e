//! Building one Dockerfile image: each Dockerfile stage is a list of engine stages (one
//! per step, the digests planned by `plan`), found or built by the engine's conveyor;
//! the target's list ends with the imageSpec stage.

use super::plan::{Base, Plan, PlannedStage, PlannedStep};
use super::steps::{self, StepEnv};
use crate::context::BuildContext;
use crate::engine::conveyor::{BuiltStage, Conveyor, Stage};
use crate::engine::log::Log;
use crate::engine::pull::Puller;
use crate::engine::report::{StageMeta, StageRecord, dockerfile_stage_name};
use crate::engine::stages::Stages;
use crate::engine::state::ImageState;
use crate::frontend::dockerfile::syntax::{self, StageRef};
use anyhow::Context;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

pub struct DockerfileBuild<'a> {
    pub stages: &'a Stages<'a>,
    pub puller: &'a Puller<'a>,
    pub log: &'a Log,
    pub project: &'a str,
    pub commit: &'a str,
    /// The image's name as logged (`~` for the nameless image).
    pub image: &'a str,
    pub plan: &'a Plan,
    pub context: &'a BuildContext,
    pub backend: &'a crate::engine::Backend,
    pub rootfs: &'a crate::engine::RootfsDriver,
    /// The build's ssh agent, for `RUN --mount=type=ssh`.
    pub ssh: &'a crate::engine::ssh_agent::Agent,
    /// Fail instead of building a missing stage (`--require-built-images`).
    pub require_built: bool,
    /// werf's `imageSpec` (merged with `build.imageSpec` for final images): one more
    /// stage after the Dockerfile's.
    pub image_spec: Option<&'a crate::config::ImageSpec>,
    /// werf.yaml `secrets` for `RUN --mount=type=secret`.
    pub secrets: &'a [crate::config::Secret],
    /// Results of Dockerfile stages already built in this run.
    pub built: RefCell<HashMap<usize, ImageState>>,
    /// The report's stage records and the seconds each took, by Dockerfile stage index
    /// (the imageSpec stage goes with the target).
    pub report: RefCell<BTreeMap<usize, Vec<(StageRecord, f64)>>>,
}

impl DockerfileBuild<'_> {
    /// Build (or find) the target stage and the imageSpec stage after it; returns the
    /// last stage and its digest.
    pub fn run(&self) -> anyhow::Result<(ImageState, String)> {
        let ps = &self.plan.stages[&self.plan.target];
        let steps = self.steps_of(ps);
        let spec = self.image_spec.map(|spec| ImageSpecStage {
            digest: crate::frontend::image_spec::stage_digest(ps.last_digest(), spec),
            spec,
            project: self.project,
            image: self.image,
        });
        let mut list: Vec<&dyn Stage> = steps.iter().map(|s| s as &dyn Stage).collect();
        list.extend(spec.as_ref().map(|s| s as &dyn Stage));
        let (state, records) = self.conveyor().run(&list)?;
        self.report.borrow_mut().entry(ps.index).or_default().extend(records);
        let digest = list.last().expect("FROM step").digest().to_string();
        Ok((state, digest))
    }

    /// The state of Dockerfile stage `index`, built (or found) once per image.
    fn stage(&self, index: usize) -> anyhow::Result<ImageState> {
        if let Some(s) = self.built.borrow().get(&index) {
            return Ok(s.clone());
        }
        let steps = self.steps_of(&self.plan.stages[&index]);
        let list: Vec<&dyn Stage> = steps.iter().map(|s| s as &dyn Stage).collect();
        let (state, records) = self.conveyor().run(&list)?;
        self.report.borrow_mut().entry(index).or_default().extend(records);
        self.built.borrow_mut().insert(index, state.clone());
        Ok(state)
    }

    fn conveyor(&self) -> Conveyor<'_> {
        Conveyor {
            stages: self.stages,
            log: self.log,
            project: self.project,
            commit: self.commit,
            image: self.image,
            require_built: self.require_built,
        }
    }

    fn steps_of<'s>(&'s self, ps: &'s PlannedStage) -> Vec<DockerfileStep<'s>> {
        (0..ps.steps.len()).map(|k| DockerfileStep { build: self, ps, k }).collect()
    }

    /// An image named outside this Dockerfile: another werf image's stage in the local
    /// store (`PROJECT:DIGEST-TS`), else pulled from its registry. Also says whether a
    /// layer had to be downloaded for it.
    fn external_image(&self, reference: &str) -> anyhow::Result<(ImageState, bool)> {
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
            ssh: self.ssh,
            images: self,
        }
    }

    /// The FROM step: the base image or parent stage, with its ONBUILD triggers run.
    fn from(&self, ps: &PlannedStage, planned: &PlannedStep) -> anyhow::Result<BuiltStage> {
        let df = &self.plan.dockerfile;
        Ok(match &ps.base {
            Base::Scratch => ImageState::scratch().into(),
            Base::Image(r) => {
                let (base, pulled) = self
                    .external_image(r)
                    .with_context(|| format!("{}:{}: FROM {r}", df.file, df.stages[ps.index].line))?;
                let state = self.run_triggers(ps, planned, r, base)?;
                BuiltStage { state, meta: pulled.then_some(StageMeta::BUILT_ON_PULLED_IMAGE) }
            }
            Base::Stage(s) => {
                let parent = self.stage(*s)?;
                let meta = self.conveyor().meta_on(&parent, "local")?;
                let shown = match &df.stages[*s].name {
                    Some(n) => format!("stage {n}"),
                    None => format!("stage {s}"),
                };
                BuiltStage { state: self.run_triggers(ps, planned, &shown, parent)?, meta: Some(meta) }
            }
        })
    }

    /// Run the ONBUILD triggers of the base image or parent stage as part of the FROM
    /// step, and clear them from the config, as Docker does. They belong to the base,
    /// which the FROM digest names; COPY and ADD triggers would read the build context,
    /// which that digest does not cover, so they are refused.
    fn run_triggers(
        &self,
        ps: &PlannedStage,
        from: &PlannedStep,
        base_ref: &str,
        mut state: ImageState,
    ) -> anyhow::Result<ImageState> {
        let Some(triggers) = state.config.config.on_build.take() else { return Ok(state) };
        let df = &self.plan.dockerfile;
        let line = df.stages[ps.index].line;
        for expression in triggers {
            let instruction = syntax::parse_trigger(base_ref, &expression)?;
            if matches!(instruction, syntax::Instruction::Copy(_) | syntax::Instruction::Add(_)) {
                anyhow::bail!(
                    "{}:{line}: base {base_ref} has the ONBUILD trigger {expression:?}: COPY and ADD triggers are not supported yet",
                    df.file
                );
            }
            self.log.step_command(&format!("ONBUILD {expression}"));
            let step = syntax::Step { line, original: expression, instruction };
            let planned = PlannedStep { step: Some(step), ..from.clone() };
            state = steps::execute(&self.step_env(), &state, &planned, false)
                .with_context(|| format!("running ONBUILD triggers of {base_ref} for image {}", self.image))?;
        }
        Ok(state)
    }
}

/// Step `k` of a Dockerfile stage, as an engine stage.
struct DockerfileStep<'a> {
    build: &'a DockerfileBuild<'a>,
    ps: &'a PlannedStage,
    k: usize,
}

impl Stage for DockerfileStep<'_> {
    /// `3-RUN` for the target, `stage1/3-RUN` for another Dockerfile stage.
    fn log_name(&self) -> String {
        let step = &self.ps.steps[self.k].name;
        if self.ps.index == self.build.plan.target { step.clone() } else { format!("stage{}/{step}", self.ps.index) }
    }

    /// As werf's staged mode names the stage (`run`).
    fn report_name(&self) -> String {
        let name = &self.ps.steps[self.k].name;
        dockerfile_stage_name(name.split_once('-').map_or(name.as_str(), |(_, keyword)| keyword))
    }

    fn digest(&self) -> &str {
        &self.ps.steps[self.k].digest
    }

    fn build(&self, prev: Option<&ImageState>) -> anyhow::Result<BuiltStage> {
        let (b, planned) = (self.build, &self.ps.steps[self.k]);
        let Some(step) = &planned.step else { return b.from(self.ps, planned) };
        b.log.step_command(&step.original);
        let cmd_set = steps::cmd_set_before(&self.ps.steps[1..self.k]);
        let state = steps::execute(&b.step_env(), prev.expect("FROM comes first"), planned, cmd_set)
            .with_context(|| format!("building image {}", b.image))?;
        Ok(state.into())
    }
}

/// werf's imageSpec stage: the config rewritten, no layer.
struct ImageSpecStage<'a> {
    digest: String,
    spec: &'a crate::config::ImageSpec,
    project: &'a str,
    image: &'a str,
}

impl Stage for ImageSpecStage<'_> {
    fn log_name(&self) -> String {
        "imageSpec".into()
    }

    fn report_name(&self) -> String {
        "imageSpec".into()
    }

    fn digest(&self) -> &str {
        &self.digest
    }

    fn build(&self, prev: Option<&ImageState>) -> anyhow::Result<BuiltStage> {
        let mut built = prev.expect("imageSpec comes after the image's stages").clone();
        crate::frontend::image_spec::apply(self.spec, &mut built.config, self.project, self.image)?;
        Ok(built.into())
    }
}

impl steps::Images for DockerfileBuild<'_> {
    fn image_of(&self, which: &StageRef) -> anyhow::Result<ImageState> {
        match which {
            StageRef::Stage(i) => self.stage(*i),
            StageRef::Image(r) => Ok(self.external_image(r)?.0),
        }
    }
}
