//! Unpacking a layer tarball into an empty directory, in overlayfs' format.
//!
//! Runs inside slipway's user namespace, so owners are set for real. Every entry is
//! placed through directory fds opened with `O_NOFOLLOW`: an entry whose path is
//! absolute, contains `..`, or passes through a symlink is refused with an error naming
//! it, as is a hardlink whose target would be outside the layer, so nothing is ever
//! written outside `dest`. OCI whiteouts become overlayfs whiteouts (`.wh.x` → character
//! device 0/0 `x`; `.wh..wh..opq` → `user.overlay.opaque=y` on the directory).
//!
//! Devices cannot be created in a user namespace: they are skipped and listed in the
//! result. `trusted.*`, `security.selinux` and `user.overlay.*` xattrs are dropped.

use crate::digest::{Digest, HashingReader};
use crate::error::{Result, StorageError};
use crate::image::Compression;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub const OPAQUE_XATTR: &str = "user.overlay.opaque";
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// What unpacking found.
#[derive(Debug, Clone, Default)]
pub struct Unpacked {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: Option<Digest>,
    /// Uncompressed size in bytes.
    pub size: u64,
    /// Device nodes in the layer that could not be created (paths).
    pub skipped_devices: Vec<String>,
    /// Entries whose owner could not be set (single-id user namespace).
    pub chown_failures: u64,
}

/// Unpack `reader` (compressed as `compression`) into `dest`, an empty directory.
/// `layer` names the layer in errors.
/// Bounds on what one layer may unpack to: a small hostile blob can decompress to more
/// than any disk holds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Uncompressed tar bytes.
    pub max_size: u64,
    pub max_entries: u64,
    /// What an owner the user namespace cannot represent means.
    pub ownership: Ownership,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_size: 64 << 30, max_entries: 10_000_000, ownership: Ownership::Exact }
    }
}

/// How strictly entry owners are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ownership {
    /// Every owner must be set: an id the user namespace does not map (EINVAL) is an
    /// error, never a file silently left owned by root.
    #[default]
    Exact,
    /// A single-id user namespace (no /etc/subuid range), where no owner but root can be
    /// set: files and directories get their owner recorded in
    /// [`crate::owner::OVERRIDE_XATTR`], symlinks and fifos on their directory
    /// ([`crate::child_owners`]), and the commit of a layer writes them back. One that
    /// cannot be recorded (a directory with too many) is counted (the caller warns).
    BestEffort,
}

/// What a failed chown of an unpacked entry means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChownVerdict {
    /// Tolerated and counted in [`Unpacked::chown_failures`].
    Counted,
    /// The id is outside the namespace's mapped range: the entry's owner would be lost.
    Unmapped,
    /// Any other failure.
    Failed,
}

/// The pure decision behind every chown of an unpacked entry.
pub(crate) fn chown_verdict(err: Errno, ownership: Ownership) -> ChownVerdict {
    match (err, ownership) {
        (Errno::EINVAL, Ownership::Exact) => ChownVerdict::Unmapped,
        (Errno::EINVAL, Ownership::BestEffort) => ChownVerdict::Counted,
        // Not namespace root at all (e.g. a unit test as a plain user): nothing can be
        // owned by anyone else, which the caller reports as for a single-id namespace.
        (Errno::EPERM, _) => ChownVerdict::Counted,
        _ => ChownVerdict::Failed,
    }
}

/// Unpack with the default [`Limits`].
pub fn unpack(reader: impl Read, compression: Compression, dest: &Path, layer: &str) -> Result<Unpacked> {
    unpack_limited(reader, compression, dest, layer, Limits::default())
}

