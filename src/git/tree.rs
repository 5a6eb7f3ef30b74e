//! Reading a commit's trees: recursive listings of a subdirectory (the Dockerfile
//! context, a Stapel `git.add`) and single files such as werf.yaml.

use gix::bstr::BStr;
use gix::objs::tree::EntryKind as GixKind;

use super::{GitError, Repo, clean_rel_path};

/// How many symlinks [`Repo::read_file`] follows before calling it a loop (Linux's limit).
pub(super) const MAX_SYMLINK_HOPS: usize = 40;

/// The largest file [`Repo::read_file`] reads into memory (werf.yaml, a Dockerfile,
/// .dockerignore, werf-giterminism.yaml): 16 MiB. Trees on the way are held to it too.
pub const MAX_READ_FILE: u64 = 16 * 1024 * 1024;

/// The longest symlink target [`Repo::read_file`] follows: Linux's `PATH_MAX`.
const MAX_SYMLINK_TARGET: u64 = 4096;

/// How deep directories may nest in a listed tree. Git has no limit of its own, but a
/// checkout of anything deeper would fail on most systems (`PATH_MAX` is 4096 bytes).
pub const MAX_TREE_DEPTH: usize = 4096;

/// Refuses a tree entry name that git itself would refuse to check out (git's
/// `verify_path` with its Linux defaults, `core.protectNTFS=true`, `core.protectHFS=false`):
/// empty, `.`, `..`, containing `/` or NUL, `.git` in any case (and its NTFS aliases such
/// as `git~1` or `.git::$INDEX_ALLOCATION`), or a symlink named `.gitmodules`. `path` is the
/// entry's repository path, for the message.
pub(super) fn check_name(commit_id: &str, path: &[u8], name: &BStr, kind: GixKind) -> Result<(), GitError> {
    use gix::validate::path::component;
    let invalid = |reason: String| GitError::InvalidTreeEntry {
        commit: commit_id.to_string(),
        path: String::from_utf8_lossy(path).into_owned(),
        reason,
    };
    if name.contains(&0) {
        return Err(invalid("it contains a NUL byte".into()));
    }
    let mode = (kind == GixKind::Link).then_some(component::Mode::Symlink);
    let options = component::Options { protect_windows: false, protect_hfs: false, protect_ntfs: true };
    gix::validate::path::component(name, mode, options).map_err(|e| invalid(e.to_string()))?;
    Ok(())
}

/// `dir/name` (or `name` at the root) as bytes: names are checked before they must be UTF-8.
fn join_bytes(dir: &str, name: &[u8]) -> Vec<u8> {
    let mut out = dir.as_bytes().to_vec();
    if !dir.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

fn join(dir: &str, rel: &str) -> String {
    if dir.is_empty() { rel.to_string() } else { format!("{dir}/{rel}") }
}

/// One non-directory entry of a recursive tree listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// Path relative to the listed directory, `/`-separated.
    pub path: String,
    pub kind: EntryKind,
    /// Hex id of the blob (file content or symlink target), or of the submodule's commit.
    pub oid: String,
}

/// What a tree entry is, as far as a build context cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// Regular file, mode 0644.
    File,
    /// Regular file, mode 0755.
    Executable,
    /// Symbolic link; its blob is the target.
    Symlink,
    /// A submodule (gitlink): only the commit id is known, its files are not listed.
    Submodule,
}

impl EntryKind {
    /// The kind of a gix tree entry, or `None` for a directory.
    pub(super) fn from_gix(kind: GixKind) -> Option<EntryKind> {
        match kind {
            GixKind::Tree => None,
            GixKind::Blob => Some(EntryKind::File),
            GixKind::BlobExecutable => Some(EntryKind::Executable),
            GixKind::Link => Some(EntryKind::Symlink),
            GixKind::Commit => Some(EntryKind::Submodule),
        }
    }
}

