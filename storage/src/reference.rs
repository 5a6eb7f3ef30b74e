//! Image references: `[registry/]repository[:tag][@digest]`, parsed and normalized the
//! way docker and podman do it, so a name the user typed for `docker pull` means the
//! same image here.
//!
//! Normalization (docker's `ParseNormalizedNamed`):
//!
//! ```text
//! busybox                      → docker.io/library/busybox:latest
//! user/app:1.0                 → docker.io/user/app:1.0
//! index.docker.io/user/app     → docker.io/user/app:latest
//! localhost/app                → localhost/app:latest
//! host:5000/a/b@sha256:<hex>   → host:5000/a/b@sha256:<hex>   (no tag)
//! ```
//!
//! The first path component is a registry when it contains `.` or `:`, is `localhost`,
//! or contains an uppercase letter; otherwise the image lives on Docker Hub.

use std::fmt;
use std::str::FromStr;

/// The registry that a name without a registry component refers to.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves Docker Hub's registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// Tag used when a reference names neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A fully-qualified image reference.
///
/// Invariant after [`Reference::parse`]: `registry` and `repository` are set, and at
/// least one of `tag` and `digest` is set (`tag` defaults to `latest` when neither was
/// given). Fields are public for convenience; use the `with_*` methods to derive new
/// references so that values stay validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `host[:port]`, e.g. `docker.io`, `quay.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Path inside the registry, e.g. `library/busybox`.
    pub repository: String,
    pub tag: Option<String>,
    /// `algorithm:hex`, e.g. `sha256:…`.
    pub digest: Option<String>,
}

/// Why a string is not a valid image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("empty image reference")]
    Empty,
    #[error("invalid image reference \"{reference}\": repository name must be lowercase")]
    Uppercase { reference: String },
    #[error(
        "invalid image reference \"{reference}\": path component \"{component}\" must be \
         lowercase letters and digits separated by '.', '_', '__' or '-'"
    )]
    InvalidRepository { reference: String, component: String },
    #[error("invalid image reference \"{reference}\": invalid registry \"{registry}\"")]
    InvalidRegistry { reference: String, registry: String },
    #[error(
        "invalid image reference \"{reference}\": invalid tag \"{tag}\" (up to 128 letters, \
         digits, '_', '.' and '-', not starting with '.' or '-')"
    )]
    InvalidTag { reference: String, tag: String },
    #[error("invalid image reference \"{reference}\": invalid digest \"{digest}\": {reason}")]
    InvalidDigest { reference: String, digest: String, reason: &'static str },
    #[error("invalid image reference \"{reference}\": name is {len} characters, at most 255 allowed")]
    TooLong { reference: String, len: usize },
}

