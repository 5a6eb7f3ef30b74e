//! What one Stapel `import` takes from its source, and writing it into a stage rootfs.
//!
//! - [`Tree::walk`]: `add` and below, through `includePaths`/`excludePaths` as werf's
//!   path matcher applies them (`git::PathFilter`);
//! - [`Tree::checksum`]: what the dependencies stage's digest covers;
//! - [`Tree::copy`]: the entries written by slipway itself (no helper container, no tool
//!   in the image): owners kept unless `owner`/`group` are given, modes (set-id bits
//!   too), symlinks as symlinks, hard links within the import as hard links, the xattrs
//!   a layer may carry, file mtimes.
//!
//! The source is a read-only view of stored layers. `add` is resolved inside its root
//! (its last component not followed, as werf's `resolveContainerRootPathNoFollow`);
//! below it nothing is followed: a symlink is data, only directories are entered.
//! Destinations are resolved inside the stage rootfs ([`Rootfs`]) and created with
//! `O_EXCL|O_NOFOLLOW` after whatever non-directory was there is unlinked.

use super::git::PathFilter;
use crate::frontend::dockerfile::copy::Rootfs;
use anyhow::{Context, bail};
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode};
use nix::unistd::UnlinkatFlags;
use sha2::{Digest as _, Sha256};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How deep an imported tree may be.
const MAX_DEPTH: usize = 512;
/// How many entries one import may take.
const MAX_ENTRIES: usize = 1_000_000;

/// The checksum of an import that takes nothing.
pub const EMPTY_CHECKSUM: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What one import takes from its source.
pub struct Tree {
    /// `add` as written (the checksum names entries `/add/rel`, as werf does).
    add: String,
    /// Whether `add` is a directory (its entries go below `to`) or not (it goes to `to`,
    /// or into `to` when that is a directory).
    is_dir: bool,
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    /// Relative to `add` (`""`: `add` itself).
    rel: String,
    /// The entry on disk inside the source view (every directory on the way was seen
    /// as a directory, not followed).
    real: PathBuf,
    stat: FileStat,
    link: Option<OsString>,
}

impl Entry {
    fn kind(&self) -> u32 {
        self.stat.st_mode & libc::S_IFMT
    }
}

