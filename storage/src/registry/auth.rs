//! Registry credentials from the auth files that podman, skopeo, buildah and docker
//! write, so `podman login` or `docker login` is all a user needs.
//!
//! Files, in order; for each registry the first file that has an entry wins:
//!
//! ```text
//! $REGISTRY_AUTH_FILE
//! $XDG_RUNTIME_DIR/containers/auth.json
//! ~/.config/containers/auth.json
//! $DOCKER_CONFIG/config.json   (or ~/.docker/config.json)
//! ```
//!
//! Within one file the most specific key wins (`quay.io/org/repo`, then `quay.io/org`,
//! then `quay.io`), as in containers/image. Credential helpers (`credHelpers`,
//! `credsStore`) are not supported: we warn and ignore them.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::reference::DOCKER_HUB;

/// A username and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials { username: username.into(), password: password.into() }
    }

    /// The value of an `Authorization: Basic …` header.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

/// Why an auth file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("reading auth file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("auth file {path} is not valid JSON: {source}; fix or remove it")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "auth file {path}: entry \"{key}\" has an \"auth\" value that is not base64 of \
         user:password; log in again to rewrite it"
    )]
    BadAuthField { path: PathBuf, key: String },
}

/// The credentials of one auth file, keyed by normalized `registry[/namespace]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthFile {
    pub source: PathBuf,
    pub entries: BTreeMap<String, Credentials>,
    /// Registries configured to use a credential helper (not supported).
    pub helper_registries: Vec<String>,
    /// Whether the file names a default `credsStore` (not supported).
    pub has_creds_store: bool,
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    auths: BTreeMap<String, RawEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize)]
struct RawEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// Parses the text of an auth.json or docker config.json. `source` is only used in
/// errors and warnings.
pub fn parse_auth_file(source: &Path, text: &str) -> Result<AuthFile, AuthError> {
    let raw: RawFile =
        serde_json::from_str(text).map_err(|e| AuthError::Json { path: source.to_owned(), source: e })?;
    let mut entries = BTreeMap::new();
    for (key, entry) in raw.auths {
        let creds = match (entry.auth.as_deref().filter(|a| !a.is_empty()), entry.username) {
            (Some(auth), _) => decode_auth(auth)
                .ok_or_else(|| AuthError::BadAuthField { path: source.to_owned(), key: key.clone() })?,
            (None, Some(username)) if !username.is_empty() => {
                Credentials::new(username, entry.password.unwrap_or_default())
            }
            _ => {
                if entry.identitytoken.is_some() {
                    tracing::warn!(
                        file = %source.display(), registry = %key,
                        "identity tokens are not supported; ignoring this entry"
                    );
                }
                continue;
            }
        };
        entries.entry(normalize_key(&key)).or_insert(creds);
    }
    Ok(AuthFile {
        source: source.to_owned(),
        entries,
        helper_registries: raw.cred_helpers.keys().map(|k| normalize_key(k)).collect(),
        has_creds_store: raw.creds_store.is_some_and(|s| !s.is_empty()),
    })
}

fn decode_auth(auth: &str) -> Option<Credentials> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(auth.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some(Credentials::new(user, pass.trim_end_matches(['\n', '\r'])))
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://host:5000/` → `host:5000`;
/// `quay.io/org` stays.
pub fn normalize_key(key: &str) -> String {
    let key = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    let mut key = key.trim_end_matches('/');
    for suffix in ["/v1", "/v2"] {
        if let Some(stripped) = key.strip_suffix(suffix) {
            key = stripped;
        }
    }
    let (host, path) = match key.split_once('/') {
        Some((host, path)) => (host, Some(path)),
        None => (key, None),
    };
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB,
        other => other,
    };
    match path {
        Some(path) => format!("{host}/{path}"),
        None => host.to_owned(),
    }
}

/// Credentials from all auth files, in priority order.
#[derive(Debug, Clone, Default)]
pub struct AuthStore {
    files: Vec<AuthFile>,
}

impl AuthStore {
    /// No credentials at all: every registry is accessed anonymously.
    pub fn empty() -> Self {
        AuthStore::default()
    }

    /// Reads the standard files (see the module docs) from the process environment.
    pub fn load() -> Result<Self, AuthError> {
        let paths = default_auth_paths(|name| std::env::var_os(name).map(PathBuf::from));
        AuthStore::load_from(&paths)
    }

