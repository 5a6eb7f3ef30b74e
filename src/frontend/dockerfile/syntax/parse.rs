//! From one logical line to a typed instruction: the keyword, the flags each
//! instruction accepts, and the argument forms (JSON or shell, `k=v` or
//! legacy), with BuildKit's argument-count rules.

use super::ErrorKind;
use super::duration::parse_duration;
use super::instruction::{
    Add, ArgDef, CommandLine, Copy, Healthcheck, HealthcheckCommand, Heredoc, Instruction, KeyValue, Onbuild, Run,
};
use super::lex::parse_heredoc_word;
use super::words::{Json, extract_flags, parse_json_array, parse_words, split_blank, split_command};
use std::time::Duration;

/// A FROM line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct From {
    pub base: String,
    pub name: Option<String>,
    pub platform: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    From(From),
    Instruction(Instruction),
}

/// Parses one logical line; `heredocs` are the bodies the lexer read for it.
pub(crate) fn parse_line(text: &str, heredocs: Vec<Heredoc>, escape: char) -> Result<Parsed, ErrorKind> {
    let (command, rest) = split_command(text);
    let (flags, args) = extract_flags(rest);
    let keyword = command.to_ascii_lowercase();
    let line = Line { flags: &flags, args, escape };
    Ok(Parsed::Instruction(match keyword.as_str() {
        "from" => return parse_from(&line).map(Parsed::From),
        "run" => parse_run(&line, heredocs)?,
        "copy" => parse_copy(&line, heredocs)?,
        "add" => parse_add(&line, heredocs)?,
        "env" => {
            line.no_flags("ENV")?;
            Instruction::Env(key_values(&line, "ENV")?)
        }
        "label" => {
            line.no_flags("LABEL")?;
            Instruction::Label(key_values(&line, "LABEL")?)
        }
        "arg" => parse_arg(&line)?,
        "workdir" => Instruction::Workdir(line.one_argument("WORKDIR")?),
        "user" => Instruction::User(line.one_argument("USER")?),
        "stopsignal" => Instruction::StopSignal(line.one_argument("STOPSIGNAL")?),
        "maintainer" => Instruction::Maintainer(line.one_argument("MAINTAINER")?),
        "cmd" => {
            line.no_flags("CMD")?;
            Instruction::Cmd(command_line(args)?)
        }
        "entrypoint" => {
            line.no_flags("ENTRYPOINT")?;
            Instruction::Entrypoint(command_line(args)?)
        }
        "shell" => parse_shell(&line)?,
        "expose" => {
            let ports = split_blank(args);
            if ports.is_empty() {
                return Err(ErrorKind::AtLeastOneArgument("EXPOSE"));
            }
            line.no_flags("EXPOSE")?;
            Instruction::Expose(ports)
        }
        "volume" => parse_volume(&line)?,
        "healthcheck" => parse_healthcheck(&line)?,
        "onbuild" => parse_onbuild(text, &line, heredocs)?,
        _ => return Err(ErrorKind::UnknownInstruction(command.to_owned())),
    }))
}

/// The parts of a line every instruction parser needs.
struct Line<'a> {
    /// Leading `--flag[=value]` words, without the dashes.
    flags: &'a [String],
    /// Everything after the flags, trimmed.
    args: &'a str,
    escape: char,
}

impl Line<'_> {
    fn no_flags(&self, instruction: &'static str) -> Result<(), ErrorKind> {
        parse_flags(instruction, self.flags, &[]).map(drop)
    }

    /// WORKDIR, USER and friends take the rest of the line as one argument.
    fn one_argument(&self, instruction: &'static str) -> Result<String, ErrorKind> {
        if self.args.is_empty() {
            return Err(ErrorKind::ExactlyOneArgument(instruction));
        }
        self.no_flags(instruction)?;
        Ok(self.args.to_owned())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlagKind {
    Bool,
    String,
    /// May repeat, e.g. `--mount`.
    Strings,
}

#[derive(Debug, Default)]
struct Flags {
    values: Vec<(&'static str, Vec<String>)>,
}

impl Flags {
    fn get(&self, name: &str) -> Option<&[String]> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_slice())
    }

    fn string(&self, name: &str) -> Option<String> {
        self.get(name).and_then(|v| v.first().cloned())
    }

    fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).map(|v| v.first().is_some_and(|b| b == "true"))
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.get(name).map(<[String]>::to_vec).unwrap_or_default()
    }
}

