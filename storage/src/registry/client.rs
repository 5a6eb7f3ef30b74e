//! The HTTP core of the registry client: one blocking `ureq` agent, authentication
//! (Basic, or Bearer tokens cached per registry and scope), retries with backoff, and
//! turning error responses into [`RegistryError`]s.
//!
//! Blocking on purpose: slipway must stay single-threaded until it has entered its
//! user namespace, and a blocking client streams bodies through `Read` with no runtime.
//! Concurrency, where wanted, is std threads sharing one `Client` (it is `Sync`).

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::config::RedirectAuthHeaders;
use ureq::http::{self, Response};
use ureq::tls::TlsConfig;
use ureq::{Agent, SendBody};

use super::auth::AuthStore;
use super::challenge::{Challenge, TokenCache, parse_challenges, parse_token_response};
use super::config::RegistryConfig;
use super::error::RegistryError;
use super::retry::{RetryPolicy, is_transient};
use super::transfer::{ProgressDeadline, ProgressReader, stall_of};
use crate::reference::Reference;

/// Error bodies and token responses are small; never read more than this of them.
const SMALL_BODY_LIMIT: u64 = 1024 * 1024;

/// A client for OCI distribution registries. Cheap to share between threads by
/// reference; tokens and learned auth schemes are cached inside.
pub struct Client {
    config: RegistryConfig,
    auth: AuthStore,
    agent: Agent,
    unverified_agent: Option<Agent>,
    retry: RetryPolicy,
    progress: ProgressDeadline,
    state: Mutex<AuthState>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("config", &self.config).field("retry", &self.retry).finish_non_exhaustive()
    }
}

#[derive(Default)]
struct AuthState {
    /// How each registry (by reference registry name) asked to be authenticated.
    challenges: HashMap<String, Challenge>,
    tokens: TokenCache,
}

/// The access a request needs, as token scopes (`repository:NAME:ACTIONS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope(Vec<String>);

impl Scope {
    pub(crate) fn pull(repository: &str) -> Self {
        Scope(vec![format!("repository:{repository}:pull")])
    }
    pub(crate) fn push(repository: &str) -> Self {
        Scope(vec![format!("repository:{repository}:pull,push")])
    }
    pub(crate) fn delete(repository: &str) -> Self {
        Scope(vec![format!("repository:{repository}:delete")])
    }
    pub(crate) fn and_pull(mut self, repository: &str) -> Self {
        self.0.push(format!("repository:{repository}:pull"));
        self
    }
    fn key(&self) -> String {
        self.0.join(" ")
    }
}

/// One request to a registry. `action` reads as "what we were doing" in errors.
pub(crate) struct Request<'a> {
    pub(crate) method: http::Method,
    pub(crate) url: String,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) reference: &'a Reference,
    pub(crate) scope: Scope,
    pub(crate) action: String,
}

pub(crate) enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A body read once: requests carrying one are never retried.
    Stream(&'a mut dyn Read, u64),
}

impl Client {
    /// A client with the default retry policy (5 attempts, 200 ms doubling to 3 s),
    /// a 10 s connect timeout and the default [`ProgressDeadline`] (1 KiB per 60 s;
    /// a single read waits at most 60 s).
    pub fn new(config: RegistryConfig, auth: AuthStore) -> Self {
        let progress = ProgressDeadline::default();
        let agent = build_agent(false, progress.window);
        let unverified_agent = (!config.skip_tls_verify.is_empty()).then(|| build_agent(true, progress.window));
        Client {
            config,
            auth,
            agent,
            unverified_agent,
            retry: RetryPolicy::default(),
            progress,
            state: Mutex::new(AuthState::default()),
        }
    }

    /// Replaces the progress deadline every transfer must keep (and the agent's
    /// per-read and per-write timeouts, which are its window).
    pub fn with_progress_deadline(mut self, progress: ProgressDeadline) -> Self {
        self.progress = progress;
        self.agent = build_agent(false, progress.window);
        self.unverified_agent = self.unverified_agent.map(|_| build_agent(true, progress.window));
        self
    }

    pub fn progress_deadline(&self) -> ProgressDeadline {
        self.progress
    }

