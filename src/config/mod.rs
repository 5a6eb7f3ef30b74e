//! werf.yaml (configVersion 1): parsing and validation into typed, engine-ready values.
//!
//! The file is a stream of YAML documents split the werf way (`split.rs`): exactly one
//! meta document (`configVersion`), then any number of image documents, each either a
//! Dockerfile image (`dockerfile:`) or a Stapel image (`image:` / `artifact:`). Every
//! document is deserialized strictly, so a misspelt key is an error naming its line.
//! After all documents parse, whole-config rules run (`graph.rs`): unique image names,
//! references that resolve, no dependency cycles.
//!
//! This module does no I/O: [`render`] renders the Go template (`template.rs`, with the
//! variables, files and partials the caller passes in), [`parse_rendered`] takes the
//! rendered text, and every error names the file and a line of the *whole* rendered
//! file (as werf's do). A `{{` left by rendering is plain text.
//!
//! ```text
//! parse_template(file, text, input) = parse_rendered(file, render(file, text, input))
//! parse_rendered(file, text)
//!   ├─ split::split_docs            `---` lines, empty docs dropped, start lines kept
//!   ├─ per doc: probe keys ─┬─ meta::parse_meta              (configVersion)
//!   │                       ├─ dockerfile::parse_dockerfile  (dockerfile)
//!   │                       └─ stapel::parse_stapel          (image | artifact)
//!   ├─ apply meta: build.staged, build.imageSpec → final images
//!   └─ graph::check                 names, references, cycles
//! ```

// The engine does not read every field yet.

mod common;
mod convert;
mod dates;
mod dependency;
mod dockerfile;
mod error;
mod funcs;
mod git;
mod gotime;
mod graph;
mod image_spec;
mod meta;
mod secret;
mod semver;
mod split;
mod stapel;
mod template;
#[cfg(test)]
mod tests;
mod zoneinfo;

use std::fmt;

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};

// The whole vocabulary, re-exported so callers need only `crate::config::…`; the binary
// does not name every type yet.
#[allow(unused_imports)] // public surface: the engine uses part of it, the tests all
pub use self::{
    common::{Anchor, Relation},
    dependency::{Dependency, DependencyImport, DependencyImportType},
    dockerfile::DockerfileImage,
    error::ConfigError,
    git::{BasicAuth, GitMapping, GitRef, GitSource, ImageRef, Import, PasswordSource, StageDependencies, UserStage},
    image_spec::{Healthcheck, ImageSpec},
    meta::{
        GitWorktree, HelmChartConfig, KeepPolicy, Limit, LimitOperator, MAX_PROJECT_NAME_LEN, Meta, MetaBuild,
        MetaCleanup, MetaDeploy, RefKind, RefPattern, References, validate_project,
    },
    secret::{Secret, SecretSource},
    stapel::{Ansible, BaseImage, Command, DockerInstructions, Mount, MountSource, Shell, StapelImage},
    template::{
        CommitData, EnvFilter, FileSource, GITERMINISM_TAIL, MAX_RENDERED_BYTES, TemplateInput, go_time_string, render,
    },
};

use common::{Ctx, StrOrSeq};
use error::ImageLabel;
use split::Doc;

/// A parsed, validated werf.yaml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WerfConfig {
    pub meta: Meta,
    /// In file order; a document with `image: [a, b]` yields two entries.
    pub images: Vec<Image>,
}

/// One image to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `""` for the nameless image (`image: ~`).
    pub name: String,
    /// Line of the document's `image:` / `artifact:` key.
    pub line: usize,
    /// Final images are published and exported; intermediate ones only feed others.
    pub final_: bool,
    pub kind: ImageKind,
}

// Not boxed: a config holds a handful of images, and matching on unboxed variants keeps
// the engine's code plain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageKind {
    Dockerfile(DockerfileImage),
    Stapel(StapelImage),
}

impl Image {
    pub fn is_nameless(&self) -> bool {
        self.name.is_empty()
    }

