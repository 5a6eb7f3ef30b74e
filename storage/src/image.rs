//! The one image model: descriptors, platforms, image manifests and indexes (OCI and
//! Docker schema 2, the same JSON under other media types), and image configs. The
//! local store, the stage engine and the registry client all use these types;
//! [`crate::registry`] adds only what is about the wire (raw bytes, media-type sniffing).
//!
//! Own serde types instead of `oci-spec`: the config must carry Docker's `Shell`,
//! `Healthcheck` and `OnBuild`, and unknown fields must survive a round trip, which
//! `#[serde(flatten)] extra` gives us for free.
//!
//! What slipway writes must stay byte-identical from release to release, or every stored
//! stage's manifest digest changes: fields serialize in declaration order and empty
//! optional fields are left out, so a field added here goes where OCI puts it and is
//! skipped when empty (`writes_stage_images_byte_for_byte` pins the bytes).
//!
//! Digests are typed ([`Digest`]): sha256 and sha512, see [`crate::digest`] for why.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

type Extra = BTreeMap<String, serde_json::Value>;

/// A reference to content: media type, digest and size (OCI descriptor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
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
    /// Fields this crate does not model, kept so a round trip loses nothing.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An OCI image index or Docker manifest list: one manifest per platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
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
    pub extra: Extra,
}

impl Index {
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: ContainerConfig,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs { kind: "layers".into(), diff_ids: Vec::new() }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// The runtime part of an image config, with Docker's field names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ContainerConfig {
    /// The value of `key` in `Env`.
    pub fn env_var(&self, key: &str) -> Option<&str> {
        self.env.as_ref()?.iter().rev().find_map(|e| e.strip_prefix(key)?.strip_prefix('='))
    }

