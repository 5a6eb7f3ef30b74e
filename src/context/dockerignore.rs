//! `.dockerignore`: which files of a build context are left out, with Docker's semantics.
//!
//! Reading follows `dockerignore.ReadAll` (moby): a line whose *first* character is `#`
//! is a comment, lines are trimmed, blank lines skipped, `!` marks an exception, each
//! pattern is cleaned like Go's `filepath.Clean` and a leading `/` is dropped. Matching
//! follows `patternmatcher.MatchesOrParentMatches`: patterns apply in order and the last
//! one that matches the path, or one of its parent directories, decides. Patterns use
//! `*` (within one path element), `?`, `[...]` classes (`^` negates), `**` (any number of
//! directories) and `\` escapes; a pattern is checked for syntax the way Go's
//! `filepath.Match` does, so a file Docker rejects is rejected here too.
//!
//! Docker compiles most patterns to regular expressions but short-cuts three shapes
//! with plain string tests, and those short-cuts are what users observe, quirks
//! included: a pattern with no wildcard matches exactly; `abc/**` matches paths starting
//! with `abc/` (not `abc` itself); a pattern that starts with `**` and is otherwise
//! literal matches any path *ending* with the rest, so `**.md` matches `a/b.md` and
//! `**foo` matches `barfoo`. This module keeps those short-cuts.
//!
//! The parser takes text; reading the file is the caller's job.

// Parts of the API (e.g. `may_include_below`) the context walker does not call yet.

use std::fmt;

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

/// A `.dockerignore` line Docker would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerIgnoreError {
    /// A line that is only `!` (an exception of nothing).
    #[error("{file}:{line}: illegal exclusion pattern \"!\"")]
    LoneExclamation { file: String, line: usize },
    /// A pattern Go's `filepath.Match` calls malformed (unclosed `[`, trailing `\`, …).
    #[error("{file}:{line}: syntax error in pattern {pattern:?}: {reason}")]
    BadPattern { file: String, line: usize, pattern: String, reason: &'static str },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// Cleaned, without the leading `!`.
    text: String,
    exclusion: bool,
    matcher: Matcher,
}

/// How Docker evaluates a pattern (its `matchType`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Matcher {
    /// No wildcard: the path equals the pattern.
    Exact,
    /// `PREFIX**`: the path starts with PREFIX.
    Prefix(String),
    /// `**SUFFIX`, SUFFIX literal: the path ends with SUFFIX (or is SUFFIX minus its `/`).
    Suffix(String),
    /// Everything else, as a token sequence equivalent to Docker's regexp.
    Tokens(Vec<Token>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`: one character other than `/`.
    AnyChar,
    /// `*`: a run of characters other than `/`.
    Star,
    /// `**` or `**/` inside a pattern: nothing, or anything ending with `/`.
    AnyDirs,
    /// Trailing `**` after a wildcard: anything.
    AnyTail,
    Class(Class),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Class {
    negated: bool,
    ranges: Vec<(char, char)>,
}

impl Class {
    fn matches(&self, c: char) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != self.negated
    }
}

impl DockerIgnore {
    /// Parses the text of a file named `.dockerignore` (the name is used in errors).
    pub fn parse(text: &str) -> Result<Self, DockerIgnoreError> {
        Self::parse_named(".dockerignore", text)
    }

    /// Parses ignore-file text, naming `file` in errors (e.g. `Dockerfile.dockerignore`).
    pub fn parse_named(file: &str, text: &str) -> Result<Self, DockerIgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            // Only a `#` in the very first column starts a comment, as in Docker.
            if raw.starts_with('#') {
                continue;
            }
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            let (exclusion, body) = match trimmed.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, trimmed),
            };
            if body.is_empty() {
                if exclusion {
                    return Err(DockerIgnoreError::LoneExclamation { file: file.to_owned(), line });
                }
                continue;
            }
            let mut text = clean(body);
            if text.len() > 1 && text.starts_with('/') {
                text.remove(0);
            }
            let matcher = compile(&text).map_err(|reason| DockerIgnoreError::BadPattern {
                file: file.to_owned(),
                line,
                pattern: raw.trim().to_owned(),
                reason,
            })?;
            patterns.push(Pattern { text, exclusion, matcher });
        }
        Ok(DockerIgnore { patterns })
    }

    #[cfg(test)]
    /// No patterns at all: nothing is excluded.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    #[cfg(test)]
    /// Whether any pattern is an exception (`!…`).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `rel_path` (relative to the context root, `/`-separated) is left out of
    /// the context. The context root itself (`.` or empty) is never excluded.
    pub fn is_excluded(&self, rel_path: &str) -> bool {
        let path = clean(rel_path);
        let path = path.trim_start_matches('/');
        if path.is_empty() || path == "." {
            return false;
        }
        let parents: Vec<&str> = match path.rfind('/') {
            Some(end) => path[..end].match_indices('/').map(|(i, _)| &path[..i]).chain([&path[..end]]).collect(),
            None => Vec::new(),
        };
        let mut excluded = false;
        for pattern in &self.patterns {
            // An exclusion can only add, an exception only remove: skip the no-ops.
            if pattern.exclusion != excluded {
                continue;
            }
            let matched = pattern.matches(path) || parents.iter().any(|p| pattern.matches(p));
            if matched {
                excluded = !pattern.exclusion;
            }
        }
        excluded
    }

    /// Whether some exception pattern could re-include a path inside directory `dir`
    /// (or `dir` itself). A walker may skip an excluded directory only when this is
    /// false. Conservative: `true` whenever a pattern's wildcards make it unclear.
    #[allow(dead_code)] // for walking working-tree files (contextAddFiles), next
    pub fn may_include_below(&self, dir: &str) -> bool {
        let dir = clean(dir);
        let dir = dir.trim_start_matches('/');
        let dir_parts: Vec<&str> = if dir.is_empty() || dir == "." { Vec::new() } else { dir.split('/').collect() };
        self.patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| could_match_within(&p.text.split('/').collect::<Vec<_>>(), &dir_parts))
    }
}

