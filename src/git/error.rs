//! Errors of the git layer: one variant per thing that can go wrong, each naming the
//! directory, path or revision involved, so the CLI can print them as they are.

use std::path::PathBuf;

/// An error reading the git repository that the build context comes from.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("resolving {}", dir.display())]
    ResolveDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{} is not in a git repository: slipway builds from the current commit (giterminism); \
         run `git init` and commit",
        dir.display()
    )]
    NotARepository { dir: PathBuf },

    #[error("opening the git repository containing {}", dir.display())]
    Open {
        dir: PathBuf,
        #[source]
        source: gix::Error,
    },

    #[error(
        "{} is a bare git repository: slipway needs a working tree to find werf.yaml",
        git_dir.display()
    )]
    Bare { git_dir: PathBuf },

    #[error(
        "the git repository at {} has no commits: slipway builds from the current commit \
         (giterminism); commit your files first",
        workdir.display()
    )]
    NoCommits { workdir: PathBuf },

    #[error("reading HEAD of the git repository at {}", workdir.display())]
    Head {
        workdir: PathBuf,
        #[source]
        source: gix::Error,
    },

    #[error("unknown git revision {rev}")]
    UnknownRevision {
        rev: String,
        #[source]
        source: gix::Error,
    },

    #[error("git revision {rev} does not point to a commit")]
    NotACommit { rev: String },

    #[error("invalid git object id {id:?}")]
    BadObjectId {
        id: String,
        #[source]
        source: gix::Error,
    },

    #[error("reading git {what} {id}")]
    Object {
        what: &'static str,
        id: String,
        #[source]
        source: gix::Error,
    },

    #[error("git object {id} is a {found}, not a {expected}")]
    WrongObjectKind { id: String, expected: &'static str, found: String },

    #[error("git object {id} is corrupt: {reason}")]
    CorruptObject { id: String, reason: String },

    #[error("writing the content of git blob {id}")]
    WriteBlob {
        id: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{path:?} does not exist in commit {commit}")]
    PathNotFound { commit: String, path: String },

    #[error("{path:?} in commit {commit} is not a directory")]
    NotADirectory { commit: String, path: String },

    #[error("{path:?} in commit {commit} is not a file")]
    NotAFile { commit: String, path: String },

    #[error("{path:?} in commit {commit} is a symlink pointing outside the repository ({target:?})")]
    SymlinkOutsideRepo { commit: String, path: String, target: String },

    #[error("{path:?} in commit {commit}: too many levels of symbolic links")]
    SymlinkLoop { commit: String, path: String },

    #[error("{path:?} in commit {commit} is not valid utf-8")]
    NonUtf8Path { commit: String, path: String },

    #[error(
        "commit {}: tree entry {path:?} is not a valid path ({reason}; git refuses to check it out)",
        short(commit)
    )]
    InvalidTreeEntry { commit: String, path: String, reason: String },

    #[error("commit {}: {path:?} is nested more than {limit} directories deep", short(commit))]
    TreeTooDeep { commit: String, path: String, limit: usize },

    #[error(
        "{path:?} in commit {} is {size} bytes; slipway reads it into memory and refuses more than {limit}",
        short(commit)
    )]
    FileTooLarge { commit: String, path: String, size: u64, limit: u64 },

    #[error("{path:?} is not a valid path inside the repository (absolute, or leaves it with ..)")]
    BadRelativePath { path: String },

    #[error("{} is outside the git working tree {}", path.display(), workdir.display())]
    OutsideWorktree { path: PathBuf, workdir: PathBuf },

    #[error("{} is not valid utf-8", path.display())]
    NonUtf8FsPath { path: PathBuf },

    #[error("reading {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{path:?} leads outside the working tree through a symlink or `..`: refused (files are only taken from inside it)"
    )]
    WorktreeEscape { path: String },

    #[error("{path:?} changed in the working tree while slipway was reading it: build again")]
    WorktreeChanged { path: String },

    #[error("copying {path:?} from the working tree")]
    WorktreeWrite {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("the working tree holds more than {limit} files")]
    TooManyWorktreeFiles { limit: usize },

    #[error("reading the git index of {}", workdir.display())]
    Index {
        workdir: PathBuf,
        #[source]
        source: gix::Error,
    },

    #[error("loading .gitignore rules of {}", workdir.display())]
    Excludes {
        workdir: PathBuf,
        #[source]
        source: gix::Error,
    },

    #[error("hashing {}", path.display())]
    Hash {
        path: PathBuf,
        #[source]
        source: gix::Error,
    },

    #[error("checking whether {ancestor} is an ancestor of {descendant}")]
    #[allow(dead_code)] // see Repo::is_ancestor
    Ancestry {
        ancestor: String,
        descendant: String,
        #[source]
        source: gix::Error,
    },
}

/// The first 12 hex digits of a commit id, as in `git log --abbrev=12`.
fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
