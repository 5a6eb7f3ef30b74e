//! Errors of the registry client. Each names the registry, repository and (where it
//! applies) the digest or tag, and says what the user can do about it.

use std::io;

use crate::digest::Digest;
use crate::reference::ReferenceError;

/// What went wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach registry {registry} ({action}): {source}")]
    Transport {
        registry: String,
        action: String,
        #[source]
        source: Box<ureq::Error>,
    },

    #[error(
        "registry {registry} requires credentials for {repository}: log in with \
         `podman login {registry}` or add them to $REGISTRY_AUTH_FILE, \
         ${{XDG_RUNTIME_DIR}}/containers/auth.json or ~/.docker/config.json"
    )]
    CredentialsRequired { registry: String, repository: String },

    #[error(
        "registry {registry} rejected the credentials for user \"{username}\" on \
         {repository}: check the username and password (or token) in your auth file"
    )]
    CredentialsRejected { registry: String, repository: String, username: String },

    #[error(
        "registry {registry} denied {action} on {repository}: {message}; check that the \
         account may access this repository"
    )]
    Denied { registry: String, repository: String, action: String, message: String },

    #[error("token service {realm} for registry {registry} failed: {detail}")]
    TokenService { registry: String, realm: String, detail: String },

    #[error("manifest {reference} not found: check the repository name and the tag or digest")]
    ManifestNotFound { reference: String },

    #[error("blob {digest} not found in {registry}/{repository}")]
    BlobNotFound { registry: String, repository: String, digest: Digest },

    #[error("registry {registry} answered {status} to {action} on {repository}: {message}")]
    Status { registry: String, repository: String, action: String, status: u16, message: String },

    #[error("registry {registry} sent an invalid response to {action}: {detail}")]
    InvalidResponse { registry: String, action: String, detail: String },

    #[error("content of {what} does not match its digest: expected {expected}, found {found}")]
    DigestMismatch { what: String, expected: Digest, found: Digest },

    #[error("blob {digest} has the wrong size: expected {expected} bytes, got {found}")]
    SizeMismatch { digest: Digest, expected: u64, found: u64 },

    #[error(
        "blob {digest} from {registry}/{repository} is larger than its descriptor says: expected \
         {expected} bytes, the registry sent at least {seen}; stopped reading (the registry is \
         broken or hostile)"
    )]
    BlobTooLarge { registry: String, repository: String, digest: Digest, expected: u64, seen: u64 },

    #[error(
        "image config {digest} of {reference} is {size} bytes, more than the {limit}-byte limit for \
         configs: refusing to download it"
    )]
    ConfigTooLarge { reference: String, digest: Digest, size: u64, limit: u64 },

    #[error(
        "{what} stalled at {url}: {seen} bytes arrived in the last {window_secs}s, less than the \
         {min_bytes} required ({received} bytes received in all); if the registry is only slow, \
         raise SLIPWAY_REGISTRY_PROGRESS_TIMEOUT (seconds, now {window_secs})"
    )]
    Stalled { what: String, url: String, seen: u64, window_secs: u64, min_bytes: u64, received: u64 },

    #[error(
        "{what} stalled at {url}: the registry took no part of the request body for {window_secs}s \
         (at least {min_bytes} bytes are required in every {window_secs}s; {sent} bytes handed over \
         in all); if the registry is only slow, raise SLIPWAY_REGISTRY_PROGRESS_TIMEOUT (seconds, now \
         {window_secs})"
    )]
    UploadStalled { what: String, url: String, window_secs: u64, min_bytes: u64, sent: u64 },

    #[error("manifest {reference} is larger than {limit} bytes: refusing to read it")]
    ManifestTooLarge { reference: String, limit: u64 },

    #[error(
        "manifest {reference} uses Docker schema 1, which slipway does not support: \
         re-push the image with a current client (e.g. `skopeo copy --format v2s2`)"
    )]
    UnsupportedSchema1 { reference: String },

    #[error("manifest {reference} has unsupported media type \"{media_type}\"")]
    UnsupportedMediaType { reference: String, media_type: String },

    #[error("manifest {reference} is not valid JSON for {media_type}: {source}")]
    InvalidManifest {
        reference: String,
        media_type: String,
        #[source]
        source: serde_json::Error,
    },

    #[error(
        "image {reference} has no {wanted} variant; it offers: {}",
        if available.is_empty() { "nothing".to_owned() } else { available.join(", ") }
    )]
    NoMatchingPlatform { reference: String, wanted: String, available: Vec<String> },

    #[error("{action} for {digest}: {source}")]
    Io {
        action: String,
        digest: String,
        #[source]
        source: io::Error,
    },

    #[error(transparent)]
    Reference(#[from] ReferenceError),
}

impl RegistryError {
    /// Whether a new attempt of the same operation may succeed (network trouble,
    /// 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Transport { source, .. } => super::retry::is_transient(source),
            // A fresh connection may find the registry reading again.
            RegistryError::UploadStalled { .. } => true,
            RegistryError::Status { status, .. } => *status == 429 || *status >= 500,
            RegistryError::Io { source, .. } => super::retry::is_transient_io(source),
            _ => false,
        }
    }
}