impl fmt::Display for DockerIgnore {
    /// One normalized pattern per line, as Docker would use them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.patterns {
            writeln!(f, "{}{}", if p.exclusion { "!" } else { "" }, p.text)?;
        }
        Ok(())
    }
}

/// Could a pattern (split into path elements) match `dir`, something inside it, or one of
/// its ancestors (which re-includes everything below)?
#[allow(dead_code)] // see may_include_below
fn could_match_within(pattern: &[&str], dir: &[&str]) -> bool {
    match (pattern.split_first(), dir.split_first()) {
        // The pattern matched an ancestor of (or exactly) `dir`.
        (None, _) => true,
        // `dir` consumed: deeper pattern elements can name something inside it.
        (Some(_), None) => true,
        (Some((first, rest)), Some((name, dir_rest))) => {
            if first.contains("**") {
                return true;
            }
            match compile(first) {
                Ok(m) => m.matches(first, name) && could_match_within(rest, dir_rest),
                Err(_) => true,
            }
        }
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        self.matcher.matches(&self.text, path)
    }
}

impl Matcher {
    fn matches(&self, text: &str, path: &str) -> bool {
        match self {
            Matcher::Exact => path == text,
            Matcher::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Matcher::Suffix(suffix) => {
                path.ends_with(suffix.as_str()) || suffix.strip_prefix('/').is_some_and(|bare| path == bare)
            }
            Matcher::Tokens(tokens) => {
                let chars: Vec<char> = path.chars().collect();
                match_tokens(tokens, &chars)
            }
        }
    }
}

fn match_tokens(tokens: &[Token], s: &[char]) -> bool {
    let Some((token, rest)) = tokens.split_first() else {
        return s.is_empty();
    };
    let one = |ok: bool| ok && match_tokens(rest, &s[1..]);
    match token {
        Token::Literal(c) => one(s.first() == Some(c)),
        Token::AnyChar => one(s.first().is_some_and(|&c| c != '/')),
        Token::Class(class) => one(s.first().is_some_and(|&c| class.matches(c))),
        Token::Star => {
            for k in 0..=s.len() {
                if match_tokens(rest, &s[k..]) {
                    return true;
                }
                if s.get(k) == Some(&'/') {
                    break;
                }
            }
            false
        }
        Token::AnyTail => (0..=s.len()).any(|k| match_tokens(rest, &s[k..])),
        Token::AnyDirs => match_tokens(rest, s) || (0..s.len()).any(|k| s[k] == '/' && match_tokens(rest, &s[k + 1..])),
    }
}

