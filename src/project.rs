//! The project a command works on: its git repository, the commit, and werf.yaml as
//! committed there (giterminism: the working tree is not what is built), or, as werf's
//! `--dev` and `--loose-giterminism` ask, as the working tree has them ([`SourceMode`]).

use crate::config::{self, WerfConfig};
use crate::config_reader::{ConfigReader, not_in_project_directory};
use crate::git::{CommitInfo, EntryKind, GitError, Repo};
use crate::giterminism::{AllowedVar, GiterminismConfig, HostPaths, path_matcher_matches};
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Where a project is read from: werf's `--dev` (`WERF_DEV`), `--dev-ignore`
/// (`WERF_DEV_IGNORE_*`) and `--loose-giterminism` (`WERF_LOOSE_GITERMINISM`), as the
/// CLI parsed them. The default is werf's: the HEAD commit, giterminism enforced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceMode {
    /// Build werf's dev commit: HEAD plus the working tree (`git::Snapshot`).
    pub dev: bool,
    /// Paths (relative to the repository root) whose working-tree changes dev mode
    /// leaves out, git pathspecs as werf passes them to `git add ':!RULE'`.
    pub dev_ignore: Vec<String>,
    /// werf's loose giterminism: configuration files from the working tree, no
    /// uncommitted-file checks, no allow-lists for env vars, `contextAddFiles` and
    /// secrets. The build context still comes from the commit (or the dev snapshot).
    pub loose: bool,
    /// `--config-templates-dir` (`WERF_CONFIG_TEMPLATES_DIR`) as given, absolute or
    /// relative to the current directory; `None`: `.werf` in the project directory.
    pub templates_dir: Option<PathBuf>,
    /// `--config-render-path`: where the rendered werf.yaml is also written (werf writes it
    /// before parsing, so a config that fails to parse can be read there).
    pub render_path: Option<PathBuf>,
    /// The process environment as the CLI took it: templates' `.Env` and `env`,
    /// `WERF_PROJECT_NAME`, and `HOME` for secret paths.
    pub host: crate::engine::settings::HostEnv,
}

/// werf's includes configuration (`pkg/includes`), refused when present.
const INCLUDES_FILE: &str = "werf-includes.yaml";

pub struct Project {
    pub repo: Repo,
    /// werf.yaml as rendered (what `config render` prints).
    pub rendered: String,
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
    /// What Stapel `mount` may bind: `config.stapel.mount` of `werf-giterminism.yaml`
    /// (werf.yaml's own mounts are checked at load; a base image's inherited mount
    /// labels are checked against it when building), or `None` with loose giterminism.
    pub mount_allow: Option<GiterminismConfig>,
    /// The whole `werf-giterminism.yaml` (the default if there is none): the Dockerfile
    /// front end reads `config.dockerfile.allowUncommitted*` from it.
    pub giterminism: GiterminismConfig,
}

