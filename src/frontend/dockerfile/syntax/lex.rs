//! From text to logical lines: parser directives, comments, blank lines,
//! line continuations and heredoc bodies, following BuildKit's
//! `parser.Parse`.
//!
//! The rules that surprise people, all Docker's:
//! - directives (`# escape=``, `# syntax=...`) count only before anything
//!   else, including a blank line or an ordinary comment;
//! - inside a continuation, comment lines and blank lines are skipped, and
//!   continuation lines are joined without trimming their indentation;
//! - a heredoc body is raw text: no comments, continuations or directives.

use super::ErrorKind;
use super::expand::Lexer;
use super::instruction::Heredoc;
use super::words::split_command;

/// One instruction's text, continuations joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogicalLine {
    /// 1-based line of the first physical line.
    pub line: usize,
    pub text: String,
    pub heredocs: Vec<Heredoc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lexed {
    pub escape: char,
    pub syntax: Option<String>,
    pub lines: Vec<LogicalLine>,
}

/// Splits `text` into logical lines; errors carry the 1-based line.
pub(crate) fn lex(text: &str) -> Result<Lexed, (usize, ErrorKind)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let physical: Vec<&str> = text.lines().collect();
    let mut directives = Directives::default();
    let mut lines = Vec::new();
    let mut next = 0;
    while next < physical.len() {
        let start = next + 1;
        let first = physical[next].trim_start();
        next += 1;
        directives.feed(first).map_err(|kind| (start, kind))?;
        if is_comment(first) {
            continue;
        }
        let escape = directives.escape;
        let (joined, mut complete) = trim_continuation(first, escape);
        if complete && joined.is_empty() {
            continue;
        }
        let mut joined = joined.to_owned();
        while !complete && next < physical.len() {
            let raw = physical[next];
            next += 1;
            if is_comment(raw) || raw.trim_start().is_empty() {
                continue;
            }
            let (part, done) = trim_continuation(raw, escape);
            joined.push_str(part);
            complete = done;
        }
        let text = joined.trim_end().to_owned();
        let mut heredocs = Vec::new();
        for word in heredoc_words(&text) {
            heredocs.push(read_heredoc(word, &physical, &mut next).map_err(|k| (start, k))?);
        }
        lines.push(LogicalLine { line: start, text, heredocs });
    }
    Ok(Lexed { escape: directives.escape, syntax: directives.syntax, lines })
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Removes a trailing escape character (and blanks after it); `true` when
/// there was none, i.e. the instruction ends on this line.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(stripped) => (stripped, false),
        None => (line, true),
    }
}

/// The parser directives seen so far; the first line that is not one ends them.
struct Directives {
    done: bool,
    seen: Vec<String>,
    escape: char,
    syntax: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives { done: false, seen: Vec::new(), escape: '\\', syntax: None }
    }
}

impl Directives {
    fn feed(&mut self, line: &str) -> Result<(), ErrorKind> {
        if self.done {
            return Ok(());
        }
        let Some((name, value)) = match_directive(line) else {
            self.done = true;
            return Ok(());
        };
        let name = name.to_ascii_lowercase();
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(());
        }
        if self.seen.contains(&name) {
            return Err(ErrorKind::DuplicateDirective(name));
        }
        match name.as_str() {
            "escape" => match value {
                "\\" => self.escape = '\\',
                "`" => self.escape = '`',
                other => return Err(ErrorKind::InvalidEscapeToken(other.to_owned())),
            },
            "syntax" => self.syntax = Some(value.to_owned()),
            _ => {}
        }
        self.seen.push(name);
        Ok(())
    }
}

/// `# name = value`, as BuildKit's
/// `^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$`.
fn match_directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start_matches([' ', '\t']);
    let name_len = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(rest.len());
    let (name, rest) = rest.split_at(name_len);
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest.trim_start_matches([' ', '\t']).strip_prefix('=')?.trim_matches([' ', '\t']);
    (!value.is_empty()).then_some((name, value))
}

/// A heredoc named on an instruction line, before its body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeredocWord {
    pub name: String,
    pub expand: bool,
    pub chomp: bool,
    pub fd: u32,
}

