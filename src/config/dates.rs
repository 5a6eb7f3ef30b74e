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
//! host's zone (werf in CI usually runs in UTC). Other IANA names are refused with an
//! error naming the function and the zone, rather than rendered in a wrong zone.

use gotmpl::{TemplateError, Value};

use super::funcs::{MAX_WEIGHT, TOO_LONG, exec, go_quote, text};
use crate::engine::state::civil_from_days;

/// A Go `time.Time`: an instant and the zone it is shown in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Time {
    unix: i64,
    nanos: u32,
    /// Seconds east of UTC.
    offset: i32,
    /// The zone's abbreviation; empty for a zone known only by its offset.
    zone: String,
}

/// Go's layout for `time.Time.String()`.
const STRING_LAYOUT: &str = "2006-01-02 15:04:05.999999999 -0700 MST";
const NS: i64 = 1_000_000_000;

impl Time {
    fn utc(unix: i64, nanos: u32) -> Time {
        Time { unix, nanos, offset: 0, zone: "UTC".to_owned() }
    }

    fn now() -> Time {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Time::utc(d.as_secs() as i64, d.subsec_nanos())
    }

    /// Nanoseconds since the epoch (Go's `Sub` saturates; so does this).
    fn unix_nanos(&self) -> i128 {
        i128::from(self.unix) * i128::from(NS) + i128::from(self.nanos)
    }

