//! Reading a commit's trees: recursive listings of a subdirectory (the Dockerfile
//! context, a Stapel `git.add`) and single files such as werf.yaml.

use gix::objs::tree::EntryKind as GixKind;

use super::{GitError, Repo, clean_rel_path};

/// How many symlinks [`Repo::read_file`] follows before calling it a loop (Linux's limit).
const MAX_SYMLINK_HOPS: usize = 40;

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
            .list(&commit_id, &tree)?
            .into_iter()
            .map(|(path, kind, oid)| TreeEntry { path, kind, oid: oid.to_string() })
            .collect();
        entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    /// Every non-directory entry under `tree`, recursively, with paths relative to it
    /// (unsorted). `commit_id` is only for error messages.
    pub(super) fn list(
        &self,
        commit_id: &str,
        tree: &gix::Tree<'_>,
    ) -> Result<Vec<(String, EntryKind, gix::ObjectId)>, GitError> {
        let mut recorder = gix::traverse::tree::Recorder::default();
        tree.traverse().breadthfirst(&mut recorder).map_err(|source| GitError::Object {
            what: "tree",
            id: tree.id.to_string(),
            source,
        })?;
        let mut entries = Vec::with_capacity(recorder.records.len());
        for record in recorder.records {
            let Some(kind) = EntryKind::from_gix(record.mode.kind()) else {
                continue;
            };
            let path = String::from_utf8(record.filepath.into()).map_err(|e| GitError::NonUtf8Path {
                commit: commit_id.to_string(),
                path: String::from_utf8_lossy(e.as_bytes()).into_owned(),
            })?;
            entries.push((path, kind, record.oid));
        }
        Ok(entries)
    }

    /// Content of the file at `path` (relative to the repository root) in commit `rev`,
    /// or `None` if there is no such file. Symlinks are followed inside the commit's tree,
    /// as a checkout would; one pointing outside the repository is an error, as is a
    /// directory or a submodule at `path`.
    pub fn read_file(&self, rev: &str, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let commit = self.resolve_commit(rev)?;
        let commit_id = commit.id.to_string();
        let not_a_file = || GitError::NotAFile { commit: commit_id.clone(), path: path.to_string() };
        let root = self.commit_tree(&commit)?;
        let mut parts: Vec<String> = clean_rel_path(path)?.into_iter().map(str::to_string).collect();
        if parts.is_empty() {
            return Err(not_a_file());
        }
        let mut hops = 0;
        'restart: loop {
            let mut tree = root.clone();
            for i in 0..parts.len() {
                let last = i + 1 == parts.len();
                let Some((kind, oid)) = tree.find_entry(parts[i].as_str()).map(|e| (e.kind(), e.object_id())) else {
                    return Ok(None);
                };
                match kind {
                    GixKind::Tree if last => return Err(not_a_file()),
                    GixKind::Tree => {
                        tree = self.inner.find_tree(oid).map_err(|source| GitError::Object {
                            what: "tree",
                            id: oid.to_string(),
                            source,
                        })?;
                    }
                    GixKind::Blob | GixKind::BlobExecutable if last => {
                        return self.blob(&oid.to_string()).map(Some);
                    }
                    GixKind::Blob | GixKind::BlobExecutable => return Ok(None),
                    GixKind::Commit if last => return Err(not_a_file()),
                    GixKind::Commit => return Ok(None),
                    GixKind::Link => {
                        hops += 1;
                        if hops > MAX_SYMLINK_HOPS {
                            return Err(GitError::SymlinkLoop { commit: commit_id, path: path.to_string() });
                        }
                        let target = self.blob(&oid.to_string())?;
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
        let root = self.commit_tree(commit)?;
        let parts = clean_rel_path(subdir)?;
        if parts.is_empty() {
            return Ok(Some(root));
        }
        let entry = root.lookup_entry(parts).map_err(|source| GitError::Object {
            what: "tree",
            id: root.id.to_string(),
            source,
        })?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        if !entry.mode().is_tree() {
            return Err(GitError::NotADirectory { commit: commit.id.to_string(), path: subdir.to_string() });
        }
        let tree = self.inner.find_tree(entry.object_id()).map_err(|source| GitError::Object {
            what: "tree",
            id: entry.object_id().to_string(),
            source,
        })?;
        Ok(Some(tree))
    }

    fn commit_tree<'r>(&'r self, commit: &gix::Commit<'r>) -> Result<gix::Tree<'r>, GitError> {
        commit.tree().map_err(|source| GitError::Object { what: "commit", id: commit.id.to_string(), source })
    }
}