/// The heredocs an instruction line opens, in order. Only RUN, COPY and ADD
/// (also behind ONBUILD) take heredocs, as in BuildKit.
fn heredoc_words(line: &str) -> Vec<HeredocWord> {
    let (command, rest) = split_command(line);
    let mut keyword = command.to_ascii_lowercase();
    if keyword == "onbuild" {
        keyword = split_command(rest).0.to_ascii_lowercase();
    }
    if !matches!(keyword.as_str(), "run" | "copy" | "add") || !line.contains("<<") {
        return Vec::new();
    }
    let lexer = Lexer { raw_quotes: true, raw_escapes: true, ..Lexer::new('\\') };
    // BuildKit ignores a line it cannot split: such a line has no heredocs.
    let Ok((_, words)) = lexer.process(line, &|_| None) else {
        return Vec::new();
    };
    words.iter().filter_map(|w| parse_heredoc_word(w)).collect()
}

/// BuildKit's `ParseHeredoc`: `[fd]<<[-]word`, where quoting any part of
/// `word` turns off expansion of the body.
pub(crate) fn parse_heredoc_word(word: &str) -> Option<HeredocWord> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (fd, rest) = word.split_at(digits);
    let rest = rest.strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let lexer = Lexer { skip_unset: true, ..Lexer::new('\\') };
    let (_, words) = lexer.process(rest, &|_| None).ok()?;
    let [name] = <[String; 1]>::try_from(words).ok()?;
    let raw = Lexer { raw_quotes: true, ..lexer };
    let (_, raw_words) = raw.process(rest, &|_| None).ok()?;
    let quotes = |s: &str| s.chars().filter(|c| matches!(c, '\'' | '"')).count();
    let expand = raw_words.first().is_some_and(|raw| quotes(raw) == quotes(&name));
    Some(HeredocWord { name, expand, chomp, fd: fd.parse().unwrap_or(0) })
}

/// Reads a heredoc body up to its delimiter line; `next` is the index of the
/// first physical line after the instruction and is advanced past the body.
fn read_heredoc(word: HeredocWord, physical: &[&str], next: &mut usize) -> Result<Heredoc, ErrorKind> {
    let mut content = String::new();
    while let Some(raw) = physical.get(*next) {
        *next += 1;
        let candidate = if word.chomp { raw.trim_start_matches('\t') } else { raw };
        if candidate == word.name {
            if word.chomp {
                content = chomp(&content);
            }
            return Ok(Heredoc { name: word.name, content, expand: word.expand, chomp: word.chomp, fd: word.fd });
        }
        content.push_str(raw);
        content.push('\n');
    }
    Err(ErrorKind::UnterminatedHeredoc(word.name))
}

