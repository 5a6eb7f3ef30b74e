//! The build context of a Dockerfile image: the `context` directory of the HEAD commit,
//! filtered by `.dockerignore` (giterminism: working-tree files are not in it) — or, in
//! werf's dev mode, of the working-tree snapshot that stands for werf's dev commit
//! (`git::Snapshot`; `.dockerignore` and the Dockerfile are read as configuration files,
//! from the working tree with loose giterminism, `Repo::read_config`).
//!
//! Content identity comes for free from git: a file's blob id is a hash of its content
//! (the snapshot hashes working-tree files as `git hash-object` does), so checksums for
//! stage digests never read file data, and the same content gives the same checksum
//! whether it is committed or not. Files are written out (materialized) only when a COPY
//! or ADD actually has to run.
//!
//! The other way in for working-tree files is werf's `contextAddFiles`, each of which
//! must be allowed by `config.dockerfile.allowContextAddFiles` in the committed
//! `werf-giterminism.yaml` (anything, with loose giterminism); their content is hashed
//! (sha256) for the digests.

pub mod dockerignore;
pub(crate) mod glob;
#[cfg(test)]
mod tests;

use crate::engine::digest::DigestInput;
use crate::git::{CommitInfo, EntryKind, Repo, TreeEntry};
use anyhow::{Context, bail};
use dockerignore::DockerIgnore;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use sha2::{Digest as _, Sha256};
use std::cell::OnceCell;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub struct BuildContext {
    repo: Repo,
    /// The context directory relative to the repository root.
    pub rel: String,
    pub commit: CommitInfo,
    /// Files in the context (not excluded), sorted by path.
    pub entries: Vec<TreeEntry>,
    /// Directories of the commit's tree that are not excluded but have no entry left
    /// below them (`.dockerignore` excluded all they hold), sorted: BuildKit still sends
    /// them, empty.
    pub empty_dirs: Vec<String>,
    ignore: DockerIgnore,
    /// Entries taken from the working tree (`contextAddFiles`): context path → path
    /// relative to the working tree's root, always resolved beneath it.
    worktree: std::collections::HashMap<String, String>,
    /// Files that exist only in the working tree (untracked or modified), not excluded.
    pub uncommitted: Vec<String>,
    materialized: OnceCell<PathBuf>,
}