impl Repo {
    /// Every non-directory entry under `subdir` (relative to the repository root, `""`
    /// for all of it) in commit `rev`, with paths relative to `subdir`, sorted bytewise.
    /// Fails, naming `subdir`, if it is missing from the commit or not a directory.
    pub fn tree(&self, rev: &str, subdir: &str) -> Result<Vec<TreeEntry>, GitError> {
        let commit = self.resolve_commit(rev)?;
        let commit_id = commit.id.to_string();
        let Some(tree) = self.subtree(&commit, subdir)? else {
            return Err(GitError::PathNotFound { commit: commit_id, path: subdir.to_string() });
        };
        let mut entries: Vec<TreeEntry> = self
            .list(&commit_id, &clean_rel_path(subdir)?.join("/"), &tree)?
            .into_iter()
            .map(|(path, kind, oid)| TreeEntry { path, kind, oid: oid.to_string() })
            .collect();
        entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    /// Every non-directory entry under `tree`, recursively, with paths relative to it
    /// (unsorted). `commit_id` and `base` (the repository path of `tree`, `""` for the
    /// root) are only for error messages.
    ///
    /// Every entry name is checked as git checks it before a checkout ([`check_name`]),
    /// and directories nest at most [`MAX_TREE_DEPTH`] deep. The walk keeps its own stack
    /// instead of recursing, so a deep tree cannot exhaust the thread's stack.
    pub(super) fn list(
        &self,
        commit_id: &str,
        base: &str,
        tree: &gix::Tree<'_>,
    ) -> Result<Vec<(String, EntryKind, gix::ObjectId)>, GitError> {
        let mut entries = Vec::new();
        // (tree id, its path relative to `tree`, how deep it is below `tree`)
        let mut pending = vec![(tree.id, String::new(), 0usize)];
        while let Some((id, dir, depth)) = pending.pop() {
            let tree = self.find_tree(id)?;
            for entry in tree.iter() {
                let entry = entry.map_err(|source| GitError::Object { what: "tree", id: id.to_string(), source })?;
                let name = entry.filename();
                let rel = join_bytes(&dir, name);
                check_name(commit_id, &join_bytes(base, &rel), name, entry.mode().kind())?;
                let path = String::from_utf8(rel).map_err(|e| GitError::NonUtf8Path {
                    commit: commit_id.to_string(),
                    path: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                })?;
                match EntryKind::from_gix(entry.mode().kind()) {
                    Some(kind) => entries.push((path, kind, entry.object_id())),
                    None if depth + 1 > MAX_TREE_DEPTH => {
                        return Err(GitError::TreeTooDeep {
                            commit: commit_id.to_string(),
                            path: join(base, &path),
                            limit: MAX_TREE_DEPTH,
                        });
                    }
                    None => pending.push((entry.object_id(), path, depth + 1)),
                }
            }
        }
        Ok(entries)
    }

    /// Checks the names of all entries of `tree` (at repository path `dir`).
    fn check_tree(&self, commit_id: &str, dir: &str, tree: &gix::Tree<'_>) -> Result<(), GitError> {
        for entry in tree.iter() {
            let entry = entry.map_err(|source| GitError::Object { what: "tree", id: tree.id.to_string(), source })?;
            let name = entry.filename();
            check_name(commit_id, &join_bytes(dir, name), name, entry.mode().kind())?;
        }
        Ok(())
    }

    fn find_tree(&self, id: gix::ObjectId) -> Result<gix::Tree<'_>, GitError> {
        self.inner.find_tree(id).map_err(|source| GitError::Object { what: "tree", id: id.to_string(), source })
    }

    /// The target stored in the symlink blob `oid`; `None` if it is longer than
    /// `PATH_MAX` (checked from the object's header, before reading it).
    pub fn symlink_target(&self, oid: &str) -> Result<Option<Vec<u8>>, GitError> {
        if self.object_size(super::parse_oid(oid)?, "blob")? > MAX_SYMLINK_TARGET {
            return Ok(None);
        }
        self.blob(oid).map(Some)
    }

    /// Size of object `id` from its header, without reading its content.
    fn object_size(&self, id: gix::ObjectId, what: &'static str) -> Result<u64, GitError> {
        let header =
            self.inner.find_header(id).map_err(|source| GitError::Object { what, id: id.to_string(), source })?;
        Ok(header.size())
    }

    /// A blob read whole for [`Repo::read_file`], refused above `limit` bytes.
    pub(super) fn read_bounded(
        &self,
        commit_id: &str,
        path: &str,
        id: gix::ObjectId,
        limit: u64,
    ) -> Result<Vec<u8>, GitError> {
        let size = self.object_size(id, "blob")?;
        if size > limit {
            return Err(GitError::FileTooLarge { commit: commit_id.to_string(), path: path.to_string(), size, limit });
        }
        self.blob(&id.to_string())
    }

