//! Sprig's text functions as werf.yaml uses them (werf's `funcMap` is
//! `sprig.TxtFuncMap()` minus `expandenv`, plus its own `env`, `required`, `include`,
//! `tpl`, `toYaml` and `fromYaml`; those live in `template.rs`). Semantics follow
//! Sprig v3: argument order (`trimPrefix PREFIX S`, `replace OLD NEW S`), Go's `%v`
//! printing, `cast`'s lenient number conversion.
//!
//! Values are immutable here: `set`, `unset`, `append` and friends return the new
//! collection instead of changing the one passed (`$d = set $d "k" "v"` works; a bare
//! `$_ := set $d "k" "v"` leaves `$d` unchanged).
//!
//! Every function refuses, before allocating, a result that would pass the value budget
//! (`template::MAX_RENDERED_BYTES`); the caller also weighs each result ([`weight`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use gotmpl::{TemplateError, Value};
use sha2::Digest as _;

use super::convert::{from_json, from_yaml, to_json, to_yaml};

pub(super) type Func = fn(&[Value]) -> Result<Value, TemplateError>;

pub(super) const TOO_LONG: &str = "value too long";

/// The value budget, in [`weight`] units (bytes of text, 8 per scalar or element).
pub(super) const MAX_WEIGHT: usize = super::template::MAX_RENDERED_BYTES;

