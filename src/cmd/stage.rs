//! `slipway stage image [IMAGE]`: prints the name of the image's last stage, as werf
//! does: `PROJECT:DIGEST-TIMESTAMP` in the local store, `REPO:DIGEST-TIMESTAMP` with
//! `--repo` (never `--final-repo`). Nothing is built: every stage must exist.

use super::ProjectArgs;
use crate::engine::{self, Log};
use crate::project::Project;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use slipway_storage::store::Store;

#[derive(Debug, Subcommand)]
pub enum StageCommand {
    /// Print stage image name.
    #[command(args_override_self = true)]
    Image(ImageArgs),
}

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Image of werf.yaml (may be omitted when werf.yaml has one image).
    pub image: Option<String>,

    #[command(flatten)]
    pub project: ProjectArgs,
}

pub fn run(cmd: StageCommand, storage_root: &Option<std::path::PathBuf>) -> anyhow::Result<u8> {
    let StageCommand::Image(args) = cmd;
    args.project.check()?;
    let project = Project::load(
        &args.project.dir()?,
        args.project.config.as_deref(),
        &args.project.env,
        &args.project.source_mode(),
    )?;
    args.project.check_project(&project, true)?;
    let name = match args.image {
        Some(n) => n,
        None => match project.config.images.as_slice() {
            [one] => one.name.clone(),
            _ => bail!("werf.yaml has {} images: name one", project.config.images.len()),
        },
    };
    let store = Store::open(&args.project.storage_root(storage_root)?)?;
    let mut settings = args.project.settings()?;
    settings.require_built = true;
    // Nothing is built: no agent to start (and no warning about one).
    settings.ssh = engine::ssh_agent::Choice::Off;
    let log = Log::new(true).quiet(true);
    let (report, _) = engine::build(&project, &store, std::slice::from_ref(&name), &settings, &log)?;
    let record = report.images.get(&name).context("the image is not in the build report")?;
    // werf prints the stage's name in the stages storage (`--repo`), not in `--final-repo`.
    match &settings.repo {
        Some(repo) => println!("{repo}:{}", record.docker_tag),
        None => println!("{}", record.docker_image_name),
    }
    Ok(0)
}