impl Project {
    /// Load the project in `dir`; `config` is `--config` (relative to `dir`).
    pub fn load(dir: &Path, config_flag: Option<&Path>, env_name: &str, mode: &SourceMode) -> anyhow::Result<Project> {
        let dir = dir.canonicalize().with_context(|| format!("opening project directory {}", dir.display()))?;
        let repo = Repo::discover(&dir)?;
        let mut commit = repo.head_commit()?;
        commit.loose = mode.loose;
        if mode.loose {
            // werf's own warning (pkg/giterminism_manager/manager.go).
            eprintln!(
                "Warning: We recommend using werf-giterminism.yaml to loosen giterminism instead of using --loose-giterminism/WERF_LOOSE_GITERMINISM"
            );
        }
        if mode.dev {
            let snapshot = repo.snapshot(&mode.dev_ignore).context("taking the working tree (--dev)")?;
            commit.worktree = Some(Arc::new(snapshot));
        }
        let dir_rel = repo.rel_path(&dir)?;
        let reader = ConfigReader::new(repo.clone(), commit.clone(), dir_rel.clone());
        // werf reads werf-giterminism.yaml first: from the commit, never accepted uncommitted.
        let giterminism = giterminism(&reader)?;
        // werf 2's includes bring werf.yaml, templates and Dockerfiles from other git
        // repositories; building without them would build something else than werf.
        if reader.exists_anywhere(INCLUDES_FILE).map_err(anyhow::Error::msg)? {
            bail!(
                "{INCLUDES_FILE}: werf includes (configuration taken from other git repositories) are not \
                 supported yet; build this project with werf, or copy the included files into it"
            );
        }
        let candidates: Vec<String> = match config_flag {
            Some(c) => vec![join_rel("", &c.to_string_lossy())],
            None => vec!["werf.yaml".into(), "werf.yml".into()],
        };
        let mut found = None;
        for c in &candidates {
            let bytes = reader
                .read(c, &|_| giterminism.config.allow_uncommitted)
                .map_err(|e| anyhow::anyhow!("unable to read werf config: {e}"))?;
            if let Some(bytes) = bytes {
                found = Some((c.clone(), bytes));
                break;
            }
        }
        let Some((file_name, bytes)) = found else {
            // werf names werf.yaml when it looked for both default names.
            let shown = if candidates.len() == 1 { candidates[0].as_str() } else { "werf.yaml" };
            if mode.loose {
                bail!("unable to read werf config: {}", not_in_project_directory(shown));
            }
            bail!(
                "unable to read werf config: the file {shown:?} not found in the project git repository. If the file exists locally, configure werf-giterminism.yaml to allow uncommitted files\n\n{}",
                config::GITERMINISM_TAIL
            );
        };
        let text = String::from_utf8(bytes).with_context(|| format!("{file_name} is not UTF-8"))?;
        // Only what werf-giterminism.yaml allows: werf allows no name by default, `WERF_*`
        // included. Loose giterminism allows every name (werf's inspector/config_go_template.go).
        let mut allowed = Vec::new();
        for s in &giterminism.config.go_template_rendering.allow_env_variables {
            allowed.push(AllowedVar::parse(s)?);
        }
        let allow_env: Option<config::EnvFilter> = match mode.loose {
            true => None,
            false => Some(Arc::new(move |name: &str| allowed.iter().any(|a| a.matches(name)))),
        };
        let files = Arc::new(CommitFiles::new(reader, &giterminism));
        let input = config::TemplateInput {
            vars: mode.host.utf8_vars(),
            allow_env,
            env: env_name.to_string(),
            partials: files.partials(&templates_rel(&dir, mode.templates_dir.as_deref())?)?,
            files: Some(files),
            commit: Some(config::CommitData { hash: commit.id.clone(), time_unix: commit.time_unix }),
        };
        let rendered = config::render(&file_name, &text, &input)?;
        if let Some(path) = mode.render_path.as_deref().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::write(path, &rendered)
                .with_context(|| format!("--config-render-path: writing the rendered config to {}", path.display()))?;
        }
        let config = config::parse_rendered(&file_name, &rendered)?;
        let name = match mode.host.var("WERF_PROJECT_NAME").filter(|s| !s.is_empty()) {
            Some(n) => {
                config::validate_project(n).map_err(|e| anyhow::anyhow!("WERF_PROJECT_NAME={n:?}: {e}"))?;
                n.to_string()
            }
            None => config.meta.project.clone(),
        };
        // Secrets are checked here, before anything is built, as werf does at config load.
        let host = HostPaths {
            home: mode.host.var("HOME").unwrap_or_default().to_string(),
            cwd: std::env::current_dir().map(|d| d.to_string_lossy().into_owned()).unwrap_or_default(),
        };
        // Loose giterminism allows every secret (werf's inspector/config_secrets.go).
        if !mode.loose {
            giterminism.check_secrets(&file_name, &config.images, &host)?;
            giterminism.check_mounts(&file_name, &config.images)?;
        }
        let allow_context_add_files = giterminism.config.dockerfile.allow_context_add_files.clone();
        let mount_allow = (!mode.loose).then(|| giterminism.clone());
        Ok(Project { repo, rendered, commit, dir_rel, config, name, allow_context_add_files, mount_allow, giterminism })
    }
}

