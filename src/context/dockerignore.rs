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
    /// The same in a flag's pattern (`--exclude`, `--parents`).
    #[error("{flag}={pattern}: {reason}")]
    BadFlagPattern { flag: String, pattern: String, reason: &'static str },
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
            let mut text = go_clean(body);
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

    /// The patterns of `COPY --exclude` (or the include pattern of `COPY --parents`), as
    /// moby's `patternmatcher.New` reads a list: each trimmed, empty ones skipped, cleaned,
    /// then a leading `!` marks an exception; no comments, and a leading `/` is kept (such
    /// a pattern never matches a relative path, as in BuildKit). `flag` names the flag in
    /// errors.
    pub fn from_patterns(flag: &str, patterns: &[String]) -> Result<Self, DockerIgnoreError> {
        let mut out = Vec::new();
        for raw in patterns {
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            let cleaned = go_clean(trimmed);
            let (exclusion, text) = match cleaned.strip_prefix('!') {
                Some("") => {
                    let reason = "illegal exclusion pattern \"!\"";
                    return Err(DockerIgnoreError::BadFlagPattern {
                        flag: flag.to_owned(),
                        pattern: raw.clone(),
                        reason,
                    });
                }
                Some(rest) => (true, rest.to_owned()),
                None => (false, cleaned.clone()),
            };
            let matcher = compile(&text).map_err(|reason| DockerIgnoreError::BadFlagPattern {
                flag: flag.to_owned(),
                pattern: raw.clone(),
                reason,
            })?;
            out.push(Pattern { text, exclusion, matcher });
        }
        Ok(DockerIgnore { patterns: out })
    }

    /// No patterns at all: nothing is excluded.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern is an exception (`!…`).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `rel_path` (relative to the context root, `/`-separated) is left out of
    /// the context. The context root itself (`.` or empty) is never excluded.
    pub fn is_excluded(&self, rel_path: &str) -> bool {
        let path = go_clean(rel_path);
        let path = path.trim_start_matches('/');
        if path.is_empty() || path == "." {
            return false;
        }
        let mut excluded = false;
        for pattern in &self.patterns {
            // An exclusion can only add, an exception only remove: skip the no-ops.
            if pattern.exclusion != excluded {
                continue;
            }
            if pattern.matcher.matches_self_or_parent(&pattern.text, path) {
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
        let dir = go_clean(dir);
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
/// its ancestors (which re-includes everything below)? A loop, not recursion: a pattern
/// line can have thousands of elements.
#[allow(dead_code)] // see may_include_below
fn could_match_within(pattern: &[&str], dir: &[&str]) -> bool {
    for (first, name) in pattern.iter().zip(dir) {
        if first.contains("**") {
            return true;
        }
        match compile(first) {
            Ok(m) if m.matches(first, name) => {}
            Ok(_) => return false,
            Err(_) => return true,
        }
    }
    // Either the pattern matched an ancestor of (or exactly) `dir`, or `dir` is consumed
    // and deeper pattern elements can name something inside it.
    true
}

impl Matcher {
    /// Whether `path` or one of its parent directories matches (moby's
    /// `MatchesOrParentMatches`), in one pass over `path` for token patterns.
    fn matches_self_or_parent(&self, text: &str, path: &str) -> bool {
        match self {
            Matcher::Tokens(tokens) => Nfa::new(tokens).matches_self_or_parent(path),
            _ => {
                self.matches(text, path)
                    || path.match_indices('/').any(|(i, _)| i > 0 && self.matches(text, &path[..i]))
            }
        }
    }

    fn matches(&self, text: &str, path: &str) -> bool {
        match self {
            Matcher::Exact => path == text,
            Matcher::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Matcher::Suffix(suffix) => {
                path.ends_with(suffix.as_str()) || suffix.strip_prefix('/').is_some_and(|bare| path == bare)
            }
            Matcher::Tokens(tokens) => Nfa::new(tokens).matches(path),
        }
    }
}

/// The token sequence run as a Thompson NFA: the set of live token positions is carried
/// over the path one character at a time, so a match costs `O(tokens × path)` steps
/// whatever the pattern (Docker's Go regexp is linear too). A backtracking matcher takes
/// exponential time on `*a*a*a*…b` or `**/**/**/…` against long or deep paths.
///
/// States: `at[j]` — the first `j` tokens matched the text read so far; `dirs[j]` — token
/// `j` is `AnyDirs` and has consumed some characters but not yet the `/` that ends them.
struct Nfa<'a> {
    tokens: &'a [Token],
    at: Vec<bool>,
    dirs: Vec<bool>,
    next_at: Vec<bool>,
    next_dirs: Vec<bool>,
}

impl<'a> Nfa<'a> {
    fn new(tokens: &'a [Token]) -> Self {
        let n = tokens.len() + 1;
        let mut nfa = Nfa {
            tokens,
            at: vec![false; n],
            dirs: vec![false; n],
            next_at: vec![false; n],
            next_dirs: vec![false; n],
        };
        nfa.at[0] = true;
        close(tokens, &mut nfa.at);
        nfa
    }

    fn accepting(&self) -> bool {
        self.at[self.tokens.len()]
    }

    /// Reads one character; false when nothing is live any more.
    fn step(&mut self, c: char) -> bool {
        self.next_at.fill(false);
        self.next_dirs.fill(false);
        let mut any = false;
        for (j, token) in self.tokens.iter().enumerate() {
            if self.dirs[j] || (self.at[j] && matches!(token, Token::AnyDirs)) {
                // Inside `(.*/)?`: keep consuming, or end it with a `/`.
                self.next_dirs[j] = true;
                if c == '/' {
                    self.next_at[j + 1] = true;
                }
                any = true;
                continue;
            }
            if !self.at[j] {
                continue;
            }
            let to = match token {
                Token::Literal(l) if *l == c => j + 1,
                Token::AnyChar if c != '/' => j + 1,
                Token::Class(class) if class.matches(c) => j + 1,
                Token::Star if c != '/' => j,
                Token::AnyTail => j,
                _ => continue,
            };
            self.next_at[to] = true;
            any = true;
        }
        close(self.tokens, &mut self.next_at);
        std::mem::swap(&mut self.at, &mut self.next_at);
        std::mem::swap(&mut self.dirs, &mut self.next_dirs);
        any
    }

    fn matches(mut self, path: &str) -> bool {
        path.chars().all(|c| self.step(c)) && self.accepting()
    }

    /// True if the whole path, or a prefix of it that ends just before a `/` (a parent
    /// directory), matches.
    fn matches_self_or_parent(mut self, path: &str) -> bool {
        for (i, c) in path.char_indices() {
            if c == '/' && i > 0 && self.accepting() {
                return true;
            }
            if !self.step(c) {
                return false;
            }
        }
        self.accepting()
    }
}

/// The empty moves: `*`, `**` and a trailing `**` may match nothing.
fn close(tokens: &[Token], at: &mut [bool]) {
    for (j, token) in tokens.iter().enumerate() {
        if at[j] && matches!(token, Token::Star | Token::AnyTail | Token::AnyDirs) {
            at[j + 1] = true;
        }
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
pub(crate) fn go_clean(path: &str) -> String {
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
    fn flag_patterns_read_as_patternmatcher_new() {
        let p = |list: &[&str]| {
            DockerIgnore::from_patterns("--exclude", &list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        let di = p(&["#x", " *.png ", "", "dir", "!dir/keep"]).unwrap();
        assert!(di.is_excluded("#x") && di.is_excluded("a.png") && di.is_excluded("dir/x"));
        assert!(!di.is_excluded("dir/keep") && !di.is_excluded("sub/a.png"));
        assert!(di.has_exceptions());
        assert!(!p(&["/abs"]).unwrap().is_excluded("abs"));
        assert_eq!(p(&["!"]).unwrap_err().to_string(), "--exclude=!: illegal exclusion pattern \"!\"");
        assert!(p(&["[x"]).is_err());
        assert!(p(&[]).unwrap().is_empty());
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
            assert_eq!(go_clean(input), *want, "{input:?}");
        }
    }

    #[test]
    fn hostile_patterns_match_in_linear_time() {
        use std::time::{Duration, Instant};
        let start = Instant::now();
        let stars = format!("{}b", "*a".repeat(13));
        let deep = "d/".repeat(300) + "f";
        // (file, path, excluded)
        let cases: Vec<(String, String, bool)> = vec![
            (stars.clone(), "a".repeat(100), false),
            (stars.clone(), "a".repeat(100) + "b", true),
            (stars.clone(), format!("{}/x", "a".repeat(100)), false),
            ("**/".repeat(30) + "x", deep.clone(), false),
            ("**/".repeat(30) + "f", deep.clone(), true),
            ("**/".repeat(30) + "d/*/x", deep.clone(), false),
            ("d/**/".repeat(30) + "f", deep.clone(), true),
            ("*/".repeat(400) + "*", deep.clone(), false),
            ("*/".repeat(200) + "*", deep.clone(), true),
            ("?".repeat(1000) + "*b", "a".repeat(2000), false),
        ];
        for (text, path, want) in &cases {
            assert_eq!(ignore(text).is_excluded(path), *want, "{text:?} {path:?}");
        }
        let di = ignore(&format!("*\n!{}b\n", "a/".repeat(20_000)));
        assert!(di.may_include_below(&"a/".repeat(20_000)));
        assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
    }

    /// The backtracking matcher this module used to have, kept as the reference the
    /// NFA must agree with.
    fn reference(tokens: &[Token], s: &[char]) -> bool {
        let Some((token, rest)) = tokens.split_first() else {
            return s.is_empty();
        };
        let one = |ok: bool| ok && reference(rest, &s[1..]);
        match token {
            Token::Literal(c) => one(s.first() == Some(c)),
            Token::AnyChar => one(s.first().is_some_and(|&c| c != '/')),
            Token::Class(class) => one(s.first().is_some_and(|&c| class.matches(c))),
            Token::Star => (0..=s.len()).take_while(|&k| k == 0 || s[k - 1] != '/').any(|k| reference(rest, &s[k..])),
            Token::AnyTail => (0..=s.len()).any(|k| reference(rest, &s[k..])),
            Token::AnyDirs => reference(rest, s) || (0..s.len()).any(|k| s[k] == '/' && reference(rest, &s[k + 1..])),
        }
    }

    #[test]
    fn nfa_agrees_with_the_backtracking_reference() {
        let mut seed: u64 = 0xd0c4;
        let mut next = move |m: usize| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize % m
        };
        let pat_alphabet = ["a", "b", "/", "*", "**", "**/", "?", "[a-b]", "[^a]", "\\*"];
        let path_alphabet = ['a', 'b', '/', '*', 'c'];
        let mut compared = 0;
        for _ in 0..30_000 {
            let p: String = (0..next(7)).map(|_| pat_alphabet[next(pat_alphabet.len())]).collect();
            let path: String = (0..next(9)).map(|_| path_alphabet[next(path_alphabet.len())]).collect();
            let Ok(Matcher::Tokens(tokens)) = compile(&p) else { continue };
            let chars: Vec<char> = path.chars().collect();
            assert_eq!(Nfa::new(&tokens).matches(&path), reference(&tokens, &chars), "pattern {p:?} path {path:?}");
            let parent = (1..chars.len()).any(|i| chars[i] == '/' && reference(&tokens, &chars[..i]));
            assert_eq!(
                Nfa::new(&tokens).matches_self_or_parent(&path),
                reference(&tokens, &chars) || parent,
                "pattern {p:?} path {path:?} (or a parent)"
            );
            compared += 1;
        }
        assert!(compared > 10_000, "only {compared} token patterns");
    }
}