impl BuildContext {
    /// Every entry, empty directory and directory above one, sorted, once each: what a
    /// source pattern may name.
    fn paths_and_parents(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for mut p in self.entries.iter().map(|e| e.path.as_str()).chain(self.empty_dirs.iter().map(String::as_str)) {
            out.push(p);
            while let Some((parent, _)) = p.rsplit_once('/') {
                out.push(parent);
                p = parent;
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The context directory `rel` (relative to the repository root) of `commit`, plus
    /// `add_files` (relative to the context) from the working tree, each of which must be
    /// under one of `allowed` (relative to the repository root).
    #[cfg(test)]
    pub fn load(
        repo: &Repo,
        commit: &CommitInfo,
        rel: &str,
        add_files: &[String],
        allowed: &[String],
    ) -> anyhow::Result<BuildContext> {
        let ignore_rel = crate::project::join_rel(rel, ".dockerignore");
        let ignore = repo.read_config(commit, &ignore_rel)?;
        let ignore = ignore.as_deref().map(|b| (ignore_rel.as_str(), b));
        BuildContext::load_with_ignore(repo, commit, rel, ignore, add_files, allowed)
    }

    /// As [`load`](Self::load), with the ignore file already read (as a configuration
    /// file, by the caller): its name, for errors, and its bytes; `None`: no ignore file.
    pub fn load_with_ignore(
        repo: &Repo,
        commit: &CommitInfo,
        rel: &str,
        ignore: Option<(&str, &[u8])>,
        add_files: &[String],
        allowed: &[String],
    ) -> anyhow::Result<BuildContext> {
        let ignore = match ignore {
            Some((name, b)) => {
                DockerIgnore::parse(&String::from_utf8_lossy(b)).with_context(|| format!("parsing {name}"))?
            }
            None => DockerIgnore::parse("")?,
        };
        let all = repo
            .tree_at(commit, rel)
            .with_context(|| format!("reading context directory {:?} of commit {}", rel, &commit.id[..12]))?;
        let mut dirs: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
        for e in &all {
            let mut p = e.path.as_str();
            while let Some((parent, _)) = p.rsplit_once('/') {
                if !dirs.insert(parent) {
                    break;
                }
                p = parent;
            }
        }
        let mut dirs: Vec<String> = dirs.into_iter().filter(|d| !ignore.is_excluded(d)).map(str::to_string).collect();
        let mut entries: Vec<TreeEntry> =
            all.into_iter().filter(|e| e.kind != EntryKind::Submodule && !ignore.is_excluded(&e.path)).collect();
        let mut worktree = std::collections::HashMap::new();
        for add in add_files {
            let add = clean(add).with_context(|| format!("contextAddFiles {add:?}"))?;
            let in_repo = crate::project::join_rel(rel, &add);
            // Loose giterminism accepts every file (werf's inspector/dockerfile.go).
            if !commit.loose
                && !allowed.iter().any(|a| {
                    let a = crate::project::join_rel("", a);
                    in_repo == a || in_repo.starts_with(&format!("{a}/")) || a.is_empty()
                })
            {
                bail!(
                    "contextAddFiles {add:?} takes files from the working tree, which giterminism forbids unless werf-giterminism.yaml allows it (config.dockerfile.allowContextAddFiles)"
                );
            }
            entries.retain(|e| e.path != add && !e.path.starts_with(&format!("{add}/")));
            dirs.retain(|d| *d != add && !d.starts_with(&format!("{add}/")));
            let root = Beneath::open(repo.workdir())?;
            add_worktree(&root, &in_repo, &add, &mut entries, &mut worktree, 0)
                .with_context(|| format!("contextAddFiles {add:?}"))?;
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        // A directory with an entry left below it is made for that entry anyway.
        let mut below: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for e in &entries {
            let mut p = e.path.as_str();
            while let Some((parent, _)) = p.rsplit_once('/') {
                if !below.insert(parent) {
                    break;
                }
                p = parent;
            }
        }
        dirs.retain(|d| !below.contains(d.as_str()));
        drop(below);
        // In dev mode the working tree is what is built: nothing is left out.
        let uncommitted = if commit.worktree.is_some() { Vec::new() } else { repo.uncommitted(rel)? };
        let uncommitted =
            uncommitted.into_iter().filter(|p| !ignore.is_excluded(p) && !worktree.contains_key(p)).collect();
        Ok(BuildContext {
            worktree,
            repo: repo.clone(),
            rel: rel.to_string(),
            commit: commit.clone(),
            entries,
            empty_dirs: dirs,
            ignore,
            uncommitted,
            materialized: OnceCell::new(),
        })
    }

    /// Context paths (files or directories) that a COPY/ADD source selects.
    pub fn select(&self, source: &str) -> anyhow::Result<Vec<String>> {
        let src = clean(source).with_context(|| format!("COPY source {source:?}"))?;
        if src.is_empty() {
            return Ok(vec![String::new()]);
        }
        if !glob::has_meta(&src) {
            let exists = |p: &str| {
                self.entries.iter().any(|e| e.path == p || e.path.starts_with(&format!("{p}/")))
                    || self.empty_dirs.iter().any(|d| d == p || d.starts_with(&format!("{p}/")))
            };
            if exists(&src) {
                return Ok(vec![src]);
            }
            // `COPY link/foo` with `link -> dir`: BuildKit resolves the path inside the context.
            return Ok(match self.resolve_parents(&src) {
                Some(r) if r != src && exists(&r) => vec![r],
                _ => Vec::new(),
            });
        }
        let candidates = self.paths_and_parents();
        let mut out: Vec<String> = Vec::new();
        for c in candidates {
            if glob::matches(&src, c)? && !out.iter().any(|m| c.starts_with(&format!("{m}/"))) {
                out.push(c.to_string());
            }
        }
        Ok(out)
    }

    /// Whether a COPY/ADD source is a wildcard, as BuildKit tells (`*`, `?` or `[` not
    /// escaped by `\`): one that selects nothing is allowed (`AllowEmptyWildcard`), a
    /// literal path that selects nothing is an error.
    pub fn is_wildcard(source: &str) -> bool {
        let mut chars = source.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '*' | '?' | '[' => return true,
                _ => {}
            }
        }
        false
    }

    /// `path` with the symlinks among its parents resolved inside the context, as
    /// `openat2(RESOLVE_IN_ROOT)` resolves them in the materialized context: an absolute
    /// target starts at the context's root, `..` stops there, at most 40 hops, targets of
    /// at most 4096 bytes. The last component is left as it is (the top of a source is
    /// followed when it is opened). `None` when a link cannot be read.
    fn resolve_parents(&self, path: &str) -> Option<String> {
        let mut todo: std::collections::VecDeque<String> = path.split('/').map(str::to_string).collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(part) = todo.pop_front() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => done.push(part),
            }
            if todo.is_empty() {
                break;
            }
            let cur = done.join("/");
            let Ok(i) = self.entries.binary_search_by(|e| e.path.as_str().cmp(&cur)) else { continue };
            let e = &self.entries[i];
            if e.kind != EntryKind::Symlink {
                continue;
            }
            hops += 1;
            if hops > 40 {
                return None;
            }
            let target = self.repo.symlink_target_at(&self.commit, &e.oid).ok()??;
            let target = String::from_utf8(target).ok()?;
            done.pop();
            if target.starts_with('/') {
                done.clear();
            }
            for t in target.split('/').rev() {
                todo.push_front(t.to_string());
            }
        }
        Some(done.join("/"))
    }