/// The functions, by name.
pub(super) fn sprig() -> Vec<(&'static str, Func)> {
    let mut all: Vec<(&'static str, Func)> = vec![
        // strings
        ("toString", |a| one(a, |v| Ok(s(text(v))))),
        ("lower", |a| str1(a, |x| x.to_lowercase())),
        ("upper", |a| str1(a, |x| x.to_uppercase())),
        ("title", |a| str1(a, title)),
        ("untitle", |a| str1(a, untitle)),
        ("trim", |a| str1(a, |x| x.trim().to_owned())),
        ("trimAll", |a| str2(a, |cut, x| x.trim_matches(|c| cut.contains(c)).to_owned())),
        ("trimPrefix", |a| str2(a, |p, x| x.strip_prefix(p).unwrap_or(x).to_owned())),
        ("trimSuffix", |a| str2(a, |p, x| x.strip_suffix(p).unwrap_or(x).to_owned())),
        ("nospace", |a| str1(a, |x| x.chars().filter(|c| !c.is_whitespace()).collect())),
        ("contains", |a| two(a, |sub, x| Ok(Value::Bool(text(x).contains(&text(sub)))))),
        ("hasPrefix", |a| two(a, |p, x| Ok(Value::Bool(text(x).starts_with(&text(p)))))),
        ("hasSuffix", |a| two(a, |p, x| Ok(Value::Bool(text(x).ends_with(&text(p)))))),
        ("quote", |a| {
            Ok(s(a
                .iter()
                .filter(|v| !matches!(v, Value::Nil))
                .map(|v| go_quote(&text(v)))
                .collect::<Vec<_>>()
                .join(" ")))
        }),
        ("squote", |a| {
            Ok(s(a
                .iter()
                .filter(|v| !matches!(v, Value::Nil))
                .map(|v| format!("'{}'", text(v)))
                .collect::<Vec<_>>()
                .join(" ")))
        }),
        ("cat", |a| Ok(s(a.iter().filter(|v| !matches!(v, Value::Nil)).map(text).collect::<Vec<_>>().join(" ")))),
        ("indent", |a| two(a, |n, x| indent(n, x, false))),
        ("nindent", |a| two(a, |n, x| indent(n, x, true))),
        ("replace", |a| three(a, |old, new, x| replace(&text(old), &text(new), &text(x)))),
        ("repeat", |a| {
            two(a, |n, x| {
                let (n, x) = (int(n).max(0) as u128, text(x));
                if n * x.len() as u128 > MAX_WEIGHT as u128 {
                    return Err(exec(TOO_LONG));
                }
                Ok(s(x.repeat(n as usize)))
            })
        }),
        ("substr", |a| {
            three(a, |start, end, x| {
                let x = text(x);
                let (start, end) = (int(start), int(end));
                let b = x.as_bytes();
                let (start, end) = if start < 0 { (0, b.len() as i64) } else { (start, end) };
                let end = if end < 0 || end as usize > b.len() { b.len() } else { end as usize };
                let start = (start as usize).min(end);
                Ok(s(String::from_utf8_lossy(&b[start..end])))
            })
        }),
        ("trunc", |a| {
            two(a, |n, x| {
                let (n, x) = (int(n), text(x));
                let b = x.as_bytes();
                let out = if n >= 0 {
                    &b[..(n as usize).min(b.len())]
                } else {
                    &b[b.len().saturating_sub(n.unsigned_abs() as usize)..]
                };
                Ok(s(String::from_utf8_lossy(out)))
            })
        }),
        ("split", |a| {
            two(a, |sep, x| {
                let m: BTreeMap<String, Value> =
                    text(x).split(&*text(sep)).enumerate().map(|(i, p)| (format!("_{i}"), s(p))).collect();
                Ok(Value::from(m))
            })
        }),
        ("splitList", |a| two(a, |sep, x| Ok(Value::from(split_go(&text(x), &text(sep)))))),
        ("splitn", |a| {
            three(a, |sep, n, x| {
                let n = int(n);
                let (x, sep) = (text(x), text(sep));
                let parts: Vec<&str> =
                    if n < 0 { x.split(&*sep).collect() } else { x.splitn(n as usize, &*sep).collect() };
                Ok(Value::from(
                    parts.iter().enumerate().map(|(i, p)| (format!("_{i}"), s(*p))).collect::<BTreeMap<_, _>>(),
                ))
            })
        }),
        ("join", |a| two(a, |sep, v| Ok(s(strslice(v).join(&text(sep)))))),
        ("sortAlpha", |a| {
            one(a, |v| {
                let mut l = strslice(v);
                l.sort();
                Ok(Value::from(l.into_iter().map(s).collect::<Vec<_>>()))
            })
        }),
        ("toStrings", |a| one(a, |v| Ok(Value::from(strslice(v).into_iter().map(s).collect::<Vec<_>>())))),
        ("plural", |a| three(a, |one_, many, n| Ok(if int(n) == 1 { one_.clone() } else { many.clone() }))),
        ("snakecase", |a| str1(a, |x| words_case(x, '_'))),
        ("kebabcase", |a| str1(a, |x| words_case(x, '-'))),
        // regular expressions
        ("regexMatch", |a| two(a, |re, x| Ok(Value::Bool(regex(re)?.is_match(&text(x)))))),
        ("regexFind", |a| {
            two(a, |re, x| Ok(s(regex(re)?.find(&text(x)).map(|m| m.as_str().to_owned()).unwrap_or_default())))
        }),
        ("regexFindAll", |a| {
            three(a, |re, x, n| {
                let (re, x, n) = (regex(re)?, text(x), int(n));
                let found = re.find_iter(&x).map(|m| s(m.as_str()));
                Ok(Value::from(if n < 0 { found.collect::<Vec<_>>() } else { found.take(n as usize).collect() }))
            })
        }),
        ("regexReplaceAll", |a| {
            three(a, |re, x, repl| {
                let (re, x, repl) = (regex(re)?, text(x), text(repl));
                let n = re.find_iter(&x).count() as u128;
                if x.len() as u128 + n * (repl.len() as u128 * 2 + 64) > MAX_WEIGHT as u128 {
                    return Err(exec(TOO_LONG));
                }
                Ok(s(re.replace_all(&x, repl.as_str())))
            })
        }),
        ("regexReplaceAllLiteral", |a| {
            three(a, |re, x, repl| {
                let (re, x, repl) = (regex(re)?, text(x), text(repl));
                let n = re.find_iter(&x).count() as u128;
                if x.len() as u128 + n * repl.len() as u128 > MAX_WEIGHT as u128 {
                    return Err(exec(TOO_LONG));
                }
                Ok(s(re.replace_all(&x, regex_lite::NoExpand(&repl))))
            })
        }),
        ("regexSplit", |a| {
            three(a, |re, x, n| {
                let (re, x, n) = (regex(re)?, text(x), int(n));
                let parts = re.split(&x).map(s);
                Ok(Value::from(if n < 0 { parts.collect::<Vec<_>>() } else { parts.take(n as usize).collect() }))
            })
        }),
        ("regexQuoteMeta", |a| str1(a, regex_lite::escape)),
        // encodings and hashes
        ("b64enc", |a| str1(a, |x| base64::engine::general_purpose::STANDARD.encode(x))),
        ("b64dec", |a| {
            str1(a, |x| match base64::engine::general_purpose::STANDARD.decode(x) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => e.to_string(),
            })
        }),
        ("sha256sum", |a| str1(a, |x| hex::encode(sha2::Sha256::digest(x.as_bytes())))),
        ("adler32sum", |a| str1(a, |x| adler32(x.as_bytes()).to_string())),
        ("uuidv4", |a| if a.is_empty() { uuidv4() } else { Err(exec("uuidv4: wants no arguments")) }),
        // defaults and flow
        ("default", |a| match a {
            [d, v] if empty(v) => Ok(d.clone()),
            [_, v] => Ok(v.clone()),
            [d] => Ok(d.clone()),
            _ => Err(exec("default: wants a default and a value")),
        }),
        ("empty", |a| one(a, |v| Ok(Value::Bool(empty(v))))),
        ("coalesce", |a| Ok(a.iter().find(|v| !empty(v)).cloned().unwrap_or(Value::Nil))),
        ("all", |a| Ok(Value::Bool(a.iter().all(|v| !empty(v))))),
        ("any", |a| Ok(Value::Bool(a.iter().any(|v| !empty(v))))),
        ("ternary", |a| three(a, |t, f, c| Ok(if gotmpl::is_true(c) { t.clone() } else { f.clone() }))),
        ("fail", |a| one(a, |m| Err(exec(text(m))))),
        // numbers
        ("int", |a| one(a, |v| Ok(Value::Int(int(v))))),
        ("int64", |a| one(a, |v| Ok(Value::Int(int(v))))),
        ("atoi", |a| one(a, |v| Ok(Value::Int(text(v).trim().parse().unwrap_or(0))))),
        ("float64", |a| one(a, |v| Ok(Value::Float(float(v))))),
        ("add", |a| Ok(Value::Int(a.iter().fold(0i64, |acc, v| acc.wrapping_add(int(v)))))),
        ("add1", |a| one(a, |v| Ok(Value::Int(int(v).wrapping_add(1))))),
        ("sub", |a| two(a, |x, y| Ok(Value::Int(int(x).wrapping_sub(int(y)))))),
        ("mul", |a| Ok(Value::Int(a.iter().fold(1i64, |acc, v| acc.wrapping_mul(int(v)))))),
        ("div", |a| {
            two(a, |x, y| match int(y) {
                0 => Err(exec("runtime error: integer divide by zero")),
                y => Ok(Value::Int(int(x).wrapping_div(y))),
            })
        }),
        ("mod", |a| {
            two(a, |x, y| match int(y) {
                0 => Err(exec("runtime error: integer divide by zero")),
                y => Ok(Value::Int(int(x).wrapping_rem(y))),
            })
        }),
        ("max", |a| Ok(Value::Int(a.iter().map(int).max().unwrap_or(0)))),
        ("min", |a| Ok(Value::Int(a.iter().map(int).min().unwrap_or(0)))),
        ("until", |a| one(a, |n| range_list(0, int(n), if int(n) < 0 { -1 } else { 1 }))),
        ("untilStep", |a| three(a, |start, stop, step| range_list(int(start), int(stop), int(step)))),
        // lists
        ("list", |a| Ok(Value::from(a.to_vec()))),
        // Sprig's alias, common in werf.yaml: `include "x" (tuple $ "a")`.
        ("tuple", |a| Ok(Value::from(a.to_vec()))),
        ("first", |a| one(a, |l| Ok(items(l)?.first().cloned().unwrap_or(Value::Nil)))),
        ("last", |a| one(a, |l| Ok(items(l)?.last().cloned().unwrap_or(Value::Nil)))),
        ("rest", |a| one(a, |l| Ok(Value::from(items(l)?.iter().skip(1).cloned().collect::<Vec<_>>())))),
        ("initial", |a| {
            one(a, |l| {
                let v = items(l)?;
                Ok(Value::from(v[..v.len().saturating_sub(1)].to_vec()))
            })
        }),
        ("append", |a| {
            two(a, |l, v| {
                let mut o = items(l)?;
                o.push(v.clone());
                Ok(Value::from(o))
            })
        }),
        ("push", |a| {
            two(a, |l, v| {
                let mut o = items(l)?;
                o.push(v.clone());
                Ok(Value::from(o))
            })
        }),
        ("prepend", |a| {
            two(a, |l, v| {
                let mut o = vec![v.clone()];
                o.extend(items(l)?);
                Ok(Value::from(o))
            })
        }),
        ("concat", |a| {
            let mut o = Vec::new();
            for l in a {
                o.extend(items(l)?);
            }
            Ok(Value::from(o))
        }),
        ("reverse", |a| {
            one(a, |l| {
                let mut o = items(l)?;
                o.reverse();
                Ok(Value::from(o))
            })
        }),
        ("uniq", |a| {
            one(a, |l| {
                let mut o: Vec<Value> = Vec::new();
                for v in items(l)? {
                    if !o.iter().any(|x| same(x, &v)) {
                        o.push(v)
                    }
                }
                Ok(Value::from(o))
            })
        }),
        ("without", |a| match a {
            [l, rest @ ..] => {
                Ok(Value::from(items(l)?.into_iter().filter(|v| !rest.iter().any(|r| same(r, v))).collect::<Vec<_>>()))
            }
            _ => Err(exec("without: wants a list")),
        }),
        ("has", |a| two(a, |needle, l| Ok(Value::Bool(items(l)?.iter().any(|v| same(v, needle)))))),
        ("compact", |a| one(a, |l| Ok(Value::from(items(l)?.into_iter().filter(|v| !empty(v)).collect::<Vec<_>>())))),
        // dictionaries
        ("dict", |a| {
            let mut m = BTreeMap::new();
            for pair in a.chunks(2) {
                m.insert(text(&pair[0]), pair.get(1).cloned().unwrap_or_else(|| s("")));
            }
            Ok(Value::from(m))
        }),
        ("get", |a| two(a, |d, k| Ok(map(d)?.get(&*text(k)).cloned().unwrap_or_else(|| s(""))))),
        ("set", |a| {
            three(a, |d, k, v| {
                let mut m = map(d)?;
                m.insert(text(k).into(), v.clone());
                Ok(Value::from(m))
            })
        }),
        ("unset", |a| {
            two(a, |d, k| {
                let mut m = map(d)?;
                m.remove(&*text(k));
                Ok(Value::from(m))
            })
        }),
        ("hasKey", |a| two(a, |d, k| Ok(Value::Bool(map(d)?.contains_key(&*text(k)))))),
        ("keys", |a| {
            let mut o = Vec::new();
            for d in a {
                o.extend(map(d)?.keys().map(|k| Value::String(k.clone())))
            }
            Ok(Value::from(o))
        }),
        ("values", |a| one(a, |d| Ok(Value::from(map(d)?.values().cloned().collect::<Vec<_>>())))),
        ("pluck", |a| match a {
            [k, ds @ ..] => {
                Ok(Value::from(ds.iter().filter_map(|d| map(d).ok()?.get(&*text(k)).cloned()).collect::<Vec<_>>()))
            }
            _ => Err(exec("pluck: wants a key")),
        }),
        ("pick", |a| match a {
            [d, ks @ ..] => Ok(Value::from(
                map(d)?.into_iter().filter(|(k, _)| ks.iter().any(|x| text(x) == **k)).collect::<BTreeMap<_, _>>(),
            )),
            _ => Err(exec("pick: wants a dict")),
        }),
        ("omit", |a| match a {
            [d, ks @ ..] => Ok(Value::from(
                map(d)?.into_iter().filter(|(k, _)| !ks.iter().any(|x| text(x) == **k)).collect::<BTreeMap<_, _>>(),
            )),
            _ => Err(exec("omit: wants a dict")),
        }),
        ("merge", |a| merge(a, false)),
        ("mergeOverwrite", |a| merge(a, true)),
        ("deepCopy", |a| one(a, |v| Ok(v.clone()))),
        ("dig", |a| match a {
            [keys @ .., default, d] if !keys.is_empty() => {
                let mut cur = d.clone();
                for k in keys {
                    match map(&cur).ok().and_then(|m| m.get(&*text(k)).cloned()) {
                        Some(v) => cur = v,
                        None => return Ok(default.clone()),
                    }
                }
                Ok(cur)
            }
            _ => Err(exec("dig: wants keys, a default and a dict")),
        }),
        // types
        ("kindOf", |a| one(a, |v| Ok(s(kind(v))))),
        ("typeOf", |a| one(a, |v| Ok(s(type_of(v))))),
        ("kindIs", |a| two(a, |k, v| Ok(Value::Bool(text(k) == kind(v))))),
        ("typeIs", |a| two(a, |t, v| Ok(Value::Bool(text(t) == type_of(v))))),
        // JSON
        ("toJson", |a| one(a, |v| Ok(s(serde_json::to_string(&to_json(v)).unwrap_or_default())))),
        ("toPrettyJson", |a| one(a, |v| Ok(s(serde_json::to_string_pretty(&to_json(v)).unwrap_or_default())))),
        ("toRawJson", |a| one(a, |v| Ok(s(serde_json::to_string(&to_json(v)).unwrap_or_default())))),
        ("fromJson", |a| {
            one(a, |v| {
                Ok(serde_json::from_str::<serde_json::Value>(&text(v))
                    .map(|j| from_json(&j))
                    .unwrap_or_else(|_| Value::from(BTreeMap::<String, Value>::new())))
            })
        }),
        ("mustFromJson", |a| {
            one(a, |v| {
                serde_json::from_str::<serde_json::Value>(&text(v))
                    .map(|j| from_json(&j))
                    .map_err(|e| exec(e.to_string()))
            })
        }),
        ("mustToJson", |a| one(a, |v| Ok(s(serde_json::to_string(&to_json(v)).unwrap_or_default())))),
        // versions
        ("semverCompare", |a| two(a, |c, v| super::semver::compare(&text(c), &text(v)).map(Value::Bool).map_err(exec))),
        // YAML (werf's own: yaml.v2, the trailing newline trimmed; a map from fromYaml)
        ("toYaml", |a| one(a, |v| Ok(s(to_yaml(v).trim_end_matches('\n'))))),
        ("fromYaml", |a| one(a, |v| from_yaml(&text(v)))),
    ];
    all.extend(super::dates::functions());
    all
}

