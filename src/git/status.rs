//! Working-tree files that are not what HEAD says, so the CLI can warn that they are
//! left out of the build context.
//!
//! This compares the working tree with the HEAD *commit* directly, not in git's two
//! steps (HEAD↔index, index↔worktree): a file that is staged and then edited back counts
//! as unchanged, because the build would see the same bytes. The index is used only
//! as git uses it, as a stat cache: a file whose index entry has HEAD's id and whose
//! stat data still match is not re-hashed. Everything else is hashed as a blob.
//!
//! Reported (paths relative to the subdirectory, sorted):
//! - tracked files whose content, executable bit or type (file/symlink) differs;
//! - files absent from HEAD that are staged, or untracked and not ignored
//!   (.gitignore, .git/info/exclude, core.excludesFile);
//! - an untracked nested git repository, once, as `dir/`.
//!
//! Not reported: files deleted from the working tree (the build still has them, from
//! the commit), submodule contents, and ignored untracked files.

use std::collections::BTreeMap;
use std::fs::{self, Metadata};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::bstr::{BStr, ByteSlice};
use gix::index::entry::Mode;

use super::tree::EntryKind;
use super::{GitError, Repo, clean_rel_path};

impl Repo {
    /// The index (an empty one if there is none): git's stat cache and staged files.
    pub(super) fn index(&self) -> Result<gix::worktree::Index, GitError> {
        self.inner.index_or_empty().map_err(|source| GitError::Index { workdir: self.workdir.clone(), source })
    }

    /// Files under `subdir` (repository-relative, `""` for all) that exist in the working
    /// tree but are not in HEAD as they are: modified, staged, or untracked and not
    /// ignored. Paths are relative to `subdir`, sorted; see the module docs for details.
    pub fn uncommitted(&self, subdir: &str) -> Result<Vec<String>, GitError> {
        let subdir = clean_rel_path(subdir)?.join("/");
        let head = self.head_id()?;
        let commit = self.find_commit(head, "HEAD")?;
        let mut committed = BTreeMap::new();
        // A subdir that is a file in HEAD but a directory on disk: nothing under it is
        // committed, so everything is reported.
        if let Ok(Some(tree)) = self.subtree(&commit, &subdir) {
            for (path, kind, oid) in self.list(&head.to_string(), &subdir, &tree)? {
                committed.insert(join(&subdir, &path), (kind, oid));
            }
        }

        let index = self.index()?;
        let mut walker = Walker::new(self, &index, committed)?;
        // An ignored subdir (or one inside an ignored directory) makes everything in it
        // ignored, as for git.
        let mut ignored = false;
        let mut prefix = String::new();
        for part in subdir.split('/').filter(|p| !p.is_empty()) {
            prefix = join(&prefix, part);
            ignored = ignored || walker.excluded(&prefix, true)?;
        }
        walker.walk(&subdir, ignored)?;

        let strip = if subdir.is_empty() { 0 } else { subdir.len() + 1 };
        let mut found: Vec<String> = walker.found.into_iter().map(|path| path[strip..].to_string()).collect();
        found.sort_unstable();
        Ok(found)
    }
}

impl Repo {
    /// Whether the working tree's file at `rel` (repository-relative) is not what HEAD
    /// has there, by the same rules as [`Repo::uncommitted`] but for this one path: no
    /// walk of the whole tree. A path HEAD lacks counts as differing when it exists.
    pub fn file_uncommitted(&self, rel: &str) -> Result<bool, GitError> {
        let rel = clean_rel_path(rel)?.join("/");
        let abs = self.workdir.join(&rel);
        let meta = match fs::symlink_metadata(&abs) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(io_error(abs, source)),
        };
        let Some(entry) = self.entry("HEAD", &rel)? else { return Ok(true) };
        let oid = super::parse_oid(&entry.oid)?;
        let index = self.index()?;
        let walker = Walker::new(self, &index, BTreeMap::new())?;
        walker.differs(&rel, &abs, &meta, entry.kind, oid)
    }
}

