//! Which stage a build targets and which stages it needs, so the engine
//! builds only those (as BuildKit does).
//!
//! A stage needs another when its FROM names it, a `COPY --from` names it
//! (by name or index), or a `RUN --mount=...,from=` names it. Names and
//! references are expanded with the meta ARGs first.

use super::expand::expand_word;
use super::instruction::Instruction;
use super::resolve::MetaArgs;
use super::{Dockerfile, DockerfileError, ErrorKind};

/// What a `--from` value refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageRef {
    Stage(usize),
    Image(String),
}

impl Dockerfile {
    /// The stage named `name` (stage names are case-insensitive).
    pub fn stage_by_name(&self, name: &str) -> Option<usize> {
        let name = name.to_lowercase();
        self.stages.iter().position(|s| s.name.as_deref() == Some(name.as_str()))
    }

    /// The stage to build: the one named `target`, or the last one.
    pub fn stage_by_target(&self, target: Option<&str>) -> Result<usize, DockerfileError> {
        match target {
            None => Ok(self.stages.len() - 1),
            Some(t) => self.stage_by_name(t).ok_or_else(|| ErrorKind::TargetNotFound(t.to_owned()).in_file(&self.file)),
        }
    }

    /// Resolves a (expanded) `COPY --from` value: a stage index, a stage
    /// name, or else an image reference.
    pub fn resolve_from(&self, from: &str) -> Result<StageRef, ErrorKind> {
        if let Ok(n) = from.parse::<i64>() {
            return usize::try_from(n)
                .ok()
                .filter(|&i| i < self.stages.len())
                .map(StageRef::Stage)
                .ok_or(ErrorKind::InvalidStageIndex(n));
        }
        Ok(match self.stage_by_name(from) {
            Some(i) => StageRef::Stage(i),
            None => StageRef::Image(from.to_owned()),
        })
    }

    /// The stages stage `index` uses directly, sorted, without repeats.
    pub fn direct_dependencies(&self, index: usize, meta: &MetaArgs) -> Result<Vec<usize>, DockerfileError> {
        let stage = &self.stages[index];
        let mut deps = Vec::new();
        deps.extend(self.expand_from(index, meta)?.stage);
        // ARGs of the stage so far, then the meta ARGs: `COPY --from=$X` may name a stage
        // through one (`ARG X=build`). Values are the defaults (or the meta ARG of that
        // name); a build arg overriding a stage ARG's default is not seen here.
        let mut local: Vec<(String, String)> = Vec::new();
        for step in &stage.steps {
            let at = |kind: ErrorKind| kind.at(&self.file, step.line);
            let expand_with = |w: &str, local: &[(String, String)]| {
                let lookup = |n: &str| {
                    local.iter().rev().find(|(k, _)| k == n).map(|(_, v)| v.clone()).or_else(|| meta.lookup(n))
                };
                expand_word(w, &lookup, self.escape)
                    .map_err(|error| at(ErrorKind::Expand { word: w.to_owned(), error }))
            };
            let expand = |w: &str| expand_with(w, &local);
            match &step.instruction {
                Instruction::Arg(defs) => {
                    for d in defs {
                        let value = match &d.default {
                            Some(v) => expand_with(v, &local)?,
                            None => meta.lookup(&d.name).unwrap_or_default(),
                        };
                        local.push((d.name.clone(), value));
                    }
                }
                Instruction::Copy(c) => {
                    if let Some(from) = &c.from
                        && let StageRef::Stage(i) = self.resolve_from(&expand(from)?).map_err(at)?
                    {
                        deps.push(i);
                    }
                }
                Instruction::Run(r) => {
                    for mount in &r.mounts {
                        if let Some(from) = mount_from(mount)
                            && let Some(i) = self.stage_by_name(&expand(&from)?)
                        {
                            deps.push(i);
                        }
                    }
                }
                _ => {}
            }
        }
        deps.sort_unstable();
        deps.dedup();
        Ok(deps)
    }

    #[cfg(test)]
    /// Every stage `target` needs, itself included, in index order (an order
    /// in which they can be built only if no stage refers forward; use
    /// [`Dockerfile::build_order`] for that).
    pub fn dependencies(&self, target: usize, meta: &MetaArgs) -> Result<Vec<usize>, DockerfileError> {
        let mut order = self.build_order(target, meta)?;
        order.sort_unstable();
        Ok(order)
    }

    /// The stages `target` needs, each after the stages it uses, ending with
    /// `target`. A cycle is an error naming a stage on it.
    pub fn build_order(&self, target: usize, meta: &MetaArgs) -> Result<Vec<usize>, DockerfileError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Visiting,
            Done,
        }
        let mut marks = vec![Mark::New; self.stages.len()];
        let mut order = Vec::new();
        // Depth-first with an explicit stack: (stage, its deps, next dep).
        let mut stack = vec![(target, self.direct_dependencies(target, meta)?, 0)];
        marks[target] = Mark::Visiting;
        while let Some((stage, deps, next)) = stack.last_mut() {
            let Some(&dep) = deps.get(*next) else {
                marks[*stage] = Mark::Done;
                order.push(*stage);
                stack.pop();
                continue;
            };
            *next += 1;
            match marks[dep] {
                Mark::Done => {}
                Mark::Visiting => {
                    let s = &self.stages[dep];
                    let label = s.name.clone().unwrap_or_else(|| dep.to_string());
                    return Err(ErrorKind::CircularDependency(label).at(&self.file, s.line));
                }
                Mark::New => {
                    marks[dep] = Mark::Visiting;
                    let deps = self.direct_dependencies(dep, meta)?;
                    stack.push((dep, deps, 0));
                }
            }
        }
        Ok(order)
    }
}

/// The `from=` of a `--mount` value (comma-separated `key=value` fields,
/// double quotes allowed as in CSV).
fn mount_from(mount: &str) -> Option<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = mount.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields.into_iter().find_map(|f| {
        let (key, value) = f.split_once('=')?;
        key.trim().eq_ignore_ascii_case("from").then(|| value.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_from_cases() {
        let cases: &[(&str, Option<&str>)] = &[
            ("type=bind,from=builder,source=/out,target=/in", Some("builder")),
            ("type=cache,target=/root/.cache", None),
            ("from=$STAGE", Some("$STAGE")),
            ("\"from=a,b\",target=/x", Some("a,b")),
            ("FROM=up", Some("up")),
        ];
        for (input, want) in cases {
            assert_eq!(mount_from(input).as_deref(), *want, "{input}");
        }
    }
}