    /// Names of the images of this config that must be built before this one
    /// (base image, import sources, dependencies), each once, in config order.
    pub fn depends_on(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        let deps = match &self.kind {
            ImageKind::Dockerfile(d) => &d.dependencies,
            ImageKind::Stapel(s) => {
                if let BaseImage::Werf(name) = &s.from {
                    names.push(name);
                }
                names.extend(s.import.iter().filter_map(|i| match &i.from {
                    ImageRef::Werf(name) => Some(name.as_str()),
                    ImageRef::External(_) => None,
                }));
                &s.dependencies
            }
        };
        names.extend(deps.iter().map(|d| d.image.as_str()));
        let mut out: Vec<&str> = Vec::with_capacity(names.len());
        for name in names {
            if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }
}

impl WerfConfig {
    /// The images named on the command line, in config order; all of them when `names`
    /// is empty. Dependencies are not added: see [`Image::depends_on`].
    pub fn select(&self, names: &[String]) -> Result<Vec<&Image>, ConfigError> {
        if names.is_empty() {
            return Ok(self.images.iter().collect());
        }
        if let Some(missing) = names.iter().find(|n| !self.images.iter().any(|i| &i.name == *n)) {
            let known: Vec<String> =
                self.images.iter().map(|i| if i.is_nameless() { "~".to_owned() } else { i.name.clone() }).collect();
            return Err(ConfigError::UnknownImage { name: missing.clone(), known: known.join(", ") });
        }
        Ok(self.images.iter().filter(|i| names.contains(&i.name)).collect())
    }

