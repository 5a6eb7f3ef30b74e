//! COPY and ADD: putting host files into a stage rootfs.
//!
//! Destinations are resolved inside the rootfs with `openat2(RESOLVE_IN_ROOT)`, so a
//! symlink in the image (`/lib -> usr/lib`, or a hostile `/etc -> /host`) is followed as
//! it would be inside the container and never leads outside it.

use anyhow::{Context, bail};
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::FileStat;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// How deep a copied directory tree may be (one open fd per level while copying).
const MAX_COPY_DEPTH: usize = 512;
/// The most paths one wildcard source of `COPY --from` may name.
const MAX_GLOB_MATCHES: usize = 100_000;

/// Owner, mode and time for copied files, and what is left out.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyAttrs<'e> {
    /// `--chown`; otherwise `keep_owner` decides between the source's owner and 0:0.
    pub chown: Option<(u32, u32)>,
    pub keep_owner: bool,
    /// `--chmod` for files and directories copied.
    pub chmod: Option<u32>,
    /// mtime for copied entries (None: the source's).
    pub mtime: Option<i64>,
    /// `--exclude` patterns, matched against an entry's path relative to the copy's root
    /// (see [`Rootfs::copy_in`]); the root itself is never excluded, as in BuildKit.
    pub excludes: Option<&'e crate::context::dockerignore::DockerIgnore>,
}

/// A rootfs being written to.
pub struct Rootfs {
    root: OwnedFd,
}

