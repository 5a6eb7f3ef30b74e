//! Sprig's date functions (v3.2.3, as werf vendors it): `now`, `date`, `dateInZone`,
//! `htmlDate`, `htmlDateInZone`, `dateModify`, `mustDateModify`, `toDate`,
//! `mustToDate`, `unixEpoch`, `duration`, `durationRound`, `ago`, with Go's
//! `time.Format`, `time.Parse` and `time.ParseDuration` underneath.
//!
//! gotmpl has no opaque values, so a `time.Time` travels as the string Go prints for it,
//! `time.Time.String()` (`2024-05-01 00:00:00 +0000 UTC`, a fraction when there is one;
//! Go's monotonic `m=+…` suffix is left out): printing a bare `now` gives Go's text, and
//! every function here reads such a string back as the time it names. Any other string
//! is not a time (Sprig's `date` then formats the current time, as Go does).
//!
//! Zones: `Local` is UTC, as `.Commit.Date.Human` is: rendering does not depend on the
//! host's zone (werf in CI usually runs in UTC). Other names are IANA zones read from the
//! system's zoneinfo (`zoneinfo`); a name Go would not load (`..`, absolute, no such
//! zone) gives UTC, as Sprig falls back to it, but a missing zoneinfo directory is an
//! error naming the function and the zone rather than a silent UTC.

use std::path::Path;

use gotmpl::{TemplateError, Value};

use super::funcs::{MAX_WEIGHT, TOO_LONG, exec, go_quote, text};
use super::gotime::{NS, STRING_LAYOUT, Time, days_from_civil, days_in, format, parse};
use super::zoneinfo::{self, LoadError, ZONEINFO_DIR};
use crate::engine::state::civil_from_days;

impl Time {
    fn value(&self) -> Value {
        Value::from(format(STRING_LAYOUT, self).as_str())
    }
}

/// The functions, by name.
pub(super) fn functions() -> Vec<(&'static str, super::funcs::Func)> {
    vec![
        ("now", |a| if a.is_empty() { Ok(Time::now().value()) } else { Err(exec("now: wants no arguments")) }),
        ("date", |a| two("date", a, |f, t| date_in_zone("date", f, t, "Local"))),
        ("dateInZone", |a| three("dateInZone", a, |f, t, z| date_in_zone("dateInZone", f, t, &text(z)))),
        ("date_in_zone", |a| three("date_in_zone", a, |f, t, z| date_in_zone("date_in_zone", f, t, &text(z)))),
        ("htmlDate", |a| match a {
            [t] => date_in_zone("htmlDate", &Value::from("2006-01-02"), t, "Local"),
            _ => Err(exec("htmlDate: wants a date")),
        }),
        ("htmlDateInZone", |a| {
            two("htmlDateInZone", a, |t, z| date_in_zone("htmlDateInZone", &Value::from("2006-01-02"), t, &text(z)))
        }),
        ("dateModify", |a| two("dateModify", a, |d, t| date_modify("dateModify", d, t, false))),
        ("date_modify", |a| two("date_modify", a, |d, t| date_modify("date_modify", d, t, false))),
        ("mustDateModify", |a| two("mustDateModify", a, |d, t| date_modify("mustDateModify", d, t, true))),
        ("must_date_modify", |a| two("must_date_modify", a, |d, t| date_modify("must_date_modify", d, t, true))),
        ("toDate", |a| {
            two("toDate", a, |l, v| Ok(parse(&text(l), &text(v)).unwrap_or_else(|_| Time::utc(ZERO_UNIX, 0)).value()))
        }),
        ("mustToDate", |a| two("mustToDate", a, |l, v| parse(&text(l), &text(v)).map(|t| t.value()).map_err(exec))),
        ("unixEpoch", |a| match a {
            [t] => Ok(Value::from(time_arg("unixEpoch", t)?.unix.to_string().as_str())),
            _ => Err(exec("unixEpoch: wants a date")),
        }),
        ("duration", |a| match a {
            [Value::Int(n)] => Ok(Value::from(duration_string(n.saturating_mul(NS)).as_str())),
            [Value::String(x)] => {
                Ok(Value::from(duration_string(x.parse::<i64>().unwrap_or(0).saturating_mul(NS)).as_str()))
            }
            [_] => Ok(Value::from("0s")),
            _ => Err(exec("duration: wants a number of seconds")),
        }),
        ("durationRound", |a| match a {
            [v] => Ok(Value::from(duration_round(v))),
            _ => Err(exec("durationRound: wants a duration")),
        }),
        ("ago", |a| match a {
            [v] => {
                let t = match v {
                    Value::Int(n) => Time::utc(*n, 0),
                    other => as_time(other).unwrap_or_else(Time::now),
                };
                Ok(Value::from(duration_string(round_to_second(since(&t))).as_str()))
            }
            _ => Err(exec("ago: wants a date")),
        }),
    ]
}

