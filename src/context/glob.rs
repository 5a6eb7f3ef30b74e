//! Go `filepath.Match` patterns, which Docker uses for COPY/ADD sources: `*` and `?`
//! never match `/`, `[...]` classes with ranges and `^`/`!` negation, `\` escapes.
//!
//! A pattern is compiled to tokens once and matched by simulating the set of live
//! pattern positions over the name (a Thompson NFA), so matching costs at most
//! `O(pattern × name)` steps whatever the pattern: a backtracking matcher takes
//! exponential time on `*a*a*a*…b` against a long run of `a`s. A malformed pattern
//! (an unclosed `[`) is refused whether or not matching would reach it, as Go 1.16+
//! does.

use anyhow::bail;

pub fn has_meta(p: &str) -> bool {
    p.contains(['*', '?', '[', '\\'])
}

pub fn matches(pattern: &str, name: &str) -> anyhow::Result<bool> {
    Ok(Glob::new(pattern)?.matches(name))
}

/// A compiled `filepath.Match` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`: one character other than `/`.
    AnyChar,
    /// `*`: a run of characters other than `/`.
    Star,
    /// `[...]`: one character other than `/` that is (or, negated, is not) in a range.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    /// Whether this one-character token accepts `c` (`Star` is handled by the caller).
    fn accepts(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::AnyChar => c != '/',
            Token::Star => c != '/',
            Token::Class { negated, ranges } => {
                c != '/' && ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

impl Glob {
    pub fn new(pattern: &str) -> anyhow::Result<Glob> {
        let p: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < p.len() {
            match p[i] {
                '*' => {
                    // `**` is `*` here; one token keeps the state set small.
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                    i += 1;
                }
                '?' => {
                    tokens.push(Token::AnyChar);
                    i += 1;
                }
                '[' => {
                    let Some(close) = p[i + 1..].iter().position(|&c| c == ']').map(|k| i + 1 + k) else {
                        bail!("syntax error in pattern: unclosed [");
                    };
                    let mut class = &p[i + 1..close];
                    let negated = matches!(class.first(), Some('^' | '!'));
                    if negated {
                        class = &class[1..];
                    }
                    let mut ranges = Vec::new();
                    let mut k = 0;
                    while k < class.len() {
                        if k + 2 < class.len() && class[k + 1] == '-' {
                            ranges.push((class[k], class[k + 2]));
                            k += 3;
                        } else {
                            ranges.push((class[k], class[k]));
                            k += 1;
                        }
                    }
                    tokens.push(Token::Class { negated, ranges });
                    i = close + 1;
                }
                '\\' if i + 1 < p.len() => {
                    tokens.push(Token::Literal(p[i + 1]));
                    i += 2;
                }
                c => {
                    tokens.push(Token::Literal(c));
                    i += 1;
                }
            }
        }
        Ok(Glob { tokens })
    }

    /// Whether the whole of `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let n = self.tokens.len();
        // live[j]: the first j tokens can match the name read so far.
        let mut live = vec![false; n + 1];
        let mut next = vec![false; n + 1];
        live[0] = true;
        self.close(&mut live);
        for c in name.chars() {
            next.fill(false);
            let mut any = false;
            for (j, token) in self.tokens.iter().enumerate() {
                if !live[j] || !token.accepts(c) {
                    continue;
                }
                // A star stays where it is; every other token moves on.
                let to = if *token == Token::Star { j } else { j + 1 };
                next[to] = true;
                any = true;
            }
            if !any {
                return false;
            }
            self.close(&mut next);
            std::mem::swap(&mut live, &mut next);
        }
        live[n]
    }

    /// A star may match nothing: a live star makes the position after it live.
    fn close(&self, live: &mut [bool]) {
        for j in 0..self.tokens.len() {
            if live[j] && self.tokens[j] == Token::Star {
                live[j + 1] = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Glob, matches};
    use std::time::{Duration, Instant};

    #[test]
    fn go_filepath_match_cases() {
        for (p, n, want) in [
            ("*.txt", "a.txt", true),
            ("*.txt", "dir/a.txt", false),
            ("dir/*", "dir/a", true),
            ("dir/*", "dir/a/b", false),
            ("a?c", "abc", true),
            ("a?c", "a/c", false),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("[!a-c]x", "dx", true),
            ("\\*", "*", true),
            ("*", "", true),
        ] {
            assert_eq!(matches(p, n).unwrap(), want, "{p} vs {n}");
        }
        assert!(matches("[abc", "a").is_err());
    }

    #[test]
    fn hostile_patterns_match_in_linear_time() {
        let many_a = "a".repeat(100);
        let stars = format!("{}b", "*a".repeat(13));
        let start = Instant::now();
        // (pattern, name, want)
        let cases: Vec<(String, String, bool)> = vec![
            (stars.clone(), many_a.clone(), false),
            (stars.clone(), format!("{many_a}b"), true),
            ("*".repeat(5000), "a".repeat(5000), true),
            (format!("{}b", "*?".repeat(300)), "a".repeat(1000), false),
            ("*/".repeat(200) + "x", "a/".repeat(200) + "x", true),
            ("*/".repeat(200) + "x", "a/".repeat(199) + "x", false),
        ];
        for (p, n, want) in &cases {
            assert_eq!(matches(p, n).unwrap(), *want, "{p} vs {n}");
        }
        assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
    }

    /// The backtracking matcher this module used to have, kept as the reference the
    /// linear one must agree with.
    fn reference(p: &[char], n: &[char]) -> bool {
        let Some(&c) = p.first() else { return n.is_empty() };
        match c {
            '*' => (0..=n.len()).take_while(|&i| i == 0 || n[i - 1] != '/').any(|i| reference(&p[1..], &n[i..])),
            '?' => !n.is_empty() && n[0] != '/' && reference(&p[1..], &n[1..]),
            '[' => {
                let close = p.iter().skip(1).position(|&c| c == ']').map(|i| i + 1).expect("checked by Glob::new");
                if n.is_empty() || n[0] == '/' {
                    return false;
                }
                let mut class = &p[1..close];
                let negate = matches!(class.first(), Some('^' | '!'));
                if negate {
                    class = &class[1..];
                }
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= n[0] && n[0] <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == n[0];
                        i += 1;
                    }
                }
                hit != negate && reference(&p[close + 1..], &n[1..])
            }
            '\\' if p.len() > 1 => !n.is_empty() && n[0] == p[1] && reference(&p[2..], &n[1..]),
            c => !n.is_empty() && n[0] == c && reference(&p[1..], &n[1..]),
        }
    }

    #[test]
    fn agrees_with_the_backtracking_reference() {
        // A small deterministic generator over an alphabet that exercises every token.
        let mut seed: u64 = 0x5eed;
        let mut next = move |m: usize| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize % m
        };
        let pat_alphabet = ['a', 'b', '/', '*', '*', '?', '[', ']', '^', '-', '\\'];
        let name_alphabet = ['a', 'b', '/', '-', ']', '*'];
        let mut compared = 0;
        for _ in 0..20_000 {
            let p: String = (0..next(8)).map(|_| pat_alphabet[next(pat_alphabet.len())]).collect();
            let n: String = (0..next(8)).map(|_| name_alphabet[next(name_alphabet.len())]).collect();
            let Ok(glob) = Glob::new(&p) else { continue };
            let want = reference(&p.chars().collect::<Vec<_>>(), &n.chars().collect::<Vec<_>>());
            assert_eq!(glob.matches(&n), want, "pattern {p:?} name {n:?}");
            compared += 1;
        }
        assert!(compared > 10_000, "only {compared} patterns compiled");
    }
}
