//! COPY and ADD: putting host files into a stage rootfs.
//!
//! Destinations are resolved inside the rootfs with `openat2(RESOLVE_IN_ROOT)`, so a
//! symlink in the image (`/lib -> usr/lib`, or a hostile `/etc -> /host`) is followed as
//! it would be inside the container and never leads outside it.

use anyhow::{Context, bail};
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Owner, mode and time for copied files.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyAttrs {
    /// `--chown`; otherwise `keep_owner` decides between the source's owner and 0:0.
    pub chown: Option<(u32, u32)>,
    pub keep_owner: bool,
    /// `--chmod` for files and directories copied.
    pub chmod: Option<u32>,
    /// mtime for copied entries (None: the source's).
    pub mtime: Option<i64>,
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
        nix::fcntl::openat2(&self.root, rel, how)
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

    /// `mkdir -p` inside the rootfs; new directories get `owner` and mode 0755.
    pub fn mkdir_all(&self, path: &str, owner: (u32, u32)) -> anyhow::Result<OwnedFd> {
        let mut cur = String::new();
        let mut fd = self.resolve("/", OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
            cur.push('/');
            cur.push_str(comp);
            match self.resolve(&cur, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
                Ok(next) => fd = next,
                Err(nix::errno::Errno::ENOENT) => {
                    nix::sys::stat::mkdirat(&fd, comp, Mode::from_bits_truncate(0o755))
                        .with_context(|| format!("creating directory {cur} in the image"))?;
                    let next = self.resolve(&cur, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
                    chown_fd(&next, owner)?;
                    nix::sys::stat::fchmod(&next, Mode::from_bits_truncate(0o755))?;
                    fd = next;
                }
                Err(nix::errno::Errno::ENOTDIR) => {
                    bail!("cannot create directory {cur} in the image: a file is in the way")
                }
                Err(e) => return Err(e).with_context(|| format!("resolving {cur} in the image")),
            }
        }
        Ok(fd)
    }

    /// Copy the host entry `src` to `dest` (an absolute path in the image). `src` itself
    /// is followed if it is a symlink (it is usually a `/proc/self/fd` path of a source
    /// already resolved inside its root, as COPY follows its sources); inside
    /// directories, symlinks are copied as symlinks.
    pub fn copy_in(&self, src: &Path, dest: &str, attrs: &CopyAttrs, dir_owner: (u32, u32)) -> anyhow::Result<()> {
        let meta = std::fs::metadata(src).with_context(|| format!("reading {}", src.display()))?;
        self.copy_entry(src, meta, dest, attrs, dir_owner)
    }

    fn copy_entry(
        &self,
        src: &Path,
        meta: std::fs::Metadata,
        dest: &str,
        attrs: &CopyAttrs,
        dir_owner: (u32, u32),
    ) -> anyhow::Result<()> {
        if meta.is_dir() {
            let dfd = self.mkdir_all(dest, dir_owner)?;
            self.apply_attrs(&dfd, &meta, attrs, true)?;
            let mut names: Vec<_> = std::fs::read_dir(src)
                .with_context(|| format!("reading {}", src.display()))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()?;
            names.sort();
            for n in names {
                let child_dest = format!("{}/{}", dest.trim_end_matches('/'), n.to_string_lossy());
                let child = src.join(&n);
                let meta = std::fs::symlink_metadata(&child).with_context(|| format!("reading {}", child.display()))?;
                self.copy_entry(&child, meta, &child_dest, attrs, dir_owner)?;
            }
            return Ok(());
        }
        let (parent_path, name) = split_parent(dest)?;
        let parent = self.mkdir_all(parent_path, dir_owner)?;
        // Replace whatever is there (never write through a symlink or into a directory).
        if let Ok(st) = nix::sys::stat::fstatat(&parent, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
            if is_dir {
                bail!("cannot copy {} to {dest}: a directory is in the way", src.display());
            }
            nix::unistd::unlinkat(&parent, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
                .with_context(|| format!("replacing {dest} in the image"))?;
        }
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(src)?;
            nix::unistd::symlinkat(&target, &parent, name).with_context(|| format!("creating symlink {dest}"))?;
            let (uid, gid) = self.owner_for(&meta, attrs);
            nix::unistd::fchownat(
                &parent,
                name,
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .with_context(|| format!("chown {dest}"))?;
            return Ok(());
        }
        if !meta.is_file() {
            bail!("cannot copy {}: only files, directories and symlinks can be copied", src.display());
        }
        let fd = nix::fcntl::openat(
            &parent,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .with_context(|| format!("creating {dest} in the image"))?;
        let mut out = std::fs::File::from(fd);
        let mut input = std::fs::File::open(src).with_context(|| format!("opening {}", src.display()))?;
        std::io::copy(&mut input, &mut out).with_context(|| format!("writing {dest}"))?;
        let fd = OwnedFd::from(out);
        self.apply_attrs(&fd, &meta, attrs, false)
    }

    fn owner_for(&self, meta: &std::fs::Metadata, attrs: &CopyAttrs) -> (u32, u32) {
        match attrs.chown {
            Some(o) => o,
            None if attrs.keep_owner => (meta.uid(), meta.gid()),
            None => (0, 0),
        }
    }

    fn apply_attrs(
        &self,
        fd: &OwnedFd,
        meta: &std::fs::Metadata,
        attrs: &CopyAttrs,
        is_dir: bool,
    ) -> anyhow::Result<()> {
        chown_fd(fd, self.owner_for(meta, attrs))?;
        let mode = attrs.chmod.unwrap_or(meta.permissions().mode() & 0o7777);
        nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(mode))?;
        let mtime = attrs.mtime.unwrap_or(meta.mtime());
        if !is_dir || attrs.mtime.is_some() {
            let t = nix::sys::time::TimeSpec::new(mtime, 0);
            nix::sys::stat::futimens(fd, &t, &t)?;
        }
        Ok(())
    }
}

fn chown_fd(fd: &OwnedFd, (uid, gid): (u32, u32)) -> anyhow::Result<()> {
    nix::unistd::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
        .with_context(|| format!("chown to {uid}:{gid} (is the id mapped in the user namespace? see /etc/subuid)"))
}

fn split_parent(dest: &str) -> anyhow::Result<(&str, &str)> {
    let d = dest.trim_end_matches('/');
    match d.rsplit_once('/') {
        Some((p, n)) if !n.is_empty() && n != "." && n != ".." => Ok((if p.is_empty() { "/" } else { p }, n)),
        _ => bail!("invalid destination {dest:?}"),
    }
}
