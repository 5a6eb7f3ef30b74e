//! Rendering werf.yaml as a Go `text/template` before YAML parsing, with werf's
//! function set: Sprig's text functions minus `expandenv` (`funcs.rs`), and werf's own
//! `env`, `required`, `include`, `tpl`, `toYaml`, `fromYaml`. The data is werf's:
//! `.Env`, `.Files.Get/Glob/Exists/IsDir` (read from the commit through
//! [`FileSource`]), `.Commit.Hash`, `.Commit.Date.Human/Unix`. Partials
//! (`.werf/**/*.tmpl` in the commit) are parsed first, each named by its path relative
//! to `.werf`, as werf names them, then werf.yaml itself.
//!
//! gotmpl has no method calls on data, so `.Files.Get` (also `$.Files.Get`,
//! `$root.Files.Get`, `.root.Files.Get`) is rewritten inside actions, before parsing, into a function of
//! the same length (`_files_get`), which keeps error columns right.
//!
//! Pure: environment variables, files and the commit come in through
//! [`TemplateInput`], so callers decide what the template may see.
//!
//! werf.yaml comes from the repository, so rendering is bounded: at most
//! [`MAX_RENDERED_BYTES`] of output (a `define` fan-out — A calls B ten times, B calls C
//! ten times, … — otherwise renders gigabytes), every function result weighed against
//! the same budget, at most [`MAX_RENDER_STEPS`] template nodes executed (the same
//! fan-out with empty leaves renders nothing but runs for hours), `include`/`tpl`
//! nested at most [`MAX_INCLUDE_DEPTH`] deep. gotmpl itself bounds nesting (200 levels)
//! and `range` iterations; the step count is added by putting a counting action before
//! every node of every parsed tree. Rendering runs on its own thread with a large
//! stack, since nested `include`s nest gotmpl's recursive evaluator.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gotmpl::parse::{ListNode, Node};
use gotmpl::{FuncMap, Template, TemplateError, Value};

use super::error::ConfigError;
use super::funcs::{self, TOO_LONG, exec, text};

/// Files of the commit, relative to the project directory, for `.Files`. Errors are
/// messages (a path outside the project, a missing file for `Get`).
pub trait FileSource: Send + Sync {
    /// A regular file's content; `None` if there is none.
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, String>;
    /// Regular files matching a glob (`**` crosses directories), path → content.
    fn glob(&self, pattern: &str) -> Result<BTreeMap<String, String>, String>;
    fn exists(&self, path: &str) -> Result<bool, String>;
    fn is_dir(&self, path: &str) -> Result<bool, String>;
}

/// Which env var names templates may read (werf-giterminism.yaml's
/// `config.goTemplateRendering.allowEnvVariables`); `None` allows every name.
pub type EnvFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The commit werf.yaml was read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitData {
    pub hash: String,
    pub time_unix: i64,
}

/// What a werf.yaml template can read.
#[derive(Clone, Default)]
pub struct TemplateInput {
    /// The process environment `env NAME` reads (all of it; `allow_env` filters).
    pub vars: BTreeMap<String, String>,
    /// Names `env` may read; `None`: any.
    pub allow_env: Option<EnvFilter>,
    /// `.Env`: the `--env` value.
    pub env: String,
    /// `.Files`; without it every `.Files` call fails.
    pub files: Option<Arc<dyn FileSource>>,
    /// `.Commit`; without it `.Commit` is empty.
    pub commit: Option<CommitData>,
    /// Partials, (name relative to `.werf`, content), parsed before werf.yaml.
    pub partials: Vec<(String, String)>,
}