pub(super) struct Walker<'a> {
    workdir: &'a Path,
    /// HEAD's entries under the subdirectory, by repository-relative path.
    pub(super) committed: BTreeMap<String, (EntryKind, ObjectId)>,
    pub(super) index: &'a gix::index::State,
    excludes: gix::AttributeStack<'a>,
    stat_options: gix::index::entry::stat::Options,
    /// `core.fileMode`: whether the executable bit on disk means anything.
    pub(super) executable_bit: bool,
    pub(super) hash_kind: gix::hash::Kind,
    /// Repository-relative paths found to differ.
    found: Vec<String>,
}

impl<'a> Walker<'a> {
    /// A walker over the working tree of `repo` comparing it with `committed` (HEAD's
    /// entries), with `index` as git's stat cache and tracked-file list.
    pub(super) fn new(
        repo: &'a Repo,
        index: &'a gix::index::State,
        committed: BTreeMap<String, (EntryKind, ObjectId)>,
    ) -> Result<Walker<'a>, GitError> {
        let workdir = repo.workdir.as_path();
        let inner = &repo.inner;
        let excludes = inner
            .excludes(index, None, gix::worktree::stack::state::ignore::Source::WorktreeThenIdMappingIfNotSkipped)
            .map_err(|source| GitError::Excludes { workdir: workdir.to_path_buf(), source })?;
        let stat_options =
            inner.stat_options().map_err(|source| GitError::Index { workdir: workdir.to_path_buf(), source })?;
        let executable_bit = inner.filesystem_options().map(|caps| caps.executable_bit).unwrap_or(true);
        Ok(Walker {
            workdir,
            committed,
            index,
            excludes,
            stat_options,
            executable_bit,
            hash_kind: inner.object_hash(),
            found: Vec::new(),
        })
    }

    fn walk(&mut self, rel_dir: &str, ignored: bool) -> Result<(), GitError> {
        let abs_dir = self.workdir.join(rel_dir);
        let entries = match fs::read_dir(&abs_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(io_error(abs_dir, source)),
        };
        for entry in entries {
            let entry = entry.map_err(|source| io_error(abs_dir.clone(), source))?;
            let name = entry.file_name();
            if name == ".git" {
                continue;
            }
            let Some(name) = name.to_str() else {
                // Cannot be in a commit we can read (we require UTF-8 paths); ignore
                // rules take UTF-8 here too, so only the parent's status decides.
                if !ignored {
                    self.found.push(join(rel_dir, &name.to_string_lossy()));
                }
                continue;
            };
            let rel = join(rel_dir, name);
            let file_type = entry.file_type().map_err(|source| io_error(entry.path(), source))?;
            if file_type.is_dir() {
                self.visit_dir(rel, &entry.path(), ignored)?;
            } else if file_type.is_file() || file_type.is_symlink() {
                self.visit_file(rel, &entry.path(), ignored)?;
            }
            // Sockets, fifos and devices cannot be committed: not part of any context.
        }
        Ok(())
    }

    fn visit_dir(&mut self, rel: String, abs: &Path, ignored: bool) -> Result<(), GitError> {
        let is_submodule = matches!(self.committed.get(&rel), Some((EntryKind::Submodule, _)))
            || self.index.entry_by_path(bstr(&rel)).is_some_and(|e| e.mode == Mode::COMMIT);
        if is_submodule {
            return Ok(());
        }
        let ignored = ignored || self.excluded(&rel, true)?;
        if !self.tracked_under(&rel) {
            if ignored {
                return Ok(());
            }
            if abs.join(".git").exists() {
                // An untracked repository inside ours: git shows it as one entry.
                self.found.push(format!("{rel}/"));
                return Ok(());
            }
        }
        self.walk(&rel, ignored)
    }

    fn visit_file(&mut self, rel: String, abs: &Path, ignored: bool) -> Result<(), GitError> {
        match self.committed.get(&rel) {
            Some(&(kind, oid)) => {
                let meta = fs::symlink_metadata(abs).map_err(|source| io_error(abs.into(), source))?;
                if self.differs(&rel, abs, &meta, kind, oid)? {
                    self.found.push(rel);
                }
            }
            None => {
                let staged = self.index.entry_by_path(bstr(&rel)).is_some();
                if staged || !(ignored || self.excluded(&rel, false)?) {
                    self.found.push(rel);
                }
            }
        }
        Ok(())
    }

    /// Whether the file at `abs` differs from HEAD's `(kind, oid)`.
    fn differs(
        &self,
        rel: &str,
        abs: &Path,
        meta: &Metadata,
        kind: EntryKind,
        oid: ObjectId,
    ) -> Result<bool, GitError> {
        let on_disk = if meta.file_type().is_symlink() {
            EntryKind::Symlink
        } else if !self.executable_bit {
            // core.fileMode=false: the bit on disk is noise; keep the committed one.
            match kind {
                EntryKind::Executable => EntryKind::Executable,
                _ => EntryKind::File,
            }
        } else if meta.permissions().mode() & 0o100 != 0 {
            EntryKind::Executable
        } else {
            EntryKind::File
        };
        if on_disk != kind {
            return Ok(true);
        }
        let unchanged = gix::index::fs::Metadata::from_path_no_follow(abs)
            .is_ok_and(|meta| self.stat_unchanged(rel, &meta, kind, oid));
        if unchanged {
            return Ok(false);
        }
        Ok(self.hash_file(abs, kind)? != oid)
    }

    /// The index as a stat cache: the entry records HEAD's blob and the file has not been
    /// touched since the index was written (and not within its timestamp's granularity).
    pub(super) fn stat_unchanged(
        &self,
        rel: &str,
        meta: &gix::index::fs::Metadata,
        kind: EntryKind,
        oid: ObjectId,
    ) -> bool {
        let Some(entry) = self.index.entry_by_path(bstr(rel)) else {
            return false;
        };
        let mode = match kind {
            EntryKind::File => Mode::FILE,
            EntryKind::Executable => Mode::FILE_EXECUTABLE,
            EntryKind::Symlink => Mode::SYMLINK,
            EntryKind::Submodule => Mode::COMMIT,
        };
        if entry.id != oid || entry.mode != mode || entry.stat.is_racy(self.index.timestamp(), self.stat_options) {
            return false;
        }
        let Ok(stat) = gix::index::entry::Stat::from_fs(meta) else {
            return false;
        };
        entry.stat.matches(&stat, self.stat_options)
    }

    /// The blob id git would give the file (or the symlink's target), streaming the
    /// content so a large file is never held in memory.
    fn hash_file(&self, abs: &Path, kind: EntryKind) -> Result<ObjectId, GitError> {
        let hash_error = |source| GitError::Hash { path: abs.to_path_buf(), source };
        if kind == EntryKind::Symlink {
            let target = fs::read_link(abs).map_err(|source| io_error(abs.into(), source))?;
            return gix::objs::compute_hash(
                self.hash_kind,
                gix::objs::Kind::Blob,
                target.as_os_str().as_encoded_bytes(),
            )
            .map_err(hash_error);
        }
        let mut file = fs::File::open(abs).map_err(|source| io_error(abs.into(), source))?;
        let len = file.metadata().map_err(|source| io_error(abs.into(), source))?.len();
        // Changed while we read it: certainly not the committed content we can vouch for.
        Ok(super::worktree::hash_stream(self.hash_kind, len, &mut file, None, abs)?
            .unwrap_or(ObjectId::null(self.hash_kind)))
    }

    /// Whether HEAD or the index has anything under directory `rel`.
    pub(super) fn tracked_under(&self, rel: &str) -> bool {
        let prefix = format!("{rel}/");
        let in_head = self.committed.range(prefix.clone()..).next().is_some_and(|(path, _)| path.starts_with(&prefix));
        in_head || self.index.prefixed_entries(bstr(&prefix)).is_some_and(|entries| !entries.is_empty())
    }

    pub(super) fn excluded(&mut self, rel: &str, is_dir: bool) -> Result<bool, GitError> {
        let mode = if is_dir { Mode::DIR } else { Mode::FILE };
        let platform = self
            .excludes
            .at_entry(bstr(rel), Some(mode))
            .map_err(|source| GitError::Excludes { workdir: self.workdir.to_path_buf(), source })?;
        Ok(platform.is_excluded())
    }
}

fn bstr(s: &str) -> &BStr {
    s.as_bytes().as_bstr()
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") }
}

fn io_error(path: PathBuf, source: std::io::Error) -> GitError {
    GitError::Io { path, source }
}