    fn add(&self, d: i64) -> Time {
        let n = self.unix_nanos() + i128::from(d);
        let unix = n.div_euclid(i128::from(NS)) as i64;
        Time { unix, nanos: n.rem_euclid(i128::from(NS)) as u32, ..self.clone() }
    }

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

/// A string Go printed for a `time.Time`, read back.
fn as_time(v: &Value) -> Option<Time> {
    let Value::String(x) = v else { return None };
    if x.len() > 96 {
        return None;
    }
    // A zone known only by its offset prints the offset twice.
    parse(STRING_LAYOUT, x).or_else(|_| parse("2006-01-02 15:04:05.999999999 -0700 -0700", x)).ok()
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
    match zone {
        "" | "UTC" | "Local" => Ok(Value::from(format(&layout, &Time::utc(t.unix, t.nanos)).as_str())),
        _ => Err(exec(format!("{func}: time zone {zone:?} is not available: slipway knows UTC and Local (UTC)"))),
    }
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

/// A piece of a Go layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    Pm,
    PmLower,
    Tz,
    /// `-0700` and friends: (`Z` allowed for UTC, colons, seconds, short).
    NumTz {
        iso: bool,
        colon: bool,
        seconds: bool,
        short: bool,
    },
    /// `.000` (fixed) or `.999` (trimmed), with its digit count and separator.
    Frac {
        nines: bool,
        digits: usize,
    },
}

/// Go's `nextStdChunk`: (literal prefix, the element and its text, the rest).
fn next_std(layout: &str) -> (&str, Option<(Std, &str)>, &str) {
    let b = layout.as_bytes();
    let at = |i: usize, s: &str| layout.get(i..).is_some_and(|r| r.starts_with(s));
    for i in 0..b.len() {
        let found: Option<(Std, usize)> = match b[i] {
            b'J' if at(i, "January") => Some((Std::LongMonth, 7)),
            b'J' if at(i, "Jan") => Some((Std::Month, 3)),
            b'M' if at(i, "Monday") => Some((Std::LongWeekDay, 6)),
            b'M' if at(i, "Mon") => Some((Std::WeekDay, 3)),
            b'M' if at(i, "MST") => Some((Std::Tz, 3)),
            b'0' if at(i, "002") => Some((Std::ZeroYearDay, 3)),
            b'0' => match b.get(i + 1) {
                Some(b'1') => Some((Std::ZeroMonth, 2)),
                Some(b'2') => Some((Std::ZeroDay, 2)),
                Some(b'3') => Some((Std::ZeroHour12, 2)),
                Some(b'4') => Some((Std::ZeroMinute, 2)),
                Some(b'5') => Some((Std::ZeroSecond, 2)),
                Some(b'6') => Some((Std::Year, 2)),
                _ => None,
            },
            b'1' if at(i, "15") => Some((Std::Hour, 2)),
            b'1' => Some((Std::NumMonth, 1)),
            b'2' if at(i, "2006") => Some((Std::LongYear, 4)),
            b'2' => Some((Std::Day, 1)),
            // `_2006` is a literal `_` and a year.
            b'_' if at(i, "_2006") => {
                return (&layout[..i + 1], Some((Std::LongYear, &layout[i + 1..i + 5])), &layout[i + 5..]);
            }
            b'_' if at(i, "__2") => Some((Std::UnderYearDay, 3)),
            b'_' if at(i, "_2") => Some((Std::UnderDay, 2)),
            b'3' => Some((Std::Hour12, 1)),
            b'4' => Some((Std::Minute, 1)),
            b'5' => Some((Std::Second, 1)),
            b'P' if at(i, "PM") => Some((Std::Pm, 2)),
            b'p' if at(i, "pm") => Some((Std::PmLower, 2)),
            b'-' | b'Z' => {
                let iso = b[i] == b'Z';
                let tz = |colon, seconds, short| Std::NumTz { iso, colon, seconds, short };
                let p = if iso { "Z" } else { "-" };
                [
                    ("070000", tz(false, true, false)),
                    ("07:00:00", tz(true, true, false)),
                    ("0700", tz(false, false, false)),
                    ("07:00", tz(true, false, false)),
                    ("07", tz(false, false, true)),
                ]
                .into_iter()
                .find(|(s, _)| at(i, &format!("{p}{s}")))
                .map(|(s, std)| (std, s.len() + 1))
            }
            b'.' | b',' if matches!(b.get(i + 1), Some(b'0' | b'9')) => {
                let ch = b[i + 1];
                let j = i + 1 + b[i + 1..].iter().take_while(|c| **c == ch).count();
                if b.get(j).is_some_and(u8::is_ascii_digit) {
                    None
                } else {
                    Some((Std::Frac { nines: ch == b'9', digits: j - i - 1 }, j - i))
                }
            }
            _ => None,
        };
        if let Some((std, len)) = found {
            return (&layout[..i], Some((std, &layout[i..i + len])), &layout[i + len..]);
        }
    }
    (layout, None, "")
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/// Days since 1970-01-01 of a civil date (the inverse of `civil_from_days`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in(m: i64, y: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Go's `appendInt`: a `-` for negatives, then at least `width` digits.
fn push_int(out: &mut String, x: i64, width: usize) {
    if x < 0 {
        out.push('-');
    }
    out.push_str(&format!("{:0width$}", x.unsigned_abs()));
}

/// Go's `time.Time.Format`.
fn format(layout: &str, t: &Time) -> String {
    let local = t.unix + i64::from(t.offset);
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, min, sec) = (secs / 3600, secs / 60 % 60, secs % 60);
    let yday = days - days_from_civil(year, 1, 1) + 1;
    let weekday = (days + 4).rem_euclid(7) as usize;
    let mut out = String::new();
    let mut rest = layout;
    loop {
        let (prefix, std, suffix) = next_std(rest);
        out.push_str(prefix);
        let Some((std, _)) = std else { break };
        rest = suffix;
        match std {
            Std::Year => push_int(&mut out, year % 100, 2),
            Std::LongYear => push_int(&mut out, year, 4),
            Std::Month => out.push_str(&MONTHS[month as usize - 1][..3]),
            Std::LongMonth => out.push_str(MONTHS[month as usize - 1]),
            Std::NumMonth => push_int(&mut out, month, 0),
            Std::ZeroMonth => push_int(&mut out, month, 2),
            Std::WeekDay => out.push_str(&DAYS[weekday][..3]),
            Std::LongWeekDay => out.push_str(DAYS[weekday]),
            Std::Day => push_int(&mut out, day, 0),
            Std::UnderDay => {
                if day < 10 {
                    out.push(' ');
                }
                push_int(&mut out, day, 0);
            }
            Std::ZeroDay => push_int(&mut out, day, 2),
            Std::UnderYearDay => out.push_str(&format!("{yday:>3}")),
            Std::ZeroYearDay => push_int(&mut out, yday, 3),
            Std::Hour => push_int(&mut out, hour, 2),
            Std::Hour12 | Std::ZeroHour12 => {
                let h = if hour % 12 == 0 { 12 } else { hour % 12 };
                push_int(&mut out, h, if std == Std::Hour12 { 0 } else { 2 });
            }
            Std::Minute => push_int(&mut out, min, 0),
            Std::ZeroMinute => push_int(&mut out, min, 2),
            Std::Second => push_int(&mut out, sec, 0),
            Std::ZeroSecond => push_int(&mut out, sec, 2),
            Std::Pm => out.push_str(if hour >= 12 { "PM" } else { "AM" }),
            Std::PmLower => out.push_str(if hour >= 12 { "pm" } else { "am" }),
            Std::NumTz { iso, colon, seconds, short } => {
                if iso && t.offset == 0 {
                    out.push('Z');
                    continue;
                }
                let abs = t.offset.unsigned_abs();
                out.push(if t.offset < 0 { '-' } else { '+' });
                out.push_str(&format!("{:02}", abs / 3600));
                if colon {
                    out.push(':');
                }
                if !short {
                    out.push_str(&format!("{:02}", abs / 60 % 60));
                }
                if seconds {
                    if colon {
                        out.push(':');
                    }
                    out.push_str(&format!("{:02}", abs % 60));
                }
            }
            Std::Tz if !t.zone.is_empty() => out.push_str(&t.zone),
            Std::Tz => {
                let abs = t.offset.unsigned_abs() / 60;
                out.push_str(&format!("{}{:02}{:02}", if t.offset < 0 { '-' } else { '+' }, abs / 60, abs % 60));
            }
            Std::Frac { nines, digits } => {
                let sep = &layout[layout.len() - rest.len() - digits - 1..][..1];
                let f = format!("{:09}", t.nanos);
                let f = &f[..digits.min(9)];
                let f = if nines { f.trim_end_matches('0') } else { f };
                if !f.is_empty() {
                    out.push_str(sep);
                    out.push_str(f);
                }
            }
        }
    }
    out
}

/// Go's `time.Parse` in Local (UTC here), with Go's error texts.
fn parse(layout: &str, value: &str) -> Result<Time, String> {
    let bad = |elem_v: &str, elem_l: &str| {
        format!(
            "parsing time {} as {}: cannot parse {} as {}",
            go_quote(value),
            go_quote(layout),
            go_quote(elem_v),
            go_quote(elem_l)
        )
    };
    let range = |what: &str| format!("parsing time {}: {what} out of range", go_quote(value));
    let (mut year, mut month, mut day, mut yday) = (0i64, -1i64, -1i64, -1i64);
    let (mut hour, mut min, mut sec, mut nanos) = (0i64, 0i64, 0i64, 0u32);
    let (mut pm, mut am) = (false, false);
    let (mut utc, mut zone_offset, mut zone_name): (bool, Option<i32>, &str) = (false, None, "");
    let mut rest = layout;
    let mut v = value;
    loop {
        let (prefix, std, suffix) = next_std(rest);
        v = skip(v, prefix).map_err(|at| bad(at, prefix))?;
        let Some((std, std_text)) = std else {
            if !v.is_empty() {
                return Err(format!("parsing time {}: extra text: {}", go_quote(value), go_quote(v)));
            }
            break;
        };
        rest = suffix;
        let hold = v;
        let fail = || bad(hold, std_text);
        match std {
            Std::Year => {
                let p = v.get(..2).ok_or_else(fail)?;
                year = p.parse::<i64>().map_err(|_| fail())?;
                year += if year >= 69 { 1900 } else { 2000 };
                v = &v[2..];
            }
            Std::LongYear => {
                let p = v.get(..4).filter(|p| p.bytes().all(|c| c.is_ascii_digit())).ok_or_else(fail)?;
                year = p.parse().map_err(|_| fail())?;
                v = &v[4..];
            }
            Std::Month | Std::LongMonth => {
                let names = MONTHS.map(|m| if std == Std::Month { &m[..3] } else { m });
                let (i, n) = lookup(&names, v).ok_or_else(fail)?;
                month = i as i64 + 1;
                v = &v[n..];
            }
            Std::NumMonth | Std::ZeroMonth => {
                (month, v) = getnum(v, std == Std::ZeroMonth, 2).ok_or_else(fail)?;
                if !(1..=12).contains(&month) {
                    return Err(range("month"));
                }
            }
            Std::WeekDay | Std::LongWeekDay => {
                let names = DAYS.map(|d| if std == Std::WeekDay { &d[..3] } else { d });
                let (_, n) = lookup(&names, v).ok_or_else(fail)?;
                v = &v[n..];
            }
            Std::Day | Std::UnderDay | Std::ZeroDay => {
                if std == Std::UnderDay {
                    v = v.strip_prefix(' ').unwrap_or(v);
                }
                (day, v) = getnum(v, std == Std::ZeroDay, 2).ok_or_else(fail)?;
            }
            Std::UnderYearDay | Std::ZeroYearDay => {
                for _ in 0..2 {
                    if std == Std::UnderYearDay {
                        v = v.strip_prefix(' ').unwrap_or(v);
                    }
                }
                (yday, v) = getnum(v, std == Std::ZeroYearDay, 3).ok_or_else(fail)?;
            }
            Std::Hour => {
                (hour, v) = getnum(v, false, 2).ok_or_else(fail)?;
                if hour >= 24 {
                    return Err(range("hour"));
                }
            }
            Std::Hour12 | Std::ZeroHour12 => {
                (hour, v) = getnum(v, std == Std::ZeroHour12, 2).ok_or_else(fail)?;
                if hour > 12 {
                    return Err(range("hour"));
                }
            }
            Std::Minute | Std::ZeroMinute => {
                (min, v) = getnum(v, std == Std::ZeroMinute, 2).ok_or_else(fail)?;
                if min >= 60 {
                    return Err(range("minute"));
                }
            }
            Std::Second | Std::ZeroSecond => {
                (sec, v) = getnum(v, std == Std::ZeroSecond, 2).ok_or_else(fail)?;
                if sec >= 60 {
                    return Err(range("second"));
                }
                // A fraction the layout does not spell out is read here.
                let b = v.as_bytes();
                let next_is_frac = matches!(next_std(rest).1, Some((Std::Frac { .. }, _)));
                if b.len() >= 2 && matches!(b[0], b'.' | b',') && b[1].is_ascii_digit() && !next_is_frac {
                    let n = 1 + b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                    nanos = nanoseconds(&v[..n]);
                    v = &v[n..];
                }
            }
            Std::Pm | Std::PmLower => {
                let p = v.get(..2).ok_or_else(fail)?;
                let (pm_text, am_text) = if std == Std::Pm { ("PM", "AM") } else { ("pm", "am") };
                match p {
                    _ if p == pm_text => pm = true,
                    _ if p == am_text => am = true,
                    _ => return Err(fail()),
                }
                v = &v[2..];
            }
            Std::NumTz { iso, colon, seconds, short } => {
                if iso && v.starts_with('Z') {
                    v = &v[1..];
                    utc = true;
                    continue;
                }
                // Only ASCII can match, and slicing it cannot split a character.
                let a = &v[..v.bytes().take_while(u8::is_ascii).count()];
                let b = a.as_bytes();
                let (hh, mm, ss, n) = match (colon, seconds, short) {
                    (true, false, _) if b.len() >= 6 && b[3] == b':' => (&a[1..3], &a[4..6], "00", 6),
                    (_, _, true) if b.len() >= 3 => (&a[1..3], "00", "00", 3),
                    (true, true, _) if b.len() >= 9 && b[3] == b':' && b[6] == b':' => {
                        (&a[1..3], &a[4..6], &a[7..9], 9)
                    }
                    (false, true, _) if b.len() >= 7 => (&a[1..3], &a[3..5], &a[5..7], 7),
                    (false, false, false) if b.len() >= 5 => (&a[1..3], &a[3..5], "00", 5),
                    _ => return Err(fail()),
                };
                let num = |x: &str| getnum(x, true, 2).map(|(n, _)| n as i32).ok_or_else(fail);
                let (h, m, s) = (num(hh)?, num(mm)?, num(ss)?);
                if h > 24 || m > 60 || s > 60 {
                    return Err(range("time zone offset"));
                }
                let offset = (h * 60 + m) * 60 + s;
                zone_offset = Some(match b[0] {
                    b'+' => offset,
                    b'-' => -offset,
                    _ => return Err(fail()),
                });
                v = &v[n..];
            }
            Std::Tz => {
                if let Some(r) = v.strip_prefix("UTC") {
                    v = r;
                    utc = true;
                    continue;
                }
                let n = zone_len(v).ok_or_else(fail)?;
                (zone_name, v) = v.split_at(n);
            }
            Std::Frac { nines: false, digits } => {
                let n = digits + 1;
                let b = v.as_bytes();
                if b.len() < n || !matches!(b[0], b'.' | b',') || !b[1..n].iter().all(u8::is_ascii_digit) {
                    return Err(fail());
                }
                nanos = nanoseconds(&v[..n]);
                v = &v[n..];
            }
            Std::Frac { nines: true, .. } => {
                let b = v.as_bytes();
                if b.len() >= 2 && matches!(b[0], b'.' | b',') && b[1].is_ascii_digit() {
                    let n = 1 + b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                    nanos = nanoseconds(&v[..n]);
                    v = &v[n..];
                }
            }
        }
    }
    if pm && hour < 12 {
        hour += 12;
    } else if am && hour == 12 {
        hour = 0;
    }
    if yday >= 0 {
        let len = if is_leap(year) { 366 } else { 365 };
        if !(1..=len).contains(&yday) {
            return Err(range("day-of-year"));
        }
        let (_, m, d) = civil_from_days(days_from_civil(year, 1, 1) + yday - 1);
        if month >= 0 && month != m {
            return Err(format!("parsing time {}: day-of-year does not match month", go_quote(value)));
        }
        if day >= 0 && day != d {
            return Err(format!("parsing time {}: day-of-year does not match day", go_quote(value)));
        }
        (month, day) = (m, d);
    } else {
        month = if month < 0 { 1 } else { month };
        day = if day < 0 { 1 } else { day };
    }
    if day < 1 || day > days_in(month, year) {
        return Err(range("day"));
    }
    let wall = days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec;
    if utc {
        return Ok(Time::utc(wall, nanos));
    }
    if let Some(offset) = zone_offset {
        let unix = wall - i64::from(offset);
        if offset == 0 && (zone_name.is_empty() || zone_name == "UTC") {
            return Ok(Time::utc(unix, nanos));
        }
        return Ok(Time { unix, nanos, offset, zone: zone_name.to_owned() });
    }
    if !zone_name.is_empty() {
        // A zone Local does not know keeps the wall clock at an unknown offset (Go's
        // fake zone), except `GMT+n`.
        let offset = zone_name.get(3..).and_then(|n| n.parse::<i32>().ok()).map_or(0, |h| h * 3600);
        return Ok(Time { unix: wall, nanos, offset, zone: zone_name.to_owned() });
    }
    Ok(Time::utc(wall, nanos))
}

/// Go's `skip`: the layout's literal text, a space matching any run of spaces.
fn skip<'a>(mut v: &'a str, mut prefix: &str) -> Result<&'a str, &'a str> {
    while let Some(c) = prefix.chars().next() {
        if c == ' ' {
            if !v.is_empty() && !v.starts_with(' ') {
                return Err(v);
            }
            prefix = prefix.trim_start_matches(' ');
            v = v.trim_start_matches(' ');
            continue;
        }
        match v.strip_prefix(c) {
            Some(r) => v = r,
            None => return Err(v),
        }
        prefix = &prefix[c.len_utf8()..];
    }
    Ok(v)
}