/// The committed `werf-giterminism.yaml` of the project (the default, allowing nothing,
/// if there is none): what may come from outside the commit — env vars for templates
/// (`config.goTemplateRendering.allowEnvVariables`, plus the `WERF_*` ones werf always
/// allows), working-tree files (`config.dockerfile.allowContextAddFiles`) and build
/// secrets (`config.secrets.*`).
fn giterminism(reader: &ConfigReader) -> anyhow::Result<GiterminismConfig> {
    let name = "werf-giterminism.yaml";
    let rel = join_rel(&reader.dir_rel, name);
    if !reader.exists_anywhere(name).map_err(|e| anyhow::anyhow!("reading {rel}: {e}"))? {
        return Ok(GiterminismConfig::default());
    }
    let bytes =
        reader.read(name, &|_| false).map_err(|e| anyhow::anyhow!("unable to read werf giterminism config: {e}"))?;
    let Some(bytes) = bytes else { return Ok(GiterminismConfig::default()) };
    let text = String::from_utf8(bytes).with_context(|| format!("{rel} is not UTF-8"))?;
    Ok(GiterminismConfig::parse(&rel, &text)?)
}

/// The most bytes of `.werf` partials, or of one `.Files.Glob` result.
const MAX_TEMPLATE_FILES_BYTES: u64 = config::MAX_RENDERED_BYTES as u64;

/// `.Files` and the `.werf` partials, read as werf reads configuration files
/// ([`ConfigReader`]): from the commit's tree (or, in werf's dev mode, its snapshot of the
/// working tree; with loose giterminism, from the working tree as it is), except the
/// paths `werf-giterminism.yaml` accepts uncommitted (`allowUncommittedTemplates` for
/// partials, `goTemplateRendering.allowUncommittedFiles` for `.Files`), which come from
/// the working tree. Paths are relative to the project directory.
pub struct CommitFiles {
    reader: ConfigReader,
    /// `config.goTemplateRendering.allowUncommittedFiles`.
    allow_files: Vec<String>,
    /// `config.allowUncommittedTemplates`.
    allow_templates: Vec<String>,
    /// Files and symlinks of the project directory, relative to it, sorted.
    listing: OnceLock<Result<Vec<String>, String>>,
    /// The same in the working tree as it is (for accepted paths).
    worktree_listing: OnceLock<Result<Vec<String>, String>>,
}

impl CommitFiles {
    pub fn new(reader: ConfigReader, giterminism: &GiterminismConfig) -> CommitFiles {
        CommitFiles {
            reader,
            allow_files: giterminism.config.go_template_rendering.allow_uncommitted_files.clone(),
            allow_templates: giterminism.config.allow_uncommitted_templates.clone(),
            listing: OnceLock::new(),
            worktree_listing: OnceLock::new(),
        }
    }

