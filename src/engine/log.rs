//! Build output for people: werf-like lines, one per stage.

use std::io::Write;

#[derive(Clone)]
pub struct Log {
    /// Progress goes to stderr (e.g. for `slipway run`, whose stdout is the image's).
    to_stderr: bool,
    /// `--log-quiet`: no progress lines (warnings still show).
    quiet: bool,
}

impl Log {
    pub fn new(to_stderr: bool) -> Self {
        Log { to_stderr, quiet: false }
    }

    /// With `quiet`, progress lines are dropped; warnings still go to stderr.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// Whether progress (and so build step output) goes to stderr.
    pub fn to_stderr(&self) -> bool {
        self.to_stderr
    }

    fn line(&self, s: &str) {
        if self.quiet {
            return;
        }
        if self.to_stderr {
            let _ = writeln!(std::io::stderr(), "{s}");
        } else {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{s}");
            let _ = out.flush();
        }
    }

    pub fn image_header(&self, image: &str) {
        self.line(&format!("┌ Building image {image}"));
    }

    pub fn image_footer(&self, image: &str, secs: f64, name: &str) {
        self.line(&format!("└ Building image {image} ({secs:.2}s) → {name}"));
    }

    pub fn stage(&self, image: &str, stage: &str, digest: &str, status: &str) {
        self.line(&format!("│ {image}/{stage:<16} {:<12} {status}", &digest[..12.min(digest.len())]));
    }

    pub fn step_command(&self, text: &str) {
        let first = text.lines().next().unwrap_or("");
        self.line(&format!("│   {first}"));
    }

    pub fn info(&self, s: &str) {
        self.line(&format!("│ {s}"));
    }

    pub fn warn(&self, s: &str) {
        let _ = writeln!(std::io::stderr(), "Warning: {s}");
    }
}