/// BuildKit's `BFlags.Parse`: every flag must be known to the instruction;
/// only list flags may repeat; booleans accept `--x`, `--x=true|false`.
fn parse_flags(
    instruction: &'static str,
    raw: &[String],
    spec: &[(&'static str, FlagKind)],
) -> Result<Flags, ErrorKind> {
    let mut flags = Flags::default();
    for arg in raw {
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (arg.as_str(), None),
        };
        let Some(&(key, kind)) = spec.iter().find(|(n, _)| *n == name) else {
            return Err(ErrorKind::UnknownFlag { instruction, flag: name.to_owned() });
        };
        let value = match (kind, value) {
            (FlagKind::Bool, None) => "true".to_owned(),
            (FlagKind::Bool, Some(v)) if v.eq_ignore_ascii_case("true") => "true".to_owned(),
            (FlagKind::Bool, Some(v)) if v.eq_ignore_ascii_case("false") => "false".to_owned(),
            (_, None) | (FlagKind::Bool, Some("")) => {
                return Err(ErrorKind::MissingFlagValue(name.to_owned()));
            }
            (FlagKind::Bool, Some(v)) => {
                return Err(ErrorKind::BadBoolFlag { flag: name.to_owned(), value: v.to_owned() });
            }
            (_, Some(v)) => v.to_owned(),
        };
        match flags.values.iter_mut().find(|(n, _)| *n == key) {
            Some((_, values)) if kind == FlagKind::Strings => values.push(value),
            Some(_) => return Err(ErrorKind::DuplicateFlag(name.to_owned())),
            None => flags.values.push((key, vec![value])),
        }
    }
    Ok(flags)
}

/// Exec form when the arguments are a JSON array of strings, shell form
/// otherwise (invalid JSON silently falls back, as in Docker).
fn command_line(args: &str) -> Result<CommandLine, ErrorKind> {
    match parse_json_array(args) {
        Json::Array(words) => Ok(CommandLine::Exec(words)),
        Json::NotStrings => Err(ErrorKind::NotStringArray),
        Json::Invalid => Ok(CommandLine::Shell(args.to_owned())),
    }
}

/// COPY, ADD and VOLUME: a JSON array, or words split on blanks (quotes are
/// not grouping here; expansion removes them later, per word).
fn list(args: &str) -> Result<Vec<String>, ErrorKind> {
    match parse_json_array(args) {
        Json::Array(words) => Ok(words),
        Json::NotStrings => Err(ErrorKind::NotStringArray),
        Json::Invalid => Ok(split_blank(args)),
    }
}

fn parse_from(line: &Line<'_>) -> Result<From, ErrorKind> {
    let args = split_blank(line.args);
    let name = match args.as_slice() {
        [_] => None,
        [_, as_, name] if as_.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            let mut chars = lower.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                return Err(ErrorKind::InvalidStageName(name.clone()));
            }
            Some(lower)
        }
        _ => return Err(ErrorKind::FromArguments),
    };
    let flags = parse_flags("FROM", line.flags, &[("platform", FlagKind::String)])?;
    Ok(From { base: args[0].clone(), name, platform: flags.string("platform") })
}

fn parse_run(line: &Line<'_>, heredocs: Vec<Heredoc>) -> Result<Instruction, ErrorKind> {
    let flags = parse_flags(
        "RUN",
        line.flags,
        &[("mount", FlagKind::Strings), ("network", FlagKind::String), ("security", FlagKind::String)],
    )?;
    Ok(Instruction::Run(Run {
        mounts: flags.strings("mount"),
        network: flags.string("network"),
        security: flags.string("security"),
        command: command_line(line.args)?,
        heredocs,
    }))
}

/// Sources, destination and inline heredoc sources of COPY / ADD.
struct Transfer {
    sources: Vec<String>,
    dest: String,
    heredocs: Vec<Heredoc>,
}

fn transfer(instruction: &'static str, mut args: Vec<String>, heredocs: Vec<Heredoc>) -> Result<Transfer, ErrorKind> {
    let dest = args.pop().unwrap_or_default();
    if parse_heredoc_word(&dest).is_some() {
        return Err(ErrorKind::HeredocDestination(instruction));
    }
    let mut sources = Vec::new();
    let mut inline = Vec::new();
    for source in args {
        match parse_heredoc_word(&source) {
            Some(word) => inline.extend(heredocs.iter().find(|h| h.name == word.name).cloned()),
            None => sources.push(source),
        }
    }
    Ok(Transfer { sources, dest, heredocs: inline })
}

