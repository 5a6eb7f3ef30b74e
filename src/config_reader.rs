//! werf's configuration-file reader (`giterminism_manager/file_reader`,
//! `ReadAndCheckConfigurationFile`): werf.yaml, `werf-giterminism.yaml`, `.werf`
//! partials, `.Files`, the Dockerfile and `.dockerignore`.
//!
//! A file the giterminism config accepts (`config.allowUncommitted`,
//! `allowUncommittedTemplates`, `goTemplateRendering.allowUncommittedFiles`,
//! `dockerfile.allowUncommitted`, `dockerfile.allowUncommittedDockerignoreFiles`; every
//! file with loose giterminism) is read from the working tree, resolved beneath the
//! repository root (`Repo::read_worktree_file`: a symlink leading out is refused). Any
//! other file comes from the commit (or the dev snapshot), and one that differs from the
//! commit is refused with werf's "must be committed" messages, unless in dev mode.

use crate::config::GITERMINISM_TAIL;
use crate::git::{CommitInfo, GitError, Repo};
use crate::project::join_rel;
use std::sync::{Mutex, MutexGuard, OnceLock};

pub struct ConfigReader {
    repo: Mutex<Repo>,
    pub commit: CommitInfo,
    /// The project directory relative to the repository root ("" for the root).
    pub dir_rel: String,
    /// Working-tree files of the project that differ from the commit, relative to it.
    uncommitted: OnceLock<Result<Vec<String>, String>>,
}

impl ConfigReader {
    pub fn new(repo: Repo, commit: CommitInfo, dir_rel: String) -> ConfigReader {
        ConfigReader { repo: Mutex::new(repo), commit, dir_rel, uncommitted: OnceLock::new() }
    }

    pub fn repo(&self) -> MutexGuard<'_, Repo> {
        self.repo.lock().expect("repo")
    }

    /// Whether files that differ from the commit are refused: not in dev mode (werf's
    /// `file_reader/git.go` skips the status check) and not with loose giterminism.
    pub fn strict(&self) -> bool {
        self.commit.worktree.is_none() && !self.commit.loose
    }

    /// The project's working-tree files that differ from the commit (none unless
    /// [`strict`](Self::strict)).
    pub fn uncommitted(&self) -> Result<&[String], String> {
        if !self.strict() {
            return Ok(&[]);
        }
        let list =
            self.uncommitted.get_or_init(|| self.repo().uncommitted(&self.dir_rel).map_err(|e| format!("{e:#}")));
        list.as_deref().map_err(Clone::clone)
    }

    /// werf's `UntrackedFilesError`/`UncommittedFilesError` for those of `paths`
    /// (relative to the project) that differ from the commit — changed, untracked, or
    /// deleted from the working tree (git status lists all three) — if any do: untracked
    /// ones first, as werf checks them first.
    pub fn check_committed(&self, paths: &[String]) -> Result<(), String> {
        let (mut modified, mut untracked) = (Vec::new(), Vec::new());
        for path in paths {
            let rel = join_rel(&self.dir_rel, path);
            let in_head =
                || self.repo().entry(&self.commit.id, &rel).map(|e| e.is_some()).map_err(|e| format!("{e:#}"));
            // A few files HEAD has (werf.yaml, a Dockerfile) are compared one by one, so a
            // build need not walk a large working tree; anything else takes the walk.
            let changed = match self.uncommitted.get() {
                None if self.strict() && paths.len() <= FEW_PATHS && in_head()? => {
                    self.repo().file_uncommitted(&rel).map_err(|e| format!("{e:#}"))?
                }
                _ => self.uncommitted()?.contains(path),
            };
            if changed {
                match in_head()? {
                    true => modified.push(path.as_str()),
                    false => untracked.push(path.as_str()),
                }
            } else if self.strict() && matches!(self.repo().worktree_link(&rel), Ok(None)) && in_head()? {
                // Deleted from the working tree: git status lists it, so werf refuses it.
                modified.push(path.as_str());
            }
        }
        let message = |kind: &str, list: &[&str]| match list {
            [one] => format!("the {kind}file {one:?} must be committed"),
            many => {
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
            "{text}\n\nYou may be interested in the development mode (activated by the --dev option), which allows working with project files without doing redundant commits during debugging and development.\n\n{GITERMINISM_TAIL}"
        ))
    }

    /// The configuration file `path` (relative to the project, clean), or `None` if it
    /// does not exist where it is read from: the working tree when `accepted` accepts it
    /// (every symlink on the way must lead to a path it accepts too, as in werf), or with
    /// loose giterminism; else the commit, refused if the file differs from it.
    pub fn read(&self, path: &str, accepted: &dyn Fn(&str) -> bool) -> Result<Option<Vec<u8>>, String> {
        let rel = join_rel(&self.dir_rel, path);
        if self.commit.loose || accepted(path) {
            if !self.commit.loose {
                self.check_links(path, accepted)
                    .map_err(|e| format!("accepted file {path:?} check failed: {e}\n\n{GITERMINISM_TAIL}"))?;
            }
            return match self.repo().read_worktree_file(&rel) {
                Err(GitError::NotAFile { .. }) => Ok(None),
                other => other.map_err(|e| format!("{e:#}")),
            };
        }
        self.check_committed(&[path.to_string()])?;
        self.repo().read_config(&self.commit, &rel).map_err(|e| format!("{e:#}"))
    }

    /// werf's `ResolveAndCheckFilePath` over the working tree: each symlink met while
    /// resolving `path` (relative to the project) must stay inside the work tree and lead
    /// to a path (relative to the project, `../` if above it) that `accepted` accepts.
    /// Resolution is lexical over `Repo::worktree_link`, which never follows a link; the
    /// read itself is still beneath the root.
    fn check_links(&self, path: &str, accepted: &dyn Fn(&str) -> bool) -> Result<(), String> {
        let repo = self.repo();
        let workdir = repo.workdir().to_string_lossy().into_owned();
        // Components still to resolve, the next one last.
        let mut pending: Vec<String> = join_rel(&self.dir_rel, path).split('/').rev().map(str::to_string).collect();
        let mut resolved: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    resolved.pop();
                    continue;
                }
                _ => resolved.push(part),
            }
            let Some(link) = repo.worktree_link(&resolved.join("/")).map_err(|e| format!("{e:#}"))? else {
                // Nothing there: reading says so.
                return Ok(());
            };
            let Some(target) = link else { continue };
            hops += 1;
            if hops > MAX_LINK_HOPS {
                return Err("too many levels of symbolic links".to_string());
            }
            resolved.pop();
            let from =
                if target.starts_with('/') { String::new() } else { format!("{workdir}/{}", resolved.join("/")) };
            let abs = lexical_abs(&format!("{from}/{target}"));
            let Some(in_repo) = abs.strip_prefix(&workdir).filter(|r| r.is_empty() || r.starts_with('/')) else {
                return Err(format!("the file {abs:?} not found in the project directory"));
            };
            let in_repo = in_repo.trim_start_matches('/');
            let shown = relative_to(&self.dir_rel, in_repo);
            if !accepted(&shown) {
                return Err(format!("the link target {shown:?} should be also accepted by giterminism config"));
            }
            resolved.clear();
            pending.extend(in_repo.split('/').rev().map(str::to_string));
        }
        Ok(())
    }

    /// werf's `IsConfigurationFileExistAnywhere`: a regular file in the working tree, or
    /// (not loose) a file of the commit.
    pub fn exists_anywhere(&self, path: &str) -> Result<bool, String> {
        let rel = join_rel(&self.dir_rel, path);
        match self.repo().read_worktree_file(&rel) {
            Ok(Some(_)) => return Ok(true),
            Ok(None) | Err(GitError::NotAFile { .. } | GitError::WorktreeEscape { .. }) => {}
            Err(e) => return Err(format!("{e:#}")),
        }
        if self.commit.loose {
            return Ok(false);
        }
        match self.repo().read_at(&self.commit, &rel) {
            Ok(found) => Ok(found.is_some()),
            Err(GitError::NotAFile { .. }) => Ok(false),
            Err(e) => Err(format!("{e:#}")),
        }
    }
}

