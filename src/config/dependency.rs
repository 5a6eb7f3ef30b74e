//! `dependencies[]`: information about another image (name, tag, digest…) passed into a
//! build as build args (Dockerfile) or environment variables (Stapel).

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::common::{Anchor, Ctx, Relation, relation, seq_or_null};
use super::error::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub line: usize,
    /// The werf image depended on (`from`, or the deprecated `image`).
    pub image: String,
    /// Stapel only: where the variables become available; `None` for Dockerfile images.
    pub relation: Option<Relation>,
    pub imports: Vec<DependencyImport>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyImport {
    pub kind: DependencyImportType,
    /// `targetBuildArg` (Dockerfile) or `targetEnv` (Stapel).
    pub target: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum DependencyImportType {
    ImageName,
    ImageID,
    ImageRepo,
    ImageTag,
    ImageDigest,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDockerfileDependency {
    from: Option<String>,
    image: Option<String>,
    #[serde(default, deserialize_with = "seq_or_null")]
    imports: Vec<RawBuildArgImport>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawBuildArgImport {
    #[serde(rename = "type")]
    kind: DependencyImportType,
    target_build_arg: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStapelDependency {
    from: Option<String>,
    image: Option<String>,
    before: Option<Anchor>,
    after: Option<Anchor>,
    #[serde(default, deserialize_with = "seq_or_null")]
    imports: Vec<RawEnvImport>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawEnvImport {
    #[serde(rename = "type")]
    kind: DependencyImportType,
    target_env: String,
}

pub(crate) fn convert_dockerfile_deps(
    ctx: &Ctx<'_>,
    raw: Vec<Spanned<RawDockerfileDependency>>,
) -> Result<Vec<Dependency>, ConfigError> {
    raw.into_iter()
        .map(|s| {
            let line = ctx.line_of(&s);
            let r = s.value;
            let imports =
                r.imports.into_iter().map(|i| DependencyImport { kind: i.kind, target: i.target_build_arg }).collect();
            finish(ctx, line, r.from, r.image, None, imports)
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|deps| check_targets(ctx, deps, "targetBuildArg"))
}

pub(crate) fn convert_stapel_deps(
    ctx: &Ctx<'_>,
    raw: Vec<Spanned<RawStapelDependency>>,
) -> Result<Vec<Dependency>, ConfigError> {
    raw.into_iter()
        .map(|s| {
            let line = ctx.line_of(&s);
            let r = s.value;
            let rel = relation(ctx, line, "dependency", r.before, r.after)?;
            let imports =
                r.imports.into_iter().map(|i| DependencyImport { kind: i.kind, target: i.target_env }).collect();
            finish(ctx, line, r.from, r.image, Some(rel), imports)
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|deps| check_targets(ctx, deps, "targetEnv"))
}

fn finish(
    ctx: &Ctx<'_>,
    line: usize,
    from: Option<String>,
    image: Option<String>,
    relation: Option<Relation>,
    imports: Vec<DependencyImport>,
) -> Result<Dependency, ConfigError> {
    let image = match (from, image) {
        (Some(name), None) | (None, Some(name)) if !name.is_empty() => name,
        (Some(_), Some(_)) => {
            return Err(ctx.invalid(line, "dependency: specify only one of `from` and `image`"));
        }
        _ => return Err(ctx.invalid(line, "dependency: `from: IMAGE` is required")),
    };
    Ok(Dependency { line, image, relation, imports })
}

/// Every target variable must be named and set by one import only.
fn check_targets(ctx: &Ctx<'_>, deps: Vec<Dependency>, key: &str) -> Result<Vec<Dependency>, ConfigError> {
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for dep in &deps {
        for import in &dep.imports {
            if import.target.is_empty() {
                return Err(ctx.invalid(dep.line, format!("dependency: `{key}` must not be empty")));
            }
            if let Some((_, first)) = seen.iter().find(|(t, _)| *t == import.target) {
                return Err(ctx.invalid(
                    dep.line,
                    format!("dependency: {key} {:?} is already set at line {first}", import.target),
                ));
            }
            seen.push((&import.target, dep.line));
        }
    }
    Ok(deps)
}