impl Reference {
    /// Parses and normalizes a reference as `docker pull` would.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                validate_digest(digest).map_err(|reason| ReferenceError::InvalidDigest {
                    reference: input.to_owned(),
                    digest: digest.to_owned(),
                    reason,
                })?;
                (rest, Some(digest.to_owned()))
            }
            None => (input, None),
        };
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
                let tag = &rest[colon + 1..];
                if !is_valid_tag(tag) {
                    return Err(ReferenceError::InvalidTag { reference: input.to_owned(), tag: tag.to_owned() });
                }
                (&rest[..colon], Some(tag.to_owned()))
            }
            _ => (rest, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::InvalidRepository { reference: input.to_owned(), component: String::new() });
        }
        if name.len() > MAX_NAME_LEN {
            return Err(ReferenceError::TooLong { reference: input.to_owned(), len: name.len() });
        }
        let (registry, remainder) = split_registry(name);
        if !is_valid_registry(registry) {
            return Err(ReferenceError::InvalidRegistry { reference: input.to_owned(), registry: registry.to_owned() });
        }
        validate_repository(input, remainder)?;
        let (registry, repository) = if registry == DOCKER_HUB || registry == "index.docker.io" {
            let repository =
                if remainder.contains('/') { remainder.to_owned() } else { format!("library/{remainder}") };
            (DOCKER_HUB.to_owned(), repository)
        } else {
            (registry.to_owned(), remainder.to_owned())
        };
        let tag = match (&tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            _ => tag,
        };
        Ok(Reference { registry, repository, tag, digest })
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What goes after `/manifests/` in the registry API: the digest if pinned, else the
    /// tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or(DEFAULT_TAG)
    }

    /// The host that serves this registry's API (Docker Hub's differs from its name).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB { DOCKER_HUB_API } else { &self.registry }
    }

    /// The same repository with `tag` and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !is_valid_tag(tag) {
            return Err(ReferenceError::InvalidTag {
                reference: format!("{}:{tag}", self.name()),
                tag: tag.to_owned(),
            });
        }
        Ok(Reference { tag: Some(tag.to_owned()), digest: None, ..self.clone() })
    }

    /// The same repository pinned to `digest`, without a tag.
    pub fn with_digest(&self, digest: &str) -> Result<Self, ReferenceError> {
        validate_digest(digest).map_err(|reason| ReferenceError::InvalidDigest {
            reference: format!("{}@{digest}", self.name()),
            digest: digest.to_owned(),
            reason,
        })?;
        Ok(Reference { tag: None, digest: Some(digest.to_owned()), ..self.clone() })
    }

    /// Another repository on the same registry, tagged `latest` (e.g. a mount source).
    pub fn with_repository(&self, repository: &str) -> Result<Self, ReferenceError> {
        let shown = format!("{}/{repository}", self.registry);
        if shown.len() > MAX_NAME_LEN {
            return Err(ReferenceError::TooLong { len: shown.len(), reference: shown });
        }
        validate_repository(&shown, repository)?;
        Ok(Reference {
            registry: self.registry.clone(),
            repository: repository.to_owned(),
            tag: Some(DEFAULT_TAG.to_owned()),
            digest: None,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Docker's rule for "is the first component a registry".
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == "localhost" || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    }
}

fn validate_repository(reference: &str, repository: &str) -> Result<(), ReferenceError> {
    for component in repository.split('/') {
        if !is_valid_path_component(component) {
            if component.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(ReferenceError::Uppercase { reference: reference.to_owned() });
            }
            return Err(ReferenceError::InvalidRepository {
                reference: reference.to_owned(),
                component: component.to_owned(),
            });
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `host[:port]`: DNS labels separated by dots, or a bracketed IPv6 address.
fn is_valid_registry(registry: &str) -> bool {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

/// `[\w][\w.-]{0,127}`
pub fn is_valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    match tag.as_bytes() {
        [] => false,
        [first, rest @ ..] => {
            tag.len() <= MAX_TAG_LEN && word(*first) && rest.iter().all(|&b| word(b) || b == b'.' || b == b'-')
        }
    }
}

/// Checks `algorithm:hex` (see [`Digest::validate`]): sha256 and sha512, the
/// algorithms registries serve and this crate can verify.
pub fn validate_digest(digest: &str) -> Result<(), &'static str> {
    crate::digest::Digest::validate(digest).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalizes_like_docker() {
        let table: &[(&str, &str)] = &[
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("user/app", "docker.io/user/app:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            ("index.docker.io/user/app:v1", "docker.io/user/app:v1"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app:dev", "localhost:5000/app:dev"),
            ("127.0.0.1:5055/base/busybox", "127.0.0.1:5055/base/busybox:latest"),
            ("quay.io/a/b/c:tag", "quay.io/a/b/c:tag"),
            ("host:5000/a/b:tag", "host:5000/a/b:tag"),
            ("Registry/app", "Registry/app:latest"),
            ("[::1]:5000/app", "[::1]:5000/app:latest"),
            ("sub-1.example.com/x/y_z", "sub-1.example.com/x/y_z:latest"),
            ("foo/a__b.c-d", "docker.io/foo/a__b.c-d:latest"),
            ("localhost:5000", "docker.io/library/localhost:5000"),
        ];
        for (input, want) in table {
            let got = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.to_string(), *want, "input {input}");
        }
    }

    #[test]
    fn digests_without_and_with_tag() {
        let r = Reference::parse(&format!("host:5000/a/b@{D}")).unwrap();
        assert_eq!(r.registry, "host:5000");
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.to_string(), format!("host:5000/a/b@{D}"));

        let r = Reference::parse(&format!("busybox:1@{D}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox:1@{D}"));
    }

    #[test]
    fn rejects_bad_references() {
        let long = format!("a/{}", "b".repeat(260));
        let table: &[(&str, &str)] = &[
            ("", "empty image reference"),
            ("Busybox", "repository name must be lowercase"),
            ("quay.io/Org/app", "repository name must be lowercase"),
            ("foo/-bar", "path component \"-bar\""),
            ("foo//bar", "path component \"\""),
            ("foo/bar.", "path component \"bar.\""),
            ("foo/a___b", "path component \"a___b\""),
            ("foo/a..b", "path component \"a..b\""),
            ("busybox:", "invalid tag \"\""),
            ("busybox:-x", "invalid tag \"-x\""),
            ("busybox:a+b", "invalid tag \"a+b\""),
            ("busybox@sha256:abc", "sha256 digests have 64 hex digits"),
            ("busybox@md5:abc", "unsupported algorithm"),
            ("busybox@sha256", "expected algorithm:hex"),
            ("-host.io/app", "invalid registry \"-host.io\""),
            ("host.io:port/app", "invalid registry \"host.io:port\""),
            ("host.io:/app", "invalid registry \"host.io:\""),
            (":tag", "path component \"\""),
            (&long, "at most 255 allowed"),
        ];
        for (input, want) in table {
            let err = Reference::parse(input).expect_err(input).to_string();
            assert!(err.contains(want), "{input}: got {err:?}, want {want:?}");
        }
        let upper_digest = format!("busybox@{}", D.to_uppercase().replace("SHA256", "sha256"));
        assert!(Reference::parse(&upper_digest).unwrap_err().to_string().contains("lowercase hex"));
        let tag = "t".repeat(129);
        assert!(Reference::parse(&format!("busybox:{tag}")).is_err());
        assert!(Reference::parse(&format!("busybox:{}", &tag[1..])).is_ok());
    }

    #[test]
    fn derived_references() {
        let r = Reference::parse("registry.example.com/app/backend:v1").unwrap();
        assert_eq!(r.name(), "registry.example.com/app/backend");
        assert_eq!(r.api_host(), "registry.example.com");
        let t = r.with_tag("stage-123").unwrap();
        assert_eq!(t.to_string(), "registry.example.com/app/backend:stage-123");
        let d = t.with_digest(D).unwrap();
        assert_eq!(d.to_string(), format!("registry.example.com/app/backend@{D}"));
        let o = r.with_repository("app/cache").unwrap();
        assert_eq!(o.to_string(), "registry.example.com/app/cache:latest");
        assert!(r.with_tag("bad tag").is_err());
        assert!(r.with_digest("sha256:zz").is_err());
        assert!(r.with_repository("App").is_err());
        assert_eq!(Reference::parse("busybox").unwrap().api_host(), DOCKER_HUB_API);
        let parsed: Reference = "busybox".parse().unwrap();
        assert_eq!(parsed.manifest_reference(), "latest");
    }
}