/// Unpack `reader` into `dest`, refusing a layer beyond `limits`.
pub fn unpack_limited(
    reader: impl Read,
    compression: Compression,
    dest: &Path,
    layer: &str,
    limits: Limits,
) -> Result<Unpacked> {
    let decoded: Box<dyn Read + '_> = match compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::None => Box::new(reader),
        // Every frame in turn (zstd:chunked layers are many, with skippable ones between);
        // a frame that asks for a window beyond the decoder's default limit (128 MiB) is
        // refused, which bounds the memory a layer can make us take.
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader).map_err(|e| {
            StorageError::BadLayer { layer: layer.into(), message: format!("starting the zstd decoder: {e}") }
        })?),
    };
    let mut hashed = HashingReader::new(Bounded { inner: decoded, left: limits.max_size });
    let root = open_dir_at(None, dest).map_err(StorageError::sys("opening", dest.display().to_string()))?;
    let mut u = Unpacker { root, layer, ownership: limits.ownership, out: Unpacked::default(), dir_times: Vec::new() };
    {
        let mut archive = tar::Archive::new(&mut hashed);
        let entries = archive.entries().map_err(|e| u.bad(format!("reading tar: {e}")))?;
        for (n, entry) in entries.enumerate() {
            if n as u64 >= limits.max_entries {
                return Err(u.bad(format!("more than {} entries: refusing it", limits.max_entries)));
            }
            let mut entry = entry.map_err(|e| u.bad(format!("reading tar: {e}")))?;
            u.apply(&mut entry)?;
        }
    }
    let (diff_id, size, _) = hashed.drain_and_finish().map_err(|e| u.bad(format!("reading tar: {e}")))?;
    u.apply_dir_times();
    u.out.diff_id = Some(diff_id);
    u.out.size = size;
    Ok(u.out)
}

/// A reader that fails once more than `left` bytes have come through.
struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            std::io::Error::other("the layer unpacks to more than the size limit (a decompression bomb?); refusing it")
        })?;
        Ok(n)
    }
}

struct Unpacker<'a> {
    root: OwnedFd,
    layer: &'a str,
    ownership: Ownership,
    out: Unpacked,
    /// Directory mtimes are set last: later entries change them.
    dir_times: Vec<(Vec<Vec<u8>>, i64)>,
}

fn open_dir_at(parent: Option<&OwnedFd>, name: impl AsRef<OsStr>) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    match parent {
        Some(p) => nix::fcntl::openat(p, name.as_ref(), flags, Mode::empty()),
        None => nix::fcntl::open(name.as_ref(), flags, Mode::empty()),
    }
}

/// Split an entry path into clean components, refusing anything that could escape.
fn components(raw: &[u8]) -> std::result::Result<Vec<Vec<u8>>, &'static str> {
    if raw.first() == Some(&b'/') {
        return Err("absolute paths are not allowed in layers");
    }
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("'..' would leave the layer"),
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

