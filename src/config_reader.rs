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
    /// (relative to the project) that differ from the commit, if any do: untracked ones
    /// first, as werf checks them first.
    pub fn check_committed(&self, paths: &[String]) -> Result<(), String> {
        let uncommitted = self.uncommitted()?;
        let (mut modified, mut untracked) = (Vec::new(), Vec::new());
        for path in paths.iter().filter(|p| uncommitted.contains(p)) {
            let rel = join_rel(&self.dir_rel, path);
            match self.repo().entry(&self.commit.id, &rel).map_err(|e| format!("{e:#}"))? {
                Some(_) => modified.push(path.as_str()),
                None => untracked.push(path.as_str()),
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
    /// does not exist where it is read from: the working tree when `accepted` (or with
    /// loose giterminism), else the commit, refused if it differs from the commit.
    pub fn read(&self, path: &str, accepted: bool) -> Result<Option<Vec<u8>>, String> {
        let rel = join_rel(&self.dir_rel, path);
        if accepted && !self.commit.loose {
            return match self.repo().read_worktree_file(&rel) {
                Err(GitError::NotAFile { .. }) => Ok(None),
                other => other.map_err(|e| format!("{e:#}")),
            };
        }
        self.check_committed(&[path.to_string()])?;
        self.repo().read_config(&self.commit, &rel).map_err(|e| format!("{e:#}"))
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

/// werf's `FileNotFoundInProjectDirectoryError`: an accepted file missing from the working
/// tree.
pub fn not_in_project_directory(path: &str) -> String {
    format!("the file {path:?} not found in the project directory\n\n{GITERMINISM_TAIL}")
}