/// `<<-`: leading tabs go from every line of the body.
fn chomp(content: &str) -> String {
    content.split_inclusive('\n').map(|l| l.trim_start_matches('\t')).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(input: &str) -> Vec<(usize, String)> {
        let lexed = lex(input).unwrap();
        lexed.lines.into_iter().map(|l| (l.line, l.text)).collect()
    }

    #[test]
    fn logical_lines() {
        let cases: &[(&str, &[(usize, &str)])] = &[
            ("FROM a\nRUN b\n", &[(1, "FROM a"), (2, "RUN b")]),
            ("\n\n  # c\n  FROM a  \n", &[(4, "FROM a")]),
            ("RUN a \\\n  b\n", &[(1, "RUN a   b")]),
            ("RUN a\\\nb\\  \nc\n", &[(1, "RUN abc")]),
            ("RUN a \\\n# comment\n\n   \n  b\nRUN c", &[(1, "RUN a   b"), (6, "RUN c")]),
            ("RUN a \\\n  # indented comment\n b\n", &[(1, "RUN a  b")]),
            ("RUN a \\", &[(1, "RUN a")]),
            ("\\\nRUN a\n", &[(1, "RUN a")]),
            ("RUN a\r\nRUN b\r\n", &[(1, "RUN a"), (2, "RUN b")]),
            ("\u{feff}FROM a", &[(1, "FROM a")]),
            ("RUN echo \\\\\n", &[(1, "RUN echo \\")]),
            ("RUN a # not a comment\n", &[(1, "RUN a # not a comment")]),
        ];
        for (input, want) in cases {
            let want: Vec<(usize, String)> = want.iter().map(|(l, t)| (*l, (*t).to_owned())).collect();
            assert_eq!(texts(input), want, "{input:?}");
        }
    }

    #[test]
    fn directives() {
        let lexed = lex("# syntax=docker/dockerfile:1\n# escape=`\nRUN a `\n  b \\\n").unwrap();
        assert_eq!(lexed.escape, '`');
        assert_eq!(lexed.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(lexed.lines[0].text, "RUN a   b \\");
        // Too late: a comment came first, so these are plain comments.
        let late = lex("# hello\n# escape=`\nRUN a `\n").unwrap();
        assert_eq!(late.escape, '\\');
        let after_blank = lex("\n# escape=`\nRUN a\n").unwrap();
        assert_eq!(after_blank.escape, '\\');
        let unknown_first = lex("# foo=bar\n# escape=`\n").unwrap();
        assert_eq!(unknown_first.escape, '\\');
        let spaced = lex("#  ESCAPE = `  \nRUN a\n").unwrap();
        assert_eq!(spaced.escape, '`');
    }

    #[test]
    fn directive_errors() {
        let cases: &[(&str, usize, &str)] = &[
            ("# escape=x\n", 1, "invalid escape token 'x' does not match ` or \\"),
            ("# escape=`\n# escape=\\\n", 2, "only one escape parser directive can be used"),
        ];
        for (input, line, msg) in cases {
            let (got_line, kind) = lex(input).unwrap_err();
            assert_eq!((got_line, kind.to_string().as_str()), (*line, *msg), "{input:?}");
        }
    }

    #[test]
    fn heredoc_words_cases() {
        // (name, expand, chomp, fd)
        type Word = (&'static str, bool, bool, u32);
        let cases: &[(&str, &[Word])] = &[
            ("RUN <<EOF", &[("EOF", true, false, 0)]),
            ("RUN <<-EOT", &[("EOT", true, true, 0)]),
            ("RUN <<\"EOF\"", &[("EOF", false, false, 0)]),
            ("RUN <<'E'OF", &[("EOF", false, false, 0)]),
            ("RUN cat <<A 3<<B > /x", &[("A", true, false, 0), ("B", true, false, 3)]),
            ("COPY --chmod=755 <<a <<b /dst/", &[("a", true, false, 0), ("b", true, false, 0)]),
            ("onbuild run <<X", &[("X", true, false, 0)]),
            ("RUN echo '<<EOF'", &[]),
            ("RUN echo a<<EOF", &[]),
            ("ENV A=<<EOF", &[]),
            ("RUN <<", &[]),
        ];
        for (line, want) in cases {
            let got: Vec<_> = heredoc_words(line).into_iter().map(|h| (h.name, h.expand, h.chomp, h.fd)).collect();
            let want: Vec<_> = want.iter().map(|(n, e, c, f)| ((*n).to_owned(), *e, *c, *f)).collect();
            assert_eq!(got, want, "{line:?}");
        }
    }

    #[test]
    fn heredoc_bodies() {
        let input = "FROM a\nRUN <<EOF\n# not a comment \\\n  echo $A\nEOF\nCOPY <<-X <<Y /d/\n\tone\n\t\ttwo\n\tX\nthree\nY\nRUN after\n";
        let lexed = lex(input).unwrap();
        let lines: Vec<_> = lexed.lines.iter().map(|l| (l.line, l.text.as_str())).collect();
        assert_eq!(lines, [(1, "FROM a"), (2, "RUN <<EOF"), (6, "COPY <<-X <<Y /d/"), (12, "RUN after")]);
        let run = &lexed.lines[1].heredocs;
        assert_eq!(run.len(), 1);
        assert_eq!(run[0].content, "# not a comment \\\n  echo $A\n");
        let copy = &lexed.lines[2].heredocs;
        let bodies: Vec<_> = copy.iter().map(|h| (h.name.as_str(), h.content.as_str())).collect();
        assert_eq!(bodies, [("X", "one\ntwo\n"), ("Y", "three\n")]);
    }

    #[test]
    fn unterminated_heredoc() {
        let err = lex("FROM a\nRUN <<EOF\necho\n").unwrap_err();
        assert_eq!(err, (2, ErrorKind::UnterminatedHeredoc("EOF".into())));
    }
}
