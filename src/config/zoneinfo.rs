//! IANA time zones for `dateInZone`, as Go's `time.LoadLocation` finds them: a TZif
//! file under the system's zoneinfo directory (`/usr/share/zoneinfo/Europe/Berlin`),
//! its transitions, and past the last one the POSIX rule in its footer
//! (`CET-1CEST,M3.5.0,M10.5.0/3`).
//!
//! A name is a path inside the directory only: like Go, a name containing `..` or
//! starting with `/` or `\` is never read. The file is read once per call, at most
//! [`MAX_TZIF`] bytes; [`parse`] is pure.

use std::io::Read as _;
use std::path::Path;

use super::gotime::{days_from_civil, days_in, is_leap};

/// Where the zones are (Go's first system location).
pub(super) const ZONEINFO_DIR: &str = "/usr/share/zoneinfo";

/// The largest TZif file read; real ones are a few KiB.
const MAX_TZIF: u64 = 256 << 10;

/// A zone: its transitions, the local time types they switch to, and the rule after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Zone {
    /// (Unix time, index into `types`), ascending.
    transitions: Vec<(i64, usize)>,
    /// (seconds east of UTC, is DST, abbreviation).
    types: Vec<(i32, bool, String)>,
    /// The footer's POSIX TZ string, for times after the last transition.
    rule: Option<String>,
}

/// Why a zone could not be had.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum LoadError {
    /// Go refuses the name, or there is no such zone: Sprig then uses UTC.
    Unknown,
    /// The zoneinfo directory itself is missing: the name might be a real zone.
    NoDatabase,
}

/// Go's `LoadLocation` for a name other than `UTC` and `Local`.
pub(super) fn load(dir: &Path, name: &str) -> Result<Zone, LoadError> {
    if name.contains("..") || name.starts_with(['/', '\\']) || name.contains('\0') {
        return Err(LoadError::Unknown);
    }
    if !dir.is_dir() {
        return Err(LoadError::NoDatabase);
    }
    let mut data = Vec::new();
    std::fs::File::open(dir.join(name))
        .and_then(|f| f.take(MAX_TZIF).read_to_end(&mut data))
        .map_err(|_| LoadError::Unknown)?;
    parse(&data).ok_or(LoadError::Unknown)
}

/// A TZif file (RFC 8536, versions 1 to 4); `None` if it is not one.
pub(super) fn parse(data: &[u8]) -> Option<Zone> {
    let header = |d: &[u8]| -> Option<[usize; 6]> {
        if d.get(..4)? != b"TZif" || d.len() < 44 {
            return None;
        }
        let n = |i: usize| u32::from_be_bytes(d[20 + 4 * i..24 + 4 * i].try_into().expect("4 bytes")) as usize;
        Some([n(0), n(1), n(2), n(3), n(4), n(5)])
    };
    let block_len = |h: [usize; 6], t: usize| {
        let [isut, isstd, leap, time, typ, chars] = h;
        time * t + time + typ * 6 + chars + leap * (t + 4) + isstd + isut
    };
    let h1 = header(data)?;
    let (mut d, mut h, mut t) = (&data[44..], h1, 4);
    if data[4] >= b'2' {
        d = d.get(block_len(h1, 4)..)?;
        h = header(d)?;
        d = &d[44..];
        t = 8;
    }
    let [_, _, _, time, typ, chars] = h;
    if typ == 0 || d.len() < block_len(h, t) {
        return None;
    }
    let times = &d[..time * t];
    let idx = &d[time * t..time * t + time];
    let types_raw = &d[time * (t + 1)..time * (t + 1) + typ * 6];
    let abbrevs = &d[time * (t + 1) + typ * 6..][..chars];
    let mut transitions = (0..time)
        .map(|i| {
            let at = if t == 8 {
                i64::from_be_bytes(times[8 * i..8 * i + 8].try_into().expect("8 bytes"))
            } else {
                i64::from(i32::from_be_bytes(times[4 * i..4 * i + 4].try_into().expect("4 bytes")))
            };
            (at, usize::from(idx[i]))
        })
        .collect::<Vec<_>>();
    if transitions.iter().any(|(_, i)| *i >= typ) {
        return None;
    }
    // Go's fake transition covering all time, so a zone without any still has its rule.
    if transitions.is_empty() {
        transitions.push((i64::MIN, 0));
    }
    let types = types_raw
        .chunks(6)
        .map(|c| {
            let offset = i32::from_be_bytes(c[..4].try_into().expect("4 bytes"));
            let start = usize::from(c[5]).min(abbrevs.len());
            let end = abbrevs[start..].iter().position(|b| *b == 0).map_or(abbrevs.len(), |e| start + e);
            (offset, c[4] != 0, String::from_utf8_lossy(&abbrevs[start..end]).into_owned())
        })
        .collect();
    let rule = if t == 8 {
        let footer = &d[block_len(h, t)..];
        footer
            .strip_prefix(b"\n")
            .and_then(|f| f.iter().position(|b| *b == b'\n').map(|e| &f[..e]))
            .filter(|f| !f.is_empty())
            .map(|f| String::from_utf8_lossy(f).into_owned())
    } else {
        None
    };
    Some(Zone { transitions, types, rule })
}

