//! What changed in one directory between two commits, for Stapel's git patch stages
//! (`gitCache`, `gitLatestPatch`, and the patch a user stage applies first).
//!
//! werf renders `git diff` text and runs `git apply` in the container; slipway needs the
//! changes as entries to write or delete, so this is `gix`'s tree diff (unchanged
//! subtrees are skipped by id, never listed) reduced to files:
//!
//! - a file, executable or symlink that is new or whose content or mode changed is a
//!   [`TreeChange::Written`] with its new kind and blob;
//! - one that is gone (or became a directory) is a [`TreeChange::Deleted`];
//! - directories are not changes of their own: their files are. A rename is a deletion
//!   and a write, which is what applying it means for a rootfs.
//!
//! Submodules are skipped, as [`Repo::tree`] never enters them. Every written name is
//! checked as git checks it before a checkout ([`check_name`]), as listings are.

use gix::bstr::ByteSlice;
use gix::diff::tree::recorder::Change;
use gix::objs::tree::EntryKind as GixKind;

use super::tree::{EntryKind, TreeEntry, check_name};
use super::{GitError, Repo};

/// One change under the diffed directory, paths relative to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeChange {
    Deleted(String),
    Written(TreeEntry),
}

impl Repo {
    /// The changes that turn `subdir` (relative to the repository root, `""` for all of
    /// it) of commit `from` into that of commit `to`: deletions first, deepest first, then
    /// writes sorted by path. A `subdir` missing from a commit counts as empty there.
    pub fn diff(&self, from: &str, to: &str, subdir: &str) -> Result<Vec<TreeChange>, GitError> {
        let (old, new) = (self.resolve_commit(from)?, self.resolve_commit(to)?);
        let to_id = new.id.to_string();
        let old_tree = self.subtree(&old, subdir)?;
        let new_tree = self.subtree(&new, subdir)?;
        let bytes = |t: &Option<gix::Tree<'_>>| t.as_ref().map(|t| t.data.clone()).unwrap_or_default();
        let (old_data, new_data) = (bytes(&old_tree), bytes(&new_tree));
        let mut recorder = gix::diff::tree::Recorder::default();
        gix::diff::tree(
            gix::objs::TreeRefIter::from_bytes(&old_data, gix::hash::Kind::Sha1),
            gix::objs::TreeRefIter::from_bytes(&new_data, gix::hash::Kind::Sha1),
            &mut gix::diff::tree::State::default(),
            &self.inner.objects,
            &mut recorder,
        )
        .map_err(|e| GitError::Object {
            what: "tree diff of",
            id: format!("{from}..{to}"),
            source: gix::Error::from_error(e),
        })?;
        let mut deleted = Vec::new();
        let mut written = Vec::new();
        for change in recorder.records {
            match change {
                Change::Deletion { entry_mode, path, .. } => {
                    // A directory's files are deleted one by one; a submodule was never written.
                    if matches!(EntryKind::from_gix(entry_mode.kind()), Some(k) if k != EntryKind::Submodule) {
                        deleted.push(utf8(&to_id, path)?);
                    }
                }
                Change::Addition { entry_mode, oid, path, .. } => {
                    if let Some(entry) = self.written(&to_id, path, entry_mode.kind(), oid)? {
                        written.push(entry);
                    }
                }
                Change::Modification { previous_entry_mode, entry_mode, oid, path, .. } => {
                    if entry_mode.is_tree() {
                        // A file that became a directory: its files are additions.
                        if !previous_entry_mode.is_tree() {
                            deleted.push(utf8(&to_id, path)?);
                        }
                    } else if let Some(entry) = self.written(&to_id, path, entry_mode.kind(), oid)? {
                        written.push(entry);
                    }
                }
            }
        }
        deleted.sort_unstable_by(|a, b| b.matches('/').count().cmp(&a.matches('/').count()).then(a.cmp(b)));
        written.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        Ok(deleted.into_iter().map(TreeChange::Deleted).chain(written.into_iter().map(TreeChange::Written)).collect())
    }
}