impl fmt::Debug for TemplateInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemplateInput")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("env", &self.env)
            .field("commit", &self.commit)
            .field("partials", &self.partials.iter().map(|p| &p.0).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The most rendered werf.yaml text a template may produce, and the most any one value
/// may weigh.
pub const MAX_RENDERED_BYTES: usize = 16 << 20;

/// The most template nodes (text, actions, `if`, `range` bodies, `template` calls) one
/// rendering may execute; a real werf.yaml executes a few thousand.
pub const MAX_RENDER_STEPS: u64 = 1_000_000;

/// The most work template functions may do in one rendering, in bytes of arguments
/// (a real werf.yaml passes a few MiB through its functions in all): without it a loop
/// of a million steps could hash, parse (`tpl`) or match 16 MiB values each time.
pub const MAX_FUNC_WORK: u64 = 1 << 30;

/// How deep `include` and `tpl` may nest.
pub const MAX_INCLUDE_DEPTH: u32 = 32;

/// The function that counts steps; a name no template can define.
const STEP_FUNC: &str = "__slipway_step";

/// Which limit stopped a rendering (shared with the functions gotmpl calls).
#[derive(Default)]
struct Limits {
    steps: AtomicU64,
    /// 0: none, 1: steps, 2: a value was too long, 3: include depth, 4: function work.
    tripped: AtomicU8,
    depth: AtomicU32,
    /// Work done by functions so far, see [`MAX_FUNC_WORK`].
    work: AtomicU64,
    /// The node executing last: source id << 40 | byte offset, so an execution error
    /// (gotmpl gives none a position) names the file, line and column.
    last: AtomicU64,
    /// Source texts by id: werf.yaml, the partials, `tpl` texts, each with its name.
    sources: Mutex<Vec<(String, Arc<str>)>>,
}

impl Limits {
    /// Charges a function call's work (its arguments' weight; for a regex function the
    /// pattern's times the text's, regex-lite being O(pattern × text)); false once
    /// [`MAX_FUNC_WORK`] is spent.
    fn charge(&self, regex: bool, args: &[Value]) -> bool {
        let w = |v: &Value| funcs::weight(v, MAX_RENDERED_BYTES) as u64;
        let cost = match args {
            [re, text, ..] if regex => w(re).saturating_mul(w(text)) / 16,
            _ => args.iter().map(w).sum(),
        };
        if self.work.fetch_add(cost, Ordering::Relaxed).saturating_add(cost) > MAX_FUNC_WORK {
            self.tripped.store(4, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Registers a source, returning its id for [`with_steps`].
    fn source(&self, name: &str, text: &str) -> u64 {
        let mut sources = self.sources.lock().expect("sources");
        // `tpl` in a loop renders the same text again and again.
        if let Some(id) = sources.iter().rposition(|(n, t)| n == name && **t == *text) {
            return id as u64;
        }
        // Past twice the budget of kept text, positions are no longer named.
        if sources.iter().map(|(_, t)| t.len()).sum::<usize>() > 2 * MAX_RENDERED_BYTES {
            return (1 << 23) - 1;
        }
        sources.push((name.to_owned(), Arc::from(text)));
        sources.len() as u64 - 1
    }

    /// `template: NAME:LINE:COL: ` for the node executing last, if known.
    fn position(&self) -> Option<String> {
        let last = self.last.load(Ordering::Relaxed);
        let (id, offset) = ((last >> 40) as usize, (last & ((1 << 40) - 1)) as usize);
        let sources = self.sources.lock().expect("sources");
        let (name, text) = sources.get(id)?;
        let before = text.get(..offset.min(text.len()))?;
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |n| n + 1) + 1;
        Some(format!("template: {name}:{line}:{col}: "))
    }
}

/// The rendered text, refusing to grow past [`MAX_RENDERED_BYTES`].
struct Bounded {
    out: String,
    over: bool,
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.out.len() + s.len() > MAX_RENDERED_BYTES {
            self.over = true;
            return Err(fmt::Error);
        }
        self.out.push_str(s);
        Ok(())
    }
}

/// The template set `include` and `tpl` execute in, and the functions `tpl` parses
/// with, set once parsed (and emptied after rendering, breaking the reference cycle).
type Slot = Arc<Mutex<Option<(Arc<Template>, FuncMap)>>>;

/// Renders `text` as werf does; text without `{{` (and no partials) is returned
/// unchanged.
pub fn render(file: &str, text: &str, input: &TemplateInput) -> Result<String, ConfigError> {
    if !text.contains("{{") {
        return Ok(text.to_owned());
    }
    let (file_owned, text_owned, input_owned) = (file.to_owned(), text.to_owned(), input.clone());
    let worker = std::thread::Builder::new()
        .name("werf.yaml template".into())
        .stack_size(256 << 20)
        .spawn(move || render_here(&file_owned, &text_owned, &input_owned));
    match worker {
        Ok(handle) => handle.join().unwrap_or_else(|_| {
            Err(ConfigError::Render { file: file.to_owned(), message: "the template renderer panicked".into() })
        }),
        // No thread (resource limits): render here, with the caller's stack.
        Err(_) => render_here(file, text, input),
    }
}

fn render_here(file: &str, text: &str, input: &TemplateInput) -> Result<String, ConfigError> {
    let fail = |e: TemplateError| ConfigError::Render { file: file.to_owned(), message: e.to_string() };
    let limits = Arc::new(Limits::default());
    let slot: Slot = Arc::default();
    let funcs = functions(input, &limits, &slot);
    let mut template = Template::new(file).funcs(funcs.clone());
    for (name, content) in &input.partials {
        let partial = Template::new(name).funcs(funcs.clone()).parse(&rewrite_files(content)).map_err(fail)?;
        let id = limits.source(name, content);
        template = merge_trees(template, &partial, Some((&limits, id))).map_err(fail)?;
    }
    let main = Template::new(file).funcs(funcs.clone()).parse(&rewrite_files(text)).map_err(fail)?;
    let id = limits.source(file, text);
    let template = merge_trees(template, &main, Some((&limits, id))).map_err(fail)?;
    // `main`'s top level, if empty, is not a tree; the step function is the last one.
    let template = Arc::new(template.func(STEP_FUNC, step_func(&limits)));
    *slot.lock().expect("slot") = Some((Arc::clone(&template), funcs));
    let data = data(input);
    let mut out = Bounded { out: String::new(), over: false };
    // The top level is registered under the file name when it is not empty.
    let result = match template.lookup(file) {
        Some(_) => template.execute_template_fmt(&mut out, file, &data),
        None => template.execute_fmt(&mut out, &data),
    };
    // Break the cycle template → include closure → slot → template.
    slot.lock().expect("slot").take();
    let over_budget = |what: String| ConfigError::Render {
        file: file.to_owned(),
        message: format!("{what}; is a `define` calling itself or fanning out?"),
    };
    match (result, limits.tripped.load(Ordering::Relaxed)) {
        _ if out.over => Err(over_budget(format!("the rendered text exceeds {} MiB", MAX_RENDERED_BYTES >> 20))),
        (Err(_), 1) => Err(over_budget(format!("rendering takes more than {MAX_RENDER_STEPS} steps"))),
        (Err(_), 2) => Err(over_budget(format!("a value exceeds {} MiB", MAX_RENDERED_BYTES >> 20))),
        (Err(_), 3) => Err(over_budget(format!("`include` or `tpl` nests more than {MAX_INCLUDE_DEPTH} deep"))),
        (Err(_), 4) => Err(over_budget(format!("template functions process more than {} MiB", MAX_FUNC_WORK >> 20))),
        (Err(e), _) if !matches!(e, TemplateError::Parse { .. } | TemplateError::Lex { .. }) => {
            Err(ConfigError::Render {
                file: file.to_owned(),
                message: format!("{}{e}", limits.position().unwrap_or_default()),
            })
        }
        (Err(e), _) => Err(fail(e)),
        (Ok(()), _) => Ok(out.out),
    }
}

/// werf's template data.
fn data(input: &TemplateInput) -> Value {
    let commit = match &input.commit {
        Some(c) => Value::from_entries([
            ("Hash".to_owned(), Value::from(c.hash.as_str())),
            (
                "Date".to_owned(),
                Value::from_entries([
                    ("Human".to_owned(), Value::from(go_time_string(c.time_unix).as_str())),
                    ("Unix".to_owned(), Value::from(c.time_unix.to_string().as_str())),
                ]),
            ),
        ]),
        None => Value::from(BTreeMap::<String, Value>::new()),
    };
    Value::from_entries([
        ("Env".to_owned(), Value::from(input.env.as_str())),
        ("Files".to_owned(), Value::from(BTreeMap::<String, Value>::new())),
        ("Commit".to_owned(), commit),
    ])
}

/// Go's `time.Time.String()` of a Unix time in UTC (werf prints the commit time in the
/// local zone; slipway's is UTC): `2006-01-02 15:04:05 +0000 UTC`.
pub fn go_time_string(unix: i64) -> String {
    let (y, m, d) = crate::engine::state::civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Adds every tree of `from` to `into`, instrumented with steps naming source `id`.
fn merge_trees(
    mut into: Template,
    from: &Template,
    steps: Option<(&Arc<Limits>, u64)>,
) -> Result<Template, TemplateError> {
    for name in from.templates() {
        if let Some(tree) = from.lookup(name) {
            let tree = match steps {
                Some((limits, id)) => with_steps(tree, limits, id)?,
                None => tree.clone(),
            };
            into = into.add_parse_tree(name, tree);
        }
    }
    Ok(into)
}

/// `.Files.Get` → `_files_get` (and `Glob`, `Exists`, `IsDir`), receivers (`.`, `$`,
/// `$name`, `.root`, `$x.y`) blanked, inside actions only; lengths kept so columns stay
/// right. There is one `.Files`, so whatever the receiver chain, it is that one.
fn rewrite_files(text: &str) -> String {
    if !text.contains(".Files.") {
        return text.to_owned();
    }
    let re = regex_lite::Regex::new(r"(\$[A-Za-z0-9_]*)?((?:\.[A-Za-z0-9_]+)*)\.Files\.(Get|Glob|Exists|IsDir)\b")
        .expect("valid");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let (before, action) = rest.split_at(open);
        out.push_str(before);
        let end = action.find("}}").map_or(action.len(), |e| e + 2);
        let replaced = re.replace_all(&action[..end], |c: &regex_lite::Captures<'_>| {
            let pad = " ".repeat(c.get(1).map_or(0, |m| m.len()) + c.get(2).map_or(0, |m| m.len()));
            let func = match &c[3] {
                "Get" => "_files_get",
                "Glob" => "_files_glob",
                "Exists" => "_files_exists",
                _ => "_files_isdir",
            };
            format!("{pad}{func}")
        });
        out.push_str(&replaced);
        rest = &action[end..];
    }
    out.push_str(rest);
    out
}

/// The step-counting action for a node at `offset` of source `id`.
fn step_node(limits: &Arc<Limits>, id: u64, offset: usize) -> Result<Node, TemplateError> {
    let probe = Template::new("step")
        .func(STEP_FUNC, step_func(limits))
        .parse(&format!("{{{{{STEP_FUNC} {id} {offset}}}}}"))?;
    Ok(probe.lookup("step").and_then(|t| t.nodes.first()).cloned().expect("one action"))
}

/// Counts a step against [`MAX_RENDER_STEPS`] and notes where execution is.
fn step_func(limits: &Arc<Limits>) -> impl Fn(&[Value]) -> Result<Value, TemplateError> + Send + Sync + 'static {
    let limits = Arc::clone(limits);
    move |args: &[Value]| {
        if limits.steps.fetch_add(1, Ordering::Relaxed) >= MAX_RENDER_STEPS {
            limits.tripped.store(1, Ordering::Relaxed);
            return Err(exec("too many steps"));
        }
        if let [Value::Int(id), Value::Int(offset)] = args {
            limits.last.store(((*id as u64) << 40) | (*offset as u64 & ((1 << 40) - 1)), Ordering::Relaxed);
        }
        Ok(Value::from(""))
    }
}

