//! Build-time expansion: instructions with the stage's environment, and FROM
//! lines with the meta ARGs (those declared before the first FROM).
//!
//! Which fields expand is Docker's list: ADD, COPY (and their `--from`,
//! `--chown`, `--chmod`, `--checksum`, `--exclude`), ENV, EXPOSE, LABEL,
//! STOPSIGNAL, USER, VOLUME, WORKDIR and ARG defaults, and the values of RUN's
//! `--mount` fields (BuildKit's `parseMount` expands each `key=value`'s value). The
//! rest of RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK and ONBUILD are left for the shell
//! or the child build.

use super::expand::{Lookup, expand_heredoc, expand_word, expand_words};
use super::instruction::{Add, ArgDef, Copy, Heredoc, Instruction, KeyValue, Run, Step};
use super::{Dockerfile, DockerfileError, ErrorKind};

/// Expands every field of `instruction` that Docker expands.
pub fn expand_instruction(
    instruction: &Instruction,
    lookup: Lookup<'_>,
    escape: char,
) -> Result<Instruction, ErrorKind> {
    let word =
        |w: &str| expand_word(w, lookup, escape).map_err(|error| ErrorKind::Expand { word: w.to_owned(), error });
    let opt = |w: &Option<String>| w.as_deref().map(word).transpose();
    let all = |ws: &[String]| ws.iter().map(|w| word(w)).collect::<Result<Vec<_>, _>>();
    let docs = |hs: &[Heredoc]| {
        hs.iter()
            .map(|h| {
                let mut h = h.clone();
                if h.expand {
                    h.content = expand_heredoc(&h.content, lookup)
                        .map_err(|error| ErrorKind::Expand { word: format!("<<{}", h.name), error })?;
                }
                Ok(h)
            })
            .collect::<Result<Vec<_>, ErrorKind>>()
    };
    let pairs = |kvs: &[KeyValue]| {
        kvs.iter()
            .map(|kv| Ok(KeyValue { key: word(&kv.key)?, value: word(&kv.value)? }))
            .collect::<Result<Vec<_>, ErrorKind>>()
    };
    Ok(match instruction {
        Instruction::Copy(c) => Instruction::Copy(Copy {
            from: opt(&c.from)?,
            chown: opt(&c.chown)?,
            chmod: opt(&c.chmod)?,
            link: c.link,
            parents: c.parents,
            excludes: all(&c.excludes)?,
            sources: all(&c.sources)?,
            dest: word(&c.dest)?,
            heredocs: docs(&c.heredocs)?,
        }),
        Instruction::Add(a) => Instruction::Add(Add {
            chown: opt(&a.chown)?,
            chmod: opt(&a.chmod)?,
            link: a.link,
            keep_git_dir: a.keep_git_dir,
            checksum: opt(&a.checksum)?,
            unpack: a.unpack,
            excludes: all(&a.excludes)?,
            sources: all(&a.sources)?,
            dest: word(&a.dest)?,
            heredocs: docs(&a.heredocs)?,
        }),
        Instruction::Env(kvs) => Instruction::Env(pairs(kvs)?),
        Instruction::Label(kvs) => Instruction::Label(pairs(kvs)?),
        Instruction::Arg(defs) => Instruction::Arg(
            defs.iter()
                .map(|d| Ok(ArgDef { name: d.name.clone(), default: opt(&d.default)? }))
                .collect::<Result<_, ErrorKind>>()?,
        ),
        Instruction::Run(r) => Instruction::Run(Run {
            mounts: r.mounts.iter().map(|m| expand_mount(m, &word)).collect::<Result<_, _>>()?,
            ..r.clone()
        }),
        Instruction::Workdir(w) => Instruction::Workdir(word(w)?),
        Instruction::User(w) => Instruction::User(word(w)?),
        Instruction::StopSignal(w) => Instruction::StopSignal(word(w)?),
        Instruction::Volume(ws) => Instruction::Volume(all(ws)?),
        // `EXPOSE $PORTS` with PORTS="80 443" is two ports: the one place
        // Docker splits an expansion into several words.
        Instruction::Expose(ports) => {
            let mut out = Vec::new();
            for p in ports {
                out.extend(
                    expand_words(p, lookup, escape).map_err(|error| ErrorKind::Expand { word: p.clone(), error })?,
                );
            }
            Instruction::Expose(out)
        }
        other => other.clone(),
    })
}