pub(super) fn exec(msg: impl Into<String>) -> TemplateError {
    TemplateError::Exec(msg.into())
}

fn s(x: impl AsRef<str>) -> Value {
    Value::from(x.as_ref())
}

/// Go's `%v` of a value (Sprig's `strval`).
pub(super) fn text(v: &Value) -> String {
    match v {
        Value::String(x) => x.to_string(),
        other => other.to_string(),
    }
}

/// Sprig's `empty`: nil, false, 0, "", empty list or map.
pub(super) fn empty(v: &Value) -> bool {
    !gotmpl::is_true(v)
}

/// `cast.ToInt64`: numbers truncated, numeric strings parsed, anything else 0.
fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Uint(u) => *u as i64,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::String(x) => {
            let x = x.trim();
            x.parse::<i64>().ok().or_else(|| x.parse::<f64>().ok().map(|f| f as i64)).unwrap_or(0)
        }
        _ => 0,
    }
}

fn float(v: &Value) -> f64 {
    match v {
        Value::Float(f) => *f,
        Value::String(x) => x.trim().parse().unwrap_or(0.0),
        other => int(other) as f64,
    }
}

fn one(a: &[Value], f: impl Fn(&Value) -> Result<Value, TemplateError>) -> Result<Value, TemplateError> {
    match a {
        [x] => f(x),
        _ => Err(exec(format!("wrong number of args: want 1 got {}", a.len()))),
    }
}

