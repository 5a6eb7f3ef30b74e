//! Manifest operations: pull (by tag or verified digest), resolve an index to one
//! platform's image, push, look up a digest, delete.

use ureq::http::Method;

use super::client::{Body, Client, Request, Scope, header};
use super::error::RegistryError;
use super::manifest::{MANIFEST_ACCEPT, MAX_MANIFEST_SIZE, ParsedManifest, RawManifest, detect_media_type};
use super::retry::is_transient_io;
use crate::digest::{Digest, Hasher};
use crate::image::{Manifest, Platform};
use crate::reference::Reference;

/// The largest image config slipway downloads. A config is JSON read whole into memory;
/// real ones are kilobytes (a long history makes a few hundred).
pub const MAX_CONFIG_SIZE: u64 = 16 * 1024 * 1024;

/// One platform's image, found through an index if the reference named one.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedImage {
    pub manifest: Manifest,
    /// The image manifest's exact bytes, media type and digest.
    pub raw: RawManifest,
    /// The index or manifest list it was selected from, if any.
    pub index: Option<RawManifest>,
}

impl Client {
    fn manifest_request<'a>(
        &self,
        reference: &'a Reference,
        method: Method,
        target: &str,
        scope: Scope,
        action: &str,
    ) -> Request<'a> {
        let url = self.url(reference, &format!("{}/manifests/{target}", reference.repository));
        let mut req = self.request(reference, method, url, scope, format!("{action} manifest {reference}"));
        req.headers.push(("Accept", MANIFEST_ACCEPT.to_owned()));
        req
    }

    /// Pulls a manifest as raw bytes. When the reference has a digest the bytes are
    /// checked against it; otherwise the digest is computed (sha256).
    pub fn get_manifest(&self, reference: &Reference) -> Result<RawManifest, RegistryError> {
        self.get_manifest_limited(reference, MAX_MANIFEST_SIZE)
    }

    /// Like [`Client::get_manifest`], reading at most `limit` bytes (a descriptor's size,
    /// never more than [`MAX_MANIFEST_SIZE`]).
    fn get_manifest_limited(&self, reference: &Reference, limit: u64) -> Result<RawManifest, RegistryError> {
        let too_large = || RegistryError::ManifestTooLarge { reference: reference.to_string(), limit };
        if limit > MAX_MANIFEST_SIZE {
            return Err(RegistryError::ManifestTooLarge { reference: reference.to_string(), limit: MAX_MANIFEST_SIZE });
        }
        let req = self.manifest_request(
            reference,
            Method::GET,
            reference.manifest_reference(),
            Scope::pull(&reference.repository),
            "pulling",
        );
        let mut attempt = 1;
        let (bytes, content_type, announced) = loop {
            let response = self.send(&req, Body::Empty)?;
            match response.status().as_u16() {
                200 => {}
                404 => {
                    return Err(RegistryError::ManifestNotFound { reference: reference.to_string() });
                }
                _ => return Err(self.error_for(&req, response)),
            }
            if header(&response, "content-length").and_then(|v| v.parse::<u64>().ok()).is_some_and(|len| len > limit) {
                return Err(too_large());
            }
            let content_type = header(&response, "content-type");
            let announced = header(&response, "docker-content-digest");
            match self.read_limited(&req, response, limit) {
                Ok(Ok(bytes)) => break (bytes, content_type, announced),
                Ok(Err(_)) => return Err(too_large()),
                Err((_, e)) if is_transient_io(&e) && attempt < self.retry_policy().attempts => {
                    std::thread::sleep(self.retry_policy().delay(attempt));
                    attempt += 1;
                }
                Err((err, _)) => return Err(err),
            }
        };
        let digest = Self::manifest_digest_of(reference, &bytes, || format!("manifest {reference}"))?;
        if let Some(announced) = announced
            && announced != digest.as_str()
        {
            tracing::debug!(%reference, %announced, computed = %digest, "registry announced another manifest digest");
        }
        let media_type = detect_media_type(content_type.as_deref(), &bytes);
        Ok(RawManifest { bytes, media_type, digest })
    }

    /// Pulls the image manifest for `platform`: the manifest itself if the reference
    /// names one, or the matching entry of an index / manifest list (first match wins).
    pub fn resolve_image(&self, reference: &Reference, platform: &Platform) -> Result<ResolvedImage, RegistryError> {
        let shown = reference.to_string();
        let raw = self.get_manifest(reference)?;
        let index = match raw.parse(&shown)? {
            ParsedManifest::Image(manifest) => {
                return Ok(ResolvedImage { manifest, raw, index: None });
            }
            ParsedManifest::Index(index) => index,
        };
        let entry = index.select(platform).map_err(|available| RegistryError::NoMatchingPlatform {
            reference: shown.clone(),
            wanted: platform.to_string(),
            available,
        })?;
        let child = reference.with_digest(entry.digest.as_str())?;
        tracing::debug!(%reference, %platform, digest = %entry.digest, "selected platform from index");
        let child_raw = self.get_manifest_limited(&child, entry.size)?;
        match child_raw.parse(&child.to_string())? {
            ParsedManifest::Image(manifest) => Ok(ResolvedImage { manifest, raw: child_raw, index: Some(raw) }),
            ParsedManifest::Index(_) => Err(RegistryError::UnsupportedMediaType {
                reference: child.to_string(),
                media_type: format!("{} nested in an index", child_raw.media_type),
            }),
        }
    }

    /// Downloads an image config into `out`, bounded by its descriptor's `size`, which
    /// may not pass [`MAX_CONFIG_SIZE`]. See [`Client::fetch_blob_to`].
    pub fn fetch_config_to(
        &self,
        reference: &Reference,
        digest: &Digest,
        size: u64,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, RegistryError> {
        if size > MAX_CONFIG_SIZE {
            return Err(RegistryError::ConfigTooLarge {
                reference: reference.to_string(),
                digest: digest.clone(),
                size,
                limit: MAX_CONFIG_SIZE,
            });
        }
        self.fetch_blob_to(reference, digest, size, out)
    }

    /// Pushes a manifest under the reference's tag (or its digest if it has no tag) and
    /// returns the manifest's digest. Push every blob it names first: registries may
    /// refuse a manifest whose blobs are missing.
    pub fn put_manifest(&self, reference: &Reference, media_type: &str, bytes: &[u8]) -> Result<Digest, RegistryError> {
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(RegistryError::ManifestTooLarge { reference: reference.to_string(), limit: MAX_MANIFEST_SIZE });
        }
        let digest = Self::manifest_digest_of(reference, bytes, || format!("manifest to push as {reference}"))?;
        let target = reference.tag.as_deref().unwrap_or(digest.as_str());
        let mut req =
            self.manifest_request(reference, Method::PUT, target, Scope::push(&reference.repository), "pushing");
        req.headers.retain(|(name, _)| *name != "Accept");
        req.headers.push(("Content-Type", media_type.to_owned()));
        let response = self.send(&req, Body::Bytes(bytes))?;
        if !response.status().is_success() {
            return Err(self.error_for(&req, response));
        }
        if let Some(got) = header(&response, "docker-content-digest")
            && got != digest.as_str()
        {
            tracing::warn!(%reference, expected = %digest, %got, "registry reports another digest for the pushed manifest");
        }
        Ok(digest)
    }

    /// The digest of the manifest a reference points to (HEAD), `None` if absent.
    pub fn manifest_digest(&self, reference: &Reference) -> Result<Option<Digest>, RegistryError> {
        if let Some(digest) = &reference.digest {
            let parsed = Self::parse_digest(digest, reference)?;
            // Only the registry knows whether it has it.
            let req =
                self.manifest_request(reference, Method::HEAD, digest, Scope::pull(&reference.repository), "checking");
            let response = self.send(&req, Body::Empty)?;
            return match response.status().as_u16() {
                200 => Ok(Some(parsed)),
                404 => Ok(None),
                _ => Err(self.error_for(&req, response)),
            };
        }
        let req = self.manifest_request(
            reference,
            Method::HEAD,
            reference.manifest_reference(),
            Scope::pull(&reference.repository),
            "checking",
        );
        let response = self.send(&req, Body::Empty)?;
        match response.status().as_u16() {
            200 => match header(&response, "docker-content-digest") {
                Some(digest) => Digest::parse(&digest)
                    .map(Some)
                    .map_err(|e| self.invalid_response(&req, format!("Docker-Content-Digest: {e}"))),
                None => match self.get_manifest(reference) {
                    Ok(raw) => Ok(Some(raw.digest)),
                    Err(RegistryError::ManifestNotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                },
            },
            404 => Ok(None),
            _ => Err(self.error_for(&req, response)),
        }
    }

    /// Deletes the manifest a reference points to (by digest, as the API requires; a
    /// tag is looked up first). The registry must allow deletes.
    pub fn delete_manifest(&self, reference: &Reference) -> Result<(), RegistryError> {
        let digest = match &reference.digest {
            Some(digest) => digest.clone(),
            None => self
                .manifest_digest(reference)?
                .ok_or_else(|| RegistryError::ManifestNotFound { reference: reference.to_string() })?
                .into(),
        };
        let req =
            self.manifest_request(reference, Method::DELETE, &digest, Scope::delete(&reference.repository), "deleting");
        let response = self.send(&req, Body::Empty)?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            404 => Err(RegistryError::ManifestNotFound { reference: reference.to_string() }),
            _ => Err(self.error_for(&req, response)),
        }
    }

    /// The digest of manifest `bytes`: checked against the reference's digest, in its
    /// algorithm, if it has one; sha256 otherwise. `what` names the manifest for errors.
    fn manifest_digest_of(
        reference: &Reference,
        bytes: &[u8],
        what: impl FnOnce() -> String,
    ) -> Result<Digest, RegistryError> {
        let Some(expected) = &reference.digest else { return Ok(Digest::of(bytes)) };
        let expected = Self::parse_digest(expected, reference)?;
        let mut hasher = Hasher::new(expected.algorithm());
        hasher.update(bytes);
        let found = hasher.finish();
        if found != expected {
            return Err(RegistryError::DigestMismatch { what: what(), expected, found });
        }
        Ok(found)
    }

    /// `digest` checked and typed; an invalid one is an error naming the reference.
    fn parse_digest(digest: &str, reference: &Reference) -> Result<Digest, RegistryError> {
        Digest::validate(digest).map_err(|reason| {
            RegistryError::Reference(crate::reference::ReferenceError::InvalidDigest {
                reference: format!("{}@{digest}", reference.name()),
                digest: digest.to_string(),
                reason,
            })
        })
    }
}
