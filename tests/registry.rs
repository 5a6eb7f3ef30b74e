// Registry client against real registries (Debian's docker-registry on 127.0.0.1) and,
// in `fake`, against a scripted server.
//
// Live tests need `SLIPWAY_TEST_REGISTRY` (plain HTTP, holding base/busybox (OCI),
// base/busybox-v2s2 (Docker v2s2) and base/busybox-multiarch (OCI index: arm64 first,
// amd64 second)) and `SLIPWAY_TEST_AUTH_REGISTRY` (htpasswd; user and password from
// `SLIPWAY_TEST_AUTH_USER`/`SLIPWAY_TEST_AUTH_PASSWORD`, default slipway/slipway-pass).
// Unset, they skip saying so, unless `SLIPWAY_REQUIRE_PRIVILEGED_TESTS=1`.

#[path = "registry/fake.rs"]
mod fake;
#[path = "registry/limits.rs"]
mod limits;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use slipway_storage::Digest;
use slipway_storage::image::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, Platform};
use slipway_storage::reference::Reference;
use slipway_storage::registry::{AuthStore, Client, Credentials, ParsedManifest, RegistryConfig, RegistryError};

/// `host:port` from `var`, or `None` after saying why the test skips.
fn registry_from_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("SLIPWAY_REQUIRE_PRIVILEGED_TESTS").as_deref() == Ok("1") {
                panic!(
                    "{var} is not set but SLIPWAY_REQUIRE_PRIVILEGED_TESTS=1: start the test \
                     registries (plain HTTP on 127.0.0.1:5055 with the base images, htpasswd on \
                     127.0.0.1:5056) and run with SLIPWAY_TEST_REGISTRY=127.0.0.1:5055 \
                     SLIPWAY_TEST_AUTH_REGISTRY=127.0.0.1:5056"
                );
            }
            eprintln!("skipping: {var} is not set (host:port of a local test registry)");
            None
        }
    }
}

fn plain() -> Option<(String, Client)> {
    let host = registry_from_env("SLIPWAY_TEST_REGISTRY")?;
    let client = Client::new(RegistryConfig::default().with_insecure([host.clone()]), AuthStore::empty());
    Some((host, client))
}

fn parse(s: &str) -> Reference {
    Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// A repository name no other test run uses.
fn unique_repo(topic: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("slipway-test/{topic}-{}-{nanos}", std::process::id())
}

/// A small image: config and one uncompressed tar layer, with its manifest bytes.
struct TestImage {
    config: Vec<u8>,
    layer: Vec<u8>,
    manifest: Vec<u8>,
}

fn test_image(text: &str, media_type: &str) -> TestImage {
    let mut header = [0u8; 512];
    header[..8].copy_from_slice(b"file.txt");
    let fields: [(usize, &str); 4] =
        [(100, "0000644\0"), (108, "0000000\0"), (116, "0000000\0"), (136, "00000000000\0")];
    for (at, v) in fields {
        header[at..at + v.len()].copy_from_slice(v.as_bytes());
    }
    let size = format!("{:011o}\0", text.len());
    header[124..136].copy_from_slice(size.as_bytes());
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut layer = header.to_vec();
    layer.extend_from_slice(text.as_bytes());
    layer.resize(layer.len().div_ceil(512) * 512 + 1024, 0);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        Digest::of(&layer)
    )
    .into_bytes();
    let (config_type, layer_type) = if media_type == DOCKER_MANIFEST {
        ("application/vnd.docker.container.image.v1+json", "application/vnd.docker.image.rootfs.diff.tar")
    } else {
        ("application/vnd.oci.image.config.v1+json", "application/vnd.oci.image.layer.v1.tar")
    };
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{media_type}","config":{{"mediaType":"{config_type}","digest":"{}","size":{}}},"layers":[{{"mediaType":"{layer_type}","digest":"{}","size":{}}}]}}"#,
        Digest::of(&config),
        config.len(),
        Digest::of(&layer),
        layer.len()
    )
    .into_bytes();
    TestImage { config, layer, manifest }
}

/// Uploads an image's blobs (if missing) and manifest; returns the manifest digest.
fn push_image(client: &Client, reference: &Reference, image: &TestImage, media_type: &str) -> Digest {
    for blob in [&image.config, &image.layer] {
        let digest = Digest::of(blob);
        if !client.blob_exists(reference, &digest).unwrap() {
            client.push_blob(reference, &digest, blob.len() as u64, blob.as_slice()).unwrap();
        }
    }
    client.put_manifest(reference, media_type, &image.manifest).unwrap()
}

