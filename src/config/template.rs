//! Rendering werf.yaml as a Go `text/template` before YAML parsing, for the subset
//! slipway supports: Go's builtins, `.Env` (the `--env` value), werf's `env NAME
//! [DEFAULT]`, `required`, and a few Sprig string helpers (`default`, `quote`,
//! `squote`, `lower`, `upper`, `trim`, `trimPrefix`, `trimSuffix`, `replace`).
//! Anything else (`include`, `.Files`, most of Sprig) fails with the template error,
//! which names the file, line and column.
//!
//! Pure: environment variables come in as a map, so callers decide what the template
//! may see (werf's giterminism allow-list belongs there).
//!
//! werf.yaml comes from the repository, so rendering is bounded: at most
//! [`MAX_RENDERED_BYTES`] of output (a `define` fan-out — A calls B ten times, B calls C
//! ten times, … — otherwise renders gigabytes) and at most [`MAX_RENDER_STEPS`] template
//! nodes executed (the same fan-out with empty leaves renders nothing but runs for
//! hours). gotmpl itself bounds nesting (200 levels) and `range` iterations; the step
//! count is added by putting a counting action before every node of every parsed tree.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use gotmpl::parse::{ListNode, Node};
use gotmpl::{Template, TemplateError, Value};

use super::error::ConfigError;

/// What a werf.yaml template can read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateInput {
    /// Variables visible to `env NAME`.
    pub vars: BTreeMap<String, String>,
    /// `.Env`: the `--env` value.
    pub env: String,
}

/// The most rendered werf.yaml text a template may produce.
pub const MAX_RENDERED_BYTES: usize = 16 << 20;

/// The most template nodes (text, actions, `if`, `range` bodies, `template` calls) one
/// rendering may execute; a real werf.yaml executes a few thousand.
pub const MAX_RENDER_STEPS: u64 = 1_000_000;

/// The function that counts steps; a name no template can define.
const STEP_FUNC: &str = "__slipway_step";

const TOO_LONG: &str = "value too long";

/// Which limit stopped a rendering (shared with the functions gotmpl calls).
#[derive(Default)]
struct Limits {
    steps: AtomicU64,
    /// 0: none, 1: steps, 2: a function result was too long.
    tripped: AtomicU8,
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

/// Renders `text` as werf does; text without `{{` is returned unchanged.
pub fn render(file: &str, text: &str, input: &TemplateInput) -> Result<String, ConfigError> {
    if !text.contains("{{") {
        return Ok(text.to_owned());
    }
    let fail = |e: TemplateError| ConfigError::Render { file: file.to_owned(), message: e.to_string() };
    let limits = Arc::new(Limits::default());
    let template = functions(file, input, &limits).parse(text).map_err(fail)?;
    let template = instrument(template, &limits).map_err(fail)?;
    let data = Value::from_entries([("Env".to_owned(), Value::from(input.env.as_str()))]);
    let mut out = Bounded { out: String::new(), over: false };
    // The top level is registered under the file name when it is not empty.
    let result = match template.lookup(file) {
        Some(_) => template.execute_template_fmt(&mut out, file, &data),
        None => template.execute_fmt(&mut out, &data),
    };
    let over_budget = |what: String| ConfigError::Render {
        file: file.to_owned(),
        message: format!("{what}; is a `define` calling itself or fanning out?"),
    };
    match (result, limits.tripped.load(Ordering::Relaxed)) {
        _ if out.over => Err(over_budget(format!("the rendered text exceeds {} MiB", MAX_RENDERED_BYTES >> 20))),
        (Err(_), 1) => Err(over_budget(format!("rendering takes more than {MAX_RENDER_STEPS} steps"))),
        (Err(_), 2) => Err(over_budget(format!("a value exceeds {} MiB", MAX_RENDERED_BYTES >> 20))),
        (Err(e), _) => Err(fail(e)),
        (Ok(()), _) => Ok(out.out),
    }
}

/// Puts a step-counting action before every node of every tree (the top level is one of
/// them), so [`MAX_RENDER_STEPS`] bounds the work of `template` calls and `range` bodies.
fn instrument(mut template: Template, limits: &Arc<Limits>) -> Result<Template, TemplateError> {
    let probe = Template::new("step").func(STEP_FUNC, step_func(limits)).parse(&format!("{{{{{STEP_FUNC}}}}}"))?;
    let step = probe.lookup("step").and_then(|t| t.nodes.first()).cloned().expect("one action");
    let names: Vec<String> = template.templates().into_iter().map(str::to_owned).collect();
    for name in names {
        let Some(tree) = template.lookup(&name) else { continue };
        let tree = with_steps(tree, &step);
        template = template.add_parse_tree(&name, tree);
    }
    Ok(template.func(STEP_FUNC, step_func(limits)))
}

fn step_func(limits: &Arc<Limits>) -> impl Fn(&[Value]) -> Result<Value, TemplateError> + Send + Sync + 'static {
    let limits = Arc::clone(limits);
    move |_: &[Value]| {
        if limits.steps.fetch_add(1, Ordering::Relaxed) >= MAX_RENDER_STEPS {
            limits.tripped.store(1, Ordering::Relaxed);
            return Err(exec("too many steps"));
        }
        Ok(Value::from(""))
    }
}

