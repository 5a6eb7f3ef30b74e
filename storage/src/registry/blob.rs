//! Blob transfer: streaming download (verified against the digest), existence checks,
//! monolithic streaming upload, and cross-repository mount. Nothing here holds a whole
//! blob in memory.

use std::io::{self, Read, Write};

use ureq::http::Method;

use super::client::{Body, Client, Request, Scope, append_query, header, resolve_url};
use super::error::RegistryError;
use super::retry::is_transient_io;
use super::transfer::{ProgressReader, stall_of};
use crate::digest::{Digest, Hasher, HashingReader};
use crate::reference::Reference;

const COPY_BUFFER: usize = 256 * 1024;

/// A blob's body as it arrives, bounded by its descriptor's size: it never passes on
/// more than `size` bytes. A body that goes on past `size` ([`RegistryError::BlobTooLarge`]),
/// ends before it ([`RegistryError::SizeMismatch`]) or does not hash to the digest
/// ([`RegistryError::DigestMismatch`]) is an `InvalidData` I/O error wrapping the
/// [`RegistryError`] (see [`BlobReader::into_registry_error`]). The end is checked before
/// the last bytes are handed out, so a consumer (an upload) never sees a whole blob that
/// turns out to be wrong.
pub struct BlobReader {
    body: ProgressReader<ureq::BodyReader<'static>>,
    hasher: Option<Hasher>,
    expected: Digest,
    size: u64,
    count: u64,
    /// `registry/repository`, for errors.
    source: (String, String),
    content_length: Option<u64>,
    /// Set once the end check failed: later reads fail too, never a clean end.
    failed: bool,
}

impl BlobReader {
    /// The size the registry announced, if it did.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The [`RegistryError`] an I/O error of this reader carries, if it is one.
    pub fn into_registry_error(e: io::Error) -> Result<RegistryError, io::Error> {
        if e.get_ref().is_some_and(|inner| inner.is::<RegistryError>()) {
            let inner = e.into_inner().expect("checked above");
            return Ok(*inner.downcast::<RegistryError>().expect("checked above"));
        }
        Err(e)
    }

    fn invalid(err: RegistryError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, err)
    }

    /// At `size` bytes: the body must end here, and hash to the digest.
    fn check_end(&mut self) -> io::Result<()> {
        let Some(hasher) = self.hasher.take() else { return Ok(()) };
        let mut probe = [0u8; 1];
        let extra = loop {
            match self.body.read(&mut probe) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        if extra > 0 {
            return Err(Self::invalid(RegistryError::BlobTooLarge {
                registry: self.source.0.clone(),
                repository: self.source.1.clone(),
                digest: self.expected.clone(),
                expected: self.size,
                seen: self.size + extra as u64,
            }));
        }
        let found = hasher.finish();
        if found != self.expected {
            return Err(Self::invalid(RegistryError::DigestMismatch {
                what: format!("blob {} from {}/{}", self.expected, self.source.0, self.source.1),
                expected: self.expected.clone(),
                found,
            }));
        }
        Ok(())
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob {} already failed its size or digest check", self.expected),
            ));
        }
        if buf.is_empty() || self.hasher.is_none() {
            return Ok(0);
        }
        let left = self.size - self.count;
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = if want == 0 { 0 } else { self.body.read(&mut buf[..want])? };
        if n == 0 && left > 0 {
            self.failed = true;
            return Err(Self::invalid(RegistryError::SizeMismatch {
                digest: self.expected.clone(),
                expected: self.size,
                found: self.count,
            }));
        }
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.count += n as u64;
        if self.count == self.size {
            // Withholds this read's bytes if the blob turns out wrong.
            self.check_end().inspect_err(|_| self.failed = true)?;
        }
        Ok(n)
    }
}

/// An upload's source, keeping its first error for the caller: the HTTP client only
/// reports that the body failed.
struct Source<R> {
    inner: R,
    failed: Option<io::Error>,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.failed.get_or_insert(e);
                Err(copy)
            }
            other => other,
        }
    }
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
    /// The body went past the descriptor's size; `seen` bytes of it had arrived.
    TooLarge {
        seen: u64,
    },
}

