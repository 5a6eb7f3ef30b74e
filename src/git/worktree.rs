//! The working tree as a build source: werf's development mode (`--dev`) and loose
//! giterminism (`--loose-giterminism`).
//!
//! werf's `--dev` commits the working tree to a service branch (`_werf-dev`, by
//! `git --work-tree SRC add :. ':!RULE'…` in a cache worktree,
//! `pkg/true_git/service_branch.go`) and builds that commit. slipway writes nothing into
//! the user's repository: [`Repo::snapshot`] lists the same files in memory, each with
//! the blob id `git hash-object` gives it, so whatever is keyed by blob ids (context
//! checksums, stage digests) is the same as for a commit of that content.
//!
//! What a snapshot holds (the tree of werf's dev commit):
//! - every file HEAD or the index tracks, as it is in the working tree (a deleted file is
//!   gone, a tracked file inside an ignored directory stays);
//! - untracked files git does not ignore (`.gitignore`, `.git/info/exclude`,
//!   `core.excludesFile`);
//! - for a path a `--dev-ignore` rule matches, HEAD's version (nothing if HEAD lacks it),
//!   as werf reverts excluded paths to the source commit;
//! - submodules as HEAD records them; an untracked nested repository is left out.
//!
//! Nothing is read outside the working tree: every directory and file is opened with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` from its root, a symlink is data (its
//! target is its blob, as in a commit), entry names are checked as git checks them
//! ([`check_name`]). Bounds: [`MAX_TREE_DEPTH`] levels, [`MAX_SNAPSHOT_ENTRIES`] entries,
//! [`MAX_READ_FILE`] for a file read whole. A file read again later (the context being
//! written out) is hashed on the way; if it changed since the snapshot, that is an error,
//! never a silently different build.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::objs::tree::EntryKind as GixKind;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{FileStat, Mode};

use super::status::Walker;
use super::tree::{EntryKind, MAX_READ_FILE, MAX_SYMLINK_HOPS, MAX_TREE_DEPTH, TreeEntry, check_name};
use super::{CommitInfo, GitError, Repo, clean_rel_path, parse_oid};

/// The most entries a working-tree snapshot may hold.
pub const MAX_SNAPSHOT_ENTRIES: usize = 1_000_000;

/// What messages say in place of a commit id.
const WORKING_TREE: &str = "working tree";

/// The tree of werf's dev commit, in memory: HEAD plus the working tree.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Every non-directory entry, repository-relative paths, sorted.
    entries: Vec<TreeEntry>,
    /// Blob ids hashed from the working tree (not necessarily in the object database) →
    /// the path, kind and size to read them from.
    from_disk: HashMap<String, (String, EntryKind, u64)>,
}

impl Snapshot {
    fn entry(&self, path: &str) -> Option<&TreeEntry> {
        self.entries.binary_search_by(|e| e.path.as_str().cmp(path)).ok().map(|i| &self.entries[i])
    }

    /// The entries below directory `dir` (not `""`), full paths.
    fn below(&self, dir: &str) -> &[TreeEntry] {
        let prefix = format!("{dir}/");
        let start = self.entries.partition_point(|e| e.path < prefix);
        let len = self.entries[start..].iter().take_while(|e| e.path.starts_with(&prefix)).count();
        &self.entries[start..start + len]
    }
}

/// Whether `path` is in `rule`'s reach, as a git pathspec (werf passes `--dev-ignore`
/// rules to `git add` as `:!RULE`): the path itself, anything below it, or, when the
/// rule has wildcards, a path it matches with `*` crossing `/` (git's `wildmatch`
/// without `WM_PATHNAME`).
pub fn dev_ignore_matches(rule: &str, path: &str) -> bool {
    let rule = rule.trim_start_matches("./").trim_end_matches('/');
    if rule.is_empty() || rule == "." {
        return true;
    }
    if path == rule || path.strip_prefix(rule).is_some_and(|rest| rest.starts_with('/')) {
        return true;
    }
    rule.contains(['*', '?', '[', '\\'])
        && gix::glob::wildmatch(
            rule.as_bytes().as_bstr(),
            path.as_bytes().as_bstr(),
            gix::glob::wildmatch::Mode::empty(),
        )
}

