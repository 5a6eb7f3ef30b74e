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
