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
    /// every non-overlapping one.
    pub fn replace(&self, value: &str, replacement: &str, all: bool) -> String {
        let text: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut pos = 0;
        while pos <= text.len() {
            let found = (pos..=text.len()).find_map(|s| self.ends_from(&text, s).last().map(|&e| (s, e)));
            let Some((start, end)) = found else { break };
            out.extend(&text[pos..start]);
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
        out
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
                "/" => p.replace(value, "X", false),
                _ => p.replace(value, "X", true),
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
}