impl Repo {
    /// The tree werf's `--dev` would commit (module docs), held in memory; `dev_ignore`
    /// are werf's `--dev-ignore` rules (paths relative to the repository root).
    pub fn snapshot(&self, dev_ignore: &[String]) -> Result<Snapshot, GitError> {
        let head = self.head_id()?;
        let commit = self.find_commit(head, "HEAD")?;
        let tree = self.commit_tree(&commit)?;
        let committed = self.list(&head.to_string(), "", &tree)?.into_iter().map(|(p, k, o)| (p, (k, o))).collect();
        let index = self.index()?;
        let mut walker = Walker::new(self, &index, committed)?;
        let root = open_root(&self.workdir)?;
        let ruled = |p: &str| dev_ignore.iter().any(|r| dev_ignore_matches(r, p));
        let mut snapshot = Snapshot::default();
        // (directory, whether git ignores it, depth)
        let mut pending = vec![(String::new(), false, 0usize)];
        while let Some((dir, ignored, depth)) = pending.pop() {
            let dir_fd = self.beneath(&root, &dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
            for name in list_names(&dir_fd, &self.workdir.join(&dir))? {
                let name = match name.into_string() {
                    Ok(name) => name,
                    // Git cannot record it in a commit slipway reads; an ignored one is harmless.
                    Err(_) if ignored => continue,
                    Err(name) => return Err(GitError::NonUtf8FsPath { path: self.workdir.join(&dir).join(name) }),
                };
                if name == ".git" {
                    continue;
                }
                let rel = join(&dir, &name);
                let st = nix::sys::stat::fstatat(&dir_fd, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(|e| self.io(&rel, e))?;
                match st.st_mode & libc::S_IFMT {
                    libc::S_IFDIR => {
                        let submodule = matches!(walker.committed.get(&rel), Some((EntryKind::Submodule, _)))
                            || walker
                                .index
                                .entry_by_path(rel.as_bytes().as_bstr())
                                .is_some_and(|e| e.mode == gix::index::entry::Mode::COMMIT);
                        if submodule {
                            continue;
                        }
                        let ignored = ignored || walker.excluded(&rel, true)?;
                        if !walker.tracked_under(&rel) && (ignored || has_git(&dir_fd, &name)) {
                            continue;
                        }
                        check_name(WORKING_TREE, rel.as_bytes(), name.as_bytes().as_bstr(), GixKind::Tree)?;
                        if depth + 1 > MAX_TREE_DEPTH {
                            return Err(GitError::TreeTooDeep {
                                commit: WORKING_TREE.into(),
                                path: rel,
                                limit: MAX_TREE_DEPTH,
                            });
                        }
                        pending.push((rel, ignored, depth + 1));
                    }
                    libc::S_IFREG | libc::S_IFLNK => {
                        let tracked = walker.committed.contains_key(&rel)
                            || walker.index.entry_by_path(rel.as_bytes().as_bstr()).is_some();
                        if (!tracked && (ignored || walker.excluded(&rel, false)?)) || ruled(&rel) {
                            continue;
                        }
                        let gix_kind =
                            if st.st_mode & libc::S_IFMT == libc::S_IFLNK { GixKind::Link } else { GixKind::Blob };
                        check_name(WORKING_TREE, rel.as_bytes(), name.as_bytes().as_bstr(), gix_kind)?;
                        let (kind, oid, hashed) = self.hash_entry(&walker, &dir_fd, &name, &rel, &st)?;
                        if let Some(size) = hashed {
                            snapshot.from_disk.insert(oid.to_string(), (rel.clone(), kind, size));
                        }
                        snapshot.entries.push(TreeEntry { path: rel, kind, oid: oid.to_string() });
                        if snapshot.entries.len() > MAX_SNAPSHOT_ENTRIES {
                            return Err(GitError::TooManyWorktreeFiles { limit: MAX_SNAPSHOT_ENTRIES });
                        }
                    }
                    // Sockets, fifos and devices cannot be committed.
                    _ => {}
                }
            }
        }
        for (path, &(kind, oid)) in &walker.committed {
            if kind == EntryKind::Submodule || ruled(path) {
                snapshot.entries.push(TreeEntry { path: path.clone(), kind, oid: oid.to_string() });
            }
        }
        snapshot.entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        Ok(snapshot)
    }

    /// The kind and blob id of working-tree file `name` in `dir_fd` (repository path
    /// `rel`), and, if it had to be hashed, its size (HEAD's id is taken, unread, when
    /// the index says the file is untouched).
    fn hash_entry(
        &self,
        walker: &Walker<'_>,
        dir_fd: &OwnedFd,
        name: &str,
        rel: &str,
        st: &FileStat,
    ) -> Result<(EntryKind, ObjectId, Option<u64>), GitError> {
        let committed = walker.committed.get(rel).copied();
        let kind = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            EntryKind::Symlink
        } else if !walker.executable_bit {
            // core.fileMode=false: the bit on disk is noise; keep the recorded one.
            match committed {
                Some((EntryKind::Executable, _)) => EntryKind::Executable,
                _ => EntryKind::File,
            }
        } else if st.st_mode & 0o100 != 0 {
            EntryKind::Executable
        } else {
            EntryKind::File
        };
        let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(dir_fd, name, flags, Mode::empty()).map_err(|e| self.io(rel, e))?;
        let file = std::fs::File::from(fd);
        if let Some((committed_kind, oid)) = committed
            && committed_kind == kind
            && gix::index::fs::Metadata::from_file(&file).is_ok_and(|m| walker.stat_unchanged(rel, &m, kind, oid))
        {
            return Ok((kind, oid, None));
        }
        let path = self.workdir.join(rel);
        if kind == EntryKind::Symlink {
            let target = nix::fcntl::readlinkat(&file, "").map_err(|e| self.io(rel, e))?;
            let bytes = target.as_encoded_bytes();
            let oid = gix::objs::compute_hash(walker.hash_kind, gix::objs::Kind::Blob, bytes)
                .map_err(|source| GitError::Hash { path, source })?;
            return Ok((kind, oid, Some(bytes.len() as u64)));
        }
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(dir_fd, name, flags, Mode::empty()).map_err(|e| self.io(rel, e))?;
        let mut data = std::fs::File::from(fd);
        let now = nix::sys::stat::fstat(&data).map_err(|e| self.io(rel, e))?;
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
            return Err(GitError::WorktreeChanged { path: rel.to_string() });
        }
        let len = u64::try_from(now.st_size).unwrap_or(0);
        let oid = hash_stream(walker.hash_kind, len, &mut data, None, &path)?
            .ok_or_else(|| GitError::WorktreeChanged { path: rel.to_string() })?;
        Ok((kind, oid, Some(len)))
    }

