//! Copying a blob out of the object database without holding it whole in memory.
//!
//! `gix` (0.90) reads every object into one buffer, so a 200 MiB committed file costs
//! at least 200 MiB of memory (twice that with the object cache and a copy). The build
//! context only needs each file's bytes written once, in order, so [`Repo::copy_blob`]
//! streams them:
//!
//! - **loose objects** (`objects/ab/cdef…`): the file is zlib-inflated in 64 KiB chunks;
//! - **undeltified pack entries** (git stores every blob above `core.bigFileThreshold`,
//!   512 MiB by default, whole, and many smaller ones too): the `.idx` gives the offset,
//!   the entry header is parsed there and its zlib data inflated in chunks, read with
//!   plain `read(2)` from the `.pack` (not the memory map, whose touched pages would count
//!   against the process's resident memory);
//! - **deltified pack entries** and objects only an alternate object database holds are
//!   read whole through `gix`, as before. Applying a delta needs random access to its
//!   base, itself possibly a delta, so a streaming path would have to buffer the base
//!   anyway; git only deltifies blobs below `core.bigFileThreshold`, which bounds them.
//!
//! Streamed content is hashed on the way and checked against the object id, so a corrupt
//! object fails instead of producing a wrong file (the caller discards what it wrote).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gix::ObjectId;
use gix::odb::pack;

use super::{GitError, Repo, parse_oid};

const CHUNK: usize = 64 * 1024;

/// The pack indexes of a repository, opened once per [`Repo`] (and its clones).
pub(super) type PackIndexes = Arc<Vec<(PathBuf, pack::index::File)>>;

impl Repo {
    /// Writes the content of blob `oid` to `out` and returns its size, holding at most a
    /// few chunks of it in memory for loose objects and undeltified pack entries (see the
    /// module docs for when it falls back to reading the blob whole).
    pub fn copy_blob(&self, oid: &str, out: &mut dyn Write) -> Result<u64, GitError> {
        let id = parse_oid(oid)?;
        let objects = self.inner.objects.store_ref().path().to_path_buf();
        let hex = id.to_string();
        let loose = objects.join(&hex[..2]).join(&hex[2..]);
        match File::open(&loose) {
            Ok(file) => return copy_loose(id, &loose, file, out),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(GitError::Io { path: loose, source }),
        }
        for (pack_path, index) in self.pack_indexes(&objects).iter() {
            let Some(entry) = index.lookup(id) else { continue };
            let offset = index.pack_offset_at_index(entry);
            if let Some(n) = copy_packed(id, pack_path, offset, out)? {
                return Ok(n);
            }
            break;
        }
        let data = self.blob(oid)?;
        out.write_all(&data).map_err(|source| GitError::WriteBlob { id: oid.to_string(), source })?;
        Ok(data.len() as u64)
    }

    fn pack_indexes(&self, objects: &Path) -> PackIndexes {
        self.packs
            .get_or_init(|| {
                let mut found = Vec::new();
                let Ok(dir) = std::fs::read_dir(objects.join("pack")) else { return Arc::new(found) };
                for entry in dir.flatten() {
                    let path = entry.path();
                    if path.extension().is_none_or(|e| e != "idx") {
                        continue;
                    }
                    let pack_path = path.with_extension("pack");
                    // An index that does not open is left to gix's own lookup.
                    if let Ok(index) = pack::index::File::at(&path, gix::hash::Kind::Sha1) {
                        found.push((pack_path, index));
                    }
                }
                Arc::new(found)
            })
            .clone()
    }
}

/// A loose object: `<kind> <size>\0<content>`, zlib-compressed.
fn copy_loose(id: ObjectId, path: &Path, file: File, out: &mut dyn Write) -> Result<u64, GitError> {
    let corrupt =
        |reason: &str| GitError::CorruptObject { id: id.to_string(), reason: format!("{}: {reason}", path.display()) };
    let read_err = |source| GitError::Io { path: path.to_path_buf(), source };
    let mut inflated =
        BufReader::with_capacity(CHUNK, flate2::read::ZlibDecoder::new(BufReader::with_capacity(CHUNK, file)));
    let mut header = Vec::new();
    (&mut inflated).take(64).read_until(0, &mut header).map_err(read_err)?;
    let Some(header) = header.strip_suffix(b"\0") else { return Err(corrupt("no object header")) };
    let (kind, size) = std::str::from_utf8(header)
        .ok()
        .and_then(|h| h.split_once(' '))
        .and_then(|(k, s)| Some((k.to_string(), s.parse::<u64>().ok()?)))
        .ok_or_else(|| corrupt("bad object header"))?;
    if kind != "blob" {
        return Err(GitError::WrongObjectKind { id: id.to_string(), expected: "blob", found: kind });
    }
    copy_verified(id, size, &mut inflated, out, |e| GitError::Io { path: path.to_path_buf(), source: e })
}

/// A pack entry at `offset`: streamed if it is a whole blob; `None` if it is a delta.
fn copy_packed(id: ObjectId, pack_path: &Path, offset: u64, out: &mut dyn Write) -> Result<Option<u64>, GitError> {
    let read_err = |source| GitError::Io { path: pack_path.to_path_buf(), source };
    let mut file = File::open(pack_path).map_err(read_err)?;
    file.seek(SeekFrom::Start(offset)).map_err(read_err)?;
    let mut reader = BufReader::with_capacity(CHUNK, file);
    let entry =
        pack::data::Entry::from_read(&mut reader, offset, gix::hash::Kind::Sha1.len_in_bytes()).map_err(read_err)?;
    use pack::data::entry::Header;
    let found = match entry.header {
        Header::Blob => {
            let mut inflated = flate2::read::ZlibDecoder::new(reader);
            let size = entry.decompressed_size;
            return copy_verified(id, size, &mut inflated, out, read_err).map(Some);
        }
        Header::OfsDelta { .. } | Header::RefDelta { .. } => return Ok(None),
        Header::Tree => "tree",
        Header::Commit => "commit",
        Header::Tag => "tag",
    };
    Err(GitError::WrongObjectKind { id: id.to_string(), expected: "blob", found: found.to_string() })
}

/// Copies exactly `size` bytes of blob content from `from` to `out`, hashing them as git
/// does (`blob <size>\0` first) and checking the result against `id`.
fn copy_verified(
    id: ObjectId,
    size: u64,
    from: &mut dyn Read,
    out: &mut dyn Write,
    read_err: impl Fn(std::io::Error) -> GitError,
) -> Result<u64, GitError> {
    let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
    hasher.update(format!("blob {size}\0").as_bytes());
    let mut buf = vec![0u8; CHUNK];
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = from.read(&mut buf[..want]).map_err(&read_err)?;
        if n == 0 {
            return Err(GitError::CorruptObject {
                id: id.to_string(),
                reason: format!("content ends {left} bytes before its declared size {size}"),
            });
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|source| GitError::WriteBlob { id: id.to_string(), source })?;
        left -= n as u64;
    }
    let found = hasher
        .try_finalize()
        .map_err(|e| GitError::CorruptObject { id: id.to_string(), reason: format!("hashing: {e}") })?;
    if found != id {
        return Err(GitError::CorruptObject { id: id.to_string(), reason: format!("its content hashes to {found}") });
    }
    Ok(size)
}
