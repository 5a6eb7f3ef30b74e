//! Plain copies instead of overlayfs (`WERF_BUILDAH_STORAGE_DRIVER=vfs`, and the fallback
//! where overlayfs cannot be mounted, e.g. a store on overlayfs itself).
//!
//! [`materialize`] copies the layers (overlayfs format: whiteouts are 0/0 character
//! devices, opaque directories carry `user.overlay.opaque=y`) into an empty directory
//! and takes a [`Snapshot`] of it. After the step, [`diff`] writes what changed into an
//! upper directory in the same overlayfs format — new or changed entries (found by inode
//! and ctime, which no step can fake), and a whiteout for each removed path — so
//! committing and storing the layer is the same as with overlayfs.
//!
//! [`link_view`] is the read-only counterpart of [`materialize`]: the same layering,
//! but files are hard links to the layers' own inodes and only directories are created,
//! for a source that is read and never changed (`COPY --from`, a read-only
//! `RUN --mount=from=`).
//!
//! Owners are copied as [`crate::unpack`] sets them: with [`Ownership::Exact`] an owner
//! this user namespace cannot map (chown EINVAL) is [`StorageError::UnmappedCopyOwner`],
//! never a copy silently left owned by root; only [`Ownership::BestEffort`] (a single-id
//! namespace) tolerates it.

use crate::error::{Result, StorageError};
use crate::unpack::{ChownVerdict, OPAQUE_XATTR, Ownership, chown_verdict, keep_xattr_in_store};
use nix::sys::stat::{Mode, SFlag};
use nix::sys::time::TimeSpec;
use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Identity of every entry of a materialized rootfs, by path relative to it.
pub struct Snapshot {
    entries: HashMap<PathBuf, (u64, i64, i64)>,
}

/// Copy `lowers` (bottom first) into the empty directory `target`, with their owners
/// as strictly as `ownership` says.
pub fn materialize(lowers: &[PathBuf], target: &Path, ownership: Ownership) -> Result<Snapshot> {
    for lower in lowers {
        apply_layer(lower, target, &mut HashMap::new(), ownership, How::Copy)?;
    }
    let mut entries = HashMap::new();
    snapshot(target, Path::new(""), &mut entries)?;
    Ok(Snapshot { entries })
}

/// Lay `lowers` (bottom first) over the empty directory `target` as [`materialize`]
/// does, but for reading only: directories are created (with their metadata, owners as
/// strictly as `ownership` says) and everything else is a hard link to the layer's own
/// inode (a copy where the link fails, e.g. at the link-count limit). A write through
/// `target` would change a stored layer: callers only read it, or bind it read-only.
pub fn link_view(lowers: &[PathBuf], target: &Path, ownership: Ownership) -> Result<()> {
    for lower in lowers {
        apply_layer(lower, target, &mut HashMap::new(), ownership, How::Link)?;
    }
    Ok(())
}

/// How a layer's non-directory entries get into the tree.
#[derive(Clone, Copy, PartialEq, Eq)]
enum How {
    Copy,
    Link,
}

fn io(action: &'static str, p: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    StorageError::io(action, p)
}