impl Repo {
    /// A written non-directory entry, its name checked; `None` for a directory or a
    /// submodule.
    fn written(
        &self,
        commit_id: &str,
        path: gix::bstr::BString,
        kind: GixKind,
        oid: gix::ObjectId,
    ) -> Result<Option<TreeEntry>, GitError> {
        let entry_kind = match EntryKind::from_gix(kind) {
            None | Some(EntryKind::Submodule) => return Ok(None),
            Some(k) => k,
        };
        let parts: Vec<&[u8]> = path.split_str("/").collect();
        for (i, name) in parts.iter().enumerate() {
            let here = parts[..=i].join(&b'/');
            let k = if i + 1 == parts.len() { kind } else { GixKind::Tree };
            check_name(commit_id, &here, name.as_bstr(), k)?;
        }
        Ok(Some(TreeEntry { path: utf8(commit_id, path)?, kind: entry_kind, oid: oid.to_string() }))
    }

    /// Whether `path` (relative to the repository root) is a directory in commit
    /// `rev`: `Some(true)`, another entry: `Some(false)`, missing: `None`. Reads only the
    /// trees on the way.
    pub fn is_dir(&self, rev: &str, path: &str) -> Result<Option<bool>, GitError> {
        let commit = self.resolve_commit(rev)?;
        match self.subtree(&commit, path) {
            Ok(tree) => Ok(tree.map(|_| true)),
            Err(GitError::NotADirectory { .. }) => Ok(Some(false)),
            Err(e) => Err(e),
        }
    }

