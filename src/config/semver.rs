//! Sprig's `semverCompare CONSTRAINT VERSION` (Masterminds semver v3): `||` of
//! comma- or space-separated ANDs of `=`, `!=`, `>`, `<`, `>=`, `<=`, `~`, `~>`, `^`,
//! `A - B` ranges and `x`/`*` wildcards; a version may lack minor and patch and carry a
//! `v`. As in v3, a version with a prerelease only satisfies a constraint that names a
//! prerelease.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    nums: [u64; 3],
    pre: Vec<String>,
}

impl Version {
    fn cmp(&self, other: &Version) -> Ordering {
        self.nums.cmp(&other.nums).then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                for (a, b) in self.pre.iter().zip(&other.pre) {
                    let o = match (a.parse::<u64>(), b.parse::<u64>()) {
                        (Ok(x), Ok(y)) => x.cmp(&y),
                        (Ok(_), Err(_)) => Ordering::Less,
                        (Err(_), Ok(_)) => Ordering::Greater,
                        _ => a.cmp(b),
                    };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                self.pre.len().cmp(&other.pre.len())
            }
        })
    }
}

/// A version, and how many of major, minor, patch were given as numbers (a wildcard or
/// a missing part ends them).
fn parse(text: &str, wildcards: bool) -> Result<(Version, usize), String> {
    let bad = || format!("invalid semantic version {text:?}");
    let t = text.trim();
    let t = t.strip_prefix('v').unwrap_or(t);
    let t = t.split('+').next().unwrap_or(t);
    let (core, pre) = match t.split_once('-') {
        Some((c, p)) => (c, p.split('.').map(str::to_owned).collect()),
        None => (t, Vec::new()),
    };
    let mut nums = [0u64; 3];
    let mut given = 0;
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() > 3 || core.is_empty() {
        return Err(bad());
    }
    for (i, part) in parts.iter().enumerate() {
        if wildcards && matches!(*part, "x" | "X" | "*") {
            break;
        }
        if given < i {
            return Err(bad());
        }
        nums[i] = part.parse().map_err(|_| bad())?;
        given = i + 1;
    }
    Ok((Version { nums, pre }, given))
}

fn bump(v: &Version, at: usize) -> Version {
    let mut nums = v.nums;
    if at == 0 {
        nums = [nums[0] + 1, 0, 0];
    } else if at == 1 {
        nums = [nums[0], nums[1] + 1, 0];
    } else {
        nums[2] += 1;
    }
    Version { nums, pre: Vec::new() }
}

/// One comparison: `op` against a constraint version with `given` parts.
fn check(op: &str, c: &Version, given: usize, v: &Version) -> bool {
    let floor = Version { nums: c.nums, pre: c.pre.clone() };
    // The first version past the wildcard range of `c`.
    let next = |at: usize| bump(c, at);
    let ge = |x: &Version| v.cmp(x) != Ordering::Less;
    let lt = |x: &Version| v.cmp(x) == Ordering::Less;
    match op {
        "" | "=" if given == 3 => v.cmp(&floor) == Ordering::Equal,
        "" | "=" if given == 0 => true,
        "" | "=" => ge(&floor) && lt(&next(given - 1)),
        "!=" if given == 3 => v.cmp(&floor) != Ordering::Equal,
        "!=" if given == 0 => false,
        "!=" => !(ge(&floor) && lt(&next(given - 1))),
        ">" if given == 3 => v.cmp(&floor) == Ordering::Greater,
        ">" if given == 0 => false,
        ">" => ge(&next(given - 1)),
        ">=" | "=>" => ge(&floor),
        "<" => lt(&floor),
        "<=" | "=<" if given == 3 => v.cmp(&floor) != Ordering::Greater,
        "<=" | "=<" if given == 0 => true,
        "<=" | "=<" => lt(&next(given - 1)),
        "~" | "~>" => ge(&floor) && lt(&next(if given >= 2 { 1 } else { 0 })),
        "^" => {
            // The leftmost non-zero part given may not change.
            let at = match (c.nums, given) {
                ([0, 0, _], 3) => 2,
                ([0, _, _], g) if g >= 2 => 1,
                _ => 0,
            };
            ge(&floor) && lt(&next(at))
        }
        _ => false,
    }
}

/// Whether `version` satisfies `constraint`.
pub(super) fn compare(constraint: &str, version: &str) -> Result<bool, String> {
    let (v, _) = parse(version, false)?;
    let mut any = false;
    for group in constraint.split("||") {
        // `A - B` ranges first, then the comparisons.
        let group = group.trim();
        let terms: Vec<String> = match group.split_once(" - ") {
            Some((a, b)) => vec![format!(">={}", a.trim()), format!("<={}", b.trim())],
            None => {
                let mut terms = Vec::new();
                let mut pending = String::new();
                for word in group.split([',', ' ']).filter(|w| !w.is_empty()) {
                    if word.chars().all(|c| "=<>!~^".contains(c)) {
                        pending.push_str(word);
                    } else {
                        terms.push(std::mem::take(&mut pending) + word);
                    }
                }
                if !pending.is_empty() || terms.is_empty() {
                    return Err(format!("improper constraint: {constraint}"));
                }
                terms
            }
        };
        let mut all = true;
        let mut names_pre = false;
        for term in &terms {
            let split = term.find(|c: char| !"=<>!~^".contains(c)).unwrap_or(term.len());
            let (op, rest) = term.split_at(split);
            let (c, given) = parse(rest, true).map_err(|_| format!("improper constraint: {constraint}"))?;
            names_pre |= !c.pre.is_empty();
            all &= check(op, &c, given, &v);
        }
        if !v.pre.is_empty() && !names_pre {
            all = false;
        }
        any |= all;
    }
    Ok(any)
}

#[cfg(test)]
mod tests {
    #[test]
    fn constraints_as_masterminds_semver() {
        let cases = [
            (">= 1.2.3", "1.2.3", true),
            (">= 1.2.3", "1.2.2", false),
            (">=1.20.0-0", "v1.21.3", true),
            ("~1.2.3", "1.2.9", true),
            ("~1.2.3", "1.3.0", false),
            ("^1.2.3", "1.9.0", true),
            ("^1.2.3", "2.0.0", false),
            ("^0.2.3", "0.3.0", false),
            ("1.2.x", "1.2.7", true),
            ("1.2", "1.3.0", false),
            ("*", "3.0.0", true),
            ("> 1.2", "1.2.5", false),
            ("> 1.2", "1.3.0", true),
            ("<= 1.2", "1.2.9", true),
            (">= 1.0, < 2.0", "1.5.0", true),
            (">= 1.0 < 2.0", "2.0.0", false),
            ("< 1.0 || >= 3", "3.1.0", true),
            ("1.0 - 2.0", "2.0.0", true),
            ("!= 1.2.3", "1.2.3", false),
            (">= 1.0", "1.5.0-beta.1", false),
            (">= 1.5.0-alpha", "1.5.0-beta.1", true),
        ];
        for (c, v, want) in cases {
            assert_eq!(super::compare(c, v), Ok(want), "{c} {v}");
        }
        assert!(super::compare(">= one", "1.0.0").is_err());
        assert!(super::compare(">= 1.0", "one").is_err());
    }
}