    /// A body reader that enforces the progress deadline.
    pub(crate) fn body_reader(&self, response: Response<ureq::Body>) -> ProgressReader<ureq::BodyReader<'static>> {
        ProgressReader::new(response.into_body().into_reader(), self.progress)
    }

    /// Reads a whole body of at most `limit` bytes under the progress deadline. A longer
    /// body is `Ok(Err(len_seen))`, read no further than `limit + 1` bytes.
    pub(crate) fn read_limited(
        &self,
        req: &Request<'_>,
        response: Response<ureq::Body>,
        limit: u64,
    ) -> Result<Result<Vec<u8>, u64>, (RegistryError, std::io::Error)> {
        let mut bytes = Vec::new();
        let mut reader = self.body_reader(response).take(limit + 1);
        match reader.read_to_end(&mut bytes) {
            Ok(_) if bytes.len() as u64 > limit => Ok(Err(bytes.len() as u64)),
            Ok(_) => Ok(Ok(bytes)),
            Err(e) => {
                let received = bytes.len() as u64;
                let err = match stall_of(&e) {
                    Some(_) => self.stalled(req, &e, received),
                    None => RegistryError::Io {
                        action: req.action.clone(),
                        digest: req.url.clone(),
                        source: std::io::Error::new(e.kind(), e.to_string()),
                    },
                };
                Err((err, e))
            }
        }
    }

    /// The [`RegistryError::Stalled`] for a stalled body of `req`.
    pub(crate) fn stalled(&self, req: &Request<'_>, e: &std::io::Error, received: u64) -> RegistryError {
        let stall = stall_of(e).unwrap_or(super::transfer::Stall {
            seen: 0,
            window: self.progress.window,
            min_bytes: self.progress.min_bytes,
        });
        RegistryError::Stalled {
            what: req.action.clone(),
            url: req.url.clone(),
            seen: stall.seen,
            window_secs: stall.window.as_secs(),
            min_bytes: stall.min_bytes,
            received,
        }
    }

    /// Replaces the retry policy (tests use short delays).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// `scheme://host/v2/` plus `path` for the reference's registry.
    pub(crate) fn url(&self, reference: &Reference, path: &str) -> String {
        format!("{}://{}/v2/{path}", self.config.scheme(&reference.registry), reference.api_host())
    }

    fn agent_for(&self, registry: &str) -> &Agent {
        match &self.unverified_agent {
            Some(agent) if self.config.skips_tls_verify(registry) => agent,
            _ => &self.agent,
        }
    }

    /// Sends `req`, authenticating on demand and retrying transient failures when the
    /// body can be sent again. Returns whatever final response the registry gave;
    /// callers decide which statuses are success.
    pub(crate) fn send(&self, req: &Request<'_>, mut body: Body<'_>) -> Result<Response<ureq::Body>, RegistryError> {
        let registry = &req.reference.registry;
        let repeatable = !matches!(body, Body::Stream(..));
        let mut attempt = 1;
        let mut reauthenticated = false;
        loop {
            let authorization = self.authorization(req)?;
            let sent_auth = authorization.is_some();
            let result = self.send_once(req, authorization.as_deref(), &mut body);
            let response = match result {
                Ok(response) => response,
                Err(err) if repeatable && is_transient(&err) && attempt < self.retry.attempts => {
                    let delay = self.retry.delay(attempt);
                    tracing::warn!(%registry, action = %req.action, attempt, error = %err, ?delay, "retrying");
                    std::thread::sleep(delay);
                    attempt += 1;
                    continue;
                }
                Err(ureq::Error::Timeout(ureq::Timeout::PerWrite | ureq::Timeout::SendBody)) => {
                    // The registry took no part of the body within the progress window
                    // (the agent's per-write timeout), on every attempt.
                    return Err(RegistryError::UploadStalled {
                        what: req.action.clone(),
                        url: req.url.clone(),
                        window_secs: self.progress.window.as_secs(),
                        min_bytes: self.progress.min_bytes,
                        sent: 0,
                    });
                }
                Err(ureq::Error::Timeout(_)) => {
                    // Nothing arrived within the progress window (the agent's per-read
                    // timeout), on every attempt.
                    return Err(RegistryError::Stalled {
                        what: req.action.clone(),
                        url: req.url.clone(),
                        seen: 0,
                        window_secs: self.progress.window.as_secs(),
                        min_bytes: self.progress.min_bytes,
                        received: 0,
                    });
                }
                Err(err) => {
                    return Err(RegistryError::Transport {
                        registry: registry.clone(),
                        action: req.action.clone(),
                        source: Box::new(err),
                    });
                }
            };
            let status = response.status().as_u16();
            if status == 401 && !reauthenticated {
                reauthenticated = true;
                if self.learn_challenge(req, &response, sent_auth) && repeatable {
                    continue;
                }
            }
            if repeatable && (status >= 500 || status == 429) && attempt < self.retry.attempts {
                let retry_after = header(&response, "retry-after");
                let delay = self.retry.delay_after(attempt, retry_after.as_deref());
                tracing::warn!(%registry, action = %req.action, attempt, status, ?delay, "retrying");
                drop(response);
                std::thread::sleep(delay);
                attempt += 1;
                continue;
            }
            return Ok(response);
        }
    }

    fn send_once(
        &self,
        req: &Request<'_>,
        authorization: Option<&str>,
        body: &mut Body<'_>,
    ) -> Result<Response<ureq::Body>, ureq::Error> {
        tracing::debug!(method = %req.method, url = %req.url, "registry request");
        let mut builder = http::Request::builder().method(req.method.clone()).uri(&req.url);
        for (name, value) in &req.headers {
            builder = builder.header(*name, value);
        }
        // The token or credentials go only to the registry itself, not to an upload
        // location on another host.
        if let Some(authorization) = authorization
            && same_host(&req.url, req.reference.api_host())
        {
            builder = builder.header("Authorization", authorization);
        }
        let agent = self.agent_for(&req.reference.registry);
        match body {
            Body::Empty => agent.run(builder.body(())?),
            Body::Bytes(bytes) => agent.run(builder.body(*bytes)?),
            Body::Stream(reader, len) => {
                let builder = builder.header("Content-Length", len.to_string());
                agent.run(builder.body(SendBody::from_reader(&mut **reader))?)
            }
        }
    }

    /// Records the scheme a 401 asked for. Returns whether asking again can help.
    fn learn_challenge(&self, req: &Request<'_>, response: &Response<ureq::Body>, sent_auth: bool) -> bool {
        let headers: Vec<String> = response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let Some(challenge) = parse_challenges(headers.iter().map(String::as_str)) else {
            return false;
        };
        let registry = &req.reference.registry;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.tokens.remove(registry, &req.scope.key());
        let known = state.challenges.get(registry) == Some(&challenge);
        tracing::debug!(%registry, ?challenge, "registry asked for authentication");
        state.challenges.insert(registry.clone(), challenge.clone());
        match challenge {
            // Same credentials again would get the same answer, and no credentials
            // again would too.
            Challenge::Basic { .. } => {
                !(sent_auth && known) && self.auth.lookup(registry, &req.reference.repository).is_some()
            }
            // A token may have expired or lacked the scope: one fresh token is worth it.
            Challenge::Bearer { .. } => true,
        }
    }

    /// The `Authorization` value for `req`, fetching a token if the registry wants one.
    fn authorization(&self, req: &Request<'_>) -> Result<Option<String>, RegistryError> {
        let reference = req.reference;
        let registry = &reference.registry;
        let scope = req.scope.key();
        let challenge = {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match state.challenges.get(registry) {
                None => return Ok(None),
                Some(Challenge::Basic { .. }) => {
                    return Ok(self
                        .auth
                        .lookup(registry, &reference.repository)
                        .map(|(creds, _)| creds.basic_header()));
                }
                Some(challenge) => {
                    if let Some(token) = state.tokens.get(registry, &scope, Instant::now()) {
                        return Ok(Some(format!("Bearer {token}")));
                    }
                    challenge.clone()
                }
            }
        };
        let Challenge::Bearer { realm, service, .. } = challenge else {
            return Ok(None);
        };
        // Fetched without holding the lock: two threads may both fetch, which is fine.
        let token = self.fetch_token(req, &realm, service.as_deref())?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.tokens.insert(registry, &scope, &token, Instant::now());
        Ok(Some(format!("Bearer {}", token.token)))
    }

    fn fetch_token(
        &self,
        req: &Request<'_>,
        realm: &str,
        service: Option<&str>,
    ) -> Result<super::challenge::Token, RegistryError> {
        let reference = req.reference;
        let registry = &reference.registry;
        let creds = self.auth.lookup(registry, &reference.repository);
        let mut url = realm.to_owned();
        let mut sep = if realm.contains('?') { '&' } else { '?' };
        if let Some(service) = service {
            url.push_str(&format!("{sep}service={}", encode_query(service)));
            sep = '&';
        }
        for scope in &req.scope.0 {
            url.push_str(&format!("{sep}scope={}", encode_query(scope)));
            sep = '&';
        }
        let token_error = |detail: String| RegistryError::TokenService {
            registry: registry.clone(),
            realm: realm.to_owned(),
            detail,
        };
        let mut attempt = 1;
        let mut response = loop {
            let mut builder = http::Request::builder().method("GET").uri(&url);
            if let Some((creds, _)) = creds {
                builder = builder.header("Authorization", creds.basic_header());
            }
            let request = builder.body(()).map_err(|e| token_error(e.to_string()))?;
            tracing::debug!(%url, with_credentials = creds.is_some(), "requesting registry token");
            match self.agent_for(registry).run(request) {
                Ok(r)
                    if (r.status().as_u16() >= 500 || r.status().as_u16() == 429) && attempt < self.retry.attempts => {}
                Ok(r) => break r,
                Err(e) if is_transient(&e) && attempt < self.retry.attempts => {}
                Err(e) => return Err(token_error(e.to_string())),
            }
            std::thread::sleep(self.retry.delay(attempt));
            attempt += 1;
        };
        let status = response.status().as_u16();
        let text = self.read_small(&mut response);
        match status {
            200..=299 => parse_token_response(&text).map_err(token_error),
            401 | 403 => Err(match creds {
                Some((creds, _)) => RegistryError::CredentialsRejected {
                    registry: registry.clone(),
                    repository: reference.repository.clone(),
                    username: creds.username.clone(),
                },
                None => RegistryError::CredentialsRequired {
                    registry: registry.clone(),
                    repository: reference.repository.clone(),
                },
            }),
            _ => Err(token_error(format!("answered {status}: {}", error_summary(&text)))),
        }
    }

    /// Turns an unexpected response into the error that explains it best.
    pub(crate) fn error_for(&self, req: &Request<'_>, mut response: Response<ureq::Body>) -> RegistryError {
        let reference = req.reference;
        let status = response.status().as_u16();
        let message = error_summary(&self.read_small(&mut response));
        match status {
            401 => match self.auth.lookup(&reference.registry, &reference.repository) {
                Some((creds, _)) => RegistryError::CredentialsRejected {
                    registry: reference.registry.clone(),
                    repository: reference.repository.clone(),
                    username: creds.username.clone(),
                },
                None => RegistryError::CredentialsRequired {
                    registry: reference.registry.clone(),
                    repository: reference.repository.clone(),
                },
            },
            403 => RegistryError::Denied {
                registry: reference.registry.clone(),
                repository: reference.repository.clone(),
                action: req.action.clone(),
                message,
            },
            _ => RegistryError::Status {
                registry: reference.registry.clone(),
                repository: reference.repository.clone(),
                action: req.action.clone(),
                status,
                message,
            },
        }
    }

    pub(crate) fn request<'a>(
        &self,
        reference: &'a Reference,
        method: http::Method,
        url: String,
        scope: Scope,
        action: String,
    ) -> Request<'a> {
        Request { method, url, headers: Vec::new(), reference, scope, action }
    }

    pub(crate) fn invalid_response(&self, req: &Request<'_>, detail: impl Into<String>) -> RegistryError {
        RegistryError::InvalidResponse {
            registry: req.reference.registry.clone(),
            action: req.action.clone(),
            detail: detail.into(),
        }
    }
}

