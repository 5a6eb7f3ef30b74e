//! Docker's shell-word expansion: `$VAR`, `${VAR:-word}` and friends, quote
//! removal and the escape character, exactly as BuildKit's `shell.Lex` does it.
//!
//! This is not a shell. There is no command substitution, arithmetic or
//! globbing; the rules are the small subset Docker applies to the arguments of
//! ENV, COPY, WORKDIR and the like. Keeping BuildKit's quirks (an unset
//! variable is empty, `${#VAR}` is a syntax error, `$1` is a variable named
//! `1`) matters more than being a better shell, because a Dockerfile that
//! builds with docker must build the same here.

use super::pattern::{Pattern, PatternError};

/// How deeply `${…}` substitutions may nest (`${A:-${B:-…}}`). The expander recurses
/// once per level, so an unbounded depth lets a Dockerfile line overflow the stack;
/// real Dockerfiles nest two or three levels.
pub const MAX_SUBSTITUTION_DEPTH: usize = 64;

/// How much text the `$` forms of one word may produce in total. `ENV A=$A$A` doubles
/// a value per line and `${A//?/$A}` squares it; without a bound forty lines need a
/// terabyte. Linux refuses environment strings over 128 KiB anyway.
pub const MAX_SUBSTITUTED_BYTES: usize = 1 << 20;

/// A malformed word, reported without location; the caller adds file and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    #[error("invalid pattern ({pattern}) in substitution: {error}")]
    InvalidPattern { pattern: String, error: PatternError },
    /// `${…}` nested deeper than [`MAX_SUBSTITUTION_DEPTH`].
    #[error("variable substitutions nested more than {MAX_SUBSTITUTION_DEPTH} deep")]
    TooDeep,
    /// The `$` forms of a word produced more than [`MAX_SUBSTITUTED_BYTES`].
    #[error("variable substitutions produce more than {} KiB", MAX_SUBSTITUTED_BYTES >> 10)]
    TooLong,
    /// `${VAR?message}` / `${VAR:?message}` on an unset (or empty) variable.
    #[error("{name}: {message}")]
    Required { name: String, message: String },
}

/// Looks a variable up; `None` means unset, which differs from empty for
/// `${VAR-x}` and `${VAR?}`.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Expands one word: quotes removed, escapes resolved, variables substituted,
/// whitespace kept (BuildKit's `ProcessWord`).
pub fn expand_word(word: &str, lookup: Lookup<'_>, escape: char) -> Result<String, ExpandError> {
    Lexer::new(escape).process(word, lookup).map(|(w, _)| w)
}

/// Expands and splits on unquoted whitespace, including whitespace that comes
/// from an unquoted variable (BuildKit's `ProcessWords`, used for EXPOSE).
pub fn expand_words(word: &str, lookup: Lookup<'_>, escape: char) -> Result<Vec<String>, ExpandError> {
    Lexer::new(escape).process(word, lookup).map(|(_, ws)| ws)
}

/// Expands the body of a heredoc whose delimiter was not quoted: only `$`
/// forms and backslash escapes are processed, quotes are kept, since the body
/// is file content or a script rather than a Dockerfile word. BuildKit always
/// uses `\` here, whatever the escape directive says.
pub fn expand_heredoc(content: &str, lookup: Lookup<'_>) -> Result<String, ExpandError> {
    let lexer = Lexer { skip_quotes: true, ..Lexer::new('\\') };
    lexer.process(content, lookup).map(|(w, _)| w)
}

/// Knobs of BuildKit's `shell.Lex`; the heredoc detector needs the raw modes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lexer {
    pub escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Leave references to unset variables as written.
    pub skip_unset: bool,
    /// Treat quotes as ordinary characters.
    pub skip_quotes: bool,
}

impl Lexer {
    pub fn new(escape: char) -> Self {
        Lexer { escape, raw_quotes: false, raw_escapes: false, skip_unset: false, skip_quotes: false }
    }

