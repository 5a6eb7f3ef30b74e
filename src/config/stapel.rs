//! Image documents with `image:` or `artifact:` and no `dockerfile:`: Stapel images,
//! assembled by werf's own instructions on top of a base image.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

use super::common::{Ctx, StrOrSeq, require_absolute, seq_or_null, str_or_seq};
use super::dependency::{Dependency, RawStapelDependency, convert_stapel_deps};
use super::error::ConfigError;
use super::git::{GitMapping, Import, RawGit, RawImport, convert_git, convert_imports};
use super::image_spec::{ImageSpec, RawImageSpec};
use super::secret::{RawSecret, Secret, convert_secrets};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StapelImage {
    pub from: BaseImage,
    pub from_latest: bool,
    pub from_cache_version: Option<String>,
    pub cache_version: Option<String>,
    /// Declared with the deprecated `artifact:` key (never final, no git patches).
    pub artifact: bool,
    /// Set explicitly, or implied by `artifact:`.
    pub disable_git_after_patch: bool,
    pub git: Vec<GitMapping>,
    pub shell: Option<Shell>,
    /// Parsed so the config loads; building with Ansible is refused (as werf's Buildah mode does).
    pub ansible: Option<Ansible>,
    pub mount: Vec<Mount>,
    /// Deprecated `docker:` instructions (incompatible with `imageSpec`).
    pub docker: Option<DockerInstructions>,
    pub import: Vec<Import>,
    pub dependencies: Vec<Dependency>,
    /// Own spec merged with `build.imageSpec` for final images.
    pub image_spec: Option<ImageSpec>,
    pub platform: Vec<String>,
    pub network: Option<String>,
    pub secrets: Vec<Secret>,
}

/// The image a Stapel image starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseImage {
    Scratch,
    /// Another image of this werf.yaml (`from: NAME`, `fromImage`, `fromArtifact`).
    Werf(String),
    /// A registry reference as written; no tag means `:latest` when pulling.
    External(String),
}

/// `shell:` commands per user stage, and their cache versions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Shell {
    #[serde(default, deserialize_with = "str_or_seq")]
    pub before_install: Vec<String>,
    #[serde(default, deserialize_with = "str_or_seq")]
    pub install: Vec<String>,
    #[serde(default, deserialize_with = "str_or_seq")]
    pub before_setup: Vec<String>,
    #[serde(default, deserialize_with = "str_or_seq")]
    pub setup: Vec<String>,
    pub cache_version: Option<String>,
    pub before_install_cache_version: Option<String>,
    pub install_cache_version: Option<String>,
    pub before_setup_cache_version: Option<String>,
    pub setup_cache_version: Option<String>,
}

/// `ansible:`; only its size is kept, since slipway refuses to run it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ansible {
    pub task_count: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAnsible {
    #[serde(default, deserialize_with = "seq_or_null")]
    before_install: Vec<IgnoredAny>,
    #[serde(default, deserialize_with = "seq_or_null")]
    install: Vec<IgnoredAny>,
    #[serde(default, deserialize_with = "seq_or_null")]
    before_setup: Vec<IgnoredAny>,
    #[serde(default, deserialize_with = "seq_or_null")]
    setup: Vec<IgnoredAny>,
    #[allow(dead_code)]
    cache_version: Option<String>,
    #[allow(dead_code)]
    before_install_cache_version: Option<String>,
    #[allow(dead_code)]
    install_cache_version: Option<String>,
    #[allow(dead_code)]
    before_setup_cache_version: Option<String>,
    #[allow(dead_code)]
    setup_cache_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub line: usize,
    pub source: MountSource,
    /// Absolute path in the build container.
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// `from: tmp_dir`: a fresh host dir per build.
    TmpDir,
    /// `from: build_dir`: a host dir kept between builds of the project.
    BuildDir,
    /// `fromPath: PATH`: a host path.
    Path(String),
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ServiceDir {
    TmpDir,
    BuildDir,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawMount {
    from: Option<ServiceDir>,
    from_path: Option<String>,
    to: Option<String>,
}

/// Deprecated `docker:` directives, applied to the image config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerInstructions {
    #[serde(rename = "VOLUME", default, deserialize_with = "str_or_seq")]
    pub volume: Vec<String>,
    #[serde(rename = "EXPOSE", default, deserialize_with = "str_or_seq")]
    pub expose: Vec<String>,
    #[serde(rename = "ENV", default)]
    pub env: BTreeMap<String, String>,
    #[serde(rename = "LABEL", default)]
    pub label: BTreeMap<String, String>,
    #[serde(rename = "ENTRYPOINT", default, deserialize_with = "command")]
    pub entrypoint: Option<Command>,
    #[serde(rename = "CMD", default, deserialize_with = "command")]
    pub cmd: Option<Command>,
    #[serde(rename = "WORKDIR")]
    pub workdir: Option<String>,
    #[serde(rename = "USER")]
    pub user: Option<String>,
    #[serde(rename = "HEALTHCHECK")]
    pub healthcheck: Option<String>,
    #[serde(rename = "exactValues", default)]
    pub exact_values: bool,
}

/// `CMD` / `ENTRYPOINT`: a string is shell form, a list is exec form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Shell(String),
    Exec(Vec<String>),
}

