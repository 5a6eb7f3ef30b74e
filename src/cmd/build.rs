//! `slipway build [IMAGE...]`.

use super::ProjectArgs;
use crate::build::{self, Log, report};
use crate::project::Project;
use clap::Args;
use slipway_storage::store::Store;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Images to build (default: all images in werf.yaml).
    pub images: Vec<String>,

    #[command(flatten)]
    pub project: ProjectArgs,

    /// Save the build report; its path and format come from --build-report-path.
    #[arg(long, env = "WERF_SAVE_BUILD_REPORT")]
    pub save_build_report: bool,

    /// Build report path and format (default .werf-build-report.json): `.json` for JSON,
    /// `.env` for an env file, no extension for JSON (`.json` is added). Used only with
    /// --save-build-report, as in werf.
    #[arg(long, env = "WERF_BUILD_REPORT_PATH")]
    pub build_report_path: Option<PathBuf>,
}

pub fn run(args: BuildArgs, storage_root: &std::path::Path) -> anyhow::Result<u8> {
    let dir = args.project.dir()?;
    // Refuse a bad path before building.
    let save_to = report::save_path(args.save_build_report, args.build_report_path.as_deref())?;
    let project = Project::load(&dir, args.project.config.as_deref(), &args.project.env)?;
    let store = Store::open(storage_root)?;
    let log = Log::new(false);
    let (mut report, _) = build::build(&project, &store, &args.images, &args.project.settings(), &log)?;
    report.runtime.in_container = std::env::var("WERF_CONTAINERIZED").is_ok_and(|v| v == "yes");
    if let Some((path, format)) = save_to {
        report.save(&path, format)?;
    }
    Ok(0)
}
