//! Tag listing, page by page through `Link: <…>; rel="next"`.

use std::collections::HashSet;

use serde::Deserialize;
use ureq::http::Method;

use super::client::{Body, Client, Scope, header, read_small, resolve_url};
use super::error::RegistryError;
use crate::reference::Reference;

/// A registry that keeps sending "next" after this many pages is broken.
const MAX_PAGES: usize = 100_000;

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
    /// All tags of the reference's repository (empty if the repository does not exist).
    pub fn list_tags(&self, reference: &Reference) -> Result<Vec<String>, RegistryError> {
        self.list_tags_paged(reference, None)
    }

    /// Like [`Client::list_tags`], asking for `page_size` tags per request (`?n=`).
    pub fn list_tags_paged(&self, reference: &Reference, page_size: Option<u32>) -> Result<Vec<String>, RegistryError> {
        let mut url = self.url(reference, &format!("{}/tags/list", reference.repository));
        if let Some(n) = page_size {
            url.push_str(&format!("?n={n}"));
        }
        let mut tags = Vec::new();
        let mut seen = HashSet::new();
        for page in 0..MAX_PAGES {
            let req = self.request(
                reference,
                Method::GET,
                url.clone(),
                Scope::pull(&reference.repository),
                format!("listing tags of {}", reference.name()),
            );
            let mut response = self.send(&req, Body::Empty)?;
            match response.status().as_u16() {
                200 => {}
                404 if page == 0 => return Ok(Vec::new()),
                _ => return Err(self.error_for(&req, response)),
            }
            let next = header(&response, "link").and_then(|l| parse_link_next(&l));
            let body = read_small(&mut response);
            let parsed: TagPage = serde_json::from_str(&body)
                .map_err(|e| self.invalid_response(&req, format!("tag list is not valid JSON: {e}")))?;
            tags.extend(parsed.tags.unwrap_or_default());
            match next {
                Some(next) => {
                    let next = resolve_url(&req.url, &next);
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
            action: format!("listing tags of {}", reference.name()),
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
}
