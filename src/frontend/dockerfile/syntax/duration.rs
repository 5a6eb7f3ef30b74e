//! Go's `time.ParseDuration`, which HEALTHCHECK's `--interval`, `--timeout`,
//! `--start-period` and `--start-interval` use: `1m30s`, `1.5h`, `300ms`.

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration \"{0}\"")]
    Invalid(String),
    #[error("missing unit in duration \"{0}\"")]
    MissingUnit(String),
    #[error("unknown unit \"{unit}\" in duration \"{input}\"")]
    UnknownUnit { unit: String, input: String },
    #[error("duration \"{0}\" is negative")]
    Negative(String),
    #[error("duration \"{0}\" is too large")]
    Overflow(String),
}

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Parses a Go duration. Negative values are refused: no HEALTHCHECK option
/// can be negative, and Docker rejects them too (as "less than 1ms").
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_owned());
    let (negative, mut s) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (int_part, rest) = s.split_at(int_len);
        let (frac_part, rest) = match rest.strip_prefix('.') {
            Some(r) => r.split_at(r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len())),
            None => ("", rest),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = rest.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(input.to_owned()));
        }
        let (unit, rest) = rest.split_at(unit_len);
        let nanos = unit_nanos(unit)
            .ok_or_else(|| DurationError::UnknownUnit { unit: unit.to_owned(), input: input.to_owned() })?;
        let overflow = || DurationError::Overflow(input.to_owned());
        let whole: u128 = if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| overflow())? };
        let mut value = whole.checked_mul(nanos).ok_or_else(overflow)?;
        // Fraction digits beyond nanosecond precision change nothing.
        let frac = &frac_part[..frac_part.len().min(18)];
        if !frac.is_empty() {
            let digits: u128 = frac.parse().map_err(|_| overflow())?;
            value += digits * nanos / 10u128.pow(frac.len() as u32);
        }
        total = total.checked_add(value).ok_or_else(overflow)?;
        if total > i64::MAX as u128 {
            return Err(overflow());
        }
        s = rest;
    }
    if negative && total > 0 {
        return Err(DurationError::Negative(input.to_owned()));
    }
    Ok(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("30s", 30_000_000_000),
            ("1m30s", 90_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("300ms", 300_000_000),
            (".5s", 500_000_000),
            ("2us", 2_000),
            ("+10ns", 10),
            ("-0s", 0),
        ];
        for (input, nanos) in cases {
            assert_eq!(parse_duration(input), Ok(Duration::from_nanos(*nanos)), "{input}");
        }
    }

    #[test]
    fn rejects_bad_durations() {
        let cases: &[(&str, &str)] = &[
            ("", "invalid duration \"\""),
            ("abc", "invalid duration \"abc\""),
            ("10", "missing unit in duration \"10\""),
            ("10x", "unknown unit \"x\" in duration \"10x\""),
            ("-5s", "duration \"-5s\" is negative"),
            ("99999999999h", "duration \"99999999999h\" is too large"),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input).unwrap_err().to_string(), *want, "{input}");
        }
    }
}
