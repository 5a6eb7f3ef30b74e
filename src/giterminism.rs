//! `werf-giterminism.yaml`: what a build may take from outside the commit.
//!
//! Parsed strictly into werf's schema (`pkg/giterminism_manager/config`): every key
//! typed, an unknown key or a wrong type is an error naming the file and line, and
//! `giterminismConfigVersion: 1` is required as in werf. werf tolerates unknown keys
//! (its schema has `additionalProperties`); slipway refuses them, because a misspelt
//! allowance silently not applying is hard to debug.
//!
//! Acted on: `config.allowUncommitted`, `config.allowUncommittedTemplates`,
//! `config.goTemplateRendering.*`, `config.dockerfile.*`, `config.secrets.*` and
//! `config.stapel.mount.*` (the `allowUncommitted*` paths through [`path_matcher_matches`],
//! werf's `path_matcher`, by `config_reader.rs`), `config.stapel.allowFromLatest` and
//! `config.stapel.git.allowBranch` (by the Stapel front end). Accepted and ignored,
//! because they can only loosen checks slipway does not make: `helm.*` (no
//! deploy), `includes.*` (no includes) and `cli.allowCustomTags`, which werf checks only
//! for `--use-custom-tag` (converge, render, plan, lint, bundle publish; never for
//! `build --add-custom-tag`), an option no slipway command has.
//!
//! Pure: the loader in `project.rs` reads the file from the commit; host paths used to
//! match `config.secrets.allowFiles` come in as [`HostPaths`].

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_saphyr::{DefaultMessageFormatter, MessageFormatter};

use crate::config::{Image, ImageKind, MountSource, Secret, SecretSource};
use crate::context::glob::Glob;

/// A parsed `werf-giterminism.yaml`; the default is "no file": nothing allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GiterminismConfig {
    #[serde(rename = "giterminismConfigVersion")]
    pub version: Version,
    #[serde(default)]
    pub cli: Cli,
    #[serde(default)]
    pub config: Config,
    #[serde(default)]
    pub helm: Helm,
    #[serde(default)]
    pub includes: Includes,
}

