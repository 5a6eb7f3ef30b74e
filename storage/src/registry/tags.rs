//! Tag listing, page by page through `Link: <…>; rel="next"`.
//!
//! Every request asks for a page size (`?n=`): many registries (Docker Hub, GitLab,
//! Harbor, ECR) cut an unpaginated list short or refuse it, and a werf repository holds
//! a tag per stage. A `next` link without `n=` gets it added. The whole list is bounded
//! ([`MAX_TAGS`]), as is each page's body.

use std::collections::HashSet;

use serde::Deserialize;
use ureq::http::Method;

use super::client::{Body, Client, Scope, append_query, header, resolve_url};
use super::error::RegistryError;
use crate::reference::Reference;

/// Tags asked for per request (`?n=`).
pub const DEFAULT_TAG_PAGE: u32 = 1000;

/// The most tags one repository may list; more is refused as broken or hostile.
pub const MAX_TAGS: usize = 1_000_000;

/// A registry that keeps sending "next" after this many pages is broken (pages may be
/// shorter than asked for).
const MAX_PAGES: usize = 100_000;

/// The largest page body read: `n` tags of at most 128 characters, quoted, with room.
fn page_body_limit(n: u32) -> u64 {
    64 * 1024 + u64::from(n) * 160
}

/// `url` with `n=<page>` unless it already asks for a page size.
fn with_page_size(url: &str, n: u32) -> String {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    if query.split('&').any(|kv| kv.starts_with("n=")) {
        url.to_owned()
    } else {
        append_query(url, "n", &n.to_string())
    }
}

#[derive(Deserialize)]
struct TagPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The target of the `rel="next"` link in a `Link` header value, if any.
pub fn parse_link_next(value: &str) -> Option<String> {
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        let params_end = rest[close..].find('<').map(|i| close + i).unwrap_or(rest.len());
        let params = &rest[close + 1..params_end];
        let is_next = params.split(';').any(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_end_matches(',')
                    .trim()
                    .trim_matches('"')
                    .split_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.to_owned());
        }
        rest = &rest[params_end..];
    }
    None
}

impl Client {
    /// All tags of the reference's repository (empty if the repository does not exist),
    /// [`DEFAULT_TAG_PAGE`] per request.
    pub fn list_tags(&self, reference: &Reference) -> Result<Vec<String>, RegistryError> {
        self.list_tags_paged(reference, DEFAULT_TAG_PAGE)
    }

    /// Like [`Client::list_tags`], asking for `page_size` tags per request (`?n=`).
    pub fn list_tags_paged(&self, reference: &Reference, page_size: u32) -> Result<Vec<String>, RegistryError> {
        let page_size = page_size.max(1);
        let action = format!("listing tags of {}", reference.name());
        let mut url = with_page_size(&self.url(reference, &format!("{}/tags/list", reference.repository)), page_size);
        let mut tags = Vec::new();
        let mut seen = HashSet::new();
        for page in 0..MAX_PAGES {
            let req =
                self.request(reference, Method::GET, url.clone(), Scope::pull(&reference.repository), action.clone());
            let response = self.send(&req, Body::Empty)?;
            match response.status().as_u16() {
                200 => {}
                404 if page == 0 => return Ok(Vec::new()),
                _ => return Err(self.error_for(&req, response)),
            }
            let next = header(&response, "link").and_then(|l| parse_link_next(&l));
            let limit = page_body_limit(page_size);
            let body = match self.read_limited(&req, response, limit) {
                Ok(Ok(body)) => body,
                Ok(Err(_)) => {
                    return Err(self.invalid_response(
                        &req,
                        format!("a page of at most {page_size} tags is larger than {limit} bytes"),
                    ));
                }
                Err((err, _)) => return Err(err),
            };
            let parsed: TagPage = serde_json::from_slice(&body)
                .map_err(|e| self.invalid_response(&req, format!("tag list is not valid JSON: {e}")))?;
            tags.extend(parsed.tags.unwrap_or_default());
            if tags.len() > MAX_TAGS {
                return Err(self.invalid_response(
                    &req,
                    format!("more than {MAX_TAGS} tags in {}: refusing to list them all", reference.name()),
                ));
            }
            match next {
                Some(next) => {
                    let next = with_page_size(&resolve_url(&req.url, &next), page_size);
                    if !seen.insert(next.clone()) {
                        return Err(self.invalid_response(&req, format!("tag pagination loops at {next}")));
                    }
                    url = next;
                }
                None => return Ok(tags),
            }
        }
        Err(RegistryError::InvalidResponse {
            registry: reference.registry.clone(),
            action,
            detail: format!("more than {MAX_PAGES} pages"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_link_headers() {
        let table: &[(&str, Option<&str>)] = &[
            (r#"</v2/a/tags/list?last=b&n=2>; rel="next""#, Some("/v2/a/tags/list?last=b&n=2")),
            (r#"<https://r/v2/a/tags/list?last=b>;rel=next"#, Some("https://r/v2/a/tags/list?last=b")),
            (r#"</p1>; rel="prev", </p3>; rel="next""#, Some("/p3")),
            (r#"</p3>; title="x"; rel="first next""#, Some("/p3")),
            (r#"</p1>; rel="prev""#, None),
            ("", None),
            ("garbage", None),
            ("<unclosed; rel=next", None),
        ];
        for (value, want) in table {
            assert_eq!(parse_link_next(value).as_deref(), *want, "{value}");
        }
    }

    #[test]
    fn every_tag_request_carries_a_page_size() {
        assert_eq!(with_page_size("http://r/v2/a/tags/list", 1000), "http://r/v2/a/tags/list?n=1000");
        assert_eq!(with_page_size("http://r/v2/a/tags/list?last=x", 5), "http://r/v2/a/tags/list?last=x&n=5");
        assert_eq!(with_page_size("http://r/v2/a/tags/list?last=x&n=7", 5), "http://r/v2/a/tags/list?last=x&n=7");
    }
}