/// Puts a step-counting action before every node of `list` (recursively), so
/// [`MAX_RENDER_STEPS`] bounds the work of `template` calls and `range` bodies.
fn with_steps(list: &ListNode, limits: &Arc<Limits>, id: u64) -> Result<ListNode, TemplateError> {
    let mut nodes = Vec::with_capacity(list.nodes.len() * 2);
    for node in &list.nodes {
        let offset = match node {
            Node::List(l) => l.pos.offset,
            Node::Text(t) => t.pos.offset,
            Node::Action(a) => a.pos.offset,
            Node::If(b) | Node::With(b) | Node::Range(b) => b.pos.offset,
            Node::Template(t) => t.pos.offset,
            Node::Define(d) => d.pos.offset,
            Node::Break(p) | Node::Continue(p) => p.offset,
        };
        nodes.push(step_node(limits, id, offset)?);
        nodes.push(match node {
            Node::List(l) => Node::List(with_steps(l, limits, id)?),
            Node::If(b) | Node::With(b) | Node::Range(b) => {
                let mut b = b.clone();
                b.body = with_steps(&b.body, limits, id)?;
                b.else_body = match &b.else_body {
                    Some(e) => Some(with_steps(e, limits, id)?),
                    None => None,
                };
                match node {
                    Node::If(_) => Node::If(b),
                    Node::With(_) => Node::With(b),
                    _ => Node::Range(b),
                }
            }
            other => other.clone(),
        });
    }
    Ok(ListNode { pos: list.pos, nodes })
}

