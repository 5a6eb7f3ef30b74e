//! `secrets[]`: build secrets of Dockerfile and Stapel images.

use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::common::Ctx;
use super::error::ConfigError;

/// One build secret; exactly one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub line: usize,
    /// As written, or the env var name (`env`) / the file's base name (`src`).
    pub id: String,
    pub source: SecretSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `env: NAME`: the value of a host environment variable.
    Env(String),
    /// `src: PATH`: the content of a host file (`~` is expanded by the engine).
    File(String),
    /// `value: TEXT` (needs `id`).
    Value(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecret {
    id: Option<String>,
    env: Option<String>,
    src: Option<String>,
    value: Option<String>,
}

pub(crate) fn convert_secrets(ctx: &Ctx<'_>, raw: Vec<Spanned<RawSecret>>) -> Result<Vec<Secret>, ConfigError> {
    let mut out: Vec<Secret> = Vec::with_capacity(raw.len());
    for spanned in raw {
        let line = ctx.line_of(&spanned);
        let r = spanned.value;
        for (key, v) in [("env", &r.env), ("src", &r.src), ("value", &r.value)] {
            if v.as_deref() == Some("") {
                return Err(ctx.invalid(line, format!("secret: `{key}` must not be empty")));
            }
        }
        let (source, default_id) = match (r.env, r.src, r.value) {
            (Some(env), None, None) => (SecretSource::Env(env.clone()), Some(env)),
            (None, Some(src), None) => {
                let base = Path::new(&src).file_name().map(|n| n.to_string_lossy().into_owned());
                (SecretSource::File(src), base)
            }
            (None, None, Some(value)) => (SecretSource::Value(value), None),
            _ => {
                return Err(ctx.invalid(line, "secret: specify exactly one of `env`, `src` and `value`"));
            }
        };
        let id = match r.id.or(default_id) {
            Some(id) if !id.is_empty() => id,
            _ => return Err(ctx.invalid(line, "secret: `id` is required with `value`")),
        };
        if let Some(first) = out.iter().find(|s| s.id == id) {
            return Err(ctx.invalid(line, format!("secret id {id:?} is already used at line {}", first.line)));
        }
        out.push(Secret { line, id, source });
    }
    Ok(out)
}
