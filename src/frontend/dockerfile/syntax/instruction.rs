//! The typed, still-unexpanded Dockerfile instructions.
//!
//! Arguments are kept as written, quotes and `$VAR`s included, because Docker
//! expands them only when the build reaches the instruction, with the
//! environment of that moment (see `resolve::expand_instruction`).

use std::time::Duration;

/// One instruction inside a stage, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// 1-based line of the instruction's first physical line.
    pub line: usize,
    /// The instruction text with continuations joined and comments dropped,
    /// as BuildKit keeps it, followed by each heredoc body and delimiter.
    pub original: String,
    pub instruction: Instruction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    Run(Run),
    Copy(Copy),
    Add(Add),
    /// `ENV k=v ...`, or the legacy `ENV k v with spaces` as one pair.
    Env(Vec<KeyValue>),
    Arg(Vec<ArgDef>),
    Workdir(String),
    User(String),
    Label(Vec<KeyValue>),
    Cmd(CommandLine),
    /// An empty shell form (`ENTRYPOINT` alone) resets the entrypoint.
    Entrypoint(CommandLine),
    Expose(Vec<String>),
    Volume(Vec<String>),
    StopSignal(String),
    /// Always the JSON form.
    Shell(Vec<String>),
    Healthcheck(Healthcheck),
    Onbuild(Onbuild),
    Maintainer(String),
}

impl Instruction {
    /// The keyword, upper case, as Docker prints it.
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::Run(_) => "RUN",
            Instruction::Copy(_) => "COPY",
            Instruction::Add(_) => "ADD",
            Instruction::Env(_) => "ENV",
            Instruction::Arg(_) => "ARG",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::User(_) => "USER",
            Instruction::Label(_) => "LABEL",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Volume(_) => "VOLUME",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Shell(_) => "SHELL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Onbuild(_) => "ONBUILD",
            Instruction::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// The two ways RUN, CMD, ENTRYPOINT and HEALTHCHECK CMD take a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// Passed to the stage's SHELL as one string.
    Shell(String),
    /// A JSON array of strings, run as is.
    Exec(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Raw `--mount` values in order, e.g. `type=cache,target=/root/.cache`.
    pub mounts: Vec<String>,
    pub network: Option<String>,
    pub security: Option<String>,
    pub command: CommandLine,
    /// Bodies of `<<EOF` heredocs named in the command, in order.
    pub heredocs: Vec<Heredoc>,
}

/// What a RUN runs, as BuildKit's `dispatchRun` decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunForm<'a> {
    /// The command as written; the bodies of its heredocs follow it, each ended by its
    /// delimiter, for the shell to read (`RUN cat <<A 3<<B`).
    Command(CommandLine),
    /// `RUN <<EOT` with nothing else: the body is the script, given to the shell.
    Script(&'a Heredoc),
    /// The same with a body starting with `#!`: written to a file that is run, so the
    /// interpreter of the shebang runs it.
    File(&'a Heredoc),
}

impl Run {
    pub fn form(&self) -> RunForm<'_> {
        let CommandLine::Shell(s) = &self.command else { return RunForm::Command(self.command.clone()) };
        let Some(first) = self.heredocs.first() else { return RunForm::Command(self.command.clone()) };
        if super::lex::parse_heredoc_word(s.trim()).is_some() {
            return if first.content.starts_with("#!") { RunForm::File(first) } else { RunForm::Script(first) };
        }
        let mut full = s.clone();
        for h in &self.heredocs {
            full.push('\n');
            full.push_str(&h.content);
            full.push_str(&h.name);
        }
        RunForm::Command(CommandLine::Shell(full))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// `--from`: a stage name, a stage index or an image reference.
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Vec<String>,
    /// Source paths, heredoc sources excluded.
    pub sources: Vec<String>,
    pub dest: String,
    /// Inline `<<EOF` sources; each becomes a file named after the heredoc.
    pub heredocs: Vec<Heredoc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub keep_git_dir: bool,
    pub checksum: Option<String>,
    /// `--unpack`; `None` keeps Docker's default (unpack local archives).
    pub unpack: Option<bool>,
    pub excludes: Vec<String>,
    pub sources: Vec<String>,
    pub dest: String,
    pub heredocs: Vec<Heredoc>,
}

/// One ENV or LABEL pair; both sides keep their quotes until expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// `ARG name` or `ARG name=default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDef {
    pub name: String,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    None,
    Check(HealthcheckCommand),
}

/// `HEALTHCHECK [options] CMD ...`; unset options inherit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthcheckCommand {
    /// The shell form becomes `CMD-SHELL` in the image config.
    pub test: CommandLine,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub retries: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Onbuild {
    /// The trigger text written into the image config's `OnBuild` list.
    pub expression: String,
    /// The trigger, parsed now so a mistake is reported in this build.
    pub instruction: Box<Instruction>,
}

/// A heredoc body (`<<EOF`, `<<-EOF`, `<<"EOF"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word with quotes removed.
    pub name: String,
    /// The lines between the instruction and the delimiter, each ending in
    /// `\n`; with `<<-`, leading tabs are already removed.
    pub content: String,
    /// Unquoted delimiter: `$VAR`s in the body are expanded
    /// (`expand::expand_heredoc`) for COPY and ADD; RUN leaves it to the shell.
    pub expand: bool,
    /// Written `<<-`.
    pub chomp: bool,
    /// The file descriptor before `<<` (`3<<EOF`), 0 when absent.
    pub fd: u32,
}
