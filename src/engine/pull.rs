//! Getting images and layers into the local store: base images by reference, and the
//! layers of any image state that a step needs mounted. Layers already stored are not
//! downloaded again; a downloaded blob is verified, kept (for pushing later) and
//! unpacked inside the user namespace (so owners are real) with its diffID checked.

use super::log::Log;
use super::settings::Backend;
use super::state::ImageState;
use anyhow::{Context, bail};
use slipway_storage::Digest;
use slipway_storage::image::{Compression, Descriptor, Manifest, Platform};
use slipway_storage::reference::Reference;
use slipway_storage::registry::Client;
use slipway_storage::store::{LayerMeta, Store};
use slipway_storage::unpack::{Limits, unpack_limited};

pub struct Puller<'a> {
    pub client: &'a Client,
    pub store: &'a Store,
    pub log: &'a Log,
    /// The layer size limit and how owners are set when unpacking.
    pub backend: &'a Backend,
}

impl Puller<'_> {
    /// Pull `name` (linux/amd64) with all its layers; returns how many were downloaded.
    pub fn pull_counted(&self, name: &str) -> anyhow::Result<(ImageState, usize)> {
        let started = std::time::Instant::now();
        let (state, earlier) = self.resolve_image(name)?;
        let fetched = self.ensure_layers(&state)?;
        if !earlier {
            let reference = state.source.as_ref().expect("a resolved image has its reference");
            self.log.info(&format!(
                "pulled {reference} ({} layers, {fetched} downloaded) in {:.2}s",
                state.layers.len(),
                started.elapsed().as_secs_f64()
            ));
        }
        Ok((state, fetched))
    }

    /// `name` (linux/amd64) as an image: its manifest and config in the local store,
    /// its layers fetched from it when [`Puller::ensure_layers`] asks. `true` with it:
    /// the registry could not be reached and the copy pulled earlier is used.
    pub fn resolve_image(&self, name: &str) -> anyhow::Result<(ImageState, bool)> {
        let reference = Reference::parse(name).with_context(|| format!("parsing image reference {name:?}"))?;
        let resolved = match self.client.resolve_image(&reference, &Platform::linux_amd64()) {
            Ok(r) => r,
            Err(e) if e.is_transient() => {
                // Offline or registry down: an earlier pull of the same reference will do.
                if let Some(d) = self.store.image_ref(&reference.to_string())? {
                    self.log.warn(&format!(
                        "cannot reach the registry for {reference} ({e}); using the copy pulled earlier"
                    ));
                    return Ok((self.local_image(&d, None)?, true));
                }
                return Err(e).with_context(|| format!("pulling {reference}"));
            }
            Err(e) => return Err(e).with_context(|| format!("pulling {reference}")),
        };
        let manifest_digest = resolved.raw.digest.clone();
        if !self.store.blobs().exists(&manifest_digest) {
            self.store.blobs().put_stream(&mut &resolved.raw.bytes[..], Some(&manifest_digest))?;
        }
        let state = self.local_image(&manifest_digest, Some(&reference))?;
        self.store.set_image_ref(&reference.to_string(), &manifest_digest)?;
        Ok((state, false))
    }

    /// The image whose manifest is in the local blob store; its config is fetched from
    /// `source` if missing.
    pub fn local_image(&self, manifest_digest: &Digest, source: Option<&Reference>) -> anyhow::Result<ImageState> {
        let manifest: Manifest = self.store.manifest(manifest_digest)?;
        let config_digest = &manifest.config.digest;
        if !self.store.blobs().exists(config_digest) {
            let src = source.with_context(|| format!("config {config_digest} is not in the local store"))?;
            let mut w = self.store.blobs().writer()?;
            self.client
                .fetch_config_to(src, config_digest, manifest.config.size, &mut w)
                .with_context(|| format!("pulling config of {src}"))?;
            w.commit(Some(config_digest))?;
        }
        let config = self.store.config(config_digest)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            bail!(
                "image {manifest_digest} is inconsistent: {} layers in the manifest, {} diffIDs in the config",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            );
        }
        Ok(ImageState { config, layers: manifest.layers, stage: None, source: source.cloned() })
    }

    /// Make every layer of `state` available unpacked; returns how many were downloaded.
    pub fn ensure_layers(&self, state: &ImageState) -> anyhow::Result<usize> {
        let mut fetched = 0;
        for (layer, diff_id) in state.layers.iter().zip(state.diff_ids()) {
            if self.store.layer_meta(diff_id)?.is_some() || self.store.layer_for_blob(&layer.digest)?.is_some() {
                continue;
            }
            if !self.store.blobs().exists(&layer.digest) {
                let src = state.source.as_ref().with_context(|| {
                    format!(
                        "layer {} is not in the local store {} and no repository is known to hold it",
                        layer.digest,
                        self.store.root().display()
                    )
                })?;
                let mut w = self.store.blobs().writer()?;
                self.client.fetch_blob_to(src, &layer.digest, layer.size, &mut w).with_context(|| {
                    format!("pulling layer {} from {}/{}", layer.digest, src.registry, src.repository)
                })?;
                w.commit(Some(&layer.digest))?;
                fetched += 1;
            }
            self.unpack_layer(layer, diff_id)?;
        }
        Ok(fetched)
    }

    fn unpack_layer(&self, layer: &Descriptor, diff_id: &Digest) -> anyhow::Result<()> {
        let compression = Compression::of_media_type(&layer.media_type)
            .with_context(|| format!("layer {} has unsupported media type {}", layer.digest, layer.media_type))?;
        let tree = self.store.scratch_dir("pull")?.join("diff");
        std::fs::create_dir(&tree)?;
        let blob = self.store.blobs().open(&layer.digest)?;
        let what = layer.digest.to_string();
        let unpacked = unpack_limited(
            std::io::BufReader::with_capacity(256 * 1024, blob),
            compression,
            &tree,
            &what,
            self.limits(),
        )?;
        let got = unpacked.diff_id.expect("unpack sets the diffID");
        if got != *diff_id {
            bail!("layer {what} does not match the image config: diffID {got}, config says {diff_id}");
        }
        if unpacked.chown_failures > 0 {
            self.log.warn(&format!(
                "{} entries of layer {what} are root's in this single-id user namespace: their owners could not be set or recorded (a directory with more symlinks and fifos owned by others than its xattr holds?); the layer's blob keeps their owners, a step that copies them up does not",
                unpacked.chown_failures
            ));
        }
        let meta = LayerMeta {
            diff_id: got,
            digest: layer.digest.clone(),
            media_type: layer.media_type.clone(),
            size: layer.size,
            uncompressed_size: unpacked.size,
            skipped_devices: unpacked.skipped_devices,
        };
        self.store.add_layer(&tree, &meta)?;
        Ok(())
    }

    /// Unpack limits: `SLIPWAY_MAX_LAYER_SIZE` (default 64 GiB) and the owners this user
    /// namespace can set.
    fn limits(&self) -> Limits {
        Limits {
            max_size: self.backend.max_layer_size,
            ownership: self.backend.id_mapping.ownership(),
            ..Limits::default()
        }
    }
}
