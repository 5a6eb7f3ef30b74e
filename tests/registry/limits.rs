// Hostile or broken registries, scripted: bodies longer or shorter than their
// descriptor, bodies that trickle or stall, uploads nobody reads, tag lists that need
// pagination or never end.

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use slipway_storage::Digest;
use slipway_storage::blob::BlobStore;
use slipway_storage::image::{OCI_MANIFEST, Platform};
use slipway_storage::registry::{
    AuthStore, Client, MAX_CONFIG_SIZE, MAX_TAGS, ProgressDeadline, RegistryError, RetryPolicy,
};

use super::fake::{FakeServer, read_head, respond};

const MIB: u64 = 1024 * 1024;

/// A short progress window so a stall is found in about a second.
fn impatient(server: &FakeServer, attempts: u32) -> Client {
    server
        .client(AuthStore::empty())
        .with_retry_policy(RetryPolicy { attempts, initial: Duration::from_millis(5), max: Duration::from_millis(10) })
        .with_progress_deadline(ProgressDeadline { window: Duration::from_secs(1), min_bytes: 1024 })
}

/// Response head of a 200 with no Content-Length: the body runs until the server closes.
fn open_ended_head() -> &'static [u8] {
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/octet-stream\r\n\r\n"
}

/// Writes zeros until the client goes away; counts what it sent.
fn endless_zeros(stream: &mut TcpStream, sent: &AtomicU64) {
    let chunk = vec![0u8; 64 * 1024];
    while stream.write_all(&chunk).is_ok() {
        sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        if sent.load(Ordering::Relaxed) > 1024 * MIB {
            break; // a safety net for the test machine, far past any bound
        }
    }
}

/// A writer that counts what reaches it, in front of a blob store writer.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p).map(|mut d| d.next().is_none()).unwrap_or(true)
}

