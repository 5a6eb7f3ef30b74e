//! The build context of a Dockerfile image: the `context` directory of the HEAD commit,
//! filtered by `.dockerignore` (giterminism: working-tree files are not in it).
//!
//! Content identity comes for free from git: a file's blob id is a hash of its content,
//! so checksums for stage digests never read file data. Files are written out
//! (materialized) only when a COPY or ADD actually has to run.

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
    /// Files that exist only in the working tree (untracked or modified), not excluded.
    pub uncommitted: Vec<String>,
    materialized: OnceCell<PathBuf>,
}

impl BuildContext {
    pub fn load(repo: &Repo, commit: &CommitInfo, rel: &str) -> anyhow::Result<BuildContext> {
        let ignore_rel = crate::project::join_rel(rel, ".dockerignore");
        let ignore = match repo.read_file(&commit.id, &ignore_rel)? {
            Some(b) => {
                DockerIgnore::parse(&String::from_utf8_lossy(&b)).with_context(|| format!("parsing {ignore_rel}"))?
            }
            None => DockerIgnore::parse("")?,
        };
        let entries = repo
            .tree(&commit.id, rel)
            .with_context(|| format!("reading context directory {:?} of commit {}", rel, &commit.id[..12]))?
            .into_iter()
            .filter(|e| e.kind != EntryKind::Submodule && !ignore.is_excluded(&e.path))
            .collect();
        let uncommitted = repo.uncommitted(rel)?.into_iter().filter(|p| !ignore.is_excluded(p)).collect();
        Ok(BuildContext {
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
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            }
            let data = self.repo.blob(&e.oid)?;
            match e.kind {
                EntryKind::Symlink => {
                    let target =
                        String::from_utf8(data).with_context(|| format!("symlink {} target is not UTF-8", e.path))?;
                    std::os::unix::fs::symlink(target, &dest)?;
                }
                EntryKind::File | EntryKind::Executable => {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::write(&dest, data).with_context(|| format!("writing {}", dest.display()))?;
                    let mode = if e.kind == EntryKind::Executable { 0o755 } else { 0o644 };
                    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))?;
                }
                EntryKind::Submodule => {}
            }
        }
        Ok(self.materialized.get_or_init(|| dir))
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