fn command<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Command>, D::Error> {
    Ok(Option::<StrOrSeq>::deserialize(d)?.map(|v| match v {
        StrOrSeq::Str(s) => Command::Shell(s),
        StrOrSeq::Seq(v) => Command::Exec(v),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawStapelImage {
    #[allow(dead_code)] // read by the probe; listed so it is not an unknown field
    image: Option<StrOrSeq>,
    #[allow(dead_code)]
    artifact: Option<String>,
    #[serde(rename = "final")]
    final_: Option<bool>,
    cache_version: Option<String>,
    from: Option<String>,
    from_latest: Option<bool>,
    from_cache_version: Option<String>,
    from_image: Option<String>,
    from_artifact: Option<String>,
    disable_git_after_patch: Option<bool>,
    #[serde(default, deserialize_with = "seq_or_null")]
    git: Vec<Spanned<RawGit>>,
    shell: Option<Shell>,
    ansible: Option<RawAnsible>,
    #[serde(default, deserialize_with = "seq_or_null")]
    mount: Vec<Spanned<RawMount>>,
    docker: Option<DockerInstructions>,
    #[serde(default, deserialize_with = "seq_or_null")]
    import: Vec<Spanned<RawImport>>,
    #[serde(default, deserialize_with = "seq_or_null")]
    dependencies: Vec<Spanned<RawStapelDependency>>,
    #[serde(default, deserialize_with = "seq_or_null")]
    platform: Vec<String>,
    network: Option<String>,
    #[serde(default, deserialize_with = "seq_or_null")]
    secrets: Vec<Spanned<RawSecret>>,
    image_spec: Option<RawImageSpec>,
}

pub(crate) struct ParsedStapel {
    pub image: StapelImage,
    pub final_: bool,
}

pub(crate) fn parse_stapel(ctx: &Ctx<'_>, artifact: bool) -> Result<ParsedStapel, ConfigError> {
    let raw: RawStapelImage = ctx.deserialize()?;
    let name_line = ctx.doc.key_line(&["image", "artifact"]).unwrap_or(ctx.doc.first_content_line());
    let key_line = |key: &str| ctx.doc.key_line(&[key]).unwrap_or(name_line);

    if artifact {
        for (key, set) in [
            ("final", raw.final_.is_some()),
            ("docker", raw.docker.is_some()),
            ("disableGitAfterPatch", raw.disable_git_after_patch.is_some()),
            ("dependencies", !raw.dependencies.is_empty()),
        ] {
            if set {
                return Err(ctx.invalid(
                    key_line(key),
                    format!("`{key}` is not supported for artifacts (use `image:` with `final: false`)"),
                ));
            }
        }
    }
    if raw.docker.is_some() && raw.image_spec.is_some() {
        return Err(ctx.invalid(key_line("docker"), "`docker` is deprecated and cannot be combined with `imageSpec`"));
    }

    let from = match (raw.from, raw.from_image, raw.from_artifact) {
        (Some(f), None, None) if f == "scratch" => BaseImage::Scratch,
        (Some(f), None, None) if !f.is_empty() => BaseImage::External(f),
        (None, Some(n), None) | (None, None, Some(n)) if !n.is_empty() => BaseImage::Werf(n),
        (None, None, None) => {
            return Err(ctx.invalid(
                name_line,
                "a base image is required: `from: IMAGE` (or the deprecated `fromImage` / `fromArtifact`)",
            ));
        }
        (Some(_), None, None) | (None, Some(_), None) | (None, None, Some(_)) => {
            return Err(ctx.invalid(key_line("from"), "the base image name must not be empty"));
        }
        _ => {
            return Err(ctx.invalid(key_line("from"), "specify only one of `from`, `fromImage` and `fromArtifact`"));
        }
    };
    let from_latest = raw.from_latest.unwrap_or(false);
    if from_latest && from == BaseImage::Scratch {
        return Err(ctx.invalid(key_line("fromLatest"), "`fromLatest` cannot be used with `from: scratch`"));
    }

    let mut mounts = Vec::with_capacity(raw.mount.len());
    for spanned in raw.mount {
        let line = ctx.line_of(&spanned);
        let m = spanned.value;
        let source = match (m.from, m.from_path) {
            (Some(ServiceDir::TmpDir), None) => MountSource::TmpDir,
            (Some(ServiceDir::BuildDir), None) => MountSource::BuildDir,
            (None, Some(path)) if !path.is_empty() => MountSource::Path(path),
            _ => {
                return Err(
                    ctx.invalid(line, "mount: specify exactly one of `from: tmp_dir|build_dir` and `fromPath: PATH`")
                );
            }
        };
        let Some(to) = m.to else {
            return Err(ctx.invalid(line, "mount: `to` is required"));
        };
        require_absolute(ctx, line, "mount: `to`", &to)?;
        mounts.push(Mount { line, source, to });
    }

    let image = StapelImage {
        from,
        from_latest,
        from_cache_version: raw.from_cache_version,
        cache_version: raw.cache_version,
        artifact,
        disable_git_after_patch: artifact || raw.disable_git_after_patch.unwrap_or(false),
        git: convert_git(ctx, raw.git)?,
        shell: raw.shell,
        ansible: raw.ansible.map(|a| Ansible {
            task_count: a.before_install.len() + a.install.len() + a.before_setup.len() + a.setup.len(),
        }),
        mount: mounts,
        docker: raw.docker,
        import: convert_imports(ctx, raw.import)?,
        dependencies: convert_stapel_deps(ctx, raw.dependencies)?,
        image_spec: raw.image_spec.map(ImageSpec::from),
        platform: raw.platform,
        network: raw.network,
        secrets: convert_secrets(ctx, raw.secrets)?,
    };
    Ok(ParsedStapel { final_: !artifact && raw.final_.unwrap_or(true), image })
}