/// The agent: connect within 10 s; each read (response head or body) and each write
/// (request head or body) within the progress window, so a registry that stops sending,
/// or stops reading an upload, is a stall.
fn build_agent(skip_tls_verify: bool, window: Duration) -> Agent {
    let mut config = Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_per_read(Some(window))
        .timeout_per_write(Some(window))
        .redirect_auth_headers(RedirectAuthHeaders::SameHost)
        .user_agent(concat!("slipway/", env!("CARGO_PKG_VERSION")));
    if skip_tls_verify {
        config = config.tls_config(TlsConfig::builder().disable_verification(true).build());
    }
    config.build().new_agent()
}

/// A header's value as text, if present and printable.
pub(crate) fn header(response: &Response<ureq::Body>, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

impl Client {
    /// Reads at most [`SMALL_BODY_LIMIT`] of a body as text, under the progress
    /// deadline; errors give what arrived (the status code already says what happened).
    pub(crate) fn read_small(&self, response: &mut Response<ureq::Body>) -> String {
        let mut bytes = Vec::new();
        let reader = ProgressReader::new(response.body_mut().as_reader(), self.progress);
        let _ = reader.take(SMALL_BODY_LIMIT).read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// `CODE: message` from a distribution error body, else the body itself, shortened.
pub(crate) fn error_summary(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(parsed) = serde_json::from_str::<Errors>(body)
        && !parsed.errors.is_empty()
    {
        return parsed.errors.iter().map(|e| format!("{}: {}", e.code, e.message)).collect::<Vec<_>>().join("; ");
    }
    let trimmed: String = body.trim().chars().take(200).collect();
    if trimmed.is_empty() { "no details given".to_owned() } else { trimmed.replace('\n', " ") }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass through).
pub(crate) fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Resolves a `Location` or `Link` target against the URL of the request that
/// returned it: absolute URLs stay, `/path` keeps scheme and host, `path` is relative
/// to the request's directory.
pub(crate) fn resolve_url(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_owned();
    }
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{}{rest}", &base[..scheme_end]);
    }
    let host_end = base[scheme_end..].find('/').map(|i| scheme_end + i).unwrap_or(base.len());
    if location.starts_with('/') {
        return format!("{}{location}", &base[..host_end]);
    }
    let path = base[host_end..].split(['?', '#']).next().unwrap_or("");
    let dir = &path[..path.rfind('/').map(|i| i + 1).unwrap_or(0)];
    format!("{}{dir}{location}", &base[..host_end])
}

/// Appends `name=value` to a URL that may already have a query string.
pub(crate) fn append_query(url: &str, name: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{name}={}", encode_query(value))
}

fn same_host(url: &str, host: &str) -> bool {
    let after_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = after_scheme.split(['/', '?']).next().unwrap_or("");
    authority.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_locations() {
        let base = "http://r:5000/v2/a/b/blobs/uploads/";
        let table = [
            ("https://s3.example/bucket/x?sig=1", "https://s3.example/bucket/x?sig=1"),
            ("/v2/a/b/blobs/uploads/uuid?_state=x", "http://r:5000/v2/a/b/blobs/uploads/uuid?_state=x"),
            ("uuid", "http://r:5000/v2/a/b/blobs/uploads/uuid"),
            ("//other:1/p", "http://other:1/p"),
        ];
        for (loc, want) in table {
            assert_eq!(resolve_url(base, loc), want, "{loc}");
        }
        assert_eq!(resolve_url("http://r/v2/x/tags/list?n=1", "list?last=a"), "http://r/v2/x/tags/list?last=a");
        assert_eq!(resolve_url("http://r", "/v2/"), "http://r/v2/");
    }

    #[test]
    fn appends_queries_and_encodes() {
        assert_eq!(append_query("http://r/u", "digest", "sha256:ab"), "http://r/u?digest=sha256%3Aab");
        assert_eq!(
            append_query("http://r/u?_state=x", "digest", "sha256:ab"),
            "http://r/u?_state=x&digest=sha256%3Aab"
        );
        assert_eq!(encode_query("repository:a/b:pull,push"), "repository%3Aa%2Fb%3Apull%2Cpush");
    }

    #[test]
    fn summarizes_errors() {
        let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        assert_eq!(error_summary(body), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(error_summary(""), "no details given");
        assert_eq!(error_summary("<h1>Bad\nGateway</h1>"), "<h1>Bad Gateway</h1>");
    }

    #[test]
    fn same_host_compares_authority() {
        assert!(same_host("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"));
        assert!(!same_host("http://127.0.0.1:5001/v2/", "127.0.0.1:5000"));
        assert!(!same_host("https://s3.example/x", "r.io"));
        assert!(same_host("https://R.io?x", "r.io"));
    }

    #[test]
    fn client_is_shareable_between_threads() {
        fn assert_sync<T: Send + Sync>() {}
        assert_sync::<Client>();
    }
}