/// Docker's `Pattern.compile`, plus the syntax checks of Go's `filepath.Match`.
fn compile(pattern: &str) -> Result<Matcher, &'static str> {
    #[derive(PartialEq)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut kind = Kind::Exact;
    let mut tokens = Vec::new();
    let mut j = 0;
    let mut first = true;
    while j < chars.len() {
        let ch = chars[j];
        j += 1;
        match ch {
            '*' if chars.get(j) == Some(&'*') => {
                j += 1;
                if chars.get(j) == Some(&'/') {
                    j += 1;
                }
                if j == chars.len() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        tokens.push(Token::AnyTail);
                        kind = Kind::Regex;
                    }
                } else {
                    tokens.push(Token::AnyDirs);
                    kind = Kind::Regex;
                }
                if first {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                tokens.push(Token::Star);
                kind = Kind::Regex;
            }
            '?' => {
                tokens.push(Token::AnyChar);
                kind = Kind::Regex;
            }
            '\\' => {
                let Some(&next) = chars.get(j) else {
                    return Err("trailing backslash");
                };
                j += 1;
                tokens.push(Token::Literal(next));
                kind = Kind::Regex;
            }
            '[' => {
                let (class, used) = parse_class(&chars[j..])?;
                j += used;
                tokens.push(Token::Class(class));
                kind = Kind::Regex;
            }
            ']' => {
                tokens.push(Token::Literal(']'));
                kind = Kind::Regex;
            }
            c => tokens.push(Token::Literal(c)),
        }
        first = false;
    }
    Ok(match kind {
        Kind::Exact => Matcher::Exact,
        // Byte slicing is safe: `**` is ASCII.
        Kind::Prefix => Matcher::Prefix(pattern[..pattern.len() - 2].to_owned()),
        Kind::Suffix => Matcher::Suffix(pattern[2..].to_owned()),
        Kind::Regex => Matcher::Tokens(tokens),
    })
}

/// Parses a class body after `[`, returning it and the number of chars used (incl. `]`).
/// Follows Go's `filepath.Match`: `^` negates, `lo-hi` ranges, `\` escapes, and an
/// unescaped `-` or `]` cannot start a range.
fn parse_class(chars: &[char]) -> Result<(Class, usize), &'static str> {
    let mut i = 0;
    let negated = chars.first() == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        if chars.get(i) == Some(&']') && !ranges.is_empty() {
            return Ok((Class { negated, ranges }, i + 1));
        }
        let (lo, next) = class_char(chars, i)?;
        i = next;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            let (h, next) = class_char(chars, i + 1)?;
            hi = h;
            i = next;
        }
        if lo > hi {
            return Err("character range out of order");
        }
        ranges.push((lo, hi));
    }
}

fn class_char(chars: &[char], mut i: usize) -> Result<(char, usize), &'static str> {
    match chars.get(i) {
        None => return Err("unclosed character class"),
        Some('-' | ']') => return Err("bad character class"),
        Some('\\') => i += 1,
        Some(_) => {}
    }
    let c = *chars.get(i).ok_or("unclosed character class")?;
    if i + 1 >= chars.len() {
        return Err("unclosed character class");
    }
    Ok((c, i + 1))
}

