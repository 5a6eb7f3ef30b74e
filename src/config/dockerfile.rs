//! Image documents with `dockerfile:`: an image built from a Dockerfile.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::common::{Ctx, StrOrSeq, seq_or_null, str_or_seq};
use super::dependency::{Dependency, RawDockerfileDependency, convert_dockerfile_deps};
use super::error::ConfigError;
use super::image_spec::{ImageSpec, RawImageSpec};
use super::secret::{RawSecret, Secret, convert_secrets};

/// Settings of one Dockerfile image (several names in one document share them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerfileImage {
    /// Relative to `context`; default `Dockerfile`.
    pub dockerfile: String,
    /// Relative to the project directory; default `.`.
    pub context: String,
    /// Untracked files added to the context (`contextAddFiles`, or legacy `contextAddFile`).
    pub context_add_files: Vec<String>,
    pub target: Option<String>,
    /// Build args; YAML numbers and booleans are kept as written (`3`, `true`, `1.10`).
    pub args: BTreeMap<String, String>,
    pub add_host: Vec<String>,
    pub network: Option<String>,
    /// Deprecated in werf.
    pub ssh: Option<String>,
    pub secrets: Vec<Secret>,
    /// `staged`, or `build.staged` of the meta document when not set here.
    pub staged: bool,
    pub platform: Vec<String>,
    pub cache_version: Option<String>,
    /// Own spec merged with `build.imageSpec` for final images.
    pub image_spec: Option<ImageSpec>,
    pub dependencies: Vec<Dependency>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDockerfileImage {
    #[allow(dead_code)] // read by the probe; listed so it is not an unknown field
    image: Option<StrOrSeq>,
    #[serde(rename = "final")]
    final_: Option<bool>,
    dockerfile: Option<String>,
    cache_version: Option<String>,
    context: Option<String>,
    #[serde(default, deserialize_with = "str_or_seq")]
    context_add_file: Vec<String>,
    #[serde(default, deserialize_with = "str_or_seq")]
    context_add_files: Vec<String>,
    target: Option<String>,
    args: Option<BTreeMap<String, Option<String>>>,
    #[serde(default, deserialize_with = "str_or_seq")]
    add_host: Vec<String>,
    network: Option<String>,
    ssh: Option<String>,
    #[serde(default, deserialize_with = "seq_or_null")]
    dependencies: Vec<Spanned<RawDockerfileDependency>>,
    staged: Option<bool>,
    #[serde(default, deserialize_with = "seq_or_null")]
    platform: Vec<String>,
    #[serde(default, deserialize_with = "seq_or_null")]
    secrets: Vec<Spanned<RawSecret>>,
    image_spec: Option<RawImageSpec>,
}

/// What a Dockerfile document yields before the meta document is applied.
pub(crate) struct ParsedDockerfile {
    pub image: DockerfileImage,
    pub final_: bool,
    /// `staged` as written; `None` means "take `build.staged`".
    pub staged: Option<bool>,
}

pub(crate) fn parse_dockerfile(ctx: &Ctx<'_>, _names: &[String]) -> Result<ParsedDockerfile, ConfigError> {
    let raw: RawDockerfileImage = ctx.deserialize()?;
    let image_line = ctx.doc.key_line(&["image"]).unwrap_or(ctx.doc.first_content_line());

    let context_add_files = match (raw.context_add_file.is_empty(), raw.context_add_files.is_empty()) {
        (false, false) => {
            let line = ctx.doc.key_line(&["contextAddFile"]).unwrap_or(image_line);
            return Err(ctx.invalid(line, "use only one of `contextAddFiles` and the legacy `contextAddFile`"));
        }
        (false, true) => raw.context_add_file,
        _ => raw.context_add_files,
    };

    let args_line = ctx.doc.key_line(&["args"]).unwrap_or(image_line);
    let mut args = BTreeMap::new();
    for (key, value) in raw.args.unwrap_or_default() {
        match value {
            Some(value) => args.insert(key, value),
            None => return Err(ctx.invalid(args_line, format!("args: {key:?} has no value"))),
        };
    }

    // werf hands `ssh` to buildah as `--ssh`: `default` is the build's agent (--ssh-key,
    // SSH_AUTH_SOCK, ~/.ssh/id_rsa), which slipway also shows when `ssh` is not set.
    if let Some(ssh) = raw.ssh.as_deref().filter(|s| !s.is_empty() && *s != "default") {
        let line = ctx.doc.key_line(&["ssh"]).unwrap_or(image_line);
        return Err(ctx.invalid(
            line,
            format!(
                "ssh: {ssh:?} is not supported by slipway: only `default` (the build's agent from --ssh-key or \
                 SSH_AUTH_SOCK) is"
            ),
        ));
    }

    let dependencies = convert_dockerfile_deps(ctx, raw.dependencies)?;
    for dep in &dependencies {
        if let Some(import) = dep.imports.iter().find(|i| args.contains_key(&i.target)) {
            return Err(
                ctx.invalid(dep.line, format!("dependency: targetBuildArg {:?} is also set in `args`", import.target))
            );
        }
    }

    Ok(ParsedDockerfile {
        image: DockerfileImage {
            dockerfile: non_empty_or(raw.dockerfile, "Dockerfile"),
            context: non_empty_or(raw.context, "."),
            context_add_files,
            target: raw.target.filter(|t| !t.is_empty()),
            args,
            add_host: raw.add_host,
            network: raw.network,
            ssh: raw.ssh,
            secrets: convert_secrets(ctx, raw.secrets)?,
            staged: false,
            platform: raw.platform,
            cache_version: raw.cache_version,
            image_spec: raw.image_spec.map(ImageSpec::from),
            dependencies,
        },
        final_: raw.final_.unwrap_or(true),
        staged: raw.staged,
    })
}

fn non_empty_or(value: Option<String>, default: &str) -> String {
    value.filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}
