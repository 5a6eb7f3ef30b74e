//! `slipway build [IMAGE...]`.

use super::ProjectArgs;
use super::flags::{refuse, werf_bool};
use crate::engine::{self, Log, report};
use crate::project::Project;
use crate::slug::CustomTag;
use anyhow::{Context, bail};
use clap::Args;
use slipway_storage::reference::Reference;
use slipway_storage::store::Store;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Images to build (default: all images in werf.yaml).
    pub images: Vec<String>,

    #[command(flatten)]
    pub project: ProjectArgs,

    /// Save build report (default $WERF_SAVE_BUILD_REPORT or false); its path and format
    /// come from --build-report-path.
    #[arg(long, env = "WERF_SAVE_BUILD_REPORT", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub save_build_report: bool,

    /// Build report path and format (default $WERF_BUILD_REPORT_PATH or
    /// .werf-build-report.json): `.json` for JSON, `.env` for an env file, no extension
    /// for JSON (`.json` is added). Used only with --save-build-report, as in werf.
    #[arg(long, env = "WERF_BUILD_REPORT_PATH")]
    pub build_report_path: Option<PathBuf>,

    /// Set tag alias for the content-based tag of final images (repeatable;
    /// $WERF_ADD_CUSTOM_TAG_*, e.g. WERF_ADD_CUSTOM_TAG_1="%image%-tag1"). Placeholders:
    /// %image%, %image_slug%, %image_safe_slug% (one is needed with more than one image)
    /// and %image_content_based_tag%. Tags go to --final-repo, else --repo (required).
    #[arg(long = "add-custom-tag", value_name = "TAG")]
    pub add_custom_tag: Vec<String>,

    /// Check that all used images are previously built and exist in repo: fail instead
    /// of building (default $WERF_CHECK_BUILT_IMAGES).
    #[arg(long, env = "WERF_CHECK_BUILT_IMAGES", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub check_built_images: bool,

    /// The same as --check-built-images (werf's hidden legacy name).
    #[arg(short = 'Z', long, hide = true, value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub require_built_images: bool,

    /// Process final images only (default $WERF_FINAL_IMAGES_ONLY or false).
    #[arg(long, env = "WERF_FINAL_IMAGES_ONLY", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub final_images_only: bool,

    /// Enable follow mode (default $WERF_FOLLOW). Not supported by slipway.
    #[arg(long, env = "WERF_FOLLOW", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub follow: bool,

    /// werf's host-cleanup flags: after the build, when the store's volume is above the
    /// allowed usage, `host cleanup` runs (see `host_gc::auto`).
    #[command(flatten)]
    pub host_cleanup: super::host_gc::Thresholds,
}

pub fn run(args: BuildArgs, storage_root: &Option<PathBuf>) -> anyhow::Result<u8> {
    let p = &args.project;
    p.check()?;
    refuse(&[("--follow", args.follow)])?;
    args.host_cleanup.backend()?;
    let dir = p.dir()?;
    // Refuse a bad path before building.
    let save_to = report::save_path(args.save_build_report, args.build_report_path.as_deref())?;
    let project = Project::load(&dir, p.config.as_deref(), &p.env, &p.source_mode())?;
    p.check_project(&project, false)?;
    let mut settings = p.settings()?;
    settings.require_built = args.check_built_images || args.require_built_images;
    let images = selected(&project, &args.images, args.final_images_only);
    let tag_templates = super::with_env_list(&args.add_custom_tag, "WERF_ADD_CUSTOM_TAG_");
    let custom_tags = if tag_templates.is_empty() {
        Vec::new()
    } else {
        if settings.repo.is_none() {
            bail!("custom tags can only be used with remote storage: --repo=ADDRESS param required");
        }
        let finals = final_names(&project, &images);
        let finals: Vec<&str> = finals.iter().map(String::as_str).collect();
        tag_templates.iter().map(|t| CustomTag::parse(t, &finals)).collect::<Result<Vec<_>, _>>()?
    };
    let root = p.storage_root(storage_root)?;
    let store = Store::open(&root)?;
    let log = Log::new(false).quiet(p.log.quiet());
    let (mut report, _) = engine::build(&project, &store, &images, &settings, &log)?;
    report.runtime.in_container = std::env::var("WERF_CONTAINERIZED").is_ok_and(|v| v == "yes");
    if !custom_tags.is_empty() {
        let client = engine::registry_client(&settings)?;
        for (name, record) in report.images.iter().filter(|(_, r)| r.final_) {
            let source = Reference::parse(&record.docker_image_name)
                .with_context(|| format!("image {name}: {}", record.docker_image_name))?;
            for t in &custom_tags {
                let tag = t.render(name, &record.docker_tag);
                let dest = Reference::parse(&format!("{}:{tag}", record.docker_repo))
                    .with_context(|| format!("custom tag {tag:?} of image {name}"))?;
                if settings.require_built {
                    // werf's check mode checks the custom tags instead of adding them.
                    if client.manifest_digest(&dest)?.is_none() {
                        bail!("check custom tag {tag:?} existence failed: {dest} not found");
                    }
                    continue;
                }
                engine::push::add_tag(&client, &source, &dest)
                    .with_context(|| format!("tagging image {name} as {dest}"))?;
                log.info(&format!("tagged {name} as {dest}"));
            }
        }
    }
    if let Some((path, format)) = save_to {
        report.save(&path, format)?;
    }
    // The store lock is released before the collector asks for it exclusive.
    drop(store);
    super::host_gc::auto(&root, &args.host_cleanup, &log);
    Ok(0)
}

/// The images to build: those named (all of werf.yaml's when none is), final ones only
/// with `--final-images-only`.
fn selected(project: &Project, named: &[String], final_only: bool) -> Vec<String> {
    if !final_only {
        return named.to_vec();
    }
    let all: Vec<String> = project.config.images.iter().filter(|i| i.final_).map(|i| i.name.clone()).collect();
    if named.is_empty() { all } else { named.iter().filter(|n| all.contains(n)).cloned().collect() }
}

/// The final images among `images` (all of werf.yaml's when empty).
fn final_names(project: &Project, images: &[String]) -> Vec<String> {
    project
        .config
        .images
        .iter()
        .filter(|i| i.final_ && (images.is_empty() || images.contains(&i.name)))
        .map(|i| i.name.clone())
        .collect()
}