/// Go's `getnum`/`getnum3`: up to `max` digits, exactly `max` when `fixed`.
fn getnum(v: &str, fixed: bool, max: usize) -> Option<(i64, &str)> {
    let n = v.bytes().take(max).take_while(u8::is_ascii_digit).count();
    if n == 0 || (fixed && n < max) {
        return None;
    }
    Some((v[..n].parse().ok()?, &v[n..]))
}

/// A month or day name, ASCII case-insensitive: (index, length).
fn lookup(names: &[&str], v: &str) -> Option<(usize, usize)> {
    names
        .iter()
        .enumerate()
        .find_map(|(i, n)| v.get(..n.len()).filter(|p| p.eq_ignore_ascii_case(n)).map(|_| (i, n.len())))
}

/// `.123` → nanoseconds (digits past nine dropped).
fn nanoseconds(frac: &str) -> u32 {
    let digits = &frac[1..frac.len().min(10)];
    format!("{digits:0<9}").parse().unwrap_or(0)
}

/// Go's `parseTimeZone`: the length of a zone abbreviation at the start of `v`.
fn zone_len(v: &str) -> Option<usize> {
    let b = v.as_bytes();
    if b.len() < 3 {
        return None;
    }
    if v.starts_with("ChST") || v.starts_with("MeST") {
        return Some(4);
    }
    if v.starts_with("GMT") {
        // `GMT` then an optional signed hour offset.
        let r = &b[3..];
        if matches!(r.first(), Some(b'+' | b'-')) {
            let n = r[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            let h: i64 = v[4..4 + n].parse().unwrap_or(99);
            if n > 0 && (-23..=23).contains(&h) {
                return Some(4 + n);
            }
        }
        return Some(3);
    }
    if matches!(b[0], b'+' | b'-') {
        let n = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        let h: i64 = v[1..1 + n].parse().unwrap_or(99);
        return (n > 0 && h <= 23).then_some(1 + n);
    }
    let upper = b.iter().take(6).take_while(|c| c.is_ascii_uppercase()).count();
    match upper {
        3 => Some(3),
        4 if b[3] == b'T' || v.starts_with("WITA") => Some(4),
        5 if b[4] == b'T' => Some(5),
        _ => None,
    }
}
