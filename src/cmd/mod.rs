//! One module per user-facing command.

pub mod build;
pub mod config;
pub mod export;
pub mod flags;
pub mod host;
pub mod host_gc;
pub mod run;
pub mod slugify;
pub mod stage;
pub mod stages;
pub mod units;

#[cfg(test)]
mod tests;

use clap::Args;
use flags::{FinalRepoOptions, LogArgs, RepoOptions, refuse, werf_bool};
use std::path::PathBuf;

/// Where the project is and how to reach registries: werf's flags shared by build, run,
/// export, stage image and stages list, with werf's names, shapes and variables.
#[derive(Debug, Args)]
pub struct ProjectArgs {
    /// Use specified project directory where project's werf.yaml and other configuration
    /// files should reside (default $WERF_DIR or current working directory).
    #[arg(long, env = "WERF_DIR")]
    pub dir: Option<PathBuf>,

    /// Use specified git work tree dir (default $WERF_GIT_WORK_TREE or the directory
    /// that contains .git in the current or parent directories). It must be the work
    /// tree slipway finds from --dir.
    #[arg(long, env = "WERF_GIT_WORK_TREE")]
    pub git_work_tree: Option<PathBuf>,

    /// Use custom configuration file, relative to --dir (default $WERF_CONFIG or
    /// werf.yaml; read from the current commit).
    #[arg(long, env = "WERF_CONFIG")]
    pub config: Option<PathBuf>,

    /// Custom configuration templates directory (default $WERF_CONFIG_TEMPLATES_DIR or
    /// .werf in the project directory); slipway reads it inside the project directory.
    #[arg(long, env = "WERF_CONFIG_TEMPLATES_DIR")]
    pub config_templates_dir: Option<PathBuf>,

    /// Custom path for storing rendered configuration file.
    #[arg(long)]
    pub config_render_path: Option<PathBuf>,

    /// Custom path to the giterminism configuration file (default
    /// $WERF_GITERMINISM_CONFIG or werf-giterminism.yaml). Not supported by slipway.
    #[arg(long, env = "WERF_GITERMINISM_CONFIG")]
    pub giterminism_config: Option<PathBuf>,

    /// Use specified environment (default $WERF_ENV), `.Env` in werf.yaml templates.
    #[arg(long, env = "WERF_ENV", default_value = "")]
    pub env: String,

    /// Loose werf giterminism mode restrictions (default $WERF_LOOSE_GITERMINISM):
    /// werf.yaml, templates, `.Files`, Dockerfiles and .dockerignore are read from the
    /// working tree, and env vars, `contextAddFiles` and secrets need no allow-list.
    #[arg(long, env = "WERF_LOOSE_GITERMINISM", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub loose_giterminism: bool,

    /// Enable development mode (default $WERF_DEV). The mode allows working with project
    /// files without doing redundant commits during debugging and development: the
    /// working tree (tracked and untracked files, minus .gitignore and --dev-ignore) is
    /// built as if it were committed.
    #[arg(long, env = "WERF_DEV", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub dev: bool,

    /// Add rules to ignore tracked and untracked changes in development mode (can specify
    /// multiple). Also, can be specified with $WERF_DEV_IGNORE_* (e.g.
    /// $WERF_DEV_IGNORE_TESTS=*_test.go, $WERF_DEV_IGNORE_DOCS=path/to/docs).
    #[arg(long = "dev-ignore", value_name = "RULE")]
    pub dev_ignore: Vec<String>,

    /// Dev git branch name (default $WERF_DEV_BRANCH or "_werf-dev"). Accepted and unused:
    /// slipway keeps werf's dev commit in memory and creates no branch.
    #[arg(long, env = "WERF_DEV_BRANCH", default_value = "_werf-dev")]
    pub dev_branch: String,

    /// Use specified dir to store tmp files and dirs (default $WERF_TMP_DIR). slipway keeps
    /// its temporary files in the store (tmp/run-*), next to the layers they become; the
    /// directory must exist.
    #[arg(long, env = "WERF_TMP_DIR")]
    pub tmp_dir: Option<PathBuf>,

    /// Use specified dir to store werf cache files and dirs (default $WERF_HOME or
    /// ~/.werf). slipway's cache is its store: without --storage-root the store is
    /// HOME_DIR/slipway.
    #[arg(long, env = "WERF_HOME")]
    pub home_dir: Option<PathBuf>,

