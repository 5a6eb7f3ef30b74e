// Registry client against a scripted HTTP server on 127.0.0.1: retries, bearer tokens,
// resumed downloads, digest checks — behaviour a real registry will not show on demand.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slipway_storage::Digest;
use slipway_storage::image::{OCI_MANIFEST, Platform};
use slipway_storage::reference::Reference;
use slipway_storage::registry::{AuthStore, Client, Credentials, RegistryConfig, RegistryError, RetryPolicy};

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

type Handler = dyn Fn(usize, &Seen, &mut TcpStream) + Send + Sync;

/// A server that answers each request with the raw bytes `handler` returns (request
/// number from 0), then closes the connection. It serves at most `limit` requests.
pub struct FakeServer {
    pub addr: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeServer {
    pub fn start(limit: usize, handler: impl Fn(usize, &Seen) -> Vec<u8> + Send + Sync + 'static) -> Self {
        Self::start_streaming(limit, move |n, req, stream| {
            let _ = stream.write_all(&handler(n, req));
        })
    }

    /// Like [`FakeServer::start`], but `handler` writes the response itself, for bodies
    /// that never end or arrive slowly (it should stop once a write fails).
    pub fn start_streaming(
        limit: usize,
        handler: impl Fn(usize, &Seen, &mut TcpStream) + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = Arc::clone(&seen);
        let handler: Arc<Handler> = Arc::new(handler);
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().take(limit).enumerate() {
                let Ok(stream) = stream else { break };
                serve_one(n, stream, &*handler, &seen2);
            }
        });
        FakeServer { addr, seen }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn client(&self, auth: AuthStore) -> Client {
        Client::new(RegistryConfig::default().with_insecure([self.addr.clone()]), auth).with_retry_policy(RetryPolicy {
            attempts: 4,
            initial: Duration::from_millis(5),
            max: Duration::from_millis(20),
        })
    }

    pub fn reference(&self, rest: &str) -> Reference {
        Reference::parse(&format!("{}/{rest}", self.addr)).unwrap()
    }
}

fn serve_one(n: usize, stream: TcpStream, handler: &Handler, seen: &Mutex<Vec<Seen>>) {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut reader = BufReader::new(stream);
    let Some(req) = read_head(&mut reader) else { return };
    if let Some(len) = req.header("content-length").and_then(|v| v.parse::<u64>().ok()) {
        let _ = std::io::copy(&mut (&mut reader).take(len), &mut std::io::sink());
    }
    seen.lock().unwrap().push(req.clone());
    let mut stream = reader.into_inner();
    handler(n, &req, &mut stream);
    let _ = stream.flush();
}

/// Reads a request line and headers (not the body).
pub fn read_head(reader: &mut BufReader<TcpStream>) -> Option<Seen> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    Some(Seen { method, path, headers })
}

/// A complete response with `Connection: close`.
pub fn respond(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

fn manifest_response() -> Vec<u8> {
    respond("200 OK", &[("Content-Type", OCI_MANIFEST)], MANIFEST)
}

#[test]
fn retries_server_errors_then_succeeds() {
    let server = FakeServer::start(3, |n, _| match n {
        0 => respond("500 Internal Server Error", &[], b"boom"),
        1 => respond("503 Service Unavailable", &[], b""),
        _ => manifest_response(),
    });
    let client = server.client(AuthStore::empty());
    let raw = client.get_manifest(&server.reference("test/img:1")).expect("third attempt succeeds");
    assert_eq!(raw.bytes, MANIFEST);
    assert_eq!(raw.digest, Digest::of(MANIFEST));
    let seen = server.requests();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|r| r.method == "GET" && r.path == "/v2/test/img/manifests/1"));
    assert!(seen[0].header("accept").unwrap().contains(OCI_MANIFEST));
}

