//! The command line: werf's flag and environment names, one function per command.

use crate::internal;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Daemonless, rootless container-image builder for werf.yaml projects.
#[derive(Debug, Parser)]
#[command(name = "slipway", version, propagate_version = true)]
pub struct Cli {
    /// Log level for diagnostics on stderr (error, warn, info, debug, trace); SLIPWAY_LOG overrides.
    #[arg(long, global = true, env = "SLIPWAY_LOG_LEVEL")]
    pub log_level: Option<String>,

    /// Root of the local store (default: $XDG_DATA_HOME/slipway).
    #[arg(long, global = true, env = "SLIPWAY_STORAGE_ROOT")]
    pub storage_root: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the images of werf.yaml (all, or those named) into the local store.
    #[command(args_override_self = true)]
    Build(crate::cmd::build::BuildArgs),
    /// Build an image if needed and run a command in it (its CMD by default).
    #[command(args_override_self = true)]
    Run(crate::cmd::run::RunArgs),
    /// Build if needed, then publish final images under the given tags, without werf's labels.
    #[command(args_override_self = true)]
    Export(crate::cmd::export::ExportArgs),
    /// Render, list and graph werf.yaml.
    #[command(subcommand)]
    Config(crate::cmd::config::ConfigCommand),
    /// Inspect stages.
    #[command(subcommand, args_override_self = true)]
    Stages(crate::cmd::stages::StagesCommand),
    /// Work with one stage (werf's `stage image`).
    #[command(subcommand, args_override_self = true)]
    Stage(crate::cmd::stage::StageCommand),
    /// Print slugged string by specified format.
    #[command(args_override_self = true)]
    Slugify(crate::cmd::slugify::SlugifyArgs),
    /// The host: what it offers rootless builds (`host check`), and cleaning the local
    /// store (`host cleanup`, `host purge`).
    #[command(subcommand)]
    Host(crate::cmd::host::HostCommand),
    /// Plumbing for tests and debugging.
    #[command(hide = true, subcommand)]
    Internal(internal::Command),
}

/// Run the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Build(a) => crate::cmd::build::run(a, &cli.storage_root),
        Command::Run(a) => crate::cmd::run::run(a, &cli.storage_root),
        Command::Export(a) => crate::cmd::export::run(a, &cli.storage_root),
        Command::Config(c) => crate::cmd::config::run(c),
        Command::Stages(c) => crate::cmd::stages::run(c, &cli.storage_root),
        Command::Stage(c) => crate::cmd::stage::run(c, &cli.storage_root),
        Command::Slugify(a) => crate::cmd::slugify::run(a),
        Command::Host(c) => crate::cmd::host::run(c, &cli.storage_root),
        Command::Internal(c) => internal::run(c, &cli.storage_root),
    }
}

/// The store root: `--storage-root`, else `$XDG_DATA_HOME/slipway`, else `~/.local/share/slipway`.
pub fn storage_root(flag: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.clone());
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("slipway"));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| anyhow::anyhow!("neither XDG_DATA_HOME nor HOME is set: pass --storage-root"))?;
    Ok(PathBuf::from(home).join(".local/share/slipway"))
}

impl Cli {
    /// Whether the command must run outside the user namespace (`host check` probes how
    /// entering one goes; cleanup and purge delete layers owned by subordinate ids, so they
    /// run inside, as builds do).
    pub fn outside_namespace(&self) -> bool {
        matches!(self.command, Command::Host(crate::cmd::host::HostCommand::Check))
    }

    /// The `--log-*` flags of the command, if it has them.
    pub fn log_args(&self) -> Option<&crate::cmd::flags::LogArgs> {
        match &self.command {
            Command::Build(a) => Some(&a.project.log),
            Command::Run(a) => Some(&a.project.log),
            Command::Export(a) => Some(&a.project.log),
            Command::Config(c) => Some(match c {
                crate::cmd::config::ConfigCommand::Render(a) => &a.project.log,
                crate::cmd::config::ConfigCommand::List(a) => &a.project.log,
                crate::cmd::config::ConfigCommand::Graph(a) => &a.project.log,
            }),
            Command::Stages(c) => Some(&c.project().log),
            Command::Stage(crate::cmd::stage::StageCommand::Image(a)) => Some(&a.project.log),
            Command::Slugify(a) => Some(&a.log),
            Command::Host(crate::cmd::host::HostCommand::Cleanup(a)) => Some(&a.host.log),
            Command::Host(crate::cmd::host::HostCommand::Purge(a)) => Some(&a.host.log),
            Command::Host(crate::cmd::host::HostCommand::Check) | Command::Internal(_) => None,
        }
    }
}