    /// Set `key=value` in `Env`, replacing an earlier value in place.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let env = self.env.get_or_insert_with(Vec::new);
        let item = format!("{key}={value}");
        match env.iter_mut().find(|e| e.split_once('=').map_or(e.as_str() == key, |(k, _)| k == key)) {
            Some(slot) => *slot = item,
            None => env.push(item),
        }
    }
}

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn of_media_type(mt: &str) -> Option<Self> {
        if mt.ends_with("+gzip") || mt.ends_with(".tar.gzip") || mt == DOCKER_LAYER_GZIP {
            Some(Compression::Gzip)
        } else if mt.ends_with("+zstd") {
            Some(Compression::Zstd)
        } else if mt.ends_with(".tar") {
            Some(Compression::None)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_unknown_fields() {
        let json = r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin","A=1"],"Cmd":["/bin/sh"],"ArgsEscaped":true},"rootfs":{"type":"layers","diff_ids":[]},"os.version":"x"}"#;
        let mut c: ImageConfig = serde_json::from_str(json).unwrap();
        assert_eq!(c.config.env_var("PATH"), Some("/bin"));
        c.config.set_env("A", "2");
        c.config.set_env("B", "3");
        assert_eq!(c.config.env.as_deref().unwrap(), ["PATH=/bin", "A=2", "B=3"]);
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["config"]["ArgsEscaped"], true);
        assert_eq!(back["os.version"], "x");
    }

    /// A stage image as `src/engine/state.rs` writes it: a config carried over from a
    /// base image (unknown fields and all) with slipway's changes, and an OCI manifest
    /// whose descriptors have only media type, digest and size. The expected bytes were
    /// captured from the code before the two models were merged.
    #[test]
    fn writes_stage_images_byte_for_byte() {
        let base = r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin"],"Cmd":["/bin/sh"],"ArgsEscaped":true,"Labels":{"a":"b"}},"rootfs":{"type":"layers","diff_ids":["sha256:1111111111111111111111111111111111111111111111111111111111111111"]},"history":[{"created":"2020-01-01T00:00:00Z","created_by":"base"}],"os.version":"x","variant":"v1"}"#;
        let mut config: ImageConfig = serde_json::from_str(base).unwrap();
        config.config.set_env("A", "1");
        config.config.labels.get_or_insert_with(Default::default).insert("werf".into(), "proj".into());
        config.config.working_dir = Some("/app".into());
        config.config.healthcheck = Some(serde_json::json!({"Test": ["CMD", "true"], "Interval": 1000}));
        config.config.exposed_ports = Some([("80/tcp".to_string(), serde_json::json!({}))].into());
        config.rootfs.diff_ids.push(Digest::of(b"layer"));
        for (at, by, empty_layer) in
            [("2026-01-01T00:00:00Z", "RUN x", false), ("2026-01-01T00:00:01Z", "ENV A=1", true)]
        {
            config.history.push(History {
                created: Some(at.into()),
                created_by: Some(by.into()),
                comment: Some("slipway".into()),
                empty_layer,
            });
        }
        config.created = Some("2026-01-01T00:00:02Z".into());
        let config_bytes = serde_json::to_vec(&config).unwrap();
        assert_eq!(String::from_utf8(config_bytes.clone()).unwrap(), CONFIG);
        let descriptor = |media_type: &str, digest: Digest, size: u64| Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        };
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.into()),
            artifact_type: None,
            config: descriptor(OCI_CONFIG, Digest::of(&config_bytes), config_bytes.len() as u64),
            layers: vec![
                descriptor(OCI_LAYER_GZIP, Digest::of(b"blob1"), 11),
                descriptor(OCI_LAYER_TAR, Digest::of(b"blob2"), 22),
            ],
            subject: None,
            annotations: None,
            extra: Extra::new(),
        };
        let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
        assert_eq!(String::from_utf8(manifest_bytes.clone()).unwrap(), MANIFEST);
        let back: Manifest = serde_json::from_slice(&manifest_bytes).unwrap();
        assert_eq!(serde_json::to_vec(&back).unwrap(), manifest_bytes);
    }

    const CONFIG: &str = r#"{"created":"2026-01-01T00:00:02Z","architecture":"amd64","os":"linux","config":{"ExposedPorts":{"80/tcp":{}},"Env":["PATH=/usr/bin","A=1"],"Cmd":["/bin/sh"],"WorkingDir":"/app","Labels":{"a":"b","werf":"proj"},"Healthcheck":{"Interval":1000,"Test":["CMD","true"]},"ArgsEscaped":true},"rootfs":{"type":"layers","diff_ids":["sha256:1111111111111111111111111111111111111111111111111111111111111111","sha256:dac1d7cfa95021764849fd102524e141488c5e3a90f861dbb5a12d9ac8584f85"]},"history":[{"created":"2020-01-01T00:00:00Z","created_by":"base"},{"created":"2026-01-01T00:00:00Z","created_by":"RUN x","comment":"slipway"},{"created":"2026-01-01T00:00:01Z","created_by":"ENV A=1","comment":"slipway","empty_layer":true}],"os.version":"x","variant":"v1"}"#;
    const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:c7d5f47be9da4926b807c18928dd13d4352932af3ba09710dd986a38405ea16d","size":744},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:8ba0d06bc5a88966b1f681d9cab28709781ad7c450802d0e477132d8919e0cbf","size":11},{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:534d059533cc6a29b0e8747334c6af08619b1b59e6727f50a8094c90f6393282","size":22}]}"#;

    const SHA_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn docker_and_oci_manifests_parse_and_keep_unknown_fields() {
        let docker = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}",
              "config":{{"mediaType":"{DOCKER_CONFIG}","size":7,"digest":"{SHA_A}"}},
              "layers":[{{"mediaType":"{DOCKER_LAYER_GZIP}","size":9,"digest":"{SHA_B}",
                "urls":["https://example.com/l"]}}]}}"#
        );
        let m: Manifest = serde_json::from_str(&docker).unwrap();
        assert_eq!(m.media_type.as_deref(), Some(DOCKER_MANIFEST));
        assert_eq!((m.config.digest.as_str(), m.config.size), (SHA_A, 7));
        assert_eq!(m.layers[0].urls.as_deref(), Some(&["https://example.com/l".to_string()][..]));
        assert_eq!(Compression::of_media_type(&m.layers[0].media_type), Some(Compression::Gzip));
        let oci = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/x.t",
              "config":{{"mediaType":"{OCI_CONFIG}","digest":"{SHA_A}","size":7}},
              "layers":[],
              "subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{SHA_B}","size":3}},
              "annotations":{{"k":"v"}},"x-custom":{{"kept":[1,2]}}}}"#
        );
        let m: Manifest = serde_json::from_str(&oci).unwrap();
        assert_eq!(m.artifact_type.as_deref(), Some("application/x.t"));
        assert_eq!(m.subject.as_ref().map(|s| s.digest.as_str()), Some(SHA_B));
        let back = serde_json::to_value(&m).unwrap();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(&oci).unwrap());
        let bad = oci.replace(SHA_A, "sha256:short");
        let err = serde_json::from_str::<Manifest>(&bad).unwrap_err().to_string();
        assert!(err.contains("invalid digest \"sha256:short\""), "{err}");
    }

    /// A BuildKit index: two platforms, each with an attestation manifest
    /// (`unknown/unknown`) next to it.
    #[test]
    fn index_with_attestations_selects_linux_amd64() {
        let sha = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let entry = |c: char, platform: &str, annotations: &str| {
            format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{platform}{annotations}}}"#,
                sha(c)
            )
        };
        let attestation = |of: char| {
            format!(
                r#","annotations":{{"vnd.docker.reference.digest":"{}","vnd.docker.reference.type":"attestation-manifest"}}"#,
                sha(of)
            )
        };
        let unknown = r#"{"architecture":"unknown","os":"unknown"}"#;
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{},{},{},{}],"x-custom":{{"kept":true}}}}"#,
            entry('a', r#"{"architecture":"arm64","os":"linux","variant":"v8"}"#, ""),
            entry('b', unknown, &attestation('a')),
            entry('c', r#"{"architecture":"amd64","os":"linux","os.features":["sse4"]}"#, ""),
            entry('d', unknown, &attestation('c')),
        );
        let index: Index = serde_json::from_str(&json).unwrap();
        assert_eq!(index.select(&Platform::linux_amd64()).unwrap().digest.as_str(), sha('c'));
        assert_eq!(index.select(&Platform::parse("linux/aarch64/v8").unwrap()).unwrap().digest.as_str(), sha('a'));
        let missing = index.select(&Platform::parse("linux/s390x").unwrap()).unwrap_err();
        assert_eq!(missing, ["linux/arm64/v8", "linux/amd64"]);
        let back = serde_json::to_value(&index).unwrap();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(&json).unwrap());
        assert_eq!(back["manifests"][0].get("annotations"), None);
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
}
