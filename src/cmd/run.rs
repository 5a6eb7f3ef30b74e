//! `slipway run [IMAGE] [-- CMD...]`: build if needed, then run the image in the sandbox
//! over a throw-away upper directory (nothing the command writes is kept).

use super::ProjectArgs;
use crate::build::{self, Log, Mutation};
use crate::project::Project;
use anyhow::{Context, bail};
use clap::Args;
use slipway_storage::store::Store;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Image to run (may be omitted when werf.yaml has one image).
    pub image: Option<String>,

    #[command(flatten)]
    pub project: ProjectArgs,

    /// Command and arguments; replaces the image's CMD (its ENTRYPOINT stays).
    #[arg(last = true)]
    pub command: Vec<String>,
}

pub fn run(args: RunArgs, storage_root: &std::path::Path) -> anyhow::Result<u8> {
    let dir = args.project.dir()?;
    let project = Project::load(&dir, args.project.config.as_deref(), &args.project.env)?;
    let name = match args.image {
        Some(n) => n,
        None => match project.config.images.as_slice() {
            [one] => one.name.clone(),
            many => bail!(
                "werf.yaml has {} images: name the one to run ({})",
                many.len(),
                many.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        },
    };
    let store = Store::open(storage_root)?;
    let log = Log::new(true);
    let settings = args.project.settings();
    let (_, states) = build::build(&project, &store, std::slice::from_ref(&name), &settings, &log)?;
    let state = states.get(&name).context("the image was not built")?;
    let c = &state.config.config;
    let mut argv: Vec<String> = c.entrypoint.clone().unwrap_or_default();
    if args.command.is_empty() {
        argv.extend(c.cmd.clone().unwrap_or_default());
    } else {
        argv.extend(args.command);
    }
    if argv.is_empty() {
        bail!("image {name} has no ENTRYPOINT or CMD: give a command after --");
    }
    let client = build::registry_client(&settings)?;
    build::Puller { client: &client, store: &store, log: &log }.ensure_layers(state)?;
    let rlimits = build::rlimits_from_env()?;
    let m = Mutation::begin(&store, state.diff_ids())?;
    let cmd = build::Command {
        args: argv,
        env: c.env.clone().unwrap_or_default(),
        user: c.user.as_deref().unwrap_or(""),
        cwd: c.working_dir.as_deref().filter(|w| !w.is_empty()).unwrap_or("/"),
        rlimits: &rlimits,
        stdout_to_stderr: false,
        binds: Vec::new(),
        no_network: false,
    };
    let exit = build::run_command(m.root(), cmd)?;
    drop(m);
    Ok(exit.code.clamp(0, 255) as u8)
}
