//! Pulling base images into the local store: manifest and config, then each layer that
//! is not already stored, downloaded into the blob store (verified) and unpacked inside
//! the user namespace (so owners are real) with its diffID checked against the config.

use super::log::Log;
use super::state::ImageState;
use anyhow::{Context, bail};
use slipway_storage::Digest;
use slipway_storage::image::{Compression, ImageConfig, Manifest};
use slipway_storage::reference::Reference;
use slipway_storage::registry::{Client, Platform};
use slipway_storage::store::{LayerMeta, Store};
use slipway_storage::unpack::unpack;

pub struct Puller<'a> {
    pub client: &'a Client,
    pub store: &'a Store,
    pub log: &'a Log,
}

impl Puller<'_> {
    /// Pull `name` (linux/amd64) and return it as an image state.
    pub fn pull(&self, name: &str) -> anyhow::Result<ImageState> {
        let reference = Reference::parse(name).with_context(|| format!("parsing image reference {name:?}"))?;
        let started = std::time::Instant::now();
        let resolved = match self.client.resolve_image(&reference, &Platform::linux_amd64()) {
            Ok(r) => r,
            Err(e) => {
                // Offline or registry down: an earlier pull of the same reference will do.
                if let Some(d) = self.store.image_ref(&reference.to_string())? {
                    self.log.warn(&format!(
                        "cannot reach the registry for {reference} ({e}); using the copy pulled earlier"
                    ));
                    return self.load_local(&d);
                }
                return Err(e).with_context(|| format!("pulling {reference}"));
            }
        };
        let manifest_digest = Digest::parse(&resolved.raw.digest)?;
        if !self.store.blobs().exists(&manifest_digest) {
            self.store
                .blobs()
                .put_stream(&mut &resolved.raw.bytes[..], Some(&manifest_digest))?;
        }
        let manifest: Manifest =
            serde_json::from_slice(&resolved.raw.bytes).with_context(|| format!("decoding manifest of {reference}"))?;
        let config_digest = manifest.config.digest.clone();
        if !self.store.blobs().exists(&config_digest) {
            let mut w = self.store.blobs().writer()?;
            self.client
                .fetch_blob_to(&reference, config_digest.as_str(), &mut w)
                .with_context(|| format!("pulling config of {reference}"))?;
            w.commit(Some(&config_digest))?;
        }
        let config = self.store.config(&config_digest)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            bail!(
                "image {reference} is inconsistent: {} layers in the manifest, {} diffIDs in the config",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            );
        }
        let mut fetched = 0;
        for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            if self.store.layer_for_blob(&layer.digest)?.is_some() || self.store.layer_meta(diff_id)?.is_some() {
                continue;
            }
            let compression = Compression::of_media_type(&layer.media_type).with_context(|| {
                format!(
                    "layer {} of {reference} has unsupported media type {}",
                    layer.digest, layer.media_type
                )
            })?;
            if !self.store.blobs().exists(&layer.digest) {
                let mut w = self.store.blobs().writer()?;
                self.client
                    .fetch_blob_to(&reference, layer.digest.as_str(), &mut w)
                    .with_context(|| format!("pulling layer {} of {reference}", layer.digest))?;
                w.commit(Some(&layer.digest))?;
                fetched += 1;
            }
            let tree = self.store.scratch_dir("pull")?.join("diff");
            std::fs::create_dir(&tree)?;
            let blob = self.store.blobs().open(&layer.digest)?;
            let what = format!("{} of {reference}", layer.digest);
            let unpacked = unpack(
                std::io::BufReader::with_capacity(256 * 1024, blob),
                compression,
                &tree,
                &what,
            )?;
            let got = unpacked.diff_id.expect("unpack sets the diffID");
            if got != *diff_id {
                bail!("layer {what} does not match the image config: diffID {got}, config says {diff_id}");
            }
            if unpacked.chown_failures > 0 {
                self.log.warn(&format!(
                    "{} files of layer {what} could not be given their owners (single-id user namespace)",
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
        }
        self.store.set_image_ref(&reference.to_string(), &manifest_digest)?;
        self.log.info(&format!(
            "pulled {reference} ({} layers, {fetched} downloaded) in {:.2}s",
            manifest.layers.len(),
            started.elapsed().as_secs_f64()
        ));
        Ok(ImageState {
            config,
            layers: manifest.layers,
            stage: None,
        })
    }

    fn load_local(&self, manifest_digest: &Digest) -> anyhow::Result<ImageState> {
        let manifest = self.store.manifest(manifest_digest)?;
        let config: ImageConfig = self.store.config(&manifest.config.digest)?;
        let state = ImageState {
            config,
            layers: manifest.layers,
            stage: None,
        };
        state.ensure_local_layers(self.store)?;
        Ok(state)
    }
}
