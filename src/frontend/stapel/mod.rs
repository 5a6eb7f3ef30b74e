//! The Stapel front end: werf's `from`/`git`/`shell`/`docker` images, planned as werf's
//! stages (`plan`) and found or built by the engine's conveyor.
//!
//! - `plan`: the stage list and every stage's digest (pure but for [`plan::GitHistory`]).
//! - `git`: `git` mappings: filters, auto-excludes, labels, stage dependencies.
//! - `remote`: the repositories mappings read (the own one, remote ones fetched into a
//!   cache in the store) and the commit of each.
//! - `git_apply`: writing a mapping's files, or the changes between two commits, into a
//!   stage rootfs.
//! - `history`: the git stages' selector (ancestry per mapping), the commits stored git
//!   stages recorded, patches since them.
//! - `shell`: running a `shell` stage's commands in the image's own `/bin/sh`.
//! - `mount`: werf.yaml `mount`: labels, binds, emptying the base's mount points.
//! - `docker`: the `docker:` directives (the `dockerInstructions` stage).
//! - `import`: `import` and `dependencies` (werf's dependencies stages): sources,
//!   values, labels.
//! - `import_tree`: what an import takes from its source (walk, checksum) and copying
//!   it into a stage rootfs.
//! - `refuse`: the Stapel keys this front end does not build yet, each refused with one
//!   line naming the image, its werf.yaml line and the key.

mod docker;
mod git;
mod git_apply;
mod history;
mod import;
mod import_tree;
mod mount;
mod plan;
mod refuse;
mod remote;
mod shell;

use crate::config::{BaseImage, StapelImage};
use crate::engine::conveyor::{BuiltStage, Conveyor, Stage};
use crate::engine::report::StageMeta;
use crate::engine::state::ImageState;
use crate::engine::storage::Selector;
use crate::engine::{Built, Job};
use crate::frontend::dockerfile::copy::Rootfs;
use anyhow::Context;
use plan::{Base, PlannedStage, Step};

/// Refuse, in one line naming the key's werf.yaml line, what this front end does not
/// build yet (`refuse.rs`); the engine asks before it builds any image.
pub fn refuse(image: &crate::config::Image, s: &StapelImage, build_platforms: &[String]) -> anyhow::Result<()> {
    if let Err((line, refusal)) = refuse::unsupported(s, build_platforms) {
        let shown = if image.name.is_empty() { "~" } else { image.name.as_str() };
        anyhow::bail!("image {shown} (werf.yaml:{}): {refusal}", line.unwrap_or(image.line));
    }
    Ok(())
}