#[test]
fn endless_layer_body_stops_at_the_descriptor_size() {
    let sent = Arc::new(AtomicU64::new(0));
    let sent2 = Arc::clone(&sent);
    let server = FakeServer::start_streaming(4, move |_, _, stream| {
        if stream.write_all(open_ended_head()).is_ok() {
            endless_zeros(stream, &sent2);
        }
    });
    let client = impatient(&server, 4);
    let t = tempfile::tempdir().unwrap();
    let blobs = BlobStore::new(t.path().join("blobs"), t.path().join("tmp"));
    let digest = Digest::of(b"a one-MiB layer, says the manifest");
    let mut out = Counting { inner: blobs.writer().unwrap(), count: 0 };
    let err = client.fetch_blob_to(&server.reference("test/img:1"), &digest, MIB, &mut out).unwrap_err();
    assert!(out.count <= MIB, "wrote {} bytes for a {MIB}-byte blob", out.count);
    drop(out);
    match &err {
        RegistryError::BlobTooLarge { digest: d, expected, seen, .. } => {
            assert_eq!((d, *expected), (&digest, MIB));
            assert!(*seen > MIB, "{seen}");
        }
        other => panic!("want BlobTooLarge, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(digest.as_str()) && text.contains(&format!("expected {MIB} bytes")), "{text}");
    assert_eq!(server.requests().len(), 1, "an oversized body is not retried");
    assert!(empty_dir(&t.path().join("tmp")), "the blob store's temp dir holds nothing afterwards");
    assert!(sent.load(Ordering::Relaxed) < 64 * MIB, "the client stopped reading early");
}

#[test]
fn layer_announced_larger_than_its_descriptor_is_refused_before_reading() {
    let server = FakeServer::start(1, |_, _| {
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1000000000000\r\n\r\n".to_vec()
    });
    let digest = Digest::of(b"x");
    let err =
        impatient(&server, 1).fetch_blob_to(&server.reference("a/b:1"), &digest, 10, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, RegistryError::BlobTooLarge { expected: 10, seen: 1_000_000_000_000, .. }), "{err:?}");
}

#[test]
fn short_layer_body_is_a_size_mismatch_after_resumes() {
    const BODY: &[u8] = b"only part of it";
    let server = FakeServer::start(10, |n, req| {
        if n == 0 {
            respond("200 OK", &[], BODY)
        } else {
            // The resume asks for the rest; there is none.
            let range = req.header("range").unwrap_or("").to_owned();
            assert_eq!(range, format!("bytes={}-", BODY.len()));
            respond("206 Partial Content", &[("Content-Range", &format!("bytes {}-{}/*", BODY.len(), BODY.len()))], b"")
        }
    });
    let digest = Digest::of(b"the whole blob, which is longer");
    let mut out = Vec::new();
    let err = impatient(&server, 3).fetch_blob_to(&server.reference("a/b:1"), &digest, 31, &mut out).unwrap_err();
    assert!(
        matches!(&err, RegistryError::SizeMismatch { expected: 31, found, .. } if *found == BODY.len() as u64),
        "{err:?}"
    );
    assert_eq!(out, BODY, "every byte exactly once");
    assert_eq!(server.requests().len(), 3, "the first request and two resumes");
}

/// Serves `total` bytes announced in Content-Length, one byte every `every`.
fn trickle(total: u64, every: Duration) -> impl Fn(usize, &super::fake::Seen, &mut TcpStream) + Send + Sync {
    move |_, _, stream| {
        let head = format!("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {total}\r\n\r\n");
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        for _ in 0..total {
            std::thread::sleep(every);
            if stream.write_all(b"x").and_then(|_| stream.flush()).is_err() {
                return;
            }
        }
    }
}

#[test]
fn trickling_layer_body_fails_the_progress_deadline() {
    // 10 bytes a second: the connection is alive, the transfer is not.
    let server = FakeServer::start_streaming(2, trickle(MIB, Duration::from_millis(100)));
    let client = impatient(&server, 2);
    let t = tempfile::tempdir().unwrap();
    let blobs = BlobStore::new(t.path().join("blobs"), t.path().join("tmp"));
    let digest = Digest::of(b"slow layer");
    let started = Instant::now();
    let mut w = blobs.writer().unwrap();
    let err = client.fetch_blob_to(&server.reference("test/img:1"), &digest, MIB, &mut w).unwrap_err();
    drop(w);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let text = err.to_string();
    assert!(matches!(err, RegistryError::Stalled { window_secs: 1, min_bytes: 1024, .. }), "{err:?}");
    assert!(
        text.contains(&format!("downloading blob {digest} stalled at http://{}/v2/test/img/blobs/", server.addr)),
        "{text}"
    );
    assert!(text.contains("raise SLIPWAY_REGISTRY_PROGRESS_TIMEOUT (seconds, now 1)"), "{text}");
    assert_eq!(server.requests().len(), 2, "a stall is resumed once, then given up");
    assert!(empty_dir(&t.path().join("tmp")), "the blob store's temp dir holds nothing afterwards");
}

#[test]
fn silent_layer_body_fails_the_progress_deadline() {
    // One byte every 5 s: each read waits longer than the whole window.
    let server = FakeServer::start_streaming(1, trickle(MIB, Duration::from_secs(5)));
    let started = Instant::now();
    let digest = Digest::of(b"stalled layer");
    let err =
        impatient(&server, 1).fetch_blob_to(&server.reference("a/b:1"), &digest, MIB, &mut Vec::new()).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    assert!(matches!(err, RegistryError::Stalled { seen: 0, received: 0, .. }), "{err:?}");
}

#[test]
fn trickling_manifest_fails_the_progress_deadline() {
    let server = FakeServer::start_streaming(1, trickle(4000, Duration::from_millis(100)));
    let started = Instant::now();
    let err = impatient(&server, 1).get_manifest(&server.reference("a/b:1")).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(matches!(err, RegistryError::Stalled { .. }), "{err:?}");
    assert!(err.to_string().contains("pulling manifest"), "{err}");
}

#[test]
fn endless_manifest_is_cut_at_the_manifest_limit() {
    let server = FakeServer::start_streaming(1, |_, _, stream| {
        if stream.write_all(open_ended_head()).is_ok() {
            endless_zeros(stream, &AtomicU64::new(0));
        }
    });
    let err = impatient(&server, 1).get_manifest(&server.reference("a/b:1")).unwrap_err();
    assert!(matches!(err, RegistryError::ManifestTooLarge { limit: 4194304, .. }), "{err:?}");
}

#[test]
fn index_entry_larger_than_its_descriptor_is_refused() {
    // The index says the amd64 manifest is 10 bytes; the registry sends a 4 KiB one.
    let child = format!("sha256:{}", "a".repeat(64));
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{child}","size":10,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
    );
    let server = FakeServer::start(2, move |n, _| match n {
        0 => respond("200 OK", &[("Content-Type", "application/vnd.oci.image.index.v1+json")], index.as_bytes()),
        _ => respond("200 OK", &[("Content-Type", OCI_MANIFEST)], &[b' '; 4096]),
    });
    let err = impatient(&server, 1).resolve_image(&server.reference("a/b:1"), &Platform::linux_amd64()).unwrap_err();
    assert!(matches!(err, RegistryError::ManifestTooLarge { limit: 10, .. }), "{err:?}");
}

