//! The two halves of registry authentication that are pure text: the
//! `WWW-Authenticate` challenge a registry answers 401 with, and the JSON a token
//! service returns (distribution's token auth spec).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// How a registry wants to be authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Send `Authorization: Basic` with the user's credentials on every request.
    Basic { realm: Option<String> },
    /// Get a token from `realm` for `service` and `scope`, then send it as `Bearer`.
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
}

/// Parses one or more `WWW-Authenticate` header values. Bearer is preferred over
/// Basic when a registry offers both. `None` if no supported scheme is present.
pub fn parse_challenges<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
    let mut basic = None;
    for header in headers {
        for (scheme, params) in split_challenges(header) {
            let get = |name: &str| params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
            if scheme.eq_ignore_ascii_case("bearer") {
                if let Some(realm) = get("realm") {
                    return Some(Challenge::Bearer { realm, service: get("service"), scope: get("scope") });
                }
            } else if scheme.eq_ignore_ascii_case("basic") && basic.is_none() {
                basic = Some(Challenge::Basic { realm: get("realm") });
            }
        }
    }
    basic
}

type Params = Vec<(String, String)>;

/// RFC 7235: `scheme k=v, k="quoted, value", scheme2 k=v`.
fn split_challenges(header: &str) -> Vec<(String, Params)> {
    let mut out: Vec<(String, Params)> = Vec::new();
    let bytes = header.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < bytes.len() && (bytes[*i] == b' ' || bytes[*i] == b'\t' || bytes[*i] == b',') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while *i < bytes.len() && !b" \t,=\"".contains(&bytes[*i]) {
            *i += 1;
        }
        header[start..*i].to_owned()
    };
    loop {
        skip_ws(&mut i);
        if i >= bytes.len() {
            break;
        }
        let word = token(&mut i);
        if word.is_empty() {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
            j += 1;
        }
        if j < bytes.len() && bytes[j] == b'=' && !out.is_empty() {
            // A parameter of the current challenge.
            i = j + 1;
            while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
                i += 1;
            }
            let value = if i < bytes.len() && bytes[i] == b'"' {
                i += 1;
                let mut value = String::new();
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' && i + 1 < bytes.len() {
                        i += 1;
                    }
                    let ch = header[i..].chars().next().unwrap_or('\u{fffd}');
                    value.push(ch);
                    i += ch.len_utf8();
                }
                i += 1;
                value
            } else {
                token(&mut i)
            };
            if let Some((_, params)) = out.last_mut() {
                params.push((word, value));
            }
        } else {
            out.push((word, Vec::new()));
        }
    }
    out
}

/// A bearer token and when to stop using it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub token: String,
    /// Lifetime the service granted (60 s when it says nothing, as the spec says).
    pub expires_in: Duration,
}

#[derive(Deserialize)]
struct RawToken {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Parses a token service response: `token` or `access_token`, and `expires_in`.
pub fn parse_token_response(body: &str) -> Result<Token, String> {
    let raw: RawToken = serde_json::from_str(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let token = raw
        .token
        .filter(|t| !t.is_empty())
        .or(raw.access_token.filter(|t| !t.is_empty()))
        .ok_or("response has neither \"token\" nor \"access_token\"")?;
    Ok(Token { token, expires_in: Duration::from_secs(raw.expires_in.unwrap_or(60).max(1)) })
}

/// Bearer tokens per (registry, scope), dropped shortly before they expire.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    tokens: HashMap<(String, String), (String, Instant)>,
}

/// Tokens are refreshed this long before expiry, so a request that starts with a
/// token still has it when the registry checks it.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

impl TokenCache {
    pub(crate) fn get(&self, registry: &str, scope: &str, now: Instant) -> Option<String> {
        let (token, until) = self.tokens.get(&(registry.to_owned(), scope.to_owned()))?;
        (now < *until).then(|| token.clone())
    }

    pub(crate) fn insert(&mut self, registry: &str, scope: &str, token: &Token, now: Instant) {
        let life = token.expires_in.saturating_sub(EXPIRY_MARGIN).max(token.expires_in / 2);
        self.tokens.insert((registry.to_owned(), scope.to_owned()), (token.token.clone(), now + life));
    }

    pub(crate) fn remove(&mut self, registry: &str, scope: &str) {
        self.tokens.remove(&(registry.to_owned(), scope.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Challenge {
        Challenge::Bearer { realm: realm.into(), service: service.map(Into::into), scope: scope.map(Into::into) }
    }

    #[test]
    fn parses_www_authenticate() {
        let table: Vec<(Vec<&str>, Option<Challenge>)> = vec![
            (
                vec![
                    r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
                ],
                Some(bearer(
                    "https://auth.docker.io/token",
                    Some("registry.docker.io"),
                    Some("repository:library/busybox:pull"),
                )),
            ),
            (
                vec![r#"Bearer realm="https://r.io/token", scope="repository:a/b:pull,push", service="r.io""#],
                Some(bearer("https://r.io/token", Some("r.io"), Some("repository:a/b:pull,push"))),
            ),
            (vec![r#"bearer Realm=https://r.io/t,Service=svc"#], Some(bearer("https://r.io/t", Some("svc"), None))),
            (vec![r#"Basic realm="scratch""#], Some(Challenge::Basic { realm: Some("scratch".into()) })),
            (vec!["Basic"], Some(Challenge::Basic { realm: None })),
            (
                vec![r#"Basic realm="a, \"b\"", Bearer realm="https://t",service="s""#],
                Some(bearer("https://t", Some("s"), None)),
            ),
            (vec![r#"Basic realm="x""#, r#"Bearer realm="https://t""#], Some(bearer("https://t", None, None))),
            (vec![r#"Negotiate abc"#], None),
            (vec![r#"Bearer service="no-realm""#], None),
            (vec![""], None),
        ];
        for (headers, want) in table {
            assert_eq!(parse_challenges(headers.iter().copied()), want, "{headers:?}");
        }
    }

    #[test]
    fn parses_token_responses() {
        let t = parse_token_response(r#"{"token":"abc","expires_in":300,"issued_at":"2024-01-01T00:00:00Z"}"#).unwrap();
        assert_eq!(t, Token { token: "abc".into(), expires_in: Duration::from_secs(300) });
        let t = parse_token_response(r#"{"access_token":"xyz"}"#).unwrap();
        assert_eq!(t, Token { token: "xyz".into(), expires_in: Duration::from_secs(60) });
        let t = parse_token_response(r#"{"token":"","access_token":"xyz"}"#).unwrap();
        assert_eq!(t.token, "xyz");
        assert!(parse_token_response(r#"{"expires_in":1}"#).unwrap_err().contains("neither"));
        assert!(parse_token_response("<html>").unwrap_err().starts_with("invalid JSON"));
    }

    #[test]
    fn token_cache_expires() {
        let mut cache = TokenCache::default();
        let now = Instant::now();
        let token = Token { token: "t".into(), expires_in: Duration::from_secs(60) };
        cache.insert("r.io", "repository:a:pull", &token, now);
        assert_eq!(cache.get("r.io", "repository:a:pull", now).as_deref(), Some("t"));
        assert_eq!(cache.get("r.io", "repository:b:pull", now), None);
        assert_eq!(cache.get("r.io", "repository:a:pull", now + Duration::from_secs(49)).as_deref(), Some("t"));
        assert_eq!(cache.get("r.io", "repository:a:pull", now + Duration::from_secs(51)), None);
        cache.remove("r.io", "repository:a:pull");
        assert_eq!(cache.get("r.io", "repository:a:pull", now), None);
    }
}