fn two(a: &[Value], f: impl Fn(&Value, &Value) -> Result<Value, TemplateError>) -> Result<Value, TemplateError> {
    match a {
        [x, y] => f(x, y),
        _ => Err(exec(format!("wrong number of args: want 2 got {}", a.len()))),
    }
}

fn three(
    a: &[Value],
    f: impl Fn(&Value, &Value, &Value) -> Result<Value, TemplateError>,
) -> Result<Value, TemplateError> {
    match a {
        [x, y, z] => f(x, y, z),
        _ => Err(exec(format!("wrong number of args: want 3 got {}", a.len()))),
    }
}

fn str1(a: &[Value], f: impl Fn(&str) -> String) -> Result<Value, TemplateError> {
    one(a, |x| Ok(s(f(&text(x)))))
}

fn str2(a: &[Value], f: impl Fn(&str, &str) -> String) -> Result<Value, TemplateError> {
    two(a, |x, y| Ok(s(f(&text(x), &text(y)))))
}

fn items(v: &Value) -> Result<Vec<Value>, TemplateError> {
    match v {
        Value::List(l) => Ok(l.to_vec()),
        Value::Nil => Ok(Vec::new()),
        other => Err(exec(format!("cannot use {} as a list", other.type_name()))),
    }
}

fn map(v: &Value) -> Result<BTreeMap<Arc<str>, Value>, TemplateError> {
    match v {
        Value::Map(m) => Ok((**m).clone()),
        Value::Nil => Ok(BTreeMap::new()),
        other => Err(exec(format!("cannot use {} as a dict", other.type_name()))),
    }
}

