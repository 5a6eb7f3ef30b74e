//! Which registries are spoken to over plain HTTP, or over HTTPS without certificate
//! checks: from the caller (flags, env) and from containers' `registries.conf`.
//!
//! Both `registries.conf` formats are read:
//!
//! ```toml
//! # v2
//! [[registry]]
//! location = "localhost:5000"
//! insecure = true
//!
//! # v1
//! [registries.insecure]
//! registries = ["localhost:5000"]
//! ```
//!
//! containers/image treats `insecure` as "plain HTTP or unverified TLS"; slipway uses
//! plain HTTP for these, which is what a local test registry needs. A location with a
//! namespace (`host/ns`) marks the whole host.

use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Registry transport settings. Entries are `host[:port]`; an entry without a port
/// matches the host on any port, and `*.example.com` matches its subdomains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Registries reached over plain HTTP.
    pub insecure: Vec<String>,
    /// Registries reached over HTTPS without verifying the certificate.
    pub skip_tls_verify: Vec<String>,
}

/// Why a registries.conf could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading registries config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("registries config {path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
}

#[derive(Deserialize)]
struct RawConf {
    #[serde(default)]
    registry: Vec<RawRegistry>,
    #[serde(default)]
    registries: Option<RawV1>,
}

#[derive(Deserialize)]
struct RawRegistry {
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    insecure: bool,
}

#[derive(Deserialize)]
struct RawV1 {
    #[serde(default)]
    insecure: Option<RawV1List>,
}

#[derive(Deserialize)]
struct RawV1List {
    #[serde(default)]
    registries: Vec<String>,
}

impl RegistryConfig {
    /// Everything over HTTPS with verified certificates.
    pub fn secure() -> Self {
        RegistryConfig::default()
    }

    /// Marks `registries` (`host[:port]`) as plain HTTP.
    pub fn with_insecure<I, S>(mut self, registries: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.insecure.extend(registries.into_iter().map(Into::into));
        self
    }

    /// Reads the system and user registries.conf (see [`default_registries_conf_paths`]).
    pub fn load() -> Result<Self, ConfigError> {
        let paths = default_registries_conf_paths(|n| std::env::var_os(n).map(PathBuf::from));
        RegistryConfig::load_from(&paths)
    }

    /// Reads and merges `paths`; files that do not exist are skipped.
    pub fn load_from(paths: &[PathBuf]) -> Result<Self, ConfigError> {
        let mut config = RegistryConfig::default();
        for path in paths {
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(ConfigError::Read { path: path.clone(), source: e });
                }
            };
            config.merge(RegistryConfig::parse_registries_conf(path, &text)?);
        }
        Ok(config)
    }

    /// Parses one registries.conf (v1 or v2). `path` is only used in errors.
    pub fn parse_registries_conf(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawConf = toml::from_str(text).map_err(|e| ConfigError::Toml {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        let mut insecure = Vec::new();
        for reg in raw.registry.into_iter().filter(|r| r.insecure) {
            if let Some(location) = reg.location.or(reg.prefix) {
                insecure.push(host_of_location(&location));
            }
        }
        if let Some(list) = raw.registries.and_then(|v1| v1.insecure) {
            insecure.extend(list.registries.iter().map(|l| host_of_location(l)));
        }
        Ok(RegistryConfig { insecure, skip_tls_verify: Vec::new() })
    }

    /// Adds the other config's entries to this one.
    pub fn merge(&mut self, other: RegistryConfig) {
        for entry in other.insecure {
            if !self.insecure.contains(&entry) {
                self.insecure.push(entry);
            }
        }
        for entry in other.skip_tls_verify {
            if !self.skip_tls_verify.contains(&entry) {
                self.skip_tls_verify.push(entry);
            }
        }
    }

    /// Whether `registry` (`host[:port]`) is spoken to over plain HTTP.
    pub fn is_insecure(&self, registry: &str) -> bool {
        self.insecure.iter().any(|e| host_matches(e, registry))
    }

    /// Whether `registry`'s certificate is not verified.
    pub fn skips_tls_verify(&self, registry: &str) -> bool {
        self.skip_tls_verify.iter().any(|e| host_matches(e, registry))
    }

    /// `http` or `https` for `registry`.
    pub fn scheme(&self, registry: &str) -> &'static str {
        if self.is_insecure(registry) { "http" } else { "https" }
    }
}

/// `host:5000/ns/repo` → `host:5000`; `http://host` → `host`.
fn host_of_location(location: &str) -> String {
    let location = location.strip_prefix("https://").or_else(|| location.strip_prefix("http://")).unwrap_or(location);
    location.split('/').next().unwrap_or(location).to_owned()
}

fn split_port(hostport: &str) -> (&str, Option<&str>) {
    if hostport.starts_with('[') {
        return match hostport.rsplit_once("]:") {
            Some((host, port)) => (&hostport[..host.len() + 1], Some(port)),
            None => (hostport, None),
        };
    }
    match hostport.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (hostport, None),
    }
}

