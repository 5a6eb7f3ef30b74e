//! Writing git mappings into a stage rootfs: the whole tree of a commit (`gitArchive`)
//! or the changes between two commits (`gitCache`, `gitLatestPatch`, and the patch a
//! user stage applies before its commands). slipway does it itself, on the rootfs the
//! stage's layer is committed from: no git or patch tool in the image, and a deletion
//! becomes a whiteout in the layer by itself.
//!
//! Every destination is resolved inside the rootfs ([`Rootfs`], `openat2(RESOLVE_IN_ROOT)`),
//! new entries are created with `O_CREAT | O_EXCL | O_NOFOLLOW` after whatever was there
//! is unlinked (never written through), symlinks from the repository are created as
//! symlinks and never followed, and file content is streamed from the object database
//! ([`Repo::copy_blob`]), never held whole.

use super::git::Mapping;
use crate::frontend::dockerfile::copy::Rootfs;
use crate::git::{EntryKind, Repo, TreeChange, TreeEntry};
use anyhow::{Context, bail};
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::UnlinkatFlags;
use std::os::fd::OwnedFd;

/// Writes one mapping's entries into one rootfs, owned by the mapping's owner/group.
pub struct Writer<'a> {
    repo: &'a Repo,
    rootfs: &'a Rootfs,
    mapping: &'a Mapping,
    owner: (u32, u32),
}

impl<'a> Writer<'a> {
    /// The mapping's `owner`/`group` are looked up in the rootfs' `/etc/passwd` and
    /// `/etc/group` (names or ids, as werf's `--chown` takes them).
    pub fn new(repo: &'a Repo, rootfs: &'a Rootfs, mapping: &'a Mapping) -> anyhow::Result<Self> {
        let owner = match (&mapping.owner, &mapping.group) {
            (None, None) => (0, 0),
            (owner, group) => {
                let spec = match group {
                    Some(g) => format!("{}:{g}", owner.as_deref().unwrap_or("0")),
                    None => owner.clone().unwrap_or_default(),
                };
                crate::frontend::dockerfile::users::resolve_chown(
                    &spec,
                    &rootfs.read_file("/etc/passwd"),
                    &rootfs.read_file("/etc/group"),
                )
                .with_context(|| format!("git owner/group of the mapping at werf.yaml:{}", mapping.line))?
            }
        };
        Ok(Writer { repo, rootfs, mapping, owner })
    }

    /// Write every entry of the mapping in commit `rev` (werf refuses a mapping that
    /// takes no file).
    pub fn archive(&self, rev: &str) -> anyhow::Result<()> {
        let entries = self.mapping.entries(self.repo, rev)?;
        if entries.is_empty() {
            bail!(
                "git add /{} (werf.yaml:{}) takes no file from commit {rev} (check add, includePaths, excludePaths)",
                self.mapping.add,
                self.mapping.line
            );
        }
        self.rootfs.mkdir_all(&self.parent_of_to(), self.owner)?;
        for e in &entries {
            self.write(e)?;
        }
        Ok(())
    }

    /// Apply the changes from commit `from` to commit `to`; returns how many there were.
    pub fn patch(&self, from: &str, to: &str) -> anyhow::Result<usize> {
        let changes = self.mapping.changes(self.repo, from, to)?;
        for c in &changes {
            match c {
                TreeChange::Deleted(path) => self.delete(path)?,
                TreeChange::Written(e) => self.write(e)?,
            }
        }
        Ok(changes.len())
    }

    fn parent_of_to(&self) -> String {
        let to = self.mapping.to.trim_end_matches('/');
        match to.rsplit_once('/') {
            Some(("", _)) | None => "/".into(),
            Some((p, _)) => p.into(),
        }
    }