    /// Why `source` selects nothing, for the error message.
    pub fn explain_missing(&self, source: &str) -> String {
        let src = clean(source).unwrap_or_default();
        if self.uncommitted.iter().any(|u| *u == src || u.starts_with(&format!("{src}/"))) {
            format!(
                "{source} is only in the working tree, not in commit {}: commit it (slipway builds from git HEAD)",
                &self.commit.id[..12]
            )
        } else if self.ignore.is_excluded(&src) {
            format!("{source} is excluded by .dockerignore")
        } else {
            format!("{source} not found in the build context ({})", if self.rel.is_empty() { "." } else { &self.rel })
        }
    }

    /// A checksum of everything under the selected paths: each selected path, then the
    /// path, kind and blob id of every entry below it and the directories emptied by
    /// `.dockerignore`.
    pub fn checksum(&self, selected: &[String]) -> String {
        self.checksum_keeping(selected, |_, _| true)
    }

    /// [`BuildContext::checksum`] of what a COPY with `--exclude` patterns copies: an
    /// entry is left out when its path relative to the copy's root is excluded. The root
    /// is the selected path itself, or `parents_root` (`COPY --parents`'s pivot
    /// directory); the root itself is never excluded.
    pub fn checksum_excluding(
        &self,
        selected: &[String],
        parents_root: Option<&str>,
        excludes: &DockerIgnore,
    ) -> String {
        if excludes.is_empty() {
            return self.checksum(selected);
        }
        self.checksum_keeping(selected, |sel, path| {
            let root = parents_root.unwrap_or(sel);
            let rel = if root.is_empty() { path } else { path.strip_prefix(root).unwrap_or(path) };
            let rel = rel.trim_start_matches('/');
            rel.is_empty() || !excludes.is_excluded(rel)
        })
    }

