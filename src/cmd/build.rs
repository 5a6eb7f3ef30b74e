//! `slipway build [IMAGE...]`.

use super::ProjectArgs;
use crate::build::{self, Log};
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

    /// Save the build report (to --build-report-path, default .werf-build-report.json).
    #[arg(long, env = "WERF_SAVE_BUILD_REPORT")]
    pub save_build_report: bool,

    /// Where to save the report; `.env` for an env file (implies --save-build-report).
    #[arg(long, env = "WERF_BUILD_REPORT_PATH")]
    pub build_report_path: Option<PathBuf>,
}

pub fn run(args: BuildArgs, storage_root: &std::path::Path) -> anyhow::Result<u8> {
    let dir = args.project.dir()?;
    let project = Project::load(&dir, args.project.config.as_deref(), &args.project.env)?;
    let store = Store::open(storage_root)?;
    let log = Log::new(false);
    let (report, _) = build::build(&project, &store, &args.images, &args.project.settings(), &log)?;
    if args.save_build_report || args.build_report_path.is_some() {
        let path = args.build_report_path.unwrap_or_else(|| dir.join(".werf-build-report.json"));
        report.save(&path)?;
    }
    Ok(0)
}
