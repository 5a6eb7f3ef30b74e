//! An image as the build carries it from step to step, and storing it as a stage.

use super::digest::content_digest;
use anyhow::Context;
use slipway_storage::Digest;
use slipway_storage::image::{self, Descriptor, History, ImageConfig, Manifest};
use slipway_storage::reference::Reference;
use slipway_storage::store::{LayerMeta, StageRef, Store};

/// The PATH a step gets when the image sets none (buildah and BuildKit).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An image: config plus layer descriptors (diffIDs are in the config).
#[derive(Debug, Clone)]
pub struct ImageState {
    pub config: ImageConfig,
    pub layers: Vec<Descriptor>,
    /// The stage this state was loaded from or stored as.
    pub stage: Option<StageRef>,
    /// A repository holding every blob of this image, for layers not in the local store.
    pub source: Option<Reference>,
}

impl ImageState {
    /// `FROM scratch`: no layers, and the default `PATH` in the config, as BuildKit and
    /// buildah set it.
    pub fn scratch() -> Self {
        let mut config = ImageConfig { architecture: "amd64".into(), os: "linux".into(), ..Default::default() };
        config.config.set_env("PATH", DEFAULT_PATH);
        ImageState { config, layers: Vec::new(), stage: None, source: None }
    }

    /// Load a stored stage; layers not in the local store can come from the
    /// repository its record names.
    pub fn load(store: &Store, stage: &StageRef) -> anyhow::Result<Self> {
        let what = || format!("loading stage {}", stage.id());
        let manifest = store.manifest(&stage.record.manifest).with_context(what)?;
        let config = store.config(&manifest.config.digest).with_context(what)?;
        let source = stage.record.repo.as_deref().map(Reference::parse).transpose().with_context(what)?;
        Ok(ImageState { config, layers: manifest.layers, stage: Some(stage.clone()), source })
    }

    pub fn diff_ids(&self) -> &[Digest] {
        &self.config.rootfs.diff_ids
    }

    /// Add a layer committed by a step.
    pub fn push_layer(&mut self, meta: &LayerMeta) {
        self.config.rootfs.diff_ids.push(meta.diff_id.clone());
        self.layers.push(Descriptor {
            media_type: meta.media_type.clone(),
            digest: meta.digest.clone(),
            size: meta.size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        });
    }

    pub fn push_history(&mut self, created_by: &str, empty_layer: bool) {
        self.config.history.push(History {
            created: Some(now_rfc3339()),
            created_by: Some(created_by.to_string()),
            comment: Some("slipway".into()),
            empty_layer,
        });
    }
}

/// Labels werf puts on every stage.
pub struct StageLabels<'a> {
    pub project: &'a str,
    pub commit: &'a str,
    pub parent_stage_id: Option<String>,
}

/// Write `state` as an image into the local blob store, with werf's stage labels;
/// returns its manifest digest and the labelled config.
pub fn write_image(
    store: &Store,
    state: &ImageState,
    digest: &str,
    name: &str,
    labels: &StageLabels<'_>,
) -> anyhow::Result<(Digest, ImageConfig)> {
    let mut config = state.config.clone();
    let l = config.config.labels.get_or_insert_with(Default::default);
    l.insert("werf".into(), labels.project.into());
    l.insert("werf-version".into(), format!("slipway-{}", env!("CARGO_PKG_VERSION")));
    l.insert("werf-stage-content-digest".into(), content_digest(digest, name));
    l.insert("werf-project-repo-commit".into(), labels.commit.into());
    match &labels.parent_stage_id {
        Some(p) => l.insert("werf.io/parent-stage-id".into(), p.clone()),
        None => l.remove("werf.io/parent-stage-id"),
    };
    config.created = Some(now_rfc3339());
    let layers =
        state.layers.iter().map(|l| Descriptor { media_type: oci_layer_type(&l.media_type), ..l.clone() }).collect();
    let manifest_digest = write_manifest(store, &config, layers)?;
    Ok((manifest_digest, config))
}

/// Write `config` and an OCI manifest of it with `layers` into the local blob store;
/// returns the manifest's digest.
pub fn write_manifest(store: &Store, config: &ImageConfig, layers: Vec<Descriptor>) -> anyhow::Result<Digest> {
    let config_bytes = serde_json::to_vec(config)?;
    let config_digest = store.blobs().put_bytes(&config_bytes)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(image::OCI_MANIFEST.into()),
        config: Descriptor {
            media_type: image::OCI_CONFIG.into(),
            digest: config_digest,
            size: config_bytes.len() as u64,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        },
        layers,
        artifact_type: None,
        subject: None,
        annotations: None,
        extra: Default::default(),
    };
    Ok(store.blobs().put_bytes(&serde_json::to_vec(&manifest)?)?)
}

fn oci_layer_type(mt: &str) -> String {
    match image::Compression::of_media_type(mt) {
        Some(image::Compression::Gzip) => image::OCI_LAYER_GZIP.into(),
        Some(image::Compression::Zstd) => image::OCI_LAYER_ZSTD.into(),
        Some(image::Compression::None) => image::OCI_LAYER_TAR.into(),
        None => mt.into(),
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The current UTC time as RFC 3339 (`2026-11-23T06:30:00Z`).
pub fn now_rfc3339() -> String {
    rfc3339(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0))
}

pub fn rfc3339(secs: i64) -> String {
    let ((y, m, d), rem) = (civil_from_days(secs.div_euclid(86400)), secs.rem_euclid(86400));
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// (year, month, day) of a count of days since 1970-01-01 (Howard Hinnant's
/// civil-from-days).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn formats_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_416_645), "2026-11-23T06:50:45Z");
    }
}
