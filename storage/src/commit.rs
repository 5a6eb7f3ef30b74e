//! Committing a step's upper directory as a layer.
//!
//! Walks the directory in sorted order and streams a deterministic tar (numeric owners,
//! no user/group names, file mtimes as they are) through sha256 (the diffID), gzip and
//! sha256 again (the blob digest) straight into the blob store, in one pass and in
//! constant memory (compression on every core, see `pgzip`). overlayfs whiteouts
//! (character devices 0/0) become `.wh.<name>` entries, opaque directories get a
//! `.wh..wh..opq` entry, hardlinked files are written once and linked after. An owner
//! recorded in a single-id namespace (`user.containers.override_stat`, [`crate::owner`])
//! is written as the entry's uid/gid, as is one a directory records for its symlink or
//! fifo ([`crate::child_owners`]), and neither xattr is ever written. The
//! directory itself is left as it is, in overlayfs format, ready to become the layer's
//! `diff/`.

use crate::blob::BlobStore;
use crate::digest::{Digest, HashingWriter};
use crate::error::{Result, StorageError};
use crate::owner::{OVERRIDE_XATTR, Override, PRIVATE_XATTR};
use crate::pgzip::ParGzWriter;
use crate::unpack::{OPAQUE_XATTR, keep_xattr};
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// The result of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub diff_id: Digest,
    /// Digest and size of the compressed blob, now in the blob store.
    pub digest: Digest,
    pub size: u64,
    pub uncompressed_size: u64,
}

/// gzip level for layer blobs. Measured on 2 cores (docs/ARCHITECTURE.md): level 2 is
/// 1.5–1.8× as fast as level 6 with blobs 7–18 % larger; level 1 is 2.7–2.9× as fast but
/// 29–49 % larger, which every pull of the image pays for again. Compression runs on
/// every core (`pgzip`).
pub const GZIP_LEVEL: u32 = 2;

/// Tar and compress `dir` into a gzip layer blob in `blobs`.
pub fn commit_dir(dir: &Path, blobs: &BlobStore) -> Result<Committed> {
    let (diff_id, uncompressed_size, blob) = commit_to(dir, blobs.writer()?)?;
    let (digest, size) = blob.commit(None)?;
    Ok(Committed { diff_id, digest, size, uncompressed_size })
}

/// Tar `dir` through gzip into `out`; returns the diffID, the tar's size and `out`.
/// A write error (e.g. ENOSPC) ends the commit with an error naming the entry being
/// written; the compressor then refuses every later write, so the tar builder's
/// end-of-archive write on drop neither reaches `out` nor waits on a worker.
pub(crate) fn commit_to<W: Write>(dir: &Path, out: W) -> Result<(Digest, u64, W)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let gz = ParGzWriter::new(out, GZIP_LEVEL, threads).map_err(StorageError::io("compressing", dir))?;
    let tar_out = HashingWriter::new(gz);
    let mut builder = tar::Builder::new(tar_out);
    builder.mode(tar::HeaderMode::Complete);
    let mut w = Walker { builder, links: HashMap::new(), root: dir };
    w.walk(dir)?;
    let tar_out = w.builder.into_inner().map_err(StorageError::io("finishing tar of", dir))?;
    let (diff_id, uncompressed_size, gz) = tar_out.finish();
    let out = gz.finish().map_err(StorageError::io("compressing", dir))?;
    Ok((diff_id, uncompressed_size, out))
}

struct Walker<'a, W: Write> {
    builder: tar::Builder<W>,
    /// (dev, inode) of multiply-linked files already written → their tar path.
    links: HashMap<(u64, u64), Vec<u8>>,
    root: &'a Path,
}