/// The functions werf.yaml may call, each result weighed against [`MAX_RENDERED_BYTES`].
fn functions(input: &TemplateInput, limits: &Arc<Limits>, slot: &Slot) -> FuncMap {
    let mut map = FuncMap::new();
    let mut add = |name: &str, f: gotmpl::ValueFunc| {
        let limits = Arc::clone(limits);
        let regex = name.starts_with("regex");
        let checked = move |args: &[Value]| {
            if !limits.charge(regex, args) {
                return Err(exec("too much work"));
            }
            match f(args) {
                Ok(v) if funcs::weight(&v, MAX_RENDERED_BYTES) <= MAX_RENDERED_BYTES => Ok(v),
                Err(e) if !e.to_string().contains(TOO_LONG) => Err(e),
                _ => {
                    limits.tripped.store(2, Ordering::Relaxed);
                    Err(exec(TOO_LONG))
                }
            }
        };
        map.insert(name.to_owned(), Arc::new(checked));
    };
    for (name, f) in funcs::sprig() {
        add(name, Arc::new(f));
    }
    let (vars, allow) = (Arc::new(input.vars.clone()), input.allow_env.clone());
    add("env", Arc::new(move |args: &[Value]| env_func(&vars, allow.as_ref(), args)));
    add(
        "required",
        Arc::new(|args: &[Value]| match args {
            [msg, val] if matches!(val, Value::Nil) || val.as_str() == Some("") => Err(exec(text(msg))),
            [_, val] => Ok(val.clone()),
            _ => Err(exec("required: wants a message and a value")),
        }),
    );
    for name in ["print", "println", "printf"] {
        add(name, Arc::new(move |args: &[Value]| builtin_bounded(name, args)));
    }
    {
        let (limits, slot) = (Arc::clone(limits), Arc::clone(slot));
        add(
            "include",
            Arc::new(move |args: &[Value]| match args {
                [name, data] => nested(&limits, &slot, |t, _| {
                    let name = text(name);
                    if t.lookup(&name).is_none() {
                        return Err(exec(format!(
                            "template: no template {name:?} associated with template {:?}",
                            "werfConfig"
                        )));
                    }
                    let mut out = Bounded { out: String::new(), over: false };
                    t.execute_template_fmt(&mut out, &name, data).map_err(|e| too_long_or(&out, e))?;
                    Ok(Value::from(out.out))
                }),
                _ => Err(exec("include: wants a template name and data")),
            }),
        );
    }
    {
        let (limits, slot) = (Arc::clone(limits), Arc::clone(slot));
        add(
            "tpl",
            Arc::new(move |args: &[Value]| match args {
                [content, data] => nested(&limits, &slot, |t, fm| {
                    let content = text(content);
                    let name = format!("tpl-{}", funcs::adler32(content.as_bytes()));
                    let parsed = Template::new(&name).funcs(fm.clone()).parse(&rewrite_files(&content))?;
                    let id = limits.source(&name, &content);
                    let set = merge_trees((**t).clone(), &parsed, Some((&limits, id)))?;
                    let mut out = Bounded { out: String::new(), over: false };
                    let result = match set.lookup(&name) {
                        Some(_) => set.execute_template_fmt(&mut out, &name, data),
                        None => Ok(()),
                    };
                    result.map_err(|e| too_long_or(&out, e))?;
                    Ok(Value::from(out.out))
                }),
                _ => Err(exec("tpl: wants a template text and data")),
            }),
        );
    }
    if let Some(files) = &input.files {
        let f = Arc::clone(files);
        add(
            "_files_get",
            Arc::new(move |args: &[Value]| match args {
                [path] => match f.get(&text(path)) {
                    Ok(Some(bytes)) => Ok(Value::from(String::from_utf8_lossy(&bytes).into_owned())),
                    // werf's FileNotFoundInProjectRepositoryError, word for word.
                    Ok(None) => Err(exec(format!(
                        "{{{{ .Files.Get {:?} }}}}: the file {:?} not found in the project git repository. If the file exists locally, configure werf-giterminism.yaml to allow uncommitted files\n\n{GITERMINISM_TAIL}",
                        text(path),
                        text(path)
                    ))),
                    Err(e) => Err(exec(format!("{{{{ .Files.Get {:?} }}}}: {e}", text(path)))),
                },
                _ => Err(exec(".Files.Get: wants a path")),
            }),
        );
        let f = Arc::clone(files);
        add(
            "_files_glob",
            Arc::new(move |args: &[Value]| match args {
                [pattern] => f
                    .glob(&text(pattern))
                    .map(|m| Value::from(m.into_iter().map(|(k, v)| (k, Value::from(v))).collect::<BTreeMap<_, _>>()))
                    .map_err(|e| exec(format!("{{{{ .Files.Glob {:?} }}}}: {e}", text(pattern)))),
                _ => Err(exec(".Files.Glob: wants a pattern")),
            }),
        );
        let f = Arc::clone(files);
        add(
            "_files_exists",
            Arc::new(move |args: &[Value]| match args {
                [path] => f
                    .exists(&text(path))
                    .map(Value::Bool)
                    .map_err(|e| exec(format!("{{{{ .Files.Exists {:?} }}}}: {e}", text(path)))),
                _ => Err(exec(".Files.Exists: wants a path")),
            }),
        );
        let f = Arc::clone(files);
        add(
            "_files_isdir",
            Arc::new(move |args: &[Value]| match args {
                [path] => f
                    .is_dir(&text(path))
                    .map(Value::Bool)
                    .map_err(|e| exec(format!("{{{{ .Files.IsDir {:?} }}}}: {e}", text(path)))),
                _ => Err(exec(".Files.IsDir: wants a path")),
            }),
        );
    } else {
        for name in ["_files_get", "_files_glob", "_files_exists", "_files_isdir"] {
            add(name, Arc::new(|_: &[Value]| Err(exec(".Files is not available here"))));
        }
    }
    map
}