    /// Returns the single-word result and the whitespace-split words.
    pub fn process(&self, word: &str, lookup: Lookup<'_>) -> Result<(String, Vec<String>), ExpandError> {
        let mut scan = Scan { chars: word.chars().collect(), pos: 0, lookup, opts: *self, depth: 0, substituted: 0 };
        scan.process_stop_on(None, self.raw_escapes)
    }
}

/// Accumulates BuildKit's word list: unquoted whitespace separates words,
/// quoted text and escaped characters never do.
#[derive(Default)]
struct Words {
    words: Vec<String>,
    word: String,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct Scan<'a> {
    chars: Vec<char>,
    pos: usize,
    lookup: Lookup<'a>,
    opts: Lexer,
    /// `$` forms being expanded around the current position.
    depth: usize,
    /// Bytes the `$` forms produced so far (nested ones count again in their parent).
    substituted: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn get_env(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    fn process_stop_on(&mut self, stop: Option<char>, raw_escapes: bool) -> Result<(String, Vec<String>), ExpandError> {
        let saved = self.opts.raw_escapes;
        self.opts.raw_escapes = raw_escapes;
        let result = self.process_stop_on_inner(stop);
        self.opts.raw_escapes = saved;
        result
    }

    fn process_stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), ExpandError> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            let quote = !self.opts.skip_quotes && (ch == '\'' || ch == '"');
            if ch == '$' || quote {
                let piece = match ch {
                    '$' => self.process_dollar()?,
                    '\'' => self.process_single_quote()?,
                    _ => self.process_double_quote()?,
                };
                result.push_str(&piece);
                if ch == '$' {
                    words.add_string(&piece);
                } else {
                    words.add_raw_string(&piece);
                }
                continue;
            }
            self.next();
            if ch == self.opts.escape {
                if self.opts.raw_escapes {
                    words.add_raw_char(ch);
                    result.push(ch);
                }
                let Some(escaped) = self.next() else { break };
                words.add_raw_char(escaped);
                result.push(escaped);
            } else {
                words.add_char(ch);
                result.push(ch);
            }
        }
        match stop {
            // Callers turn this into "missing '}'" or "missing '/'".
            Some(_) => Err(ExpandError::MissingBrace),
            None => Ok((result, words.finish())),
        }
    }

    fn process_single_quote(&mut self) -> Result<String, ExpandError> {
        let mut result = String::new();
        let open = self.next();
        if self.opts.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => return Err(ExpandError::UnterminatedSingleQuote),
                Some('\'') => {
                    if self.opts.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, ExpandError> {
        let mut result = String::new();
        let open = self.next();
        if self.opts.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => return Err(ExpandError::UnterminatedDoubleQuote),
                Some('"') => {
                    self.next();
                    if self.opts.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.opts.escape {
                        if self.opts.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            // A trailing escape inside an unterminated quote is dropped;
                            // the loop then reports the missing quote.
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.opts.escape => {
                                self.next();
                                ch = n;
                            }
                            // Any other escaped character keeps its escape.
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    /// Every recursion of the expander passes through here (`${A:-$B}`, `"${A:-"$B"}"`,
    /// `${A/$B/$C}`), so this is where the depth is bounded.
    fn process_dollar(&mut self) -> Result<String, ExpandError> {
        if self.depth >= MAX_SUBSTITUTION_DEPTH {
            return Err(ExpandError::TooDeep);
        }
        self.depth += 1;
        let result = self.process_dollar_inner();
        self.depth -= 1;
        let piece = result?;
        self.substituted += piece.len();
        if self.substituted > MAX_SUBSTITUTED_BYTES {
            return Err(ExpandError::TooLong);
        }
        Ok(piece)
    }

    fn process_dollar_inner(&mut self) -> Result<String, ExpandError> {
        self.next(); // the '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.opts.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.next(); // the '{'
        match self.peek() {
            None => return Err(ExpandError::MissingBrace),
            Some('{' | '}' | ':') => return Err(ExpandError::BadSubstitution),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(ch) = self.next() else {
            // BuildKit reports "unsupported modifier (\u{fffd})" here.
            return Err(ExpandError::MissingBrace);
        };
        match ch {
            '}' => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.opts.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => self.process_modifier(name, ch),
            '/' => self.process_replace(name),
            other => Err(ExpandError::UnsupportedModifier(other.to_string())),
        }
    }

    /// `${name<op>word}` after the first operator character was consumed.
    fn process_modifier(&mut self, name: String, first: char) -> Result<String, ExpandError> {
        let mut op = first;
        let mut chs = first.to_string();
        let null_is_unset = first == ':';
        if null_is_unset {
            let Some(c) = self.next() else {
                return Err(ExpandError::MissingBrace);
            };
            op = c;
            chs.push(c);
        }
        let pattern_op = op == '#' || op == '%';
        if null_is_unset && pattern_op {
            return Err(ExpandError::UnsupportedModifier(chs));
        }
        let (word, _) =
            self.process_stop_on(Some('}'), pattern_op).map_err(|e| self.at_eof_or(e, ExpandError::MissingBrace))?;
        let value = self.get_env(&name);
        if self.opts.skip_unset && value.is_none() {
            return Ok(format!("${{{name}{chs}{word}}}"));
        }
        let empty = value.as_deref().is_none_or(str::is_empty);
        let missing = value.is_none() || (null_is_unset && empty);
        match op {
            '-' => Ok(if missing { word } else { value.unwrap_or_default() }),
            '+' => Ok(if missing { String::new() } else { word }),
            '?' => match value {
                Some(v) if !missing => Ok(v),
                _ => {
                    let default =
                        if value.is_none() { "is not allowed to be unset" } else { "is not allowed to be empty" };
                    let message = if word.is_empty() { default.to_owned() } else { word };
                    Err(ExpandError::Required { name, message })
                }
            },
            '#' | '%' => {
                let value = value.unwrap_or_default();
                let (greedy, pat) = match word.strip_prefix(op) {
                    Some(rest) => (true, rest),
                    None => (false, word.as_str()),
                };
                let pattern = compile(pat)?;
                Ok(if op == '#' { pattern.trim_prefix(&value, greedy) } else { pattern.trim_suffix(&value, greedy) })
            }
            _ => Err(ExpandError::UnsupportedModifier(chs)),
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}`.
    fn process_replace(&mut self, name: String) -> Result<String, ExpandError> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let (pat, _) =
            self.process_stop_on(Some('/'), true).map_err(|e| self.at_eof_or(e, ExpandError::MissingSlash))?;
        let (replacement, _) =
            self.process_stop_on(Some('}'), true).map_err(|e| self.at_eof_or(e, ExpandError::MissingBrace))?;
        let Some(value) = self.get_env(&name) else {
            if self.opts.skip_unset {
                return Ok(format!("${{{name}/{pat}/{replacement}}}"));
            }
            return Ok(String::new());
        };
        compile(&pat)?.replace(&value, &replacement, all, MAX_SUBSTITUTED_BYTES).ok_or(ExpandError::TooLong)
    }

    /// Errors inside `${...}` that ran off the end mean the brace is missing.
    fn at_eof_or(&self, error: ExpandError, at_eof: ExpandError) -> ExpandError {
        if self.peek().is_none() { at_eof } else { error }
    }

    /// A variable name: letters, digits and `_`; or a run of digits; or one
    /// special parameter character (`$@ $* $# $? $- $$ $! $0`).
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }
}

fn compile(pattern: &str) -> Result<Pattern, ExpandError> {
    Pattern::parse(pattern).map_err(|error| ExpandError::InvalidPattern { pattern: pattern.to_owned(), error })
}