    /// Every non-directory entry under `subdir` of `commit` (its tree, or the snapshot
    /// of the working tree in dev mode), paths relative to `subdir`, sorted.
    pub fn tree_at(&self, commit: &CommitInfo, subdir: &str) -> Result<Vec<TreeEntry>, GitError> {
        let Some(snapshot) = &commit.worktree else { return self.tree(&commit.id, subdir) };
        let dir = clean_rel_path(subdir)?.join("/");
        if dir.is_empty() {
            return Ok(snapshot.entries.clone());
        }
        if snapshot.entry(&dir).is_some() {
            return Err(GitError::NotADirectory { commit: WORKING_TREE.into(), path: dir });
        }
        let below: Vec<TreeEntry> = snapshot
            .below(&dir)
            .iter()
            .map(|e| TreeEntry { path: e.path[dir.len() + 1..].to_string(), kind: e.kind, oid: e.oid.clone() })
            .collect();
        if below.is_empty() {
            return Err(GitError::PathNotFound { commit: WORKING_TREE.into(), path: dir });
        }
        Ok(below)
    }

    /// Content of the file at `path` of `commit` (as [`Repo::read_file`]: symlinks
    /// followed inside the tree, at most [`MAX_READ_FILE`] bytes), or `None`.
    pub fn read_at(&self, commit: &CommitInfo, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let Some(snapshot) = &commit.worktree else { return self.read_file(&commit.id, path) };
        let not_a_file = || GitError::NotAFile { commit: WORKING_TREE.into(), path: path.to_string() };
        let mut parts: Vec<String> = clean_rel_path(path)?.into_iter().map(str::to_string).collect();
        if parts.is_empty() {
            return Err(not_a_file());
        }
        let mut hops = 0;
        'restart: loop {
            for i in 0..parts.len() {
                let here = parts[..=i].join("/");
                let last = i + 1 == parts.len();
                let Some(entry) = snapshot.entry(&here) else {
                    if last && !snapshot.below(&here).is_empty() {
                        return Err(not_a_file());
                    }
                    continue;
                };
                match entry.kind {
                    EntryKind::Submodule if last => return Err(not_a_file()),
                    EntryKind::File | EntryKind::Executable if last => {
                        let Some(&(_, _, size)) = snapshot.from_disk.get(&entry.oid) else {
                            let id = parse_oid(&entry.oid)?;
                            return self.read_bounded(WORKING_TREE, &here, id, MAX_READ_FILE).map(Some);
                        };
                        if size > MAX_READ_FILE {
                            let commit = WORKING_TREE.into();
                            return Err(GitError::FileTooLarge { commit, path: here, size, limit: MAX_READ_FILE });
                        }
                        let mut out = Vec::new();
                        self.copy_entry(commit, &entry.oid, &mut out)?;
                        return Ok(Some(out));
                    }
                    EntryKind::File | EntryKind::Executable | EntryKind::Submodule => return Ok(None),
                    EntryKind::Symlink => {
                        hops += 1;
                        if hops > MAX_SYMLINK_HOPS {
                            return Err(GitError::SymlinkLoop { commit: WORKING_TREE.into(), path: path.to_string() });
                        }
                        let target = self.symlink_target_at(commit, &entry.oid)?.unwrap_or_default();
                        let target = String::from_utf8_lossy(&target).into_owned();
                        let outside = || GitError::SymlinkOutsideRepo {
                            commit: WORKING_TREE.into(),
                            path: here.clone(),
                            target: target.clone(),
                        };
                        if target.is_empty() || target.starts_with('/') {
                            return Err(outside());
                        }
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
            return Ok(None);
        }
    }

    /// Writes the content of blob `oid` of `commit` to `out`: from the object database,
    /// or, for a blob hashed from the working tree, from its file (read beneath the
    /// working tree, hashed again on the way: a file changed since the snapshot is an
    /// error). Returns the size.
    pub fn copy_entry(&self, commit: &CommitInfo, oid: &str, out: &mut dyn Write) -> Result<u64, GitError> {
        let Some((rel, kind, _)) = commit.worktree.as_ref().and_then(|s| s.from_disk.get(oid)) else {
            return self.copy_blob(oid, out);
        };
        let want = parse_oid(oid)?;
        let root = open_root(&self.workdir)?;
        let changed = || GitError::WorktreeChanged { path: rel.clone() };
        let write_err = |source| GitError::WorktreeWrite { path: rel.clone(), source };
        if *kind == EntryKind::Symlink {
            let fd = self.beneath(&root, rel, OFlag::O_PATH | OFlag::O_NOFOLLOW)?;
            let target = nix::fcntl::readlinkat(&fd, "").map_err(|_| changed())?;
            let bytes = target.as_encoded_bytes();
            let got = gix::objs::compute_hash(want.kind(), gix::objs::Kind::Blob, bytes)
                .map_err(|source| GitError::Hash { path: self.workdir.join(rel), source })?;
            if got != want {
                return Err(changed());
            }
            out.write_all(bytes).map_err(write_err)?;
            return Ok(bytes.len() as u64);
        }
        let fd = self.beneath(&root, rel, OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK)?;
        let mut file = std::fs::File::from(fd);
        let st = nix::sys::stat::fstat(&file).map_err(|e| self.io(rel, e))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(changed());
        }
        let len = u64::try_from(st.st_size).unwrap_or(0);
        match hash_stream(want.kind(), len, &mut file, Some(out), &self.workdir.join(rel)) {
            Ok(Some(got)) if got == want => Ok(len),
            Ok(_) => Err(changed()),
            Err(GitError::WriteBlob { source, .. }) => Err(write_err(source)),
            Err(e) => Err(e),
        }
    }

    /// The target of symlink blob `oid` of `commit`; `None` if longer than `PATH_MAX`.
    pub fn symlink_target_at(&self, commit: &CommitInfo, oid: &str) -> Result<Option<Vec<u8>>, GitError> {
        let Some(&(_, _, size)) = commit.worktree.as_ref().and_then(|s| s.from_disk.get(oid)) else {
            return self.symlink_target(oid);
        };
        if size > libc::PATH_MAX as u64 {
            return Ok(None);
        }
        let mut out = Vec::new();
        self.copy_entry(commit, oid, &mut out)?;
        Ok(Some(out))
    }

    /// A configuration file of `commit` (werf.yaml, `werf-giterminism.yaml`, a
    /// template, a Dockerfile, `.dockerignore`): with loose giterminism the working
    /// tree's file as it is (werf's `ShouldFileBeRead`), else [`Repo::read_at`].
    pub fn read_config(&self, commit: &CommitInfo, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        if commit.loose { self.read_worktree_file(path) } else { self.read_at(commit, path) }
    }

    /// What `path` (relative to the working tree's root, no symlink before its last
    /// component) is in the working tree, without following it: `None` if nothing,
    /// `Some(None)` if not a symlink, `Some(Some(target))` for a symlink, its target as
    /// written (lossily UTF-8). The directory is opened beneath the root with no symlink
    /// followed.
    pub fn worktree_link(&self, path: &str) -> Result<Option<Option<String>>, GitError> {
        let rel = clean_rel_path(path)?.join("/");
        let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel.as_str()));
        if name.is_empty() {
            return Ok(Some(None));
        }
        let root = open_root(&self.workdir)?;
        let dir_fd = match self.beneath(&root, dir, OFlag::O_PATH | OFlag::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(GitError::Io { source, .. }) if matches!(source.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        match nix::sys::stat::fstatat(&dir_fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => Ok(None),
            Err(e) => Err(self.io(&rel, e)),
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                let target = nix::fcntl::readlinkat(&dir_fd, name).map_err(|e| self.io(&rel, e))?;
                Ok(Some(Some(target.to_string_lossy().into_owned())))
            }
            Ok(_) => Ok(Some(None)),
        }
    }

