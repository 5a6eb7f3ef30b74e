//! Typed content digests (`sha256:` and `sha512:`) and the one hashing reader and
//! writer every stream goes through: blob store writes, layer commits and unpacks, and
//! registry transfers.
//!
//! sha512: registries may serve descriptors and `@sha512:` references (OCI allows both),
//! so [`Digest`] accepts `sha256:<64 hex>` and `sha512:<128 hex>`, lowercase only, and the
//! hashers hash in the algorithm of the digest they check. What slipway computes itself
//! (diffIDs, the blobs it writes, the manifests it pushes) is sha256. [`Digest::hex`]
//! names files in the store: both prefixes are seven bytes and the two hex lengths
//! differ, so a sha256 and a sha512 name never collide, and the blob store files each
//! under its algorithm (`blobs/sha512/<hex>`).

use crate::error::StorageError;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256, Sha512};
use std::io::{self, Read, Write};

/// A hash algorithm a [`Digest`] can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The name before the `:`, also the blob store's directory.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated `sha256:<hex>` or `sha512:<hex>` content digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    /// `s` as a digest, or why it is not one (a phrase for an error message).
    pub fn validate(s: &str) -> Result<Self, &'static str> {
        let Some((name, hex)) = s.split_once(':') else {
            return Err("expected algorithm:hex, e.g. sha256:<64 hex digits>");
        };
        let algorithm = match name {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err("unsupported algorithm, expected sha256 or sha512"),
        };
        if hex.len() != algorithm.hex_len() {
            return Err(match algorithm {
                Algorithm::Sha256 => "sha256 digests have 64 hex digits",
                Algorithm::Sha512 => "sha512 digests have 128 hex digits",
            });
        }
        if !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err("digest must be lowercase hex");
        }
        Ok(Digest(s.to_string()))
    }

    pub fn parse(s: &str) -> Result<Self, StorageError> {
        Self::validate(s).map_err(|reason| StorageError::InvalidDigest { digest: s.into(), reason })
    }

    /// The sha256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_sha(Sha256::digest(bytes).into())
    }

    pub fn from_sha(sum: [u8; 32]) -> Self {
        Digest(format!("sha256:{}", hex::encode(sum)))
    }

    pub fn algorithm(&self) -> Algorithm {
        if self.0.starts_with("sha512:") { Algorithm::Sha512 } else { Algorithm::Sha256 }
    }

    /// The hex digits (64 for sha256, 128 for sha512).
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, for log lines.
    pub fn short(&self) -> &str {
        &self.0[7..19]
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Digest {
    type Error = StorageError;
    fn try_from(s: String) -> Result<Self, StorageError> {
        Digest::parse(&s)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

/// A running hash in one [`Algorithm`].
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything hashed.
    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::from_sha(h.finalize().into()),
            Hasher::Sha512(h) => Digest(format!("sha512:{}", hex::encode(h.finalize()))),
        }
    }
}

/// A reader that hashes and counts what passes through it. With [`Self::expecting`] a
/// size, ending early is an `UnexpectedEof` error rather than a plain end: an HTTP client
/// that has sent a `Content-Length` would otherwise wait forever for the rest.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
    size: Option<u64>,
    eof: bool,
}

impl<R: Read> HashingReader<R> {
    /// Hashes in sha256.
    pub fn new(inner: R) -> Self {
        Self::with_algorithm(inner, Algorithm::Sha256)
    }

    pub fn with_algorithm(inner: R, algorithm: Algorithm) -> Self {
        HashingReader { inner, hasher: Hasher::new(algorithm), count: 0, size: None, eof: false }
    }

    /// Makes an end before `size` bytes an `UnexpectedEof` error.
    pub fn expecting(self, size: u64) -> Self {
        HashingReader { size: Some(size), ..self }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether `inner` has reported its end.
    pub fn at_eof(&self) -> bool {
        self.eof
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The digest and size of what was read, and the inner reader.
    pub fn finish(self) -> (Digest, u64, R) {
        (self.hasher.finish(), self.count, self.inner)
    }

    /// Read the rest of the stream (so the digest covers all of it), then finish.
    pub fn drain_and_finish(mut self) -> io::Result<(Digest, u64, R)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(self.finish())
    }
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

/// A writer that hashes (sha256) and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Hasher::new(Algorithm::Sha256), count: 0 }
    }

    pub fn finish(self) -> (Digest, u64, W) {
        (self.hasher.finish(), self.count, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC_SHA512: &str = "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                              2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";

    #[test]
    fn parses_and_rejects() {
        let d = Digest::of(b"");
        assert_eq!(d.as_str(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
        assert_eq!((d.algorithm(), d.hex().len(), d.short()), (Algorithm::Sha256, 64, "e3b0c44298fc"));
        let long = Digest::parse(ABC_SHA512).unwrap();
        assert_eq!((long.algorithm(), long.hex().len(), long.short()), (Algorithm::Sha512, 128, "ddaf35a19361"));
        for (bad, why) in [
            ("e3b0", "expected algorithm:hex"),
            ("sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", "lowercase hex"),
            ("sha256:../../etc", "64 hex digits"),
            ("sha512:00", "128 hex digits"),
            ("md5:00", "unsupported algorithm"),
        ] {
            let err = Digest::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why) && err.contains(bad), "{bad}: {err}");
        }
        assert!(serde_json::from_str::<Digest>("\"sha256:00\"").is_err());
    }

    #[test]
    fn hashing_adapters_agree() {
        let data = vec![7u8; 100_000];
        let r = HashingReader::new(&data[..]);
        let (d1, n1, _) = r.drain_and_finish().unwrap();
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (d2, n2, out) = w.finish();
        assert_eq!((d1.clone(), n1), (d2, n2));
        assert_eq!(out, data);
        assert_eq!(d1, Digest::of(&data));
    }

    #[test]
    fn reader_hashes_sha512_and_refuses_a_short_stream() {
        let mut r = HashingReader::with_algorithm(&b"abc"[..], Algorithm::Sha512).expecting(3);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!((r.count(), r.at_eof()), (3, true));
        assert_eq!(r.finish().0.as_str(), ABC_SHA512);
        let mut short = HashingReader::new(&b"ab"[..]).expecting(3);
        let err = io::copy(&mut short, &mut io::sink()).unwrap_err();
        assert_eq!(
            (err.kind(), err.to_string()),
            (io::ErrorKind::UnexpectedEof, "content ended after 2 of 3 bytes".into())
        );
    }
}