/// `giterminismConfigVersion`: `1` or `"1"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Version;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cli {
    /// Not acted on: werf checks it for `--use-custom-tag` only, which slipway has not.
    #[serde(default)]
    pub allow_custom_tags: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// werf.yaml (or `--config`) is read from the working tree.
    #[serde(default)]
    pub allow_uncommitted: bool,
    /// Partials (`.werf/**/*.tmpl`, paths relative to the project) read from the working
    /// tree.
    #[serde(default)]
    pub allow_uncommitted_templates: Vec<String>,
    #[serde(default)]
    pub go_template_rendering: GoTemplateRendering,
    #[serde(default)]
    pub secrets: Secrets,
    /// `mount` is acted on here (`check_mounts`); `allowFromLatest` and `git.allowBranch`
    /// by the Stapel front end.
    #[serde(default)]
    pub stapel: Stapel,
    #[serde(default)]
    pub dockerfile: Dockerfile,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GoTemplateRendering {
    /// Env var names templates may read: `NAME` or `/regex/` (no globs, as in werf).
    #[serde(default)]
    pub allow_env_variables: Vec<String>,
    /// Files `.Files.*` read from the working tree (paths relative to the project).
    #[serde(default)]
    pub allow_uncommitted_files: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Secrets {
    /// `secrets: [{env: NAME}]`: exact names.
    #[serde(default)]
    pub allow_env_variables: Vec<String>,
    /// `secrets: [{src: PATH}]`: globs over absolute host paths (`~` expanded).
    #[serde(default)]
    pub allow_files: Vec<String>,
    /// `secrets: [{id: ID, value: TEXT}]`: exact ids.
    #[serde(default)]
    pub allow_value_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Stapel {
    #[serde(default)]
    pub allow_from_latest: bool,
    #[serde(default)]
    pub git: StapelGit,
    #[serde(default)]
    pub mount: StapelMount,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StapelGit {
    #[serde(default)]
    pub allow_branch: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StapelMount {
    #[serde(default)]
    pub allow_build_dir: bool,
    #[serde(default)]
    pub allow_from_paths: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Dockerfile {
    /// Dockerfiles read from the working tree (paths relative to the project).
    #[serde(default)]
    pub allow_uncommitted: Vec<String>,
    /// `.dockerignore` (and `DOCKERFILE.dockerignore`) files read from the working tree
    /// (paths relative to the project).
    #[serde(default)]
    pub allow_uncommitted_dockerignore_files: Vec<String>,
    /// Working-tree paths (relative to the project directory) `contextAddFiles` may take.
    #[serde(default)]
    pub allow_context_add_files: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Helm {
    /// Not acted on: slipway does not deploy.
    #[serde(default)]
    pub allow_uncommitted_files: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Includes {
    /// Not acted on: werf includes are not supported.
    #[serde(default)]
    pub allow_includes_update: bool,
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Version;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("giterminismConfigVersion 1")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Version, E> {
                if v == 1 { Ok(Version) } else { Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)) }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Version, E> {
                if v == 1 { Ok(Version) } else { Err(E::invalid_value(de::Unexpected::Signed(v), &self)) }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Version, E> {
                if v == "1" { Ok(Version) } else { Err(E::invalid_value(de::Unexpected::Str(v), &self)) }
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A `werf-giterminism.yaml` that cannot be used, or a werf.yaml it does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct GiterminismError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl GiterminismConfig {
    /// Parses the text of `file` (named in errors).
    pub fn parse(file: &str, text: &str) -> Result<GiterminismConfig, GiterminismError> {
        serde_saphyr::from_str(text).map_err(|e| {
            let e = e.without_snippet();
            GiterminismError {
                file: file.to_owned(),
                line: e.location().map_or(1, |l| l.line().max(1) as usize),
                message: DefaultMessageFormatter.format_message(e).into_owned(),
            }
        })
    }

    /// werf's check of `secrets` (`pkg/config/secrets.go`): an `env` secret needs its
    /// name in `config.secrets.allowEnvVariables`, a `src` secret a glob of
    /// `config.secrets.allowFiles` matching its absolute path, a `value` secret its id in
    /// `config.secrets.allowValueIds`. `file` is werf.yaml's name, for the error.
    pub fn check_secrets(&self, file: &str, images: &[Image], host: &HostPaths) -> Result<(), GiterminismError> {
        let allow = &self.config.secrets;
        for image in images {
            let secrets: &[Secret] = match &image.kind {
                ImageKind::Dockerfile(d) => &d.secrets,
                ImageKind::Stapel(s) => &s.secrets,
            };
            for secret in secrets {
                let (shown, allowed, key) = match &secret.source {
                    SecretSource::Env(name) => {
                        (name.as_str(), allow.allow_env_variables.contains(name), "allowEnvVariables")
                    }
                    SecretSource::File(src) => {
                        (src.as_str(), file_allowed(&allow.allow_files, src, host), "allowFiles")
                    }
                    SecretSource::Value(_) => {
                        (secret.id.as_str(), allow.allow_value_ids.contains(&secret.id), "allowValueIds")
                    }
                };
                if !allowed {
                    return Err(GiterminismError {
                        file: file.to_owned(),
                        line: secret.line,
                        message: format!(
                            "secret {shown:?} is not allowed by giterminism: using env and file secrets \
                             complicates the sharing and reproducibility of the configuration in CI jobs \
                             and among developers; to allow it, list it in config.secrets.{key} of \
                             werf-giterminism.yaml"
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

impl GiterminismConfig {
    /// werf's check of Stapel `mount` at config load (`pkg/config/mount.go`,
    /// `inspector/stapel.go`): `from: build_dir` needs `config.stapel.mount.allowBuildDir`,
    /// `fromPath: P` a pattern of `config.stapel.mount.allowFromPaths` matching `P` as
    /// written; `tmp_dir` is always allowed. `file` is werf.yaml's name, for the error.
    pub fn check_mounts(&self, file: &str, images: &[Image]) -> Result<(), GiterminismError> {
        for image in images {
            let ImageKind::Stapel(s) = &image.kind else { continue };
            for m in &s.mount {
                if let Err(message) = self.mount_allowed(&m.source) {
                    return Err(GiterminismError { file: file.to_owned(), line: m.line, message });
                }
            }
        }
        Ok(())
    }

    /// Whether a mount source may be bound (werf's message, in one line, if not).
    pub fn mount_allowed(&self, source: &MountSource) -> Result<(), String> {
        let allow = &self.config.stapel.mount;
        let (shown, why, key) = match source {
            MountSource::TmpDir => return Ok(()),
            MountSource::BuildDir if allow.allow_build_dir => return Ok(()),
            MountSource::Path(p) if path_matcher_matches(&allow.allow_from_paths, p) => return Ok(()),
            MountSource::BuildDir => (
                "from: build_dir".to_owned(),
                "the use of the build_dir mount may lead to unpredictable behavior when used in parallel and \
                 potentially affect reproducibility and reliability",
                "allowBuildDir: true",
            ),
            MountSource::Path(p) => (
                format!("fromPath: {p}"),
                "the use of the fromPath mount may lead to unpredictable behavior when used in parallel and \
                 potentially affect reproducibility and reliability; the data in the mounted directory has no \
                 effect on the final image digest",
                "allowFromPaths",
            ),
        };
        Err(format!(
            "the configuration with potential external dependency found in the werf config: \
             \"mount {{ {shown}, ... }}\" not allowed by giterminism ({why}); to allow it, set \
             config.stapel.mount.{key} in werf-giterminism.yaml"
        ))
    }
}

/// werf's `path_matcher` with include globs (`isPathMatched`): both sides cleaned as Go's
/// `filepath.Clean` (`""`, `.` and `/` are the empty path), then a glob matches the path
/// itself or — with its trailing `*`/`**` parts dropped — the path or anything below it,
/// so `dir`, `dir/*` and `dir/**/*` all allow `dir` and every file under it, and `.`
/// allows everything.
pub fn path_matcher_matches(patterns: &[String], path: &str) -> bool {
    let path = go_clean(path);
    patterns.iter().any(|p| {
        let pattern = go_clean(p);
        // doublestar never matches an absolute glob against a relative path, or back.
        if pattern.starts_with('/') != path.starts_with('/') {
            return false;
        }
        let lead = if pattern.starts_with('/') { "/" } else { "" };
        let mut base: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
        while base.last().is_some_and(|s| s.chars().all(|c| c == '*')) {
            base.pop();
        }
        let base = format!("{lead}{}", base.join("/"));
        let below = if base.is_empty() || base == "/" { format!("{base}**/*") } else { format!("{base}/**/*") };
        path_glob_matches(&pattern, &path) || path_glob_matches(&base, &path) || path_glob_matches(&below, &path)
    })
}

/// Go's `filepath.Clean`, lexically, with werf's `formatPath`: `""`, `.` and `/` are `""`.
fn go_clean(path: &str) -> String {
    let abs = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            ".." if abs => {}
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    if abs && !joined.is_empty() { format!("/{joined}") } else { joined }
}

/// Where `~` and relative paths point, read once by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    pub home: String,
    pub cwd: String,
}

/// werf's `util.ExpandPath`: `~` is the home directory, a relative path is relative to
/// the working directory; the result is cleaned (`.`/`..`/`//` resolved lexically).
fn expand_path(path: &str, host: &HostPaths) -> String {
    let joined = if path == "~" {
        host.home.clone()
    } else if let Some(rest) = path.strip_prefix("~/") {
        format!("{}/{rest}", host.home)
    } else if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{}/{path}", host.cwd)
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// werf's `isAbsPathMatched`: both sides expanded, then matched as
/// [`path_matcher_matches`] does, so allowing a directory allows the files in it.
fn file_allowed(patterns: &[String], src: &str, host: &HostPaths) -> bool {
    let path = expand_path(src, host);
    let patterns: Vec<String> = patterns.iter().map(|p| expand_path(p, host)).collect();
    path_matcher_matches(&patterns, &path)
}

/// doublestar's `PathMatch` without `{a,b}` alternatives: `/`-separated segments, a
/// `**` segment matches any number of segments, other segments are Go
/// `filepath.Match` patterns. Runs over the set of live pattern positions (no
/// backtracking), so `**/**/**/…` costs `O(pattern × path)` segments.
pub fn path_glob_matches(pattern: &str, path: &str) -> bool {
    let segments: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let Ok(globs) = segments
        .iter()
        .map(|s| if *s == "**" { Ok(None) } else { Glob::new(s).map(Some) })
        .collect::<Result<Vec<_>, _>>()
    else {
        return false;
    };
    let n = globs.len();
    let close = |live: &mut Vec<bool>| {
        for j in 0..n {
            if live[j] && globs[j].is_none() {
                live[j + 1] = true;
            }
        }
    };
    let mut live = vec![false; n + 1];
    live[0] = true;
    close(&mut live);
    for name in path.split('/').filter(|s| !s.is_empty()) {
        let mut next = vec![false; n + 1];
        for (j, glob) in globs.iter().enumerate() {
            if !live[j] {
                continue;
            }
            match glob {
                None => next[j] = true,
                Some(g) if g.matches(name) => next[j + 1] = true,
                Some(_) => {}
            }
        }
        close(&mut next);
        live = next;
    }
    live[n]
}

/// An entry of `config.goTemplateRendering.allowEnvVariables`: a name, or `/regex/`
/// compiled as werf compiles it, `^RE$` (so `/A|B/` is `^A|B$`, as in werf). There are
/// no globs: `CI_*` is the name `CI_*`, as in werf's `IsEnvNameAccepted`.
pub enum AllowedVar {
    Name(String),
    Regex(regex_lite::Regex),
}

impl AllowedVar {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        if let Some(re) = s.strip_prefix('/').and_then(|r| r.strip_suffix('/')) {
            let re = regex_lite::Regex::new(&format!("^{re}$"))
                .map_err(|e| anyhow::anyhow!("werf-giterminism.yaml: allowEnvVariables: invalid regex {s:?}: {e}"))?;
            return Ok(AllowedVar::Regex(re));
        }
        Ok(AllowedVar::Name(s.to_string()))
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            AllowedVar::Name(n) => n == name,
            AllowedVar::Regex(r) => r.is_match(name),
        }
    }
}

#[cfg(test)]
mod tests;