impl Tree {
    /// The entries `add` (absolute, inside `root`) and `filter` select, parents first.
    /// A directory on the way to a selected entry is taken too (with its own owner and
    /// mode, as werf's copy creates it); the `add` directory itself is taken when
    /// anything below it is.
    pub fn walk(root: &Path, add: &str, filter: &PathFilter) -> anyhow::Result<Tree> {
        // The view's own path, symlinks resolved, so the resolved `add` can be checked
        // to be inside it.
        let root = &std::fs::canonicalize(root).with_context(|| format!("locating {}", root.display()))?;
        let top = resolve_no_follow(root, add)?;
        let stat = nix::sys::stat::lstat(&top).with_context(|| format!("add {add} does not exist in the source"))?;
        let stat = effective(&top, stat)?;
        let mut tree =
            Tree { add: add.to_string(), is_dir: stat.st_mode & libc::S_IFMT == libc::S_IFDIR, entries: vec![] };
        let top = Entry { rel: String::new(), real: top, stat, link: None };
        if !tree.is_dir {
            if !matches!(stat.st_mode & libc::S_IFMT, libc::S_IFREG | libc::S_IFLNK) {
                bail!("add {add}: only files, directories and symlinks can be imported");
            }
            if filter.matches("") {
                tree.push_leaf(top)?;
            }
            return Ok(tree);
        }
        // Depth-first, names sorted. `pending[d]`: the directory being listed at depth d,
        // `Some` while nothing below it was taken (it is taken with the first thing that is).
        let root = top.real.clone();
        let mut pending: Vec<Option<Entry>> = vec![Some(top)];
        let mut stack: Vec<(usize, String, PathBuf, std::vec::IntoIter<OsString>)> =
            vec![(0, String::new(), root.clone(), sorted_names(&root)?)];
        while let Some((depth, parent_rel, parent_real, names)) = stack.last_mut() {
            let depth = *depth;
            let Some(name) = names.next() else {
                stack.pop();
                pending.truncate(depth);
                continue;
            };
            let name_str = name.to_str().with_context(|| format!("{add}/{parent_rel}: a name that is not UTF-8"))?;
            let rel = if parent_rel.is_empty() { name_str.to_string() } else { format!("{parent_rel}/{name_str}") };
            let real = parent_real.join(&name);
            let stat = nix::sys::stat::lstat(&real).with_context(|| format!("reading {add}/{rel}"))?;
            let stat = effective(&real, stat)?;
            pending.truncate(depth + 1);
            match stat.st_mode & libc::S_IFMT {
                libc::S_IFDIR => {
                    let matched = filter.matches(&rel);
                    if !matched && !go_through(filter, &rel) {
                        continue;
                    }
                    if depth + 1 >= MAX_DEPTH {
                        bail!("{add}/{rel}: the imported tree is deeper than {MAX_DEPTH} levels");
                    }
                    let names = sorted_names(&real)?;
                    pending.push(Some(Entry { rel: rel.clone(), real: real.clone(), stat, link: None }));
                    if matched {
                        tree.take(&mut pending)?;
                    }
                    stack.push((depth + 1, rel, real, names));
                }
                libc::S_IFREG | libc::S_IFLNK => {
                    if !filter.matches(&rel) {
                        continue;
                    }
                    let link = if stat.st_mode & libc::S_IFMT == libc::S_IFLNK {
                        Some(std::fs::read_link(&real).with_context(|| format!("reading symlink {add}/{rel}"))?.into())
                    } else {
                        None
                    };
                    tree.take(&mut pending)?;
                    tree.push_leaf(Entry { rel, real, stat, link })?;
                }
                _ => tracing::warn!("import: {add}/{rel} is not a file, directory or symlink: not copied"),
            }
        }
        Ok(tree)
    }

    /// Take the directories on the way that are not taken yet.
    fn take(&mut self, pending: &mut [Option<Entry>]) -> anyhow::Result<()> {
        for e in pending.iter_mut() {
            if let Some(e) = e.take() {
                self.entries.push(e);
                self.check_size()?;
            }
        }
        Ok(())
    }

    fn push_leaf(&mut self, e: Entry) -> anyhow::Result<()> {
        if e.kind() == libc::S_IFLNK && e.link.is_none() {
            let link = std::fs::read_link(&e.real).with_context(|| format!("reading symlink {}", self.add))?;
            self.entries.push(Entry { link: Some(link.into()), ..e });
        } else {
            self.entries.push(e);
        }
        self.check_size()
    }

    fn check_size(&self) -> anyhow::Result<()> {
        if self.entries.len() > MAX_ENTRIES {
            bail!("{}: the import takes more than {MAX_ENTRIES} entries", self.add);
        }
        Ok(())
    }