fn sorted_names(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(io("reading directory", dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(io("reading directory", dir))?;
    names.sort();
    Ok(names)
}

fn is_whiteout(m: &std::fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

/// [`crate::MAX_TREE_DEPTH`] for the recursive walks here.
fn check_depth(dir: &Path, depth: usize) -> Result<()> {
    if depth >= crate::MAX_TREE_DEPTH {
        return Err(StorageError::TooDeep { path: dir.to_path_buf(), limit: crate::MAX_TREE_DEPTH });
    }
    Ok(())
}

/// Remove whatever is at `p`, never following a symlink.
fn remove_any(p: &Path) -> Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => crate::remove::remove_tree(p),
        Ok(_) => std::fs::remove_file(p).map_err(io("removing", p)),
        Err(_) => Ok(()),
    }
}

/// Lay one layer over `dst`. `links` maps (dev, inode) of the layer's files to their copy.
/// Iterative (one frame per level, at most [`crate::MAX_TREE_DEPTH`]); a directory's
/// own metadata is copied once its contents are.
fn apply_layer(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
    ownership: Ownership,
    how: How,
) -> Result<()> {
    type Frame = (PathBuf, PathBuf, std::vec::IntoIter<std::ffi::OsString>, Option<std::fs::Metadata>);
    let mut stack: Vec<Frame> = vec![(src.to_path_buf(), dst.to_path_buf(), sorted_names(src)?.into_iter(), None)];
    while let Some((src, dst, names, _)) = stack.last_mut() {
        let Some(name) = names.next() else {
            let (s, d, _, meta) = stack.pop().expect("non-empty");
            if let Some(meta) = meta {
                copy_metadata(&s, &meta, &d, ownership)?;
            }
            continue;
        };
        let (s, d) = (src.join(&name), dst.join(&name));
        let meta = std::fs::symlink_metadata(&s).map_err(io("stat", &s))?;
        if is_whiteout(&meta) {
            remove_any(&d)?;
            continue;
        }
        if meta.is_dir() {
            let existing = std::fs::symlink_metadata(&d).ok();
            if existing.as_ref().is_some_and(|m| !m.is_dir()) {
                remove_any(&d)?;
            }
            let opaque = crate::sys::lgetxattr(&s, OPAQUE_XATTR.as_bytes()).is_ok_and(|v| v == b"y");
            if opaque && existing.as_ref().is_some_and(|m| m.is_dir()) {
                remove_any(&d)?;
            }
            if std::fs::symlink_metadata(&d).is_err() {
                std::fs::create_dir(&d).map_err(io("creating", &d))?;
            }
            check_depth(&s, stack.len())?;
            let names = sorted_names(&s)?.into_iter();
            stack.push((s, d, names, Some(meta)));
        } else {
            remove_any(&d)?;
            if how == How::Link && link_entry(&s, &meta, &d) {
                continue;
            }
            copy_entry(&s, &meta, &d, links, ownership)?;
        }
    }
    Ok(())
}

/// Hard-link a file, symlink or fifo `s` at `d` (never following a symlink); false when
/// that is not possible and it must be copied instead.
fn link_entry(s: &Path, meta: &std::fs::Metadata, d: &Path) -> bool {
    let ft = meta.file_type();
    if !(ft.is_file() || ft.is_symlink() || ft.is_fifo()) {
        return false;
    }
    let cwd = nix::fcntl::AT_FDCWD;
    match nix::unistd::linkat(cwd, s, cwd, d, nix::fcntl::AtFlags::empty()) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(path = %s.display(), error = %e, "hard link failed, copying");
            false
        }
    }
}

/// Copy a non-directory entry (file, symlink, fifo), as a hardlink to an earlier copy of
/// the same inode when there is one.
fn copy_entry(
    s: &Path,
    meta: &std::fs::Metadata,
    d: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
    ownership: Ownership,
) -> Result<()> {
    let ft = meta.file_type();
    if ft.is_file() && meta.nlink() > 1 {
        if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
            return std::fs::hard_link(first, d).map_err(io("linking", d));
        }
        links.insert((meta.dev(), meta.ino()), d.to_path_buf());
    }
    if ft.is_symlink() {
        let target = std::fs::read_link(s).map_err(io("reading symlink", s))?;
        std::os::unix::fs::symlink(target, d).map_err(io("creating symlink", d))?;
    } else if ft.is_file() {
        std::fs::copy(s, d).map_err(io("copying to", d))?;
    } else if ft.is_fifo() {
        nix::unistd::mkfifo(d, Mode::from_bits_truncate(0o600))
            .map_err(StorageError::sys("mkfifo", d.display().to_string()))?;
    } else {
        tracing::warn!(path = %s.display(), "skipping a device or socket");
        return Ok(());
    }
    copy_metadata(s, meta, d, ownership)
}