    /// Reads `paths` in priority order; files that do not exist are skipped.
    pub fn load_from(paths: &[PathBuf]) -> Result<Self, AuthError> {
        let mut files = Vec::new();
        for path in paths {
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(AuthError::Read { path: path.clone(), source: e });
                }
            };
            let file = parse_auth_file(path, &text)?;
            if !file.helper_registries.is_empty() || file.has_creds_store {
                tracing::warn!(
                    file = %path.display(),
                    registries = ?file.helper_registries,
                    creds_store = file.has_creds_store,
                    "credential helpers are not supported; those registries are accessed \
                     with the file's plain entries or anonymously"
                );
            }
            tracing::debug!(file = %path.display(), entries = file.entries.len(), "loaded auth file");
            files.push(file);
        }
        Ok(AuthStore { files })
    }

    /// Builds a store from already parsed files, highest priority first.
    pub fn from_files(files: Vec<AuthFile>) -> Self {
        AuthStore { files }
    }

    /// Adds credentials that take precedence over every file (e.g. from a CLI flag).
    pub fn with_credentials(mut self, registry: &str, credentials: Credentials) -> Self {
        let mut entries = BTreeMap::new();
        entries.insert(normalize_key(registry), credentials);
        self.files.insert(0, AuthFile { source: PathBuf::from("<explicit>"), entries, ..AuthFile::default() });
        self
    }

    /// Credentials for `repository` on `registry` (a reference's `registry` field, e.g.
    /// `docker.io`), and the file they came from.
    pub fn lookup(&self, registry: &str, repository: &str) -> Option<(&Credentials, &Path)> {
        let registry = normalize_key(registry);
        self.files.iter().find_map(|file| {
            let mut key = format!("{registry}/{repository}");
            loop {
                if let Some(creds) = file.entries.get(&key) {
                    return Some((creds, file.source.as_path()));
                }
                match key.rfind('/') {
                    Some(i) => key.truncate(i),
                    None => return None,
                }
            }
        })
    }
}