    /// Use only specific ssh key(s) (repeatable; $WERF_SSH_KEY_*): slipway runs an ssh-agent
    /// with them for `RUN --mount=type=ssh` and Stapel shell stages. Without it:
    /// $SSH_AUTH_SOCK, else ~/.ssh/id_rsa and ~/.ssh/id_dsa. Keys with a passphrase are
    /// refused.
    #[arg(long = "ssh-key", value_name = "PATH")]
    pub ssh_key: Vec<String>,

    /// Container registry storage address for stages (default $WERF_REPO); the local
    /// store becomes a cache.
    #[arg(long, env = "WERF_REPO")]
    pub repo: Option<String>,

    #[command(flatten)]
    pub repo_options: RepoOptions,

    /// Secondary read-only repos with images used as a cache (repeatable;
    /// $WERF_SECONDARY_REPO_*).
    #[arg(long = "secondary-repo", value_name = "REPO")]
    pub secondary_repo: Vec<String>,

    /// Cache repos, filled when pushing and used first when pulling (repeatable;
    /// $WERF_CACHE_REPO_*).
    #[arg(long = "cache-repo", value_name = "REPO")]
    pub cache_repo: Vec<String>,

    /// Container registry storage address for final images (default $WERF_FINAL_REPO).
    #[arg(long, env = "WERF_FINAL_REPO")]
    pub final_repo: Option<String>,

    #[command(flatten)]
    pub final_repo_options: FinalRepoOptions,

    /// Docker config directory with registry credentials (default $WERF_DOCKER_CONFIG or
    /// $DOCKER_CONFIG or ~/.docker).
    #[arg(long, env = "WERF_DOCKER_CONFIG")]
    pub docker_config: Option<PathBuf>,

    /// Use plain HTTP requests when accessing a registry (default $WERF_INSECURE_REGISTRY).
    /// Applies to every registry.
    #[arg(long, env = "WERF_INSECURE_REGISTRY", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub insecure_registry: bool,

    /// Skip TLS certificate validation when accessing a registry (default
    /// $WERF_SKIP_TLS_VERIFY_REGISTRY). Applies to every registry.
    #[arg(long, env = "WERF_SKIP_TLS_VERIFY_REGISTRY", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub skip_tls_verify_registry: bool,

    /// (Buildah-only) Use specified mirrors for docker.io (repeatable). Not supported by
    /// slipway.
    #[arg(long = "container-registry-mirror", value_name = "MIRROR")]
    pub container_registry_mirror: Vec<String>,

    /// Introspect a specific stage (repeatable). Not supported by slipway.
    #[arg(long = "introspect-stage", value_name = "STAGE")]
    pub introspect_stage: Vec<String>,

    /// Introspect failed stage right after the failed instruction. Not supported by slipway.
    #[arg(long, value_parser = werf_bool, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true")]
    pub introspect_error: bool,

    /// Introspect failed stage before its instructions. Not supported by slipway.
    #[arg(long, value_parser = werf_bool, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true")]
    pub introspect_before_error: bool,

    #[command(flatten)]
    pub log: LogArgs,

    /// Print current project directory path (default $WERF_LOG_PROJECT_DIR).
    #[arg(long, env = "WERF_LOG_PROJECT_DIR", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub log_project_dir: bool,

    /// Address of synchronizer for multiple werf processes (default $WERF_SYNCHRONIZATION).
    /// slipway synchronizes on this host only: just `:local` is accepted.
    #[arg(short = 'S', long, env = "WERF_SYNCHRONIZATION")]
    pub synchronization: Option<String>,

    /// Enable virtual/ephemeral merge commit mode (default $WERF_VIRTUAL_MERGE). Not
    /// supported by slipway.
    #[arg(long, env = "WERF_VIRTUAL_MERGE", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub virtual_merge: bool,

    /// Target platform, OS/ARCH[/VARIANT] (repeatable; default $WERF_PLATFORM or
    /// $DOCKER_DEFAULT_PLATFORM). slipway builds linux/amd64 only.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Vec<String>,

    /// Network mode for the build containers (default $WERF_BACKEND_NETWORK). Not
    /// supported by slipway.
    #[arg(long, env = "WERF_BACKEND_NETWORK")]
    pub backend_network: Option<String>,