fn at_least_two(instruction: &'static str, args: &str) -> Result<Vec<String>, ErrorKind> {
    let args = list(args)?;
    if args.len() < 2 {
        return Err(ErrorKind::AtLeastTwoArguments { instruction, got: args.len() });
    }
    Ok(args)
}

fn parse_copy(line: &Line<'_>, heredocs: Vec<Heredoc>) -> Result<Instruction, ErrorKind> {
    let args = at_least_two("COPY", line.args)?;
    let flags = parse_flags(
        "COPY",
        line.flags,
        &[
            ("from", FlagKind::String),
            ("chown", FlagKind::String),
            ("chmod", FlagKind::String),
            ("link", FlagKind::Bool),
            ("parents", FlagKind::Bool),
            ("exclude", FlagKind::Strings),
        ],
    )?;
    let t = transfer("COPY", args, heredocs)?;
    Ok(Instruction::Copy(Copy {
        from: flags.string("from"),
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link").unwrap_or(false),
        parents: flags.bool("parents").unwrap_or(false),
        excludes: flags.strings("exclude"),
        sources: t.sources,
        dest: t.dest,
        heredocs: t.heredocs,
    }))
}

fn parse_add(line: &Line<'_>, heredocs: Vec<Heredoc>) -> Result<Instruction, ErrorKind> {
    let args = at_least_two("ADD", line.args)?;
    let flags = parse_flags(
        "ADD",
        line.flags,
        &[
            ("chown", FlagKind::String),
            ("chmod", FlagKind::String),
            ("link", FlagKind::Bool),
            ("keep-git-dir", FlagKind::Bool),
            ("checksum", FlagKind::String),
            ("unpack", FlagKind::Bool),
            ("exclude", FlagKind::Strings),
        ],
    )?;
    let t = transfer("ADD", args, heredocs)?;
    Ok(Instruction::Add(Add {
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link").unwrap_or(false),
        keep_git_dir: flags.bool("keep-git-dir").unwrap_or(false),
        checksum: flags.string("checksum"),
        unpack: flags.bool("unpack"),
        excludes: flags.strings("exclude"),
        sources: t.sources,
        dest: t.dest,
        heredocs: t.heredocs,
    }))
}

/// ENV and LABEL: `k=v k2="v 2"`, or the legacy `k v with spaces` when the
/// first word has no `=`.
fn key_values(line: &Line<'_>, instruction: &'static str) -> Result<Vec<KeyValue>, ErrorKind> {
    let words = parse_words(line.args, line.escape);
    let Some(first) = words.first() else {
        return Err(ErrorKind::AtLeastOneArgument(instruction));
    };
    let pairs = if first.contains('=') {
        words
            .iter()
            .map(|w| match w.split_once('=') {
                Some((k, v)) => Ok(KeyValue { key: k.to_owned(), value: v.to_owned() }),
                None => Err(ErrorKind::MissingEquals(w.clone())),
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        let Some(i) = line.args.find(super::words::is_blank) else {
            return Err(ErrorKind::TwoArguments(instruction));
        };
        vec![KeyValue {
            key: line.args[..i].to_owned(),
            value: line.args[i..].trim_start_matches(super::words::is_blank).to_owned(),
        }]
    };
    if pairs.iter().any(|p| p.key.is_empty()) {
        return Err(ErrorKind::BlankName(instruction));
    }
    Ok(pairs)
}

fn parse_arg(line: &Line<'_>) -> Result<Instruction, ErrorKind> {
    let words = parse_words(line.args, line.escape);
    if words.is_empty() {
        return Err(ErrorKind::AtLeastOneArgument("ARG"));
    }
    line.no_flags("ARG")?;
    let defs: Vec<ArgDef> = words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((name, default)) => ArgDef { name: name.to_owned(), default: Some(default.to_owned()) },
            None => ArgDef { name: w, default: None },
        })
        .collect();
    if defs.iter().any(|d| d.name.is_empty()) {
        return Err(ErrorKind::BlankName("ARG"));
    }
    Ok(Instruction::Arg(defs))
}

