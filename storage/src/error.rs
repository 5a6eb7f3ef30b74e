//! The crate's error type.

use crate::digest::Digest;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{action} {path}: {source}")]
    Sys {
        action: &'static str,
        path: String,
        #[source]
        source: nix::Error,
    },
    #[error("digest mismatch for {what}: expected {expected}, found {found}")]
    DigestMismatch { what: String, expected: Digest, found: Digest },
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest { digest: String, reason: &'static str },
    #[error(
        "refusing layer entry {entry:?} of layer {layer}: {reason}; the image is broken or hostile, nothing was written outside the layer"
    )]
    UnsafeEntry { layer: String, entry: String, reason: String },
    #[error(
        "layer {layer}: entry {entry:?} is owned by uid {uid}, gid {gid}, which this user namespace does \
         not map: the id is outside the user namespace's mapped range; see /etc/subuid and /etc/subgid \
         (give the user a range of 65536 ids, e.g. `usermod --add-subuids 100000-165535 \
         --add-subgids 100000-165535 USER`)"
    )]
    UnmappedOwner { layer: String, entry: String, uid: u32, gid: u32 },
    #[error(
        "copying {path}: it is owned by uid {uid}, gid {gid}, which this user namespace does not map: \
         the copy at {copy} cannot keep its owner; see /etc/subuid and /etc/subgid (give the user a \
         range of 65536 ids)"
    )]
    UnmappedCopyOwner { path: PathBuf, copy: PathBuf, uid: u32, gid: u32 },
    #[error(
        "directory tree deeper than {limit} levels at {path}: slipway does not commit or copy trees \
         this deep; flatten it in the build step"
    )]
    TooDeep { path: PathBuf, limit: usize },
    #[error("reading layer {layer}: {message}")]
    BadLayer { layer: String, message: String },
    #[error("blob {0} is not in the local store")]
    MissingBlob(Digest),
    #[error("decoding {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl StorageError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StorageError::Io { action, path, source }
    }

    pub(crate) fn sys(action: &'static str, path: impl Into<String>) -> impl FnOnce(nix::Error) -> Self {
        let path = path.into();
        move |source| StorageError::Sys { action, path, source }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