    /// The checksum of what the import takes (werf's import checksum, with sha256 and
    /// more per entry): per entry in walk order its path `/add/rel`, kind, mode, owner,
    /// content (sha256 of a file, the target of a symlink) and, for a later name of a
    /// hard-linked file, the first name.
    pub fn checksum(&self) -> anyhow::Result<String> {
        let mut h = Sha256::new();
        let mut field = |b: &[u8]| {
            h.update(b.len().to_string());
            h.update(":");
            h.update(b);
        };
        let mut links: std::collections::HashMap<(u64, u64), &str> = Default::default();
        for e in &self.entries {
            field(self.shown(e).as_bytes());
            let kind = match e.kind() {
                libc::S_IFDIR => "dir",
                libc::S_IFLNK => "symlink",
                _ => "file",
            };
            field(kind.as_bytes());
            field(format!("{:o} {}:{}", e.stat.st_mode & 0o7777, e.stat.st_uid, e.stat.st_gid).as_bytes());
            let xattrs = if e.link.is_some() { Vec::new() } else { xattrs(e)? };
            field(xattrs.len().to_string().as_bytes());
            for (name, value) in &xattrs {
                field(name.as_bytes());
                field(value);
            }
            match (&e.link, e.kind()) {
                (Some(target), _) => field(target.as_bytes()),
                (None, libc::S_IFREG) => {
                    let key = (e.stat.st_dev, e.stat.st_ino);
                    if e.stat.st_nlink > 1
                        && let Some(first) = links.get(&key)
                    {
                        field(format!("link:{first}").as_bytes());
                        continue;
                    }
                    links.insert(key, &e.rel);
                    let mut file = open_source(e).with_context(|| format!("reading {}", self.shown(e)))?;
                    let mut fh = Sha256::new();
                    std::io::copy(&mut file, &mut fh).with_context(|| format!("reading {}", self.shown(e)))?;
                    field(hex::encode(fh.finalize()).as_bytes());
                }
                (None, _) => field(b""),
            }
        }
        Ok(hex::encode(h.finalize()))
    }

    fn shown(&self, e: &Entry) -> String {
        if e.rel.is_empty() { self.add.clone() } else { format!("{}/{}", self.add.trim_end_matches('/'), e.rel) }
    }

