//! The content-addressed blob store: `blobs/sha256/<hex>` (and `blobs/sha512/<hex>` for
//! blobs a registry names by sha512).
//!
//! A blob is written to a temp file in `tmp/` while it is hashed, verified against the
//! expected digest, fsynced and renamed into place, so a reader never sees a partial
//! blob and a kill -9 leaves only garbage in `tmp/`. Putting a blob that exists is a
//! no-op; reading one re-verifies nothing (the name is the proof, written only after
//! verification).

use crate::digest::{Digest, HashingReader, HashingWriter};
use crate::error::{Result, StorageError};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    tmp: PathBuf,
}

impl BlobStore {
    /// `dir` holds `sha256/` and `sha512/`; `tmp` must be on the same filesystem.
    pub fn new(dir: PathBuf, tmp: PathBuf) -> Self {
        BlobStore { dir, tmp }
    }

    pub fn path(&self, d: &Digest) -> PathBuf {
        self.dir.join(d.algorithm().name()).join(d.hex())
    }

    pub fn exists(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    pub fn open(&self, d: &Digest) -> Result<File> {
        File::open(self.path(d)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StorageError::MissingBlob(d.clone()),
            _ => StorageError::io("opening blob", self.path(d))(e),
        })
    }

    pub fn read(&self, d: &Digest) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.open(d)?.read_to_end(&mut v).map_err(StorageError::io("reading blob", self.path(d)))?;
        Ok(v)
    }

    pub fn size(&self, d: &Digest) -> Result<u64> {
        Ok(self.open(d)?.metadata().map_err(StorageError::io("stat", self.path(d)))?.len())
    }

    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let d = Digest::of(bytes);
        if !self.exists(&d) {
            self.put_stream(&mut &bytes[..], Some(&d))?;
        }
        Ok(d)
    }

    /// Stream `r` into the store; with `expected`, a mismatch is an error and nothing is kept.
    pub fn put_stream(&self, r: &mut dyn Read, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let mut w = self.writer()?;
        std::io::copy(r, &mut w).map_err(StorageError::io("writing blob to", w.temp_path().to_path_buf()))?;
        w.commit(expected)
    }

    /// A writer whose bytes become a blob on [`BlobWriter::commit`].
    pub fn writer(&self) -> Result<BlobWriter> {
        std::fs::create_dir_all(&self.tmp).map_err(StorageError::io("creating", &self.tmp))?;
        let tmp = tempfile_in(&self.tmp)?;
        Ok(BlobWriter { store: self.clone(), inner: Some(HashingWriter::new(tmp.1)), temp: tmp.0 })
    }
}

fn tempfile_in(dir: &Path) -> Result<(PathBuf, File)> {
    for _ in 0..16 {
        let p = dir.join(format!("blob-{}", random_suffix()));
        match File::options().write(true).create_new(true).open(&p) {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(StorageError::io("creating temp file", p)(e)),
        }
    }
    Err(StorageError::Other(format!("cannot create a temp file in {}", dir.display())))
}

/// A short random-enough suffix for temp names (pid + time + counter).
pub fn random_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}-{}-{}", std::process::id(), t.as_nanos(), N.fetch_add(1, Ordering::Relaxed))
}

/// Bytes on their way to becoming a blob. Dropped without [`BlobWriter::commit`] (an
/// error, an abandoned download), it removes its temp file.
pub struct BlobWriter {
    store: BlobStore,
    /// `None` once committed.
    inner: Option<HashingWriter<File>>,
    temp: PathBuf,
}