/// Build (or find) a Stapel image's stages; returns the image and its last stage's
/// selector (for `Stages::settle`).
pub fn build<'a>(job: &Job<'a>, s: &StapelImage) -> anyhow::Result<(Built, Option<Box<dyn Selector + 'a>>)> {
    let (run, image, shown) = (job.run, job.image, job.shown);
    let at = || format!("image {shown} (werf.yaml:{})", image.line);
    refuse(image, s, &run.config.meta.build.platform)?;
    let local = s.git.iter().find(|g| g.source == crate::config::GitSource::Local);
    if let (Some(g), Some(_)) = (local, &run.commit.worktree) {
        anyhow::bail!(
            "image {shown} (werf.yaml:{}): `git` mappings are not supported with --dev yet (they read commits only); \
             commit the changes and build without --dev",
            g.line
        );
    }
    let werf_base = match &s.from {
        BaseImage::Werf(name) => {
            let r = job.done.images.get(name).with_context(|| format!("{}: image {name} was not built first", at()))?;
            Some((r.docker_image_name.as_str(), r.docker_tag.as_str()))
        }
        _ => None,
    };
    let network = s.network.as_deref().unwrap_or("default");
    let (sources, of) = remote::sources(job, &s.git).with_context(at)?;
    let sources: std::rc::Rc<[git::Source]> = sources.into();
    let heads = history::encode(sources.iter().map(|s| s.head.as_str()));
    let mappings = git::Mapping::prepare(&sources, &of, &s.git).with_context(at)?;
    let check =
        history::AncestryCheck::from_env(run.settings.backend.host.var("WERF_DISABLE_GIT_COMMIT_ANCESTRY_CHECK"));
    let ancestry = history::Ancestry::new(&sources, &mappings, check);
    let git_plan = if let Some(ancestry) = &ancestry {
        let mut paramshashes: Vec<&str> = mappings.iter().map(|m| m.paramshash.as_str()).collect();
        paramshashes.sort_unstable();
        let deps = |stage| git::stage_dependencies(&sources, &mappings, stage).with_context(at);
        Some(plan::GitPlan {
            mappings: paramshashes,
            stage_dependencies: [deps("install")?, deps("beforeSetup")?, deps("setup")?],
            head: &heads,
            disable_git_after_patch: s.disable_git_after_patch,
            history: &history::GitStages { sources: &sources, mappings: &mappings, stages: job.stages, ancestry },
        })
    } else {
        None
    };
    let prepared = import::prepare(job, &s.import, &s.dependencies).with_context(at)?;
    let latest = if s.from_latest { from_latest(job, &s.from).with_context(at)? } else { None };
    let from = match &latest {
        Some((pinned, _)) => BaseImage::External(pinned.clone()),
        None => s.from.clone(),
    };
    let planned = plan::plan(&plan::PlanInput {
        from: &from,
        base_latest_id: latest.as_ref().map(|(_, id)| id.as_str()),
        werf_base,
        cache_version: s.cache_version.as_deref().or(run.config.meta.build.cache_version.as_deref()),
        from_cache_version: s.from_cache_version.as_deref(),
        mounts: &s.mount,
        shell: s.shell.as_ref(),
        network,
        docker: s.docker.as_ref(),
        image_spec: s.image_spec.as_ref(),
        git: git_plan,
        dependencies: &prepared.inputs,
    })
    .with_context(at)?;
    run.log.image_header(shown);
    let home = run.settings.backend.host.var("HOME");
    let mounts = mount::MountEnv::new(&s.mount, run.mount_allow, run.store, run.name, home);
    let shell_env = shell::ShellEnv {
        puller: job.puller,
        backend: &run.settings.backend,
        rootfs: &run.rootfs,
        stdout_to_stderr: run.log.to_stderr(),
        no_network: network == "none",
        commit: run.commit,
        secrets: &s.secrets,
        mounts: &mounts,
        ssh: &run.ssh,
    };
    let stages: Vec<StapelStage<'_>> = planned
        .iter()
        .map(|p| StapelStage {
            job,
            image: s,
            planned: p,
            shell: &shell_env,
            mappings: &mappings,
            sources: &sources,
            heads: &heads,
            ancestry: ancestry.as_ref(),
            prepared: &prepared,
        })
        .collect();
    let list: Vec<&dyn Stage> = stages.iter().map(|s| s as &dyn Stage).collect();
    let conveyor = Conveyor {
        stages: job.stages,
        log: run.log,
        project: run.name,
        commit: &run.commit.id,
        image: shown,
        require_built: run.settings.require_built,
    };
    let (state, records) = conveyor.run(&list)?;
    let last = stages.last().expect("from comes first");
    let selector = last.selector().and(ancestry.clone());
    let digest = last.planned.digest.clone();
    let built = Built { state, digest, config_type: "stapel", stages: records, more: Vec::new() };
    Ok((built, selector.map(|a| Box::new(a) as Box<dyn Selector + 'a>)))
}

/// One planned stage of a Stapel image, as an engine stage.
struct StapelStage<'a> {
    job: &'a Job<'a>,
    image: &'a StapelImage,
    planned: &'a PlannedStage,
    shell: &'a shell::ShellEnv<'a>,
    mappings: &'a [git::Mapping],
    /// The repositories the mappings read, at their current commits, and those commits
    /// [`history::encode`]d.
    sources: &'a [git::Source],
    heads: &'a str,
    /// The image's git stages' selector (`None` without git mappings).
    ancestry: Option<&'a history::Ancestry>,
    /// The image's imports and dependencies, resolved.
    prepared: &'a import::Prepared<'a>,
}

impl Stage for StapelStage<'_> {
    fn log_name(&self) -> String {
        self.planned.name.into()
    }

    fn report_name(&self) -> String {
        self.planned.name.into()
    }

    fn digest(&self) -> &str {
        &self.planned.digest
    }

    fn base_stage_id(&self) -> Option<String> {
        match &self.planned.step {
            Step::From(Base::Werf { stage_id, .. }) => Some(stage_id.clone()),
            _ => None,
        }
    }

    /// Every stage from `gitArchive` on carries the commit label it or a git stage
    /// before it recorded: one of another branch is not used.
    fn selector(&self) -> Option<&dyn Selector> {
        match self.planned.step {
            Step::From(_) | Step::Shell(_) | Step::Dependencies { after_git: false, .. } => None,
            _ => self.ancestry.map(|a| a as &dyn Selector),
        }
    }

    fn build(&self, prev: Option<&ImageState>) -> anyhow::Result<BuiltStage> {
        let mut built = self.build_step(prev)?;
        // werf writes the mount labels on every stage it builds (not on scratch).
        if !matches!(self.planned.step, Step::From(Base::Scratch) | Step::ImageSpec) {
            let points = self.shell.mounts.points(built.state.config.config.labels.as_ref());
            if !points.is_empty() {
                mount::label(&points, built.state.config.config.labels.get_or_insert_with(Default::default));
            }
        }
        Ok(built)
    }
}

impl StapelStage<'_> {
    fn build_step(&self, prev: Option<&ImageState>) -> anyhow::Result<BuiltStage> {
        let (job, name) = (self.job, self.planned.name);
        let at = || format!("building image {} (werf.yaml:{}), stage {name}", job.shown, job.image.line);
        let prev = || prev.expect("from comes first");
        match &self.planned.step {
            Step::From(base) => self.from(base).with_context(at),
            Step::Shell(commands) => {
                for c in commands {
                    job.run.log.step_command(c);
                }
                Ok(shell::run(self.shell, prev(), name, commands, None).with_context(at)?.into())
            }
            Step::GitShell(commands) => {
                for c in commands {
                    job.run.log.step_command(c);
                }
                let from = self.patch_base(prev()).with_context(at)?;
                let patch = |rootfs: &Rootfs| self.apply_patch(rootfs, &from);
                let prepare: Option<shell::Prepare<'_>> = (from != self.heads).then_some(&patch);
                let mut state = shell::run(self.shell, prev(), name, commands, prepare).with_context(at)?;
                self.label(&mut state);
                Ok(state.into())
            }
            Step::GitArchive => {
                let state = self
                    .on_rootfs(prev(), "werf gitArchive", |rootfs| {
                        for m in self.mappings {
                            let source = &self.sources[m.source];
                            git_apply::Writer::new(&source.repo, rootfs, m)?.archive(&source.head)?;
                        }
                        Ok(())
                    })
                    .with_context(at)?;
                Ok(state.into())
            }
            Step::GitPatch => {
                let from = self.patch_base(prev()).with_context(at)?;
                let state = self
                    .on_rootfs(prev(), &format!("werf {name}"), |rootfs| self.apply_patch(rootfs, &from))
                    .with_context(at)?;
                Ok(state.into())
            }
            Step::Docker(instructions) => {
                let mut state = prev().clone();
                docker::apply(instructions, &mut state.config.config);
                state.push_history("werf dockerInstructions", true);
                Ok(state.into())
            }
            Step::Dependencies { slot, .. } => Ok(self.dependencies(prev(), *slot).with_context(at)?.into()),
            Step::ImageSpec => {
                let spec = self.image.image_spec.as_ref().expect("planned only with an imageSpec");
                let mut state = prev().clone();
                crate::frontend::image_spec::apply(spec, &mut state.config, job.run.name, job.shown)
                    .with_context(at)?;
                Ok(state.into())
            }
        }
    }
}

