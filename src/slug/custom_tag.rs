//! `--add-custom-tag`: werf's tag aliases for the content-based tag of final images,
//! `%image%-latest` → `REPO:app-latest`. The template gives the tag only; the repository
//! is `--final-repo`, else `--repo`.

use super::template::{CONTENT_BASED_TAG_STUB, TagError, TagTemplate};

/// Why a custom tag cannot be used (werf's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomTagError {
    #[error("invalid custom tag {template:?}: {source}")]
    Template { template: String, source: Box<TagError> },
    #[error(
        "invalid custom tag {template:?}: {tag:?} is not a valid docker tag (ASCII letters, digits, \
         underscores, periods and dashes, not starting with a period or a dash, at most 128 characters)"
    )]
    InvalidTag { template: String, tag: String },
    #[error(
        "invalid custom tag {template:?}: it is necessary to use the image name in the tag format \
         if there is more than one image in the werf config (e.g., \"%image%-{template}\")"
    )]
    NeedsImage { template: String },
}

/// One `--add-custom-tag` template.
#[derive(Debug, Clone)]
pub struct CustomTag(TagTemplate);

impl CustomTag {
    /// Parses `template` and checks it as werf does before building: rendered for every
    /// final image with a stand-in content-based tag, it must be a valid Docker tag, and
    /// no other image may get the first image's tag.
    pub fn parse(template: &str, final_images: &[&str]) -> Result<CustomTag, CustomTagError> {
        let t = TagTemplate::parse(template)
            .map_err(|source| CustomTagError::Template { template: template.to_owned(), source: Box::new(source) })?;
        let mut first: Option<String> = None;
        for image in final_images {
            let tag = t.expand(image, CONTENT_BASED_TAG_STUB);
            if !tag.is_empty() && !slipway_storage::reference::is_valid_tag(&tag) {
                return Err(CustomTagError::InvalidTag { template: template.to_owned(), tag });
            }
            match &first {
                None => first = Some(tag),
                Some(f) if *f == tag => return Err(CustomTagError::NeedsImage { template: template.to_owned() }),
                Some(_) => {}
            }
        }
        Ok(CustomTag(t))
    }

    /// The tag of `image` whose content-based tag is `content_based_tag`.
    pub fn render(&self, image: &str, content_based_tag: &str) -> String {
        self.0.expand(image, content_based_tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_validates_like_werf() {
        let one = ["app"];
        let two = ["app", "Worker/X"];
        let ok: &[(&str, &[&str], &str, &str)] = &[
            ("latest", &one, "app", "latest"),
            ("%image%-v1", &one, "app", "app-v1"),
            ("%image_slug%-%image_content_based_tag%", &two, "Worker/X", "worker-x-abc-1"),
            ("%image_safe_slug%", &two, "Worker/X", "worker-x-d8d0a8e5"),
            ("%image_safe_slug%", &two, "app", "app"),
            ("v-% image %", &one, "app", "v-app"),
        ];
        for (template, images, image, want) in ok {
            let t = CustomTag::parse(template, images).unwrap_or_else(|e| panic!("{template}: {e}"));
            assert_eq!(t.render(image, "abc-1"), *want, "{template}");
        }
        let bad: &[(&str, &[&str], &str)] = &[
            ("latest", &two, "it is necessary to use the image name"),
            ("%image%", &two, "\"Worker/X\" is not a valid docker tag"),
            ("-x", &one, "is not a valid docker tag"),
            ("%nope%", &one, "unknown placeholder"),
            ("%image", &one, "never closed"),
            ("", &one, "empty tag template"),
        ];
        for (template, images, want) in bad {
            let e = CustomTag::parse(template, images).unwrap_err().to_string();
            assert!(e.contains(want), "{template}: {e}");
            assert!(e.starts_with(&format!("invalid custom tag {template:?}")), "{e}");
        }
    }
}