    /// `path` relative to the repository root, refused if it leaves the project.
    fn resolve(&self, path: &str) -> Result<String, String> {
        if path.starts_with('/') {
            return Err(format!("the path {path:?} must be relative to the project directory"));
        }
        let mut depth = 0i64;
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => depth -= 1,
                _ => depth += 1,
            }
            if depth < 0 {
                return Err(format!("the path {path:?} is outside the project directory"));
            }
        }
        Ok(join_rel(&self.reader.dir_rel, path))
    }

    /// Every file and symlink of the project directory in the commit (submodules left
    /// out), or, with loose giterminism, in the working tree as it is, ignored files
    /// included (werf's `ListFilesWithGlob` walks the filesystem).
    fn listing(&self) -> Result<&[String], String> {
        let listing = self.listing.get_or_init(|| {
            if self.reader.commit.loose {
                return self.worktree_listing().map(<[String]>::to_vec);
            }
            let repo = self.reader.repo();
            let (commit, dir_rel) = (&self.reader.commit, &self.reader.dir_rel);
            let entries = match repo.read_at(commit, dir_rel) {
                Ok(_) if !dir_rel.is_empty() => Vec::new(),
                _ => repo.tree_at(commit, dir_rel).map_err(|e| format!("{e:#}"))?,
            };
            Ok(entries.into_iter().filter(|e| e.kind != EntryKind::Submodule).map(|e| e.path).collect())
        });
        listing.as_deref().map_err(Clone::clone)
    }

    /// The project directory of the working tree as it is (ignored files included).
    fn worktree_listing(&self) -> Result<&[String], String> {
        let listing = self
            .worktree_listing
            .get_or_init(|| self.reader.repo().worktree_files(&self.reader.dir_rel).map_err(|e| format!("{e:#}")));
        listing.as_deref().map_err(Clone::clone)
    }

    /// Regular files (and symlinks) whose path matches `pattern`, read in path order
    /// (werf's `WalkConfigurationFilesWithGlob`): the commit's, those that differ from it
    /// (refused unless `allow` accepts them) and those in the working tree that `allow`
    /// accepts (read from there).
    fn matching(&self, pattern: &str, allow: &[String]) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        let mut total = 0u64;
        let pattern = pattern.trim_start_matches("./");
        let accepted = |path: &str| path_matcher_matches(allow, path);
        let mut paths: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        for path in self.listing()? {
            if glob_match(pattern, path)? {
                paths.insert(path.clone());
            }
        }
        for path in self.reader.uncommitted()? {
            if glob_match(pattern, path)? {
                paths.insert(path.clone());
            }
        }
        if !allow.is_empty() && !self.reader.commit.loose {
            for path in self.worktree_listing()? {
                if accepted(path) && glob_match(pattern, path)? {
                    paths.insert(path.clone());
                }
            }
        }
        let from_commit: Vec<String> = paths.iter().filter(|p| !accepted(p)).cloned().collect();
        self.reader.check_committed(&from_commit)?;
        for path in &paths {
            let bytes = match self.reader.read(path, &accepted)? {
                Some(bytes) => bytes,
                None if accepted(path) => return Err(not_in_project_directory(path)),
                None => continue,
            };
            total += bytes.len() as u64;
            if total > MAX_TEMPLATE_FILES_BYTES {
                return Err(format!("the files matching {pattern:?} exceed {} MiB", MAX_TEMPLATE_FILES_BYTES >> 20));
            }
            out.insert(path.clone(), String::from_utf8_lossy(&bytes).into_owned());
        }
        Ok(out)
    }

    /// `TEMPLATES/**/*.tmpl` (`templates`: relative to the project directory), each named by
    /// its path inside `templates`, as werf names them.
    pub fn partials(&self, templates: &str) -> anyhow::Result<Vec<(String, String)>> {
        let prefix = if templates.is_empty() { String::new() } else { format!("{templates}/") };
        let files = self.matching(&format!("{prefix}**/*.tmpl"), &self.allow_templates).map_err(|e| {
            anyhow::anyhow!("reading the templates in {}: {e}", if templates.is_empty() { "." } else { templates })
        })?;
        Ok(files.into_iter().map(|(path, text)| (path[prefix.len()..].to_owned(), text)).collect())
    }

    /// Whether `.Files` may read `path` (relative to the project) from the working tree.
    fn file_accepted(&self, path: &str) -> bool {
        path_matcher_matches(&self.allow_files, path)
    }
}