    fn checksum_keeping(&self, selected: &[String], keep: impl Fn(&str, &str) -> bool) -> String {
        let below = |sel: &str, p: &str| sel.is_empty() || p == sel || p.starts_with(&format!("{sel}/"));
        let mut digest = DigestInput::new("context");
        for sel in selected {
            digest.str("selected", sel);
            for e in self.entries.iter().filter(|e| below(sel, &e.path) && keep(sel, &e.path)) {
                digest.str("path", &e.path).str("entry-kind", kind_word(e.kind)).str("id", &e.oid);
            }
            for d in self.empty_dirs.iter().filter(|d| below(sel, d) && keep(sel, d)) {
                digest.str("empty-dir", d);
            }
        }
        digest.finish()
    }

    /// `COPY --parents SRC`: the pivot directory (the part of SRC before `/./`, else the
    /// context's root) and the context paths the rest selects, matched as BuildKit's
    /// include patterns are (`*`, `?`, `[…]`, `**`), relative to the pivot. Each path is
    /// the top of a copy (a path below a selected directory is not listed again).
    pub fn select_parents(&self, source: &str) -> anyhow::Result<(String, Vec<String>)> {
        let (root, pattern) = Self::parents_pivot(source)?;
        let out = Self::select_below(&root, &pattern, self.paths_and_parents())?;
        Ok((root, out))
    }

    /// `COPY --parents SRC` split at its `/./` pivot: the pivot directory (empty for the
    /// root) and the pattern below it, both cleaned.
    pub fn parents_pivot(source: &str) -> anyhow::Result<(String, String)> {
        let (root, pattern) = match source.split_once("/./") {
            Some((root, pattern)) => (clean(root).with_context(|| format!("COPY source {source:?}"))?, pattern),
            None => (String::new(), source),
        };
        if Self::is_wildcard(&root) {
            bail!("COPY --parents {source}: a wildcard before the /./ pivot is not supported");
        }
        Ok((root, clean(pattern).with_context(|| format!("COPY source {source:?}"))?))
    }

    /// Of `candidates` (relative paths, sorted, parents included), those below `root`
    /// that `pattern` selects as an include pattern, each the top of a copy.
    pub fn select_below<'c>(
        root: &str,
        pattern: &str,
        candidates: impl IntoIterator<Item = &'c str>,
    ) -> anyhow::Result<Vec<String>> {
        if pattern.is_empty() {
            return Ok(vec![root.to_string()]);
        }
        let matcher = DockerIgnore::from_patterns("--parents", &[pattern.to_string()])?;
        let mut out: Vec<String> = Vec::new();
        for c in candidates {
            let rel = if root.is_empty() {
                c
            } else {
                match c.strip_prefix(root).and_then(|r| r.strip_prefix('/')) {
                    Some(r) => r,
                    None => continue,
                }
            };
            if matcher.is_excluded(rel) && !out.iter().any(|m| c.starts_with(&format!("{m}/"))) {
                out.push(c.to_string());
            }
        }
        Ok(out)
    }

    /// The context written out under `scratch` (once per build). Every entry is created
    /// beneath the context directory, never through a symlink and never by a name that
    /// is not a plain path (`..`), whatever the commit holds.
    pub fn materialize(&self, scratch: &Path) -> anyhow::Result<&Path> {
        if let Some(p) = self.materialized.get() {
            return Ok(p);
        }
        let dir = scratch.join("context");
        std::fs::create_dir_all(&dir)?;
        let out = Beneath::open(&dir)?;
        let worktree = if self.worktree.is_empty() { None } else { Some(Beneath::open(self.repo.workdir())?) };
        for e in &self.entries {
            let (parent, name) = out.create_parents(&e.path)?;
            let mode = match e.kind {
                EntryKind::Executable => 0o755,
                EntryKind::File => 0o644,
                EntryKind::Symlink => 0,
                EntryKind::Submodule => continue,
            };
            let write_err = || format!("writing context entry {}", e.path);
            if let (Some(disk), Some(wt)) = (self.worktree.get(&e.path), &worktree) {
                if e.kind == EntryKind::Symlink {
                    let target = wt.read_link(disk)?;
                    nix::unistd::symlinkat(target.as_os_str(), &parent, name).with_context(write_err)?;
                } else {
                    let mut input = wt.open_file(disk)?;
                    let mut f = create_file(&parent, name, mode).with_context(write_err)?;
                    std::io::copy(&mut input, &mut f).with_context(write_err)?;
                }
                continue;
            }
            if e.kind == EntryKind::Symlink {
                let mut target = BoundedBuf(Vec::new());
                self.repo
                    .copy_entry(&self.commit, &e.oid, &mut target)
                    .with_context(|| format!("symlink {}", e.path))?;
                let target =
                    String::from_utf8(target.0).with_context(|| format!("symlink {} target is not UTF-8", e.path))?;
                nix::unistd::symlinkat(target.as_str(), &parent, name).with_context(write_err)?;
            } else {
                let mut f = create_file(&parent, name, mode).with_context(write_err)?;
                self.repo.copy_entry(&self.commit, &e.oid, &mut f).with_context(write_err)?;
            }
        }
        for d in &self.empty_dirs {
            let (parent, name) = out.create_parents(d)?;
            match nix::sys::stat::mkdirat(&parent, name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                Err(e) => return Err(e).with_context(|| format!("creating context directory {d}")),
            }
        }
        Ok(self.materialized.get_or_init(|| dir))
    }
}