fn parse_shell(line: &Line<'_>) -> Result<Instruction, ErrorKind> {
    line.no_flags("SHELL")?;
    match parse_json_array(line.args) {
        Json::Array(words) if !words.is_empty() => Ok(Instruction::Shell(words)),
        Json::Array(_) => Err(ErrorKind::AtLeastOneArgument("SHELL")),
        Json::NotStrings => Err(ErrorKind::NotStringArray),
        Json::Invalid if line.args.is_empty() => Err(ErrorKind::AtLeastOneArgument("SHELL")),
        Json::Invalid => Err(ErrorKind::NotJson("SHELL")),
    }
}

fn parse_volume(line: &Line<'_>) -> Result<Instruction, ErrorKind> {
    line.no_flags("VOLUME")?;
    let volumes = list(line.args)?;
    if volumes.is_empty() {
        return Err(ErrorKind::AtLeastOneArgument("VOLUME"));
    }
    volumes
        .into_iter()
        .map(|v| {
            let v = v.trim();
            if v.is_empty() { Err(ErrorKind::EmptyVolume) } else { Ok(v.to_owned()) }
        })
        .collect::<Result<_, _>>()
        .map(Instruction::Volume)
}

fn parse_healthcheck(line: &Line<'_>) -> Result<Instruction, ErrorKind> {
    let (kind, rest) = split_command(line.args);
    if kind.is_empty() {
        return Err(ErrorKind::AtLeastOneArgument("HEALTHCHECK"));
    }
    let kind = kind.to_ascii_uppercase();
    if kind == "NONE" {
        if !rest.is_empty() || !line.flags.is_empty() {
            return Err(ErrorKind::HealthcheckNoneArguments);
        }
        return Ok(Instruction::Healthcheck(Healthcheck::None));
    }
    let flags = parse_flags(
        "HEALTHCHECK",
        line.flags,
        &[
            ("interval", FlagKind::String),
            ("timeout", FlagKind::String),
            ("start-period", FlagKind::String),
            ("start-interval", FlagKind::String),
            ("retries", FlagKind::String),
        ],
    )?;
    if kind != "CMD" {
        return Err(ErrorKind::HealthcheckType(kind));
    }
    let test = command_line(rest)?;
    if matches!(&test, CommandLine::Shell(s) if s.is_empty()) || matches!(&test, CommandLine::Exec(v) if v.is_empty()) {
        return Err(ErrorKind::HealthcheckMissingCommand);
    }
    let duration = |flag: &'static str| -> Result<Option<Duration>, ErrorKind> {
        let Some(value) = flags.string(flag).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let d = parse_duration(&value).map_err(|error| ErrorKind::BadDuration { flag, error })?;
        if !d.is_zero() && d < Duration::from_millis(1) {
            return Err(ErrorKind::DurationTooShort(flag));
        }
        Ok(Some(d))
    };
    let retries = match flags.string("retries").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => Some(v.parse::<i32>().ok().and_then(|n| u32::try_from(n).ok()).ok_or(ErrorKind::BadRetries(v))?),
    };
    Ok(Instruction::Healthcheck(Healthcheck::Check(HealthcheckCommand {
        test,
        interval: duration("interval")?,
        timeout: duration("timeout")?,
        start_period: duration("start-period")?,
        start_interval: duration("start-interval")?,
        retries,
    })))
}

fn parse_onbuild(text: &str, line: &Line<'_>, heredocs: Vec<Heredoc>) -> Result<Instruction, ErrorKind> {
    if line.args.is_empty() {
        return Err(ErrorKind::AtLeastOneArgument("ONBUILD"));
    }
    line.no_flags("ONBUILD")?;
    let trigger = split_command(line.args).0.to_ascii_uppercase();
    match trigger.as_str() {
        "ONBUILD" => return Err(ErrorKind::OnbuildChain),
        "FROM" | "MAINTAINER" => return Err(ErrorKind::OnbuildTrigger(trigger)),
        _ => {}
    }
    // The text after the ONBUILD keyword, as BuildKit stores the trigger.
    let mut expression = split_command(text).1.to_owned();
    for h in &heredocs {
        expression.push('\n');
        expression.push_str(&h.content);
        expression.push_str(&h.name);
    }
    match parse_line(line.args, heredocs, line.escape)? {
        Parsed::Instruction(instruction) => {
            Ok(Instruction::Onbuild(Onbuild { expression, instruction: Box::new(instruction) }))
        }
        Parsed::From(_) => Err(ErrorKind::OnbuildTrigger("FROM".into())),
    }
}