/// The templates directory relative to the project directory `dir`: `.werf`, or
/// `--config-templates-dir` made absolute against the current directory (werf's
/// `GetAbsoluteFilepath`, no symlinks resolved). werf accepts any directory of the work
/// tree; slipway reads templates only inside the project directory and refuses others.
fn templates_rel(dir: &Path, flag: Option<&Path>) -> anyhow::Result<String> {
    let Some(flag) = flag.filter(|f| !f.as_os_str().is_empty()) else { return Ok(".werf".into()) };
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let mut abs = PathBuf::new();
    for c in cwd.join(flag).components() {
        match c {
            std::path::Component::ParentDir => {
                abs.pop();
            }
            std::path::Component::CurDir => {}
            other => abs.push(other),
        }
    }
    let rel = abs.strip_prefix(dir).map_err(|_| {
        anyhow::anyhow!(
            "--config-templates-dir {}: slipway reads configuration templates only inside the project directory {}",
            flag.display(),
            dir.display()
        )
    })?;
    let rel = rel.to_str().with_context(|| format!("--config-templates-dir {}: not UTF-8", flag.display()))?;
    Ok(rel.to_string())
}

impl config::FileSource for CommitFiles {
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        let rel = self.resolve(path)?;
        let path = rel[self.reader.dir_rel.len()..].trim_start_matches('/');
        let accepted = self.file_accepted(path);
        match self.reader.read(path, &|p| self.file_accepted(p))? {
            // werf's FileNotFoundInProjectDirectoryError for a file read from the working tree.
            None if accepted || self.reader.commit.loose => Err(not_in_project_directory(path)),
            found => Ok(found),
        }
    }

    fn glob(&self, pattern: &str) -> Result<BTreeMap<String, String>, String> {
        self.resolve(pattern)?;
        self.matching(pattern, &self.allow_files)
    }

    fn exists(&self, path: &str) -> Result<bool, String> {
        let Ok(rel) = self.resolve(path) else { return Ok(false) };
        let clean = rel[self.reader.dir_rel.len()..].trim_start_matches('/').to_string();
        if self.file_accepted(&clean) && !self.reader.commit.loose {
            // werf's IsFileExist in the working tree: a file or a directory.
            return match self.reader.repo().read_worktree_file(&rel) {
                Ok(Some(_)) | Err(GitError::NotAFile { .. }) => Ok(true),
                _ => Ok(false),
            };
        }
        // As werf: a file that differs from the commit does not exist for templates.
        Ok(self.get(path).unwrap_or(None).is_some() || self.is_dir(path)?)
    }

    fn is_dir(&self, path: &str) -> Result<bool, String> {
        let rel = match self.resolve(path) {
            Ok(rel) => rel,
            Err(_) => return Ok(false),
        };
        let dir = join_rel("", &rel[self.reader.dir_rel.len()..]);
        if dir.is_empty() {
            return Ok(true);
        }
        let below = |p: &String| p.strip_prefix(&dir).is_some_and(|rest| rest.starts_with('/'));
        if self.file_accepted(&dir) && !self.reader.commit.loose {
            return Ok(self.worktree_listing()?.iter().any(below));
        }
        Ok(self.listing()?.iter().any(below))
    }
}

/// A doublestar glob (werf's `.Files.Glob` and template directory walk): `/`-separated
/// segments matched as Go's `filepath.Match`, `**` any number of whole segments.
/// Dynamic programming over (pattern segment, path segment): linear in their product.
pub fn glob_match(pattern: &str, path: &str) -> Result<bool, String> {
    let pat: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let parts: Vec<&str> = path.split('/').collect();
    // ok[j]: pattern[..i] matches parts[..j].
    let mut ok = vec![false; parts.len() + 1];
    ok[0] = true;
    for seg in &pat {
        let mut next = vec![false; parts.len() + 1];
        if *seg == "**" {
            let mut any = false;
            for j in 0..=parts.len() {
                any |= ok[j];
                next[j] = any;
            }
        } else {
            for j in 1..=parts.len() {
                if ok[j - 1] {
                    next[j] = crate::context::glob::matches(seg, parts[j - 1]).map_err(|e| format!("{e:#}"))?;
                }
            }
        }
        ok = next;
    }
    Ok(ok[parts.len()])
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
            // werf has no globs here: `CI_*` is a name.
            ("CI_*", "CI_JOB", false),
            ("CI_*", "CI_*", true),
            // `^A|B$`, as werf builds it.
            ("/A|B/", "Axx", true),
            ("/A|B/", "xxB", true),
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
