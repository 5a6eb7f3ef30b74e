//! The Dockerfile front end: text in, typed stages out, no I/O.
//!
//! It follows BuildKit's Dockerfile frontend, so a Dockerfile means here what
//! it means to `docker build`. The work is split the way BuildKit splits it:
//!
//! ```text
//! text ──lex──▶ logical lines ──parse──▶ Dockerfile { meta ARGs, stages[steps] }
//!      (directives, continuations,        (typed, unexpanded instructions)
//!       comments, heredoc bodies)
//!
//! at build time:  resolve::expand_instruction(step, env)  ◀── the engine's env
//!                 stages::dependencies(target)            ──▶ stages to build
//! ```
//!
//! Arguments stay unexpanded after parsing because their value depends on the
//! ENV and ARG state of the stage when the build reaches them.

// Parts of the API wait for the engine to use them.

mod duration;
mod expand;
mod instruction;
mod lex;
mod parse;
mod pattern;
mod resolve;
mod stages;
mod words;

#[cfg(test)]
mod tests;

use std::fmt;

// Re-exported: the whole public surface of the module.
#[allow(unused_imports)] // public surface: the engine uses part of it, the tests all
pub use duration::DurationError;
#[allow(unused_imports)] // public surface: the engine uses part of it, the tests all
pub use expand::{ExpandError, Lookup, expand_heredoc, expand_word, expand_words};
#[allow(unused_imports)] // public surface: the engine uses part of it, the tests all
pub use instruction::{
    Add, ArgDef, CommandLine, Copy, Healthcheck, HealthcheckCommand, Heredoc, Instruction, KeyValue, Onbuild, Run,
    RunForm, Step,
};
#[allow(unused_imports)] // public surface: the engine uses part of it, the tests all
pub use pattern::PatternError;
#[allow(unused_imports)] // public surface: the engine uses part of it, the tests all
pub use resolve::{ExpandedFrom, MetaArgs, expand_instruction};
#[allow(unused_imports)] // public surface: the engine uses part of it, the tests all
pub use stages::StageRef;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The path given to [`parse`], used in later error messages.
    pub file: String,
    /// The escape character: `\`, or `` ` `` after `# escape=``.
    pub escape: char,
    /// The `# syntax=` directive, recorded but not acted on.
    pub syntax: Option<String>,
    /// ARGs before the first FROM; only they can be used in FROM lines.
    pub meta_args: Vec<MetaArg>,
    /// At least one.
    pub stages: Vec<Stage>,
}

/// One name declared by an ARG before the first FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaArg {
    pub line: usize,
    pub arg: ArgDef,
}

/// A build stage: a FROM line and the steps up to the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Position among the stages, as `COPY --from=0` counts.
    pub index: usize,
    /// The `AS` name, lower-cased.
    pub name: Option<String>,
    /// The base as written, e.g. `$REG/busybox:${TAG}`, a stage name or `scratch`.
    pub base: String,
    /// `--platform` as written.
    pub platform: Option<String>,
    pub line: usize,
    pub original: String,
    pub steps: Vec<Step>,
}

/// A Dockerfile problem, with the file and (when it has one) the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerfileError {
    pub file: String,
    /// 1-based; `None` for problems of the whole file.
    pub line: Option<usize>,
    pub kind: ErrorKind,
}

impl fmt::Display for DockerfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.kind),
            None => write!(f, "{}: {}", self.file, self.kind),
        }
    }
}

// The message already includes the kind, so it is not exposed as a source:
// an error chain would print it twice.
impl std::error::Error for DockerfileError {}

