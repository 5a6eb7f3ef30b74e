//! werf's host-cleanup thresholds (`pkg/host_cleaning/units`): a percentage of the volume
//! (a whole number 0–100, tried first) or an absolute size as go-humanize's `ParseBytes`
//! reads it (`10GB`, `500MiB`, `1.5 G`); and go-humanize's `Bytes`/`IBytes` for output.

/// A threshold: a percentage of the volume, or bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitValue {
    pub value: u64,
    pub absolute: bool,
    /// Written with SI units (`GB`, 1000-based) rather than binary ones (`GiB`).
    si: bool,
}

impl UnitValue {
    pub const fn percent(value: u64) -> UnitValue {
        UnitValue { value, absolute: false, si: false }
    }

    /// werf's `ParseUnitValue`, with its messages.
    pub fn parse(input: &str) -> Result<UnitValue, String> {
        let input = input.trim();
        if input.is_empty() {
            return Err("empty storage value".into());
        }
        let pct_err = match parse_uint(input) {
            Ok(v) if v > 100 => return Err(format!("percentage value {v} cannot exceed 100")),
            Ok(v) => return Ok(UnitValue::percent(v)),
            Err(e) => e,
        };
        match parse_bytes(input) {
            Ok(v) => Ok(UnitValue { value: v, absolute: true, si: !input.to_lowercase().contains('i') }),
            Err(bytes_err) => Err(format!(
                "invalid storage value {input:?}: specify percentage (0-100, error: {pct_err}) or absolute size (e.g. 10GB, 500MiB, error: {bytes_err})"
            )),
        }
    }

    /// The threshold in bytes on a volume of `total` bytes.
    pub fn to_bytes(self, total: u64) -> u64 {
        if self.absolute { self.value } else { ((total as u128 * self.value as u128) / 100) as u64 }
    }
}

impl std::fmt::Display for UnitValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.absolute, self.si) {
            (false, _) => write!(f, "{}", self.value),
            (true, true) => f.write_str(&bytes(self.value)),
            (true, false) => f.write_str(&ibytes(self.value)),
        }
    }
}

/// clap's value parser for a threshold flag.
pub fn parse_unit_value(s: &str) -> Result<UnitValue, String> {
    UnitValue::parse(s)
}

/// Go's `strconv.ParseUint(s, 10, 64)` error text.
fn parse_uint(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {s:?}: invalid syntax"));
    }
    s.parse().map_err(|_| format!("strconv.ParseUint: parsing {s:?}: value out of range"))
}

/// go-humanize's `ParseBytes`: digits, `.` and `,` (dropped), then a unit.
fn parse_bytes(s: &str) -> Result<u64, String> {
    let digits = s.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',').count();
    let num: String = s[..digits].chars().filter(|c| *c != ',').collect();
    let f: f64 = num.parse().map_err(|_| format!("strconv.ParseFloat: parsing {num:?}: invalid syntax"))?;
    let unit = s[digits..].trim().to_lowercase();
    let m: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mi" | "mib" => 1024f64.powi(2),
        "g" | "gb" => 1e9,
        "gi" | "gib" => 1024f64.powi(3),
        "t" | "tb" => 1e12,
        "ti" | "tib" => 1024f64.powi(4),
        "p" | "pb" => 1e15,
        "pi" | "pib" => 1024f64.powi(5),
        "e" | "eb" => 1e18,
        "ei" | "eib" => 1024f64.powi(6),
        _ => return Err(format!("unhandled size name: {unit}")),
    };
    let v = f * m;
    if v >= u64::MAX as f64 {
        return Err(format!("too large: {s}"));
    }
    Ok(v as u64)
}

fn humanate(n: u64, base: f64, sizes: &[&str]) -> String {
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / base.ln()).floor();
    let val = ((n as f64) / base.powf(e) * 10.0 + 0.5).floor() / 10.0;
    let unit = sizes[e as usize];
    if val < 10.0 { format!("{val:.1} {unit}") } else { format!("{val:.0} {unit}") }
}

/// go-humanize's `Bytes` (`82 MB`).
pub fn bytes(n: u64) -> String {
    humanate(n, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB", "EB"])
}

/// go-humanize's `IBytes` (`82 MiB`).
pub fn ibytes(n: u64) -> String {
    humanate(n, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_first_then_sizes_as_werf() {
        assert_eq!(UnitValue::parse("70").unwrap(), UnitValue::percent(70));
        assert_eq!(UnitValue::parse(" 0 ").unwrap().to_bytes(1000), 0);
        assert_eq!(UnitValue::parse("101").unwrap_err(), "percentage value 101 cannot exceed 100");
        let g = UnitValue::parse("10GB").unwrap();
        assert!(g.absolute);
        assert_eq!(g.to_bytes(1), 10_000_000_000);
        assert_eq!(g.to_string(), "10 GB");
        let mi = UnitValue::parse("500MiB").unwrap();
        assert_eq!(mi.value, 500 << 20);
        assert_eq!(mi.to_string(), "500 MiB");
        assert_eq!(UnitValue::parse("1.5 G").unwrap().value, 1_500_000_000);
        // A fraction is no percentage: go-humanize reads it as bytes.
        assert_eq!(UnitValue::parse("5.5").unwrap().value, 5);
        assert_eq!(
            UnitValue::parse("lots").unwrap_err(),
            "invalid storage value \"lots\": specify percentage (0-100, error: strconv.ParseUint: parsing \"lots\": invalid syntax) or absolute size (e.g. 10GB, 500MiB, error: strconv.ParseFloat: parsing \"\": invalid syntax)"
        );
        assert!(UnitValue::parse("10 parsecs").unwrap_err().contains("unhandled size name: parsecs"));
        assert_eq!(UnitValue::percent(50).to_bytes(1001), 500);
    }

    #[test]
    fn humanized_as_go_humanize() {
        assert_eq!(bytes(5), "5 B");
        assert_eq!(bytes(82_854_982), "83 MB");
        assert_eq!(bytes(1_500), "1.5 kB");
        assert_eq!(ibytes(82_854_982), "79 MiB");
    }
}
