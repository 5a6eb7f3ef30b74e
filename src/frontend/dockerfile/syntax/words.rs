//! Splitting an instruction's text into its parts, before any expansion:
//! the keyword, the leading `--flag=value` words, JSON arrays, and the
//! quote-aware words of ENV, LABEL and ARG.
//!
//! These follow BuildKit's parser package (`splitCommand`,
//! `extractBuilderFlags`, `parseWords`, `parseJSON`), whose quirks decide what
//! a Dockerfile means: for instance `parseWords` keeps quotes and escapes in
//! place, because they are removed later, during expansion.

/// The whitespace BuildKit's `reWhitespace` splits on (no newline: lines are
/// already joined).
pub(crate) fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0b' | '\x0c' | '\r')
}

/// Splits `RUN --flag x y` into `("RUN", "--flag x y")`.
pub(crate) fn split_command(line: &str) -> (&str, &str) {
    let line = line.trim();
    match line.find(is_blank) {
        Some(i) => (&line[..i], line[i..].trim_start_matches(is_blank)),
        None => (line, ""),
    }
}

/// Splits on runs of blanks, ignoring quotes (FROM, EXPOSE, COPY's shell form).
pub(crate) fn split_blank(rest: &str) -> Vec<String> {
    rest.split(is_blank).filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

/// Takes the leading `--name[=value]` words off `rest`; returns them without
/// their dashes and quotes, and the trimmed remainder. A bare `--` ends the flags.
pub(crate) fn extract_flags(rest: &str) -> (Vec<String>, &str) {
    let mut flags = Vec::new();
    let mut pos = 0;
    loop {
        let tail = &rest[pos..];
        let skipped = tail.len() - tail.trim_start().len();
        pos += skipped;
        let tail = &rest[pos..];
        if !tail.starts_with("--") {
            return (flags, tail.trim_end());
        }
        let (word, used) = flag_word(tail);
        pos += used;
        if word == "--" {
            return (flags, rest[pos..].trim());
        }
        // `tail` starts with `--`, so the word does too.
        flags.push(word[2..].to_owned());
    }
}

/// Reads one flag word: quotes group, `\` escapes (always backslash, as in
/// BuildKit), whitespace ends the word. Returns the word and bytes consumed.
fn flag_word(s: &str) -> (String, usize) {
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match quote {
            None if c.is_whitespace() => return (word, i),
            None if c == '\'' || c == '"' => quote = Some(c),
            Some(q) if c == q => quote = None,
            _ if c == '\\' => {
                if let Some((_, n)) = chars.next() {
                    word.push(n);
                }
            }
            _ => word.push(c),
        }
    }
    (word, s.len())
}

/// BuildKit's `parseWords`: splits on unquoted whitespace, keeping quotes
/// and escape characters in the words.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    // An empty quoted word such as `""` still counts as a word.
    let mut blank_ok = false;
    let mut quote: Option<char> = None;
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            if c == escape && q != '\'' {
                match chars.next() {
                    Some(n) => {
                        word.push(c);
                        word.push(n);
                    }
                    None => quote = None,
                }
                continue;
            }
            word.push(c);
            continue;
        }
        if !in_word {
            if c.is_whitespace() {
                continue;
            }
            in_word = true;
        }
        if c.is_whitespace() {
            if blank_ok || !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            in_word = false;
            blank_ok = false;
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            blank_ok = true;
        }
        if c == escape {
            if let Some(n) = chars.next() {
                word.push(c);
                word.push(n);
            }
            continue;
        }
        word.push(c);
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// The outcome of trying an argument string as a JSON array.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Json {
    /// A valid JSON array of strings: exec form.
    Array(Vec<String>),
    /// Valid JSON array with a non-string element: an error in Docker.
    NotStrings,
    /// Anything else: Docker falls back to the shell form.
    Invalid,
}

pub(crate) fn parse_json_array(rest: &str) -> Json {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Json::Invalid;
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(rest) {
        Err(_) => Json::Invalid,
        Ok(values) => values
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Some(s),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map_or(Json::NotStrings, Json::Array),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_command_cases() {
        let cases: &[(&str, (&str, &str))] =
            &[("RUN echo hi", ("RUN", "echo hi")), ("  run \t echo  hi  ", ("run", "echo  hi")), ("CMD", ("CMD", ""))];
        for (input, want) in cases {
            assert_eq!(split_command(input), *want, "{input:?}");
        }
    }

    #[test]
    fn extract_flags_cases() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("a b", &[], "a b"),
            ("--from=x a b", &["from=x"], "a b"),
            ("--link --chmod=755  a b ", &["link", "chmod=755"], "a b"),
            ("--chown=\"a b\" x y", &["chown=a b"], "x y"),
            ("--mount=type=cache,target=/c\\ d x", &["mount=type=cache,target=/c d"], "x"),
            ("-- --not-a-flag x", &[], "--not-a-flag x"),
            ("--link", &["link"], ""),
            ("-x --y", &[], "-x --y"),
        ];
        for (input, flags, rest) in cases {
            let (got_flags, got_rest) = extract_flags(input);
            assert_eq!(got_flags, *flags, "{input:?}");
            assert_eq!(got_rest, *rest, "{input:?}");
        }
    }

    #[test]
    fn parse_words_cases() {
        let cases: &[(&str, &[&str])] = &[
            ("a=b c=d", &["a=b", "c=d"]),
            ("a=\"x y\" b='1 2'", &["a=\"x y\"", "b='1 2'"]),
            ("a=x\\ y", &["a=x\\ y"]),
            ("a=\"q\\\"q\" z", &["a=\"q\\\"q\"", "z"]),
            ("a='it\\' b", &["a='it\\'", "b"]),
            ("\"\"", &["\"\""]),
            ("  spaced   out  ", &["spaced", "out"]),
        ];
        for (input, want) in cases {
            assert_eq!(parse_words(input, '\\'), *want, "{input:?}");
        }
    }

    #[test]
    fn json_cases() {
        let cases: &[(&str, Json)] = &[
            ("[\"a\", \"b c\"]", Json::Array(vec!["a".into(), "b c".into()])),
            ("  []", Json::Array(vec![])),
            ("[\"a\", 1]", Json::NotStrings),
            ("[a, b]", Json::Invalid),
            ("[\"a\"] trailing", Json::Invalid),
            ("echo [\"a\"]", Json::Invalid),
        ];
        for (input, want) in cases {
            assert_eq!(parse_json_array(input), *want, "{input:?}");
        }
    }
}
