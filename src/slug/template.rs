//! Export tag templates: `--tag registry.example.com/app/%image%:%image_content_based_tag%`.
//!
//! werf runs the template through Go's text/template with `%` as both delimiters and the
//! four placeholders as functions; in practice a template is literal text and
//! placeholders, which is what this accepts (spaces inside a placeholder are allowed, as
//! Go allows them). A template is checked once when parsed (placeholders) and again per
//! image when rendered (the result must be an image reference that can be pushed to).

use slipway_storage::reference::{self, Reference, ReferenceError};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// werf's content-based tag is a 56-hex digest, `-` and a 13-digit timestamp: 70
/// characters. [`validate_all`] renders with a stub of that length, as werf does.
pub(super) const CONTENT_BASED_TAG_STUB: &str =
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

/// Why a tag template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("empty tag template")]
    Empty,
    #[error("tag template {template:?}: the '%' at byte {offset} opens a placeholder that is never closed")]
    Unclosed { template: String, offset: usize },
    #[error(
        "tag template {template:?}: unknown placeholder %{name}% \
         (known: %image%, %image_slug%, %image_safe_slug%, %image_content_based_tag%)"
    )]
    UnknownPlaceholder { template: String, name: String },
    #[error("tag template {template:?} renders {reference:?} for image {image:?}: {reason}")]
    InvalidReference { template: String, image: String, reference: String, reason: Box<ReferenceError> },
    #[error("tag template {template:?} renders {reference:?} for image {image:?}: an export tag cannot be a digest")]
    Digest { template: String, image: String, reference: String },
    #[error(
        "tag template {template:?} renders {reference:?} for image {image:?}, which names no registry: \
         images are exported to a registry, so name it (index.docker.io/… for Docker Hub)"
    )]
    NoRegistry { template: String, image: String, reference: String },
    #[error(
        "tag template {template:?} has no image placeholder but {images} images are exported: \
         they would collide on one tag"
    )]
    NoImagePlaceholder { template: String, images: usize },
    #[error(
        "images {first:?} (tag template {first_template:?}) and {second:?} (tag template {second_template:?}) \
         would both be exported as {reference:?}"
    )]
    Collision { reference: String, first: String, first_template: String, second: String, second_template: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placeholder {
    /// `%image%`: the image name as written in werf.yaml.
    Image,
    /// `%image_slug%`: [`super::slug`] of the name.
    ImageSlug,
    /// `%image_safe_slug%`: [`super::docker_tag_slug`] of the name.
    ImageSafeSlug,
    /// `%image_content_based_tag%`: the image's tag in the stages repo.
    ContentBasedTag,
}

impl Placeholder {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "image" => Placeholder::Image,
            "image_slug" => Placeholder::ImageSlug,
            "image_safe_slug" => Placeholder::ImageSafeSlug,
            "image_content_based_tag" => Placeholder::ContentBasedTag,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Placeholder(Placeholder),
}

/// A parsed `--tag` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagTemplate {
    source: String,
    parts: Vec<Part>,
}

impl TagTemplate {
    /// Splits `template` into text and placeholders; refuses an empty template, a `%`
    /// without its closing `%`, and unknown placeholder names.
    pub fn parse(template: &str) -> Result<Self, TagError> {
        if template.is_empty() {
            return Err(TagError::Empty);
        }
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('%') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let Some(close) = after.find('%') else {
                let offset = template.len() - rest.len() + open;
                return Err(TagError::Unclosed { template: template.to_owned(), offset });
            };
            let name = after[..close].trim();
            let placeholder = Placeholder::from_name(name)
                .ok_or_else(|| TagError::UnknownPlaceholder { template: template.to_owned(), name: name.to_owned() })?;
            parts.push(Part::Placeholder(placeholder));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(TagTemplate { source: template.to_owned(), parts })
    }

    #[cfg(test)]
    /// The template as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the image name shows in the result (`%image%`, `%image_slug%` or
    /// `%image_safe_slug%`), which it must when more than one image is exported.
    pub fn has_image_placeholder(&self) -> bool {
        self.parts.iter().any(|p| {
            matches!(p, Part::Placeholder(Placeholder::Image | Placeholder::ImageSlug | Placeholder::ImageSafeSlug))
        })
    }

