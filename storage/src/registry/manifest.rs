//! Manifests as registries serve them: the exact bytes, the media type (from the
//! `Content-Type` header or sniffed from the JSON), and their parse into the one image
//! model of [`crate::image`] (OCI image manifest and index, Docker schema 2 manifest and
//! manifest list: the same JSON shapes under other media types).
//!
//! The raw bytes are kept next to the parsed form: a manifest's digest is the hash of
//! its exact bytes, so re-serializing would change what it names.

use serde::Deserialize;

use super::error::RegistryError;
use crate::digest::Digest;
use crate::image::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, Index, Manifest, OCI_INDEX,
    OCI_MANIFEST,
};

/// The `Accept` header for manifest requests: everything slipway can read.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// Registries refuse manifests above 4 MiB; so do we.
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

/// A parsed manifest of either kind.
// Parsed once per pull and matched on right away: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedManifest {
    Image(Manifest),
    Index(Index),
}

/// A manifest exactly as the registry sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    /// `sha256:` of `bytes` (or the algorithm of the digest it was pulled by).
    pub digest: Digest,
}

impl RawManifest {
    /// Parses the bytes according to the media type; `reference` is for errors.
    pub fn parse(&self, reference: &str) -> Result<ParsedManifest, RegistryError> {
        let invalid = |source| RegistryError::InvalidManifest {
            reference: reference.to_owned(),
            media_type: self.media_type.clone(),
            source,
        };
        match self.media_type.as_str() {
            OCI_MANIFEST | DOCKER_MANIFEST => {
                serde_json::from_slice(&self.bytes).map(ParsedManifest::Image).map_err(invalid)
            }
            OCI_INDEX | DOCKER_MANIFEST_LIST => {
                serde_json::from_slice(&self.bytes).map(ParsedManifest::Index).map_err(invalid)
            }
            DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => {
                Err(RegistryError::UnsupportedSchema1 { reference: reference.to_owned() })
            }
            other => Err(RegistryError::UnsupportedMediaType {
                reference: reference.to_owned(),
                media_type: other.to_owned(),
            }),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sniff {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
    #[serde(default)]
    signatures: Option<serde_json::Value>,
}

/// The media type of a manifest: the `Content-Type` the registry sent if it is a
/// manifest type, else read from the JSON (`mediaType`, or the shape: OCI allows the
/// field to be absent, and some registries answer `application/json`).
pub fn detect_media_type(content_type: Option<&str>, bytes: &[u8]) -> String {
    let header =
        content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_ascii_lowercase()).filter(|c| !c.is_empty());
    if let Some(ct) = &header
        && ct != "application/json"
        && ct != "text/plain"
        && ct != "application/octet-stream"
    {
        return ct.clone();
    }
    let Ok(sniff) = serde_json::from_slice::<Sniff>(bytes) else {
        return header.unwrap_or_else(|| "application/octet-stream".to_owned());
    };
    if let Some(mt) = sniff.media_type.filter(|m| !m.is_empty()) {
        return mt;
    }
    match sniff.schema_version {
        Some(1) if sniff.signatures.is_some() => DOCKER_SCHEMA1_SIGNED.to_owned(),
        Some(1) => DOCKER_SCHEMA1.to_owned(),
        _ if sniff.manifests.is_some() => OCI_INDEX.to_owned(),
        _ if sniff.config.is_some() => OCI_MANIFEST.to_owned(),
        _ => header.unwrap_or_else(|| "application/octet-stream".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(media_type: &str, bytes: &[u8]) -> RawManifest {
        RawManifest { bytes: bytes.to_vec(), media_type: media_type.into(), digest: Digest::of(bytes) }
    }

    #[test]
    fn parses_by_media_type() {
        let sha = format!("sha256:{}", "a".repeat(64));
        let image =
            format!(r#"{{"schemaVersion":2,"config":{{"mediaType":"m","digest":"{sha}","size":1}},"layers":[]}}"#);
        for mt in [OCI_MANIFEST, DOCKER_MANIFEST] {
            let ParsedManifest::Image(m) = raw(mt, image.as_bytes()).parse("r").unwrap() else { panic!("{mt}") };
            assert_eq!(m.config.digest.as_str(), sha);
        }
        for mt in [OCI_INDEX, DOCKER_MANIFEST_LIST] {
            let parsed = raw(mt, br#"{"schemaVersion":2,"manifests":[]}"#).parse("r").unwrap();
            assert!(matches!(parsed, ParsedManifest::Index(ref i) if i.manifests.is_empty()), "{mt}");
        }
    }

    #[test]
    fn detects_media_types() {
        let m = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        let table: &[(Option<&str>, &[u8], &str)] = &[
            (Some(DOCKER_MANIFEST), m, DOCKER_MANIFEST),
            (Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"), m, OCI_MANIFEST),
            (Some("application/json"), m, OCI_MANIFEST),
            (None, br#"{"schemaVersion":2,"manifests":[]}"#, OCI_INDEX),
            (None, br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#, DOCKER_MANIFEST_LIST),
            (Some("application/json"), br#"{"schemaVersion":1,"fsLayers":[]}"#, DOCKER_SCHEMA1),
            (None, br#"{"schemaVersion":1,"signatures":[]}"#, DOCKER_SCHEMA1_SIGNED),
            (Some("text/plain"), b"nope", "text/plain"),
        ];
        for (ct, bytes, want) in table {
            assert_eq!(detect_media_type(*ct, bytes), *want, "{ct:?}");
        }
    }

    #[test]
    fn schema1_and_unknown_types_are_clear_errors() {
        let raw = raw(DOCKER_SCHEMA1_SIGNED, b"{}");
        let err = raw.parse("r.io/a:1").unwrap_err().to_string();
        assert!(err.contains("schema 1") && err.contains("re-push"), "{err}");
        let raw = RawManifest { media_type: "text/html".into(), ..raw };
        assert!(raw.parse("r.io/a:1").unwrap_err().to_string().contains("\"text/html\""));
        let raw = RawManifest { media_type: OCI_MANIFEST.into(), bytes: b"{\"layers\":1}".to_vec(), ..raw };
        assert!(raw.parse("r.io/a:1").unwrap_err().to_string().starts_with("manifest r.io/a:1 is not valid JSON"));
    }
}