fn same(a: &Value, b: &Value) -> bool {
    to_json(a) == to_json(b)
}

/// Sprig's `strslice`: a list's non-nil elements as strings; a string is one element.
fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::List(l) => l.iter().filter(|x| !matches!(x, Value::Nil)).map(text).collect(),
        Value::Nil => Vec::new(),
        other => vec![text(other)],
    }
}

/// Go's `strings.Split`: an empty separator splits into characters.
fn split_go(x: &str, sep: &str) -> Vec<Value> {
    if sep.is_empty() {
        return x.chars().map(|c| s(c.to_string())).collect();
    }
    x.split(sep).map(s).collect()
}

fn indent(n: &Value, x: &Value, leading_newline: bool) -> Result<Value, TemplateError> {
    let (n, x) = (int(n).max(0) as u128, text(x));
    let lines = x.matches('\n').count() as u128 + 1;
    if x.len() as u128 + lines * n > MAX_WEIGHT as u128 {
        return Err(exec(TOO_LONG));
    }
    let pad = " ".repeat(n as usize);
    let body = format!("{pad}{}", x.replace('\n', &format!("\n{pad}")));
    Ok(s(if leading_newline { format!("\n{body}") } else { body }))
}

pub(super) fn replace(old: &str, new: &str, x: &str) -> Result<Value, TemplateError> {
    let count = if old.is_empty() { x.chars().count() + 1 } else { x.matches(old).count() };
    let len = (x.len() as u128) + (count as u128) * (new.len() as u128);
    if len > MAX_WEIGHT as u128 + old.len() as u128 * count as u128 {
        return Err(exec(TOO_LONG));
    }
    Ok(s(x.replace(old, new)))
}