impl Client {
    fn blob_request<'a>(&self, reference: &'a Reference, method: Method, digest: &Digest, action: &str) -> Request<'a> {
        let url = self.url(reference, &format!("{}/blobs/{digest}", reference.repository));
        self.request(reference, method, url, Scope::pull(&reference.repository), format!("{action} blob {digest}"))
    }

    /// Opens a blob of `size` bytes (its descriptor's) for streaming, following
    /// redirects (e.g. to object storage). The reader passes on at most `size` bytes and
    /// checks the end and the digest (see [`BlobReader`]); a body announced longer than
    /// `size` is [`RegistryError::BlobTooLarge`] before anything is read.
    pub fn get_blob(&self, reference: &Reference, digest: &Digest, size: u64) -> Result<BlobReader, RegistryError> {
        let (response, _) = self.open_blob(reference, digest, 0)?;
        let content_length = header(&response, "content-length").and_then(|v| v.parse::<u64>().ok());
        if let Some(len) = content_length
            && len > size
        {
            return Err(RegistryError::BlobTooLarge {
                registry: reference.registry.clone(),
                repository: reference.repository.clone(),
                digest: digest.clone(),
                expected: size,
                seen: len,
            });
        }
        Ok(BlobReader {
            body: self.body_reader(response),
            hasher: Some(Hasher::new(digest.algorithm())),
            expected: digest.clone(),
            size,
            count: 0,
            source: (reference.registry.clone(), reference.repository.clone()),
            content_length,
            failed: false,
        })
    }

    /// GET of a blob from byte `offset` on. Returns the response and how many leading
    /// bytes of its body to skip (a server that ignores `Range` sends all of it).
    fn open_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        offset: u64,
    ) -> Result<(ureq::http::Response<ureq::Body>, u64), RegistryError> {
        let mut req = self.blob_request(reference, Method::GET, digest, "downloading");
        if offset > 0 {
            req.headers.push(("Range", format!("bytes={offset}-")));
        }
        let response = self.send(&req, Body::Empty)?;
        match response.status().as_u16() {
            200 => Ok((response, offset)),
            206 => {
                let start = header(&response, "content-range")
                    .and_then(|v| v.strip_prefix("bytes ")?.split('-').next()?.trim().parse::<u64>().ok());
                if start != Some(offset) {
                    return Err(self.invalid_response(
                        &req,
                        format!("asked for bytes from {offset}, got Content-Range {start:?}"),
                    ));
                }
                Ok((response, 0))
            }
            404 => Err(RegistryError::BlobNotFound {
                registry: reference.registry.clone(),
                repository: reference.repository.clone(),
                digest: digest.clone(),
            }),
            _ => Err(self.error_for(&req, response)),
        }
    }

    /// Streams a blob of `size` bytes (its descriptor's) into `out`, checking its digest
    /// on the way, and returns its size. Never reads or writes more than `size` bytes:
    /// a longer body is [`RegistryError::BlobTooLarge`] as soon as it passes `size`, and a
    /// shorter one [`RegistryError::SizeMismatch`]. A connection that breaks or stalls
    /// mid-body (see [`super::ProgressDeadline`]) is resumed with a `Range` request (up to
    /// the retry policy's attempts), so `out` sees every byte exactly once; a body that
    /// keeps stalling ends in [`RegistryError::Stalled`].
    pub fn fetch_blob_to(
        &self,
        reference: &Reference,
        digest: &Digest,
        size: u64,
        out: &mut dyn Write,
    ) -> Result<u64, RegistryError> {
        let mut hasher = Hasher::new(digest.algorithm());
        let mut written = 0u64;
        let mut buf = vec![0u8; COPY_BUFFER];
        let mut attempt = 1;
        let too_large = |seen: u64| RegistryError::BlobTooLarge {
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            digest: digest.clone(),
            expected: size,
            seen,
        };
        loop {
            let (response, mut skip) = self.open_blob(reference, digest, written)?;
            // A body announced longer than what is left is refused before reading it.
            let left = size - written;
            if let Some(len) = header(&response, "content-length").and_then(|v| v.parse::<u64>().ok())
                && len.saturating_sub(skip) > left
            {
                return Err(too_large(written + len.saturating_sub(skip)));
            }
            let mut body = self.body_reader(response);
            let result = (|| -> Result<(), CopyError> {
                loop {
                    let n = match body.read(&mut buf) {
                        Ok(0) => return Ok(()),
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(CopyError::Read(e)),
                    };
                    let mut chunk = &buf[..n];
                    if skip > 0 {
                        let dropped = (skip as usize).min(chunk.len());
                        chunk = &chunk[dropped..];
                        skip -= dropped as u64;
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    if chunk.len() as u64 > size - written {
                        return Err(CopyError::TooLarge { seen: written + chunk.len() as u64 });
                    }
                    hasher.update(chunk);
                    out.write_all(chunk).map_err(CopyError::Write)?;
                    written += chunk.len() as u64;
                }
            })();
            let retry = attempt < self.retry_policy().attempts;
            match result {
                Ok(()) if written == size => break,
                Ok(()) if retry => {
                    // Ended early without an error: ask for the rest.
                    let delay = self.retry_policy().delay(attempt);
                    tracing::warn!(registry = %reference.registry, %digest, written, size, ?delay, "blob body ended early; resuming");
                    std::thread::sleep(delay);
                    attempt += 1;
                }
                Ok(()) => {
                    return Err(RegistryError::SizeMismatch { digest: digest.clone(), expected: size, found: written });
                }
                Err(CopyError::TooLarge { seen }) => return Err(too_large(seen)),
                Err(CopyError::Write(source)) => {
                    return Err(RegistryError::Io {
                        action: "writing downloaded blob".to_owned(),
                        digest: digest.to_string(),
                        source,
                    });
                }
                Err(CopyError::Read(e)) if is_transient_io(&e) && retry => {
                    let delay = self.retry_policy().delay(attempt);
                    tracing::warn!(registry = %reference.registry, %digest, written, error = %e, ?delay, "blob download broke off; resuming");
                    std::thread::sleep(delay);
                    attempt += 1;
                }
                Err(CopyError::Read(e)) if stall_of(&e).is_some() => {
                    let req = self.blob_request(reference, Method::GET, digest, "downloading");
                    return Err(self.stalled(&req, &e, written));
                }
                Err(CopyError::Read(source)) => {
                    return Err(RegistryError::Io {
                        action: format!("downloading blob from {}/{}", reference.registry, reference.repository),
                        digest: digest.to_string(),
                        source,
                    });
                }
            }
        }
        let found = hasher.finish();
        if found != *digest {
            return Err(RegistryError::DigestMismatch {
                what: format!("blob {digest} from {}/{}", reference.registry, reference.repository),
                expected: digest.clone(),
                found,
            });
        }
        Ok(written)
    }

    /// The size of a blob if the repository has it (HEAD), `None` if it does not.
    pub fn blob_size(&self, reference: &Reference, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        let req = self.blob_request(reference, Method::HEAD, digest, "checking");
        let response = self.send(&req, Body::Empty)?;
        match response.status().as_u16() {
            200 => Ok(Some(header(&response, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0))),
            404 => Ok(None),
            _ => Err(self.error_for(&req, response)),
        }
    }

    /// Whether the repository has the blob (HEAD).
    pub fn blob_exists(&self, reference: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        Ok(self.blob_size(reference, digest)?.is_some())
    }

    /// Starts an upload session; returns its absolute URL.
    fn start_upload(&self, reference: &Reference, digest: &Digest) -> Result<String, RegistryError> {
        let url = self.url(reference, &format!("{}/blobs/uploads/", reference.repository));
        let req = self.request(
            reference,
            Method::POST,
            url,
            Scope::push(&reference.repository),
            format!("starting upload of blob {digest}"),
        );
        let response = self.send(&req, Body::Bytes(&[]))?;
        if response.status().as_u16() != 202 {
            return Err(self.error_for(&req, response));
        }
        let location = header(&response, "location")
            .ok_or_else(|| self.invalid_response(&req, "202 without a Location header"))?;
        Ok(resolve_url(&req.url, &location))
    }

    /// Abandons an upload session; failures only matter to the registry's garbage
    /// collector, so they are logged, not returned.
    fn cancel_upload(&self, reference: &Reference, location: &str) {
        let req = self.request(
            reference,
            Method::DELETE,
            location.to_owned(),
            Scope::push(&reference.repository),
            "cancelling upload".to_owned(),
        );
        match self.send(&req, Body::Empty) {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::debug!(status = r.status().as_u16(), %location, "upload cancel refused"),
            Err(e) => tracing::debug!(error = %e, %location, "upload cancel failed"),
        }
    }

    /// Uploads a blob in one streamed request (POST for a session, then PUT with the
    /// body and `?digest=`). `reader` must yield exactly `size` bytes hashing to
    /// `digest`. Only the POST is retried: a reader cannot be rewound; use
    /// [`Client::push_blob_with`] for retries of the whole upload.
    pub fn push_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        size: u64,
        reader: impl Read,
    ) -> Result<(), RegistryError> {
        let location = self.start_upload(reference, digest)?;
        let url = append_query(&location, "digest", digest.as_str());
        let mut req = self.request(
            reference,
            Method::PUT,
            url,
            Scope::push(&reference.repository),
            format!("uploading blob {digest}"),
        );
        req.headers.push(("Content-Type", "application/octet-stream".to_owned()));
        let mut hashing =
            HashingReader::with_algorithm(Source { inner: reader.take(size), failed: None }, digest.algorithm())
                .expecting(size);
        let result = self.send(&req, Body::Stream(&mut hashing, size));
        let result = match (result, hashing.get_mut().failed.take()) {
            // The source broke the request: its own error says why.
            (Err(_), Some(e)) => Err(BlobReader::into_registry_error(e).unwrap_or_else(|source| RegistryError::Io {
                action: format!("reading blob for upload to {}/{}", reference.registry, reference.repository),
                digest: digest.to_string(),
                source,
            })),
            (Err(RegistryError::UploadStalled { what, url, window_secs, min_bytes, .. }), None) => {
                Err(RegistryError::UploadStalled { what, url, window_secs, min_bytes, sent: hashing.count() })
            }
            (result, _) => result,
        };
        let outcome = match result {
            Ok(response) if response.status().as_u16() == 201 => {
                if let Some(got) = header(&response, "docker-content-digest")
                    && got != digest.as_str()
                {
                    tracing::warn!(registry = %reference.registry, expected = %digest, %got, "registry reports another digest for the uploaded blob");
                }
                Ok(())
            }
            Ok(response) => Err(self.error_for(&req, response)),
            Err(e) => Err(e),
        };
        if outcome.is_err() {
            self.cancel_upload(reference, &location);
        }
        // A short or wrong body explains a refusal better than the registry's words.
        let eof = hashing.at_eof();
        let (found, count, _) = hashing.finish();
        if eof && count < size {
            return Err(RegistryError::SizeMismatch { digest: digest.clone(), expected: size, found: count });
        }
        if count == size && found != *digest {
            return Err(RegistryError::DigestMismatch {
                what: format!("blob uploaded to {}/{}", reference.registry, reference.repository),
                expected: digest.clone(),
                found,
            });
        }
        outcome
    }

    /// Like [`Client::push_blob`], but re-opens the content and starts over when an
    /// attempt fails for a transient reason (network, 5xx, 429, a stalled upload).
    pub fn push_blob_with<R, F>(
        &self,
        reference: &Reference,
        digest: &Digest,
        size: u64,
        mut open: F,
    ) -> Result<(), RegistryError>
    where
        R: Read,
        F: FnMut() -> io::Result<R>,
    {
        self.push_retrying(reference, digest, size, || {
            open().map_err(|source| RegistryError::Io {
                action: "opening blob for upload".to_owned(),
                digest: digest.to_string(),
                source,
            })
        })
    }

    /// Streams a blob of `size` bytes from `source` into `dest`'s repository (another
    /// registry, or one that declined a mount), never through the local disk. The source
    /// is bounded by `size` and verified (see [`Client::get_blob`]): a body that is longer,
    /// shorter or wrong fails the copy, naming the digest, before the upload completes.
    /// Transient failures start over with a fresh GET, as [`Client::push_blob_with`] does.
    pub fn copy_blob(
        &self,
        source: &Reference,
        dest: &Reference,
        digest: &Digest,
        size: u64,
    ) -> Result<(), RegistryError> {
        self.push_retrying(dest, digest, size, || self.get_blob(source, digest, size))
    }

    fn push_retrying<R: Read>(
        &self,
        reference: &Reference,
        digest: &Digest,
        size: u64,
        mut open: impl FnMut() -> Result<R, RegistryError>,
    ) -> Result<(), RegistryError> {
        let mut attempt = 1;
        loop {
            match self.push_blob(reference, digest, size, open()?) {
                Err(e) if e.is_transient() && attempt < self.retry_policy().attempts => {
                    let delay = self.retry_policy().delay(attempt);
                    tracing::warn!(registry = %reference.registry, %digest, error = %e, ?delay, "blob upload failed; starting over");
                    std::thread::sleep(delay);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Asks the registry to link a blob from `from_repository` (same registry) into
    /// `target`'s repository without uploading it. `Ok(true)` if mounted; `Ok(false)` if
    /// the registry declined (the caller uploads instead).
    pub fn mount_blob(
        &self,
        target: &Reference,
        digest: &Digest,
        from_repository: &str,
    ) -> Result<bool, RegistryError> {
        let url = self.url(target, &format!("{}/blobs/uploads/", target.repository));
        let url = append_query(&append_query(&url, "mount", digest.as_str()), "from", from_repository);
        let req = self.request(
            target,
            Method::POST,
            url,
            Scope::push(&target.repository).and_pull(from_repository),
            format!("mounting blob {digest} from {from_repository}"),
        );
        let response = self.send(&req, Body::Bytes(&[]))?;
        match response.status().as_u16() {
            201 => {
                tracing::debug!(registry = %target.registry, %digest, from = from_repository, to = %target.repository, "blob mounted");
                Ok(true)
            }
            202 => {
                if let Some(location) = header(&response, "location") {
                    self.cancel_upload(target, &resolve_url(&req.url, &location));
                }
                Ok(false)
            }
            _ => Err(self.error_for(&req, response)),
        }
    }
}
