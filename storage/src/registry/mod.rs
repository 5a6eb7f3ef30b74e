//! A blocking client for OCI distribution registries (Docker Registry HTTP API v2):
//! pull and push manifests and blobs, mount blobs across repositories, list tags.
//!
//! ```text
//! config.rs     which registries are plain HTTP / unverified TLS (registries.conf)
//! auth.rs       credentials from podman's and docker's auth files
//! challenge.rs  WWW-Authenticate parsing, token responses, token cache
//! client.rs     HTTP core: auth on 401, retries with backoff, error mapping
//! retry.rs      the backoff policy and which failures are transient
//! manifest.rs   raw manifests: media-type detection, parse into crate::image types
//! image.rs      manifest operations (get, resolve to a platform, put, delete)
//! blob.rs       blob download (verified, resumable), HEAD, upload, mount
//! tags.rs       tag listing with Link pagination
//! transfer.rs   the progress deadline every body read must keep
//! ```
//!
//! Built on `ureq` (blocking) rather than an async client: slipway stays
//! single-threaded until it has entered its user namespace, and bodies stream through
//! `std::io::Read`/`Write` without buffering a layer in memory.

mod auth;
mod blob;
mod challenge;
mod client;
mod config;
mod error;
mod image;
mod manifest;
mod retry;
mod tags;
mod transfer;

pub use auth::{AuthError, AuthFile, AuthStore, Credentials, default_auth_paths, normalize_key, parse_auth_file};
pub use blob::BlobReader;
pub use challenge::{Challenge, Token, parse_challenges, parse_token_response};
pub use client::Client;
pub use config::{ConfigError, RegistryConfig, default_registries_conf_paths};
pub use error::RegistryError;
pub use image::{MAX_CONFIG_SIZE, ResolvedImage};
pub use manifest::{MANIFEST_ACCEPT, MAX_MANIFEST_SIZE, ParsedManifest, RawManifest, detect_media_type};
pub use retry::RetryPolicy;
pub use tags::{DEFAULT_TAG_PAGE, MAX_TAGS, parse_link_next};
pub use transfer::{ProgressDeadline, Stall};