impl StapelStage<'_> {
    /// The commits the previous stage recorded ([`history::encode`]d), which a patch
    /// starts from.
    fn patch_base(&self, prev: &ImageState) -> anyhow::Result<String> {
        history::recorded_commit(prev, self.mappings, self.sources.len())
            .context("the previous stage records no git commit for the mappings")
    }

    /// Apply every mapping's changes from the commit of `from` of its source to the
    /// source's current commit.
    fn apply_patch(&self, rootfs: &Rootfs, from: &str) -> anyhow::Result<()> {
        let from =
            history::decode(from, self.sources.len()).context("the recorded commits do not match the mappings")?;
        for m in self.mappings {
            let source = &self.sources[m.source];
            let (from, head) = (from[m.source], source.head.as_str());
            if from == head {
                continue;
            }
            git_apply::Writer::new(&source.repo, rootfs, m)?
                .patch(from, head)
                .with_context(|| format!("applying the changes from commit {from} to {head} of {}", source.shown))?;
        }
        Ok(())
    }

    /// Change `prev`'s rootfs with `change`, commit the layer, label the result.
    fn on_rootfs(
        &self,
        prev: &ImageState,
        history: &str,
        change: impl FnOnce(&Rootfs) -> anyhow::Result<()>,
    ) -> anyhow::Result<ImageState> {
        let puller = self.job.puller;
        puller.ensure_layers(prev)?;
        let m = self.job.run.rootfs.begin(puller.store, prev.diff_ids())?;
        change(&Rootfs::open(m.root())?)?;
        let layer = m.finish()?;
        let mut state = prev.clone();
        if let Some(meta) = &layer {
            state.push_layer(meta);
        }
        state.push_history(history, layer.is_none());
        self.label(&mut state);
        Ok(state)
    }

    /// werf's git labels: the commit (its source's current one) and archive type per
    /// mapping.
    fn label(&self, state: &mut ImageState) {
        let labels = state.config.config.labels.get_or_insert_with(Default::default);
        for m in self.mappings {
            labels.insert(git::commit_label(&m.paramshash), self.sources[m.source].head.clone());
            labels.insert(git::type_label(&m.paramshash), m.archive_type().into());
        }
    }

    /// A dependencies stage: the files of its imports copied in (one layer), werf's
    /// import and dependency labels, the dependencies' variables. A stage after
    /// `gitArchive` keeps the commit labels of the stage before it (its files are that
    /// commit's).
    fn dependencies(&self, prev: &ImageState, slot: usize) -> anyhow::Result<ImageState> {
        let (job, name) = (self.job, self.planned.name);
        let imports: Vec<&import::Resolved<'_>> = self.prepared.imports.iter().filter(|r| r.slot == slot).collect();
        let mut state = prev.clone();
        if imports.is_empty() {
            state.push_history(&format!("werf {name}"), true);
        } else {
            let puller = job.puller;
            puller.ensure_layers(prev)?;
            let m = job.run.rootfs.begin(puller.store, prev.diff_ids())?;
            {
                let rootfs = Rootfs::open(m.root())?;
                for r in &imports {
                    job.run.log.step_command(&format!("import {}:{} to {}", r.reference, r.import.add, r.import.to));
                    import::copy_into(job, &rootfs, r)?;
                }
            }
            let layer = m.finish()?;
            if let Some(meta) = &layer {
                state.push_layer(meta);
            }
            state.push_history(&format!("werf {name}"), layer.is_none());
        }
        let deps: Vec<&import::ResolvedDependency> =
            self.prepared.dependencies.iter().filter(|d| d.slot == slot).collect();
        let labels = state.config.config.labels.get_or_insert_with(Default::default);
        for r in &imports {
            labels.extend(import::import_labels(r));
        }
        labels.extend(deps.iter().map(|d| import::dependency_label(d)));
        for (k, v) in deps.iter().flat_map(|d| &d.env) {
            state.config.config.set_env(k, v);
        }
        Ok(state)
    }

    /// The `from` stage: the base image as it is (no layer of its own).
    fn from(&self, base: &Base) -> anyhow::Result<BuiltStage> {
        let job = self.job;
        Ok(match base {
            Base::Scratch => ImageState::scratch().into(),
            Base::Werf { reference, .. } => {
                let state = match job.stages.local_image(reference)? {
                    Some(state) => state,
                    None => job.puller.pull_counted(reference)?.0,
                };
                BuiltStage { state: self.empty_mount_points(state)?, meta: None }
            }
            Base::Image(reference) => {
                let (state, fetched) =
                    job.puller.pull_counted(reference).with_context(|| format!("from: {reference}"))?;
                let state = self.empty_mount_points(state)?;
                BuiltStage { state, meta: (fetched > 0).then_some(StageMeta::BUILT_ON_PULLED_IMAGE) }
            }
        })
    }

    /// werf's `from` stage with mounts: each mount point of the base emptied (a layer
    /// when one had content).
    fn empty_mount_points(&self, base: ImageState) -> anyhow::Result<ImageState> {
        let points = self.shell.mounts.points(base.config.config.labels.as_ref());
        if points.is_empty() {
            return Ok(base);
        }
        let puller = self.job.puller;
        puller.ensure_layers(&base)?;
        let m = self.job.run.rootfs.begin(puller.store, base.diff_ids())?;
        mount::empty_mount_points(&Rootfs::open(m.root())?, &points)?;
        let layer = m.finish()?;
        let mut state = base;
        if let Some(meta) = &layer {
            state.push_layer(meta);
        }
        state.push_history("werf from: mount points emptied", layer.is_none());
        Ok(state)
    }
}