    /// Force skipping the imageSpec stage (default $WERF_SKIP_IMAGE_SPEC_STAGE). Not
    /// supported by slipway.
    #[arg(long, hide = true, env = "WERF_SKIP_IMAGE_SPEC_STAGE", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub skip_image_spec_stage: bool,

    /// Enable debug mode for Go templates (default $WERF_DEBUG_TEMPLATES). Not supported
    /// by slipway.
    #[arg(long, env = "WERF_DEBUG_TEMPLATES", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub debug_templates: bool,

    /// Allow use includes latest versions (default $WERF_ALLOW_INCLUDES_UPDATE). Not
    /// supported by slipway.
    #[arg(long, env = "WERF_ALLOW_INCLUDES_UPDATE", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub allow_includes_update: bool,

    /// Set a specific project name. Not supported by slipway yet: set $WERF_PROJECT_NAME,
    /// which slipway reads.
    #[arg(short = 'N', long, hide = true)]
    pub project_name: Option<String>,

    /// No-op, as in werf.
    #[arg(long, value_parser = werf_bool, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true")]
    pub insecure_helm_dependencies: bool,

    /// Run in parallel (default $WERF_PARALLEL or true).
    #[arg(short = 'p', long, env = "WERF_PARALLEL", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "true", default_missing_value = "true")]
    pub parallel: bool,

    /// Parallel tasks limit, -1 for no limit (default $WERF_PARALLEL_TASKS_LIMIT or 5).
    #[arg(long, env = "WERF_PARALLEL_TASKS_LIMIT", default_value_t = 5, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(-1..))]
    pub parallel_tasks_limit: i64,

    /// A registry transfer that moves less than 1 KiB in this many seconds fails
    /// (slipway only).
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

    /// Refuses, with one line naming the flag, every flag whose behaviour slipway lacks.
    pub fn check(&self) -> anyhow::Result<()> {
        self.log.check()?;
        self.repo_options.check()?;
        self.final_repo_options.check()?;
        refuse(&[
            ("--giterminism-config", self.giterminism_config.as_ref().is_some_and(|p| !p.as_os_str().is_empty())),
            ("--container-registry-mirror", !self.container_registry_mirror.is_empty()),
            ("--introspect-stage", !self.introspect_stage.is_empty()),
            ("--introspect-error", self.introspect_error),
            ("--introspect-before-error", self.introspect_before_error),
            ("--virtual-merge", self.virtual_merge),
            ("--backend-network", self.backend_network.as_ref().is_some_and(|n| !n.is_empty())),
            ("--skip-image-spec-stage", self.skip_image_spec_stage),
            ("--debug-templates", self.debug_templates),
            ("--allow-includes-update", self.allow_includes_update),
        ])?;
        // TODO(project.rs): pass the flag to Project::load, which reads WERF_PROJECT_NAME.
        if self.project_name.as_ref().is_some_and(|n| !n.is_empty()) {
            anyhow::bail!("--project-name is not supported by slipway yet: set WERF_PROJECT_NAME instead");
        }
        if let Some(s) = self.synchronization.as_deref().filter(|s| !s.is_empty() && *s != ":local") {
            anyhow::bail!("--synchronization {s:?} is not supported by slipway: only :local (one host)");
        }
        for p in self.platforms() {
            if p != "linux/amd64" {
                anyhow::bail!("--platform {p} is not supported by slipway: it builds linux/amd64 only");
            }
        }
        if let Some(t) = &self.tmp_dir
            && !t.as_os_str().is_empty()
            && !t.is_dir()
        {
            anyhow::bail!("--tmp-dir {}: not a directory", t.display());
        }
        Ok(())
    }

    /// Where the project is read from: `--dev`, `--dev-ignore` and `WERF_DEV_IGNORE_*`
    /// (werf's `GetDevIgnore`), `--loose-giterminism`.
    pub fn source_mode(&self) -> crate::project::SourceMode {
        crate::project::SourceMode {
            dev: self.dev,
            dev_ignore: with_env_list(&self.dev_ignore, "WERF_DEV_IGNORE_"),
            loose: self.loose_giterminism,
            templates_dir: self.config_templates_dir.clone(),
            render_path: self.config_render_path.clone(),
            host: std::env::vars_os().collect(),
        }
    }

    /// `--platform`, else `WERF_PLATFORM`, else `DOCKER_DEFAULT_PLATFORM` (werf's order).
    pub fn platforms(&self) -> Vec<String> {
        if !self.platform.is_empty() {
            return self.platform.clone();
        }
        ["WERF_PLATFORM", "DOCKER_DEFAULT_PLATFORM"]
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
            .into_iter()
            .collect()
    }