/// Runs `f` one `include`/`tpl` level deeper, refusing past [`MAX_INCLUDE_DEPTH`].
fn nested(
    limits: &Limits,
    slot: &Slot,
    f: impl FnOnce(&Arc<Template>, &FuncMap) -> Result<Value, TemplateError>,
) -> Result<Value, TemplateError> {
    let Some((t, fm)) = slot.lock().expect("slot").clone() else {
        return Err(exec("the template set is not ready"));
    };
    if limits.depth.fetch_add(1, Ordering::Relaxed) >= MAX_INCLUDE_DEPTH {
        limits.depth.fetch_sub(1, Ordering::Relaxed);
        limits.tripped.store(3, Ordering::Relaxed);
        return Err(exec("include depth"));
    }
    let result = f(&t, &fm);
    limits.depth.fetch_sub(1, Ordering::Relaxed);
    result
}

fn too_long_or(out: &Bounded, e: TemplateError) -> TemplateError {
    if out.over { exec(TOO_LONG) } else { e }
}

/// gotmpl's `print`, `println` or `printf`, refused before it runs when its result could
/// pass [`MAX_RENDERED_BYTES`]: doubling a string thirty times, or `printf "%999999999s"`,
/// would otherwise allocate gigabytes inside one call. The bound is generous: the
/// format's length, 8 bytes per byte of operand (`%q`, `%x` expand), and every number in
/// the format (widths, precisions) or passed for a `*`. The builtin itself runs in a
/// fresh template, since gotmpl does not expose its builtins to wrap.
fn builtin_bounded(name: &str, args: &[Value]) -> Result<Value, TemplateError> {
    let texts: Vec<String> = args.iter().map(Value::to_string).collect();
    let mut bound: u128 = texts.iter().map(|t| 8 * t.len() as u128 + 1).sum();
    if let (Some(Value::String(format)), "printf") = (args.first(), name) {
        bound += format.len() as u128;
        bound += format
            .split(|c: char| !c.is_ascii_digit())
            .filter(|run| !run.is_empty())
            .map(|run| run.parse::<u128>().unwrap_or(u128::MAX / 4))
            .sum::<u128>();
        if format.contains('*') {
            bound += args.iter().filter_map(Value::as_int).map(|n| n.unsigned_abs() as u128).sum::<u128>();
        }
    }
    if bound > MAX_RENDERED_BYTES as u128 {
        return Err(exec(TOO_LONG));
    }
    let fields: Vec<String> = (0..args.len()).map(|i| format!(" .A{i}")).collect();
    let inner = Template::new(name).parse(&format!("{{{{{name}{}}}}}", fields.concat()))?;
    let data: BTreeMap<String, Value> = args.iter().enumerate().map(|(i, a)| (format!("A{i}"), a.clone())).collect();
    Ok(Value::from(inner.execute_to_string(&Value::from(data))?.as_str()))
}

