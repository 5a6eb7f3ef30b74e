//! The meta document: the one with `configVersion`, holding project-wide settings.

use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::common::{Ctx, seq_or_null};
use super::error::ConfigError;
use super::image_spec::{ImageSpec, RawGlobalImageSpec};

/// Longest project name werf accepts.
pub const MAX_PROJECT_NAME_LEN: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Line of the `configVersion` key.
    pub line: usize,
    /// Always 1.
    pub config_version: u32,
    /// As written; werf lets `$WERF_PROJECT_NAME` override it, which is the caller's job.
    pub project: String,
    pub build: MetaBuild,
    pub deploy: MetaDeploy,
    pub cleanup: MetaCleanup,
    pub git_worktree: GitWorktree,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaBuild {
    pub cache_version: Option<String>,
    pub platform: Vec<String>,
    /// Default for Dockerfile images without their own `staged` (already applied to them).
    pub staged: bool,
    /// Global spec (already merged into every final image's `image_spec`).
    pub image_spec: Option<ImageSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetaDeploy {
    pub helm_chart_dir: Option<String>,
    pub helm_chart_config: Option<HelmChartConfig>,
    pub helm_release: Option<String>,
    pub helm_release_slug: Option<bool>,
    pub namespace: Option<String>,
    pub namespace_slug: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HelmChartConfig {
    pub app_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaCleanup {
    pub disable: bool,
    pub disable_kubernetes_based_policy: bool,
    pub disable_git_history_based_policy: bool,
    pub disable_built_within_last_n_hours_policy: bool,
    /// Default 2.
    pub keep_images_built_within_last_n_hours: u64,
    pub keep_policies: Vec<KeepPolicy>,
}

impl Default for MetaCleanup {
    fn default() -> Self {
        MetaCleanup {
            disable: false,
            disable_kubernetes_based_policy: false,
            disable_git_history_based_policy: false,
            disable_built_within_last_n_hours_policy: false,
            keep_images_built_within_last_n_hours: 2,
            keep_policies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepPolicy {
    pub line: usize,
    pub references: References,
    pub images_per_reference: Option<Limit>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct References {
    pub kind: RefKind,
    pub pattern: RefPattern,
    pub limit: Option<Limit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Branch,
    Tag,
}

/// `name` or `/REGEXP/` (the slashes removed; compiled by the cleanup code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefPattern {
    Exact(String),
    Regex(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limit {
    pub last: Option<i64>,
    /// The `in:` Go duration.
    pub within: Option<Duration>,
    pub operator: Option<LimitOperator>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum LimitOperator {
    And,
    Or,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GitWorktree {
    #[serde(default)]
    pub force_shallow_clone: bool,
    #[serde(default = "yes")]
    pub allow_unshallow: bool,
    #[serde(default = "yes")]
    pub allow_fetch_origin_branches_and_tags: bool,
}

impl Default for GitWorktree {
    fn default() -> Self {
        GitWorktree { force_shallow_clone: false, allow_unshallow: true, allow_fetch_origin_branches_and_tags: true }
    }
}

fn yes() -> bool {
    true
}

/// `configVersion` as werf's yaml.v2 reads it into an `int`: a float is truncated
/// (`1.0` is 1).
#[derive(Debug)]
enum ConfigVersion {
    Int(i64),
    Float(f64),
}

impl<'de> Deserialize<'de> for ConfigVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ConfigVersion;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("i64")
            }
            fn visit_i64<E>(self, v: i64) -> Result<ConfigVersion, E> {
                Ok(ConfigVersion::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ConfigVersion, E> {
                i64::try_from(v).map(ConfigVersion::Int).map_err(|_| E::custom("invalid i64"))
            }
            fn visit_f64<E>(self, v: f64) -> Result<ConfigVersion, E> {
                Ok(ConfigVersion::Float(v))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl ConfigVersion {
    fn value(&self) -> i64 {
        match self {
            ConfigVersion::Int(i) => *i,
            ConfigVersion::Float(f) => *f as i64,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawMeta {
    config_version: Option<ConfigVersion>,
    project: Option<String>,
    build: Option<RawMetaBuild>,
    deploy: Option<MetaDeploy>,
    cleanup: Option<RawCleanup>,
    git_worktree: Option<GitWorktree>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawMetaBuild {
    cache_version: Option<String>,
    #[serde(default, deserialize_with = "seq_or_null")]
    platform: Vec<String>,
    #[serde(default)]
    staged: bool,
    image_spec: Option<RawGlobalImageSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCleanup {
    #[serde(default)]
    disable: bool,
    #[serde(default)]
    disable_kubernetes_based_policy: bool,
    #[serde(default)]
    disable_git_history_based_policy: bool,
    #[serde(default)]
    disable_built_within_last_n_hours_policy: bool,
    keep_images_built_within_last_n_hours: Option<u64>,
    #[serde(default, deserialize_with = "seq_or_null")]
    keep_policies: Vec<Spanned<RawKeepPolicy>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawKeepPolicy {
    references: Option<RawReferences>,
    images_per_reference: Option<RawLimit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReferences {
    branch: Option<String>,
    tag: Option<String>,
    limit: Option<RawLimit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimit {
    last: Option<i64>,
    #[serde(rename = "in")]
    within: Option<String>,
    operator: Option<LimitOperator>,
}

pub(crate) fn parse_meta(ctx: &Ctx<'_>) -> Result<Meta, ConfigError> {
    let raw: RawMeta = ctx.deserialize()?;
    let version_line = ctx.doc.key_line(&["configVersion"]).unwrap_or(ctx.doc.first_content_line());
    match raw.config_version.as_ref().map(ConfigVersion::value) {
        Some(1) => {}
        other => {
            return Err(ConfigError::ConfigVersion {
                file: ctx.file.to_owned(),
                line: version_line,
                found: other.map_or_else(|| "nothing".to_owned(), |v| v.to_string()),
            });
        }
    }
    let project_line = ctx.doc.key_line(&["project"]).unwrap_or(version_line);
    let project = raw.project.unwrap_or_default();
    if let Err(reason) = validate_project(&project) {
        return Err(ConfigError::ProjectName { file: ctx.file.to_owned(), line: project_line, name: project, reason });
    }
    let build = raw.build.map_or_else(MetaBuild::default, |b| MetaBuild {
        cache_version: b.cache_version,
        platform: b.platform,
        staged: b.staged,
        image_spec: b.image_spec.map(ImageSpec::from),
    });
    let deploy = raw.deploy.unwrap_or_default();
    let deploy_line = ctx.doc.key_line(&["deploy"]).unwrap_or(version_line);
    for (key, value) in [
        ("helmChartDir", &deploy.helm_chart_dir),
        ("helmRelease", &deploy.helm_release),
        ("namespace", &deploy.namespace),
    ] {
        if value.as_deref() == Some("") {
            return Err(ctx.invalid(deploy_line, format!("deploy.{key} must not be empty")));
        }
    }
    Ok(Meta {
        line: version_line,
        config_version: 1,
        project,
        build,
        deploy,
        cleanup: convert_cleanup(ctx, raw.cleanup.unwrap_or_default())?,
        git_worktree: raw.git_worktree.unwrap_or_default(),
    })
}

/// werf's project name rule: `^(?:[a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])$`, at most 50 chars.
pub fn validate_project(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("`project` is required and must not be empty".to_owned());
    }
    if name.len() > MAX_PROJECT_NAME_LEN {
        return Err(format!("must be at most {MAX_PROJECT_NAME_LEN} characters, got {}", name.len()));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if !name.chars().all(allowed) || name.starts_with('-') || name.ends_with('-') {
        return Err("only lowercase letters, digits and inner dashes are allowed".to_owned());
    }
    Ok(())
}

fn convert_cleanup(ctx: &Ctx<'_>, raw: RawCleanup) -> Result<MetaCleanup, ConfigError> {
    let mut keep_policies = Vec::with_capacity(raw.keep_policies.len());
    for spanned in raw.keep_policies {
        let line = ctx.line_of(&spanned);
        let policy = spanned.value;
        let Some(refs) = policy.references else {
            return Err(ctx.invalid(line, "cleanup keep policy: `references` is required"));
        };
        let (kind, value) = match (refs.branch, refs.tag) {
            (Some(b), None) => (RefKind::Branch, b),
            (None, Some(t)) => (RefKind::Tag, t),
            _ => {
                return Err(ctx.invalid(
                    line,
                    "cleanup keep policy: specify exactly one of `references.branch` and `references.tag`",
                ));
            }
        };
        let pattern = match value.strip_prefix('/').and_then(|v| v.strip_suffix('/')) {
            Some(re) if value.len() >= 2 => RefPattern::Regex(re.to_owned()),
            _ if value.is_empty() => {
                return Err(ctx.invalid(line, "cleanup keep policy: empty reference"));
            }
            _ => RefPattern::Exact(value),
        };
        keep_policies.push(KeepPolicy {
            line,
            references: References {
                kind,
                pattern,
                limit: refs.limit.map(|l| convert_limit(ctx, line, l)).transpose()?,
            },
            images_per_reference: policy.images_per_reference.map(|l| convert_limit(ctx, line, l)).transpose()?,
        });
    }
    Ok(MetaCleanup {
        disable: raw.disable,
        disable_kubernetes_based_policy: raw.disable_kubernetes_based_policy,
        disable_git_history_based_policy: raw.disable_git_history_based_policy,
        disable_built_within_last_n_hours_policy: raw.disable_built_within_last_n_hours_policy,
        keep_images_built_within_last_n_hours: raw.keep_images_built_within_last_n_hours.unwrap_or(2),
        keep_policies,
    })
}

fn convert_limit(ctx: &Ctx<'_>, line: usize, raw: RawLimit) -> Result<Limit, ConfigError> {
    let within = match raw.within {
        Some(text) => Some(parse_go_duration(&text).ok_or_else(|| {
            ctx.invalid(line, format!("cleanup keep policy: bad duration {text:?} (e.g. 24h, 90m, 1h30m)"))
        })?),
        None => None,
    };
    Ok(Limit { last: raw.last, within, operator: raw.operator })
}

/// Go's `time.ParseDuration` for non-negative values: `1h30m`, `1.5h`, `300ms`.
pub(crate) fn parse_go_duration(text: &str) -> Option<Duration> {
    const UNITS: &[(&str, f64)] =
        &[("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)];
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let (_, scale) = UNITS.iter().find(|(u, _)| *u == &rest[..unit_len])?;
        rest = &rest[unit_len..];
        total += number * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}
