//! Manifests as registries serve them: OCI image manifest and index, Docker schema 2
//! manifest and manifest list (the same JSON shapes under other media types).
//!
//! The raw bytes are kept next to the parsed form: a manifest's digest is the hash of
//! its exact bytes, so re-serializing would change what it names.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::RegistryError;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` header for manifest requests: everything slipway can read.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// Registries refuse manifests above 4 MiB; so do we.
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

/// A reference to content: media type, digest and size (OCI descriptor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

/// Where an image runs: `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, rename = "os.version", skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(default, rename = "os.features", skip_serializing_if = "Option::is_none")]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            architecture: architecture.to_owned(),
            os: os.to_owned(),
            variant: variant.map(str::to_owned),
            os_version: None,
            os_features: None,
            features: None,
        }
    }

    /// The platform slipway builds for.
    pub fn linux_amd64() -> Self {
        Platform::new("linux", "amd64", None)
    }

    /// Parses `os/arch[/variant]`, accepting the usual aliases (`x86_64`, `aarch64`).
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('/');
        let os = parts.next().filter(|p| !p.is_empty())?;
        let arch = parts.next().filter(|p| !p.is_empty())?;
        let variant = parts.next().filter(|p| !p.is_empty());
        if parts.next().is_some() {
            return None;
        }
        Some(Platform::new(os, normalize_arch(arch), variant))
    }

    /// Whether an index entry for `self` can run where `wanted` is asked for. A wanted
    /// variant must match (arm64's implied `v8` counts); no wanted variant takes any.
    pub fn satisfies(&self, wanted: &Platform) -> bool {
        if self.os != wanted.os || normalize_arch(&self.architecture) != normalize_arch(&wanted.architecture) {
            return false;
        }
        match &wanted.variant {
            None => true,
            Some(want) => {
                let have = self.variant.as_deref().or(match normalize_arch(&self.architecture) {
                    "arm64" => Some("v8"),
                    _ => None,
                });
                have == Some(want.as_str())
            }
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

fn normalize_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i686" => "386",
        other => other,
    }
}

/// An image manifest (OCI or Docker schema 2): a config blob and layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Fields this crate does not model, kept so a round-trip loses nothing.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// An OCI image index or Docker manifest list: one manifest per platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl ImageIndex {
    /// The first entry for `wanted`, or the list of platforms the index does offer
    /// (attestation entries, `unknown/unknown`, left out).
    pub fn select(&self, wanted: &Platform) -> Result<&Descriptor, Vec<String>> {
        self.manifests.iter().find(|d| d.platform.as_ref().is_some_and(|p| p.satisfies(wanted))).ok_or_else(|| {
            self.manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .filter(|p| p.os != "unknown")
                .map(Platform::to_string)
                .collect()
        })
    }
}

/// A parsed manifest of either kind.
// Parsed once per pull and matched on right away: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Manifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

/// A manifest exactly as the registry sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    /// `sha256:` of `bytes` (or the algorithm of the digest it was pulled by).
    pub digest: String,
}

impl RawManifest {
    /// Parses the bytes according to the media type; `reference` is for errors.
    pub fn parse(&self, reference: &str) -> Result<Manifest, RegistryError> {
        let invalid = |source| RegistryError::InvalidManifest {
            reference: reference.to_owned(),
            media_type: self.media_type.clone(),
            source,
        };
        match self.media_type.as_str() {
            OCI_MANIFEST | DOCKER_MANIFEST => serde_json::from_slice(&self.bytes).map(Manifest::Image).map_err(invalid),
            OCI_INDEX | DOCKER_MANIFEST_LIST => {
                serde_json::from_slice(&self.bytes).map(Manifest::Index).map_err(invalid)
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

    const INDEX: &str = r#"{
      "schemaVersion": 2,
      "mediaType": "application/vnd.oci.image.index.v1+json",
      "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:aa", "size": 1,
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:bb", "size": 2,
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:cc", "size": 3,
         "platform": {"architecture": "unknown", "os": "unknown"}}
      ],
      "x-custom": {"kept": true}
    }"#;

    #[test]
    fn selects_platform_from_index() {
        let raw =
            RawManifest { bytes: INDEX.as_bytes().to_vec(), media_type: OCI_INDEX.into(), digest: "sha256:00".into() };
        let Manifest::Index(index) = raw.parse("r").unwrap() else { panic!("not an index") };
        assert_eq!(index.select(&Platform::linux_amd64()).unwrap().digest, "sha256:bb");
        let arm = Platform::parse("linux/aarch64/v8").unwrap();
        assert_eq!(index.select(&arm).unwrap().digest, "sha256:aa");
        let missing = index.select(&Platform::parse("linux/s390x").unwrap()).unwrap_err();
        assert_eq!(missing, ["linux/arm64/v8", "linux/amd64"]);
        assert_eq!(index.extra["x-custom"], serde_json::json!({"kept": true}));
        let back = serde_json::to_value(&index).unwrap();
        assert_eq!(back["x-custom"]["kept"], true);
        assert_eq!(back["manifests"][1].get("annotations"), None);
    }

    #[test]
    fn platform_matching_and_parsing() {
        let arm64 = Platform::new("linux", "arm64", None);
        assert!(arm64.satisfies(&Platform::parse("linux/arm64/v8").unwrap()));
        assert!(!arm64.satisfies(&Platform::parse("linux/arm64/v9").unwrap()));
        let armv7 = Platform::new("linux", "arm", Some("v7"));
        assert!(armv7.satisfies(&Platform::parse("linux/arm").unwrap()));
        assert!(!armv7.satisfies(&Platform::parse("linux/arm/v6").unwrap()));
        assert!(Platform::new("linux", "x86_64", None).satisfies(&Platform::linux_amd64()));
        assert!(!Platform::new("windows", "amd64", None).satisfies(&Platform::linux_amd64()));
        assert_eq!(Platform::parse("linux"), None);
        assert_eq!(Platform::parse("linux/amd64/v2/x"), None);
        assert_eq!(Platform::parse("linux/amd64").unwrap().to_string(), "linux/amd64");
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
        let raw =
            RawManifest { bytes: b"{}".to_vec(), media_type: DOCKER_SCHEMA1_SIGNED.into(), digest: "sha256:00".into() };
        let err = raw.parse("r.io/a:1").unwrap_err().to_string();
        assert!(err.contains("schema 1") && err.contains("re-push"), "{err}");
        let raw = RawManifest { media_type: "text/html".into(), ..raw };
        assert!(raw.parse("r.io/a:1").unwrap_err().to_string().contains("\"text/html\""));
        let raw = RawManifest { media_type: OCI_MANIFEST.into(), bytes: b"{\"layers\":1}".to_vec(), ..raw };
        assert!(raw.parse("r.io/a:1").unwrap_err().to_string().starts_with("manifest r.io/a:1 is not valid JSON"));
    }
}