    /// The working tree's file at `path` (relative to its root), or `None`: resolved
    /// beneath the root (symlinks inside it followed, one leading out refused), at most
    /// [`MAX_READ_FILE`] bytes.
    pub fn read_worktree_file(&self, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let rel = clean_rel_path(path)?.join("/");
        let not_a_file = || GitError::NotAFile { commit: WORKING_TREE.into(), path: rel.clone() };
        if rel.is_empty() {
            return Err(not_a_file());
        }
        let root = open_root(&self.workdir)?;
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let fd = match crate::openat2::openat2(&root, rel.as_str(), how) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => return Ok(None),
            Err(nix::errno::Errno::EXDEV) => return Err(GitError::WorktreeEscape { path: rel }),
            Err(e) => return Err(self.io(&rel, e)),
        };
        let mut file = std::fs::File::from(fd);
        let st = nix::sys::stat::fstat(&file).map_err(|e| self.io(&rel, e))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(not_a_file());
        }
        let size = u64::try_from(st.st_size).unwrap_or(0);
        if size > MAX_READ_FILE {
            return Err(GitError::FileTooLarge { commit: WORKING_TREE.into(), path: rel, size, limit: MAX_READ_FILE });
        }
        let mut data = Vec::new();
        (&mut file)
            .take(MAX_READ_FILE + 1)
            .read_to_end(&mut data)
            .map_err(|source| GitError::Io { path: self.workdir.join(&rel), source })?;
        if data.len() as u64 > MAX_READ_FILE {
            return Err(GitError::FileTooLarge {
                commit: WORKING_TREE.into(),
                path: rel,
                size: data.len() as u64,
                limit: MAX_READ_FILE,
            });
        }
        Ok(Some(data))
    }

    /// Every file and symlink under `subdir` of the working tree as it is, ignored files
    /// included and `.git` left out (werf's loose giterminism lists the filesystem),
    /// paths relative to `subdir`, sorted; empty if `subdir` is not a directory. Walked as
    /// [`Repo::snapshot`] walks (beneath the root, symlinks listed and never entered,
    /// [`MAX_TREE_DEPTH`] levels, [`MAX_SNAPSHOT_ENTRIES`] entries); nothing is read.
    pub fn worktree_files(&self, subdir: &str) -> Result<Vec<String>, GitError> {
        let base = clean_rel_path(subdir)?.join("/");
        let strip = if base.is_empty() { 0 } else { base.len() + 1 };
        let root = open_root(&self.workdir)?;
        let mut out = Vec::new();
        let mut pending = vec![(base.clone(), 0usize)];
        while let Some((dir, depth)) = pending.pop() {
            let dir_fd = match self.beneath(&root, &dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
                Ok(fd) => fd,
                Err(GitError::Io { source, .. })
                    if dir == base && matches!(source.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) =>
                {
                    return Ok(out);
                }
                Err(e) => return Err(e),
            };
            for name in list_names(&dir_fd, &self.workdir.join(&dir))? {
                // A template cannot name it: not listed.
                let Ok(name) = name.into_string() else { continue };
                if name == ".git" {
                    continue;
                }
                let rel = join(&dir, &name);
                let st = nix::sys::stat::fstatat(&dir_fd, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(|e| self.io(&rel, e))?;
                match st.st_mode & libc::S_IFMT {
                    libc::S_IFDIR if depth + 1 > MAX_TREE_DEPTH => {
                        return Err(GitError::TreeTooDeep {
                            commit: WORKING_TREE.into(),
                            path: rel,
                            limit: MAX_TREE_DEPTH,
                        });
                    }
                    libc::S_IFDIR => pending.push((rel, depth + 1)),
                    libc::S_IFREG | libc::S_IFLNK => {
                        out.push(rel[strip..].to_string());
                        if out.len() > MAX_SNAPSHOT_ENTRIES {
                            return Err(GitError::TooManyWorktreeFiles { limit: MAX_SNAPSHOT_ENTRIES });
                        }
                    }
                    _ => {}
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// `rel` (`""` for the root) opened beneath the working tree with no symlink on the
    /// way: one in any component, or a `..` leading out, is [`GitError::WorktreeEscape`].
    fn beneath(&self, root: &OwnedFd, rel: &str, flags: OFlag) -> Result<OwnedFd, GitError> {
        let how = OpenHow::new().flags(flags | OFlag::O_CLOEXEC).resolve(
            ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
        let path = if rel.is_empty() { "." } else { rel };
        crate::openat2::openat2(root, path, how).map_err(|e| match e {
            nix::errno::Errno::EXDEV | nix::errno::Errno::ELOOP => GitError::WorktreeEscape { path: rel.to_string() },
            e => self.io(rel, e),
        })
    }

    fn io(&self, rel: &str, e: nix::errno::Errno) -> GitError {
        GitError::Io { path: self.workdir.join(rel), source: e.into() }
    }
}

fn open_root(workdir: &Path) -> Result<OwnedFd, GitError> {
    nix::fcntl::open(workdir, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| GitError::Io { path: workdir.to_path_buf(), source: e.into() })
}

/// The names in directory `dir` (read through a fresh descriptor, so `dir` keeps its
/// position), sorted, without `.` and `..`.
fn list_names(dir: &OwnedFd, shown: &Path) -> Result<Vec<std::ffi::OsString>, GitError> {
    let io = |e: nix::errno::Errno| GitError::Io { path: shown.to_path_buf(), source: e.into() };
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut handle = nix::dir::Dir::openat(dir.as_fd(), ".", flags, Mode::empty()).map_err(io)?;
    let mut names = Vec::new();
    for entry in handle.iter() {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(std::ffi::OsStr::from_bytes(name).to_os_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Whether directory `name` in `dir` holds a `.git` (an untracked nested repository).
fn has_git(dir: &OwnedFd, name: &str) -> bool {
    nix::sys::stat::fstatat(dir, format!("{name}/.git").as_str(), AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") }
}

/// Streams `len` bytes of `reader` into a git blob hash (and to `out`, if given);
/// `None` when the reader does not hold exactly `len` bytes (the file changed).
pub(super) fn hash_stream(
    kind: gix::hash::Kind,
    len: u64,
    reader: &mut dyn Read,
    mut out: Option<&mut dyn Write>,
    path: &Path,
) -> Result<Option<ObjectId>, GitError> {
    let mut hasher = gix::hash::hasher(kind);
    hasher.update(&gix::objs::encode::loose_header(gix::objs::Kind::Blob, len));
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|source| GitError::Io { path: path.to_path_buf(), source })?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > len {
            return Ok(None);
        }
        hasher.update(&buf[..n]);
        if let Some(out) = out.as_mut() {
            out.write_all(&buf[..n])
                .map_err(|source| GitError::WriteBlob { id: path.display().to_string(), source })?;
        }
    }
    if total != len {
        return Ok(None);
    }
    hasher.try_finalize().map(Some).map_err(|source| GitError::Hash { path: path.to_path_buf(), source })
}