/// An entry's kind in a checksum: fixed words, whatever the enum's variants are called.
fn kind_word(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::File => "file",
        EntryKind::Executable => "executable",
        EntryKind::Symlink => "symlink",
        EntryKind::Submodule => "submodule",
    }
}

/// A symlink target being read: at most `PATH_MAX` bytes, as the kernel allows.
struct BoundedBuf(Vec<u8>);

impl std::io::Write for BoundedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > libc::PATH_MAX as usize {
            return Err(std::io::Error::other(format!("a symlink target is longer than {} bytes", libc::PATH_MAX)));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A new file `name` in `parent` (never replacing or following anything) with `mode`.
fn create_file(parent: &OwnedFd, name: &str, mode: u32) -> nix::Result<std::fs::File> {
    let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(parent, name, flags, Mode::from_bits_truncate(mode))?;
    nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode))?;
    Ok(std::fs::File::from(fd))
}

/// How deep a working-tree directory taken by `contextAddFiles` may be.
const MAX_WORKTREE_DEPTH: usize = 256;

/// Add the working-tree entry `rel` (relative to the working tree's root) as context
/// path `path`: a file, a symlink (taken as a symlink) or a directory (recursively). The
/// id of each file is the sha256 of its content (or symlink target).
fn add_worktree(
    root: &Beneath,
    rel: &str,
    path: &str,
    entries: &mut Vec<TreeEntry>,
    worktree: &mut std::collections::HashMap<String, String>,
    depth: usize,
) -> anyhow::Result<()> {
    let fd = root.resolve(rel, OFlag::O_PATH | OFlag::O_NOFOLLOW)?;
    let st = nix::sys::stat::fstat(&fd).with_context(|| format!("reading {rel}"))?;
    let (kind, oid) = match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => {
            if depth >= MAX_WORKTREE_DEPTH {
                bail!("{rel} is deeper than {MAX_WORKTREE_DEPTH} directory levels");
            }
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
            let mut dir = nix::dir::Dir::openat(&fd, ".", flags, Mode::empty())?;
            let mut names: Vec<String> = Vec::new();
            for e in dir.iter() {
                let n = e?.file_name().to_string_lossy().into_owned();
                if n != "." && n != ".." {
                    names.push(n);
                }
            }
            names.sort();
            for n in names {
                add_worktree(root, &format!("{rel}/{n}"), &format!("{path}/{n}"), entries, worktree, depth + 1)?;
            }
            return Ok(());
        }
        libc::S_IFLNK => (EntryKind::Symlink, Sha256::digest(root.read_link(rel)?.as_encoded_bytes()).into()),
        libc::S_IFREG => {
            let kind = if st.st_mode & 0o111 != 0 { EntryKind::Executable } else { EntryKind::File };
            let mut h = Sha256::new();
            std::io::copy(&mut root.open_file(rel)?, &mut h).with_context(|| format!("reading {rel}"))?;
            (kind, <[u8; 32]>::from(h.finalize()))
        }
        _ => bail!("{rel} is not a file, directory or symlink"),
    };
    let oid = format!("worktree-sha256-{}", hex::encode(oid));
    entries.push(TreeEntry { path: path.to_string(), kind, oid });
    worktree.insert(path.to_string(), rel.to_string());
    Ok(())
}