impl BlobWriter {
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Verify, fsync and rename into place; returns the digest and size. The bytes were
    /// hashed in sha256 as they came; an `expected` sha512 digest (rare: only registries
    /// use it) costs one more read of the temp file.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let inner = self.inner.take().ok_or_else(|| StorageError::Other("blob writer committed twice".into()))?;
        let temp = std::mem::take(&mut self.temp);
        let (digest, size, file) = inner.finish();
        let guard = TempGuard(&temp);
        let digest = match expected {
            Some(exp) if exp.algorithm() != digest.algorithm() => {
                let reread = File::open(&temp).map_err(StorageError::io("opening blob temp file", &temp))?;
                let hashing = HashingReader::with_algorithm(reread, exp.algorithm());
                hashing.drain_and_finish().map_err(StorageError::io("reading blob temp file", &temp))?.0
            }
            _ => digest,
        };
        if let Some(exp) = expected
            && *exp != digest
        {
            return Err(StorageError::DigestMismatch { what: "blob".into(), expected: exp.clone(), found: digest });
        }
        file.sync_all().map_err(StorageError::io("fsync", &temp))?;
        drop(file);
        let dest = self.store.path(&digest);
        let parent = dest.parent().expect("blob path has a parent");
        std::fs::create_dir_all(parent).map_err(StorageError::io("creating", parent))?;
        std::fs::rename(&temp, &dest).map_err(StorageError::io("renaming blob into", &dest))?;
        std::mem::forget(guard);
        sync_dir(parent);
        Ok((digest, size))
    }

    fn inner(&mut self) -> std::io::Result<&mut HashingWriter<File>> {
        self.inner.as_mut().ok_or_else(|| std::io::Error::other("blob writer already committed"))
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.inner.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

impl Write for BlobWriter {
    /// Errors name the temp file (and keep their kind, e.g. `StorageFull`).
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let temp = self.temp.clone();
        self.inner()?.write(buf).map_err(|e| named_io_error("writing blob temp file", &temp, e))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let temp = self.temp.clone();
        self.inner()?.flush().map_err(|e| named_io_error("flushing blob temp file", &temp, e))
    }
}

/// `e` with `action path: ` in front, same kind.
fn named_io_error(action: &str, path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{action} {}: {e}", path.display()))
}

/// Removes a temp file unless forgotten.
struct TempGuard<'a>(&'a Path);

impl Drop for TempGuard<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

/// fsync a directory so a rename into it is durable; failures only cost durability.
pub fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_verify_and_reject() {
        let t = tempfile::tempdir().unwrap();
        let s = BlobStore::new(t.path().join("blobs"), t.path().join("tmp"));
        let d = s.put_bytes(b"hello").unwrap();
        assert_eq!(s.read(&d).unwrap(), b"hello");
        let wrong = Digest::of(b"other");
        let e = s.put_stream(&mut &b"hello"[..], Some(&wrong)).unwrap_err();
        assert!(matches!(e, StorageError::DigestMismatch { .. }), "{e}");
        assert!(!s.exists(&wrong));
        assert_eq!(std::fs::read_dir(t.path().join("tmp")).unwrap().count(), 0, "temp file left behind");
        assert!(matches!(s.open(&wrong), Err(StorageError::MissingBlob(_))));
    }

    #[test]
    fn sha512_blobs_are_verified_and_filed_under_their_algorithm() {
        let t = tempfile::tempdir().unwrap();
        let s = BlobStore::new(t.path().join("blobs"), t.path().join("tmp"));
        let mut hasher = crate::digest::Hasher::new(crate::digest::Algorithm::Sha512);
        hasher.update(b"hello");
        let d = hasher.finish();
        assert_eq!(s.put_stream(&mut &b"hello"[..], Some(&d)).unwrap(), (d.clone(), 5));
        assert!(t.path().join("blobs/sha512").join(d.hex()).is_file());
        assert_eq!(s.read(&d).unwrap(), b"hello");
        let e = s.put_stream(&mut &b"other"[..], Some(&d)).unwrap_err();
        assert!(matches!(e, StorageError::DigestMismatch { .. }), "{e}");
    }

    #[test]
    fn abandoned_writer_leaves_no_temp_file() {
        let t = tempfile::tempdir().unwrap();
        let s = BlobStore::new(t.path().join("blobs"), t.path().join("tmp"));
        let mut w = s.writer().unwrap();
        w.write_all(b"half a blob").unwrap();
        assert!(w.temp_path().exists());
        drop(w);
        assert_eq!(std::fs::read_dir(t.path().join("tmp")).unwrap().count(), 0, "temp file left behind");
    }
}