#[test]
fn config_larger_than_the_config_limit_is_refused_without_a_request() {
    let server = FakeServer::start(1, |_, _| respond("500 Internal Server Error", &[], b""));
    let digest = Digest::of(b"{}");
    let err = impatient(&server, 1)
        .fetch_config_to(&server.reference("a/b:1"), &digest, MAX_CONFIG_SIZE + 1, &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, RegistryError::ConfigTooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains(digest.as_str()), "{err}");
    assert!(server.requests().is_empty());
}

/// `key=value` from a request path's query.
fn query<'a>(path: &'a str, key: &str) -> Option<&'a str> {
    let q = path.split_once('?')?.1;
    q.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn lists_100000_tags_from_a_registry_that_only_answers_paginated_requests() {
    const TAGS: usize = 100_000;
    let tags: Arc<Vec<String>> = Arc::new((0..TAGS).map(|i| format!("{:056x}-{i:013}", i)).collect());
    let all = Arc::clone(&tags);
    let server = FakeServer::start(1000, move |_, req| {
        // Like Docker Hub or ECR: no `n` gives a short first page and no next link;
        // `n` above 1000 is clamped.
        let Some(n) = query(&req.path, "n").and_then(|n| n.parse::<usize>().ok()) else {
            let body = serde_json::json!({"name": "p/stages", "tags": &all[..100]}).to_string();
            return respond("200 OK", &[], body.as_bytes());
        };
        let n = n.min(1000);
        let start = match query(&req.path, "last") {
            Some(last) => all.partition_point(|t| t.as_str() <= last),
            None => 0,
        };
        let page = &all[start..(start + n).min(all.len())];
        let body = serde_json::json!({"name": "p/stages", "tags": page}).to_string();
        let mut headers = Vec::new();
        let link;
        if start + n < all.len() {
            link = format!("</v2/p/stages/tags/list?last={}&n={n}>; rel=\"next\"", page.last().unwrap());
            headers.push(("Link", link.as_str()));
        }
        respond("200 OK", &headers, body.as_bytes())
    });
    let client = impatient(&server, 1);
    let listed = client.list_tags(&server.reference("p/stages:x")).unwrap();
    assert_eq!(listed.len(), TAGS);
    assert!(listed == *tags, "every tag, in order");
    let seen = server.requests();
    assert_eq!(seen.len(), TAGS / 1000);
    assert!(seen.iter().all(|r| query(&r.path, "n") == Some("1000")), "every request asks for a page size");
}

#[test]
fn a_tag_list_that_never_ends_is_refused() {
    let server = FakeServer::start(200, |i, _| {
        let page: Vec<String> = (0..10_000).map(|j| format!("t{i}-{j}")).collect();
        let body = serde_json::json!({"tags": page}).to_string();
        let link = format!("</v2/a/b/tags/list?last=t{i}&n=10000>; rel=\"next\"");
        respond("200 OK", &[("Link", &link)], body.as_bytes())
    });
    let err = impatient(&server, 1).list_tags_paged(&server.reference("a/b:x"), 10_000).unwrap_err();
    assert!(err.to_string().contains(&format!("more than {MAX_TAGS} tags")), "{err}");
    assert_eq!(server.requests().len(), MAX_TAGS / 10_000 + 1);
}