    /// `--docker-config`, else `WERF_DOCKER_CONFIG` (clap), else `DOCKER_CONFIG`.
    pub fn docker_config(&self) -> Option<PathBuf> {
        self.docker_config
            .clone()
            .or_else(|| std::env::var_os("DOCKER_CONFIG").map(PathBuf::from))
            .filter(|p| !p.as_os_str().is_empty())
    }

    /// The store root from `--home-dir` (`HOME_DIR/slipway`) when `--storage-root` is not
    /// given.
    pub fn storage_root(&self, storage_root: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
        match (storage_root, &self.home_dir) {
            (None, Some(h)) if !h.as_os_str().is_empty() => Ok(h.join("slipway")),
            _ => crate::cli::storage_root(storage_root),
        }
    }

    /// Refuses a `--git-work-tree` that is not the work tree of the loaded project, and
    /// prints the project dir with `--log-project-dir`.
    pub fn check_project(&self, project: &crate::project::Project, log_to_stderr: bool) -> anyhow::Result<()> {
        let dir = self.dir()?;
        if let Some(wt) = self.git_work_tree.as_ref().filter(|p| !p.as_os_str().is_empty()) {
            let wt_abs =
                std::fs::canonicalize(wt).map_err(|e| anyhow::anyhow!("--git-work-tree {}: {e}", wt.display()))?;
            if wt_abs != project.repo.workdir() {
                anyhow::bail!(
                    "--git-work-tree {} is not the work tree of --dir ({}): slipway takes the work tree from the project directory",
                    wt.display(),
                    project.repo.workdir().display()
                );
            }
        }
        if self.log_project_dir {
            let abs = std::fs::canonicalize(&dir).unwrap_or(dir);
            // `run`'s stdout belongs to the image: its log goes to stderr.
            let line = format!("Using project dir: {}", abs.display());
            if log_to_stderr { eprintln!("{line}") } else { println!("{line}") }
        }
        Ok(())
    }

    /// The settings of a command, read here once: these flags and the environment (the
    /// backend variables, and a snapshot of the rest for what a build reads from the host).
    pub fn settings(&self) -> anyhow::Result<crate::engine::BuildSettings> {
        let all = || vec!["*".to_string()];
        let backend = crate::engine::Backend::from_env(std::env::vars_os().collect())?;
        Ok(crate::engine::BuildSettings {
            insecure_registries: if self.insecure_registry { all() } else { Vec::new() },
            skip_tls_verify_registries: if self.skip_tls_verify_registry { all() } else { Vec::new() },
            docker_config: self.docker_config(),
            repo: self.repo.clone().filter(|r| !r.is_empty()),
            secondary_repos: with_env_list(&self.secondary_repo, "WERF_SECONDARY_REPO_"),
            cache_repos: with_env_list(&self.cache_repo, "WERF_CACHE_REPO_"),
            final_repo: self.final_repo.clone().filter(|r| !r.is_empty()),
            publish_grace: std::time::Duration::from_millis(
                std::env::var("SLIPWAY_PUBLISH_GRACE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000),
            ),
            lock_dir: match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
                Some(d) => PathBuf::from(d).join("slipway/locks"),
                None => std::env::temp_dir().join(format!("slipway-{}/locks", nix::unistd::getuid())),
            },
            require_built: false,
            parallel: match (self.parallel, self.parallel_tasks_limit) {
                (false, _) => 1,
                (true, -1) => usize::MAX,
                (true, n) => (n as usize).max(1),
            },
            registry_progress: slipway_storage::registry::ProgressDeadline::from_secs(self.registry_progress_timeout),
            backend,
            ssh: crate::engine::ssh_agent::Choice::Werf(with_env_list(&self.ssh_key, "WERF_SSH_KEY_")),
        })
    }
}

/// Flag values plus werf's list-style environment: every `PREFIX*` variable is one value.
pub fn with_env_list(flags: &[String], prefix: &str) -> Vec<String> {
    let mut env: Vec<(String, String)> =
        std::env::vars().filter(|(k, v)| k.starts_with(prefix) && !v.is_empty()).collect();
    env.sort();
    flags.iter().cloned().chain(env.into_iter().map(|(_, v)| v)).collect()
}