    /// Create `e` at its destination, replacing a file or symlink that is there.
    fn write(&self, e: &TreeEntry) -> anyhow::Result<()> {
        let dest = self.mapping.dest(&e.path);
        let (parent_path, name) = split(&dest)?;
        let parent = self.rootfs.mkdir_all(parent_path, self.owner)?;
        remove_non_dir(&parent, name, &dest)?;
        let (uid, gid) = self.owner;
        match e.kind {
            EntryKind::Symlink => {
                let target = self
                    .repo
                    .symlink_target(&e.oid)?
                    .with_context(|| format!("symlink {dest}: its target is longer than 4096 bytes"))?;
                let target = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&target);
                nix::unistd::symlinkat(target, &parent, name).with_context(|| format!("creating symlink {dest}"))?;
                crate::frontend::dockerfile::copy::chown_symlink(&parent, name, (uid, gid), &dest)?;
            }
            EntryKind::File | EntryKind::Executable => {
                let fd = nix::fcntl::openat(
                    &parent,
                    name,
                    OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .with_context(|| format!("creating {dest} in the image"))?;
                let mut out = std::fs::File::from(fd);
                self.repo.copy_blob(&e.oid, &mut out).with_context(|| format!("writing {dest}"))?;
                let fd = OwnedFd::from(out);
                let mode = if e.kind == EntryKind::Executable { 0o755 } else { 0o644 };
                crate::frontend::dockerfile::copy::chown_fd(&fd, (uid, gid), mode)
                    .with_context(|| format!("chown {dest}"))?;
                nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode))?;
            }
            EntryKind::Submodule => {}
        }
        Ok(())
    }

    /// Remove the file or symlink at `rel`, then the directories it leaves empty, up to
    /// the mapping's `to` (as `git apply` removes emptied directories).
    fn delete(&self, rel: &str) -> anyhow::Result<()> {
        let dest = self.mapping.dest(rel);
        let (parent_path, name) = split(&dest)?;
        let Ok(parent) = self.rootfs.open_path(parent_path) else { return Ok(()) };
        remove_non_dir(&parent, name, &dest)?;
        let to = self.mapping.to.trim_end_matches('/');
        let mut dir = parent_path.to_string();
        while dir != "/" && dir.len() > to.len() && dir.starts_with(to) {
            let (up, name) = split(&dir)?;
            let Ok(up_fd) = self.rootfs.open_path(up) else { break };
            if nix::unistd::unlinkat(&up_fd, name, UnlinkatFlags::RemoveDir).is_err() {
                break;
            }
            dir = up.to_string();
        }
        Ok(())
    }
}

/// Unlink a file or symlink `name` in `parent`; a directory there is an error (a git
/// file never replaces a directory of the image).
fn remove_non_dir(parent: &OwnedFd, name: &str, dest: &str) -> anyhow::Result<()> {
    let Ok(st) = nix::sys::stat::fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) else { return Ok(()) };
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        bail!("cannot write git file {dest}: a directory is in the way");
    }
    nix::unistd::unlinkat(parent, name, UnlinkatFlags::NoRemoveDir).with_context(|| format!("replacing {dest}"))
}