impl Unpacker<'_> {
    fn bad(&self, message: String) -> StorageError {
        StorageError::BadLayer { layer: self.layer.to_string(), message }
    }

    fn unsafe_entry(&self, entry: &[u8], reason: impl Into<String>) -> StorageError {
        StorageError::UnsafeEntry {
            layer: self.layer.to_string(),
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.into(),
        }
    }

    /// Open the directory `comps` below the root, creating missing ones when asked,
    /// never following a symlink.
    fn open_path(&self, comps: &[Vec<u8>], create: bool, entry: &[u8]) -> Result<OwnedFd> {
        let mut fd = self.root.try_clone().map_err(|e| self.bad(format!("dup: {e}")))?;
        for (i, c) in comps.iter().enumerate() {
            let name = OsStr::from_bytes(c);
            fd = match open_dir_at(Some(&fd), name) {
                Ok(next) => next,
                Err(Errno::ENOENT) if create => {
                    nix::sys::stat::mkdirat(&fd, name, Mode::from_bits_truncate(0o755))
                        .map_err(|e| self.bad(format!("creating parent of {}: {e}", String::from_utf8_lossy(entry))))?;
                    open_dir_at(Some(&fd), name).map_err(|e| self.bad(format!("opening parent: {e}")))?
                }
                Err(e) => {
                    let so_far = comps[..=i].iter().map(|c| String::from_utf8_lossy(c)).collect::<Vec<_>>().join("/");
                    let is_link = nix::sys::stat::fstatat(&fd, name, AtFlags::AT_SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT) == SFlag::S_IFLNK);
                    let reason = if is_link {
                        format!("its parent {so_far} is a symlink, and writing through it could leave the layer")
                    } else {
                        format!("its parent {so_far} cannot be opened as a directory: {e}")
                    };
                    return Err(self.unsafe_entry(entry, reason));
                }
            };
        }
        Ok(fd)
    }

    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let comps = components(&raw).map_err(|r| self.unsafe_entry(&raw, r))?;
        let Some((name, parents)) = comps.split_last() else {
            return Ok(()); // the layer root itself
        };
        let header = entry.header();
        let kind = header.entry_type();

        if name.as_slice() == OPAQUE_MARKER {
            let dir = self.open_path(parents, true, &raw)?;
            crate::sys::fsetxattr(&dir, OPAQUE_XATTR, b"y")
                .map_err(|e| self.bad(format!("marking {} opaque: {e}", String::from_utf8_lossy(&raw))))?;
            return Ok(());
        }
        let parent = self.open_path(parents, true, &raw)?;
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(self.unsafe_entry(&raw, "malformed whiteout"));
            }
            let hidden = OsStr::from_bytes(hidden);
            self.remove_existing(&parent, hidden)?;
            nix::sys::stat::mknodat(&parent, hidden, SFlag::S_IFCHR, Mode::empty(), 0)
                .map_err(|e| self.bad(format!("creating whiteout {}: {e}", String::from_utf8_lossy(&raw))))?;
            return Ok(());
        }
        let name_os = OsStr::from_bytes(name);
        let mode = Mode::from_bits_truncate((header.mode().unwrap_or(0o644) & 0o7777) as libc::mode_t);
        let uid = header.uid().unwrap_or(0) as u32;
        let gid = header.gid().unwrap_or(0) as u32;
        let mtime = header.mtime().unwrap_or(0) as i64;
        let layer = self.layer.to_string();
        let what = |e: Errno| StorageError::BadLayer {
            layer: layer.clone(),
            message: format!("creating {}: {e}", String::from_utf8_lossy(&raw)),
        };

        use tar::EntryType as T;
        match kind {
            T::Directory => {
                let existing = nix::sys::stat::fstatat(&parent, name_os, AtFlags::AT_SYMLINK_NOFOLLOW).ok();
                let is_dir = existing.is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
                if !is_dir {
                    if existing.is_some() {
                        self.remove_existing(&parent, name_os)?;
                    }
                    nix::sys::stat::mkdirat(&parent, name_os, Mode::from_bits_truncate(0o700)).map_err(what)?;
                }
                let dir = open_dir_at(Some(&parent), name_os).map_err(what)?;
                self.set_owner_mode(&dir, uid, gid, mode, &raw)?;
                self.set_xattrs(&dir, entry, &raw)?;
                self.dir_times.push((comps.clone(), mtime));
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                self.remove_existing(&parent, name_os)?;
                let fd = nix::fcntl::openat(
                    &parent,
                    name_os,
                    OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(what)?;
                let mut file = std::fs::File::from(fd);
                std::io::copy(entry, &mut file)
                    .map_err(|e| self.bad(format!("writing {}: {e}", String::from_utf8_lossy(&raw))))?;
                let fd = OwnedFd::from(file);
                self.set_owner_mode(&fd, uid, gid, mode, &raw)?;
                self.set_xattrs(&fd, entry, &raw)?;
                let t = TimeSpec::new(mtime, 0);
                nix::sys::stat::futimens(&fd, &t, &t).map_err(what)?;
            }
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.unsafe_entry(&raw, "symlink without a target"))?
                    .into_owned();
                self.remove_existing(&parent, name_os)?;
                nix::unistd::symlinkat(OsStr::from_bytes(&target), &parent, name_os).map_err(what)?;
                let record = self.chown_at(&parent, name_os, uid, gid, &raw)?;
                let t = TimeSpec::new(mtime, 0);
                nix::sys::stat::utimensat(&parent, name_os, &t, &t, nix::sys::stat::UtimensatFlags::NoFollowSymlink)
                    .map_err(what)?;
                if record {
                    self.record_child(&parent, name_os, uid, gid, &raw);
                }
            }
            T::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.unsafe_entry(&raw, "hardlink without a target"))?
                    .into_owned();
                let tcomps = components(&target).map_err(|r| {
                    self.unsafe_entry(&raw, format!("hardlink target {}: {r}", String::from_utf8_lossy(&target)))
                })?;
                let Some((tname, tparents)) = tcomps.split_last() else {
                    return Err(self.unsafe_entry(&raw, "hardlink to the layer root"));
                };
                let tparent = self.open_path(tparents, false, &raw)?;
                let tname = OsStr::from_bytes(tname);
                let st = nix::sys::stat::fstatat(&tparent, tname, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| {
                    self.unsafe_entry(
                        &raw,
                        format!("hardlink target {} is not in this layer: {e}", String::from_utf8_lossy(&target)),
                    )
                })?;
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    return Err(self.unsafe_entry(&raw, "hardlink to a directory"));
                }
                if tcomps != comps {
                    self.remove_existing(&parent, name_os)?;
                    nix::unistd::linkat(&tparent, tname, &parent, name_os, AtFlags::empty()).map_err(what)?;
                }
            }
            T::Fifo => {
                self.remove_existing(&parent, name_os)?;
                nix::unistd::mkfifoat(&parent, name_os, mode).map_err(what)?;
                if self.chown_at(&parent, name_os, uid, gid, &raw)? {
                    self.record_child(&parent, name_os, uid, gid, &raw);
                }
            }
            T::Char | T::Block => {
                tracing::warn!(layer = self.layer, entry = %String::from_utf8_lossy(&raw), "device nodes cannot be created in a user namespace; skipped");
                self.out.skipped_devices.push(String::from_utf8_lossy(&raw).into_owned());
            }
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => {}
            other => {
                return Err(self.bad(format!("entry {} has unsupported type {other:?}", String::from_utf8_lossy(&raw))));
            }
        }
        Ok(())
    }

    fn remove_existing(&self, parent: &OwnedFd, name: &OsStr) -> Result<()> {
        let Ok(st) = nix::sys::stat::fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
            return Ok(());
        };

        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            // Iterative, never follows symlinks, copes with any depth.
            crate::remove::remove_tree_at(parent, name, Path::new(name))
                .map_err(|e| self.bad(format!("replacing directory {}: {e}", name.to_string_lossy())))
        } else {
            nix::unistd::unlinkat(parent, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
                .map_err(|e| self.bad(format!("replacing {}: {e}", name.to_string_lossy())))
        }
    }

    /// Applies [`chown_verdict`] to a failed chown of `entry`.
    fn chown_failed(&mut self, e: Errno, entry: &[u8], uid: u32, gid: u32) -> Result<()> {
        match chown_verdict(e, self.ownership) {
            ChownVerdict::Counted => {
                self.out.chown_failures += 1;
                Ok(())
            }
            ChownVerdict::Unmapped => Err(StorageError::UnmappedOwner {
                layer: self.layer.to_string(),
                entry: String::from_utf8_lossy(entry).into_owned(),
                uid,
                gid,
            }),
            ChownVerdict::Failed => {
                Err(self.bad(format!("setting owner {uid}:{gid} of {}: {e}", String::from_utf8_lossy(entry))))
            }
        }
    }

    fn set_owner_mode(&mut self, fd: &OwnedFd, uid: u32, gid: u32, mode: Mode, entry: &[u8]) -> Result<()> {
        if let Err(e) = nix::unistd::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))) {
            // A single-id namespace: the owner is recorded where the file can carry it.
            let recorded = e == Errno::EINVAL
                && self.ownership == Ownership::BestEffort
                && crate::owner::record(fd, uid, gid, mode.bits()).is_ok();
            if !recorded {
                self.chown_failed(e, entry, uid, gid)?;
            }
        }
        // After chown, which clears set-id bits.
        nix::sys::stat::fchmod(fd, mode).map_err(|e| self.bad(format!("chmod: {e}")))
    }

    /// The owner of a symlink or fifo; `true` when it is to be recorded on its parent
    /// ([`Self::record_child`], once its times are final: a single-id namespace).
    fn chown_at(&mut self, parent: &OwnedFd, name: &OsStr, uid: u32, gid: u32, entry: &[u8]) -> Result<bool> {
        match nix::unistd::fchownat(
            parent,
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(()) => Ok(false),
            Err(Errno::EINVAL) if self.ownership == Ownership::BestEffort => Ok(true),
            Err(e) => self.chown_failed(e, entry, uid, gid).map(|()| false),
        }
    }

    /// Record the owner of the symlink or fifo `name` on its directory
    /// ([`crate::child_owners`]); one that does not fit is counted (the caller warns).
    fn record_child(&mut self, parent: &OwnedFd, name: &OsStr, uid: u32, gid: u32, entry: &[u8]) {
        if let Err(e) = crate::child_owners::set(parent, name.as_bytes(), Some((uid, gid))) {
            tracing::debug!(layer = self.layer, entry = %String::from_utf8_lossy(entry), error = %e, "recording the owner of a symlink or fifo on its directory");
            self.out.chown_failures += 1;
        }
    }

    fn set_xattrs<R: Read>(&self, fd: &OwnedFd, entry: &mut tar::Entry<'_, R>, raw: &[u8]) -> Result<()> {
        let Ok(Some(exts)) = entry.pax_extensions() else {
            return Ok(());
        };
        for ext in exts.flatten() {
            let Ok(key) = ext.key() else { continue };
            let Some(name) = key.strip_prefix("SCHILY.xattr.") else {
                continue;
            };
            if !keep_xattr(name) {
                continue;
            }
            if let Err(e) = crate::sys::fsetxattr(fd, name, ext.value_bytes()) {
                tracing::warn!(layer = self.layer, entry = %String::from_utf8_lossy(raw), xattr = name, error = %e, "xattr not set");
            }
        }
        Ok(())
    }

    fn apply_dir_times(&mut self) {
        for (comps, mtime) in std::mem::take(&mut self.dir_times).into_iter().rev() {
            let Some((name, parents)) = comps.split_last() else {
                continue;
            };
            let Ok(parent) = self.open_path(parents, false, name) else {
                continue;
            };
            let t = TimeSpec::new(mtime, 0);
            let _ = nix::sys::stat::utimensat(
                &parent,
                OsStr::from_bytes(name),
                &t,
                &t,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            );
        }
    }
}

