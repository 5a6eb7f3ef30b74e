//! The build context of a Dockerfile image: the `context` directory of the HEAD commit,
//! filtered by `.dockerignore` (giterminism: working-tree files are not in it).
//!
//! Content identity comes for free from git: a file's blob id is a hash of its content,
//! so checksums for stage digests never read file data. Files are written out
//! (materialized) only when a COPY or ADD actually has to run.
//!
//! The one way in for working-tree files is werf's `contextAddFiles`, each of which must
//! be allowed by `config.dockerfile.allowContextAddFiles` in the committed
//! `werf-giterminism.yaml`; their content is hashed (sha256) for the digests.

pub mod dockerignore;
mod glob;

use crate::git::{CommitInfo, EntryKind, Repo, TreeEntry};
use anyhow::{Context, bail};
use dockerignore::DockerIgnore;
use sha2::{Digest as _, Sha256};
use std::cell::OnceCell;
use std::path::{Path, PathBuf};

pub struct BuildContext {
    repo: Repo,
    /// The context directory relative to the repository root.
    pub rel: String,
    pub commit: CommitInfo,
    /// Files in the context (not excluded), sorted by path.
    pub entries: Vec<TreeEntry>,
    ignore: DockerIgnore,
    /// Entries taken from the working tree (`contextAddFiles`): path → file on disk.
    worktree: std::collections::HashMap<String, PathBuf>,
    /// Files that exist only in the working tree (untracked or modified), not excluded.
    pub uncommitted: Vec<String>,
    materialized: OnceCell<PathBuf>,
}