/// Go's `strings.Title`: the first letter of each word upper-cased.
fn title(x: &str) -> String {
    let mut out = String::with_capacity(x.len());
    let mut prev_sep = true;
    for c in x.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}

fn untitle(x: &str) -> String {
    let mut out = String::with_capacity(x.len());
    let mut prev_space = true;
    for c in x.chars() {
        if prev_space {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        prev_space = c.is_whitespace();
    }
    out
}

fn words_case(x: &str, sep: char) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in x.chars() {
        if c.is_uppercase() {
            if prev_lower {
                out.push(sep);
            }
            out.extend(c.to_lowercase());
            prev_lower = false;
        } else if c == ' ' || c == '-' || c == '_' {
            out.push(sep);
            prev_lower = false;
        } else {
            out.push(c);
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

/// Go's `%q` of a string.
pub(super) fn go_quote(x: &str) -> String {
    let mut out = String::with_capacity(x.len() + 2);
    out.push('"');
    for c in x.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A regular expression of at most 4 KiB (regex-lite: RE2-like syntax, no
/// backtracking; its work is charged by the caller as pattern × text).
fn regex(v: &Value) -> Result<regex_lite::Regex, TemplateError> {
    let re = text(v);
    if re.len() > 4 << 10 {
        return Err(exec("regular expression longer than 4 KiB"));
    }
    regex_lite::RegexBuilder::new(&re)
        .size_limit(1 << 22)
        .build()
        .map_err(|e| exec(format!("error parsing regexp: {e}")))
}

pub(super) fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    (b << 16) | a
}

fn uuidv4() -> Result<Value, TemplateError> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .map_err(|e| exec(format!("uuidv4: {e}")))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(s(format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])))
}

fn range_list(start: i64, stop: i64, step: i64) -> Result<Value, TemplateError> {
    if step == 0 {
        return Ok(Value::from(Vec::<Value>::new()));
    }
    let n = ((stop as i128 - start as i128) / step as i128).max(0) as u128 + 1;
    if n * 8 > MAX_WEIGHT as u128 {
        return Err(exec(TOO_LONG));
    }
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < stop) || (step < 0 && i > stop) {
        out.push(Value::Int(i));
        i = match i.checked_add(step) {
            Some(i) => i,
            None => break,
        };
    }
    Ok(Value::from(out))
}