/// What is wrong, without the location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("file with no instructions")]
    Empty,
    #[error("no FROM instruction in the file")]
    NoStages,
    #[error("no FROM instruction before {0}")]
    NoFrom(&'static str),
    #[error("unknown instruction \"{0}\"")]
    UnknownInstruction(String),
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscapeToken(String),
    #[error("{0} requires at least one argument")]
    AtLeastOneArgument(&'static str),
    #[error("{0} requires exactly one argument")]
    ExactlyOneArgument(&'static str),
    #[error("{instruction} requires at least two arguments, but got {got}")]
    AtLeastTwoArguments { instruction: &'static str, got: usize },
    #[error("FROM requires either one or three arguments")]
    FromArguments,
    #[error("invalid name for build stage: \"{0}\", name can't start with a number or contain symbols")]
    InvalidStageName(String),
    #[error("duplicate stage name \"{0}\"")]
    DuplicateStageName(String),
    #[error("unknown flag --{flag} for {instruction}")]
    UnknownFlag { instruction: &'static str, flag: String },
    #[error("duplicate flag --{0}")]
    DuplicateFlag(String),
    #[error("missing a value on flag --{0}")]
    MissingFlagValue(String),
    #[error("expecting boolean value for flag --{flag}, not: {value}")]
    BadBoolFlag { flag: String, value: String },
    #[error("{0} requires the arguments to be in JSON form")]
    NotJson(&'static str),
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    NotStringArray,
    #[error("{0} must have two arguments")]
    TwoArguments(&'static str),
    #[error("can't find = in \"{0}\", must be of the form name=value")]
    MissingEquals(String),
    #[error("{0} names can not be blank")]
    BlankName(&'static str),
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    #[error("HEALTHCHECK NONE takes no arguments")]
    HealthcheckNoneArguments,
    #[error("missing command after HEALTHCHECK CMD")]
    HealthcheckMissingCommand,
    #[error("unknown type \"{0}\" in HEALTHCHECK (try CMD)")]
    HealthcheckType(String),
    #[error("--{flag}: {error}")]
    BadDuration { flag: &'static str, error: DurationError },
    #[error("--{0} cannot be less than 1ms")]
    DurationTooShort(&'static str),
    #[error("--retries must be a non-negative integer, not \"{0}\"")]
    BadRetries(String),
    #[error("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")]
    OnbuildChain,
    #[error("{0} isn't allowed as an ONBUILD trigger")]
    OnbuildTrigger(String),
    #[error("ONBUILD trigger is not one instruction: \"{0}\"")]
    Trigger(String),
    #[error("unterminated heredoc \"{0}\"")]
    UnterminatedHeredoc(String),
    #[error("{0} cannot have a heredoc as a destination")]
    HeredocDestination(&'static str),
    #[error("failed to process \"{}\": {error}", Abbrev(word))]
    Expand { word: String, error: ExpandError },
    #[error("base name ({0}) should not be blank")]
    BlankBase(String),
    #[error("target stage \"{0}\" could not be found")]
    TargetNotFound(String),
    #[error("invalid stage index {0}")]
    InvalidStageIndex(i64),
    #[error("circular dependency detected on stage {0}")]
    CircularDependency(String),
}

impl ErrorKind {
    /// Locates the error at a line of `file`.
    pub fn at(self, file: &str, line: usize) -> DockerfileError {
        DockerfileError { file: file.to_owned(), line: Some(line), kind: self }
    }

    /// Locates the error in `file` as a whole.
    pub fn in_file(self, file: &str) -> DockerfileError {
        DockerfileError { file: file.to_owned(), line: None, kind: self }
    }
}

/// Parses a Dockerfile. `file` names it in error messages.
pub fn parse(file: &str, text: &str) -> Result<Dockerfile, DockerfileError> {
    let lexed = lex::lex(text).map_err(|(line, kind)| kind.at(file, line))?;
    if lexed.lines.is_empty() {
        return Err(ErrorKind::Empty.in_file(file));
    }
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for logical in lexed.lines {
        // Heredoc bodies are part of what the instruction does, so they are
        // part of its text (and of any cache key made from it).
        let mut original = logical.text.clone();
        for h in &logical.heredocs {
            original.push('\n');
            original.push_str(&h.content);
            original.push_str(&h.name);
        }
        let parsed = parse::parse_line(&logical.text, logical.heredocs, lexed.escape)
            .map_err(|kind| kind.at(file, logical.line))?;
        match parsed {
            parse::Parsed::From(from) => {
                if let Some(name) = &from.name
                    && stages.iter().any(|s| s.name.as_ref() == Some(name))
                {
                    return Err(ErrorKind::DuplicateStageName(name.clone()).at(file, logical.line));
                }
                stages.push(Stage {
                    index: stages.len(),
                    name: from.name,
                    base: from.base,
                    platform: from.platform,
                    line: logical.line,
                    original: logical.text,
                    steps: Vec::new(),
                });
            }
            parse::Parsed::Instruction(instruction) => match stages.last_mut() {
                Some(stage) => stage.steps.push(Step { line: logical.line, original, instruction }),
                None => match instruction {
                    Instruction::Arg(args) => {
                        meta_args.extend(args.into_iter().map(|arg| MetaArg { line: logical.line, arg }))
                    }
                    other => {
                        return Err(ErrorKind::NoFrom(other.keyword()).at(file, logical.line));
                    }
                },
            },
        }
    }
    if stages.is_empty() {
        return Err(ErrorKind::NoStages.in_file(file));
    }
    Ok(Dockerfile { file: file.to_owned(), escape: lexed.escape, syntax: lexed.syntax, meta_args, stages })
}

/// Parses an ONBUILD trigger recorded in a base image's config, as the child
/// build runs it; `image` names the base image in error messages.
pub fn parse_trigger(image: &str, expression: &str) -> Result<Instruction, DockerfileError> {
    let lexed = lex::lex(expression).map_err(|(line, kind)| kind.at(image, line))?;
    let mut lines = lexed.lines.into_iter();
    let (Some(logical), None) = (lines.next(), lines.next()) else {
        return Err(ErrorKind::Trigger(expression.to_owned()).in_file(image));
    };
    let trigger = words::split_command(&logical.text).0.to_ascii_uppercase();
    if matches!(trigger.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
        return Err(ErrorKind::OnbuildTrigger(trigger).at(image, logical.line));
    }
    match parse::parse_line(&logical.text, logical.heredocs, lexed.escape) {
        Ok(parse::Parsed::Instruction(instruction)) => Ok(instruction),
        Ok(parse::Parsed::From(_)) => Err(ErrorKind::OnbuildTrigger(trigger).at(image, logical.line)),
        Err(kind) => Err(kind.at(image, logical.line)),
    }
}

/// A word as shown in an error: whole when short, else its start and a `…`, so a
/// hostile 100 KiB word does not become a 100 KiB message.
struct Abbrev<'a>(&'a str);

impl std::fmt::Display for Abbrev<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 80;
        match self.0.char_indices().nth(SHOWN) {
            Some((end, _)) => write!(f, "{}…", &self.0[..end]),
            None => f.write_str(self.0),
        }
    }
}
