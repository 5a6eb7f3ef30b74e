//! `slipway run [IMAGE] [-- CMD...]`: build if needed, then run the image in the sandbox
//! over a throw-away upper directory (nothing the command writes is kept).

use super::ProjectArgs;
use super::flags::{refuse, werf_bool};
use crate::engine::{self, Log, RootfsDriver};
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

    /// Requires all used images to be previously built: fail instead of building
    /// (default $WERF_REQUIRE_BUILT_IMAGES).
    #[arg(short = 'Z', long, env = "WERF_REQUIRE_BUILT_IMAGES", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub require_built_images: bool,

    /// Use build report, previously saved with --save-build-report (default
    /// $WERF_USE_BUILD_REPORT). Not supported by `run` in slipway.
    #[arg(long, env = "WERF_USE_BUILD_REPORT", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub use_build_report: bool,

    /// Build report path for --use-build-report (default $WERF_BUILD_REPORT_PATH).
    #[arg(long, env = "WERF_BUILD_REPORT_PATH")]
    pub build_report_path: Option<std::path::PathBuf>,

    /// Enable follow mode (default $WERF_FOLLOW). Not supported by slipway.
    #[arg(long, env = "WERF_FOLLOW", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub follow: bool,

    /// Indicate what the command would do without doing it (default $WERF_DRY_RUN). Not
    /// supported by slipway.
    #[arg(long, env = "WERF_DRY_RUN", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub dry_run: bool,

    /// Run /bin/sh in the image instead of its ENTRYPOINT and CMD.
    #[arg(long, value_parser = werf_bool, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", conflicts_with = "bash")]
    pub shell: bool,

    /// Run /bin/bash in the image instead of its ENTRYPOINT and CMD.
    #[arg(long, value_parser = werf_bool, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true")]
    pub bash: bool,

    /// Docker run options (default $WERF_DOCKER_OPTIONS). Not supported by slipway.
    #[arg(long, env = "WERF_DOCKER_OPTIONS")]
    pub docker_options: Option<String>,
}

pub fn run(args: RunArgs, storage_root: &Option<std::path::PathBuf>) -> anyhow::Result<u8> {
    args.project.check()?;
    refuse(&[
        ("--use-build-report", args.use_build_report),
        ("--follow", args.follow),
        ("--dry-run", args.dry_run),
        ("--docker-options", args.docker_options.as_ref().is_some_and(|o| !o.is_empty())),
    ])?;
    let dir = args.project.dir()?;
    let project = Project::load(&dir, args.project.config.as_deref(), &args.project.env, &args.project.source_mode())?;
    args.project.check_project(&project, true)?;
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
    let store = Store::open(&args.project.storage_root(storage_root)?)?;
    let log = Log::new(true).quiet(args.project.log.quiet());
    let mut settings = args.project.settings()?;
    settings.require_built = args.require_built_images;
    let (_, states) = engine::build(&project, &store, std::slice::from_ref(&name), &settings, &log)?;
    let state = states.get(&name).context("the image was not built")?;
    let c = &state.config.config;
    let mut argv: Vec<String> = c.entrypoint.clone().unwrap_or_default();
    if args.shell || args.bash {
        // werf's --shell/--bash replace the entrypoint and take no command.
        if !args.command.is_empty() {
            bail!("--shell and --bash take no command after --");
        }
        argv = vec![if args.shell { "/bin/sh" } else { "/bin/bash" }.to_string()];
    } else if args.command.is_empty() {
        argv.extend(c.cmd.clone().unwrap_or_default());
    } else {
        argv.extend(args.command);
    }
    if argv.is_empty() {
        bail!("image {name} has no ENTRYPOINT or CMD: give a command after --");
    }
    let client = engine::registry_client(&settings)?;
    let backend = &settings.backend;
    engine::Puller { client: &client, store: &store, log: &log, backend }.ensure_layers(state)?;
    let rootfs = RootfsDriver::new(backend, &log);
    let m = rootfs.begin(&store, state.diff_ids())?;
    let cmd = crate::frontend::dockerfile::Command {
        args: argv,
        env: c.env.clone().unwrap_or_default(),
        user: c.user.as_deref().unwrap_or(""),
        cwd: c.working_dir.as_deref().filter(|w| !w.is_empty()).unwrap_or("/"),
        rlimits: &backend.rlimits,
        isolation: &backend.isolation,
        stdout_to_stderr: false,
        binds: Vec::new(),
        no_network: false,
    };
    let exit = crate::frontend::dockerfile::run_command(m.root(), cmd)?;
    drop(m);
    Ok(exit.code.clamp(0, 255) as u8)
}