    /// The template with its placeholders replaced, unchecked.
    pub fn expand(&self, image: &str, content_based_tag: &str) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Placeholder(Placeholder::Image) => out.push_str(image),
                Part::Placeholder(Placeholder::ImageSlug) => out.push_str(&super::slug(image)),
                Part::Placeholder(Placeholder::ImageSafeSlug) => out.push_str(&super::docker_tag_slug(image)),
                Part::Placeholder(Placeholder::ContentBasedTag) => out.push_str(content_based_tag),
            }
        }
        out
    }

    /// The reference `image` is exported as: `[host[:port]/]path[:tag]`, with the
    /// registry named (werf refuses to fall back to Docker Hub) and no digest.
    pub fn render(&self, image: &str, content_based_tag: &str) -> Result<String, TagError> {
        let out = self.expand(image, content_based_tag);
        let parsed = Reference::parse(&out).map_err(|reason| TagError::InvalidReference {
            template: self.source.clone(),
            image: image.to_owned(),
            reference: out.clone(),
            reason: Box::new(reason),
        })?;
        if parsed.digest.is_some() {
            return Err(TagError::Digest { template: self.source.clone(), image: image.to_owned(), reference: out });
        }
        if parsed.registry == reference::DOCKER_HUB && !names_docker_hub(&out) {
            return Err(TagError::NoRegistry {
                template: self.source.clone(),
                image: image.to_owned(),
                reference: out,
            });
        }
        Ok(out)
    }
}

/// Whether `rendered` spells out Docker Hub rather than landing there by default.
fn names_docker_hub(rendered: &str) -> bool {
    rendered.starts_with("docker.io/") || rendered.starts_with("index.docker.io/")
}

impl FromStr for TagTemplate {
    type Err = TagError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TagTemplate::parse(s)
    }
}

impl fmt::Display for TagTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Every `(image, reference)` to export, grouped by image in the order given: each image
/// `(name, content-based tag)` through each template.
///
/// Refuses, before rendering anything, a template without an image placeholder when
/// more than one image is exported; then refuses a rendered reference that is invalid or
/// that two different images would share. The same image rendered to the same reference
/// by two templates is listed once.
pub fn render_all(templates: &[TagTemplate], images: &[(&str, &str)]) -> Result<Vec<(String, String)>, TagError> {
    if images.len() > 1
        && let Some(t) = templates.iter().find(|t| !t.has_image_placeholder())
    {
        return Err(TagError::NoImagePlaceholder { template: t.source.clone(), images: images.len() });
    }
    // reference → (image, template) that claimed it first
    let mut owners: HashMap<String, (&str, &str)> = HashMap::new();
    let mut out = Vec::new();
    for &(image, content_based_tag) in images {
        for template in templates {
            let rendered = template.render(image, content_based_tag)?;
            match owners.get(rendered.as_str()) {
                Some(&(first, _)) if first == image => {}
                Some(&(first, first_template)) => {
                    return Err(TagError::Collision {
                        reference: rendered,
                        first: first.to_owned(),
                        first_template: first_template.to_owned(),
                        second: image.to_owned(),
                        second_template: template.source.clone(),
                    });
                }
                None => {
                    owners.insert(rendered.clone(), (image, &template.source));
                    out.push((image.to_owned(), rendered));
                }
            }
        }
    }
    Ok(out)
}