/// The auth file locations, highest priority first, from an environment lookup.
pub fn default_auth_paths(env: impl Fn(&str) -> Option<PathBuf>) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(p) = env("REGISTRY_AUTH_FILE").filter(|p| !p.as_os_str().is_empty()) {
        paths.push(p);
    }
    if let Some(dir) = env("XDG_RUNTIME_DIR").filter(|p| !p.as_os_str().is_empty()) {
        paths.push(dir.join("containers/auth.json"));
    }
    let home = env("HOME").filter(|p| !p.as_os_str().is_empty());
    if let Some(home) = &home {
        paths.push(home.join(".config/containers/auth.json"));
    }
    match env("DOCKER_CONFIG").filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => paths.push(dir.join("config.json")),
        None => {
            if let Some(home) = &home {
                paths.push(home.join(".docker/config.json"));
            }
        }
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn parses_auth_and_username_fields_and_key_forms() {
        let text = format!(
            r#"{{
              "auths": {{
                "https://index.docker.io/v1/": {{"auth": "{hub}"}},
                "https://quay.io": {{"auth": "{quay}"}},
                "host:5000": {{"username": "u", "password": "p:w"}},
                "http://plain.example/v2/": {{"auth": "{plain}"}},
                "quay.io/org": {{"auth": "{org}"}},
                "empty.example": {{}},
                "blank.example": {{"auth": ""}}
              }},
              "credHelpers": {{"gcr.io": "gcloud"}},
              "HttpHeaders": {{"User-Agent": "x"}}
            }}"#,
            hub = b64("hubuser:hub:pass"),
            quay = b64("q:qp"),
            plain = b64("pl:pp"),
            org = b64("o:op"),
        );
        let file = parse_auth_file(Path::new("/a.json"), &text).unwrap();
        let got: Vec<_> = file.entries.iter().map(|(k, c)| format!("{k}={}:{}", c.username, c.password)).collect();
        assert_eq!(
            got,
            [
                "docker.io=hubuser:hub:pass",
                "host:5000=u:p:w",
                "plain.example=pl:pp",
                "quay.io=q:qp",
                "quay.io/org=o:op",
            ]
        );
        assert_eq!(file.helper_registries, ["gcr.io"]);
        assert!(!file.has_creds_store);
    }

    #[test]
    fn rejects_bad_files_naming_them() {
        let err = parse_auth_file(Path::new("/x/auth.json"), "{not json").unwrap_err();
        assert!(err.to_string().starts_with("auth file /x/auth.json is not valid JSON"));
        let err = parse_auth_file(Path::new("/x/auth.json"), r#"{"auths": {"h.io": {"auth": "!!!"}}}"#).unwrap_err();
        assert!(err.to_string().contains("entry \"h.io\""), "{err}");
        let no_colon = format!(r#"{{"auths": {{"h.io": {{"auth": "{}"}}}}}}"#, b64("nocolon"));
        assert!(parse_auth_file(Path::new("/x"), &no_colon).is_err());
        let store_only = parse_auth_file(Path::new("/x"), r#"{"credsStore": "desktop"}"#).unwrap();
        assert!(store_only.has_creds_store && store_only.entries.is_empty());
    }

    #[test]
    fn normalizes_keys() {
        for (key, want) in [
            ("https://index.docker.io/v1/", "docker.io"),
            ("index.docker.io", "docker.io"),
            ("registry-1.docker.io", "docker.io"),
            ("docker.io", "docker.io"),
            ("https://host:5000", "host:5000"),
            ("http://host:5000/v2/", "host:5000"),
            ("quay.io/org/", "quay.io/org"),
        ] {
            assert_eq!(normalize_key(key), want, "{key}");
        }
    }

    #[test]
    fn first_file_wins_and_most_specific_key_within_a_file() {
        let first = parse_auth_file(
            Path::new("/first"),
            r#"{"auths": {"quay.io": {"username": "a", "password": "1"},
                          "quay.io/org": {"username": "b", "password": "2"}}}"#,
        )
        .unwrap();
        let second = parse_auth_file(
            Path::new("/second"),
            r#"{"auths": {"quay.io/org/app": {"username": "c", "password": "3"},
                          "docker.io": {"username": "d", "password": "4"}}}"#,
        )
        .unwrap();
        let store = AuthStore::from_files(vec![first, second]);
        let user =
            |reg: &str, repo: &str| store.lookup(reg, repo).map(|(c, p)| format!("{}@{}", c.username, p.display()));
        assert_eq!(user("quay.io", "org/app").as_deref(), Some("b@/first"));
        assert_eq!(user("quay.io", "other/app").as_deref(), Some("a@/first"));
        assert_eq!(user("docker.io", "library/busybox").as_deref(), Some("d@/second"));
        assert_eq!(user("ghcr.io", "x/y"), None);
        let store = store.with_credentials("ghcr.io", Credentials::new("e", "5"));
        assert_eq!(user_of(&store, "ghcr.io", "x/y"), Some("e".to_owned()));
    }

    fn user_of(store: &AuthStore, reg: &str, repo: &str) -> Option<String> {
        store.lookup(reg, repo).map(|(c, _)| c.username.clone())
    }

    #[test]
    fn default_paths_follow_podman_then_docker() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| PathBuf::from(v))
        };
        let all = default_auth_paths(env(&[
            ("REGISTRY_AUTH_FILE", "/custom.json"),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ("HOME", "/home/u"),
            ("DOCKER_CONFIG", "/dc"),
        ]));
        let all: Vec<_> = all.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            all,
            [
                "/custom.json",
                "/run/user/1000/containers/auth.json",
                "/home/u/.config/containers/auth.json",
                "/dc/config.json",
            ]
        );
        let home_only = default_auth_paths(env(&[("HOME", "/home/u")]));
        assert_eq!(
            home_only,
            [PathBuf::from("/home/u/.config/containers/auth.json"), PathBuf::from("/home/u/.docker/config.json"),]
        );
    }

    #[test]
    fn loader_skips_missing_files_and_reads_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json");
        std::fs::write(&a, format!(r#"{{"auths":{{"h.io":{{"auth":"{}"}}}}}}"#, b64("x:y"))).unwrap();
        let store = AuthStore::load_from(&[dir.path().join("missing.json"), a.clone()]).unwrap();
        let (creds, path) = store.lookup("h.io", "r").unwrap();
        assert_eq!((creds.username.as_str(), path), ("x", a.as_path()));
        assert!(format!("{creds:?}").contains("<redacted>"));
        assert_eq!(creds.basic_header(), format!("Basic {}", b64("x:y")));
    }
}
