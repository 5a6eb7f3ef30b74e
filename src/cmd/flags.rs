//! werf's flag shapes that clap does not give for free, and the flags slipway accepts
//! only to refuse.
//!
//! werf's booleans are cobra bool flags: `--flag` alone is true, `--flag=false` is
//! false, and `--flag false` is *not* a value (the `false` is a positional argument).
//! Their defaults come from `WERF_*` variables, where `1`, `true` and `yes` are true.
//! [`werf_bool`] parses both; every boolean is declared with `require_equals` so that
//! `slipway build --insecure-registry app` builds `app`.

use clap::Args;

/// Parses a werf boolean: Go's `strconv.ParseBool` values, plus `yes`/`no` (werf's
/// environment reading takes `yes`).
pub fn werf_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" | "yes" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" | "no" | "" => Ok(false),
        _ => Err(format!("invalid boolean {s:?} (use true or false)")),
    }
}

/// werf's `--log-*` options (persistent flags in werf).
#[derive(Debug, Args, Clone)]
pub struct LogArgs {
    /// Enable debug (default $WERF_LOG_DEBUG or $WERF_DEBUG): diagnostics at debug level.
    #[arg(long, env = "WERF_LOG_DEBUG", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub log_debug: bool,

    /// Enable verbose output (default $WERF_LOG_VERBOSE or $WERF_VERBOSE): diagnostics at
    /// info level.
    #[arg(long, env = "WERF_LOG_VERBOSE", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub log_verbose: bool,

    /// Disable explanatory output (default $WERF_LOG_QUIET or $WERF_QUIET): no progress
    /// lines, warnings and errors only.
    #[arg(long, env = "WERF_LOG_QUIET", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub log_quiet: bool,

    /// werf's hidden legacy --debug ($WERF_DEBUG), the same as --log-debug.
    #[arg(long, hide = true, env = "WERF_DEBUG", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub debug: bool,

    /// werf's hidden legacy --verbose ($WERF_VERBOSE), the same as --log-verbose.
    #[arg(long, hide = true, env = "WERF_VERBOSE", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub verbose: bool,

    /// werf's hidden legacy --quiet ($WERF_QUIET), the same as --log-quiet.
    #[arg(long, hide = true, env = "WERF_QUIET", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub quiet: bool,

    /// Set log color mode: on, off or auto (whether stderr is a terminal). Default
    /// $WERF_LOG_COLOR_MODE or auto.
    #[arg(long, env = "WERF_LOG_COLOR_MODE", default_value = "auto",
          value_parser = ["auto", "on", "off"])]
    pub log_color_mode: String,

    /// Enable emojis, auto line wrapping and log process border (default $WERF_LOG_PRETTY
    /// or true). slipway's log has none of these, so both values give the same output.
    #[arg(long, env = "WERF_LOG_PRETTY", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "true", default_missing_value = "true")]
    pub log_pretty: bool,

    /// Add time to log entries (default $WERF_LOG_TIME or false). Not supported by slipway.
    #[arg(long, env = "WERF_LOG_TIME", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub log_time: bool,

    /// Log time format (default $WERF_LOG_TIME_FORMAT or RFC3339). Only with --log-time.
    #[arg(long, env = "WERF_LOG_TIME_FORMAT")]
    pub log_time_format: Option<String>,

    /// Set log terminal width (default $WERF_LOG_TERMINAL_WIDTH, else the terminal's or
    /// 140). slipway never wraps lines, so the width changes nothing.
    #[arg(long, env = "WERF_LOG_TERMINAL_WIDTH", default_value_t = -1, allow_negative_numbers = true)]
    pub log_terminal_width: i64,
}

impl LogArgs {
    /// The tracing filter these flags ask for, if any (`--log-level` wins over it).
    pub fn level(&self) -> Option<&'static str> {
        if self.log_debug || self.debug {
            Some("debug")
        } else if self.log_verbose || self.verbose {
            Some("info")
        } else {
            None
        }
    }

    /// `--log-quiet` or its legacy name: progress lines are dropped.
    pub fn quiet(&self) -> bool {
        self.log_quiet || self.quiet
    }

    /// Whether diagnostics are coloured.
    pub fn color(&self) -> bool {
        match self.log_color_mode.as_str() {
            "on" => true,
            "off" => false,
            _ => std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }

    pub fn check(&self) -> anyhow::Result<()> {
        if self.log_time {
            anyhow::bail!("--log-time is not supported by slipway");
        }
        if self.log_time_format.is_some() {
            anyhow::bail!("--log-time-format is not supported by slipway (it has no --log-time)");
        }
        Ok(())
    }
}