/// Which xattrs a layer may carry into the store (and out of it at commit). The owner
/// record is the store's own ([`crate::owner`]): a layer cannot bring one, and a commit
/// writes it as the tar header's owner, never as an xattr. `user.slipway.*` is
/// slipway's own bookkeeping (the record under its private name): never in a layer.
pub fn keep_xattr(name: &str) -> bool {
    !(name.starts_with("trusted.")
        || name == "security.selinux"
        || name.starts_with("user.overlay.")
        || name.starts_with(SLIPWAY_XATTR_PREFIX)
        || name == crate::owner::OVERRIDE_XATTR)
}

/// The prefix of slipway's own xattrs ([`crate::owner::PRIVATE_XATTR`]).
pub const SLIPWAY_XATTR_PREFIX: &str = "user.slipway.";

/// Which xattrs a copy of a stored tree keeps (vfs): those of a layer, and the owner
/// records (a file's or directory's own, and a directory's of its symlinks and fifos).
pub fn keep_xattr_in_store(name: &str) -> bool {
    keep_xattr(name) || name == crate::owner::OVERRIDE_XATTR || name == crate::child_owners::CHILD_OWNERS_XATTR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decompression_bombs_are_refused() {
        use std::io::Write;
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(50 << 20);
        h.set_mode(0o644);
        b.append_data(&mut h, "zeros", std::io::repeat(0).take(50 << 20)).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&b.into_inner().unwrap()).unwrap();
        let blob = gz.finish().unwrap();
        assert!(blob.len() < 1 << 20, "the test blob should be small");
        let t = tempfile::tempdir().unwrap();
        let limits = Limits { max_size: 10 << 20, max_entries: 100, ..Limits::default() };
        let e = unpack_limited(&blob[..], Compression::Gzip, t.path(), "bomb", limits).unwrap_err().to_string();
        assert!(e.contains("size limit"), "{e}");
    }

    #[test]
    fn components_refuse_escapes() {
        assert_eq!(components(b"./a//b/./c").unwrap(), vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert!(components(b"").unwrap().is_empty());
        assert!(components(b"../../escape").is_err());
        assert!(components(b"a/../../b").is_err());
        assert!(components(b"/abs").is_err());
    }

    #[test]
    fn chown_failures_are_errors_unless_best_effort() {
        use ChownVerdict::*;
        let table = [
            (Errno::EINVAL, Ownership::Exact, Unmapped),
            (Errno::EINVAL, Ownership::BestEffort, Counted),
            (Errno::EPERM, Ownership::Exact, Counted),
            (Errno::EPERM, Ownership::BestEffort, Counted),
            (Errno::EIO, Ownership::Exact, Failed),
            (Errno::EROFS, Ownership::BestEffort, Failed),
        ];
        for (err, ownership, want) in table {
            assert_eq!(chown_verdict(err, ownership), want, "{err} {ownership:?}");
        }
    }

    /// A layer with one file owned by 1234:1234.
    fn layer_owned_by_1234() -> Vec<u8> {
        owned_file(tar::Builder::new(Vec::new())).into_inner().unwrap()
    }

    fn owned_file(mut b: tar::Builder<Vec<u8>>) -> tar::Builder<Vec<u8>> {
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_uid(1234);
        h.set_gid(1234);
        b.append_data(&mut h, "etc/owned", &b"hi"[..]).unwrap();
        b
    }

    /// The same with a symlink and a fifo owned by 1234:1234 beside the file.
    fn layer_with_owned_link_and_fifo() -> Vec<u8> {
        let mut b = owned_file(tar::Builder::new(Vec::new()));
        for (path, kind) in [("etc/link", tar::EntryType::Symlink), ("etc/fifo", tar::EntryType::Fifo)] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(0o644);
            h.set_uid(1234);
            h.set_gid(1234);
            h.set_mtime(1000);
            h.set_size(0);
            if kind == tar::EntryType::Symlink {
                b.append_link(&mut h, path, "owned").unwrap();
            } else {
                b.append_data(&mut h, path, std::io::empty()).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    const IN_USERNS: &str = "SLIPWAY_TEST_UNPACK_IN_SINGLE_ID_USERNS";

    #[test]
    fn unmapped_owner_fails_the_unpack_in_a_real_user_namespace() {
        if std::env::var_os(IN_USERNS).is_some() {
            // Inside `unshare -r`: only our own id is mapped, as root; 1234 is not.
            let t = tempfile::tempdir().unwrap();
            let layer = layer_owned_by_1234();
            let e = unpack(&layer[..], Compression::None, t.path(), "sha256:test").unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, StorageError::UnmappedOwner { uid: 1234, gid: 1234, .. }), "{e:?}");
            assert!(text.contains("etc/owned") && text.contains("/etc/subuid"), "{text}");
            let t2 = tempfile::tempdir().unwrap();
            let limits = Limits { ownership: Ownership::BestEffort, ..Limits::default() };
            let layer = layer_with_owned_link_and_fifo();
            let ok = unpack_limited(&layer[..], Compression::None, t2.path(), "sha256:test", limits).unwrap();
            assert_eq!(ok.chown_failures, 0, "the owners are recorded, not lost");
            let etc = t2.path().join("etc");
            let rec = crate::owner::recorded(&etc.join("owned"), 0, 0);
            assert_eq!(rec, Some(crate::owner::Override { uid: 1234, gid: 1234, mode: 0o644 }));
            for n in ["link", "fifo"] {
                let meta = std::fs::symlink_metadata(etc.join(n)).unwrap();
                assert_eq!(crate::child_owners::recorded(&etc, n.as_bytes(), &meta), Some((1234, 1234)), "{n}");
            }
            println!("{}", crate::userns_test::CHECKED);
            return;
        }
        crate::userns_test::rerun_under_unshare(
            &["-r"],
            "unpack::tests::unmapped_owner_fails_the_unpack_in_a_real_user_namespace",
            &[(IN_USERNS, std::ffi::OsStr::new("1"))],
            120,
        );
    }

    #[test]
    fn xattr_filter() {
        assert!(keep_xattr("user.foo"));
        assert!(keep_xattr("security.capability"));
        assert!(!keep_xattr("trusted.overlay.opaque"));
        assert!(!keep_xattr("security.selinux"));
        assert!(!keep_xattr("user.overlay.origin"));
        assert!(!keep_xattr("user.containers.override_stat"));
        assert!(keep_xattr_in_store("user.containers.override_stat"));
        assert!(!keep_xattr("user.slipway.override_stat") && !keep_xattr_in_store("user.slipway.override_stat"));
        assert!(!keep_xattr_in_store("user.overlay.opaque"));
    }
}
