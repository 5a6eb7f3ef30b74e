//! Read-only access to the git repository a build comes from.
//!
//! slipway, like werf, is *giterminist*: werf.yaml, the Dockerfile and the build context
//! are read from the HEAD commit, never from the working tree. This module owns that
//! view of the repository, on top of `gix` (no network, no writes):
//!
//! - [`Repo::discover`] finds the repository containing a directory and insists on a
//!   working tree and at least one commit;
//! - [`Repo::read_file`], [`Repo::tree`] and [`Repo::blob`] read a commit's content,
//!   [`Repo::copy_blob`] streams a blob to a writer without holding it whole (`stream.rs`);
//! - every tree entry name is checked as git checks it before a checkout, and listings
//!   are bounded in depth (`tree.rs`);
//! - [`Repo::uncommitted`] finds working-tree files that differ from HEAD, so the CLI
//!   can warn that they are *not* in the build context (`status.rs`);
//! - [`Repo::diff`] lists what changed in a directory between two commits (`diff.rs`);
//! - [`Repo::is_ancestor`] answers the history questions of Stapel's git stages;
//! - [`Repo::snapshot`] lists the working tree as werf's `--dev` would commit it, in
//!   memory, with git blob ids; [`Repo::tree_at`], [`Repo::read_at`] and
//!   [`Repo::copy_entry`] read a [`CommitInfo`] whichever it is (a commit or that
//!   snapshot), [`Repo::read_config`] reads configuration files as loose giterminism
//!   asks (`worktree.rs`).
//!
//! Object ids and paths cross this API as strings: ids as 40-char lowercase hex, paths
//! relative, `/`-separated and UTF-8 (a non-UTF-8 name in a commit is an error).
//! Submodules are listed as [`EntryKind::Submodule`] and never entered: werf does not
//! put their content in a Dockerfile context either.
//!
//! [`Repo`] is cheap to clone and `Send` but not `Sync`: give each thread its own clone.

mod diff;
mod error;
mod status;
mod stream;
mod tree;
mod worktree;

#[cfg(test)]
pub(crate) mod tests;

use std::path::{Path, PathBuf};

pub use diff::TreeChange;
pub use error::GitError;
pub use tree::{EntryKind, TreeEntry};
pub use worktree::Snapshot;

use gix::ObjectId;

/// Object cache per repository handle: tree walks and repeated reads of the same trees
/// (a Stapel image and its Dockerfile siblings) hit it instead of re-inflating objects.
const OBJECT_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// The repository a build reads from, with its working tree.
#[derive(Clone)]
pub struct Repo {
    inner: gix::Repository,
    /// Canonical path of the working tree root.
    workdir: PathBuf,
    /// Pack indexes for [`Repo::copy_blob`], opened on first use.
    packs: std::sync::OnceLock<stream::PackIndexes>,
}

/// The commit a build is made from.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// Full hex object id (HEAD's, in dev mode too).
    pub id: String,
    /// Committer time, seconds since the Unix epoch.
    pub time_unix: i64,
    /// werf's dev commit (`--dev`): HEAD plus the working tree, held in memory; read
    /// through [`Repo::tree_at`], [`Repo::read_at`] and [`Repo::copy_entry`].
    pub worktree: Option<std::sync::Arc<Snapshot>>,
    /// werf's loose giterminism (`--loose-giterminism`): configuration files are read
    /// from the working tree as they are ([`Repo::read_config`]).
    pub loose: bool,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo").field("workdir", &self.workdir).finish()
    }
}

impl Repo {
    /// Opens the repository whose working tree contains `dir` (searching upwards, as
    /// `git` does). Fails unless there is a working tree and HEAD points to a commit.
    pub fn discover(dir: &Path) -> Result<Repo, GitError> {
        let dir =
            std::fs::canonicalize(dir).map_err(|source| GitError::ResolveDir { dir: dir.to_path_buf(), source })?;
        let mut inner = gix::discover(&dir).map_err(|source| {
            if source.dominant_class() == Some(gix::error::Class::NotFound) {
                GitError::NotARepository { dir: dir.clone() }
            } else {
                GitError::Open { dir: dir.clone(), source }
            }
        })?;
        inner.object_cache_size_if_unset(OBJECT_CACHE_BYTES);
        let Some(workdir) = inner.workdir() else {
            return Err(GitError::Bare { git_dir: inner.git_dir().to_path_buf() });
        };
        let workdir = std::fs::canonicalize(workdir)
            .map_err(|source| GitError::ResolveDir { dir: workdir.to_path_buf(), source })?;
        let repo = Repo { inner, workdir, packs: Default::default() };
        repo.head_id()?;
        Ok(repo)
    }

    /// Opens the bare repository `git_dir` (a remote `git` mapping's cache, see
    /// `frontend::stapel::remote`), isolated from the user's and the system's git
    /// configuration. Its "working tree" is the git directory itself, which only error
    /// messages name; HEAD need not point to a commit.
    pub fn open_bare(git_dir: &Path) -> Result<Repo, GitError> {
        let mut inner = gix::open_opts(git_dir, gix::open::Options::isolated())
            .map_err(|source| GitError::Open { dir: git_dir.to_path_buf(), source: gix::Error::from_error(source) })?;
        inner.object_cache_size_if_unset(OBJECT_CACHE_BYTES);
        Ok(Repo { inner, workdir: git_dir.to_path_buf(), packs: Default::default() })
    }