/// A `--mount` value with the value of every `key=value` field expanded (keys and
/// fields without `=` as written). Fields are split at commas as BuildKit's CSV reader
/// splits them (a quoted field keeps its commas).
fn expand_mount(mount: &str, word: &dyn Fn(&str) -> Result<String, ErrorKind>) -> Result<String, ErrorKind> {
    if !mount.contains('$') {
        return Ok(mount.to_owned());
    }
    let mut fields = Vec::new();
    let (mut field, mut quoted) = (String::new(), false);
    for c in mount.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                field.push(c);
            }
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    let expanded = fields
        .iter()
        .map(|f| match f.split_once('=') {
            Some((k, v)) if !f.starts_with('"') => Ok(format!("{k}={}", word(v)?)),
            _ => Ok(f.clone()),
        })
        .collect::<Result<Vec<_>, ErrorKind>>()?;
    Ok(expanded.join(","))
}

impl Step {
    /// [`expand_instruction`] with this step's location on errors.
    pub fn expand(&self, file: &str, lookup: Lookup<'_>, escape: char) -> Result<Instruction, DockerfileError> {
        expand_instruction(&self.instruction, lookup, escape).map_err(|k| k.at(file, self.line))
    }
}

/// The ARGs in scope for FROM lines, in declaration order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaArgs {
    vars: Vec<(String, Option<String>)>,
}

impl MetaArgs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares `name`, replacing an earlier declaration. Use it for the
    /// automatic platform ARGs (`BUILDPLATFORM`, `TARGETOS`, ...) before
    /// resolving the Dockerfile's own.
    pub fn define(&mut self, name: impl Into<String>, value: Option<String>) {
        let name = name.into();
        self.vars.retain(|(n, _)| *n != name);
        self.vars.push((name, value));
    }

    /// `None` if undeclared, `Some(None)` if declared without a value.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_deref())
    }

    /// The value FROM expansion sees: a declared ARG without a value is
    /// empty rather than unset, as in BuildKit.
    pub fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| v.unwrap_or_default().to_owned())
    }

    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.vars.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }
}

/// A FROM line after meta-ARG expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandedFrom {
    pub base: String,
    pub platform: Option<String>,
    /// The earlier (or later) stage the base names, if it names one.
    pub stage: Option<usize>,
}

impl Dockerfile {
    #[cfg(test)]
    /// [`expand_instruction`] with this file's escape character, and the
    /// step's location on errors.
    pub fn expand_step(&self, step: &Step, lookup: Lookup<'_>) -> Result<Instruction, DockerfileError> {
        step.expand(&self.file, lookup, self.escape)
    }

    /// Gives each meta ARG its value: a `--build-arg` wins, else the default
    /// expanded with the ARGs before it. `builtins` are in scope from the start.
    pub fn resolve_meta_args(&self, builtins: MetaArgs, build_arg: Lookup<'_>) -> Result<MetaArgs, DockerfileError> {
        let mut meta = builtins;
        for m in &self.meta_args {
            let value = match (build_arg(&m.arg.name), &m.arg.default) {
                (Some(v), _) => Some(v),
                (None, Some(default)) => Some(
                    expand_word(default, &|n| meta.lookup(n), self.escape)
                        .map_err(|error| ErrorKind::Expand { word: default.clone(), error }.at(&self.file, m.line))?,
                ),
                (None, None) => None,
            };
            meta.define(m.arg.name.clone(), value);
        }
        Ok(meta)
    }

    /// Expands stage `index`'s base and platform with the meta ARGs.
    pub fn expand_from(&self, index: usize, meta: &MetaArgs) -> Result<ExpandedFrom, DockerfileError> {
        let stage = &self.stages[index];
        let at = |k: ErrorKind| k.at(&self.file, stage.line);
        let word = |w: &str| {
            expand_word(w, &|n| meta.lookup(n), self.escape)
                .map_err(|error| at(ErrorKind::Expand { word: w.to_owned(), error }))
        };
        let base = word(&stage.base)?;
        if base.is_empty() {
            return Err(at(ErrorKind::BlankBase(stage.base.clone())));
        }
        let platform = stage.platform.as_deref().map(word).transpose()?;
        Ok(ExpandedFrom { stage: self.stage_by_name(&base), base, platform })
    }
}