fn with_steps(list: &ListNode, step: &Node) -> ListNode {
    let mut nodes = Vec::with_capacity(list.nodes.len() * 2);
    for node in &list.nodes {
        nodes.push(step.clone());
        nodes.push(match node {
            Node::List(l) => Node::List(with_steps(l, step)),
            Node::If(b) | Node::With(b) | Node::Range(b) => {
                let mut b = b.clone();
                b.body = with_steps(&b.body, step);
                b.else_body = b.else_body.as_ref().map(|e| with_steps(e, step));
                match node {
                    Node::If(_) => Node::If(b),
                    Node::With(_) => Node::With(b),
                    _ => Node::Range(b),
                }
            }
            other => other.clone(),
        });
    }
    ListNode { pos: list.pos, nodes }
}

/// The functions werf.yaml may call, each result held to [`MAX_RENDERED_BYTES`].
fn functions(file: &str, input: &TemplateInput, limits: &Arc<Limits>) -> Template {
    type Func = fn(&[Value]) -> Result<Value, TemplateError>;
    let vars = Arc::new(input.vars.clone());
    let checked = |f: Func| {
        let limits = Arc::clone(limits);
        move |args: &[Value]| match f(args) {
            Ok(v) if v.as_str().is_none_or(|s| s.len() <= MAX_RENDERED_BYTES) => Ok(v),
            Err(e) if !e.to_string().contains(TOO_LONG) => Err(e),
            _ => {
                limits.tripped.store(2, Ordering::Relaxed);
                Err(exec(TOO_LONG))
            }
        }
    };
    Template::new(file)
        .func("env", move |args: &[Value]| env_func(&vars, args))
        .func("required", |args: &[Value]| match args {
            [msg, val] if is_empty(val) => Err(exec(msg.to_string())),
            [_, val] => Ok(val.clone()),
            _ => Err(exec("required: wants a message and a value")),
        })
        .func("default", |args: &[Value]| match args {
            [default, val] if is_empty(val) => Ok(default.clone()),
            [_, val] => Ok(val.clone()),
            [default] => Ok(default.clone()),
            _ => Err(exec("default: wants a default and a value")),
        })
        .func("quote", checked(|args| Ok(strs(args, |s| format!("{s:?}")))))
        .func("squote", checked(|args| Ok(strs(args, |s| format!("'{s}'")))))
        .func("lower", checked(|args| one(args, |s| s.to_lowercase())))
        .func("upper", checked(|args| one(args, |s| s.to_uppercase())))
        .func("trim", |args: &[Value]| one(args, |s| s.trim().to_owned()))
        .func("trimPrefix", |args: &[Value]| two(args, |p, s| s.strip_prefix(p).unwrap_or(s).to_owned()))
        .func("trimSuffix", |args: &[Value]| two(args, |p, s| s.strip_suffix(p).unwrap_or(s).to_owned()))
        .func(
            "replace",
            checked(|args| match args {
                [old, new, s] => replace_bounded(&old.to_string(), &new.to_string(), &s.to_string()),
                _ => Err(exec("replace: wants OLD NEW STRING")),
            }),
        )
        .func("print", checked(|args| builtin_bounded("print", args)))
        .func("println", checked(|args| builtin_bounded("println", args)))
        .func("printf", checked(|args| builtin_bounded("printf", args)))
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

/// `replace`, refusing before it allocates a result longer than the budget.
fn replace_bounded(old: &str, new: &str, s: &str) -> Result<Value, TemplateError> {
    let count = if old.is_empty() { s.chars().count() + 1 } else { s.matches(old).count() };
    let len = (s.len() as u128) + (count as u128) * (new.len() as u128);
    if len > MAX_RENDERED_BYTES as u128 + old.len() as u128 * count as u128 {
        return Err(exec(TOO_LONG));
    }
    Ok(Value::from(s.replace(old, new).as_str()))
}

/// werf's `env NAME [DEFAULT]`: unset without a default is an error (werf's strict
/// giterminism mode); an empty value takes the default.
fn env_func(vars: &BTreeMap<String, String>, args: &[Value]) -> Result<Value, TemplateError> {
    let (name, default) = match args {
        [name] => (name.to_string(), None),
        [name, default] => (name.to_string(), Some(default.to_string())),
        _ => return Err(exec("env: wants NAME and at most one DEFAULT")),
    };
    match (vars.get(&name), default) {
        (Some(v), Some(d)) if v.is_empty() => Ok(Value::from(d.as_str())),
        (Some(v), _) => Ok(Value::from(v.as_str())),
        (None, Some(d)) => Ok(Value::from(d.as_str())),
        (None, None) => Err(exec(format!("the environment variable {name:?} must be set or default must be provided"))),
    }
}

fn exec(msg: impl Into<String>) -> TemplateError {
    TemplateError::Exec(msg.into())
}

fn is_empty(v: &Value) -> bool {
    !gotmpl::is_true(v)
}

fn strs(args: &[Value], f: impl Fn(&str) -> String) -> Value {
    let out: Vec<String> = args.iter().map(|a| f(&a.to_string())).collect();
    Value::from(out.join(" ").as_str())
}

fn one(args: &[Value], f: impl Fn(&str) -> String) -> Result<Value, TemplateError> {
    match args {
        [s] => Ok(Value::from(f(&s.to_string()).as_str())),
        _ => Err(exec("wants one string")),
    }
}

fn two(args: &[Value], f: impl Fn(&str, &str) -> String) -> Result<Value, TemplateError> {
    match args {
        [a, s] => Ok(Value::from(f(&a.to_string(), &s.to_string()).as_str())),
        _ => Err(exec("wants two strings")),
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
        };
        // (template, rendered or error)
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("plain: yes\n", Ok("plain: yes\n")),
            ("tag: {{ env \"TAG\" }}\n", Ok("tag: 1.2\n")),
            ("tag: {{ env \"NOPE\" \"latest\" }}\n", Ok("tag: latest\n")),
            ("tag: {{ env \"EMPTY\" \"dflt\" }}\n", Ok("tag: dflt\n")),
            ("env: {{ .Env }}\n", Ok("env: production\n")),
            ("{{ if eq .Env \"production\" }}replicas: 3{{ else }}replicas: 1{{ end }}\n", Ok("replicas: 3\n")),
            ("{{- range $i, $n := list }}{{ end -}}x", Err("function")),
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
                format!("{prefix}recursion limit exceeded"),
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
