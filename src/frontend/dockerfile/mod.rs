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
use crate::config_reader::{ConfigReader, not_in_project_directory};
use crate::context::BuildContext;
use crate::engine::report::{self, BuildReport, StageFacts};
use crate::engine::{Built, Job};
use crate::giterminism::path_matcher_matches;
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
    // The Dockerfile and its ignore file are configuration files: from the commit, or
    // from the working tree where werf-giterminism.yaml accepts them uncommitted.
    let reader = ConfigReader::new(job.repo.clone(), run.commit.clone(), run.dir_rel.to_string());
    let allow = &run.giterminism.config.dockerfile;
    let ignore = read_dockerignore(&reader, &d.context, &d.dockerfile, &allow.allow_uncommitted_dockerignore_files)?;
    let ignore = ignore.as_ref().map(|(name, bytes)| (name.as_str(), bytes.as_slice()));
    let context =
        BuildContext::load_with_ignore(job.repo, run.commit, &context_rel, ignore, &d.context_add_files, &allowed)?;
    let df_path = join_rel(&d.context, &d.dockerfile);
    let df_rel = join_rel(run.dir_rel, &df_path);
    let df_accepted = path_matcher_matches(&allow.allow_uncommitted, &df_path);
    let uncommitted: Vec<&String> =
        context.uncommitted.iter().filter(|p| !(df_accepted && join_rel(&d.context, p) == df_path)).collect();
    if !uncommitted.is_empty() {
        run.log.warn(&format!(
            "image {shown}: {} file(s) in the context directory are not committed and not in the build context (giterminism): {}",
            uncommitted.len(),
            uncommitted.iter().take(10).map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    let df_bytes = reader
        .read(&df_path, &|p| path_matcher_matches(&allow.allow_uncommitted, p))
        .map_err(|e| anyhow::anyhow!("image {shown}: unable to read dockerfile {df_path:?}: {e}"))?;
    let df_bytes = df_bytes.with_context(|| match run.commit.worktree.is_some() {
        _ if df_accepted || run.commit.loose => {
            format!("image {shown}: {df_rel} does not exist (werf.yaml:{})", image.line)
        }
        true => format!("image {shown}: {df_rel} is not in the working tree (werf.yaml:{})", image.line),
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
        ssh: &run.ssh,
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

/// werf's `createDockerIgnorePathMatcher`: `DOCKERFILE.dockerignore`, else `.dockerignore`,
/// in the context directory (`context`, `dockerfile`: as in werf.yaml), the first that
/// exists in the working tree or the commit, read as a configuration file (from the
/// working tree if `allowUncommittedDockerignoreFiles` accepts its path). Its path
/// relative to the project and its bytes.
fn read_dockerignore(
    reader: &ConfigReader,
    context: &str,
    dockerfile: &str,
    allow: &[String],
) -> anyhow::Result<Option<(String, Vec<u8>)>> {
    for name in [format!("{dockerfile}.dockerignore"), ".dockerignore".to_string()] {
        let path = join_rel(context, &name);
        let fail = |e: String| anyhow::anyhow!("unable to read dockerignore file {path:?}: {e}");
        if !reader.exists_anywhere(&path).map_err(fail)? {
            continue;
        }
        let accepted = path_matcher_matches(allow, &path);
        return match reader.read(&path, &|p| path_matcher_matches(allow, p)).map_err(fail)? {
            Some(bytes) => Ok(Some((path, bytes))),
            None if accepted || reader.commit.loose => Err(fail(not_in_project_directory(&path))),
            None => Ok(None),
        };
    }
    Ok(None)
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
