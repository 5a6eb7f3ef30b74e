//! Registries as stage storage: the primary `--repo`, read-only `--secondary-repo`s,
//! read-write `--cache-repo`s and the `--final-repo`.
//!
//! Stages are tagged `REPO:DIGEST-TIMESTAMP_MS` (werf's naming). Lookup lists the
//! repository's tags once per run (re-listed, bypassing the cache, before storing),
//! keeps those of the digest, skips `-rejected` ones and picks the oldest.

use crate::engine::log::Log;
use anyhow::{Context, bail};
use slipway_storage::Digest;
use slipway_storage::image::Manifest;
use slipway_storage::reference::Reference;
use slipway_storage::registry::Client;
use slipway_storage::store::Store;
use std::cell::RefCell;
use std::sync::Mutex;

/// What a repository is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Secondary,
    Cache,
    Final,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
            Role::Cache => "cache",
            Role::Final => "final",
        }
    }
}

/// A stage tag: `DIGEST-TIMESTAMP_MS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageTag {
    pub digest: String,
    pub timestamp_ms: u64,
}

impl StageTag {
    /// werf's shape: 56 hex digest, `-`, 13-digit millisecond timestamp.
    pub fn parse(tag: &str) -> Option<StageTag> {
        let (digest, ts) = tag.split_once('-')?;
        if digest.len() != 56
            || !digest.bytes().all(|b| b.is_ascii_hexdigit())
            || ts.is_empty()
            || !ts.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(StageTag { digest: digest.into(), timestamp_ms: ts.parse().ok()? })
    }

    pub fn tag(&self) -> String {
        format!("{}-{}", self.digest, self.timestamp_ms)
    }
}

pub struct StageRepo {
    pub role: Role,
    /// `registry/repository` (no tag).
    pub name: String,
    base: Reference,
    tags: RefCell<Option<Vec<String>>>,
}

impl StageRepo {
    pub fn parse(name: &str, role: Role) -> anyhow::Result<StageRepo> {
        let base = Reference::parse(name).with_context(|| format!("--{}-repo {name:?}", role.as_str()))?;
        if name.contains('@') || name.rsplit('/').next().is_some_and(|last| last.contains(':')) {
            bail!("{} repo {name:?} must be a repository without a tag or digest", role.as_str());
        }
        Ok(StageRepo { role, name: format!("{}/{}", base.registry, base.repository), base, tags: RefCell::new(None) })
    }

    pub fn reference(&self) -> &Reference {
        &self.base
    }

    pub fn tagged(&self, tag: &str) -> anyhow::Result<Reference> {
        Ok(self.base.with_tag(tag)?)
    }

    /// The repository's tags; `fresh` bypasses the per-run cache.
    pub fn tags(&self, client: &Client, fresh: bool) -> anyhow::Result<Vec<String>> {
        if !fresh && let Some(t) = self.tags.borrow().as_ref() {
            return Ok(t.clone());
        }
        let tags = client.list_tags(&self.base).with_context(|| format!("listing tags of {}", self.name))?;
        *self.tags.borrow_mut() = Some(tags.clone());
        Ok(tags)
    }

    /// Remember a tag we pushed, so the cached list stays true.
    pub fn note_tag(&self, tag: &str) {
        if let Some(t) = self.tags.borrow_mut().as_mut() {
            t.push(tag.to_string());
        }
    }

    /// The oldest stage with `digest`.
    pub fn find(&self, client: &Client, digest: &str, fresh: bool) -> anyhow::Result<Option<StageTag>> {
        Ok(oldest(&self.tags(client, fresh)?, digest))
    }
}

/// The oldest `DIGEST-TS` tag for `digest` (`-rejected` tags do not parse as stages).
pub fn oldest(tags: &[String], digest: &str) -> Option<StageTag> {
    tags.iter().filter_map(|t| StageTag::parse(t)).filter(|s| s.digest == digest).min_by_key(|s| s.timestamp_ms)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_oldest_valid_tag() {
        let d = "a".repeat(56);
        let tags: Vec<String> = vec![
            format!("{d}-1700000000300"),
            format!("{d}-1700000000100-rejected"),
            format!("{d}-1700000000200"),
            format!("{}-1700000000000", "b".repeat(56)),
            "latest".into(),
        ];
        assert_eq!(oldest(&tags, &d), Some(StageTag { digest: d.clone(), timestamp_ms: 1_700_000_000_200 }));
        assert_eq!(oldest(&tags, &"c".repeat(56)), None);
    }
}
