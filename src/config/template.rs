//! Rendering werf.yaml as a Go `text/template` before YAML parsing, for the subset
//! slipway supports: Go's builtins, `.Env` (the `--env` value), werf's `env NAME
//! [DEFAULT]`, `required`, and a few Sprig string helpers (`default`, `quote`,
//! `squote`, `lower`, `upper`, `trim`, `trimPrefix`, `trimSuffix`, `replace`).
//! Anything else (`include`, `.Files`, most of Sprig) fails with the template error,
//! which names the file, line and column.
//!
//! Pure: environment variables come in as a map, so callers decide what the template
//! may see (werf's giterminism allow-list belongs there).

use std::collections::BTreeMap;
use std::sync::Arc;

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

/// Renders `text` as werf does; text without `{{` is returned unchanged.
pub fn render(file: &str, text: &str, input: &TemplateInput) -> Result<String, ConfigError> {
    if !text.contains("{{") {
        return Ok(text.to_owned());
    }
    let fail = |e: TemplateError| ConfigError::Render { file: file.to_owned(), message: e.to_string() };
    let vars = Arc::new(input.vars.clone());
    let template = Template::new(file)
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
        .func("quote", |args: &[Value]| Ok(strs(args, |s| format!("{s:?}"))))
        .func("squote", |args: &[Value]| Ok(strs(args, |s| format!("'{s}'"))))
        .func("lower", |args: &[Value]| one(args, |s| s.to_lowercase()))
        .func("upper", |args: &[Value]| one(args, |s| s.to_uppercase()))
        .func("trim", |args: &[Value]| one(args, |s| s.trim().to_owned()))
        .func("trimPrefix", |args: &[Value]| two(args, |p, s| s.strip_prefix(p).unwrap_or(s).to_owned()))
        .func("trimSuffix", |args: &[Value]| two(args, |p, s| s.strip_suffix(p).unwrap_or(s).to_owned()))
        .func("replace", |args: &[Value]| match args {
            [old, new, s] => Ok(Value::from(s.to_string().replace(&old.to_string(), &new.to_string()).as_str())),
            _ => Err(exec("replace: wants OLD NEW STRING")),
        })
        .parse(text)
        .map_err(fail)?;
    let data = Value::from_entries([("Env".to_owned(), Value::from(input.env.as_str()))]);
    template.execute_to_string(&data).map_err(fail)
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
}