/// `skopeo inspect --raw` output, or `None` (with the reason) if skopeo is missing.
fn skopeo_raw(reference: &str, creds: Option<&str>) -> Option<Vec<u8>> {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw", "--tls-verify=false"]);
    if let Some(creds) = creds {
        cmd.args(["--creds", creds]);
    }
    match cmd.arg(format!("docker://{reference}")).output() {
        Ok(out) => {
            assert!(out.status.success(), "skopeo inspect {reference}: {}", String::from_utf8_lossy(&out.stderr));
            Some(out.stdout)
        }
        Err(e) if std::env::var("SLIPWAY_REQUIRE_PRIVILEGED_TESTS").as_deref() == Ok("1") => {
            panic!("skopeo is needed to check pushed images: {e}")
        }
        Err(e) => {
            eprintln!("not checking with skopeo: {e}");
            None
        }
    }
}

#[test]
fn pulls_oci_manifest_by_tag_and_by_digest() {
    let Some((host, client)) = plain() else { return };
    let by_tag = parse(&format!("{host}/base/busybox:latest"));
    let raw = client.get_manifest(&by_tag).unwrap();
    assert_eq!(raw.media_type, OCI_MANIFEST);
    assert_eq!(raw.digest, Digest::of(&raw.bytes));
    let ParsedManifest::Image(manifest) = raw.parse(&by_tag.to_string()).unwrap() else {
        panic!("base/busybox should be an image manifest")
    };
    assert!(!manifest.layers.is_empty());
    let by_digest = client.get_manifest(&by_tag.with_digest(raw.digest.as_str()).unwrap()).unwrap();
    assert_eq!(by_digest.bytes, raw.bytes);
    assert_eq!(client.manifest_digest(&by_tag).unwrap(), Some(raw.digest.clone()));
    let resolved = client.resolve_image(&by_tag, &Platform::linux_amd64()).unwrap();
    assert_eq!((resolved.manifest, resolved.index), (manifest, None));
}

#[test]
fn pulls_docker_v2s2_manifest() {
    let Some((host, client)) = plain() else { return };
    let reference = parse(&format!("{host}/base/busybox-v2s2:latest"));
    let resolved = client.resolve_image(&reference, &Platform::linux_amd64()).unwrap();
    assert_eq!(resolved.raw.media_type, DOCKER_MANIFEST);
    assert_eq!(resolved.manifest.media_type.as_deref(), Some(DOCKER_MANIFEST));
    assert_eq!(resolved.manifest.config.media_type, "application/vnd.docker.container.image.v1+json");
    assert!(resolved.manifest.layers.iter().all(|l| l.media_type.starts_with("application/vnd.docker.image.rootfs")));
}

#[test]
fn index_resolves_to_amd64_and_lists_platforms_when_missing() {
    let Some((host, client)) = plain() else { return };
    let reference = parse(&format!("{host}/base/busybox-multiarch:latest"));
    let index_raw = client.get_manifest(&reference).unwrap();
    assert_eq!(index_raw.media_type, OCI_INDEX);
    let ParsedManifest::Index(index) = index_raw.parse("multiarch").unwrap() else { panic!("not an index") };
    assert!(index.manifests.len() >= 2, "arm64 and amd64 entries");

    let amd64 = client.resolve_image(&reference, &Platform::linux_amd64()).unwrap();
    assert_eq!(amd64.raw.digest, index.manifests[1].digest, "amd64 is the second entry");
    assert_eq!(amd64.index.as_ref().map(|i| &i.digest), Some(&index_raw.digest));
    let mut config = Vec::new();
    client.fetch_config_to(&reference, &amd64.manifest.config.digest, amd64.manifest.config.size, &mut config).unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["architecture"], "amd64");

    let arm64 = client.resolve_image(&reference, &Platform::parse("linux/arm64").unwrap()).unwrap();
    assert_eq!(arm64.raw.digest, index.manifests[0].digest);

    let err = client.resolve_image(&reference, &Platform::parse("linux/s390x").unwrap()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::NoMatchingPlatform { .. }), "{err:?}");
    assert!(msg.starts_with(&format!("image {reference} has no linux/s390x variant; it offers: linux/arm64")), "{msg}");
    assert!(msg.contains("linux/amd64"), "{msg}");
}