/// werf's `fromLatest`: allowed only by `config.stapel.allowFromLatest` (or loose
/// giterminism); the external base is resolved in its registry now, and the stage is
/// planned on that exact manifest (`name@digest`, so the content pulled is the content
/// digested) with the image's ID in the `from` digest. Another werf image or `scratch` as
/// the base has nothing to resolve: `None`.
fn from_latest(job: &Job<'_>, from: &BaseImage) -> anyhow::Result<Option<(String, String)>> {
    if job.run.mount_allow.is_some_and(|g| !g.config.stapel.allow_from_latest) {
        anyhow::bail!(
            "fromLatest directive not allowed by giterminism: it puts the base image's current digest into the \
             stage digest, so a change of the base in its registry makes every earlier build unusable; \
             to allow it, set config.stapel.allowFromLatest: true in werf-giterminism.yaml \
             (or pin the base and change fromCacheVersion)"
        );
    }
    let BaseImage::External(name) = from else { return Ok(None) };
    let reference = slipway_storage::reference::Reference::parse(name)
        .with_context(|| format!("parsing image reference {name:?}"))?;
    let resolved = job
        .puller
        .client
        .resolve_image(&reference, &slipway_storage::image::Platform::linux_amd64())
        .with_context(|| format!("fromLatest: resolving {reference} in its registry"))?;
    let pinned = reference.with_digest(resolved.raw.digest.as_str())?;
    Ok(Some((pinned.to_string(), resolved.manifest.config.digest.to_string())))
}