/// Unix seconds of Go's zero time, 0001-01-01 00:00:00 UTC.
const ZERO_UNIX: i64 = -62_135_596_800;

fn two(
    name: &str,
    a: &[Value],
    f: impl Fn(&Value, &Value) -> Result<Value, TemplateError>,
) -> Result<Value, TemplateError> {
    match a {
        [x, y] => f(x, y),
        _ => Err(exec(format!("{name}: wrong number of args: want 2 got {}", a.len()))),
    }
}

fn three(
    name: &str,
    a: &[Value],
    f: impl Fn(&Value, &Value, &Value) -> Result<Value, TemplateError>,
) -> Result<Value, TemplateError> {
    match a {
        [x, y, z] => f(x, y, z),
        _ => Err(exec(format!("{name}: wrong number of args: want 3 got {}", a.len()))),
    }
}

/// A string Go printed for a `time.Time`, read back. Go prints a year past 9999 with
/// more digits (and one before 0 with a sign), which `2006` does not read: the year is
/// taken apart and put back.
fn as_time(v: &Value) -> Option<Time> {
    let Value::String(x) = v else { return None };
    if x.len() > 96 {
        return None;
    }
    let sign = usize::from(x.starts_with('-'));
    let digits = x[sign..].bytes().take_while(u8::is_ascii_digit).count();
    if digits < 4 {
        return None;
    }
    let year: i64 = x[..sign + digits].parse().ok()?;
    let rest = &x[sign + digits..];
    // A zone known only by its offset prints the offset twice.
    let t = parse("-01-02 15:04:05.999999999 -0700 MST", rest)
        .or_else(|_| parse("-01-02 15:04:05.999999999 -0700 -0700", rest))
        .ok()?;
    // Parsed in year 0 (a leap year); move the wall date to `year`.
    let wall_days = t.unix.saturating_add(i64::from(t.offset)).div_euclid(86_400);
    let (_, m, d) = civil_from_days(wall_days);
    if d > days_in(m, year) {
        return None;
    }
    let unix = t.unix.checked_add(days_from_civil(year, m, d).checked_sub(wall_days)?.checked_mul(86_400)?)?;
    Some(Time { unix, ..t })
}

/// A `time.Time` argument, as Go's template engine demands one.
fn time_arg(func: &str, v: &Value) -> Result<Time, TemplateError> {
    as_time(v).ok_or_else(|| exec(format!("{func}: wrong type for value; expected time.Time; got {}", v.type_name())))
}

/// Sprig's `dateInZone`: a time, or Unix seconds, or else the current time.
fn date_in_zone(func: &str, layout: &Value, t: &Value, zone: &str) -> Result<Value, TemplateError> {
    let layout = text(layout);
    if layout.len() as u128 * 12 > MAX_WEIGHT as u128 {
        return Err(exec(TOO_LONG));
    }
    let t = match t {
        Value::Int(n) => Time::utc(*n, 0),
        other => as_time(other).unwrap_or_else(Time::now),
    };
    let shown = match zone {
        "" | "UTC" | "Local" => Time::utc(t.unix, t.nanos),
        name => match zoneinfo::load(Path::new(ZONEINFO_DIR), name) {
            Ok(z) => {
                let (offset, zone) = z.lookup(t.unix);
                Time { offset, zone, ..t }
            }
            // Sprig's fallback when Go cannot load the zone.
            Err(LoadError::Unknown) => Time::utc(t.unix, t.nanos),
            Err(LoadError::NoDatabase) => {
                return Err(exec(format!("{func}: time zone {name:?}: no time zone database at {ZONEINFO_DIR}")));
            }
        },
    };
    Ok(Value::from(format(&layout, &shown).as_str()))
}

/// Sprig's `dateModify`: a duration added; a bad duration leaves the time as it is,
/// `mustDateModify` refuses it.
fn date_modify(func: &str, d: &Value, t: &Value, must: bool) -> Result<Value, TemplateError> {
    let t = time_arg(func, t)?;
    match parse_duration(&text(d)) {
        Ok(d) => Ok(t.add(d).value()),
        Err(e) if must => Err(exec(e)),
        Err(_) => Ok(t.value()),
    }
}