    /// Canonical path of the working tree root.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// The commit HEAD points to (a branch or a detached HEAD alike).
    pub fn head_commit(&self) -> Result<CommitInfo, GitError> {
        let id = self.head_id()?;
        let commit = self.find_commit(id, &id.to_string())?;
        let time = commit.time().map_err(|source| GitError::Object { what: "commit", id: id.to_string(), source })?;
        Ok(CommitInfo { id: id.to_string(), time_unix: time.seconds, worktree: None, loose: false })
    }

    /// Path of `dir` relative to the working tree root, `/`-separated, `""` for the root.
    /// Both sides are canonicalized, so symlinked directories (like macOS' `/tmp`) agree.
    pub fn rel_path(&self, dir: &Path) -> Result<String, GitError> {
        let canonical =
            std::fs::canonicalize(dir).map_err(|source| GitError::ResolveDir { dir: dir.to_path_buf(), source })?;
        let rel = canonical
            .strip_prefix(&self.workdir)
            .map_err(|_| GitError::OutsideWorktree { path: dir.to_path_buf(), workdir: self.workdir.clone() })?;
        let mut parts = Vec::new();
        for component in rel.components() {
            let part =
                component.as_os_str().to_str().ok_or_else(|| GitError::NonUtf8FsPath { path: dir.to_path_buf() })?;
            parts.push(part);
        }
        Ok(parts.join("/"))
    }

    /// Content of the blob `oid` (for a symlink entry: its target).
    ///
    /// Reading many blobs through one `Repo` is the efficient path: pack handles and the
    /// object cache live in it.
    pub fn blob(&self, oid: &str) -> Result<Vec<u8>, GitError> {
        let id = parse_oid(oid)?;
        let object = self.inner.find_object(id).map_err(|source| GitError::Object {
            what: "blob",
            id: oid.to_string(),
            source,
        })?;
        if object.kind != gix::objs::Kind::Blob {
            return Err(GitError::WrongObjectKind {
                id: oid.to_string(),
                expected: "blob",
                found: object.kind.to_string(),
            });
        }
        Ok(object.detach().data)
    }

    /// The full id of the commit `rev` names (annotated tags peeled).
    pub fn commit_id(&self, rev: &str) -> Result<String, GitError> {
        Ok(self.resolve_commit(rev)?.id.to_string())
    }

    /// Whether `rev` names a commit this repository has.
    pub fn has_commit(&self, rev: &str) -> bool {
        self.resolve_commit(rev).is_ok()
    }

    /// Whether commit `ancestor` is reachable from commit `descendant` (a commit is its
    /// own ancestor, as with `git merge-base --is-ancestor`). Both may be any revision.
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Result<bool, GitError> {
        let a = self.resolve_commit(ancestor)?.id;
        let d = self.resolve_commit(descendant)?.id;
        if a == d {
            return Ok(true);
        }
        // If `a` is an ancestor of `d`, it is their only best common ancestor, so the
        // merge base is `a` exactly; otherwise the merge base (if any) is something else.
        let base = self.inner.merge_base(a, d).map_err(|source| GitError::Ancestry {
            ancestor: ancestor.to_string(),
            descendant: descendant.to_string(),
            source,
        })?;
        Ok(base.is_some_and(|base| base.detach() == a))
    }

    fn head_id(&self) -> Result<ObjectId, GitError> {
        let head_error = |source| GitError::Head { workdir: self.workdir.clone(), source };
        let mut head = self.inner.head().map_err(head_error)?;
        if head.is_unborn() {
            return Err(GitError::NoCommits { workdir: self.workdir.clone() });
        }
        let commit = head.peel_to_commit().map_err(head_error)?;
        Ok(commit.id)
    }

    /// Resolves `rev` (a full hex id, or anything `git rev-parse` understands) to a
    /// commit, peeling annotated tags.
    fn resolve_commit(&self, rev: &str) -> Result<gix::Commit<'_>, GitError> {
        let id = if rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
            parse_oid(rev)?
        } else {
            self.inner
                .rev_parse_single(rev)
                .map_err(|source| GitError::UnknownRevision { rev: rev.to_string(), source })?
                .detach()
        };
        self.find_commit(id, rev)
    }

    fn find_commit(&self, id: ObjectId, rev: &str) -> Result<gix::Commit<'_>, GitError> {
        let object = self.inner.find_object(id).map_err(|source| GitError::Object {
            what: "commit",
            id: rev.to_string(),
            source,
        })?;
        if !matches!(object.kind, gix::objs::Kind::Commit | gix::objs::Kind::Tag) {
            return Err(GitError::NotACommit { rev: rev.to_string() });
        }
        object.peel_to_commit().map_err(|_| GitError::NotACommit { rev: rev.to_string() })
    }
}

fn parse_oid(hex: &str) -> Result<ObjectId, GitError> {
    ObjectId::from_hex(hex.as_bytes()).map_err(|source| GitError::BadObjectId { id: hex.to_string(), source })
}

/// Splits a repository-relative path into its components, dropping empty and `.` parts
/// and applying `..`; fails on an absolute path or one that climbs above the root.
fn clean_rel_path(path: &str) -> Result<Vec<&str>, GitError> {
    if path.starts_with('/') {
        return Err(GitError::BadRelativePath { path: path.to_string() });
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(GitError::BadRelativePath { path: path.to_string() });
                }
            }
            part => parts.push(part),
        }
    }
    Ok(parts)
}