    /// Content of the file at `path` (relative to the repository root) in commit `rev`,
    /// or `None` if there is no such file. Symlinks are followed inside the commit's tree,
    /// as a checkout would; one pointing outside the repository is an error, as is a
    /// directory or a submodule at `path`.
    ///
    /// The file is read into memory, so it is refused above [`MAX_READ_FILE`] bytes
    /// ([`GitError::FileTooLarge`]); every tree on the way is checked as [`Repo::tree`]
    /// checks it.
    pub fn read_file(&self, rev: &str, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let commit = self.resolve_commit(rev)?;
        let commit_id = commit.id.to_string();
        let not_a_file = || GitError::NotAFile { commit: commit_id.clone(), path: path.to_string() };
        let root = self.commit_tree(&commit)?;
        let mut parts: Vec<String> = clean_rel_path(path)?.into_iter().map(str::to_string).collect();
        if parts.is_empty() {
            return Err(not_a_file());
        }
        self.check_tree(&commit_id, "", &root)?;
        let mut hops = 0;
        'restart: loop {
            let mut tree = root.clone();
            for i in 0..parts.len() {
                let here = parts[..=i].join("/");
                let last = i + 1 == parts.len();
                let Some((kind, oid)) = tree.find_entry(parts[i].as_str()).map(|e| (e.kind(), e.object_id())) else {
                    return Ok(None);
                };
                match kind {
                    GixKind::Tree if last => return Err(not_a_file()),
                    GixKind::Tree => {
                        let size = self.object_size(oid, "tree")?;
                        if size > MAX_READ_FILE {
                            return Err(GitError::FileTooLarge {
                                commit: commit_id,
                                path: here,
                                size,
                                limit: MAX_READ_FILE,
                            });
                        }
                        tree = self.find_tree(oid)?;
                        self.check_tree(&commit_id, &here, &tree)?;
                    }
                    GixKind::Blob | GixKind::BlobExecutable if last => {
                        return self.read_bounded(&commit_id, &here, oid, MAX_READ_FILE).map(Some);
                    }
                    GixKind::Blob | GixKind::BlobExecutable => return Ok(None),
                    GixKind::Commit if last => return Err(not_a_file()),
                    GixKind::Commit => return Ok(None),
                    GixKind::Link => {
                        hops += 1;
                        if hops > MAX_SYMLINK_HOPS {
                            return Err(GitError::SymlinkLoop { commit: commit_id, path: path.to_string() });
                        }
                        let target = self.read_bounded(&commit_id, &here, oid, MAX_SYMLINK_TARGET)?;
                        let target = String::from_utf8(target).map_err(|e| GitError::NonUtf8Path {
                            commit: commit_id.clone(),
                            path: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                        })?;
                        let outside = || GitError::SymlinkOutsideRepo {
                            commit: commit_id.clone(),
                            path: parts[..=i].join("/"),
                            target: target.clone(),
                        };
                        if target.starts_with('/') {
                            return Err(outside());
                        }
                        // The target is relative to the link's directory.
                        let joined = parts[..i]
                            .iter()
                            .map(String::as_str)
                            .chain([target.as_str()])
                            .chain(parts[i + 1..].iter().map(String::as_str))
                            .collect::<Vec<_>>()
                            .join("/");
                        let resolved = clean_rel_path(&joined).map_err(|_| outside())?;
                        if resolved.is_empty() {
                            return Err(not_a_file());
                        }
                        parts = resolved.into_iter().map(str::to_string).collect();
                        continue 'restart;
                    }
                }
            }
            unreachable!("the loop returns or restarts at the last component");
        }
    }

    /// The tree of `subdir` in `commit`, `None` if absent; an error if it is not a tree.
    pub(super) fn subtree<'r>(
        &'r self,
        commit: &gix::Commit<'r>,
        subdir: &str,
    ) -> Result<Option<gix::Tree<'r>>, GitError> {
        let commit_id = commit.id.to_string();
        let mut tree = self.commit_tree(commit)?;
        let parts = clean_rel_path(subdir)?;
        // Every tree on the way is checked, as `read_file` checks them: a commit with a
        // `..` entry next to the context directory is refused as a whole.
        let mut here = String::new();
        for (i, part) in parts.iter().enumerate() {
            self.check_tree(&commit_id, &here, &tree)?;
            let Some((mode, oid)) = tree.find_entry(*part).map(|e| (e.mode(), e.object_id())) else {
                return Ok(None);
            };
            here = join(&here, part);
            if !mode.is_tree() {
                if i + 1 == parts.len() {
                    return Err(GitError::NotADirectory { commit: commit_id, path: subdir.to_string() });
                }
                return Ok(None);
            }
            tree = self.find_tree(oid)?;
        }
        Ok(Some(tree))
    }

    pub(super) fn commit_tree<'r>(&'r self, commit: &gix::Commit<'r>) -> Result<gix::Tree<'r>, GitError> {
        commit.tree().map_err(|source| GitError::Object { what: "commit", id: commit.id.to_string(), source })
    }
}
