//! Conversions between template values and YAML/JSON for `toYaml`, `fromYaml`,
//! `toJson`, `fromJson`: werf's `toYaml` is yaml.v2's `Marshal` (keys sorted, sequences
//! in a mapping not indented, strings quoted when they would read back as something
//! else), its `fromYaml` a mapping.

use std::collections::BTreeMap;

use gotmpl::{TemplateError, Value};

use super::funcs::{exec, go_quote};

pub(super) fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Nil => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Uint(u) => (*u).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::String(x) => x.as_ref().into(),
        Value::List(l) => l.iter().map(to_json).collect(),
        Value::Map(m) => m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect(),
        _ => serde_json::Value::Null,
    }
}

pub(super) fn from_json(j: &serde_json::Value) -> Value {
    match j {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(f)) => Value::Float(f),
            _ => Value::Nil,
        },
        serde_json::Value::String(x) => Value::from(x.as_str()),
        serde_json::Value::Array(a) => Value::from(a.iter().map(from_json).collect::<Vec<_>>()),
        serde_json::Value::Object(o) => {
            Value::from(o.iter().map(|(k, v)| (k.clone(), from_json(v))).collect::<BTreeMap<String, Value>>())
        }
    }
}

/// werf's `fromYaml`: a mapping, or an error naming the YAML problem.
pub(super) fn from_yaml(x: &str) -> Result<Value, TemplateError> {
    if x.trim().is_empty() {
        return Ok(Value::from(BTreeMap::<String, Value>::new()));
    }
    let j: serde_json::Value = serde_saphyr::from_str(x).map_err(|e| exec(format!("fromYaml: {e}")))?;
    match j {
        serde_json::Value::Object(_) => Ok(from_json(&j)),
        serde_json::Value::Null => Ok(Value::from(BTreeMap::<String, Value>::new())),
        _ => Err(exec("fromYaml: cannot unmarshal a non-mapping into map[string]interface {}")),
    }
}

/// `yaml.v2`'s `Marshal` for template values: keys sorted, sequences in a mapping not
/// indented, strings quoted when they would read back as something else.
pub(super) fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    yaml_node(v, 0, &mut out);
    out
}

fn yaml_node(v: &Value, ind: usize, out: &mut String) {
    let pad = " ".repeat(ind);
    match v {
        Value::Map(m) if !m.is_empty() => {
            for (k, v) in m.iter() {
                out.push_str(&pad);
                out.push_str(&yaml_scalar_str(k, ind));
                out.push(':');
                yaml_value_after_key(v, ind, out);
            }
        }
        Value::List(l) if !l.is_empty() => {
            for v in l.iter() {
                out.push_str(&pad);
                out.push('-');
                match v {
                    Value::Map(m) if !m.is_empty() => {
                        let mut inner = String::new();
                        yaml_node(v, ind + 2, &mut inner);
                        out.push(' ');
                        out.push_str(&inner[ind + 2..]);
                    }
                    Value::List(l) if !l.is_empty() => {
                        let mut inner = String::new();
                        yaml_node(v, ind + 2, &mut inner);
                        out.push(' ');
                        out.push_str(&inner[ind + 2..]);
                    }
                    other => {
                        out.push(' ');
                        out.push_str(&yaml_scalar(other, ind + 2));
                        out.push('\n');
                    }
                }
            }
        }
        other => {
            out.push_str(&yaml_scalar(other, ind));
            out.push('\n');
        }
    }
}

fn yaml_value_after_key(v: &Value, ind: usize, out: &mut String) {
    match v {
        Value::Map(m) if !m.is_empty() => {
            out.push('\n');
            yaml_node(v, ind + 2, out);
        }
        Value::List(l) if !l.is_empty() => {
            out.push('\n');
            yaml_node(v, ind, out);
        }
        other => {
            out.push(' ');
            out.push_str(&yaml_scalar(other, ind));
            out.push('\n');
        }
    }
}

fn yaml_scalar(v: &Value, ind: usize) -> String {
    match v {
        Value::Nil => "null".into(),
        Value::Map(_) => "{}".into(),
        Value::List(_) => "[]".into(),
        Value::String(x) => yaml_scalar_str(x, ind),
        other => other.to_string(),
    }
}

pub(crate) fn yaml_scalar_str(x: &str, ind: usize) -> String {
    if x.contains('\n') && !x.chars().any(|c| c.is_control() && c != '\n') && !x.starts_with(' ') {
        let chomp = if x.ends_with("\n\n") {
            "+"
        } else if x.ends_with('\n') {
            ""
        } else {
            "-"
        };
        let pad = " ".repeat(ind + 2);
        let body: Vec<String> = x
            .strip_suffix('\n')
            .unwrap_or(x)
            .split('\n')
            .map(|l| if l.is_empty() { String::new() } else { format!("{pad}{l}") })
            .collect();
        return format!("|{chomp}\n{}", body.join("\n"));
    }
    if yaml_resolves_non_string(x) || x.chars().any(|c| c.is_control()) {
        return go_quote(x);
    }
    let first = x.chars().next().unwrap_or(' ');
    let unsafe_plain = x.is_empty()
        || "-?:,[]{}#&*!|>'\"%@`".contains(first)
        || first == ' '
        || x.ends_with(' ')
        || x.ends_with(':')
        || x.contains(": ")
        || x.contains(" #");
    if unsafe_plain { format!("'{}'", x.replace('\'', "''")) } else { x.to_owned() }
}

/// Whether yaml.v2 would read the plain scalar `x` as a non-string.
fn yaml_resolves_non_string(x: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", "y", "Y", "yes", "Yes",
        "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", ".inf", ".Inf", ".INF", "-.inf",
        "-.Inf", "-.INF", "+.inf", ".nan", ".NaN", ".NAN", "<<",
    ];
    if WORDS.contains(&x) {
        return true;
    }
    let t = x.replace('_', "");
    let t = t.strip_prefix(['+', '-']).unwrap_or(&t);
    t.parse::<f64>().is_ok()
        || t.strip_prefix("0x").is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
        || t.strip_prefix("0b").is_some_and(|h| !h.is_empty() && h.chars().all(|c| c == '0' || c == '1'))
}