/// A destination registry for uploads, one thread per connection: POST starts a session,
/// PUT reads the body (counting it into `received`, answering 201 once it is whole) or,
/// with `read_puts` false, never reads it and holds the connection; DELETE is accepted.
struct UploadSink {
    addr: String,
    puts: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
}

impl UploadSink {
    fn start(read_puts: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (puts, received) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (puts2, received2) = (Arc::clone(&puts), Arc::clone(&received));
        std::thread::spawn(move || {
            for stream in listener.incoming().take(64) {
                let Ok(stream) = stream else { break };
                let (puts, received) = (Arc::clone(&puts2), Arc::clone(&received2));
                std::thread::spawn(move || {
                    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
                    let mut reader = BufReader::new(stream);
                    let Some(req) = read_head(&mut reader) else { return };
                    let reply = match req.method.as_str() {
                        "POST" => respond("202 Accepted", &[("Location", "/v2/dst/img/blobs/uploads/u1")], b""),
                        "PUT" if !read_puts => {
                            puts.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_secs(30));
                            return;
                        }
                        "PUT" => {
                            puts.fetch_add(1, Ordering::Relaxed);
                            let len: u64 = req.header("content-length").unwrap().parse().unwrap();
                            let got = std::io::copy(&mut (&mut reader).take(len), &mut std::io::sink()).unwrap_or(0);
                            received.fetch_add(got, Ordering::Relaxed);
                            if got < len {
                                return;
                            }
                            respond("201 Created", &[], b"")
                        }
                        _ => respond("204 No Content", &[], b""),
                    };
                    let _ = reader.into_inner().write_all(&reply);
                });
            }
        });
        UploadSink { addr, puts, received }
    }

    fn reference(&self) -> slipway_storage::reference::Reference {
        slipway_storage::reference::Reference::parse(&format!("{}/dst/img:1", self.addr)).unwrap()
    }
}

/// A source registry whose blob body never ends; counts what it sent.
fn endless_source(requests: usize) -> (FakeServer, Arc<AtomicU64>) {
    let sent = Arc::new(AtomicU64::new(0));
    let sent2 = Arc::clone(&sent);
    let server = FakeServer::start_streaming(requests, move |_, _, stream| {
        if stream.write_all(open_ended_head()).is_ok() {
            endless_zeros(stream, &sent2);
        }
    });
    (server, sent)
}

#[test]
fn streamed_blob_passes_on_no_more_than_its_descriptor_size() {
    let (server, sent) = endless_source(3);
    let client = impatient(&server, 1);
    let digest = Digest::of(b"a one-MiB blob, says the manifest");
    let mut reader = client.get_blob(&server.reference("src/img:1"), &digest, MIB).unwrap();
    let mut out = Vec::new();
    let err = reader.read_to_end(&mut out).unwrap_err();
    assert!(out.len() as u64 <= MIB, "passed on {} bytes of a {MIB}-byte blob", out.len());
    let err = slipway_storage::registry::BlobReader::into_registry_error(err).expect("a registry error");
    assert!(matches!(&err, RegistryError::BlobTooLarge { expected: MIB, seen, .. } if *seen > MIB), "{err:?}");
    assert!(err.to_string().contains(digest.as_str()), "{err}");
    assert!(reader.read(&mut [0u8; 16]).is_err(), "no clean end after a failure");
    assert!(sent.load(Ordering::Relaxed) < 64 * MIB, "the client stopped reading early");

    // Shorter than the descriptor: an error at the end, not a short blob.
    let server = FakeServer::start(1, |_, _| respond("200 OK", &[], b"short"));
    let mut reader = impatient(&server, 1).get_blob(&server.reference("src/img:1"), &digest, 100).unwrap();
    let err = reader.read_to_end(&mut Vec::new()).unwrap_err();
    let err = slipway_storage::registry::BlobReader::into_registry_error(err).expect("a registry error");
    assert!(matches!(&err, RegistryError::SizeMismatch { expected: 100, found: 5, .. }), "{err:?}");
    assert!(err.to_string().contains(digest.as_str()), "{err}");

    // Announced longer: refused before reading.
    let server = FakeServer::start(1, |_, _| respond("200 OK", &[], &[0u8; 200]));
    let err = impatient(&server, 1).get_blob(&server.reference("src/img:1"), &digest, 100).err().unwrap();
    assert!(matches!(&err, RegistryError::BlobTooLarge { expected: 100, seen: 200, .. }), "{err:?}");
}

