//! The project a command works on: its git repository, the commit, and werf.yaml as
//! committed there (giterminism: the working tree is not what is built), or, as werf's
//! `--dev` and `--loose-giterminism` ask, as the working tree has them ([`SourceMode`]).

use crate::config::{self, WerfConfig};
use crate::git::{CommitInfo, EntryKind, GitError, Repo};
use crate::giterminism::{AllowedVar, GiterminismConfig, HostPaths};
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

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
        // Files that differ from HEAD matter only when HEAD is what is read.
        let strict = commit.worktree.is_none() && !commit.loose;
        let dir_rel = repo.rel_path(&dir)?;
        let candidates: Vec<PathBuf> = match config_flag {
            Some(c) => vec![c.to_path_buf()],
            None => vec!["werf.yaml".into(), "werf.yml".into()],
        };
        let mut found = None;
        for c in &candidates {
            let rel = join_rel(&dir_rel, &c.to_string_lossy());
            if let Some(bytes) = repo.read_config(&commit, &rel)? {
                found = Some((rel, c.clone(), bytes));
                break;
            }
        }
        let Some((rel, shown, bytes)) = found else {
            let in_worktree = candidates.iter().find(|c| strict && dir.join(c).is_file());
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
        if strict && repo.file_uncommitted(&rel)? {
            eprintln!("Warning: {file_name} has uncommitted changes; the committed version is used (giterminism)");
        }
        let giterminism = giterminism(&repo, &commit, &dir_rel)?;
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
        let files = Arc::new(CommitFiles::new(repo.clone(), commit.clone(), dir_rel.clone()));
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
        let mount_allow = (!mode.loose).then_some(giterminism);
        Ok(Project { repo, rendered, commit, dir_rel, config, name, allow_context_add_files, mount_allow })
    }
}

/// The committed `werf-giterminism.yaml` of the project (the default, allowing nothing,
/// if there is none): what may come from outside the commit — env vars for templates
/// (`config.goTemplateRendering.allowEnvVariables`, plus the `WERF_*` ones werf always
/// allows), working-tree files (`config.dockerfile.allowContextAddFiles`) and build
/// secrets (`config.secrets.*`).
fn giterminism(repo: &Repo, commit: &CommitInfo, dir_rel: &str) -> anyhow::Result<GiterminismConfig> {
    let rel = join_rel(dir_rel, "werf-giterminism.yaml");
    let Some(bytes) = repo.read_config(commit, &rel)? else { return Ok(GiterminismConfig::default()) };
    let text = String::from_utf8(bytes).with_context(|| format!("{rel} is not UTF-8"))?;
    Ok(GiterminismConfig::parse(&rel, &text)?)
}

/// The most bytes of `.werf` partials, or of one `.Files.Glob` result.
const MAX_TEMPLATE_FILES_BYTES: u64 = config::MAX_RENDERED_BYTES as u64;

/// `.Files` and the `.werf` partials, read from the commit's tree (or, in werf's dev
/// mode, its snapshot of the working tree; with loose giterminism, from the working tree
/// as it is), paths relative to the project directory.
pub struct CommitFiles {
    repo: Mutex<Repo>,
    commit: CommitInfo,
    dir_rel: String,
    /// Files and symlinks of the project directory, relative to it, sorted.
    listing: OnceLock<Result<Vec<String>, String>>,
    /// Working-tree files of the project that differ from the commit (werf refuses to
    /// render with them rather than silently reading another version).
    uncommitted: OnceLock<Result<Vec<String>, String>>,
}

impl CommitFiles {
    pub fn new(repo: Repo, commit: CommitInfo, dir_rel: String) -> CommitFiles {
        CommitFiles { repo: Mutex::new(repo), commit, dir_rel, listing: OnceLock::new(), uncommitted: OnceLock::new() }
    }

    fn uncommitted(&self) -> Result<&[String], String> {
        if self.commit.worktree.is_some() || self.commit.loose {
            return Ok(&[]);
        }
        let list = self
            .uncommitted
            .get_or_init(|| self.repo.lock().expect("repo").uncommitted(&self.dir_rel).map_err(|e| format!("{e:#}")));
        list.as_deref().map_err(Clone::clone)
    }