fn split(dest: &str) -> anyhow::Result<(&str, &str)> {
    match dest.trim_end_matches('/').rsplit_once('/') {
        Some((p, n)) if !n.is_empty() && n != "." && n != ".." => Ok((if p.is_empty() { "/" } else { p }, n)),
        _ => bail!("invalid git destination {dest:?}"),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::config::GitMapping;
    use std::path::Path;

    pub(in crate::frontend::stapel) fn git(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "T")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "T")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub(in crate::frontend::stapel) fn commit(dir: &Path) -> String {
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "--no-gpg-sign", "-m", "c"]);
        git(dir, &["rev-parse", "HEAD"])
    }

    /// The archive, then a patch with every kind of change, in a plain directory as the
    /// rootfs; a symlink to the host's `/etc/passwd` stays a symlink, nothing is read
    /// through it.
    #[test]
    fn archive_then_patch() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
        let tmp = tempfile::tempdir().unwrap();
        let (repo_dir, root) = (tmp.path().join("repo"), tmp.path().join("rootfs"));
        std::fs::create_dir_all(repo_dir.join("src/sub")).unwrap();
        std::fs::create_dir(&root).unwrap();
        git(&repo_dir, &["init", "-q", "-b", "main"]);
        let w = |p: &str, c: &str| std::fs::write(repo_dir.join(p), c).unwrap();
        w("src/a.txt", "a1\n");
        w("src/sub/b.txt", "b\n");
        w("src/skip.md", "excluded\n");
        symlink("/etc/passwd", repo_dir.join("src/passwd")).unwrap();
        w("top.txt", "outside add\n");
        let c1 = commit(&repo_dir);
        let repo = Repo::discover(&repo_dir).unwrap();
        let uid = nix::unistd::getuid().as_raw().to_string();
        let config = GitMapping {
            line: 3,
            source: crate::config::GitSource::Local,
            add: "/src".into(),
            to: "/app".into(),
            owner: Some(uid.clone()),
            group: Some(nix::unistd::getgid().as_raw().to_string()),
            include_paths: vec![],
            exclude_paths: vec!["*.md".into()],
            stage_dependencies: Default::default(),
            lfs: false,
        };
        let source = super::super::git::Source {
            repo: repo.clone(),
            head: c1.clone(),
            full_name: "own".into(),
            refs: Default::default(),
            shown: "repo".into(),
        };
        let mappings = Mapping::prepare(&[source], &[0], &[config]).unwrap();
        let rootfs = Rootfs::open(&root).unwrap();
        let writer = Writer::new(&repo, &rootfs, &mappings[0]).unwrap();
        writer.archive(&c1).unwrap();
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
        assert_eq!(read("app/a.txt"), "a1\n");
        assert_eq!(read("app/sub/b.txt"), "b\n");
        assert!(!root.join("app/skip.md").exists());
        assert!(!root.join("app/top.txt").exists());
        let link = std::fs::symlink_metadata(root.join("app/passwd")).unwrap();
        assert!(link.file_type().is_symlink());
        assert_eq!(std::fs::read_link(root.join("app/passwd")).unwrap(), Path::new("/etc/passwd"));
        assert_eq!(std::fs::metadata(root.join("app/a.txt")).unwrap().mode() & 0o7777, 0o644);
        // Change, delete (the emptied directory goes too), add executable, retarget.
        w("src/a.txt", "a2\n");
        std::fs::remove_dir_all(repo_dir.join("src/sub")).unwrap();
        w("src/run.sh", "#!/bin/sh\n");
        std::fs::set_permissions(repo_dir.join("src/run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::remove_file(repo_dir.join("src/passwd")).unwrap();
        symlink("a.txt", repo_dir.join("src/passwd")).unwrap();
        let c2 = commit(&repo_dir);
        assert_eq!(writer.patch(&c1, &c2).unwrap(), 4);
        assert_eq!(read("app/a.txt"), "a2\n");
        assert!(!root.join("app/sub").exists());
        assert_eq!(std::fs::metadata(root.join("app/run.sh")).unwrap().mode() & 0o7777, 0o755);
        assert_eq!(std::fs::read_link(root.join("app/passwd")).unwrap(), Path::new("a.txt"));
        // The same mapping to `/`: emptied directories go up to the root, never it.
        let root2 = tmp.path().join("rootfs2");
        std::fs::create_dir(&root2).unwrap();
        let at_root = Mapping { to: "/".into(), ..mappings[0].clone() };
        let rootfs2 = Rootfs::open(&root2).unwrap();
        let writer2 = Writer::new(&repo, &rootfs2, &at_root).unwrap();
        writer2.archive(&c1).unwrap();
        assert_eq!(std::fs::read_to_string(root2.join("sub/b.txt")).unwrap(), "b\n");
        writer2.patch(&c1, &c2).unwrap();
        assert!(!root2.join("sub").exists());
        assert_eq!(std::fs::read_to_string(root2.join("a.txt")).unwrap(), "a2\n");
        // A mapping that takes nothing is refused, naming it.
        let empty = Mapping {
            filter: super::super::git::PathFilter { include: vec!["none".into()], exclude: vec![] },
            ..mappings[0].clone()
        };
        let err = Writer::new(&repo, &rootfs, &empty).unwrap().archive(&c2).unwrap_err().to_string();
        assert!(err.starts_with("git add /src (werf.yaml:3) takes no file from commit"), "{err}");
    }
}