/// The first line of werf's giterminism errors (`errors.NewError` around the
/// inspector's message).
pub const GITERMINISM_TAIL: &str = "To provide a strong guarantee of reproducibility, werf reads the configuration and build's context files from the project git repository, and eliminates external dependencies. We strongly recommend following this approach, but if necessary, you can allow the reading of specific files directly from the file system and enable the features that require careful use.";

/// werf's `env NAME [DEFAULT]`: a name werf-giterminism.yaml does not allow is refused
/// whether or not it is set and whatever the default (werf inspects the name first);
/// unset without a default is an error; an empty value takes the default.
fn env_func(
    vars: &BTreeMap<String, String>,
    allow: Option<&EnvFilter>,
    args: &[Value],
) -> Result<Value, TemplateError> {
    let (name, default) = match args {
        [name] => (text(name), None),
        [name, default] => (text(name), Some(text(default))),
        [] => return Err(exec("wrong number of args for env: want at least 1 got 0")),
        _ => return Err(exec("more than 1 optional argument prohibited")),
    };
    if allow.is_some_and(|allowed| !allowed(&name)) {
        return Err(exec(format!(
            "the configuration with potential external dependency found in the werf config: env name {name:?} not allowed by giterminism\n\nThe use of the function env complicates the sharing and reproducibility of the configuration in CI jobs and among developers, because the value of the environment variable affects the final digest of built images.\n\n{GITERMINISM_TAIL}"
        )));
    }
    match (vars.get(&name), default) {
        (Some(v), Some(d)) if v.is_empty() => Ok(Value::from(d)),
        (Some(v), _) => Ok(Value::from(v.as_str())),
        (None, Some(d)) => Ok(Value::from(d)),
        (None, None) => Err(exec(format!("the environment variable {name:?} must be set or default must be provided"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_supported_subset() {
        let input = TemplateInput {
            vars: BTreeMap::from([("TAG".to_owned(), "1.2".to_owned()), ("EMPTY".to_owned(), String::new())]),
            env: "production".to_owned(),
            ..Default::default()
        };
        // (template, rendered or error)
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("plain: yes\n", Ok("plain: yes\n")),
            ("tag: {{ env \"TAG\" }}\n", Ok("tag: 1.2\n")),
            ("tag: {{ env \"NOPE\" \"latest\" }}\n", Ok("tag: latest\n")),
            ("tag: {{ env \"EMPTY\" \"dflt\" }}\n", Ok("tag: dflt\n")),
            ("env: {{ .Env }}\n", Ok("env: production\n")),
            ("{{ if eq .Env \"production\" }}replicas: 3{{ else }}replicas: 1{{ end }}\n", Ok("replicas: 3\n")),
            ("{{- range $i, $n := list }}{{ end -}}x", Ok("x")),
            ("v: {{ env \"NOPE\" | default \"d\" | upper | quote }}", Err("must be set")),
            ("v: {{ \"\" | default \"d\" | upper | quote }}", Ok("v: \"D\"")),
            ("v: {{ required \"TAG needed\" (env \"EMPTY\") }}", Err("TAG needed")),
            ("v: {{ \"v1.2\" | trimPrefix \"v\" }}", Ok("v: 1.2")),
            ("v: {{ .Env", Err("werf.yaml")),
        ];
        for (text, want) in cases {
            let got = render("werf.yaml", text, &input);
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(g, w, "{text:?}"),
                (Err(w), Err(e)) => assert!(e.to_string().contains(w), "{text:?}: {e}"),
                _ => panic!("{text:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    /// `L{n}` calls `L{n-1}` ten times, `levels` deep, over a leaf of `leaf`.
    fn fan_out(leaf: &str, levels: usize) -> String {
        let mut text = format!("{{{{define \"L0\"}}}}{leaf}{{{{end}}}}");
        for i in 1..=levels {
            let calls = format!("{{{{template \"L{}\" .}}}}", i - 1).repeat(10);
            text += &format!("{{{{define \"L{i}\"}}}}{calls}{{{{end}}}}");
        }
        text + &format!("{{{{template \"L{levels}\" .}}}}")
    }

    #[test]
    fn fan_out_is_bounded() {
        use std::time::{Duration, Instant};
        let input = TemplateInput::default();
        let prefix = "werf.yaml: rendering the Go template: ";
        let hint = "; is a `define` calling itself or fanning out?";
        // (template, error): 10^10 leaves of 1 KiB would be 10 TiB of werf.yaml.
        let cases: Vec<(String, String)> = vec![
            (fan_out(&"x".repeat(1024), 10), format!("{prefix}the rendered text exceeds 16 MiB{hint}")),
            (fan_out("", 10), format!("{prefix}rendering takes more than 1000000 steps{hint}")),
            (
                "{{define \"a\"}}{{template \"a\"}}{{end}}{{template \"a\"}}".to_owned(),
                format!("{prefix}template: werf.yaml:1:17: recursion limit exceeded"),
            ),
            (
                format!("{{{{ replace \"a\" \"{}\" \"{}\" }}}}", "b".repeat(4096), "a".repeat(8192)),
                format!("{prefix}a value exceeds 16 MiB{hint}"),
            ),
            (
                format!("{{{{$a := \"{}\"}}}}{}", "x".repeat(1024), "{{$a = printf \"%s%s\" $a $a}}".repeat(30)),
                format!("{prefix}a value exceeds 16 MiB{hint}"),
            ),
            ("{{ printf \"%999999999s\" \"x\" }}".to_owned(), format!("{prefix}a value exceeds 16 MiB{hint}")),
            ("{{ printf \"%*s\" 999999999 \"x\" }}".to_owned(), format!("{prefix}a value exceeds 16 MiB{hint}")),
        ];
        for (text, want) in cases {
            let start = Instant::now();
            let err = render("werf.yaml", &text, &input).unwrap_err();
            assert_eq!(err.to_string(), want, "{}", &text[..text.len().min(120)]);
            assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
        }
        // The wrapped builtins still behave as gotmpl's.
        let text = "{{ printf \"%s-%05d|%q\" \"a\" 42 \"b\" }} {{ print 1 2 \"x\" }} {{ println \"y\" }}";
        assert_eq!(render("werf.yaml", text, &input).unwrap(), "a-00042|\"b\" 1 2x y\n");
        // Below the limits a fan-out renders in full.
        let small = fan_out("x", 3);
        assert_eq!(render("werf.yaml", &small, &input).unwrap(), "x".repeat(1000));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let depth = 20_000;
        let text = format!("{}x{}", "{{if 1}}".repeat(depth), "{{end}}".repeat(depth));
        let err = render("werf.yaml", &text, &TemplateInput::default()).unwrap_err();
        assert!(err.to_string().contains("nesting depth exceeded 100"), "{err}");
        let parens = format!("{{{{ {}1{} }}}}", "(".repeat(depth), ")".repeat(depth));
        let err = render("werf.yaml", &parens, &TemplateInput::default()).unwrap_err();
        assert!(err.to_string().starts_with("werf.yaml: rendering the Go template: "), "{err}");
    }
}