/// Go's `path.Clean` for `/`-separated paths.
fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn reads_like_docker() {
        // (file text, normalized patterns)
        let cases: &[(&str, &str)] = &[
            (
                "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n",
                "test1\ntest2\na/file/here\nlastfile\n!inverted/abs/path\n",
            ),
            ("\u{feff}# bom then comment\n*.md\n", "*.md\n"),
            ("  # not a comment\n", "# not a comment\n"),
            ("  spaced  \r\n\t\n", "spaced\n"),
            ("a//b/./c/../d/\n", "a/b/d\n"),
            ("./x\n../y\n/\n", "x\n../y\n/\n"),
            ("!  keep.md\n", "!keep.md\n"),
            ("", ""),
        ];
        for (text, want) in cases {
            assert_eq!(ignore(text).to_string(), *want, "{text:?}");
        }
    }

    #[test]
    fn rejects_like_docker() {
        let cases: &[(&str, &str)] = &[
            ("a\n!\n", ".dockerignore:2: illegal exclusion pattern \"!\""),
            ("a\n  !   \n", ".dockerignore:2: illegal exclusion pattern \"!\""),
            ("[a\n", ".dockerignore:1: syntax error in pattern \"[a\": unclosed character class"),
            ("x[]\n", ".dockerignore:1: syntax error in pattern \"x[]\": bad character class"),
            ("[-a]\n", ".dockerignore:1: syntax error in pattern \"[-a]\": bad character class"),
            ("[z-a]\n", ".dockerignore:1: syntax error in pattern \"[z-a]\": character range out of order"),
            ("# ok\nfoo\\\n", ".dockerignore:2: syntax error in pattern \"foo\\\\\": trailing backslash"),
        ];
        for (text, want) in cases {
            let err = DockerIgnore::parse(text).expect_err(text);
            assert_eq!(err.to_string(), *want, "{text:?}");
        }
        let err = DockerIgnore::parse_named("Dockerfile.dockerignore", "!").unwrap_err();
        assert_eq!(err.to_string(), "Dockerfile.dockerignore:1: illegal exclusion pattern \"!\"");
    }

    #[test]
    fn single_patterns_match_like_docker() {
        // (pattern, path, excluded) — mostly moby/patternmatcher's own table.
        let cases: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**", "dir/file", true),
            ("**/", "dir/file", true),
            ("**/**", "dir/file", true),
            ("**/file", "dir/file", true),
            ("**/file", "file", true),
            ("**/file*", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt", "dir/dir/file.txt", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("a\\\\", "a\\", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("**.md", "notes.md", true),
            ("**.md", "deep/dir/notes.md", true),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true),
            ("*.go", "main.go", true),
            ("*.go", "cmd/main.go", false),
            ("**/*.go", "cmd/tool/main.go", true),
            ("docs/**", "docs/a/b.md", true),
            ("docs/**", "docs", false),
            ("/foo", "foo", true),
            ("/foo", "bar/foo", false),
            ("foo", "bar/foo", false),
            ("dir", "dir/sub/file", true),
            ("*/tmp", "a/tmp/x", true),
            ("*/tmp", "a/b/tmp", false),
            ("[a-c]*/x", "b1/x/y", true),
        ];
        for (pattern, path, want) in cases {
            let di = ignore(pattern);
            assert_eq!(di.is_excluded(path), *want, "pattern {pattern:?} path {path:?}");
        }
    }

    #[test]
    fn last_match_wins_with_exceptions() {
        // (file, path, excluded)
        let cases: &[(&str, &str, bool)] = &[
            ("*.md\n!README.md\n", "CHANGES.md", true),
            ("*.md\n!README.md\n", "README.md", false),
            ("*.md\n!README.md\n", "docs/x.md", false),
            ("*.md\n!README.md\nREADME*\n", "README.md", true),
            ("dir\n!dir/keep\n", "dir/drop", true),
            ("dir\n!dir/keep\n", "dir/keep", false),
            ("dir\n!dir/keep\n", "dir/keep/deep/file", false),
            ("dir\n!dir/keep\n", "dir", true),
            ("*\n!src\n", "src/main.rs", false),
            ("*\n!src\n", "target/x", true),
            ("**\n!**/*.go\n", "a/b/c.go", false),
            ("**\n!**/*.go\n", "a/b/c.rs", true),
            ("!foo\nfoo\n", "foo", true),
            ("node_modules\n", "node_modules/x/y.js", true),
            ("node_modules\n", "app/node_modules/x", false),
            ("**/node_modules\n", "app/node_modules/x", true),
            (".git\n", ".", false),
            ("*\n", "", false),
            ("a/b\n", "./a/b/c", true),
        ];
        for (text, path, want) in cases {
            assert_eq!(ignore(text).is_excluded(path), *want, "{text:?} {path:?}");
        }
    }

    #[test]
    fn tells_a_walker_when_a_directory_may_be_skipped() {
        // (file, dir, may include something below)
        let cases: &[(&str, &str, bool)] = &[
            ("dir\n", "dir", false),
            ("dir\n!dir/keep\n", "dir", true),
            ("dir\n!dir/keep\n", "dir/other", false),
            ("dir\n!dir/keep\n", "dir/keep", true),
            ("dir\n!dir/keep\n", "dir/keep/deep", true),
            ("*\n!src/*.rs\n", "src", true),
            ("*\n!src/*.rs\n", "target", false),
            ("*\n!*/keep\n", "anything", true),
            ("*\n!*/keep\n", "a/b", false),
            ("*\n!**/*.go\n", "deep/dir", true),
            ("*\n![a-c]*\n", "build", true),
            ("*\n![a-c]*\n", "x", false),
            ("*\n!x\n", "x/y", true),
        ];
        for (text, dir, want) in cases {
            assert_eq!(ignore(text).may_include_below(dir), *want, "{text:?} {dir:?}");
        }
        assert!(!ignore("").has_exceptions() && ignore("").is_empty());
    }

    #[test]
    fn cleans_like_go() {
        let cases: &[(&str, &str)] = &[
            ("", "."),
            (".", "."),
            ("a/", "a"),
            ("/", "/"),
            ("//a//b/", "/a/b"),
            ("a/./b", "a/b"),
            ("a/../b", "b"),
            ("../../a", "../../a"),
            ("/../a", "/a"),
            ("a/..", "."),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), *want, "{input:?}");
        }
    }
}