/// `merge` keeps what the first dict has (recursively for dicts); `mergeOverwrite`
/// lets later dicts win.
fn merge(a: &[Value], overwrite: bool) -> Result<Value, TemplateError> {
    let Some((first, rest)) = a.split_first() else { return Err(exec("merge: wants dicts")) };
    let mut out = map(first)?;
    for d in rest {
        for (k, v) in map(d)? {
            let merged = match (out.get(&k), &v) {
                (Some(Value::Map(_)), Value::Map(_)) => {
                    let pair = [out[&k].clone(), v.clone()];
                    Some(merge(&pair, overwrite)?)
                }
                (Some(old), _) if !overwrite && !empty(old) => None,
                (Some(_), _) if !overwrite => Some(v.clone()),
                _ => Some(v.clone()),
            };
            if let Some(m) = merged {
                out.insert(k, m);
            }
        }
    }
    Ok(Value::from(out))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Nil => "invalid",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Uint(_) => "uint64",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::List(_) => "slice",
        Value::Map(_) => "map",
        _ => "func",
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Nil => "<nil>",
        Value::List(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
        other => kind(other),
    }
}

/// A bound on a value's size: bytes of text plus 8 per scalar or element, counted only
/// up to `limit` (so a shared structure doubled many times is not walked whole).
pub(super) fn weight(v: &Value, limit: usize) -> usize {
    let mut total = 0usize;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        total = total.saturating_add(match v {
            Value::String(x) => x.len() + 8,
            Value::List(l) => {
                stack.extend(l.iter());
                8
            }
            Value::Map(m) => {
                for (k, v) in m.iter() {
                    total = total.saturating_add(k.len());
                    stack.push(v);
                }
                8
            }
            _ => 8,
        });
        if total > limit {
            return total;
        }
    }
    total
}