    /// The non-directory entry at `path` in commit `rev` (not followed if a symlink),
    /// `None` if there is none; reads only the trees on the way.
    pub fn entry(&self, rev: &str, path: &str) -> Result<Option<TreeEntry>, GitError> {
        let commit = self.resolve_commit(rev)?;
        let commit_id = commit.id.to_string();
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let tree = match self.subtree(&commit, dir) {
            Ok(Some(tree)) => tree,
            Ok(None) | Err(GitError::NotADirectory { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(entry) = tree.find_entry(name) else { return Ok(None) };
        let kind = entry.mode().kind();
        check_name(&commit_id, path.as_bytes(), name.into(), kind)?;
        Ok(match EntryKind::from_gix(kind) {
            None | Some(EntryKind::Submodule) => None,
            Some(kind) => Some(TreeEntry { path: path.to_string(), kind, oid: entry.object_id().to_string() }),
        })
    }

    /// Size of blob `oid` from its header, without reading it.
    pub fn blob_size(&self, oid: &str) -> Result<u64, GitError> {
        let id = super::parse_oid(oid)?;
        let header = self.inner.find_header(id).map_err(|source| GitError::Object {
            what: "blob",
            id: oid.to_string(),
            source,
        })?;
        Ok(header.size())
    }
}

fn utf8(commit_id: &str, path: gix::bstr::BString) -> Result<String, GitError> {
    String::from_utf8(path.into()).map_err(|e| GitError::NonUtf8Path {
        commit: commit_id.to_string(),
        path: String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::tests::git;
    use std::path::Path;
    use std::process::Command;

    fn commit(dir: &Path) -> String {
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "--allow-empty", "--no-gpg-sign", "-m", "c"]);
        git(dir, &["rev-parse", "HEAD"])
    }

    fn written(path: &str, kind: EntryKind, oid: &str) -> TreeChange {
        TreeChange::Written(TreeEntry { path: path.into(), kind, oid: oid.into() })
    }

    /// Every kind of change a patch stage applies: add, change, delete, rename, mode,
    /// symlink, binary, a file that becomes a directory; a directory's files one by one.
    #[test]
    fn diff_lists_every_kind_of_change() {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        git(d, &["init", "-q", "-b", "main"]);
        let w = |p: &str, c: &[u8]| {
            std::fs::create_dir_all(d.join(p).parent().unwrap()).unwrap();
            std::fs::write(d.join(p), c).unwrap();
        };
        w("app/keep.txt", b"keep\n");
        w("app/change.txt", b"old\n");
        w("app/gone.txt", b"gone\n");
        w("app/old-name.txt", b"renamed\n");
        w("app/run.sh", b"#!/bin/sh\n");
        w("app/x", b"file that becomes a dir\n");
        w("app/dir/a", b"a\n");
        w("app/dir/b", b"b\n");
        symlink("keep.txt", d.join("app/link")).unwrap();
        w("outside.txt", b"not in app\n");
        let from = commit(d);
        w("app/change.txt", b"new\n");
        std::fs::remove_file(d.join("app/gone.txt")).unwrap();
        std::fs::rename(d.join("app/old-name.txt"), d.join("app/new-name.txt")).unwrap();
        std::fs::set_permissions(d.join("app/run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::remove_file(d.join("app/link")).unwrap();
        symlink("/etc/passwd", d.join("app/link")).unwrap();
        w("app/bin", &[0, 159, 146, 150, 255]);
        std::fs::remove_file(d.join("app/x")).unwrap();
        w("app/x/inner", b"inner\n");
        std::fs::remove_dir_all(d.join("app/dir")).unwrap();
        w("outside.txt", b"changed outside\n");
        let to = commit(d);
        let repo = Repo::discover(d).unwrap();
        let oid = |p: &str| git(d, &["rev-parse", &format!("HEAD:{p}")]);
        assert_eq!(
            repo.diff(&from, &to, "app").unwrap(),
            [
                TreeChange::Deleted("dir/a".into()),
                TreeChange::Deleted("dir/b".into()),
                TreeChange::Deleted("gone.txt".into()),
                TreeChange::Deleted("old-name.txt".into()),
                TreeChange::Deleted("x".into()),
                written("bin", EntryKind::File, &oid("app/bin")),
                written("change.txt", EntryKind::File, &oid("app/change.txt")),
                written("link", EntryKind::Symlink, &oid("app/link")),
                written("new-name.txt", EntryKind::File, &oid("app/new-name.txt")),
                written("run.sh", EntryKind::Executable, &oid("app/run.sh")),
                written("x/inner", EntryKind::File, &oid("app/x/inner")),
            ]
        );
        assert_eq!(repo.blob(&oid("app/link")).unwrap(), b"/etc/passwd");
        assert_eq!(repo.blob_size(&oid("app/bin")).unwrap(), 5);
        assert_eq!(
            repo.entry(&to, "app/link").unwrap(),
            Some(TreeEntry { path: "app/link".into(), kind: EntryKind::Symlink, oid: oid("app/link") })
        );
        assert_eq!(repo.entry(&to, "app/x").unwrap(), None);
        assert_eq!(repo.entry(&to, "app/gone.txt").unwrap(), None);
        assert_eq!(repo.entry(&to, "app/bin/below").unwrap(), None);
        assert_eq!(repo.is_dir(&to, "app").unwrap(), Some(true));
        assert_eq!(repo.is_dir(&to, "app/link").unwrap(), Some(false));
        assert_eq!(repo.is_dir(&to, "app/nope").unwrap(), None);
        assert_eq!(repo.is_dir(&to, "app/bin/below").unwrap(), None);
        // The reverse direction, and a directory missing on one side.
        let back = repo.diff(&to, &from, "app").unwrap();
        assert!(back.contains(&TreeChange::Deleted("x/inner".into())));
        assert!(back.contains(&written("x", EntryKind::File, &git(d, &["rev-parse", &format!("{from}:app/x")]))));
        let created = repo.diff(&from, &to, "nowhere").unwrap();
        assert!(created.is_empty());
        assert_eq!(repo.diff(&to, &to, "").unwrap(), []);
    }

    #[test]
    fn diff_refuses_names_git_would_not_check_out() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        git(d, &["init", "-q", "-b", "main"]);
        let from = commit(d);
        // A tree with an entry named `.GIT`, written with plumbing.
        let blob = git(d, &["hash-object", "-w", "--stdin"]);
        let tree = Command::new("git")
            .arg("-C")
            .arg(d)
            .args(["mktree"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                writeln!(c.stdin.take().unwrap(), "100644 blob {blob}\t.GIT")?;
                c.wait_with_output()
            })
            .unwrap();
        let tree = String::from_utf8(tree.stdout).unwrap().trim().to_string();
        let to = git(d, &["commit-tree", &tree, "-p", &from, "-m", "bad"]);
        let err = repo_err(&Repo::discover(d).unwrap(), &from, &to);
        assert!(err.contains(".GIT"), "{err}");
    }

    fn repo_err(repo: &Repo, from: &str, to: &str) -> String {
        repo.diff(from, to, "").unwrap_err().to_string()
    }
}
