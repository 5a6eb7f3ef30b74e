//! The Dockerfile front end: a werf.yaml `dockerfile:` image planned step by step
//! (`plan`) from the Dockerfile (`syntax`) and its build context, and executed
//! (`image`, `steps`) stage by stage by the engine.

pub mod copy;
pub mod download;
pub mod gitsource;
mod image;
pub mod mounts;
pub mod plan;
pub mod steps;
pub mod syntax;
pub mod users;

pub use steps::{Command, run_command};

use crate::config::DockerfileImage;
use crate::context::BuildContext;
use crate::engine::report::{self, BuildReport, StageFacts};
use crate::engine::{Built, Job};
use crate::project::join_rel;
use anyhow::{Context, bail};
use std::collections::BTreeMap;

/// Build (or find) a Dockerfile image's stages.
pub fn build(job: &Job<'_>, d: &DockerfileImage) -> anyhow::Result<Built> {
    let (run, image, shown) = (job.run, job.image, job.shown);
    if let Some(p) = d.platform.iter().chain(&run.config.meta.build.platform).find(|p| !plan::is_linux_amd64(p)) {
        bail!("image {shown} (werf.yaml:{}): platform {p}: slipway builds linux/amd64 only so far", image.line);
    }
    run.log.image_header(shown);
    let context_rel = join_rel(run.dir_rel, &d.context);
    let allowed: Vec<String> = run.allow_context_add_files.iter().map(|a| join_rel(run.dir_rel, a)).collect();
    let context = BuildContext::load(job.repo, run.commit, &context_rel, &d.context_add_files, &allowed)?;
    if !context.uncommitted.is_empty() {
        run.log.warn(&format!(
            "image {shown}: {} file(s) in the context directory are not committed and not in the build context (giterminism): {}",
            context.uncommitted.len(),
            context.uncommitted.iter().take(10).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let df_rel = join_rel(&context_rel, &d.dockerfile);
    let df_bytes = job.repo.read_config(run.commit, &df_rel)?.with_context(|| match run.commit.worktree.is_some() {
        true => format!("image {shown}: {df_rel} is not in the working tree (werf.yaml:{})", image.line),
        false if run.commit.loose => format!("image {shown}: {df_rel} does not exist (werf.yaml:{})", image.line),
        false => {
            format!("image {shown}: {df_rel} is not in commit {} (werf.yaml:{})", &run.commit.id[..12], image.line)
        }
    })?;
    let df_text = String::from_utf8(df_bytes).with_context(|| format!("{df_rel} is not UTF-8"))?;
    let dockerfile = syntax::parse(&df_rel, &df_text)?;
    let plan = plan::plan(
        dockerfile,
        &plan::PlanInput {
            target: d.target.as_deref(),
            build_args: &dependency_args(d, job.done)?,
            context: &context,
            cache_version: d.cache_version.as_deref().or(run.config.meta.build.cache_version.as_deref()),
            network: d.network.as_deref(),
            download_dir: &job.puller.store.scratch_dir("download")?,
            add_host: &d.add_host,
        },
    )?;
    let b = image::DockerfileBuild {
        stages: job.stages,
        puller: job.puller,
        log: run.log,
        project: run.name,
        commit: &run.commit.id,
        image: shown,
        plan: &plan,
        context: &context,
        backend: &run.settings.backend,
        rootfs: &run.rootfs,
        require_built: run.settings.require_built,
        image_spec: d.image_spec.as_ref(),
        secrets: &d.secrets,
        built: Default::default(),
        report: Default::default(),
    };
    let (state, digest) = b.run()?;
    let mut by_stage = b.report.into_inner();
    let stages = by_stage.remove(&plan.target).unwrap_or_default();
    let mut more = Vec::new();
    // werf's staged mode makes every other Dockerfile stage an image of its own,
    // `IMAGE/stage/NAME` (or `IMAGE/stageN`), which werf.yaml does not know.
    if d.staged {
        for (index, entries) in by_stage {
            let Some((last_record, _)) = entries.last() else { continue };
            let last = StageFacts {
                repo: last_record.docker_image_name.rsplit_once(':').map_or("", |(r, _)| r).to_string(),
                id: last_record.docker_tag.clone(),
                config_digest: last_record.docker_image_id.clone(),
                manifest_digest: last_record.docker_image_digest.clone(),
                created: None,
                layer_sizes: vec![u64::try_from(last_record.size).unwrap_or(0)],
                commit: last_record.commit.clone(),
            };
            let total: f64 = entries.iter().map(|(_, s)| s).sum();
            let (stages, secs): (Vec<_>, Vec<_>) = entries.into_iter().unzip();
            let name = match &plan.dockerfile.stages[index].name {
                Some(n) => format!("{}/stage/{n}", image.name),
                None => format!("{}/stage{index}", image.name),
            };
            more.push(report::image_record(&name, "unknown", false, &last, stages, &secs, total));
        }
    }
    Ok(Built { state, digest, config_type: if d.staged { "staged" } else { "dockerfile" }, stages, more })
}

/// `args` of a Dockerfile image plus its `dependencies` imports (`targetBuildArg`), taken
/// from the report of the images built before it.
fn dependency_args(
    d: &crate::config::DockerfileImage,
    report: &BuildReport,
) -> anyhow::Result<BTreeMap<String, String>> {
    use crate::config::DependencyImportType as T;
    let mut args = d.args.clone();
    for dep in &d.dependencies {
        let r = report
            .images
            .get(&dep.image)
            .with_context(|| format!("werf.yaml:{}: dependency {} was not built first", dep.line, dep.image))?;
        for imp in &dep.imports {
            let value = match imp.kind {
                T::ImageName => &r.docker_image_name,
                T::ImageID => &r.docker_image_id,
                T::ImageRepo => &r.docker_repo,
                T::ImageTag => &r.docker_tag,
                T::ImageDigest => &r.docker_image_digest,
            };
            args.insert(imp.target.clone(), value.clone());
        }
    }
    Ok(args)
}

/// Resolve `user` against the passwd and group files of the rootfs at `root`.
pub fn resolve_user_in(root: &std::path::Path, user: &str) -> anyhow::Result<users::ExecUser> {
    let fs = copy::Rootfs::open(root)?;
    users::resolve(user, &fs.read_file("/etc/passwd"), &fs.read_file("/etc/group"))
}