#[test]
fn registry_to_registry_copy_of_an_endless_blob_fails_naming_the_digest() {
    let (source, sent) = endless_source(3);
    let dest = UploadSink::start(true);
    let client = Client::new(
        slipway_storage::registry::RegistryConfig::default().with_insecure([source.addr.clone(), dest.addr.clone()]),
        AuthStore::empty(),
    )
    .with_retry_policy(RetryPolicy { attempts: 3, initial: Duration::from_millis(5), max: Duration::from_millis(10) })
    .with_progress_deadline(ProgressDeadline { window: Duration::from_secs(1), min_bytes: 1024 });
    let digest = Digest::of(b"a one-MiB layer, says the manifest");
    let started = Instant::now();
    let err = client.copy_blob(&source.reference("src/img:1"), &dest.reference(), &digest, MIB).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    match &err {
        RegistryError::BlobTooLarge { digest: d, expected, seen, .. } => {
            assert_eq!((d, *expected), (&digest, MIB));
            assert!(*seen > MIB, "{seen}");
        }
        other => panic!("want BlobTooLarge, got {other:?}"),
    }
    assert!(err.to_string().contains(digest.as_str()), "{err}");
    assert!(
        dest.received.load(Ordering::Relaxed) < MIB,
        "the destination got {} bytes: the whole (wrong) blob was uploaded",
        dest.received.load(Ordering::Relaxed)
    );
    assert_eq!(dest.puts.load(Ordering::Relaxed), 1, "an oversized source is not retried");
    assert_eq!(source.requests().len(), 1);
    assert!(sent.load(Ordering::Relaxed) < 64 * MIB, "the source was not read on");
}

#[test]
fn upload_to_a_registry_that_stops_reading_fails_the_progress_deadline() {
    let dest = UploadSink::start(false);
    // 64 MiB of zeros: far more than the loopback socket buffers hold.
    const SIZE: u64 = 64 * MIB;
    let digest = Digest::of(b"what the zeros would hash to does not matter");
    let client = Client::new(
        slipway_storage::registry::RegistryConfig::default().with_insecure([dest.addr.clone()]),
        AuthStore::empty(),
    )
    .with_retry_policy(RetryPolicy { attempts: 2, initial: Duration::from_millis(5), max: Duration::from_millis(10) })
    .with_progress_deadline(ProgressDeadline { window: Duration::from_secs(2), min_bytes: 1024 });
    let reference = dest.reference();
    let (tx, rx) = std::sync::mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        let r = client.push_blob_with(&reference, &digest, SIZE, || Ok(std::io::repeat(0).take(SIZE)));
        let _ = tx.send(r);
    });
    let err = rx
        .recv_timeout(Duration::from_secs(40))
        .expect("the upload still hangs after 40 s: no progress deadline on uploads")
        .unwrap_err();
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(4) && took < Duration::from_secs(30), "took {took:?}");
    assert!(
        matches!(&err, RegistryError::UploadStalled { window_secs: 2, min_bytes: 1024, sent, .. } if *sent < SIZE),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(&format!("stalled at http://{}/v2/dst/img/blobs/uploads/u1?digest=", dest.addr)), "{text}");
    assert!(text.contains("raise SLIPWAY_REGISTRY_PROGRESS_TIMEOUT (seconds, now 2)"), "{text}");
    assert_eq!(dest.puts.load(Ordering::Relaxed), 2, "one retry, then given up");
}