#[test]
fn gives_up_after_the_retry_budget_and_names_the_registry() {
    let server = FakeServer::start(10, |_, _| {
        respond(
            "502 Bad Gateway",
            &[("Content-Type", "application/json")],
            br#"{"errors":[{"code":"UNAVAILABLE","message":"backend down"}]}"#,
        )
    });
    let client = server.client(AuthStore::empty());
    let err = client.get_manifest(&server.reference("test/img:1")).unwrap_err();
    assert_eq!(server.requests().len(), 4, "attempts = retry policy's 4");
    assert!(matches!(err, RegistryError::Status { status: 502, .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "registry {} answered 502 to pulling manifest {}/test/img:1 on test/img: UNAVAILABLE: backend down",
            server.addr, server.addr
        )
    );
    assert!(err.is_transient());
}

#[test]
fn retries_connection_failures() {
    // A port with nothing listening: every attempt is refused.
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let client =
        Client::new(RegistryConfig::default().with_insecure([addr.clone()]), AuthStore::empty()).with_retry_policy(
            RetryPolicy { attempts: 2, initial: Duration::from_millis(1), max: Duration::from_millis(1) },
        );
    let err = client.get_manifest(&Reference::parse(&format!("{addr}/a:b")).unwrap()).unwrap_err();
    assert!(matches!(err, RegistryError::Transport { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!("cannot reach registry {addr} (pulling manifest")), "{err}");
}

#[test]
fn bearer_token_flow_with_basic_credentials_and_cache() {
    let addr = Arc::new(Mutex::new(String::new()));
    let addr2 = Arc::clone(&addr);
    let server = FakeServer::start(10, move |_, req| {
        let realm = format!("http://{}/token", addr2.lock().unwrap());
        if req.path.starts_with("/token") {
            return respond("200 OK", &[], br#"{"access_token":"T1","expires_in":300}"#);
        }
        match req.header("authorization") {
            Some("Bearer T1") => manifest_response(),
            _ => respond(
                "401 Unauthorized",
                &[(
                    "WWW-Authenticate",
                    &format!(r#"Bearer realm="{realm}",service="fake.io",scope="repository:test/img:pull""#),
                )],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            ),
        }
    });
    *addr.lock().unwrap() = server.addr.clone();
    let auth = AuthStore::empty().with_credentials(&server.addr, Credentials::new("u", "p"));
    let client = server.client(auth);
    let reference = server.reference("test/img:1");
    client.get_manifest(&reference).unwrap();
    client.get_manifest(&reference).unwrap();
    let seen = server.requests();
    let paths: Vec<_> = seen.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v2/test/img/manifests/1",
            "/token?service=fake.io&scope=repository%3Atest%2Fimg%3Apull",
            "/v2/test/img/manifests/1",
            "/v2/test/img/manifests/1",
        ],
        "token fetched once, then cached"
    );
    assert_eq!(seen[1].header("authorization"), Some("Basic dTpw"));
    assert_eq!(seen[0].header("authorization"), None);
}

#[test]
fn token_service_rejecting_credentials_is_a_clear_error() {
    let addr = Arc::new(Mutex::new(String::new()));
    let addr2 = Arc::clone(&addr);
    let server = FakeServer::start(10, move |_, req| {
        if req.path.starts_with("/token") {
            return respond("401 Unauthorized", &[], b"");
        }
        let challenge = format!(r#"Bearer realm="http://{}/token",service="s""#, addr2.lock().unwrap());
        respond("401 Unauthorized", &[("WWW-Authenticate", &challenge)], b"")
    });
    *addr.lock().unwrap() = server.addr.clone();
    let auth = AuthStore::empty().with_credentials(&server.addr, Credentials::new("alice", "wrong"));
    let err = server.client(auth).get_manifest(&server.reference("test/img:1")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "registry {} rejected the credentials for user \"alice\" on test/img: check the \
             username and password (or token) in your auth file",
            server.addr
        )
    );
}

#[test]
fn schema1_manifests_are_refused_with_advice() {
    let server = FakeServer::start(1, |_, _| {
        respond(
            "200 OK",
            &[("Content-Type", "application/vnd.docker.distribution.manifest.v1+prettyjws")],
            br#"{"schemaVersion":1,"name":"old","fsLayers":[],"signatures":[]}"#,
        )
    });
    let client = server.client(AuthStore::empty());
    let err = client.resolve_image(&server.reference("old/img:1"), &Platform::linux_amd64()).unwrap_err();
    assert!(matches!(err, RegistryError::UnsupportedSchema1 { .. }), "{err:?}");
    assert!(err.to_string().contains("re-push the image"), "{err}");
}

#[test]
fn manifest_pulled_by_digest_is_verified() {
    let server = FakeServer::start(1, |_, _| manifest_response());
    let wrong = format!("sha256:{}", "0".repeat(64));
    let reference = server.reference(&format!("test/img@{wrong}"));
    let err = server.client(AuthStore::empty()).get_manifest(&reference).unwrap_err();
    match err {
        RegistryError::DigestMismatch { expected, found, .. } => {
            assert_eq!(expected.as_str(), wrong);
            assert_eq!(found, Digest::of(MANIFEST));
        }
        other => panic!("want DigestMismatch, got {other:?}"),
    }
}

const BLOB: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

#[test]
fn broken_blob_download_resumes_with_range() {
    let server = FakeServer::start(2, |n, req| {
        if n == 0 {
            // Announce the whole blob, send half, hang up.
            let mut out =
                format!("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", BLOB.len()).into_bytes();
            out.extend_from_slice(&BLOB[..10]);
            return out;
        }
        assert_eq!(req.header("range"), Some("bytes=10-"));
        let range = format!("bytes 10-{}/{}", BLOB.len() - 1, BLOB.len());
        respond("206 Partial Content", &[("Content-Range", &range)], &BLOB[10..])
    });
    let client = server.client(AuthStore::empty());
    let digest = Digest::of(BLOB);
    let mut out = Vec::new();
    let n = client.fetch_blob_to(&server.reference("test/img:1"), &digest, BLOB.len() as u64, &mut out).unwrap();
    assert_eq!((n, out.as_slice()), (BLOB.len() as u64, BLOB));
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn blob_with_wrong_content_is_a_digest_mismatch() {
    let server = FakeServer::start(2, |_, _| respond("200 OK", &[], b"tampered"));
    let client = server.client(AuthStore::empty());
    let digest = Digest::of(BLOB);
    let err = client.fetch_blob_to(&server.reference("test/img:1"), &digest, 8, &mut Vec::new()).unwrap_err();
    match &err {
        RegistryError::DigestMismatch { expected, found, .. } => {
            assert_eq!(expected, &digest);
            assert_eq!(found, &Digest::of(b"tampered"));
        }
        other => panic!("want DigestMismatch, got {other:?}"),
    }
    // The streaming reader reports the same at its end, as an I/O error.
    let mut reader = client.get_blob(&server.reference("test/img:1"), &digest, 8).unwrap();
    let io_err = reader.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(io_err.kind(), std::io::ErrorKind::InvalidData);
    assert!(io_err.to_string().contains("does not match its digest"), "{io_err}");
}

#[test]
fn blob_download_follows_redirects() {
    let server = FakeServer::start(2, |n, req| match n {
        0 => respond("307 Temporary Redirect", &[("Location", "/storage/blob?sig=1")], b""),
        _ => {
            assert_eq!(req.path, "/storage/blob?sig=1");
            respond("200 OK", &[], BLOB)
        }
    });
    let client = server.client(AuthStore::empty());
    let mut out = Vec::new();
    client
        .get_blob(&server.reference("test/img:1"), &Digest::of(BLOB), BLOB.len() as u64)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, BLOB);
}

#[test]
fn upload_location_with_query_gets_digest_appended() {
    let server = FakeServer::start(2, |n, _| match n {
        0 => respond("202 Accepted", &[("Location", "/v2/test/img/blobs/uploads/abc?_state=xyz")], b""),
        _ => respond("201 Created", &[("Docker-Content-Digest", Digest::of(BLOB).as_str())], b""),
    });
    let client = server.client(AuthStore::empty());
    let digest = Digest::of(BLOB);
    client.push_blob(&server.reference("test/img:1"), &digest, BLOB.len() as u64, BLOB).unwrap();
    let seen = server.requests();
    assert_eq!((seen[0].method.as_str(), seen[0].path.as_str()), ("POST", "/v2/test/img/blobs/uploads/"));
    assert_eq!(seen[1].method, "PUT");
    assert_eq!(
        seen[1].path,
        format!("/v2/test/img/blobs/uploads/abc?_state=xyz&digest={}", digest.as_str().replace(':', "%3A"))
    );
    assert_eq!(seen[1].header("content-length"), Some(BLOB.len().to_string().as_str()));
}

#[test]
fn upload_of_short_content_is_a_size_mismatch() {
    let server = FakeServer::start(3, |n, _| match n {
        0 => respond("202 Accepted", &[("Location", "/v2/test/img/blobs/uploads/abc")], b""),
        1 => respond("400 Bad Request", &[], br#"{"errors":[{"code":"SIZE_INVALID","message":"bad"}]}"#),
        _ => respond("204 No Content", &[], b""),
    });
    let client = server.client(AuthStore::empty()).with_retry_policy(RetryPolicy::none());
    let digest = Digest::of(BLOB);
    let err = client.push_blob(&server.reference("test/img:1"), &digest, BLOB.len() as u64 + 5, BLOB).unwrap_err();
    assert!(
        matches!(err, RegistryError::SizeMismatch { expected, found, .. } if expected == BLOB.len() as u64 + 5 && found == BLOB.len() as u64),
        "{err:?}"
    );
}

#[test]
fn resumed_download_copes_with_a_server_that_ignores_range() {
    let server = FakeServer::start(2, |n, _| {
        if n == 0 {
            let mut out =
                format!("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", BLOB.len()).into_bytes();
            out.extend_from_slice(&BLOB[..7]);
            return out;
        }
        respond("200 OK", &[], BLOB)
    });
    let client = server.client(AuthStore::empty());
    let mut out = Vec::new();
    client.fetch_blob_to(&server.reference("test/img:1"), &Digest::of(BLOB), BLOB.len() as u64, &mut out).unwrap();
    assert_eq!(out, BLOB, "the resent prefix is skipped, not written twice");
}
