//! One module per user-facing command.

pub mod build;
pub mod config;
pub mod export;
pub mod run;
pub mod stages;

use clap::Args;
use std::path::PathBuf;

/// Where the project is and how to reach registries (shared by build and run).
#[derive(Debug, Args)]
pub struct ProjectArgs {
    /// Project directory (where werf.yaml is); default: the current directory.
    #[arg(long, env = "WERF_DIR")]
    pub dir: Option<PathBuf>,

    /// werf.yaml to use, relative to --dir (read from the current commit).
    #[arg(long, env = "WERF_CONFIG")]
    pub config: Option<PathBuf>,

    /// The environment name passed to werf.yaml templates as `.Env`.
    #[arg(long, env = "WERF_ENV", default_value = "")]
    pub env: String,

    /// Registries to reach over plain HTTP (repeatable; WERF_INSECURE_REGISTRY=1 marks
    /// every registry insecure, as werf does).
    #[arg(long = "insecure-registry", value_name = "REGISTRY")]
    pub insecure_registry: Vec<String>,

    /// Container registry repository for stages (the local store becomes a cache).
    #[arg(long, env = "WERF_REPO")]
    pub repo: Option<String>,

    /// Read-only repositories to take stages from (repeatable; WERF_SECONDARY_REPO_*).
    #[arg(long = "secondary-repo", value_name = "REPO")]
    pub secondary_repo: Vec<String>,

    /// Read-write repositories preferred for pulling stages (repeatable; WERF_CACHE_REPO_*).
    #[arg(long = "cache-repo", value_name = "REPO")]
    pub cache_repo: Vec<String>,

    /// Repository for final images only, under the same tags (WERF_FINAL_REPO).
    #[arg(long, env = "WERF_FINAL_REPO")]
    pub final_repo: Option<String>,

    /// Build independent images at the same time.
    #[arg(short = 'p', long, env = "WERF_PARALLEL", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub parallel: bool,

    /// How many images build at once with --parallel.
    #[arg(long, env = "WERF_PARALLEL_TASKS_LIMIT", default_value_t = 5)]
    pub parallel_tasks_limit: usize,

    /// Registries whose TLS certificates are not verified (repeatable).
    #[arg(long = "skip-tls-verify-registry", value_name = "REGISTRY")]
    pub skip_tls_verify_registry: Vec<String>,

    /// A registry transfer that moves less than 1 KiB in this many seconds fails.
    #[arg(long, env = "SLIPWAY_REGISTRY_PROGRESS_TIMEOUT", value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub registry_progress_timeout: u64,
}

impl ProjectArgs {
    pub fn dir(&self) -> anyhow::Result<PathBuf> {
        Ok(match &self.dir {
            Some(d) => d.clone(),
            None => std::env::current_dir()?,
        })
    }

    pub fn settings(&self) -> crate::build::BuildSettings {
        let mut insecure = self.insecure_registry.clone();
        // werf's WERF_INSECURE_REGISTRY is a boolean for all registries; a list of
        // registries is accepted too.
        match std::env::var("WERF_INSECURE_REGISTRY").unwrap_or_default().as_str() {
            "" | "0" | "false" => {}
            "1" | "true" => insecure.push("*".into()),
            list => insecure.extend(list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty())),
        }
        crate::build::BuildSettings {
            insecure_registries: insecure,
            skip_tls_verify_registries: self.skip_tls_verify_registry.clone(),
            repo: self.repo.clone().filter(|r| !r.is_empty()),
            secondary_repos: with_env_list(&self.secondary_repo, "WERF_SECONDARY_REPO_"),
            cache_repos: with_env_list(&self.cache_repo, "WERF_CACHE_REPO_"),
            final_repo: self.final_repo.clone().filter(|r| !r.is_empty()),
            require_built: false,
            parallel: if self.parallel { self.parallel_tasks_limit.max(1) } else { 1 },
            registry_progress: slipway_storage::registry::ProgressDeadline::from_secs(self.registry_progress_timeout),
        }
    }
}

/// Flag values plus werf's list-style environment: every `PREFIX*` variable is one value.
pub fn with_env_list(flags: &[String], prefix: &str) -> Vec<String> {
    let mut env: Vec<(String, String)> =
        std::env::vars().filter(|(k, v)| k.starts_with(prefix) && !v.is_empty()).collect();
    env.sort();
    flags.iter().cloned().chain(env.into_iter().map(|(_, v)| v)).collect()
}