fn host_matches(entry: &str, registry: &str) -> bool {
    // `*` is every registry (WERF_INSECURE_REGISTRY=1).
    if entry == "*" || entry.eq_ignore_ascii_case(registry) {
        return true;
    }
    let (entry_host, entry_port) = split_port(entry);
    let (host, port) = split_port(registry);
    if entry_port.is_some() && entry_port != port {
        return false;
    }
    match entry_host.strip_prefix("*.") {
        Some(suffix) => host.to_ascii_lowercase().ends_with(&format!(".{}", suffix.to_ascii_lowercase())),
        None => entry_host.eq_ignore_ascii_case(host),
    }
}

/// registries.conf locations: `$CONTAINERS_REGISTRIES_CONF` alone if set, else the
/// system file then the user's, merged.
pub fn default_registries_conf_paths(env: impl Fn(&str) -> Option<PathBuf>) -> Vec<PathBuf> {
    if let Some(path) = env("CONTAINERS_REGISTRIES_CONF").filter(|p| !p.as_os_str().is_empty()) {
        return vec![path];
    }
    let mut paths = vec![PathBuf::from("/etc/containers/registries.conf")];
    let config_home =
        env("XDG_CONFIG_HOME").filter(|p| !p.as_os_str().is_empty()).or_else(|| env("HOME").map(|h| h.join(".config")));
    if let Some(dir) = config_home {
        paths.push(dir.join("containers/registries.conf"));
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v2_and_v1() {
        let v2 = r#"
            unqualified-search-registries = ["docker.io"]
            [[registry]]
            location = "localhost:5000"
            insecure = true
            [[registry]]
            location = "quay.io"
            [[registry]]
            prefix = "example.com/foo"
            location = "mirror.local:8080/foo"
            insecure = true
            [[registry.mirror]]
            location = "other.mirror"
        "#;
        let c = RegistryConfig::parse_registries_conf(Path::new("/r.conf"), v2).unwrap();
        assert_eq!(c.insecure, ["localhost:5000", "mirror.local:8080"]);

        let v1 = r#"
            [registries.search]
            registries = ["docker.io"]
            [registries.insecure]
            registries = ["10.0.0.1:5000", "http://plain.example/ns"]
            [registries.block]
            registries = []
        "#;
        let c = RegistryConfig::parse_registries_conf(Path::new("/r.conf"), v1).unwrap();
        assert_eq!(c.insecure, ["10.0.0.1:5000", "plain.example"]);

        let empty = RegistryConfig::parse_registries_conf(Path::new("/r.conf"), "").unwrap();
        assert_eq!(empty, RegistryConfig::default());
    }

    #[test]
    fn invalid_toml_names_the_file() {
        let err =
            RegistryConfig::parse_registries_conf(Path::new("/etc/x.conf"), "[[registry]\n").unwrap_err().to_string();
        assert!(err.starts_with("registries config /etc/x.conf is not valid TOML"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn matches_hosts_ports_and_wildcards() {
        let c = RegistryConfig {
            insecure: vec!["localhost:5000".into(), "plain.io".into(), "*.test".into()],
            skip_tls_verify: vec!["[::1]:443".into()],
        };
        assert!(c.is_insecure("localhost:5000"));
        assert!(!c.is_insecure("localhost:5001"));
        assert!(!c.is_insecure("localhost"));
        assert!(c.is_insecure("plain.io"));
        assert!(c.is_insecure("plain.io:8443"));
        assert!(c.is_insecure("a.b.test:1"));
        assert!(!c.is_insecure("test"));
        assert!(!c.is_insecure("notplain.io"));
        assert!(c.skips_tls_verify("[::1]:443"));
        assert!(!c.skips_tls_verify("[::1]:444"));
        assert_eq!(c.scheme("plain.io"), "http");
        assert_eq!(c.scheme("quay.io"), "https");
    }

    #[test]
    fn loads_and_merges_files() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join("sys.conf");
        let user = dir.path().join("user.conf");
        std::fs::write(&sys, "[[registry]]\nlocation=\"a:1\"\ninsecure=true\n").unwrap();
        std::fs::write(&user, "[registries.insecure]\nregistries=[\"a:1\",\"b\"]\n").unwrap();
        let c = RegistryConfig::load_from(&[sys, dir.path().join("none"), user]).unwrap().with_insecure(["c:2"]);
        assert_eq!(c.insecure, ["a:1", "b", "c:2"]);
    }

    #[test]
    fn default_paths() {
        let paths = default_registries_conf_paths(|n| (n == "HOME").then(|| "/home/u".into()));
        assert_eq!(
            paths,
            [
                PathBuf::from("/etc/containers/registries.conf"),
                PathBuf::from("/home/u/.config/containers/registries.conf"),
            ]
        );
        let only = default_registries_conf_paths(|n| (n == "CONTAINERS_REGISTRIES_CONF").then(|| "/x.conf".into()));
        assert_eq!(only, [PathBuf::from("/x.conf")]);
    }
}