fn since(t: &Time) -> i64 {
    (Time::now().unix_nanos() - t.unix_nanos()).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Go's `Duration.Round(time.Second)`: halves away from zero.
fn round_to_second(d: i64) -> i64 {
    let r = d % NS;
    let (d, r) = (i128::from(d - r), i128::from(r));
    let rounded = if r.abs() * 2 >= i128::from(NS) { d + r.signum() * i128::from(NS) } else { d };
    rounded.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Sprig's `durationRound`: the largest whole unit (30-day months, 365-day years);
/// a number is nanoseconds, a string a Go duration, a time the time since it.
fn duration_round(v: &Value) -> String {
    let d = match v {
        Value::Int(n) => *n,
        Value::String(x) => match as_time(v) {
            Some(t) => since(&t),
            None => parse_duration(x).unwrap_or(0),
        },
        _ => 0,
    };
    let u = d.unsigned_abs();
    const H: u64 = 3_600_000_000_000;
    let units = [
        (H * 24 * 365, "y"),
        (H * 24 * 30, "mo"),
        (H * 24, "d"),
        (H, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
    ];
    units.iter().find(|(n, _)| u > *n).map_or_else(|| "0s".to_owned(), |(n, unit)| format!("{}{unit}", u / n))
}

/// Go's `time.Duration.String()` (`1h2m3.5s`, `0s`) of a duration of at least a second
/// or none: `ago` and `duration` have whole seconds.
fn duration_string(d: i64) -> String {
    let u = d.unsigned_abs();
    let sign = if d < 0 { "-" } else { "" };
    if u == 0 {
        return "0s".to_owned();
    }
    let frac = |v: u64| {
        let f = format!("{:09}", v % NS as u64);
        let f = f.trim_end_matches('0');
        if f.is_empty() { (v / NS as u64).to_string() } else { format!("{}.{f}", v / NS as u64) }
    };
    let secs = frac(u % (60 * NS as u64));
    let (m, h) = (u / (60 * NS as u64) % 60, u / (3600 * NS as u64));
    match (h, m) {
        (0, 0) => format!("{sign}{secs}s"),
        (0, m) => format!("{sign}{m}m{secs}s"),
        (h, m) => format!("{sign}{h}h{m}m{secs}s"),
    }
}

/// Go's `time.ParseDuration`: `[-+]` then numbers with units (`ns`, `us`, `µs`, `ms`, `s`,
/// `m`, `h`), e.g. `-1.5h`, `1h15m`; `0` alone needs none.
fn parse_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(orig));
    let mut s = orig;
    let neg = s.starts_with('-');
    if let Some(rest) = s.strip_prefix(['-', '+']) {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, rest) = s.split_at(int_len);
        let mut v: u64 = 0;
        for b in int_part.bytes() {
            v = v.checked_mul(10).and_then(|v| v.checked_add(u64::from(b - b'0'))).ok_or_else(invalid)?;
        }
        s = rest;
        let (mut f, mut scale, mut frac_len) = (0u64, 1f64, 0);
        if let Some(rest) = s.strip_prefix('.') {
            frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            for b in rest[..frac_len].bytes() {
                // Digits past u64's precision are dropped, as Go drops them.
                if let Some(next) = f.checked_mul(10).and_then(|f| f.checked_add(u64::from(b - b'0'))) {
                    f = next;
                    scale *= 10.0;
                }
            }
            s = &rest[frac_len..];
            if int_len == 0 && frac_len == 0 {
                return Err(invalid());
            }
        } else if int_len == 0 {
            return Err(invalid());
        }
        let unit_len = s.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(s.len());
        let (unit, rest) = s.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {}", go_quote(orig)));
        }
        let per: u64 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("time: unknown unit {} in duration {}", go_quote(unit), go_quote(orig))),
        };
        s = rest;
        let mut v = v.checked_mul(per).ok_or_else(invalid)?;
        if frac_len > 0 {
            v = v.checked_add((f as f64 * (per as f64 / scale)) as u64).ok_or_else(invalid)?;
        }
        total = total.checked_add(v).filter(|t| *t <= 1 << 63).ok_or_else(invalid)?;
    }
    if neg {
        return Ok((total as i64).wrapping_neg());
    }
    i64::try_from(total).map_err(|_| invalid())
}
