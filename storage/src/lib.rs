//! Content-addressed blobs, layers, images and the local store of slipway.
//!
//! Knows nothing of werf.yaml: it stores and moves OCI images and the unpacked layer
//! trees the runtime mounts. Layer trees are unpacked and committed inside slipway's user
//! namespace, so file owners on disk are the real (subordinate) ids; in a single-id
//! namespace the owners it cannot set are recorded in an xattr ([`owner`]).
//!
//! All `unsafe` lives in [`sys`].

pub mod blob;
pub mod child_owners;
pub mod commit;
pub mod digest;
pub mod error;
pub mod fuse_upper;
pub mod gc;
pub mod image;
pub mod owner;
pub mod pgzip;
pub mod reference;
pub mod registry;
pub mod remove;
pub mod store;
mod sys;
pub mod unpack;
#[cfg(test)]
mod userns_test;
pub mod vfs;
pub mod xattr;

pub use digest::Digest;

/// The deepest directory tree a layer commit or a vfs copy walks. Both work through
/// paths, and a path past `PATH_MAX` (4096 bytes) fails anyway: at 1024 levels even
/// one-character names use half of it. Deeper trees fail with
/// [`StorageError::TooDeep`] instead of overflowing the stack or a path buffer; the
/// store can still delete them (see [`remove`]).
pub const MAX_TREE_DEPTH: usize = 1024;
pub use error::StorageError;