impl Rootfs {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let root = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .with_context(|| format!("opening rootfs {}", path.display()))?;
        Ok(Rootfs { root })
    }

    fn resolve(&self, path: &str, flags: OFlag) -> nix::Result<OwnedFd> {
        let rel = path.trim_start_matches('/');
        let rel = if rel.is_empty() { "." } else { rel };
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        crate::openat2::openat2(&self.root, rel, how)
    }

    /// Read a file of the image (e.g. /etc/passwd); empty if it does not exist.
    pub fn read_file(&self, path: &str) -> String {
        match self.resolve(path, OFlag::O_RDONLY) {
            Ok(fd) => std::io::read_to_string(std::fs::File::from(fd)).unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Open `path` of the image (symlinks resolved inside it) for reading through
    /// `/proc/self/fd`.
    pub fn open_path(&self, path: &str) -> anyhow::Result<OwnedFd> {
        Ok(self.resolve(path, OFlag::O_PATH)?)
    }

    pub fn is_dir(&self, path: &str) -> bool {
        self.resolve(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY).is_ok()
    }

    /// Every path below the directory `dir` of the image (relative to the image's root,
    /// without a leading `/`; `dir` itself first, parents before children, names
    /// sorted), for `COPY --parents --from`. Symlinks are listed, never entered; at most
    /// [`MAX_GLOB_MATCHES`] paths and [`MAX_COPY_DEPTH`] levels.
    pub fn walk(&self, dir: &str) -> anyhow::Result<Vec<String>> {
        let mut out = vec![dir.to_string()];
        let mut todo = vec![(dir.to_string(), 0usize)];
        while let Some((d, depth)) = todo.pop() {
            if depth > MAX_COPY_DEPTH {
                bail!("{d} is more than {MAX_COPY_DEPTH} directories deep");
            }
            // `dir` itself may be reached through symlinks (resolved inside the image); a
            // symlink below it is a path, not a directory to enter.
            let nofollow = if depth == 0 { OFlag::empty() } else { OFlag::O_NOFOLLOW };
            for n in self.names_in(&format!("/{d}"), nofollow)? {
                let p = if d.is_empty() { n } else { format!("{d}/{n}") };
                todo.push((p.clone(), depth + 1));
                out.push(p);
                if out.len() > MAX_GLOB_MATCHES {
                    bail!("/{dir} holds more than {MAX_GLOB_MATCHES} paths");
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The names in the image's directory `dir`, sorted (none if it is not a directory;
    /// `O_NOFOLLOW` in `flags`: nor if it is a symlink). Names that are not UTF-8 are
    /// left out (a wildcard never selects them).
    fn names_in(&self, dir: &str, flags: OFlag) -> anyhow::Result<Vec<String>> {
        let Ok(fd) = self.resolve(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY | flags) else {
            return Ok(Vec::new());
        };
        let mut names: Vec<String> = nix::dir::Dir::from_fd(fd)
            .with_context(|| format!("listing {dir}"))?
            .iter()
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().ok().map(str::to_string))
            .filter(|n| n != "." && n != "..")
            .collect();
        names.sort();
        Ok(names)
    }

    /// The paths of the image that the wildcard `pattern` names (`COPY --from=STAGE
    /// /out/*.jar`): Go `filepath.Match` per component, as BuildKit resolves them, each
    /// directory listed inside the rootfs (symlinks resolved inside it), sorted; at
    /// most [`MAX_GLOB_MATCHES`].
    pub fn glob(&self, pattern: &str) -> anyhow::Result<Vec<String>> {
        let mut found = vec![String::new()];
        for part in pattern.split('/').filter(|p| !p.is_empty() && *p != ".") {
            let mut next = Vec::new();
            if !crate::context::BuildContext::is_wildcard(part) {
                let part = part.replace('\\', "");
                for f in &found {
                    let path = format!("{f}/{part}");
                    if self.resolve(&path, OFlag::O_PATH).is_ok() {
                        next.push(path);
                    }
                }
            } else {
                let glob = crate::context::glob::Glob::new(part).with_context(|| format!("COPY source {pattern:?}"))?;
                for f in &found {
                    let names = self.names_in(if f.is_empty() { "/" } else { f }, OFlag::empty())?;
                    next.extend(names.into_iter().filter(|n| glob.matches(n)).map(|n| format!("{f}/{n}")));
                }
            }
            if next.len() > MAX_GLOB_MATCHES {
                bail!("COPY source {pattern:?} matches more than {MAX_GLOB_MATCHES} paths");
            }
            found = next;
        }
        Ok(found.into_iter().map(|p| if p.is_empty() { "/".to_string() } else { p }).collect())
    }

    /// `mkdir -p` inside the rootfs; new directories get `owner` and mode 0755. A
    /// dangling symlink on the way is followed inside the rootfs and its target created,
    /// as BuildKit does (`WORKDIR /link/w` with `link -> /nowhere`); at most 40 hops.
    pub fn mkdir_all(&self, path: &str, owner: (u32, u32)) -> anyhow::Result<OwnedFd> {
        let mut todo: std::collections::VecDeque<String> = path.split('/').map(str::to_string).collect();
        // The path resolved so far (RESOLVE_IN_ROOT resolves it again at each step).
        let mut cur = String::new();
        let mut fd = self.resolve("/", OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        let mut hops = 0;
        while let Some(comp) = todo.pop_front() {
            if comp.is_empty() || comp == "." {
                continue;
            }
            let next_path = format!("{cur}/{comp}");
            match self.resolve(&next_path, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
                Ok(next) => fd = next,
                Err(nix::errno::Errno::ENOENT) => {
                    if let Ok(target) = nix::fcntl::readlinkat(&fd, comp.as_str()) {
                        hops += 1;
                        if hops > 40 {
                            bail!("cannot create directory {path} in the image: too many levels of symlinks");
                        }
                        let target = target.to_string_lossy().into_owned();
                        if target.starts_with('/') {
                            cur.clear();
                            fd = self.resolve("/", OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
                        }
                        for part in target.split('/').rev() {
                            todo.push_front(part.to_string());
                        }
                        continue;
                    }
                    nix::sys::stat::mkdirat(&fd, comp.as_str(), Mode::from_bits_truncate(0o755))
                        .with_context(|| format!("creating directory {next_path} in the image"))?;
                    let next = self.resolve(&next_path, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
                    chown_fd(&next, owner, 0o755)?;
                    nix::sys::stat::fchmod(&next, Mode::from_bits_truncate(0o755))?;
                    fd = next;
                }
                Err(nix::errno::Errno::ENOTDIR) => {
                    bail!("cannot create directory {next_path} in the image: a file is in the way")
                }
                Err(e) => return Err(e).with_context(|| format!("resolving {next_path} in the image")),
            }
            cur = next_path;
        }
        Ok(fd)
    }

    /// Copy the source `src` to `dest` (an absolute path in the image). `src` is an fd
    /// already resolved inside its root (the context, a stage's rootfs, a scratch dir);
    /// below it nothing is followed: symlinks are copied as symlinks and every entry is
    /// opened relative to its parent directory with `O_NOFOLLOW`, so neither a committed
    /// symlink nor one a build step made can make COPY read a file of the host.
    /// `shown` names the source in errors; `rel` is the source's path relative to the
    /// root of the copy, what `--exclude` patterns are matched against ("" for a source
    /// that is its own root; `COPY --parents` copies below a pivot directory).
    pub fn copy_in(
        &self,
        src: &OwnedFd,
        shown: &str,
        rel: &str,
        dest: &str,
        attrs: &CopyAttrs,
        dir_owner: (u32, u32),
    ) -> anyhow::Result<()> {
        let node = Node::top(src, shown, rel)?;
        self.copy_node(&node, dest, attrs, dir_owner, 0, &mut Links::default())
    }

    /// Make the directory `dest` if it does not exist yet, with the attributes of the
    /// source directory `src` (`COPY --parents` recreating the parents of what it copies).
    pub fn make_dir_like(
        &self,
        src: &OwnedFd,
        shown: &str,
        dest: &str,
        attrs: &CopyAttrs,
        dir_owner: (u32, u32),
    ) -> anyhow::Result<()> {
        if self.is_dir(dest) {
            return Ok(());
        }
        let st = nix::sys::stat::fstat(src).with_context(|| format!("reading {shown}"))?;
        let fd = self.mkdir_all(dest, dir_owner)?;
        self.apply_attrs(&fd, &st, attrs, true)
    }

    /// Copy what is inside the directory `src` into `dest` (`COPY dir/ /dest/`): `dest` is
    /// created if missing (owned by `dir_owner`), the children are copied as
    /// [`Rootfs::copy_in`] copies.
    pub fn copy_contents(
        &self,
        src: &OwnedFd,
        shown: &str,
        dest: &str,
        attrs: &CopyAttrs,
        dir_owner: (u32, u32),
    ) -> anyhow::Result<()> {
        let node = Node::top(src, shown, "")?;
        if !node.is_dir() {
            bail!("cannot copy the contents of {}: not a directory", node.shown);
        }
        self.mkdir_all(dest, dir_owner)?;
        self.copy_children(&node, dest, attrs, dir_owner, 1, &mut Links::default())
    }

    /// Copy the entries of the directory `src` into `dest`, one at a time.
    fn copy_children(
        &self,
        src: &Node,
        dest: &str,
        attrs: &CopyAttrs,
        dir_owner: (u32, u32),
        depth: usize,
        links: &mut Links,
    ) -> anyhow::Result<()> {
        for n in src.child_names()? {
            let child = src.child(&n)?;
            let child_dest = format!("{}/{}", dest.trim_end_matches('/'), child.name);
            self.copy_node(&child, &child_dest, attrs, dir_owner, depth, links)?;
        }
        Ok(())
    }

    fn copy_node(
        &self,
        src: &Node,
        dest: &str,
        attrs: &CopyAttrs,
        dir_owner: (u32, u32),
        depth: usize,
        links: &mut Links,
    ) -> anyhow::Result<()> {
        let excluded = !src.rel.is_empty() && attrs.excludes.is_some_and(|e| e.is_excluded(&src.rel));
        if excluded && (!src.is_dir() || !attrs.excludes.is_some_and(|e| e.has_exceptions())) {
            return Ok(());
        }
        if src.is_dir() {
            if depth >= MAX_COPY_DEPTH {
                bail!("cannot copy {}: the directory tree is deeper than {MAX_COPY_DEPTH} levels", src.shown);
            }
            if excluded {
                // An exception (`!pattern`) may bring back entries below: the directory
                // is made only if one is copied, then given the source's attributes.
                let existed = self.is_dir(dest);
                self.copy_children(src, dest, attrs, dir_owner, depth + 1, links)?;
                if !existed && self.is_dir(dest) {
                    let fd = self.resolve(dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
                    self.apply_attrs(&fd, &src.stat, attrs, true)?;
                }
                return Ok(());
            }
            // The destination's fd is closed before the children are copied: one fd per
            // level (the source's) is all a deep copy holds.
            self.apply_attrs(&self.mkdir_all(dest, dir_owner)?, &src.stat, attrs, true)?;
            return self.copy_children(src, dest, attrs, dir_owner, depth + 1, links);
        }
        let (parent_path, name) = split_parent(dest)?;
        let parent = self.mkdir_all(parent_path, dir_owner)?;
        // Replace whatever is there (never write through a symlink or into a directory).
        if let Ok(st) = nix::sys::stat::fstatat(&parent, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
            if is_dir {
                bail!("cannot copy {} to {dest}: a directory is in the way", src.shown);
            }
            nix::unistd::unlinkat(&parent, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
                .with_context(|| format!("replacing {dest} in the image"))?;
        }
        if let Some(target) = &src.link {
            nix::unistd::symlinkat(target.as_os_str(), &parent, name)
                .with_context(|| format!("creating symlink {dest}"))?;
            let (uid, gid) = self.owner_for(&src.stat, attrs);
            return chown_symlink(&parent, name, (uid, gid), dest);
        }
        // A later name of a file hard-linked within this source tree: linked to the first
        // copy (resolved inside the rootfs again, the link itself never followed).
        let key = (src.stat.st_dev, src.stat.st_ino);
        let multi = src.stat.st_mode & libc::S_IFMT == libc::S_IFREG && src.stat.st_nlink > 1;
        if multi && let Some(first) = links.get(&key) {
            let (first_parent, first_name) = split_parent(first)?;
            let first_dir = self
                .resolve(first_parent, OFlag::O_PATH | OFlag::O_DIRECTORY)
                .with_context(|| format!("opening {first_parent} in the image"))?;
            nix::unistd::linkat(&first_dir, first_name, &parent, name, nix::fcntl::AtFlags::empty())
                .with_context(|| format!("linking {dest} to {first}"))?;
            return Ok(());
        }
        let mut input = src.open_file()?;
        let fd = nix::fcntl::openat(
            &parent,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .with_context(|| format!("creating {dest} in the image"))?;
        let mut out = std::fs::File::from(fd);
        std::io::copy(&mut input, &mut out).with_context(|| format!("writing {dest}"))?;
        let fd = OwnedFd::from(out);
        self.apply_attrs(&fd, &src.stat, attrs, false)?;
        if multi {
            links.insert(key, dest.to_string());
        }
        Ok(())
    }

    fn owner_for(&self, st: &FileStat, attrs: &CopyAttrs) -> (u32, u32) {
        match attrs.chown {
            Some(o) => o,
            None if attrs.keep_owner => (st.st_uid, st.st_gid),
            None => (0, 0),
        }
    }

    fn apply_attrs(&self, fd: &OwnedFd, st: &FileStat, attrs: &CopyAttrs, is_dir: bool) -> anyhow::Result<()> {
        let mode = attrs.chmod.unwrap_or(st.st_mode & 0o7777);
        chown_fd(fd, self.owner_for(st, attrs), mode)?;
        nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(mode))?;
        let mtime = attrs.mtime.unwrap_or(st.st_mtime);
        if !is_dir || attrs.mtime.is_some() {
            let t = nix::sys::time::TimeSpec::new(mtime, 0);
            nix::sys::stat::futimens(fd, &t, &t)?;
        }
        Ok(())
    }
}

/// Regular files with more than one link seen in one source tree: (dev, ino) → the
/// destination path of their first copy.
type Links = std::collections::HashMap<(u64, u64), String>;

/// The owner of a file or directory: set, or in a single-id user namespace recorded
/// (`slipway_storage::owner`) with `mode`, the mode the caller gives it next (after the
/// chown, which clears set-id bits).
pub fn chown_fd(fd: &OwnedFd, (uid, gid): (u32, u32), mode: u32) -> anyhow::Result<()> {
    slipway_storage::owner::chown_fd(fd, uid, gid, mode)
        .map(drop)
        .with_context(|| format!("chown to {uid}:{gid} (is the id mapped in the user namespace? see /etc/subuid)"))
}

/// The owner of a symlink. A single-id user namespace cannot give it one but root, and
/// the kernel lets no `user.*` xattr on a symlink: the owner is recorded on its
/// directory (`slipway_storage::child_owners`). Call it once the symlink's times are final.
pub fn chown_symlink(parent: &OwnedFd, name: &str, (uid, gid): (u32, u32), dest: &str) -> anyhow::Result<()> {
    match nix::unistd::fchownat(
        parent,
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Err(nix::errno::Errno::EINVAL) if slipway_storage::owner::single_id_namespace() => {
            slipway_storage::child_owners::set(parent, name.as_bytes(), Some((uid, gid))).map_err(|e| {
                let why = match e {
                    nix::errno::Errno::E2BIG => {
                        " (its directory holds more symlinks owned by others than its xattr can record)".to_string()
                    }
                    e => format!(": {e}"),
                };
                anyhow::anyhow!(
                    "recording the owner {uid}:{gid} of symlink {dest} on its directory in this single-id user namespace failed{why}"
                )
            })
        }
        r => r.with_context(|| format!("chown {dest}")),
    }
}

fn split_parent(dest: &str) -> anyhow::Result<(&str, &str)> {
    let d = dest.trim_end_matches('/');
    match d.rsplit_once('/') {
        Some((p, n)) if !n.is_empty() && n != "." && n != ".." => Ok((if p.is_empty() { "/" } else { p }, n)),
        _ => bail!("invalid destination {dest:?}"),
    }
}

/// One entry of a copy source: its stat (never followed), and for a directory or file
/// an `O_PATH` fd opened relative to its parent with `O_NOFOLLOW`.
struct Node {
    /// The entry's name inside its parent directory ("" for the top).
    name: String,
    /// The entry's path relative to the root of the copy (for `--exclude`).
    rel: String,
    /// For messages: the entry's path relative to the copied source.
    shown: String,
    stat: FileStat,
    fd: Option<OwnedFd>,
    /// The target of a symlink.
    link: Option<OsString>,
}

impl Node {
    /// The top of a source: an fd resolved inside its root (a symlink there was
    /// followed inside the root, as COPY follows its sources).
    fn top(fd: &OwnedFd, shown: &str, rel: &str) -> anyhow::Result<Node> {
        let mut stat = nix::sys::stat::fstat(fd).with_context(|| format!("reading {shown}"))?;
        let fd = fd.try_clone()?;
        recorded_owner(&mut stat, &fd, shown)?;
        let (name, rel, shown) = (String::new(), rel.to_string(), shown.to_string());
        Ok(Node { name, rel, shown, stat, fd: Some(fd), link: None })
    }

    fn is_dir(&self) -> bool {
        self.stat.st_mode & libc::S_IFMT == libc::S_IFDIR
    }

    /// The names in a directory, sorted; [`Node::child`] opens one (children are opened
    /// one at a time, so a copy holds one fd per directory level).
    fn child_names(&self) -> anyhow::Result<Vec<OsString>> {
        let dir = self.fd.as_ref().expect("a directory has an fd");
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut listing = nix::dir::Dir::openat(dir, ".", flags, Mode::empty())
            .with_context(|| format!("reading directory {}", self.shown))?;
        let mut names: Vec<OsString> = Vec::new();
        for e in listing.iter() {
            let e = e.with_context(|| format!("reading directory {}", self.shown))?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(std::os::unix::ffi::OsStringExt::from_vec(n.to_vec()));
            }
        }
        names.sort();
        Ok(names)
    }

    /// The entry `n` of this directory; a symlink is not followed.
    fn child(&self, n: &OsString) -> anyhow::Result<Node> {
        let dir = self.fd.as_ref().expect("a directory has an fd");
        let name = n.to_string_lossy().into_owned();
        let shown = format!("{}/{name}", self.shown.trim_end_matches('/'));
        let rel = if self.rel.is_empty() { name.clone() } else { format!("{}/{name}", self.rel) };
        let mut stat = nix::sys::stat::fstatat(dir, n.as_os_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            .with_context(|| format!("reading {shown}"))?;
        let (fd, link) = match stat.st_mode & libc::S_IFMT {
            libc::S_IFLNK => {
                let target =
                    nix::fcntl::readlinkat(dir, n.as_os_str()).with_context(|| format!("reading symlink {shown}"))?;
                // Root's on disk: its directory may record its owner (single-id namespace).
                if stat.st_uid == 0 && stat.st_gid == 0 {
                    (stat.st_uid, stat.st_gid) = slipway_storage::child_owners::effective_owner(dir, n.as_bytes())
                        .with_context(|| format!("reading the owner of {shown}"))?;
                }
                (None, Some(target))
            }
            libc::S_IFDIR | libc::S_IFREG => {
                let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                let fd = nix::fcntl::openat(dir, n.as_os_str(), flags, Mode::empty())
                    .with_context(|| format!("opening {shown}"))?;
                recorded_owner(&mut stat, &fd, &shown)?;
                (Some(fd), None)
            }
            _ => bail!("cannot copy {shown}: only files, directories and symlinks can be copied"),
        };
        Ok(Node { name, rel, shown, stat, fd, link })
    }

    fn open_file(&self) -> anyhow::Result<std::fs::File> {
        open_regular(self.fd.as_ref().expect("a file has an fd"), &self.shown)
    }
}

/// A source entry owned by root may carry the owner a single-id namespace could not
/// give it (`slipway_storage::owner`): that is its owner for `COPY --from`.
fn recorded_owner(stat: &mut FileStat, fd: &OwnedFd, shown: &str) -> anyhow::Result<()> {
    if stat.st_uid == 0 && stat.st_gid == 0 {
        (stat.st_uid, stat.st_gid) =
            slipway_storage::owner::effective_owner(fd).with_context(|| format!("reading the owner of {shown}"))?;
    }
    Ok(())
}

/// The content of the regular file `fd` (an `O_PATH` fd resolved inside its root),
/// reopened through the fd, never by path; a fifo or device is refused before anything
/// could block on it.
pub fn open_regular(fd: &OwnedFd, shown: &str) -> anyhow::Result<std::fs::File> {
    let not_regular = || anyhow::anyhow!("cannot copy {shown}: only files, directories and symlinks can be copied");
    let st = nix::sys::stat::fstat(fd).with_context(|| format!("reading {shown}"))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(not_regular());
    }
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let f = nix::fcntl::open(path.as_str(), OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC, Mode::empty())
        .with_context(|| format!("opening {shown}"))?;
    let f = std::fs::File::from(f);
    if !f.metadata()?.is_file() {
        return Err(not_regular());
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn hard_links_in_one_source_tree_stay_hard_links() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
        std::fs::create_dir_all(src.join("d")).unwrap();
        std::fs::create_dir(&dst).unwrap();
        std::fs::write(src.join("a"), "data").unwrap();
        std::fs::hard_link(src.join("a"), src.join("d/b")).unwrap();
        std::fs::write(src.join("c"), "other").unwrap();
        let fs = Rootfs::open(&dst).unwrap();
        let top = Rootfs::open(&src).unwrap().open_path("/").unwrap();
        let attrs = CopyAttrs { keep_owner: true, ..CopyAttrs::default() };
        let me = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
        fs.copy_contents(&top, "src", "/x", &attrs, me).unwrap();
        let meta = |p: &str| std::fs::symlink_metadata(dst.join(p)).unwrap();
        assert_eq!(meta("x/a").ino(), meta("x/d/b").ino());
        assert_eq!(meta("x/a").nlink(), 2);
        assert_eq!(meta("x/c").nlink(), 1);
        assert_eq!(std::fs::read_to_string(dst.join("x/d/b")).unwrap(), "data");
    }
}