impl<W: Write> Walker<'_, W> {
    fn io(&self, action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
        StorageError::io(action, path)
    }

    fn sorted_names(&self, dir: &Path) -> Result<std::vec::IntoIter<std::ffi::OsString>> {
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(dir)
            .map_err(self.io("reading directory", dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(self.io("reading directory", dir))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Ok(names.into_iter())
    }

    /// Depth first, in sorted order, with an explicit stack (one frame per level, at most
    /// [`crate::MAX_TREE_DEPTH`]), so a deep tree cannot overflow the thread's stack.
    fn walk(&mut self, root: &Path) -> Result<()> {
        let mut stack = vec![(root.to_path_buf(), Vec::new(), self.sorted_names(root)?)];
        while let Some((dir, prefix, names)) = stack.last_mut() {
            let Some(name) = names.next() else {
                stack.pop();
                continue;
            };
            let (dir, prefix) = (dir.clone(), prefix.clone());
            if let Some((sub, sub_prefix)) = self.entry(&dir, &prefix, name)? {
                if stack.len() >= crate::MAX_TREE_DEPTH {
                    return Err(StorageError::TooDeep { path: sub, limit: crate::MAX_TREE_DEPTH });
                }
                let names = self.sorted_names(&sub)?;
                stack.push((sub, sub_prefix, names));
            }
        }
        Ok(())
    }

    /// Writes the entry `name` of `dir`; returns the directory to descend into, if it is one.
    fn entry(
        &mut self,
        dir: &Path,
        prefix: &[u8],
        name: std::ffi::OsString,
    ) -> Result<Option<(std::path::PathBuf, Vec<u8>)>> {
        let path = dir.join(&name);
        let mut rel = prefix.to_vec();
        rel.extend_from_slice(name.as_bytes());
        let meta = std::fs::symlink_metadata(&path).map_err(self.io("stat", &path))?;
        let ft = meta.file_type();
        if ft.is_char_device() && meta.rdev() == 0 {
            let mut wh = prefix.to_vec();
            wh.extend_from_slice(b".wh.");
            wh.extend_from_slice(name.as_bytes());
            let mut h = header(&meta, tar::EntryType::Regular);
            h.set_mode(0o600);
            h.set_uid(0);
            h.set_gid(0);
            h.set_size(0);
            self.append(&mut h, &wh, std::io::empty())?;
        } else if ft.is_dir() {
            let recorded = self.xattrs(&path, &meta)?;
            let mut h = header(&meta, tar::EntryType::Directory);
            set_recorded_owner(&mut h, recorded);
            let mut d = rel.clone();
            d.push(b'/');
            self.append(&mut h, &d, std::io::empty())?;
            if crate::sys::lgetxattr(&path, OPAQUE_XATTR.as_bytes()).is_ok_and(|v| v == b"y") {
                let mut o = d.clone();
                o.extend_from_slice(b".wh..wh..opq");
                let mut h = header(&meta, tar::EntryType::Regular);
                h.set_mode(0o600);
                h.set_size(0);
                self.append(&mut h, &o, std::io::empty())?;
            }
            return Ok(Some((path, d)));
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path).map_err(self.io("reading symlink", &path))?;
            let mut h = header(&meta, tar::EntryType::Symlink);
            set_child_owner(&mut h, crate::child_owners::recorded(dir, name.as_bytes(), &meta));
            self.builder
                .append_link(&mut h, std::ffi::OsStr::from_bytes(&rel), &target)
                .map_err(self.io("writing tar entry for", &path))?;
        } else if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            if meta.nlink() > 1 {
                if let Some(first) = self.links.get(&key) {
                    let first = std::ffi::OsStr::from_bytes(first).to_owned();
                    let mut h = header(&meta, tar::EntryType::Link);
                    set_recorded_owner(&mut h, crate::owner::recorded(&path, meta.uid(), meta.gid()));
                    h.set_size(0);
                    self.builder
                        .append_link(&mut h, std::ffi::OsStr::from_bytes(&rel), first)
                        .map_err(self.io("writing tar entry for", &path))?;
                    return Ok(None);
                }
                self.links.insert(key, rel.clone());
            }
            let recorded = self.xattrs(&path, &meta)?;
            let file = std::fs::File::open(&path).map_err(self.io("opening", &path))?;
            let mut h = header(&meta, tar::EntryType::Regular);
            set_recorded_owner(&mut h, recorded);
            h.set_size(meta.len());
            self.append(&mut h, &rel, file)?;
        } else if ft.is_fifo() {
            let mut h = header(&meta, tar::EntryType::Fifo);
            set_child_owner(&mut h, crate::child_owners::recorded(dir, name.as_bytes(), &meta));
            self.append(&mut h, &rel, std::io::empty())?;
        } else {
            tracing::warn!(path = %path.display(), "skipping a socket or device in the layer");
        }
        Ok(None)
    }

    fn append(&mut self, h: &mut tar::Header, rel: &[u8], data: impl std::io::Read) -> Result<()> {
        let root = self.root;
        self.builder
            .append_data(h, std::ffi::OsStr::from_bytes(rel), data)
            .map_err(|e| StorageError::io("writing tar entry for", root.join(std::ffi::OsStr::from_bytes(rel)))(e))
    }

    /// Emit a PAX header with the xattrs of `path` worth keeping, if any; returns the
    /// owner recorded for it in a single-id namespace ([`crate::owner`]), if any.
    fn xattrs(&mut self, path: &Path, meta: &std::fs::Metadata) -> Result<Option<Override>> {
        let names =
            crate::sys::llistxattr(path).map_err(StorageError::sys("listing xattrs of", path.display().to_string()))?;
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        let mut recorded = None;
        for n in names {
            let name = String::from_utf8_lossy(&n).into_owned();
            if name == OVERRIDE_XATTR || name == PRIVATE_XATTR {
                recorded = crate::owner::recorded(path, meta.uid(), meta.gid());
                continue;
            }
            if !keep_xattr(&name) {
                continue;
            }
            if let Ok(v) = crate::sys::lgetxattr(path, &n) {
                pax.push((format!("SCHILY.xattr.{name}"), v));
            }
        }
        if !pax.is_empty() {
            pax.sort();
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(self.io("writing xattrs for", path))?;
        }
        Ok(recorded)
    }
}

