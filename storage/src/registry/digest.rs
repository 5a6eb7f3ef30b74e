//! Hashing content while it streams, to check it against the digest that names it.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256, Sha512};

/// A running hash in the algorithm of a given digest (sha256 or sha512).
#[derive(Clone)]
pub enum DigestHasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl DigestHasher {
    /// A hasher for the algorithm `digest` uses; sha256 for anything else (callers
    /// validate digests first, see [`crate::reference::validate_digest`]).
    pub fn for_digest(digest: &str) -> Self {
        if digest.starts_with("sha512:") {
            DigestHasher::Sha512(Sha512::new())
        } else {
            DigestHasher::Sha256(Sha256::new())
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            DigestHasher::Sha256(h) => h.update(bytes),
            DigestHasher::Sha512(h) => h.update(bytes),
        }
    }

    /// `algorithm:hex` of everything hashed.
    pub fn finish(self) -> String {
        match self {
            DigestHasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            DigestHasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        }
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A reader that hashes and counts what passes through it. With `size` set, ending
/// early is an `UnexpectedEof` error rather than a plain end: ureq 3 would otherwise
/// wait forever for the rest of a body whose `Content-Length` it has already sent.
pub(crate) struct HashingReader<R> {
    pub(crate) inner: R,
    pub(crate) size: Option<u64>,
    pub(crate) hasher: DigestHasher,
    pub(crate) count: u64,
    /// Whether `inner` has reported its end.
    pub(crate) eof: bool,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof = true;
            if let Some(size) = self.size
                && self.count < size
            {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("content ended after {} of {size} bytes", self.count),
                ));
            }
        }
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_like_sha256sum() {
        assert_eq!(sha256_digest(b""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let mut r = HashingReader {
            inner: &b"abc"[..],
            size: None,
            hasher: DigestHasher::for_digest("sha256:x"),
            count: 0,
            eof: false,
        };
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!((r.count, r.eof), (3, true));
        let mut short = HashingReader {
            inner: &b"ab"[..],
            size: Some(3),
            hasher: DigestHasher::for_digest("sha256:x"),
            count: 0,
            eof: false,
        };
        let err = io::copy(&mut short, &mut io::sink()).unwrap_err();
        assert_eq!(err.to_string(), "content ended after 2 of 3 bytes");
        assert_eq!(r.hasher.finish(), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let mut h = DigestHasher::for_digest("sha512:x");
        h.update(b"abc");
        assert!(h.finish().starts_with("sha512:ddaf35a193617aba"));
    }
}
