//! Plumbing shared by the document parsers: turning serde-saphyr errors and locations
//! into file lines, and the YAML shapes werf accepts in many places (`str | [str]`).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde_saphyr::{DefaultMessageFormatter, Location, MessageFormatter, Spanned};

use super::error::ConfigError;
use super::split::Doc;

/// Where a document came from, and how to describe it in errors.
pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    pub doc: Doc<'a>,
    /// Prefix naming the section, e.g. `image "backend": `; empty for the meta document.
    pub context: String,
}

impl Ctx<'_> {
    /// Deserializes the whole document strictly into `T`.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        serde_saphyr::from_str(self.doc.text).map_err(|e| self.yaml_error(&e))
    }

    pub fn yaml_error(&self, err: &serde_saphyr::Error) -> ConfigError {
        let err = err.without_snippet();
        ConfigError::Yaml {
            file: self.file.to_owned(),
            line: err.location().map_or(self.doc.first_content_line(), |l| self.line(&l)),
            context: self.context.clone(),
            message: DefaultMessageFormatter.format_message(err).into_owned(),
        }
    }

    /// File line of a location inside this document.
    pub fn line(&self, loc: &Location) -> usize {
        if loc.line() == 0 { self.doc.first_content_line() } else { self.doc.file_line(loc.line()) }
    }

    pub fn line_of<T>(&self, spanned: &Spanned<T>) -> usize {
        self.line(&spanned.referenced)
    }

    pub fn invalid(&self, line: usize, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            line,
            context: self.context.clone(),
            message: message.into(),
        }
    }
}

/// A YAML value that is a string or a list of strings (werf's `str | [str]`).
///
/// Scalars that YAML would type as numbers or booleans are kept as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StrOrSeq {
    Str(String),
    Seq(Vec<String>),
}

impl StrOrSeq {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StrOrSeq::Str(s) => vec![s],
            StrOrSeq::Seq(v) => v,
        }
    }
}

impl<'de> Deserialize<'de> for StrOrSeq {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrOrSeq;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrOrSeq, E> {
                Ok(StrOrSeq::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<StrOrSeq, E> {
                Ok(StrOrSeq::Str(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<StrOrSeq, E> {
                Ok(StrOrSeq::Str(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StrOrSeq, E> {
                Ok(StrOrSeq::Str(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StrOrSeq, E> {
                Ok(StrOrSeq::Str(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<StrOrSeq, E> {
                Ok(StrOrSeq::Str(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrOrSeq, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    out.push(item);
                }
                Ok(StrOrSeq::Seq(out))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `deserialize_with` for `str | [str]` fields; null and absent give an empty list.
pub(crate) fn str_or_seq<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<StrOrSeq>::deserialize(d)?.map(StrOrSeq::into_vec).unwrap_or_default())
}

/// `deserialize_with` for plain lists where null means empty.
pub(crate) fn seq_or_null<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// The user stages that imports and dependencies attach to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Anchor {
    Install,
    Setup,
}

/// `before: install|setup` or `after: install|setup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    Before(Anchor),
    After(Anchor),
}

/// Exactly one of `before` / `after`.
pub(crate) fn relation(
    ctx: &Ctx<'_>,
    line: usize,
    what: &str,
    before: Option<Anchor>,
    after: Option<Anchor>,
) -> Result<Relation, ConfigError> {
    match (before, after) {
        (Some(b), None) => Ok(Relation::Before(b)),
        (None, Some(a)) => Ok(Relation::After(a)),
        (Some(_), Some(_)) => Err(ctx
            .invalid(line, format!("{what}: specify only one of `before: install|setup` and `after: install|setup`"))),
        (None, None) => {
            Err(ctx.invalid(line, format!("{what}: `before: install|setup` or `after: install|setup` is required")))
        }
    }
}

/// werf's rule for paths inside an image: absolute.
pub(crate) fn require_absolute(ctx: &Ctx<'_>, line: usize, what: &str, path: &str) -> Result<(), ConfigError> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(ctx.invalid(line, format!("{what} must be an absolute path, got {path:?}")))
    }
}

/// werf's rule for globs inside a source tree: relative.
pub(crate) fn require_relative(ctx: &Ctx<'_>, line: usize, what: &str, paths: &[String]) -> Result<(), ConfigError> {
    match paths.iter().find(|p| p.starts_with('/')) {
        Some(p) => Err(ctx.invalid(line, format!("{what} must be relative paths, got {p:?}"))),
        None => Ok(()),
    }
}