impl BuildContext {
    /// The context directory `rel` (relative to the repository root) of `commit`, plus
    /// `add_files` (relative to the context) from the working tree, each of which must be
    /// under one of `allowed` (relative to the repository root).
    pub fn load(
        repo: &Repo,
        commit: &CommitInfo,
        rel: &str,
        add_files: &[String],
        allowed: &[String],
    ) -> anyhow::Result<BuildContext> {
        let ignore_rel = crate::project::join_rel(rel, ".dockerignore");
        let ignore = match repo.read_file(&commit.id, &ignore_rel)? {
            Some(b) => {
                DockerIgnore::parse(&String::from_utf8_lossy(&b)).with_context(|| format!("parsing {ignore_rel}"))?
            }
            None => DockerIgnore::parse("")?,
        };
        let mut entries: Vec<TreeEntry> = repo
            .tree(&commit.id, rel)
            .with_context(|| format!("reading context directory {:?} of commit {}", rel, &commit.id[..12]))?
            .into_iter()
            .filter(|e| e.kind != EntryKind::Submodule && !ignore.is_excluded(&e.path))
            .collect();
        let mut worktree = std::collections::HashMap::new();
        for add in add_files {
            let add = clean(add).with_context(|| format!("contextAddFiles {add:?}"))?;
            let in_repo = crate::project::join_rel(rel, &add);
            if !allowed.iter().any(|a| {
                let a = crate::project::join_rel("", a);
                in_repo == a || in_repo.starts_with(&format!("{a}/")) || a.is_empty()
            }) {
                bail!(
                    "contextAddFiles {add:?} takes files from the working tree, which giterminism forbids unless werf-giterminism.yaml allows it (config.dockerfile.allowContextAddFiles)"
                );
            }
            let disk = repo.workdir().join(&in_repo);
            entries.retain(|e| e.path != add && !e.path.starts_with(&format!("{add}/")));
            add_worktree(&disk, &add, &mut entries, &mut worktree)?;
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let uncommitted = repo
            .uncommitted(rel)?
            .into_iter()
            .filter(|p| !ignore.is_excluded(p) && !worktree.contains_key(p))
            .collect();
        Ok(BuildContext {
            worktree,
            repo: repo.clone(),
            rel: rel.to_string(),
            commit: commit.clone(),
            entries,
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
            let exists = self.entries.iter().any(|e| e.path == src || e.path.starts_with(&format!("{src}/")));
            return Ok(if exists { vec![src] } else { Vec::new() });
        }
        let mut candidates: Vec<&str> = Vec::new();
        for e in &self.entries {
            let mut p = e.path.as_str();
            candidates.push(p);
            while let Some((parent, _)) = p.rsplit_once('/') {
                candidates.push(parent);
                p = parent;
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        let mut out: Vec<String> = Vec::new();
        for c in candidates {
            if glob::matches(&src, c)? && !out.iter().any(|m| c.starts_with(&format!("{m}/"))) {
                out.push(c.to_string());
            }
        }
        Ok(out)
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

    /// A checksum of everything under the selected paths: path, kind and blob id.
    pub fn checksum(&self, selected: &[String]) -> String {
        let mut h = Sha256::new();
        for sel in selected {
            for e in self
                .entries
                .iter()
                .filter(|e| sel.is_empty() || e.path == *sel || e.path.starts_with(&format!("{sel}/")))
            {
                h.update(format!("{}\0{:?}\0{}\n", e.path, e.kind, e.oid));
            }
        }
        hex::encode(h.finalize())
    }

    /// The context written out under `scratch` (once per build).
    pub fn materialize(&self, scratch: &Path) -> anyhow::Result<&Path> {
        if let Some(p) = self.materialized.get() {
            return Ok(p);
        }
        let dir = scratch.join("context");
        std::fs::create_dir_all(&dir)?;
        for e in &self.entries {
            let dest = dir.join(&e.path);
            real_parents(&dir, &e.path)?;
            if let Some(src) = self.worktree.get(&e.path) {
                if e.kind == EntryKind::Symlink {
                    std::os::unix::fs::symlink(std::fs::read_link(src)?, &dest)?;
                } else {
                    std::fs::copy(src, &dest).with_context(|| format!("copying {}", src.display()))?;
                }
                continue;
            }
            match e.kind {
                EntryKind::Symlink => {
                    let data = self.repo.blob(&e.oid)?;
                    let target =
                        String::from_utf8(data).with_context(|| format!("symlink {} target is not UTF-8", e.path))?;
                    std::os::unix::fs::symlink(target, &dest)?;
                }
                EntryKind::File | EntryKind::Executable => {
                    use std::os::unix::fs::PermissionsExt;
                    let mut f = std::fs::File::create(&dest).with_context(|| format!("writing {}", dest.display()))?;
                    self.repo.copy_blob(&e.oid, &mut f).with_context(|| format!("writing {}", dest.display()))?;
                    let mode = if e.kind == EntryKind::Executable { 0o755 } else { 0o644 };
                    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))?;
                }
                EntryKind::Submodule => {}
            }
        }
        Ok(self.materialized.get_or_init(|| dir))
    }
}

/// Create the parent directories of `path` under `dir`, refusing to go through a
/// symlink (an earlier entry could be one, e.g. a committed `x -> /etc` and an added
/// `x/y`): nothing is ever written outside `dir`.
fn real_parents(dir: &Path, path: &str) -> anyhow::Result<()> {
    let mut cur = dir.to_path_buf();
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        cur.push(part);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!("context entry {path}: its parent {} is not a directory (a symlink?)", cur.display()),
            Err(_) => std::fs::create_dir(&cur).with_context(|| format!("creating {}", cur.display()))?,
        }
    }
    Ok(())
}

/// Add the working-tree file or directory `disk` as context path `path`; the id of each
/// file is the sha256 of its content (or symlink target).
fn add_worktree(
    disk: &Path,
    path: &str,
    entries: &mut Vec<TreeEntry>,
    worktree: &mut std::collections::HashMap<String, PathBuf>,
) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(disk)
        .with_context(|| format!("contextAddFiles: {} does not exist in the working tree", disk.display()))?;
    if meta.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(disk)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
        names.sort();
        for n in names {
            add_worktree(&disk.join(&n), &format!("{path}/{}", n.to_string_lossy()), entries, worktree)?;
        }
        return Ok(());
    }
    let (kind, content) = if meta.file_type().is_symlink() {
        (EntryKind::Symlink, std::fs::read_link(disk)?.into_os_string().into_encoded_bytes())
    } else if meta.is_file() {
        let kind = if meta.permissions().mode() & 0o111 != 0 { EntryKind::Executable } else { EntryKind::File };
        (kind, std::fs::read(disk).with_context(|| format!("reading {}", disk.display()))?)
    } else {
        bail!("contextAddFiles: {} is not a file, directory or symlink", disk.display());
    };
    let oid = format!("worktree-sha256-{}", hex::encode(Sha256::digest(&content)));
    entries.push(TreeEntry { path: path.to_string(), kind, oid });
    worktree.insert(path.to_string(), disk.to_path_buf());
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn cleans_sources() {
        assert_eq!(clean("./a/b/").unwrap(), "a/b");
        assert_eq!(clean("/a/../b").unwrap(), "b");
        assert_eq!(clean(".").unwrap(), "");
        assert!(clean("../x").is_err());
    }
}