#[test]
fn docker_manifest_list_resolves_to_amd64() {
    let Some((host, client)) = plain() else { return };
    let reference = parse(&format!("{host}/{}:list", unique_repo("list")));
    let amd = test_image("amd64\n", DOCKER_MANIFEST);
    let arm = test_image("arm64\n", DOCKER_MANIFEST);
    let amd_digest = push_image(&client, &reference.with_tag("amd").unwrap(), &amd, DOCKER_MANIFEST);
    let arm_digest = push_image(&client, &reference.with_tag("arm").unwrap(), &arm, DOCKER_MANIFEST);
    let list = format!(
        r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[
          {{"mediaType":"{DOCKER_MANIFEST}","digest":"{arm_digest}","size":{},"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},
          {{"mediaType":"{DOCKER_MANIFEST}","digest":"{amd_digest}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        arm.manifest.len(),
        amd.manifest.len()
    );
    client.put_manifest(&reference, DOCKER_MANIFEST_LIST, list.as_bytes()).unwrap();
    let resolved = client.resolve_image(&reference, &Platform::linux_amd64()).unwrap();
    assert_eq!(resolved.raw.digest, amd_digest);
    assert_eq!(resolved.raw.bytes, amd.manifest);
    assert_eq!(resolved.index.unwrap().media_type, DOCKER_MANIFEST_LIST);
}

#[test]
fn streams_blobs_and_verifies_digests() {
    let Some((host, client)) = plain() else { return };
    let reference = parse(&format!("{host}/base/busybox:latest"));
    let image = client.resolve_image(&reference, &Platform::linux_amd64()).unwrap();
    for layer in &image.manifest.layers {
        let mut out = tempfile::tempfile().unwrap();
        let n = client.fetch_blob_to(&reference, &layer.digest, layer.size, &mut out).unwrap();
        assert_eq!(n, layer.size);
        let mut reader = client.get_blob(&reference, &layer.digest, layer.size).unwrap();
        assert_eq!(reader.content_length(), Some(layer.size));
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).unwrap();
        assert_eq!(Digest::of(&bytes), layer.digest);
        assert_eq!(client.blob_size(&reference, &layer.digest).unwrap(), Some(layer.size));
    }
    let absent = Digest::of(b"no such blob in any registry");
    let err = client.fetch_blob_to(&reference, &absent, 1, &mut Vec::new()).unwrap_err();
    assert_eq!(err.to_string(), format!("blob {absent} not found in {host}/base/busybox"));
    assert!(!client.blob_exists(&reference, &absent).unwrap());
}

#[test]
fn one_client_serves_concurrent_transfers() {
    let Some((host, client)) = plain() else { return };
    let reference = parse(&format!("{host}/{}:c", unique_repo("concurrent")));
    let blobs: Vec<Vec<u8>> =
        (0..6).map(|i| format!("blob {i} {}", reference.repository).repeat(1000).into_bytes()).collect();
    std::thread::scope(|s| {
        for blob in &blobs {
            let (client, reference) = (&client, &reference);
            s.spawn(move || {
                let digest = Digest::of(blob);
                client.push_blob(reference, &digest, blob.len() as u64, blob.as_slice()).unwrap();
                let mut back = Vec::new();
                client.fetch_blob_to(reference, &digest, blob.len() as u64, &mut back).unwrap();
                assert_eq!(&back, blob);
            });
        }
    });
}

#[test]
fn pushes_blobs_and_manifest_that_skopeo_reads() {
    let Some((host, client)) = plain() else { return };
    let reference = parse(&format!("{host}/{}:v1", unique_repo("push")));
    let image = test_image("pushed by slipway\n", OCI_MANIFEST);
    let config_digest = Digest::of(&image.config);
    let layer_digest = Digest::of(&image.layer);
    assert!(!client.blob_exists(&reference, &layer_digest).unwrap());
    client.push_blob(&reference, &config_digest, image.config.len() as u64, image.config.as_slice()).unwrap();
    // The layer goes up from a file that is re-opened on each attempt.
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&image.layer).unwrap();
    client
        .push_blob_with(&reference, &layer_digest, image.layer.len() as u64, || std::fs::File::open(file.path()))
        .unwrap();
    assert_eq!(client.blob_size(&reference, &layer_digest).unwrap(), Some(image.layer.len() as u64));
    let digest = client.put_manifest(&reference, OCI_MANIFEST, &image.manifest).unwrap();
    assert_eq!(digest, Digest::of(&image.manifest));
    assert_eq!(client.get_manifest(&reference).unwrap().bytes, image.manifest);
    if let Some(raw) = skopeo_raw(&reference.to_string(), None) {
        assert_eq!(raw, image.manifest, "skopeo sees the exact manifest we pushed");
    }
    // Content that does not match its digest is refused, and nothing is stored.
    let wrong = Digest::of(b"something else");
    let err = client.push_blob(&reference, &wrong, image.layer.len() as u64, image.layer.as_slice()).unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err:?}");
    assert!(!client.blob_exists(&reference, &wrong).unwrap());
}

#[test]
fn mounts_blob_from_another_repository() {
    let Some((host, client)) = plain() else { return };
    let source = parse(&format!("{host}/{}:x", unique_repo("mount-src")));
    let target = parse(&format!("{host}/{}:x", unique_repo("mount-dst")));
    let blob = format!("mount me {}", target.repository).into_bytes();
    let digest = Digest::of(&blob);
    client.push_blob(&source, &digest, blob.len() as u64, blob.as_slice()).unwrap();
    assert!(!client.blob_exists(&target, &digest).unwrap());
    assert!(client.mount_blob(&target, &digest, &source.repository).unwrap());
    assert_eq!(client.blob_size(&target, &digest).unwrap(), Some(blob.len() as u64));
    let absent = Digest::of(b"never pushed anywhere");
    assert!(!client.mount_blob(&target, &absent, &source.repository).unwrap(), "registry declines: upload instead");
}

#[test]
fn lists_tags_across_pages() {
    let Some((host, client)) = plain() else { return };
    let repo = parse(&format!("{host}/{}:t", unique_repo("tags")));
    assert_eq!(client.list_tags(&repo).unwrap(), Vec::<String>::new(), "unknown repository: no tags");
    let image = test_image("tags\n", OCI_MANIFEST);
    let mut want: Vec<String> = (0..7).map(|i| format!("tag-{i}")).collect();
    for tag in &want {
        push_image(&client, &repo.with_tag(tag).unwrap(), &image, OCI_MANIFEST);
    }
    want.sort();
    let mut paged = client.list_tags_paged(&repo, 2).unwrap();
    paged.sort();
    assert_eq!(paged, want);
    let mut all = client.list_tags(&repo).unwrap();
    all.sort();
    assert_eq!(all, want);
}

#[test]
fn deletes_manifests_and_reports_missing_ones() {
    let Some((host, client)) = plain() else { return };
    let reference = parse(&format!("{host}/{}:gone", unique_repo("delete")));
    let image = test_image("delete me\n", OCI_MANIFEST);
    let digest = push_image(&client, &reference, &image, OCI_MANIFEST);
    assert_eq!(client.manifest_digest(&reference).unwrap(), Some(digest));
    client.delete_manifest(&reference).unwrap();
    assert_eq!(client.manifest_digest(&reference).unwrap(), None);
    let err = client.get_manifest(&reference).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("manifest {reference} not found: check the repository name and the tag or digest")
    );
}

fn auth_registry() -> Option<(String, String, String)> {
    let host = registry_from_env("SLIPWAY_TEST_AUTH_REGISTRY")?;
    let user = std::env::var("SLIPWAY_TEST_AUTH_USER").unwrap_or_else(|_| "slipway".into());
    let pass = std::env::var("SLIPWAY_TEST_AUTH_PASSWORD").unwrap_or_else(|_| "slipway-pass".into());
    Some((host, user, pass))
}

#[test]
fn basic_auth_registry_with_credentials_from_docker_config() {
    let Some((host, user, pass)) = auth_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    let basic = Credentials::new(&user, &pass).basic_header();
    let auth = basic.strip_prefix("Basic ").unwrap();
    std::fs::write(&config, format!(r#"{{"auths":{{"http://{host}":{{"auth":"{auth}"}}}}}}"#)).unwrap();
    let store = AuthStore::load_from(&[dir.path().join("absent.json"), config]).unwrap();
    let client = Client::new(RegistryConfig::default().with_insecure([host.clone()]), store);
    let reference = parse(&format!("{host}/{}:v1", unique_repo("auth")));
    let image = test_image("behind basic auth\n", OCI_MANIFEST);
    let digest = push_image(&client, &reference, &image, OCI_MANIFEST);
    assert_eq!(client.get_manifest(&reference).unwrap().digest, digest);
    assert_eq!(client.list_tags(&reference).unwrap(), ["v1"]);
    if let Some(raw) = skopeo_raw(&reference.to_string(), Some(&format!("{user}:{pass}"))) {
        assert_eq!(raw, image.manifest);
    }
}

#[test]
fn basic_auth_registry_without_or_with_wrong_credentials_fails_clearly() {
    let Some((host, user, _)) = auth_registry() else { return };
    let config = RegistryConfig::default().with_insecure([host.clone()]);
    let reference = parse(&format!("{host}/base/busybox:latest"));
    let err = Client::new(config.clone(), AuthStore::empty()).get_manifest(&reference).unwrap_err();
    assert!(matches!(err, RegistryError::CredentialsRequired { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "registry {host} requires credentials for base/busybox: log in with `podman login {host}`"
        )),
        "{err}"
    );
    let wrong = AuthStore::empty().with_credentials(&host, Credentials::new(&user, "wrong"));
    let err = Client::new(config, wrong).get_manifest(&reference).unwrap_err();
    assert!(matches!(err, RegistryError::CredentialsRejected { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("rejected the credentials for user \"{user}\"")), "{err}");
}
