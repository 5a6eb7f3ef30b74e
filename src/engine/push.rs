//! Getting images out of the local store: pushing a stage or an exported image to a
//! registry, blob by blob (several at a time), the manifest last.

use crate::engine::log::Log;
use anyhow::Context;
use slipway_storage::Digest;
use slipway_storage::image::Manifest;
use slipway_storage::reference::Reference;
use slipway_storage::registry::Client;
use slipway_storage::store::Store;
use std::sync::Mutex;

/// Push the image whose manifest is `manifest_digest` (in the local blob store) to
/// `dest`: blobs first, the manifest last, so a tag never names a manifest with a
/// missing blob.
pub fn push_image(
    client: &Client,
    store: &Store,
    manifest_digest: &Digest,
    source: Option<&Reference>,
    dest: &Reference,
    log: &Log,
) -> anyhow::Result<()> {
    push_blobs(client, store, manifest_digest, source, dest)?;
    put_manifest(client, store, manifest_digest, dest, log)
}

/// Push the manifest `manifest_digest` (its blobs must be there already) as `dest`.
pub fn put_manifest(
    client: &Client,
    store: &Store,
    manifest_digest: &Digest,
    dest: &Reference,
    log: &Log,
) -> anyhow::Result<()> {
    let bytes = store.blobs().read(manifest_digest)?;
    client
        .put_manifest(dest, slipway_storage::image::OCI_MANIFEST, &bytes)
        .with_context(|| format!("pushing manifest {dest}"))?;
    log.info(&format!("pushed {dest}"));
    Ok(())
}

/// Push the blobs of the image `manifest_digest` into `dest`'s repository, several at a
/// time: skipped if there, uploaded from the local store, or mounted or streamed from
/// `source` when not local.
pub fn push_blobs(
    client: &Client,
    store: &Store,
    manifest_digest: &Digest,
    source: Option<&Reference>,
    dest: &Reference,
) -> anyhow::Result<()> {
    let manifest: Manifest = serde_json::from_slice(&store.blobs().read(manifest_digest)?)?;
    let blobs: Vec<(Digest, u64)> =
        std::iter::once(&manifest.config).chain(&manifest.layers).map(|d| (d.digest.clone(), d.size)).collect();
    let queue = Mutex::new(blobs);
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let Some((d, size)) = queue.lock().expect("queue lock").pop() else { break };
                    if failure.lock().expect("failure lock").is_some() {
                        break;
                    }
                    if let Err(e) = push_blob(client, store, &d, size, source, dest) {
                        *failure.lock().expect("failure lock") = Some(e);
                        break;
                    }
                }
            });
        }
    });
    match failure.into_inner().expect("failure lock") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn push_blob(
    client: &Client,
    store: &Store,
    d: &Digest,
    size: u64,
    source: Option<&Reference>,
    dest: &Reference,
) -> anyhow::Result<()> {
    let what = || format!("pushing blob {d} to {}/{}", dest.registry, dest.repository);
    if client.blob_exists(dest, d).with_context(what)? {
        return Ok(());
    }
    if store.blobs().exists(d) {
        let path = store.blobs().path(d);
        return client
            .push_blob_with(dest, d, size, || std::fs::File::open(&path).map(std::io::BufReader::new))
            .with_context(what);
    }
    let src = source.with_context(|| format!("blob {d} is neither in the local store nor in a known repository"))?;
    if src.registry == dest.registry && client.mount_blob(dest, d, &src.repository).with_context(what)? {
        return Ok(());
    }
    // Registry to registry, streamed: never through the local disk, never more than the
    // descriptor's size.
    client
        .copy_blob(src, dest, d, size)
        .with_context(|| format!("copying blob {d} from {}/{}", src.registry, src.repository))
        .with_context(what)
}

/// Tag the manifest `source` also as `dest` (same repository or another of the same
/// registry whose blobs are there): werf's custom tags.
pub fn add_tag(client: &Client, source: &Reference, dest: &Reference) -> anyhow::Result<()> {
    let raw = client.get_manifest(source).with_context(|| format!("reading manifest {source}"))?;
    client.put_manifest(dest, &raw.media_type, &raw.bytes).with_context(|| format!("pushing manifest {dest}"))?;
    Ok(())
}