    /// Write the entries into `rootfs` at `to`, owned by `owner` where given (uid, gid)
    /// and by their source owner otherwise; missing directories above `to` are made
    /// with mode 0755, owned by `parents` (root in a build).
    pub fn copy(
        &self,
        rootfs: &Rootfs,
        to: &str,
        owner: (Option<u32>, Option<u32>),
        parents: (u32, u32),
    ) -> anyhow::Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        // A file or symlink goes into `to` when that is a directory (werf's
        // `normalizeDependencyImportDestination`).
        let base = if !self.is_dir && rootfs.is_dir(to) {
            let name = self.add.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
            format!("{}/{name}", to.trim_end_matches('/'))
        } else {
            to.to_string()
        };
        if base == "/" && !self.is_dir {
            bail!("cannot import {} to /", self.add);
        }
        let mut links: std::collections::HashMap<(u64, u64), String> = Default::default();
        for e in &self.entries {
            let dest =
                if e.rel.is_empty() { base.clone() } else { format!("{}/{}", base.trim_end_matches('/'), e.rel) };
            let ids = (owner.0.unwrap_or(e.stat.st_uid), owner.1.unwrap_or(e.stat.st_gid));
            if dest == "/" {
                // `to: /`: the root directory stays as it is; only what is below is taken.
                continue;
            }
            let (parent_path, name) = split(&dest)?;
            let parent = rootfs.mkdir_all(parent_path, parents)?;
            let existing = nix::sys::stat::fstatat(&parent, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok();
            let existing_dir = existing.is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
            match e.kind() {
                libc::S_IFDIR => {
                    if existing.is_some() && !existing_dir {
                        nix::unistd::unlinkat(&parent, name, UnlinkatFlags::NoRemoveDir)
                            .with_context(|| format!("replacing {dest}"))?;
                    }
                    if !existing_dir {
                        nix::sys::stat::mkdirat(&parent, name, Mode::from_bits_truncate(0o700))
                            .with_context(|| format!("creating directory {dest}"))?;
                    }
                    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                    let fd = nix::fcntl::openat(&parent, name, flags, Mode::empty())
                        .with_context(|| format!("opening {dest}"))?;
                    finish(&fd, e, ids, &dest, false)?;
                }
                kind => {
                    if existing_dir {
                        bail!("cannot import {} to {dest}: a directory is in the way", self.shown(e));
                    }
                    if existing.is_some() {
                        nix::unistd::unlinkat(&parent, name, UnlinkatFlags::NoRemoveDir)
                            .with_context(|| format!("replacing {dest}"))?;
                    }
                    if let Some(target) = &e.link {
                        nix::unistd::symlinkat(target.as_os_str(), &parent, name)
                            .with_context(|| format!("creating symlink {dest}"))?;
                        crate::frontend::dockerfile::copy::chown_symlink(&parent, name, ids, &dest)?;
                        continue;
                    }
                    debug_assert_eq!(kind, libc::S_IFREG);
                    let key = (e.stat.st_dev, e.stat.st_ino);
                    if e.stat.st_nlink > 1
                        && let Some(first) = links.get(&key)
                    {
                        let (first_parent, first_name) = split(first)?;
                        let first_dir = rootfs.open_path(first_parent)?;
                        nix::unistd::linkat(&first_dir, first_name, &parent, name, AtFlags::empty())
                            .with_context(|| format!("linking {dest} to {first}"))?;
                        continue;
                    }
                    let mut input = open_source(e).with_context(|| format!("reading {}", self.shown(e)))?;
                    let fd = nix::fcntl::openat(
                        &parent,
                        name,
                        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o600),
                    )
                    .with_context(|| format!("creating {dest}"))?;
                    let mut out = std::fs::File::from(fd);
                    std::io::copy(&mut input, &mut out).with_context(|| format!("writing {dest}"))?;
                    finish(&OwnedFd::from(out), e, ids, &dest, true)?;
                    if e.stat.st_nlink > 1 {
                        links.insert(key, dest);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The owner a single-id namespace recorded for a root-owned source entry (its own
/// record, or its directory's for a symlink) in place of the real one, so the import
/// and its checksum are those of a full id range.
fn effective(real: &Path, mut stat: nix::sys::stat::FileStat) -> anyhow::Result<nix::sys::stat::FileStat> {
    if stat.st_uid != 0 || stat.st_gid != 0 {
        return Ok(stat);
    }
    let recorded = match stat.st_mode & libc::S_IFMT {
        libc::S_IFLNK => {
            let (Some(parent), Some(name)) = (real.parent(), real.file_name()) else { return Ok(stat) };
            let meta = std::fs::symlink_metadata(real).with_context(|| format!("reading {}", real.display()))?;
            slipway_storage::child_owners::recorded(parent, name.as_encoded_bytes(), &meta)
        }
        _ => slipway_storage::owner::recorded(real, 0, 0).map(|o| (o.uid, o.gid)),
    };
    if let Some((uid, gid)) = recorded {
        (stat.st_uid, stat.st_gid) = (uid, gid);
    }
    Ok(stat)
}

/// Owner (recorded in a single-id namespace), then mode (so set-id bits survive the
/// chown), xattrs, and a file's mtime.
fn finish(fd: &OwnedFd, e: &Entry, ids: (u32, u32), dest: &str, file: bool) -> anyhow::Result<()> {
    crate::frontend::dockerfile::copy::chown_fd(fd, ids, e.stat.st_mode & 0o7777)
        .with_context(|| format!("setting the owner of {dest}"))?;
    nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(e.stat.st_mode & 0o7777))
        .with_context(|| format!("chmod {dest}"))?;
    for (name, value) in xattrs(e)? {
        slipway_storage::xattr::set(fd, &name, &value).with_context(|| format!("setting xattr {name} on {dest}"))?;
    }
    if file {
        let t = nix::sys::time::TimeSpec::new(e.stat.st_mtime, e.stat.st_mtime_nsec);
        nix::sys::stat::futimens(fd, &t, &t).with_context(|| format!("setting the mtime of {dest}"))?;
    }
    Ok(())
}

/// The xattrs of a source entry a layer may carry, sorted by name.
fn xattrs(e: &Entry) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    slipway_storage::xattr::kept(&e.real).with_context(|| format!("reading the xattrs of {}", e.real.display()))
}

/// A regular file of the source, opened without following a symlink and checked to be
/// the regular file the walk saw (nothing that could block, like a fifo).
fn open_source(e: &Entry) -> anyhow::Result<std::fs::File> {
    let fd = nix::fcntl::open(
        &e.real,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let st = nix::sys::stat::fstat(&fd)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_ino != e.stat.st_ino {
        bail!("the file changed while it was imported");
    }
    Ok(std::fs::File::from(fd))
}

/// `add` inside `root`: its directory resolved inside the root (symlinks on the way
/// followed as in the container), its last component not followed.
fn resolve_no_follow(root: &Path, add: &str) -> anyhow::Result<PathBuf> {
    let trimmed = add.trim_end_matches('/');
    let (dir, name) = match trimmed.rsplit_once('/') {
        Some((d, n)) if !n.is_empty() && n != "." && n != ".." => (if d.is_empty() { "/" } else { d }, Some(n)),
        _ if trimmed.is_empty() => ("/", None),
        _ => bail!("invalid add {add:?}"),
    };
    let fd = Rootfs::open(root)?
        .open_path(dir)
        .with_context(|| format!("add {add}: {dir} cannot be resolved in the source"))?;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .with_context(|| format!("add {add}: locating {dir}"))?;
    if !real.starts_with(root) {
        bail!("add {add}: {dir} resolves outside the source");
    }
    Ok(match name {
        Some(n) => real.join(n),
        None => real,
    })
}

/// The names in a directory of the source, sorted.
fn sorted_names(dir: &Path) -> anyhow::Result<std::vec::IntoIter<OsString>> {
    let mut names: Vec<OsString> = std::fs::read_dir(dir)
        .with_context(|| format!("reading directory {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading directory {}", dir.display()))?;
    names.sort();
    Ok(names.into_iter())
}

/// Whether a directory that `filter` does not select may hold something it selects:
/// not excluded, and on the way to an include glob (werf's `ShouldGoThrough`: the
/// glob's leading components match the directory's, or one of them is `**`).
fn go_through(filter: &PathFilter, dir: &str) -> bool {
    if filter.exclude.iter().any(|g| super::git::glob_covers(g, dir)) {
        return false;
    }
    if filter.include.is_empty() {
        return true;
    }
    let parts: Vec<&str> = dir.split('/').collect();
    filter.include.iter().any(|glob| {
        let globs: Vec<&str> = glob.trim_matches('/').split('/').filter(|p| !p.is_empty() && *p != ".").collect();
        for (k, part) in parts.iter().enumerate() {
            let Some(g) = globs.get(k) else { return false };
            if g.contains("**") {
                return true;
            }
            if !crate::project::glob_match(g, part).unwrap_or(false) {
                return false;
            }
        }
        globs.len() > parts.len()
    })
}

fn split(dest: &str) -> anyhow::Result<(&str, &str)> {
    let d = dest.trim_end_matches('/');
    match d.rsplit_once('/') {
        Some((p, n)) if !n.is_empty() && n != "." && n != ".." => Ok((if p.is_empty() { "/" } else { p }, n)),
        _ => bail!("invalid destination {dest:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn filter(include: &[&str], exclude: &[&str]) -> PathFilter {
        PathFilter {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn rels(t: &Tree) -> Vec<&str> {
        t.entries.iter().map(|e| e.rel.as_str()).collect()
    }

    fn source_tree() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let s = tmp.path().join("out");
        std::fs::create_dir_all(s.join("bin/sub")).unwrap();
        std::fs::create_dir_all(s.join("doc")).unwrap();
        std::fs::create_dir_all(s.join("empty")).unwrap();
        std::fs::write(s.join("bin/app"), "app").unwrap();
        std::fs::write(s.join("bin/secret"), "x").unwrap();
        std::fs::write(s.join("bin/sub/a.txt"), "a").unwrap();
        std::fs::write(s.join("doc/readme"), "r").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", s.join("bin/link")).unwrap();
        std::fs::hard_link(s.join("bin/app"), s.join("bin/app2")).unwrap();
        tmp
    }

    #[test]
    fn walks_with_werfs_include_and_exclude_rules() {
        let tmp = source_tree();
        let all = Tree::walk(tmp.path(), "/out", &filter(&[], &[])).unwrap();
        assert_eq!(
            rels(&all),
            [
                "",
                "bin",
                "bin/app",
                "bin/app2",
                "bin/link",
                "bin/secret",
                "bin/sub",
                "bin/sub/a.txt",
                "doc",
                "doc/readme",
                "empty"
            ]
        );
        let some = Tree::walk(tmp.path(), "/out", &filter(&["bin"], &["bin/secret", "**/*.txt"])).unwrap();
        assert_eq!(rels(&some), ["", "bin", "bin/app", "bin/app2", "bin/link", "bin/sub"]);
        // A directory on the way to an include glob is taken only as a parent.
        let deep = Tree::walk(tmp.path(), "/out", &filter(&["bin/sub/*.txt"], &[])).unwrap();
        assert_eq!(rels(&deep), ["", "bin", "bin/sub", "bin/sub/a.txt"]);
        let none = Tree::walk(tmp.path(), "/out", &filter(&["nothing"], &[])).unwrap();
        assert!(rels(&none).is_empty());
        assert_eq!(none.checksum().unwrap(), EMPTY_CHECKSUM);
        // A file add is one entry; a symlink add is the symlink.
        let file = Tree::walk(tmp.path(), "/out/bin/link", &filter(&[], &[])).unwrap();
        assert_eq!(rels(&file), [""]);
        assert_eq!(file.entries[0].link.as_deref(), Some(std::ffi::OsStr::new("/etc/passwd")));
    }

    #[test]
    fn the_checksum_covers_content_modes_links_and_paths() {
        let tmp = source_tree();
        let sum = |add: &str| Tree::walk(tmp.path(), add, &filter(&[], &[])).unwrap().checksum().unwrap();
        let before = sum("/out");
        assert_eq!(before, sum("/out"));
        std::fs::write(tmp.path().join("out/doc/readme"), "changed").unwrap();
        let content = sum("/out");
        assert_ne!(before, content);
        std::fs::set_permissions(tmp.path().join("out/doc/readme"), std::fs::Permissions::from_mode(0o600)).unwrap();
        let mode = sum("/out");
        assert_ne!(content, mode);
        // An xattr (where the filesystem takes user xattrs).
        let f = std::fs::File::open(tmp.path().join("out/doc/readme")).unwrap();
        if slipway_storage::xattr::set(&f, "user.slipway", b"1").is_ok() {
            assert_ne!(mode, sum("/out"));
        }
        // The same files under another add are another import.
        std::fs::rename(tmp.path().join("out"), tmp.path().join("out2")).unwrap();
        assert_ne!(sum("/out2"), sum("/out2/bin"));
    }

    use std::os::unix::fs::PermissionsExt;

    /// The checksum byte for byte, as docs/ARCHITECTURE.md §7 describes it.
    #[test]
    fn checksum_encoding() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        std::fs::write(tmp.path().join("d/f"), "x").unwrap();
        std::fs::set_permissions(tmp.path().join("d"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(tmp.path().join("d/f"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
        let owner = format!("{uid}:{gid}");
        let x = hex::encode(Sha256::digest("x"));
        let fields = |items: &[&str]| items.iter().map(|f| format!("{}:{f}", f.len())).collect::<String>();
        let want = fields(&["/d", "dir", &format!("755 {owner}"), "0", ""])
            + &fields(&["/d/f", "file", &format!("644 {owner}"), "0", &x]);
        let tree = Tree::walk(tmp.path(), "/d", &filter(&[], &[])).unwrap();
        assert_eq!(tree.checksum().unwrap(), hex::encode(Sha256::digest(want)));
    }

    #[test]
    fn copies_owners_modes_symlinks_and_hard_links() {
        let tmp = source_tree();
        std::fs::set_permissions(tmp.path().join("out/bin/app"), std::fs::Permissions::from_mode(0o750)).unwrap();
        let app = std::fs::File::open(tmp.path().join("out/bin/app")).unwrap();
        let xattr = slipway_storage::xattr::set(&app, "user.slipway", b"kept").is_ok();
        slipway_storage::xattr::set(&app, "user.overlay.origin", b"forged").ok();
        let dst = tempfile::tempdir().unwrap();
        let rootfs = Rootfs::open(dst.path()).unwrap();
        let tree = Tree::walk(tmp.path(), "/out", &filter(&["bin"], &["bin/secret"])).unwrap();
        let me = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
        tree.copy(&rootfs, "/opt/app", (Some(me.0), None), me).unwrap();
        let meta = |p: &str| std::fs::symlink_metadata(dst.path().join(p)).unwrap();
        assert_eq!(meta("opt/app/bin/app").mode() & 0o7777, 0o750);
        assert_eq!(meta("opt/app/bin/app").ino(), meta("opt/app/bin/app2").ino());
        if xattr {
            let kept = slipway_storage::xattr::kept(&dst.path().join("opt/app/bin/app")).unwrap();
            assert_eq!(kept, [("user.slipway".to_string(), b"kept".to_vec())]);
        }
        assert_eq!(std::fs::read_link(dst.path().join("opt/app/bin/link")).unwrap(), Path::new("/etc/passwd"));
        assert!(!dst.path().join("opt/app/bin/secret").exists());
        assert!(!dst.path().join("opt/app/doc").exists());
        assert_eq!(std::fs::read_to_string(dst.path().join("opt/app/bin/sub/../app")).unwrap(), "app");
        // A file into an existing directory goes below it, by its name.
        let file = Tree::walk(tmp.path(), "/out/doc/readme", &filter(&[], &[])).unwrap();
        file.copy(&rootfs, "/opt", (None, None), me).unwrap();
        assert_eq!(std::fs::read_to_string(dst.path().join("opt/readme")).unwrap(), "r");
    }

    /// `add` is resolved inside the source (a symlink on the way to it leads inside the
    /// source's root, never to the host); `add` itself, when a symlink, is the symlink.
    #[test]
    fn add_is_resolved_inside_the_source() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("etc")).unwrap();
        std::fs::write(tmp.path().join("etc/passwd"), "inside").unwrap();
        std::os::unix::fs::symlink("/etc", tmp.path().join("lnk")).unwrap();
        std::os::unix::fs::symlink("../../..", tmp.path().join("up")).unwrap();
        let tree = Tree::walk(tmp.path(), "/lnk/passwd", &filter(&[], &[])).unwrap();
        let mut content = String::new();
        std::io::Read::read_to_string(&mut open_source(&tree.entries[0]).unwrap(), &mut content).unwrap();
        assert_eq!(content, "inside");
        let tree = Tree::walk(tmp.path(), "/up/etc/passwd", &filter(&[], &[])).unwrap();
        assert!(tree.entries[0].real.starts_with(std::fs::canonicalize(tmp.path()).unwrap()));
        let link = Tree::walk(tmp.path(), "/lnk", &filter(&[], &[])).unwrap();
        assert_eq!(link.entries[0].link.as_deref(), Some(std::ffi::OsStr::new("/etc")));
        assert!(!link.is_dir);
    }

    #[test]
    fn go_through_follows_include_prefixes() {
        let f = filter(&["a/*/c", "x/**/y"], &["a/skip"]);
        assert!(go_through(&f, "a"));
        assert!(go_through(&f, "a/b"));
        assert!(!go_through(&f, "a/skip"));
        assert!(!go_through(&f, "b"));
        assert!(go_through(&f, "x/1/2/3"));
        assert!(!go_through(&f, "a/b/c/d"));
    }
}
