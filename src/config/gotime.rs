//! Go's `time.Time` as werf.yaml templates see it: `time.Time.Format` and
//! `time.Parse` over Go's reference-time layouts (`2006-01-02T15:04:05Z07:00`, `Jan`,
//! `Monday`, `_2`, `.000`, `MST`, …), with Go's error texts. Parsing is in Local, which
//! is UTC here (see `dates`).

use super::funcs::go_quote;
use crate::engine::state::civil_from_days;

/// A Go `time.Time`: an instant and the zone it is shown in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Time {
    pub(super) unix: i64,
    pub(super) nanos: u32,
    /// Seconds east of UTC.
    pub(super) offset: i32,
    /// The zone's abbreviation; empty for a zone known only by its offset.
    pub(super) zone: String,
}

/// Go's layout for `time.Time.String()`.
pub(super) const STRING_LAYOUT: &str = "2006-01-02 15:04:05.999999999 -0700 MST";
pub(super) const NS: i64 = 1_000_000_000;

impl Time {
    pub(super) fn utc(unix: i64, nanos: u32) -> Time {
        Time { unix, nanos, offset: 0, zone: "UTC".to_owned() }
    }

    pub(super) fn now() -> Time {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Time::utc(d.as_secs() as i64, d.subsec_nanos())
    }

    /// Nanoseconds since the epoch (Go's `Sub` saturates; so does this).
    pub(super) fn unix_nanos(&self) -> i128 {
        i128::from(self.unix) * i128::from(NS) + i128::from(self.nanos)
    }

    pub(super) fn add(&self, d: i64) -> Time {
        let n = self.unix_nanos() + i128::from(d);
        let unix = n.div_euclid(i128::from(NS)) as i64;
        Time { unix, nanos: n.rem_euclid(i128::from(NS)) as u32, ..self.clone() }
    }
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
pub(super) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(super) fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

pub(super) fn days_in(m: i64, y: i64) -> i64 {
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
pub(super) fn format(layout: &str, t: &Time) -> String {
    let local = t.unix.saturating_add(i64::from(t.offset));
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
pub(super) fn parse(layout: &str, value: &str) -> Result<Time, String> {
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
                // Go compares with `>`: offsets of 24 hours or 60 minutes are written.
                let over = [(h > 24, "hour"), (m > 60, "minute"), (s > 60, "second")];
                if let Some((_, what)) = over.iter().find(|(o, _)| *o) {
                    return Err(range(&format!("time zone offset {what}")));
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