/// Owner, mode, xattrs and times of `s` onto `d` (not following symlinks). A failed
/// chown is judged by [`chown_verdict`], as in unpack.
fn copy_metadata(s: &Path, meta: &std::fs::Metadata, d: &Path, ownership: Ownership) -> Result<()> {
    if let Err(e) = std::os::unix::fs::lchown(d, Some(meta.uid()), Some(meta.gid())) {
        let errno = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0));
        match chown_verdict(errno, ownership) {
            ChownVerdict::Counted => {
                tracing::debug!(path = %s.display(), uid = meta.uid(), gid = meta.gid(), error = %e, "owner not copied");
            }
            ChownVerdict::Unmapped => {
                return Err(StorageError::UnmappedCopyOwner {
                    path: s.to_path_buf(),
                    copy: d.to_path_buf(),
                    uid: meta.uid(),
                    gid: meta.gid(),
                });
            }
            ChownVerdict::Failed => return Err(io("chown", d)(e)),
        }
    }
    let symlink = meta.file_type().is_symlink();
    if !symlink {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(io("chmod", d))?;
        for name in crate::sys::llistxattr(s).unwrap_or_default() {
            let n = String::from_utf8_lossy(&name);
            if !keep_xattr_in_store(&n) {
                continue;
            }
            if let Ok(v) = crate::sys::lgetxattr(s, &name) {
                let _ = crate::sys::lsetxattr(d, &name, &v);
            }
        }
    }
    let atime = TimeSpec::new(meta.atime(), meta.atime_nsec());
    let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    nix::sys::stat::utimensat(nix::fcntl::AT_FDCWD, d, &atime, &mtime, nix::sys::stat::UtimensatFlags::NoFollowSymlink)
        .map_err(StorageError::sys("setting times of", d.display().to_string()))
}

fn snapshot(root: &Path, rel: &Path, out: &mut HashMap<PathBuf, (u64, i64, i64)>) -> Result<()> {
    let mut todo = vec![rel.to_path_buf()];
    while let Some(rel) = todo.pop() {
        let dir = root.join(&rel);
        check_depth(&dir, rel.components().count())?;
        for name in sorted_names(&dir)? {
            let r = rel.join(&name);
            let meta = std::fs::symlink_metadata(root.join(&r)).map_err(io("stat", &root.join(&r)))?;
            out.insert(r.clone(), (meta.ino(), meta.ctime(), meta.ctime_nsec()));
            if meta.is_dir() {
                todo.push(r);
            }
        }
    }
    Ok(())
}

/// Write the changes of `target` since `before` into the empty directory `upper`, in
/// overlayfs format, with owners as strictly as `ownership` says.
pub fn diff(target: &Path, before: &Snapshot, upper: &Path, ownership: Ownership) -> Result<()> {
    let mut links = HashMap::new();
    diff_dir(target, Path::new(""), before, upper, &mut links, ownership)?;
    // Removed paths: a whiteout for each one whose parent is still a directory. Parents
    // are checked component by component, never through a symlink the step may have put
    // in place of a directory (it could point anywhere on the host).
    let mut removed: Vec<&PathBuf> = before
        .entries
        .keys()
        .filter(|p| real_dir(target, p.parent().unwrap_or(Path::new(""))))
        .filter(|p| std::fs::symlink_metadata(target.join(p)).is_err())
        .collect();
    removed.sort();
    for p in removed {
        ensure_upper_dirs(target, upper, p.parent().unwrap_or(Path::new("")), ownership)?;
        let w = upper.join(p);
        nix::sys::stat::mknod(&w, SFlag::S_IFCHR, Mode::empty(), 0)
            .map_err(StorageError::sys("creating whiteout", w.display().to_string()))?;
    }
    Ok(())
}

/// Whether `rel` is a directory of `target` reached through directories only.
fn real_dir(target: &Path, rel: &Path) -> bool {
    let mut cur = target.to_path_buf();
    rel.components().all(|c| {
        cur.push(c);
        std::fs::symlink_metadata(&cur).is_ok_and(|m| m.is_dir())
    })
}

/// Depth first in sorted order, with an explicit stack (see [`apply_layer`]).
fn diff_dir(
    target: &Path,
    rel: &Path,
    before: &Snapshot,
    upper: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
    ownership: Ownership,
) -> Result<()> {
    let mut stack = vec![(rel.to_path_buf(), sorted_names(&target.join(rel))?.into_iter())];
    while let Some((rel, names)) = stack.last_mut() {
        let Some(name) = names.next() else {
            stack.pop();
            continue;
        };
        let rel = rel.clone();
        let r = rel.join(&name);
        let t = target.join(&r);
        let meta = std::fs::symlink_metadata(&t).map_err(io("stat", &t))?;
        let changed = before.entries.get(&r) != Some(&(meta.ino(), meta.ctime(), meta.ctime_nsec()));
        if meta.is_dir() {
            if changed {
                ensure_upper_dirs(target, upper, &r, ownership)?;
            }
            check_depth(&t, stack.len())?;
            let names = sorted_names(&t)?.into_iter();
            stack.push((r, names));
        } else if changed {
            ensure_upper_dirs(target, upper, &rel, ownership)?;
            copy_entry(&t, &meta, &upper.join(&r), links, ownership)?;
        }
    }
    Ok(())
}