/// The checks of [`render_all`] before anything is built, when content-based tags are not
/// known yet: each image is rendered with a stand-in tag of the real one's length, as
/// werf does when it reads `--tag`.
pub fn validate_all(templates: &[TagTemplate], images: &[&str]) -> Result<(), TagError> {
    let stubbed: Vec<(&str, &str)> = images.iter().map(|&name| (name, CONTENT_BASED_TAG_STUB)).collect();
    render_all(templates, &stubbed).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTENT: &str = "1b77754d35b0a3e603731828ee6f2400c4f937382874db2566c616bb-1624991915332";

    fn template(s: &str) -> TagTemplate {
        TagTemplate::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn stub_has_the_length_of_a_content_based_tag() {
        assert_eq!(CONTENT_BASED_TAG_STUB.len(), CONTENT.len());
        assert!(CONTENT_BASED_TAG_STUB.bytes().all(|b| b == b'x'));
    }

    #[test]
    fn renders() {
        let cases: &[(&str, &str, String)] = &[
            (
                "registry.example.com/app/%image%:%image_content_based_tag%",
                "backend",
                format!("registry.example.com/app/backend:{CONTENT}"),
            ),
            ("localhost:5000/app:%image%-latest", "backend", "localhost:5000/app:backend-latest".into()),
            ("reg.io/app/%image_slug%:v1", "My Backend", "reg.io/app/my-backend:v1".into()),
            ("reg.io/app:%image_safe_slug%", "Backend", "reg.io/app:Backend".into()),
            ("reg.io/app:%image_safe_slug%", "da/ta", "reg.io/app:da-ta-afa96f8".into()),
            ("reg.io/app/%image%", "backend", "reg.io/app/backend".into()),
            ("reg.io/%image%/%image%:%image%", "a", "reg.io/a/a:a".into()),
            ("reg.io/app:% image %", "backend", "reg.io/app:backend".into()),
            ("index.docker.io/user/%image%:1", "backend", "index.docker.io/user/backend:1".into()),
            ("docker.io/user/%image%:1", "backend", "docker.io/user/backend:1".into()),
            ("[::1]:5000/app:%image%", "backend", "[::1]:5000/app:backend".into()),
        ];
        for (t, image, want) in cases {
            assert_eq!(template(t).render(image, CONTENT).as_ref(), Ok(want), "{t:?} with {image:?}");
        }
    }

    #[test]
    fn knows_whether_the_image_shows() {
        let cases: &[(&str, bool)] = &[
            ("reg.io/%image%:1", true),
            ("reg.io/app:%image_slug%", true),
            ("reg.io/app:%image_safe_slug%", true),
            ("reg.io/app:%image_content_based_tag%", false),
            ("reg.io/app:latest", false),
        ];
        for (t, want) in cases {
            assert_eq!(template(t).has_image_placeholder(), *want, "{t:?}");
        }
    }

    #[test]
    fn refuses_bad_templates() {
        let cases: &[(&str, &str)] = &[
            ("", "empty tag template"),
            (
                "reg.io/app:%image",
                "tag template \"reg.io/app:%image\": the '%' at byte 11 opens a placeholder that is never closed",
            ),
            (
                "reg.io/%image%:50%",
                "tag template \"reg.io/%image%:50%\": the '%' at byte 17 opens a placeholder that is never closed",
            ),
            (
                "reg.io/%name%:1",
                "tag template \"reg.io/%name%:1\": unknown placeholder %name% (known: %image%, %image_slug%, %image_safe_slug%, %image_content_based_tag%)",
            ),
            (
                "reg.io/app:%%",
                "tag template \"reg.io/app:%%\": unknown placeholder %% (known: %image%, %image_slug%, %image_safe_slug%, %image_content_based_tag%)",
            ),
            (
                "reg.io/app:%Image%",
                "tag template \"reg.io/app:%Image%\": unknown placeholder %Image% (known: %image%, %image_slug%, %image_safe_slug%, %image_content_based_tag%)",
            ),
        ];
        for (t, want) in cases {
            let err = TagTemplate::parse(t).expect_err(t);
            assert_eq!(err.to_string(), *want, "{t:?}");
        }
    }

    #[test]
    fn refuses_bad_references() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "reg.io/app/%image%:1",
                "Backend",
                "tag template \"reg.io/app/%image%:1\" renders \"reg.io/app/Backend:1\" for image \"Backend\": \
                 invalid image reference \"reg.io/app/Backend:1\": repository name must be lowercase",
            ),
            (
                "reg.io/app:%image%",
                "-x",
                "tag template \"reg.io/app:%image%\" renders \"reg.io/app:-x\" for image \"-x\": \
                 invalid image reference \"reg.io/app:-x\": invalid tag \"-x\" (up to 128 letters, digits, '_', '.' \
                 and '-', not starting with '.' or '-')",
            ),
            (
                "reg.io/app@sha256:%image%",
                "x",
                "tag template \"reg.io/app@sha256:%image%\" renders \"reg.io/app@sha256:x\" for image \"x\": \
                 invalid image reference \"reg.io/app@sha256:x\": invalid digest \"sha256:x\": \
                 sha256 digests have 64 hex digits",
            ),
            (
                "reg.io/app/%image%:1",
                "my app",
                "tag template \"reg.io/app/%image%:1\" renders \"reg.io/app/my app:1\" for image \"my app\": \
                 invalid image reference \"reg.io/app/my app:1\": path component \"my app\" must be lowercase \
                 letters and digits separated by '.', '_', '__' or '-'",
            ),
            (
                "%image%:latest",
                "backend",
                "tag template \"%image%:latest\" renders \"backend:latest\" for image \"backend\", which names no \
                 registry: images are exported to a registry, so name it (index.docker.io/… for Docker Hub)",
            ),
            (
                "user/%image%:latest",
                "backend",
                "tag template \"user/%image%:latest\" renders \"user/backend:latest\" for image \"backend\", which \
                 names no registry: images are exported to a registry, so name it (index.docker.io/… for Docker Hub)",
            ),
        ];
        for (t, image, want) in cases {
            let err = template(t).render(image, CONTENT).expect_err(t);
            assert_eq!(err.to_string(), *want, "{t:?} with {image:?}");
        }
    }

    #[test]
    fn refuses_a_tag_over_128_characters() {
        let t = template("reg.io/app:%image%-%image_content_based_tag%");
        let image = "i".repeat(57);
        assert_eq!(t.render(&image, CONTENT).map(|r| r.len() - "reg.io/app:".len()), Ok(128));
        let image = "i".repeat(58);
        let err = t.render(&image, CONTENT).unwrap_err();
        assert!(
            matches!(&err, TagError::InvalidReference { reason, .. }
                if matches!(&**reason, ReferenceError::InvalidTag { tag, .. } if tag.len() == 129)),
            "{err:?}"
        );
    }

    #[test]
    fn refuses_a_digest_target() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let t = template(&format!("reg.io/%image%@{digest}"));
        let err = t.render("app", CONTENT).unwrap_err();
        assert_eq!(
            err,
            TagError::Digest {
                template: t.as_str().to_owned(),
                image: "app".into(),
                reference: format!("reg.io/app@{digest}")
            }
        );
        assert!(err.to_string().ends_with("an export tag cannot be a digest"), "{err}");
    }

    #[test]
    fn renders_every_image_through_every_template() {
        let templates = [template("reg.io/%image%:%image_content_based_tag%"), template("reg.io/%image%:latest")];
        let got = render_all(&templates, &[("app", "c1"), ("worker", "c2")]).unwrap();
        let want = [
            ("app", "reg.io/app:c1"),
            ("app", "reg.io/app:latest"),
            ("worker", "reg.io/worker:c2"),
            ("worker", "reg.io/worker:latest"),
        ];
        assert_eq!(got, want.map(|(a, b)| (a.to_owned(), b.to_owned())));
    }

    #[test]
    fn one_image_needs_no_image_placeholder() {
        let got = render_all(&[template("reg.io/app:latest")], &[("app", "c1")]).unwrap();
        assert_eq!(got, [("app".to_owned(), "reg.io/app:latest".to_owned())]);
        assert_eq!(render_all(&[template("reg.io/app:latest")], &[]), Ok(vec![]));
        assert_eq!(render_all(&[], &[("app", "c1")]), Ok(vec![]));
    }

    #[test]
    fn the_same_target_twice_for_one_image_is_listed_once() {
        let templates = [template("reg.io/%image%:1"), template("reg.io/%image_slug%:1")];
        let got = render_all(&templates, &[("app", "c1"), ("worker", "c2")]).unwrap();
        let want = [("app", "reg.io/app:1"), ("worker", "reg.io/worker:1")];
        assert_eq!(got, want.map(|(a, b)| (a.to_owned(), b.to_owned())));
    }

    #[test]
    fn refuses_collisions() {
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (
                &["reg.io/%image_slug%:%image_content_based_tag%", "reg.io/app:%image_content_based_tag%"],
                &[("app", "c1"), ("worker", "c2"), ("tool", "c3")],
                "tag template \"reg.io/app:%image_content_based_tag%\" has no image placeholder but 3 images are \
                 exported: they would collide on one tag",
            ),
            (
                &["reg.io/same:latest"],
                &[("app", "c1"), ("worker", "c2")],
                "tag template \"reg.io/same:latest\" has no image placeholder but 2 images are exported: they would \
                 collide on one tag",
            ),
            (
                &["reg.io/%image_slug%:1"],
                &[("My App", "c1"), ("my-app", "c2")],
                "images \"My App\" (tag template \"reg.io/%image_slug%:1\") and \"my-app\" (tag template \
                 \"reg.io/%image_slug%:1\") would both be exported as \"reg.io/my-app:1\"",
            ),
            (
                &["reg.io/%image%:1", "reg.io/app:%image%"],
                &[("1", "c1"), ("app", "c2")],
                "images \"1\" (tag template \"reg.io/app:%image%\") and \"app\" (tag template \"reg.io/%image%:1\") \
                 would both be exported as \"reg.io/app:1\"",
            ),
            (
                &["reg.io/x:%image%", "reg.io/x:%image_slug%"],
                &[("a_b", "c1"), ("a-b", "c2")],
                "images \"a_b\" (tag template \"reg.io/x:%image_slug%\") and \"a-b\" (tag template \
                 \"reg.io/x:%image%\") would both be exported as \"reg.io/x:a-b\"",
            ),
        ];
        for (templates, images, want) in cases {
            let templates: Vec<TagTemplate> = templates.iter().map(|t| template(t)).collect();
            let err = render_all(&templates, images).expect_err(want);
            assert_eq!(err.to_string(), *want);
        }
    }

    #[test]
    fn validates_before_the_build() {
        let ok = [template("reg.io/app/%image%:%image_content_based_tag%")];
        assert_eq!(validate_all(&ok, &["app", "worker"]), Ok(()));
        let long = [template("reg.io/app:%image%-%image_content_based_tag%")];
        let err = validate_all(&long, &["a-very-long-image-name-that-pushes-the-tag-past-its-limit-of-128"]);
        assert!(matches!(err, Err(TagError::InvalidReference { .. })), "{err:?}");
        let shared = [template("reg.io/app:latest")];
        assert!(matches!(validate_all(&shared, &["a", "b"]), Err(TagError::NoImagePlaceholder { images: 2, .. })));
        assert_eq!(validate_all(&shared, &["a"]), Ok(()));
    }
}