impl Zone {
    /// The offset east of UTC and the abbreviation in effect at `unix`.
    pub(super) fn lookup(&self, unix: i64) -> (i32, String) {
        let ty = |i: usize| (self.types[i].0, self.types[i].2.clone());
        match self.transitions.partition_point(|(at, _)| *at <= unix) {
            // Before the first transition: the first standard-time type (Go's rule).
            0 => ty(self.types.iter().position(|t| !t.1).unwrap_or(0)),
            n if n == self.transitions.len() => {
                self.rule.as_deref().and_then(|r| posix_rule(r, unix)).unwrap_or_else(|| ty(self.transitions[n - 1].1))
            }
            n => ty(self.transitions[n - 1].1),
        }
    }
}

/// A POSIX TZ string (`CET-1CEST,M3.5.0,M10.5.0/3`, `<-03>3`) at `unix`, as Go's
/// `tzset` reads it; `None` if it does not parse.
fn posix_rule(s: &str, unix: i64) -> Option<(i32, String)> {
    let (std_name, s) = name(s)?;
    let (std_off, s) = offset(s)?;
    let std = (-std_off, std_name.to_owned());
    if s.is_empty() || s.starts_with(',') {
        return Some(std);
    }
    let (dst_name, s) = name(s)?;
    let (dst_off, s) = if s.is_empty() || s.starts_with(',') {
        (std.0 + 3600, s)
    } else {
        let (o, s) = offset(s)?;
        (-o, s)
    };
    let s = if s.is_empty() { ",M3.2.0,M11.1.0" } else { s };
    let (start, s) = rule(s.strip_prefix(',')?)?;
    let (end, s) = rule(s.strip_prefix(',')?)?;
    if !s.is_empty() {
        return None;
    }
    let days = unix.div_euclid(86_400);
    let (year, _, _) = crate::engine::state::civil_from_days(days);
    let year_start = days_from_civil(year, 1, 1) * 86_400;
    let ysec = unix - year_start;
    let start_sec = rule_time(year, start, std.0);
    let end_sec = rule_time(year, end, dst_off);
    let dst = (dst_off, dst_name.to_owned());
    let (first, second, in_between) =
        if end_sec < start_sec { (end_sec, start_sec, std.clone()) } else { (start_sec, end_sec, dst.clone()) };
    let outside = if end_sec < start_sec { dst } else { std };
    Some(if ysec < first || ysec >= second { outside } else { in_between })
}

/// A zone name: `<…>` or at least three letters.
fn name(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('<') {
        let end = rest.find('>')?;
        return Some((&rest[..end], &rest[end + 1..]));
    }
    let n = s.bytes().take_while(u8::is_ascii_alphabetic).count();
    (n >= 3).then(|| s.split_at(n))
}

/// `[+-]hh[:mm[:ss]]` in seconds (west of UTC, as POSIX writes it).
fn offset(s: &str) -> Option<(i32, &str)> {
    let (sign, s) = match s.as_bytes().first()? {
        b'-' => (-1, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    let (secs, s) = clock(s)?;
    Some((sign * secs, s))
}

/// `hh[:mm[:ss]]` in seconds.
fn clock(s: &str) -> Option<(i32, &str)> {
    let mut total = 0;
    let mut rest = s;
    for (i, scale) in [3600, 60, 1].into_iter().enumerate() {
        if i > 0 {
            match rest.strip_prefix(':') {
                Some(r) => rest = r,
                None => break,
            }
        }
        let n = rest.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 3 {
            return None;
        }
        total += rest[..n].parse::<i32>().ok()? * scale;
        rest = &rest[n..];
    }
    Some((total, rest))
}

/// When a rule switches: `Jn`, `n` or `Mm.w.d`, then `/time` (02:00 by default).
#[derive(Debug, Clone, Copy)]
enum When {
    Julian(i64),
    DayOfYear(i64),
    MonthWeekDay(i64, i64, i64),
}

fn rule(s: &str) -> Option<((When, i32), &str)> {
    let (when, s) = if let Some(r) = s.strip_prefix('J') {
        let (d, r) = num(r)?;
        ((1..=365).contains(&d).then_some(When::Julian(d))?, r)
    } else if let Some(r) = s.strip_prefix('M') {
        let (m, r) = num(r)?;
        let (w, r) = num(r.strip_prefix('.')?)?;
        let (d, r) = num(r.strip_prefix('.')?)?;
        if !(1..=12).contains(&m) || !(1..=5).contains(&w) || !(0..=6).contains(&d) {
            return None;
        }
        (When::MonthWeekDay(m, w, d), r)
    } else {
        let (d, r) = num(s)?;
        ((0..=365).contains(&d).then_some(When::DayOfYear(d))?, r)
    };
    match s.strip_prefix('/') {
        Some(r) => {
            let (t, r) = offset(r)?;
            Some(((when, t), r))
        }
        None => Some(((when, 7200), s)),
    }
}

/// A leading decimal number and the rest.
fn num(s: &str) -> Option<(i64, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    Some((s.get(..n).filter(|d| !d.is_empty())?.parse::<i64>().ok()?, &s[n..]))
}

/// Seconds from the start of `year` (UTC) to a rule's switch, `off` being the offset
/// in effect before it.
fn rule_time(year: i64, (when, time): (When, i32), off: i32) -> i64 {
    let day = match when {
        When::Julian(d) => d - 1 + i64::from(is_leap(year) && d >= 60),
        When::DayOfYear(d) => d,
        When::MonthWeekDay(m, w, d) => {
            let first = days_from_civil(year, m, 1);
            let dow = (first + 4).rem_euclid(7);
            let mut day = (d - dow).rem_euclid(7);
            for _ in 1..w {
                if day + 7 >= days_in(m, year) {
                    break;
                }
                day += 7;
            }
            first - days_from_civil(year, 1, 1) + day
        }
    };
    day * 86_400 + i64::from(time) - i64::from(off)
}
