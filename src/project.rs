//! The project a command works on: its git repository, the commit, and werf.yaml as
//! committed there (giterminism: the working tree is not what is built).

use crate::config::{self, WerfConfig};
use crate::git::{CommitInfo, Repo};
use crate::giterminism::{AllowedVar, GiterminismConfig, HostPaths};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

pub struct Project {
    pub repo: Repo,
    pub commit: CommitInfo,
    /// The project directory relative to the repository root ("" for the root).
    pub dir_rel: String,
    pub config: WerfConfig,
    /// The project name (werf.yaml `project`, or `$WERF_PROJECT_NAME`).
    pub name: String,
    /// `config.dockerfile.allowContextAddFiles` of `werf-giterminism.yaml`: paths
    /// (relative to the project directory) that `contextAddFiles` may take from the
    /// working tree.
    pub allow_context_add_files: Vec<String>,
}

impl Project {
    /// Load the project in `dir`; `config` is `--config` (relative to `dir`).
    pub fn load(dir: &Path, config_flag: Option<&Path>, env_name: &str) -> anyhow::Result<Project> {
        let dir = dir.canonicalize().with_context(|| format!("opening project directory {}", dir.display()))?;
        let repo = Repo::discover(&dir)?;
        let commit = repo.head_commit()?;
        let dir_rel = repo.rel_path(&dir)?;
        let candidates: Vec<PathBuf> = match config_flag {
            Some(c) => vec![c.to_path_buf()],
            None => vec!["werf.yaml".into(), "werf.yml".into()],
        };
        let mut found = None;
        for c in &candidates {
            let rel = join_rel(&dir_rel, &c.to_string_lossy());
            if let Some(bytes) = repo.read_file(&commit.id, &rel)? {
                found = Some((rel, c.clone(), bytes));
                break;
            }
        }
        let Some((rel, shown, bytes)) = found else {
            let in_worktree = candidates.iter().find(|c| dir.join(c).is_file());
            match in_worktree {
                Some(c) => bail!(
                    "{} is not in commit {}: slipway reads werf.yaml from the current commit (giterminism); commit it",
                    c.display(),
                    &commit.id[..12]
                ),
                None => bail!("no werf.yaml or werf.yml in {} (use --config to name another file)", dir.display()),
            }
        };
        let file_name = shown.to_string_lossy().into_owned();
        let text = String::from_utf8(bytes).with_context(|| format!("{file_name} is not UTF-8"))?;
        if repo.uncommitted(&dir_rel)?.iter().any(|f| join_rel(&dir_rel, f) == rel) {
            eprintln!("Warning: {file_name} has uncommitted changes; the committed version is used (giterminism)");
        }
        let giterminism = giterminism(&repo, &commit, &dir_rel)?;
        let mut allowed = vec![AllowedVar::parse("WERF_*")?];
        for s in &giterminism.config.go_template_rendering.allow_env_variables {
            allowed.push(AllowedVar::parse(s)?);
        }
        let vars = std::env::vars().filter(|(k, _)| allowed.iter().any(|a| a.matches(k))).collect();
        let config =
            config::parse_template(&file_name, &text, &config::TemplateInput { vars, env: env_name.to_string() })?;
        let name = match std::env::var("WERF_PROJECT_NAME").ok().filter(|s| !s.is_empty()) {
            Some(n) => {
                config::validate_project(&n).map_err(|e| anyhow::anyhow!("WERF_PROJECT_NAME={n:?}: {e}"))?;
                n
            }
            None => config.meta.project.clone(),
        };
        // Secrets are checked here, before anything is built, as werf does at config load.
        let host = HostPaths {
            home: std::env::var("HOME").unwrap_or_default(),
            cwd: std::env::current_dir().map(|d| d.to_string_lossy().into_owned()).unwrap_or_default(),
        };
        giterminism.check_secrets(&file_name, &config.images, &host)?;
        let allow_context_add_files = giterminism.config.dockerfile.allow_context_add_files;
        Ok(Project { repo, commit, dir_rel, config, name, allow_context_add_files })
    }
}

/// The committed `werf-giterminism.yaml` of the project (the default, allowing nothing,
/// if there is none): what may come from outside the commit — env vars for templates
/// (`config.goTemplateRendering.allowEnvVariables`, plus the `WERF_*` ones werf always
/// allows), working-tree files (`config.dockerfile.allowContextAddFiles`) and build
/// secrets (`config.secrets.*`).
fn giterminism(repo: &Repo, commit: &CommitInfo, dir_rel: &str) -> anyhow::Result<GiterminismConfig> {
    let rel = join_rel(dir_rel, "werf-giterminism.yaml");
    let Some(bytes) = repo.read_file(&commit.id, &rel)? else { return Ok(GiterminismConfig::default()) };
    let text = String::from_utf8(bytes).with_context(|| format!("{rel} is not UTF-8"))?;
    Ok(GiterminismConfig::parse(&rel, &text)?)
}

/// Join repository-relative paths ("" is the root); `.` components are dropped.
pub fn join_rel(base: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    for p in rel.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::join_rel;
    use crate::giterminism::AllowedVar;

    #[test]
    fn allowed_env_vars() {
        let cases = [
            ("CI_COMMIT", "CI_COMMIT", true),
            ("CI_*", "CI_JOB", true),
            ("CI_*", "XCI", false),
            ("/^APP_[0-9]+$/", "APP_12", true),
            ("/^APP_[0-9]+$/", "APP_X", false),
            // Anchored at both ends, as werf does.
            ("/APP_[0-9]+/", "MY_APP_1", false),
            ("/APP_[0-9]+/", "APP_1", true),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(AllowedVar::parse(pattern).unwrap().matches(name), want, "{pattern} {name}");
        }
        assert!(AllowedVar::parse("/(/").is_err());
    }

    #[test]
    fn joins() {
        assert_eq!(join_rel("", "werf.yaml"), "werf.yaml");
        assert_eq!(join_rel("app", "./ctx/Dockerfile"), "app/ctx/Dockerfile");
        assert_eq!(join_rel("app/sub", "../x"), "app/x");
        assert_eq!(join_rel("", "."), "");
    }
}