/// A directory that relative paths are resolved beneath (`openat2` with
/// `RESOLVE_BENEATH`): a symlink or `..` that would leave it is an error, never a
/// direction on the host.
struct Beneath {
    fd: OwnedFd,
    path: PathBuf,
}

impl Beneath {
    fn open(path: &Path) -> anyhow::Result<Beneath> {
        let fd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Beneath { fd, path: path.to_path_buf() })
    }

    /// `rel` resolved beneath the directory; symlinks inside it are followed (but the
    /// last component with `O_NOFOLLOW`).
    fn resolve(&self, rel: &str, flags: OFlag) -> anyhow::Result<OwnedFd> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        crate::openat2::openat2(&self.fd, rel, how).map_err(|e| match e {
            nix::errno::Errno::EXDEV => anyhow::anyhow!(
                "{rel} leads outside {} through a symlink or `..`: refused (files are only taken from inside it)",
                self.path.display()
            ),
            nix::errno::Errno::ENOENT => anyhow::anyhow!("{rel} does not exist in {}", self.path.display()),
            e => anyhow::anyhow!("opening {rel} in {}: {e}", self.path.display()),
        })
    }

    fn open_file(&self, rel: &str) -> anyhow::Result<std::fs::File> {
        let f = std::fs::File::from(self.resolve(rel, OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK)?);
        if !f.metadata()?.is_file() {
            bail!("{rel} in {} is not a regular file", self.path.display());
        }
        Ok(f)
    }

    fn read_link(&self, rel: &str) -> anyhow::Result<std::ffi::OsString> {
        let fd = self.resolve(rel, OFlag::O_PATH | OFlag::O_NOFOLLOW)?;
        nix::fcntl::readlinkat(&fd, "").with_context(|| format!("reading symlink {rel}"))
    }

    /// The parent directory of `rel` (created as needed) and its last name. No
    /// component may be empty, `.` or `..`, and none of the parents may be a symlink.
    fn create_parents<'p>(&self, rel: &'p str) -> anyhow::Result<(OwnedFd, &'p str)> {
        let parts: Vec<&str> = rel.split('/').collect();
        if parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
            bail!("refusing to write {rel:?} in {}: not a plain relative path", self.path.display());
        }
        let (name, dirs) = parts.split_last().expect("split yields one part");
        let mut cur = self.fd.try_clone()?;
        for d in dirs {
            let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            cur = match nix::fcntl::openat(&cur, *d, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(nix::errno::Errno::ENOENT) => {
                    nix::sys::stat::mkdirat(&cur, *d, Mode::from_bits_truncate(0o755))
                        .with_context(|| format!("creating {d} for {rel}"))?;
                    nix::fcntl::openat(&cur, *d, flags, Mode::empty())?
                }
                Err(_) => bail!("context entry {rel}: its parent {d} is not a directory (a symlink?)"),
            };
        }
        Ok((cur, name))
    }
}

/// A context-relative source path: no leading `/`, no `.`, never above the context.
fn clean(source: &str) -> anyhow::Result<String> {
    let mut parts: Vec<&str> = Vec::new();
    for p in source.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    bail!("it points outside the build context");
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}