    /// werf's `UncommittedFilesError`/`UntrackedFilesError` for `paths` (relative to the
    /// project) that differ from the commit, if any do.
    fn check_committed(&self, paths: &[String]) -> Result<(), String> {
        // Dev mode builds the working tree (werf's file_reader/git.go skips the status
        // check); loose giterminism reads the files as they are.
        if self.commit.worktree.is_some() || self.commit.loose {
            return Ok(());
        }
        let uncommitted = self.uncommitted()?;
        let listing = self.listing()?;
        let (mut modified, mut untracked) = (Vec::new(), Vec::new());
        for path in paths.iter().filter(|p| uncommitted.contains(p)) {
            match listing.binary_search(path).is_ok() {
                true => modified.push(path.as_str()),
                false => untracked.push(path.as_str()),
            }
        }
        let message = |kind: &str, list: &[&str]| match list {
            [one] => format!("the {kind}file {one:?} must be committed"),
            many => {
                let kind = if kind.is_empty() { String::new() } else { kind.to_owned() };
                let list: Vec<String> = many.iter().map(|p| format!("{p:?}")).collect();
                format!("the following {kind}files must be committed:\n\n - {}", list.join("\n - "))
            }
        };
        let text = match (untracked.is_empty(), modified.is_empty()) {
            (true, true) => return Ok(()),
            (false, _) => message("untracked ", &untracked),
            (true, false) => message("", &modified),
        };
        Err(format!(
            "{text}\n\nYou may be interested in the development mode (activated by the --dev option), which allows working with project files without doing redundant commits during debugging and development.\n\n{}",
            config::GITERMINISM_TAIL
        ))
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
        Ok(join_rel(&self.dir_rel, path))
    }

    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, GitError> {
        self.repo.lock().expect("repo").read_config(&self.commit, rel)
    }

    /// Every file and symlink of the project directory in the commit (submodules left
    /// out), or, with loose giterminism, in the working tree as it is, ignored files
    /// included (werf's `ListFilesWithGlob` walks the filesystem).
    fn listing(&self) -> Result<&[String], String> {
        let listing = self.listing.get_or_init(|| {
            let repo = self.repo.lock().expect("repo");
            if self.commit.loose {
                return repo.worktree_files(&self.dir_rel).map_err(|e| format!("{e:#}"));
            }
            let entries = match repo.read_at(&self.commit, &self.dir_rel) {
                Ok(_) if !self.dir_rel.is_empty() => Vec::new(),
                _ => repo.tree_at(&self.commit, &self.dir_rel).map_err(|e| format!("{e:#}"))?,
            };
            Ok(entries.into_iter().filter(|e| e.kind != EntryKind::Submodule).map(|e| e.path).collect())
        });
        listing.as_deref().map_err(Clone::clone)
    }

    /// Regular files (and symlinks) whose path matches `pattern`, read in path order.
    fn matching(&self, pattern: &str) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        let mut total = 0u64;
        let listing = self.listing()?;
        let pattern = pattern.trim_start_matches("./");
        let mut paths: Vec<String> = Vec::new();
        for path in listing {
            if glob_match(pattern, path)? {
                paths.push(path.clone());
            }
        }
        for path in self.uncommitted()? {
            if !paths.contains(path) && glob_match(pattern, path)? {
                paths.push(path.clone());
            }
        }
        self.check_committed(&paths)?;
        for path in listing {
            if !paths.contains(path) {
                continue;
            }
            let rel = join_rel(&self.dir_rel, path);
            let Some(bytes) = self.read(&rel).map_err(|e| format!("{e:#}"))? else { continue };
            total += bytes.len() as u64;
            if total > MAX_TEMPLATE_FILES_BYTES {
                return Err(format!("the files matching {pattern:?} exceed {} MiB", MAX_TEMPLATE_FILES_BYTES >> 20));
            }
            out.insert(path.clone(), String::from_utf8_lossy(&bytes).into_owned());
        }
        Ok(out)
    }

    /// `.werf/**/*.tmpl`, each named by its path relative to `.werf` (werf's names).
    /// `TEMPLATES/**/*.tmpl` (`templates`: relative to the project directory), each named by
    /// its path inside `templates`, as werf names them.
    pub fn partials(&self, templates: &str) -> anyhow::Result<Vec<(String, String)>> {
        match self.read(&join_rel(&self.dir_rel, templates)) {
            Err(GitError::NotAFile { .. }) => {}
            _ => return Ok(Vec::new()),
        }
        let prefix = if templates.is_empty() { String::new() } else { format!("{templates}/") };
        let files = self.matching(&format!("{prefix}**/*.tmpl")).map_err(|e| {
            anyhow::anyhow!("reading the templates in {}: {e}", if templates.is_empty() { "." } else { templates })
        })?;
        Ok(files.into_iter().map(|(path, text)| (path[prefix.len()..].to_owned(), text)).collect())
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
        self.check_committed(&[join_rel("", path)])?;
        self.read(&rel).map_err(|e| format!("{e:#}"))
    }

    fn glob(&self, pattern: &str) -> Result<BTreeMap<String, String>, String> {
        self.resolve(pattern)?;
        self.matching(pattern)
    }

    fn exists(&self, path: &str) -> Result<bool, String> {
        // As werf: a file that differs from the commit does not exist for templates.
        Ok(self.get(path).unwrap_or(None).is_some() || self.is_dir(path)?)
    }

    fn is_dir(&self, path: &str) -> Result<bool, String> {
        let rel = match self.resolve(path) {
            Ok(rel) => rel,
            Err(_) => return Ok(false),
        };
        let dir = join_rel("", &rel[self.dir_rel.len()..]);
        if dir.is_empty() {
            return Ok(true);
        }
        Ok(self.listing()?.iter().any(|p| p.strip_prefix(&dir).is_some_and(|rest| rest.starts_with('/'))))
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