/// The owner recorded for an entry replaces the real one (root's) in its header; the
/// mode stays the file's own, which steps change for real.
fn set_recorded_owner(h: &mut tar::Header, recorded: Option<Override>) {
    if let Some(o) = recorded {
        h.set_uid(u64::from(o.uid));
        h.set_gid(u64::from(o.gid));
    }
}

/// The owner a directory records for its symlink or fifo (`crate::child_owners`).
fn set_child_owner(h: &mut tar::Header, recorded: Option<(u32, u32)>) {
    if let Some((uid, gid)) = recorded {
        h.set_uid(u64::from(uid));
        h.set_gid(u64::from(gid));
    }
}

fn header(meta: &std::fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(u64::from(meta.uid()));
    h.set_gid(u64::from(meta.gid()));
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_size(0);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A disk that fills up after `room` bytes.
    struct FullDisk {
        room: usize,
        written: usize,
    }

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.written >= self.room {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = buf.len().min(self.room - self.written);
            self.written += n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Incompressible bytes, so the gzip output outgrows the disk quickly.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn enospc_during_commit_is_an_error_not_a_hang() {
        let t = tempfile::tempdir().unwrap();
        for i in 0..6 {
            std::fs::write(t.path().join(format!("f{i}")), noise(3 << 20, i + 1)).unwrap();
        }
        // Several room sizes: inside the header, the first chunk, a later chunk.
        for room in [4, 100_000, 5 << 20] {
            let dir = t.path().to_path_buf();
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let r = commit_to(&dir, FullDisk { room, written: 0 }).map(|_| ());
                let _ = tx.send(r);
            });
            let result =
                rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("commit hung with room {room}"));
            let err = result.expect_err("a full disk must fail the commit");
            let text = err.to_string();
            assert!(text.contains("No space left on device"), "room {room}: {text}");
            assert!(text.contains(t.path().to_str().unwrap()), "the error names the path: {text}");
        }
    }

    /// `levels` nested one-letter directories below `root`, with a file at the bottom.
    fn nested(root: &Path, levels: usize) {
        let mut fd = nix::fcntl::open(root, nix::fcntl::OFlag::O_DIRECTORY, nix::sys::stat::Mode::empty()).unwrap();
        for _ in 0..levels {
            nix::sys::stat::mkdirat(&fd, "d", nix::sys::stat::Mode::from_bits_truncate(0o755)).unwrap();
            fd = nix::fcntl::openat(&fd, "d", nix::fcntl::OFlag::O_DIRECTORY, nix::sys::stat::Mode::empty()).unwrap();
        }
        let flags = nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_WRONLY;
        drop(nix::fcntl::openat(&fd, "bottom", flags, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap());
    }

    /// Runs `f` on a thread with a 2 MiB stack (std's default for spawned threads, where
    /// parallel builds commit), so a deep recursion shows as a crash here.
    fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new().stack_size(2 << 20).spawn(f).unwrap().join().expect("no stack overflow")
    }

    #[test]
    fn commit_walks_trees_up_to_the_depth_limit_and_refuses_deeper_ones() {
        let t = tempfile::tempdir().unwrap();
        let (ok, deep) = (t.path().join("ok"), t.path().join("deep"));
        std::fs::create_dir(&ok).unwrap();
        std::fs::create_dir(&deep).unwrap();
        nested(&ok, crate::MAX_TREE_DEPTH - 1);
        nested(&deep, 3000);
        let (ok2, deep2) = (ok.clone(), deep.clone());
        let (diff_id, size, _) = on_small_stack(move || commit_to(&ok2, std::io::sink())).unwrap();
        assert!(size > 0 && diff_id.as_str().starts_with("sha256:"));
        let err = on_small_stack(move || commit_to(&deep2, std::io::sink()).map(|_| ())).unwrap_err();
        assert!(matches!(err, StorageError::TooDeep { limit: crate::MAX_TREE_DEPTH, .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with("directory tree deeper than 1024 levels at "), "{}", &text[..80]);
        assert!(text.contains(deep.to_str().unwrap()), "names the path");
    }

    const IN_USERNS: &str = "SLIPWAY_TEST_COMMIT_IN_USERNS";

    #[test]
    fn commit_into_a_full_tmpfs_fails_naming_the_blob_temp_file() {
        if std::env::var_os(IN_USERNS).is_some() {
            // Inside `unshare -Urm`: a real filesystem that fills up, a 1 MiB tmpfs.
            let t = tempfile::tempdir().unwrap();
            let (layer, mnt) = (t.path().join("layer"), t.path().join("store"));
            std::fs::create_dir_all(&layer).unwrap();
            std::fs::create_dir_all(&mnt).unwrap();
            std::fs::write(layer.join("random"), noise(4 << 20, 11)).unwrap();
            nix::mount::mount(Some("tmpfs"), &mnt, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=1m"))
                .unwrap();
            let blobs = BlobStore::new(mnt.join("blobs"), mnt.join("tmp"));
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(commit_dir(&layer, &blobs).map(|_| ()));
            });
            let err = rx.recv_timeout(Duration::from_secs(60)).expect("the commit hung on a full disk").unwrap_err();
            let text = err.to_string();
            assert!(text.contains("No space left on device"), "{text}");
            let tmp = mnt.join("tmp");
            assert!(text.contains(&format!("writing blob temp file {}/blob-", tmp.display())), "{text}");
            assert!(text.contains(&format!("compressing {}: ", t.path().join("layer").display())), "{text}");
            assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "the temp file is gone");
            assert!(!mnt.join("blobs").exists() || std::fs::read_dir(mnt.join("blobs")).unwrap().count() == 0);
            nix::mount::umount2(&mnt, nix::mount::MntFlags::MNT_DETACH).unwrap();
            println!("{}", crate::userns_test::CHECKED);
            return;
        }
        crate::userns_test::rerun_under_unshare(
            &["-U", "-r", "-m"],
            "commit::tests::commit_into_a_full_tmpfs_fails_naming_the_blob_temp_file",
            &[(IN_USERNS, std::ffi::OsStr::new("1"))],
            120,
        );
    }

    const RECORDED_IN_USERNS: &str = "SLIPWAY_TEST_COMMIT_RECORDED_IN_USERNS";

    #[test]
    fn recorded_owners_become_the_tar_owners_and_the_record_is_not_written() {
        if std::env::var_os(RECORDED_IN_USERNS).is_some() {
            // Inside `unshare -r`: a single-id namespace, where only root owns files.
            let t = tempfile::tempdir().unwrap();
            let d = t.path().join("d");
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("f"), b"x").unwrap();
            std::fs::hard_link(d.join("f"), d.join("h")).unwrap();
            std::fs::write(d.join("root"), b"r").unwrap();
            let f = std::fs::File::open(d.join("f")).unwrap();
            assert_eq!(crate::owner::chown_fd(&f, 123, 456, 0o644).unwrap(), crate::owner::Applied::Recorded);
            let dir = std::fs::File::open(&d).unwrap();
            crate::owner::record(&dir, 1000, 1000, 0o755).unwrap();
            crate::sys::lsetxattr(&d.join("root"), b"user.other", b"kept").unwrap();
            // Symlinks and fifos: recorded on their directory; `old` was made again
            // after its record (another mtime), so the record is stale.
            std::os::unix::fs::symlink("f", d.join("l")).unwrap();
            std::os::unix::fs::symlink("f", d.join("old")).unwrap();
            nix::unistd::mkfifo(&d.join("p"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
            for (n, o) in [("l", (7, 8)), ("p", (9, 10)), ("old", (11, 12))] {
                crate::child_owners::set(&dir, n.as_bytes(), Some(o)).unwrap();
            }
            let t0 = nix::sys::time::TimeSpec::new(1, 0);
            nix::sys::stat::utimensat(&dir, "old", &t0, &t0, nix::sys::stat::UtimensatFlags::NoFollowSymlink).unwrap();
            let (_, _, gz) = commit_to(t.path(), Vec::new()).unwrap();
            let mut tar = tar::Archive::new(flate2::read::MultiGzDecoder::new(&gz[..]));
            let mut seen = Vec::new();
            for e in tar.entries().unwrap() {
                let mut e = e.unwrap();
                let xattrs: Vec<String> = e
                    .pax_extensions()
                    .unwrap()
                    .map(|x| x.flatten().map(|x| x.key().unwrap().to_string()).collect())
                    .unwrap_or_default();
                assert!(!xattrs.iter().any(|k| k.contains("override_stat") || k.contains("slipway")), "{xattrs:?}");
                let h = e.header();
                let p = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                seen.push(format!("{p} {}:{} {}", h.uid().unwrap(), h.gid().unwrap(), xattrs.join(",")));
            }
            assert_eq!(
                seen,
                [
                    "d/ 1000:1000 ",
                    "d/f 123:456 ",
                    "d/h 123:456 ",
                    "d/l 7:8 ",
                    "d/old 0:0 ",
                    "d/p 9:10 ",
                    "d/root 0:0 SCHILY.xattr.user.other"
                ],
                "{seen:?}"
            );
            println!("{}", crate::userns_test::CHECKED);
            return;
        }
        crate::userns_test::rerun_under_unshare(
            &["-r"],
            "commit::tests::recorded_owners_become_the_tar_owners_and_the_record_is_not_written",
            &[(RECORDED_IN_USERNS, std::ffi::OsStr::new("1"))],
            120,
        );
    }

    #[test]
    fn commit_to_dev_full_fails_with_enospc() {
        // The kernel's own ENOSPC: every write to /dev/full fails.
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("a"), noise(3 << 20, 7)).unwrap();
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let (tx, rx) = mpsc::channel();
        let dir = t.path().to_path_buf();
        std::thread::spawn(move || {
            let _ = tx.send(commit_to(&dir, full).map(|_| ()));
        });
        let err = rx.recv_timeout(Duration::from_secs(30)).expect("commit hung").unwrap_err();
        assert!(err.to_string().contains("No space left on device"), "{err}");
    }
}