/// The first flag of `flags` that is set, as an error naming it.
pub fn refuse(flags: &[(&str, bool)]) -> anyhow::Result<()> {
    match flags.iter().find(|(_, set)| *set) {
        Some((name, _)) => anyhow::bail!("{name} is not supported by slipway"),
        None => Ok(()),
    }
}

/// werf's registry-specific options of a repository flag (`--repo-container-registry`,
/// `--repo-docker-hub-token`, …). slipway treats every registry as a plain OCI
/// distribution registry and reads credentials from auth files only, so `auto` and
/// `default` are accepted and anything else is refused by name.
macro_rules! repo_options {
    ($name:ident, $flag:literal, $cr:literal, $cr_env:literal,
     $($field:ident, $long:literal, $env:literal, $what:literal;)*) => {
        #[derive(Debug, Args, Clone)]
        pub struct $name {
            #[doc = concat!("Choose ", $flag, " container registry implementation (default $", $cr_env,
                " or auto). slipway accepts auto and default only.")]
            #[arg(id = $cr, long = $cr, env = $cr_env)]
            pub container_registry: Option<String>,
            $(
                #[doc = concat!($flag, " ", $what, " (default $", $env, "). Not supported by slipway: use an auth file.")]
                #[arg(id = $long, long = $long, env = $env, hide_env_values = true)]
                pub $field: Option<String>,
            )*
        }

        impl $name {
            pub fn check(&self) -> anyhow::Result<()> {
                if let Some(c) = self.container_registry.as_deref().filter(|c| !matches!(*c, "" | "auto" | "default")) {
                    anyhow::bail!(concat!("--", $cr, " {:?} is not supported by slipway: only auto and default"), c);
                }
                refuse(&[$((concat!("--", $long), self.$field.as_ref().is_some_and(|v| !v.is_empty())),)*])
            }
        }
    };
}

repo_options!(RepoOptions, "repo", "repo-container-registry", "WERF_REPO_CONTAINER_REGISTRY",
    docker_hub_username, "repo-docker-hub-username", "WERF_REPO_DOCKER_HUB_USERNAME", "Docker Hub username";
    docker_hub_password, "repo-docker-hub-password", "WERF_REPO_DOCKER_HUB_PASSWORD", "Docker Hub password";
    docker_hub_token, "repo-docker-hub-token", "WERF_REPO_DOCKER_HUB_TOKEN", "Docker Hub token";
    github_token, "repo-github-token", "WERF_REPO_GITHUB_TOKEN", "GitHub token";
    harbor_username, "repo-harbor-username", "WERF_REPO_HARBOR_USERNAME", "Harbor username";
    harbor_password, "repo-harbor-password", "WERF_REPO_HARBOR_PASSWORD", "Harbor password";
    quay_token, "repo-quay-token", "WERF_REPO_QUAY_TOKEN", "quay.io token";
);

repo_options!(FinalRepoOptions, "final-repo", "final-repo-container-registry", "WERF_FINAL_REPO_CONTAINER_REGISTRY",
    docker_hub_username, "final-repo-docker-hub-username", "WERF_FINAL_REPO_DOCKER_HUB_USERNAME", "Docker Hub username";
    docker_hub_password, "final-repo-docker-hub-password", "WERF_FINAL_REPO_DOCKER_HUB_PASSWORD", "Docker Hub password";
    docker_hub_token, "final-repo-docker-hub-token", "WERF_FINAL_REPO_DOCKER_HUB_TOKEN", "Docker Hub token";
    github_token, "final-repo-github-token", "WERF_FINAL_REPO_GITHUB_TOKEN", "GitHub token";
    harbor_username, "final-repo-harbor-username", "WERF_FINAL_REPO_HARBOR_USERNAME", "Harbor username";
    harbor_password, "final-repo-harbor-password", "WERF_FINAL_REPO_HARBOR_PASSWORD", "Harbor password";
    quay_token, "final-repo-quay-token", "WERF_FINAL_REPO_QUAY_TOKEN", "quay.io token";
);