/// The most symlinks followed while resolving one path (werf's limit is 1000 levels;
/// Linux's own is 40).
const MAX_LINK_HOPS: usize = 40;

/// Up to this many paths HEAD has are checked one by one instead of by a status walk.
const FEW_PATHS: usize = 8;

/// An absolute path with `.`, `..` and repeated `/` resolved lexically (`..` at `/`
/// stays at `/`, as Go's `filepath.Clean`).
fn lexical_abs(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `to` (relative to the repository root) relative to the directory `base` (the same),
/// as Go's `filepath.Rel`: `../` for each level of `base` not shared.
fn relative_to(base: &str, to: &str) -> String {
    let base: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    let to: Vec<&str> = to.split('/').filter(|p| !p.is_empty()).collect();
    let common = base.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out: Vec<&str> = vec![".."; base.len() - common];
    out.extend(&to[common..]);
    if out.is_empty() { ".".to_string() } else { out.join("/") }
}

/// werf's `FileNotFoundInProjectDirectoryError`: an accepted file missing from the working
/// tree.
pub fn not_in_project_directory(path: &str) -> String {
    format!("the file {path:?} not found in the project directory\n\n{GITERMINISM_TAIL}")
}

#[cfg(test)]
mod tests {
    use super::{lexical_abs, relative_to};

    #[test]
    fn paths_as_go_resolves_them() {
        assert_eq!(lexical_abs("/repo/a/../b/./c//d"), "/repo/b/c/d");
        assert_eq!(lexical_abs("/../../x"), "/x");
        assert_eq!(relative_to("", "a/b"), "a/b");
        assert_eq!(relative_to("app", "app/x"), "x");
        assert_eq!(relative_to("app/sub", "app/x"), "../x");
        assert_eq!(relative_to("app", "other/x"), "../other/x");
        assert_eq!(relative_to("app", "app"), ".");
    }
}
