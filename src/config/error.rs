//! The one error type of werf.yaml parsing.
//!
//! Every variant that comes from the file carries the file name and the 1-based line in
//! the *whole* file (not in the YAML document), so `werf.yaml:17: …` points at the line
//! an editor shows.

use std::fmt;

/// A werf.yaml that cannot be used, or an image selection that does not match it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The YAML deserializer rejected a document (syntax, unknown key, wrong type).
    #[error("{file}:{line}: {context}{message}")]
    Yaml {
        file: String,
        line: usize,
        /// `image "backend": ` or empty for the meta document.
        context: String,
        message: String,
    },

    /// Rendering the Go template failed (the message names file, line and column).
    #[error("{file}: rendering the Go template: {message}")]
    Render { file: String, message: String },

    /// A document is neither meta nor an image.
    #[error(
        "{file}:{line}: cannot recognize the document: the meta document needs `configVersion`, \
         an image document needs `image`, `artifact` or `dockerfile`"
    )]
    UnknownDocument { file: String, line: usize },

    /// No document with `configVersion`.
    #[error("{file}: no meta document: add one with `configVersion: 1` and `project: NAME`")]
    MissingMeta { file: String },

    /// A second document with `configVersion`.
    #[error("{file}:{line}: duplicate meta document (the first one starts at line {first})")]
    DuplicateMeta { file: String, line: usize, first: usize },

    /// `configVersion` is missing, null or not 1.
    #[error("{file}:{line}: configVersion must be 1, got {found}")]
    ConfigVersion { file: String, line: usize, found: String },

    /// `project` is missing or does not fit werf's rules.
    #[error("{file}:{line}: bad project name {name:?}: {reason}")]
    ProjectName { file: String, line: usize, name: String, reason: String },

    /// A value the YAML types accept but werf's rules do not.
    #[error("{file}:{line}: {context}{message}")]
    Invalid { file: String, line: usize, context: String, message: String },

    /// Two images with the same name.
    #[error("{file}:{line}: {} is already defined at line {first}", ImageLabel(name))]
    DuplicateImage { file: String, line: usize, name: String, first: usize },

    /// A reference (`fromImage`, `import`, `dependencies`, …) to an image that is not defined.
    #[error("{file}:{line}: {} refers to {what} {name:?}, which is not an image of this config", ImageLabel(image))]
    UnknownReference { file: String, line: usize, image: String, what: &'static str, name: String },

    /// Images that depend on each other in a loop.
    #[error("{file}:{line}: images depend on each other in a cycle: {}", QuotedChain(chain))]
    Cycle { file: String, line: usize, chain: Vec<String> },

    /// `select` was asked for a name the config does not define.
    #[error("image {name:?} is not defined in werf.yaml (defined: {known})")]
    UnknownImage { name: String, known: String },
}

/// `image "name"`, or `nameless image` for the unnamed one.
pub(crate) struct ImageLabel<'a>(pub &'a str);

impl fmt::Display for ImageLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() { f.write_str("nameless image") } else { write!(f, "image {:?}", self.0) }
    }
}

struct QuotedChain<'a>(&'a [String]);

impl fmt::Display for QuotedChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" -> ")?;
            }
            write!(f, "{name:?}")?;
        }
        Ok(())
    }
}