/// Create `rel` and its parents in `upper`, with the metadata they have in `target`.
fn ensure_upper_dirs(target: &Path, upper: &Path, rel: &Path, ownership: Ownership) -> Result<()> {
    let mut cur = PathBuf::new();
    for c in rel.components() {
        cur.push(c);
        let u = upper.join(&cur);
        if std::fs::symlink_metadata(&u).is_ok() {
            continue;
        }
        std::fs::create_dir(&u).map_err(io("creating", &u))?;
        let t = target.join(&cur);
        let meta = std::fs::symlink_metadata(&t).map_err(io("stat", &t))?;
        copy_metadata(&t, &meta, &u, ownership)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_deeper_than_the_limit_are_refused_clearly() {
        let t = tempfile::tempdir().unwrap();
        let (lower, target) = (t.path().join("lower"), t.path().join("target"));
        std::fs::create_dir(&lower).unwrap();
        std::fs::create_dir(&target).unwrap();
        let mut fd = nix::fcntl::open(&lower, nix::fcntl::OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        for _ in 0..3000 {
            nix::sys::stat::mkdirat(&fd, "d", Mode::from_bits_truncate(0o755)).unwrap();
            fd = nix::fcntl::openat(&fd, "d", nix::fcntl::OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        }
        let (l, tg) = (lower.clone(), target.clone());
        let err = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || materialize(&[l], &tg, Ownership::Exact).map(|_| ()))
            .unwrap()
            .join()
            .expect("no stack overflow")
            .unwrap_err();
        assert!(matches!(err, StorageError::TooDeep { limit: crate::MAX_TREE_DEPTH, .. }), "{err:?}");
        assert!(err.to_string().contains(lower.to_str().unwrap()), "{err}");
        // The step's own deep tree: the diff refuses it the same way.
        crate::remove::remove_tree(&target).unwrap();
        std::fs::create_dir(&target).unwrap();
        let before = materialize(&[], &target, Ownership::Exact).unwrap();
        std::fs::remove_dir(&target).unwrap();
        std::fs::rename(&lower, &target).unwrap();
        let upper = t.path().join("upper");
        std::fs::create_dir(&upper).unwrap();
        let err = diff(&target, &before, &upper, Ownership::Exact).unwrap_err();
        assert!(matches!(err, StorageError::TooDeep { .. }), "{err:?}");
    }

    #[test]
    fn layers_apply_and_changes_come_back_as_an_upper_dir() {
        let t = tempfile::tempdir().unwrap();
        let (l1, l2, target, upper) =
            (t.path().join("l1"), t.path().join("l2"), t.path().join("m"), t.path().join("u"));
        for d in [&l1, &l2, &target, &upper] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::create_dir_all(l1.join("dir/sub")).unwrap();
        std::fs::write(l1.join("dir/sub/f"), "1").unwrap();
        std::fs::write(l1.join("keep"), "k").unwrap();
        std::fs::write(l1.join("gone"), "g").unwrap();
        std::fs::hard_link(l1.join("keep"), l1.join("keep2")).unwrap();
        std::os::unix::fs::symlink("keep", l1.join("link")).unwrap();
        // Layer 2 deletes "gone" with a whiteout, if this user may create one.
        let whiteouts = nix::sys::stat::mknod(&l2.join("gone"), SFlag::S_IFCHR, Mode::empty(), 0).is_ok();
        std::fs::write(l2.join("new"), "n").unwrap();

        let snap = materialize(&[l1.clone(), l2.clone()], &target, Ownership::Exact).unwrap();
        assert_eq!(std::fs::read_to_string(target.join("dir/sub/f")).unwrap(), "1");
        assert_eq!(target.join("gone").exists(), !whiteouts);
        assert_eq!(
            std::fs::metadata(target.join("keep")).unwrap().ino(),
            std::fs::metadata(target.join("keep2")).unwrap().ino()
        );
        assert_eq!(std::fs::read_link(target.join("link")).unwrap(), Path::new("keep"));

        // A step: change a file, add one, remove a file and a directory.
        std::fs::write(target.join("keep"), "changed").unwrap();
        std::fs::write(target.join("dir/added"), "a").unwrap();
        std::fs::remove_dir_all(target.join("dir/sub")).unwrap();
        std::fs::remove_file(target.join("link")).unwrap();
        if !whiteouts {
            return; // the rest needs whiteouts in `upper`
        }
        diff(&target, &snap, &upper, Ownership::Exact).unwrap();
        let mut got: Vec<String> = walk(&upper);
        got.sort();
        assert_eq!(got, ["dir/", "dir/added", "dir/sub (whiteout)", "keep", "keep2", "link (whiteout)"]);
    }

    #[test]
    fn a_view_links_the_layers_files_and_applies_whiteouts() {
        let t = tempfile::tempdir().unwrap();
        let (l1, l2, view, copy) = (t.path().join("l1"), t.path().join("l2"), t.path().join("v"), t.path().join("c"));
        for d in [&l1, &l2, &view, &copy] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::create_dir_all(l1.join("dir/sub")).unwrap();
        std::fs::write(l1.join("dir/sub/f"), "1").unwrap();
        std::fs::write(l1.join("dir/old"), "o").unwrap();
        std::fs::write(l1.join("keep"), "k").unwrap();
        std::fs::write(l1.join("gone"), "g").unwrap();
        std::fs::hard_link(l1.join("keep"), l1.join("keep2")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", l1.join("link")).unwrap();
        std::fs::set_permissions(l1.join("dir"), std::fs::Permissions::from_mode(0o750)).unwrap();
        // Layer 2 replaces `keep`, makes `dir` opaque and deletes `gone`, if this user may.
        std::fs::write(l2.join("keep"), "k2").unwrap();
        std::fs::create_dir(l2.join("dir")).unwrap();
        std::fs::write(l2.join("dir/new"), "n").unwrap();
        let whiteouts = nix::sys::stat::mknod(&l2.join("gone"), SFlag::S_IFCHR, Mode::empty(), 0).is_ok()
            && crate::sys::lsetxattr(&l2.join("dir"), OPAQUE_XATTR.as_bytes(), b"y").is_ok();

        link_view(&[l1.clone(), l2.clone()], &view, Ownership::Exact).unwrap();
        materialize(&[l1.clone(), l2.clone()], &copy, Ownership::Exact).unwrap();
        assert_eq!(walk(&view), walk(&copy), "a view shows what a copy shows");
        let ino = |p: &Path| std::fs::symlink_metadata(p).unwrap().ino();
        for (v, l) in [("keep", &l2), ("keep2", &l1), ("link", &l1), ("dir/new", &l2)] {
            assert_eq!(ino(&view.join(v)), ino(&l.join(v)), "{v} is the layer's own inode");
        }
        assert_eq!(std::fs::read_link(view.join("link")).unwrap(), Path::new("/etc/passwd"));
        assert_eq!(std::fs::read_to_string(view.join("keep")).unwrap(), "k2");
        assert_eq!(view.join("dir/old").exists(), !whiteouts);
        assert_eq!(view.join("gone").exists(), !whiteouts);
        // Directories are the view's own, with the layer's metadata.
        assert_ne!(ino(&view.join("dir")), ino(&l2.join("dir")));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode();
        assert_eq!(mode(&view.join("dir")), mode(&l2.join("dir")));
        crate::remove::remove_tree(&view).unwrap();
        assert_eq!(std::fs::read_to_string(l1.join("keep")).unwrap(), "k", "removing a view keeps the layers");
    }

    #[test]
    fn a_directory_replaced_by_a_symlink_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let (l1, target, upper, outside) =
            (t.path().join("l1"), t.path().join("m"), t.path().join("u"), t.path().join("outside"));
        for d in [&l1, &target, &upper, &outside] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::create_dir_all(l1.join("dir")).unwrap();
        std::fs::write(l1.join("dir/gone"), "x").unwrap();
        let snap = materialize(std::slice::from_ref(&l1), &target, Ownership::Exact).unwrap();
        // The step replaces the directory with a symlink to somewhere else.
        std::fs::remove_dir_all(target.join("dir")).unwrap();
        std::os::unix::fs::symlink(&outside, target.join("dir")).unwrap();
        diff(&target, &snap, &upper, Ownership::Exact).unwrap();
        assert_eq!(walk(&upper), ["dir"]);
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "a whiteout was written through the symlink");
    }

    const IN_USERNS: &str = "SLIPWAY_TEST_VFS_FOREIGN_FILE";

    /// Bind-mounts `file` over `at` (created empty).
    fn bind_file(file: &Path, at: &Path) {
        std::fs::write(at, "").unwrap();
        nix::mount::mount(Some(file), at, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>).unwrap();
    }

    fn unbind(at: &Path) {
        nix::mount::umount2(at, nix::mount::MntFlags::MNT_DETACH).unwrap();
    }

    #[test]
    fn unmapped_owner_fails_the_copy_in_a_real_user_namespace() {
        if let Some(foreign) = std::env::var_os(IN_USERNS) {
            // Inside `unshare -rm`: only our own id is mapped. `foreign` belongs to another
            // host user, so it shows as the overflow id here, which no chown can set.
            let foreign = PathBuf::from(foreign);
            let want = std::fs::read(&foreign).unwrap();
            let t = tempfile::tempdir().unwrap();
            let lower = t.path().join("lower");
            std::fs::create_dir_all(lower.join("etc")).unwrap();
            let src = lower.join("etc/foreign");
            bind_file(&foreign, &src);
            let owner = std::fs::symlink_metadata(&src).unwrap();
            assert_ne!(owner.uid(), 0, "the file must be owned by an id this namespace does not map");

            let exact = t.path().join("exact");
            std::fs::create_dir(&exact).unwrap();
            let e = materialize(std::slice::from_ref(&lower), &exact, Ownership::Exact).map(|_| ()).unwrap_err();
            assert!(
                matches!(&e, StorageError::UnmappedCopyOwner { path, uid, gid, .. }
                    if *path == src && *uid == owner.uid() && *gid == owner.gid()),
                "{e:?}"
            );
            let text = e.to_string();
            assert!(text.contains(src.to_str().unwrap()) && text.contains(&format!("uid {}", owner.uid())), "{text}");
            assert!(text.contains("/etc/subuid"), "{text}");

            // A single-id namespace tolerates it: the copy is root's, with the content.
            let lenient = t.path().join("lenient");
            std::fs::create_dir(&lenient).unwrap();
            let snap = materialize(std::slice::from_ref(&lower), &lenient, Ownership::BestEffort).unwrap();
            assert_eq!(std::fs::read(lenient.join("etc/foreign")).unwrap(), want);
            assert_eq!(std::fs::symlink_metadata(lenient.join("etc/foreign")).unwrap().uid(), 0);

            // The diff after a step copies owners by the same rule.
            let added = lenient.join("etc/added");
            bind_file(&foreign, &added);
            let upper = t.path().join("upper");
            std::fs::create_dir(&upper).unwrap();
            let e = diff(&lenient, &snap, &upper, Ownership::Exact).unwrap_err();
            assert!(matches!(&e, StorageError::UnmappedCopyOwner { path, .. } if *path == added), "{e:?}");
            let upper2 = t.path().join("upper2");
            std::fs::create_dir(&upper2).unwrap();
            diff(&lenient, &snap, &upper2, Ownership::BestEffort).unwrap();
            assert_eq!(std::fs::read(upper2.join("etc/added")).unwrap(), want);
            unbind(&added);
            unbind(&src);
            println!("{}", crate::userns_test::CHECKED);
            return;
        }
        // A readable file owned by someone else: /etc/passwd, or as root one given away.
        let t = tempfile::tempdir().unwrap();
        let foreign = if nix::unistd::geteuid().is_root() {
            let f = t.path().join("foreign");
            std::fs::write(&f, "owned by 1234\n").unwrap();
            std::os::unix::fs::lchown(&f, Some(1234), Some(1234)).unwrap();
            std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            f
        } else {
            PathBuf::from("/etc/passwd")
        };
        crate::userns_test::rerun_under_unshare(
            &["-r", "-m"],
            "vfs::tests::unmapped_owner_fails_the_copy_in_a_real_user_namespace",
            &[(IN_USERNS, foreign.as_os_str())],
            120,
        );
    }

    fn walk(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        fn go(root: &Path, rel: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(root.join(rel)).unwrap().flatten() {
                let r = rel.join(e.file_name());
                let m = std::fs::symlink_metadata(root.join(&r)).unwrap();
                let s = r.display().to_string();
                if m.is_dir() {
                    out.push(format!("{s}/"));
                    go(root, &r, out);
                } else if is_whiteout(&m) {
                    out.push(format!("{s} (whiteout)"));
                } else {
                    out.push(s);
                }
            }
        }
        go(root, Path::new(""), &mut out);
        out
    }
}