    #[cfg(test)]
    pub fn image(&self, name: &str) -> Option<&Image> {
        self.images.iter().find(|i| i.name == name)
    }
}

/// The raw text of the rendered document holding `line` (werf's `rawDoc().Content`).
pub fn raw_doc(rendered: &str, line: usize) -> Option<&str> {
    split::split_docs(rendered)
        .into_iter()
        .find(|d| d.start_line <= line && line < d.start_line + d.text.matches('\n').count().max(1))
        .map(|d| d.text)
}

/// A string as yaml.v2 writes a scalar (plain, quoted or a block) at indent `ind`.
pub fn yaml_string(text: &str, ind: usize) -> String {
    convert::yaml_scalar_str(text, ind)
}

/// Renders werf.yaml's Go template with `input` (see [`render`]), then parses it.
/// Error lines refer to the rendered text, as in werf.
#[cfg(test)]
pub fn parse_template(file: &str, text: &str, input: &TemplateInput) -> Result<WerfConfig, ConfigError> {
    parse_rendered(file, &render(file, text, input)?)
}

/// Parses werf.yaml text as it is (tests).
#[cfg(test)]
pub fn parse(file: &str, text: &str) -> Result<WerfConfig, ConfigError> {
    parse_rendered(file, text)
}

/// Parses rendered werf.yaml text: a `{{` left by rendering (`{{ "{{" }}`) is plain text.
pub fn parse_rendered(file: &str, text: &str) -> Result<WerfConfig, ConfigError> {
    let mut meta: Option<Meta> = None;
    // (image, `staged` as written for Dockerfile images)
    let mut images: Vec<(Image, Option<bool>)> = Vec::new();

    for doc in split::split_docs(text) {
        let probe_ctx = Ctx { file, doc, context: String::new() };
        let probe: Probe = probe_ctx.deserialize()?;
        if probe.has("configVersion") {
            if let Some(first) = &meta {
                return Err(ConfigError::DuplicateMeta {
                    file: file.to_owned(),
                    line: doc.key_line(&["configVersion"]).unwrap_or(doc.first_content_line()),
                    first: first.line,
                });
            }
            meta = Some(meta::parse_meta(&probe_ctx)?);
        } else if probe.has("dockerfile") {
            let names = image_names(&probe_ctx, &probe, false)?;
            let ctx = Ctx { file, doc, context: context_for(&names, false) };
            let parsed = dockerfile::parse_dockerfile(&ctx, &names)?;
            let line = name_line(doc);
            for name in names {
                let image =
                    Image { name, line, final_: parsed.final_, kind: ImageKind::Dockerfile(parsed.image.clone()) };
                images.push((image, parsed.staged));
            }
        } else if probe.image.is_some() || probe.artifact.is_some() {
            let artifact = probe.artifact.is_some();
            let names = image_names(&probe_ctx, &probe, artifact)?;
            let ctx = Ctx { file, doc, context: context_for(&names, artifact) };
            let parsed = stapel::parse_stapel(&ctx, artifact)?;
            let line = name_line(doc);
            for name in names {
                let image = Image { name, line, final_: parsed.final_, kind: ImageKind::Stapel(parsed.image.clone()) };
                images.push((image, None));
            }
        } else {
            return Err(ConfigError::UnknownDocument { file: file.to_owned(), line: doc.first_content_line() });
        }
    }

    let meta = meta.ok_or_else(|| ConfigError::MissingMeta { file: file.to_owned() })?;
    let mut images: Vec<Image> = images
        .into_iter()
        .map(|(mut image, staged)| {
            apply_meta(&meta, &mut image, staged);
            image
        })
        .collect();
    graph::check(file, &mut images)?;
    Ok(WerfConfig { meta, images })
}

fn apply_meta(meta: &Meta, image: &mut Image, staged: Option<bool>) {
    let global = meta.build.image_spec.as_ref().filter(|_| image.final_);
    match &mut image.kind {
        ImageKind::Dockerfile(d) => {
            d.staged = staged.unwrap_or(meta.build.staged);
            if let Some(global) = global {
                d.image_spec = Some(image_spec::merge_global(global, d.image_spec.take()));
            }
        }
        ImageKind::Stapel(s) => {
            if let Some(global) = global {
                s.image_spec = Some(image_spec::merge_global(global, s.image_spec.take()));
            }
        }
    }
}

fn name_line(doc: Doc<'_>) -> usize {
    doc.key_line(&["image", "artifact"]).unwrap_or(doc.first_content_line())
}

/// The names an image document declares: `image: NAME | [NAMES] | ~`, or `artifact: NAME`.
fn image_names(ctx: &Ctx<'_>, probe: &Probe, artifact: bool) -> Result<Vec<String>, ConfigError> {
    let line = name_line(ctx.doc);
    let names = match (&probe.image, &probe.artifact) {
        (Some(_), Some(_)) => return Err(ctx.invalid(line, "specify only one of `image` and `artifact`")),
        (None, Some(Some(name))) if !name.is_empty() => vec![name.clone()],
        (None, Some(_)) => return Err(ctx.invalid(line, "`artifact` needs a name")),
        (None, None) => return Err(ctx.invalid(line, "`image: NAME` is required")),
        (Some(None), None) => return Ok(vec![String::new()]),
        (Some(Some(StrOrSeq::Str(name))), None) => vec![name.clone()],
        (Some(Some(StrOrSeq::Seq(names))), None) => {
            if names.is_empty() {
                return Err(ctx.invalid(line, "`image` lists no names"));
            } else if names.iter().any(String::is_empty) {
                return Err(ctx.invalid(line, "image names in a list must not be empty"));
            }
            debug_assert!(!artifact);
            names.clone()
        }
    };
    for name in &names {
        check_image_name(name).map_err(|reason| ctx.invalid(line, format!("bad image name {name:?}: {reason}")))?;
    }
    Ok(names)
}

/// An image name ends up in paths (stage storage, reports, `%image_slug%`), log lines
/// and tags. werf itself takes any string; slipway refuses what could leave a directory
/// or forge a line: whitespace and control characters, and `/`-separated segments that
/// are empty, `.` or `..` (`backend/api` stays valid).
fn check_image_name(name: &str) -> Result<(), &'static str> {
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("whitespace and control characters are not allowed");
    }
    if name.split('/').any(|segment| matches!(segment, "" | "." | "..")) {
        return Err("a `/`-separated part must not be empty, `.` or `..`");
    }
    Ok(())
}

fn context_for(names: &[String], artifact: bool) -> String {
    match names {
        [name] if artifact => format!("artifact {name:?}: "),
        [name] => format!("{}: ", ImageLabel(name)),
        _ => {
            let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
            format!("images {}: ", quoted.join(", "))
        }
    }
}

/// The top-level keys of a document, and the name keys' values, read before the
/// document's kind is known.
#[derive(Debug, Default)]
struct Probe {
    keys: Vec<String>,
    /// `Some(None)`: `image:` present but null (the nameless image).
    image: Option<Option<StrOrSeq>>,
    artifact: Option<Option<String>>,
}

impl Probe {
    fn has(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key)
    }
}

impl<'de> Deserialize<'de> for Probe {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Probe;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of werf.yaml directives")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe, A::Error> {
                let mut probe = Probe::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "image" => probe.image = Some(map.next_value()?),
                        "artifact" => probe.artifact = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                    probe.keys.push(key);
                }
                Ok(probe)
            }
        }
        deserializer.deserialize_map(V)
    }
}
