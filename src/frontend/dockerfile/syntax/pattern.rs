//! The wildcard patterns of `${VAR#pat}`, `${VAR%pat}` and `${VAR/pat/repl}`.
//!
//! BuildKit turns these into Go regular expressions: `*` is any run and `?`
//! any one character (neither crosses a newline, as Go's `.` does not), `\`
//! makes `*`, `?` or `\` literal, and `\}` / `\/` are plain `}` / `/`. There
//! are no bracket expressions. A small position-set matcher does the same
//! without a regex engine.

/// A pattern that BuildKit would refuse to compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("invalid escape '\\{0}'")]
    InvalidEscape(char),
    #[error("trailing escape")]
    TrailingEscape,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyOne,
    AnyRun,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => Token::AnyRun,
                '?' => Token::AnyOne,
                '\\' => match chars.peek().copied() {
                    Some('}' | '/') => continue,
                    Some(e @ ('*' | '?' | '\\')) => {
                        chars.next();
                        Token::Literal(e)
                    }
                    Some(e) => return Err(PatternError::InvalidEscape(e)),
                    None => return Err(PatternError::TrailingEscape),
                },
                c => Token::Literal(c),
            });
        }
        Ok(Pattern { tokens })
    }

    /// End positions (in chars) of every match of the whole pattern that
    /// starts at `start`.
    fn ends_from(&self, text: &[char], start: usize) -> Vec<usize> {
        let mut live = vec![false; text.len() + 1];
        live[start] = true;
        for token in &self.tokens {
            let mut next = vec![false; text.len() + 1];
            for p in 0..=text.len() {
                match token {
                    Token::AnyRun => {
                        next[p] = live[p] || (p > 0 && next[p - 1] && text[p - 1] != '\n');
                    }
                    Token::AnyOne => {
                        next[p] = p > 0 && live[p - 1] && text[p - 1] != '\n';
                    }
                    Token::Literal(c) => next[p] = p > 0 && live[p - 1] && text[p - 1] == *c,
                }
            }
            live = next;
        }
        (0..=text.len()).filter(|&p| live[p]).collect()
    }

    /// The leftmost-longest match starting at or after `from`, in one pass: each
    /// pattern position keeps only the smallest start that reaches it (a larger start
    /// there can only do what the smaller one does), and once a match is found no new
    /// starts are tried. Trying every start with [`Self::ends_from`] instead costs
    /// `O(value² × pattern)` per replacement.
    fn leftmost_longest(&self, text: &[char], from: usize) -> Option<(usize, usize)> {
        let m = self.tokens.len();
        let mut live: Vec<Option<usize>> = vec![None; m + 1];
        let mut best: Option<(usize, usize)> = None;
        let keep = |slot: &mut Option<usize>, start: usize| {
            if slot.is_none_or(|s| start < s) {
                *slot = Some(start);
            }
        };
        for p in from..=text.len() {
            if best.is_none() {
                keep(&mut live[0], p);
            }
            for j in 0..m {
                if let (Some(start), Token::AnyRun) = (live[j], self.tokens[j]) {
                    keep(&mut live[j + 1], start);
                }
            }
            if let Some(start) = live[m] {
                match best {
                    Some((s, _)) if s < start => {}
                    _ => best = Some((start, p)),
                }
            }
            // Only threads that can still beat or extend the best match go on.
            if let Some((s, _)) = best {
                live.iter_mut().filter(|l| l.is_some_and(|start| start > s)).for_each(|l| *l = None);
            }
            let Some(&c) = text.get(p) else { break };
            let mut next: Vec<Option<usize>> = vec![None; m + 1];
            for (j, token) in self.tokens.iter().enumerate() {
                let Some(start) = live[j] else { continue };
                match token {
                    Token::AnyRun if c != '\n' => keep(&mut next[j], start),
                    Token::AnyOne if c != '\n' => keep(&mut next[j + 1], start),
                    Token::Literal(l) if *l == c => keep(&mut next[j + 1], start),
                    _ => {}
                }
            }
            live = next;
            if best.is_some() && live.iter().all(Option::is_none) {
                break;
            }
        }
        best
    }

    fn pick(ends: &[usize], longest: bool) -> Option<usize> {
        if longest { ends.last().copied() } else { ends.first().copied() }
    }

    /// `${VAR#pat}` (shortest) and `${VAR##pat}` (longest).
    pub fn trim_prefix(&self, value: &str, longest: bool) -> String {
        let text: Vec<char> = value.chars().collect();
        match Self::pick(&self.ends_from(&text, 0), longest) {
            Some(end) => text[end..].iter().collect(),
            None => value.to_owned(),
        }
    }

    /// `${VAR%pat}` (shortest) and `${VAR%%pat}` (longest), done as a prefix
    /// trim of the reversed value, as BuildKit does.
    pub fn trim_suffix(&self, value: &str, longest: bool) -> String {
        let reversed = Pattern { tokens: self.tokens.iter().rev().copied().collect() };
        let text: Vec<char> = value.chars().rev().collect();
        match Self::pick(&reversed.ends_from(&text, 0), longest) {
            Some(end) => text[end..].iter().rev().collect(),
            None => value.to_owned(),
        }
    }

    /// `${VAR/pat/repl}` replaces the leftmost longest match, `${VAR//pat/repl}`
    /// every non-overlapping one; `None` once the result would pass `limit` bytes.
    pub fn replace(&self, value: &str, replacement: &str, all: bool, limit: usize) -> Option<String> {
        let text: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut pos = 0;
        while pos <= text.len() {
            let found = self.leftmost_longest(&text, pos);
            let Some((start, end)) = found else { break };
            out.extend(&text[pos..start]);
            if out.len() + replacement.len() > limit {
                return None;
            }
            out.push_str(replacement);
            if !all {
                pos = end;
                break;
            }
            if end == start {
                // An empty match: copy one character so the scan moves on.
                out.extend(text.get(start));
                pos = start + 1;
            } else {
                pos = end;
            }
        }
        if pos < text.len() {
            out.extend(&text[pos..]);
        }
        (out.len() <= limit).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_replaces() {
        // (pattern, value, operation, expected)
        let cases: &[(&str, &str, &str, &str)] = &[
            ("*/", "/a/b/c", "#", "a/b/c"),
            ("*/", "/a/b/c", "##", "c"),
            ("/*", "/a/b/c", "%", "/a/b"),
            ("/*", "/a/b/c", "%%", ""),
            ("?", "abc", "#", "bc"),
            ("x", "abc", "#", "abc"),
            ("\\*", "*abc", "#", "abc"),
            ("b", "abcb", "/", "aXcb"),
            ("b", "abcb", "//", "aXcX"),
            ("b*", "abcb", "/", "aX"),
            ("z", "abc", "//", "abc"),
            ("", "ab", "/", "Xab"),
        ];
        for (pat, value, op, want) in cases {
            let p = Pattern::parse(pat).unwrap();
            let got = match *op {
                "#" => p.trim_prefix(value, false),
                "##" => p.trim_prefix(value, true),
                "%" => p.trim_suffix(value, false),
                "%%" => p.trim_suffix(value, true),
                "/" => p.replace(value, "X", false, usize::MAX).unwrap(),
                _ => p.replace(value, "X", true, usize::MAX).unwrap(),
            };
            assert_eq!(got, *want, "{value:?} {op} {pat:?}");
        }
    }

    #[test]
    fn rejects_bad_escapes() {
        assert_eq!(Pattern::parse("a\\b"), Err(PatternError::InvalidEscape('b')));
        assert_eq!(Pattern::parse("a\\"), Err(PatternError::TrailingEscape));
        assert!(Pattern::parse("a\\}\\/").is_ok());
    }

    /// The search every start then take the longest end, as this module used to do.
    fn reference(p: &Pattern, text: &[char], from: usize) -> Option<(usize, usize)> {
        (from..=text.len()).find_map(|s| p.ends_from(text, s).last().map(|&e| (s, e)))
    }

    #[test]
    fn leftmost_longest_agrees_with_trying_every_start() {
        let mut seed: u64 = 0xfeed;
        let mut next = move |m: usize| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize % m
        };
        for _ in 0..20_000 {
            let pat: String = (0..next(5)).map(|_| ['a', 'b', '*', '?'][next(4)]).collect();
            let text: Vec<char> = (0..next(10)).map(|_| ['a', 'b', '\n'][next(3)]).collect();
            let p = Pattern::parse(&pat).unwrap();
            let from = next(text.len() + 1);
            assert_eq!(p.leftmost_longest(&text, from), reference(&p, &text, from), "{pat:?} {text:?} from {from}");
        }
    }

    #[test]
    fn replacing_in_a_long_value_is_fast() {
        use std::time::{Duration, Instant};
        let start = Instant::now();
        let value = "a".repeat(200_000);
        assert_eq!(Pattern::parse("b").unwrap().replace(&value, "X", true, usize::MAX).unwrap(), value);
        assert_eq!(Pattern::parse("a*b").unwrap().replace(&value, "X", false, usize::MAX).unwrap(), value);
        let x = Pattern::parse("a").unwrap().replace(&value, "X", true, usize::MAX).unwrap();
        assert_eq!(x, "X".repeat(200_000));
        assert_eq!(Pattern::parse("?").unwrap().replace(&value, &"y".repeat(1000), true, 1 << 20), None);
        assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    }
}
