//! Word expansion compared with what Docker does: operators, quotes,
//! escapes, word splitting and errors.

use crate::frontend::dockerfile::syntax::expand::{Lexer, expand_heredoc, expand_word, expand_words};

fn env(name: &str) -> Option<String> {
    let value = match name {
        "A" => "a",
        "B" => "b c",
        "E" => "",
        "P" => "/usr/local/bin",
        "F" => "archive.tar.gz",
        "S" => "  spaced  out ",
        _ => return None,
    };
    Some(value.to_owned())
}

#[test]
fn expand_word_cases() {
    let cases: &[(&str, &str)] = &[
        ("plain", "plain"),
        ("$A", "a"),
        ("${A}", "a"),
        ("x${A}y", "xay"),
        ("$A$A", "aa"),
        ("$UNSET", ""),
        ("${UNSET}", ""),
        ("$", "$"),
        ("a$", "a$"),
        ("$-x", "x"),
        ("$1", ""),
        ("$A.b", "a.b"),
        ("'$A'", "$A"),
        ("\"$A\"", "a"),
        ("\"'$A'\"", "'a'"),
        ("'\"$A\"'", "\"$A\""),
        ("\\$A", "$A"),
        ("\\\\$A", "\\a"),
        ("a\\ b", "a b"),
        ("a\\", "a"),
        ("\\n", "n"),
        ("\"a\\nb\"", "a\\nb"),
        ("\"a\\\"b\"", "a\"b"),
        ("\"\\$A\"", "$A"),
        ("\"a\\\\b\"", "a\\b"),
        ("'a\\b'", "a\\b"),
        ("\"a  b\"", "a  b"),
        ("a  b", "a  b"),
        ("\"\"", ""),
        ("x''y", "xy"),
        ("${A:-x}", "a"),
        ("${E:-x}", "x"),
        ("${UNSET:-x}", "x"),
        ("${A-x}", "a"),
        ("${E-x}", ""),
        ("${UNSET-x}", "x"),
        ("${A:+x}", "x"),
        ("${E:+x}", ""),
        ("${UNSET:+x}", ""),
        ("${A+x}", "x"),
        ("${E+x}", "x"),
        ("${UNSET+x}", ""),
        ("${UNSET:-$A}", "a"),
        ("${UNSET:-${E:-nested}}", "nested"),
        ("${UNSET:-'$A'}", "$A"),
        ("${UNSET:-\"x y\"}", "x y"),
        ("${UNSET:-a\\}b}", "a}b"),
        ("${A:?}", "a"),
        ("${E?msg}", ""),
        ("${F%.gz}", "archive.tar"),
        ("${F%.*}", "archive.tar"),
        ("${F%%.*}", "archive"),
        ("${F#*.}", "tar.gz"),
        ("${F##*.}", "gz"),
        ("${F#nomatch}", "archive.tar.gz"),
        ("${P/local/opt}", "/usr/opt/bin"),
        ("${P//\\//:}", ":usr:local:bin"),
        ("${F/a?/X}", "Xchive.tar.gz"),
        ("${UNSET/a/b}", ""),
    ];
    for (input, want) in cases {
        assert_eq!(expand_word(input, &env, '\\').as_deref(), Ok(*want), "input {input:?}");
    }
}

#[test]
fn backtick_escape() {
    let cases: &[(&str, &str)] =
        &[("`$A", "$A"), ("C:\\dir", "C:\\dir"), ("a` b", "a b"), ("\"`\"\"", "\""), ("\"\\$A\"", "\\a")];
    for (input, want) in cases {
        assert_eq!(expand_word(input, &env, '`').as_deref(), Ok(*want), "input {input:?}");
    }
}

#[test]
fn expand_words_cases() {
    let cases: &[(&str, &[&str])] = &[
        ("a b  c", &["a", "b", "c"]),
        ("  lead trail  ", &["lead", "trail"]),
        ("$B", &["b", "c"]),
        ("\"$B\"", &["b c"]),
        ("x$B", &["xb", "c"]),
        ("$S", &["spaced", "out"]),
        ("'a b' c", &["a b", "c"]),
        ("a\\ b c", &["a b", "c"]),
        ("\"\" x", &["x"]),
        ("$UNSET", &[]),
        ("80/tcp ${UNSET:-443}", &["80/tcp", "443"]),
    ];
    for (input, want) in cases {
        let got = expand_words(input, &env, '\\').unwrap();
        assert_eq!(got, *want, "input {input:?}");
    }
}

#[test]
fn expand_errors() {
    let cases: &[(&str, &str)] = &[
        ("'abc", "unexpected end of statement while looking for matching single-quote"),
        ("\"abc", "unexpected end of statement while looking for matching double-quote"),
        ("${A", "syntax error: missing '}'"),
        ("${A:-x", "syntax error: missing '}'"),
        ("${", "syntax error: missing '}'"),
        ("${}", "syntax error: bad substitution"),
        ("${:-x}", "syntax error: bad substitution"),
        ("${#A}", "unsupported modifier (A) in substitution"),
        ("${A!}", "unsupported modifier (!) in substitution"),
        ("${A:x}", "unsupported modifier (:x) in substitution"),
        ("${A:#x}", "unsupported modifier (:#) in substitution"),
        ("${UNSET?}", "UNSET: is not allowed to be unset"),
        ("${UNSET:?}", "UNSET: is not allowed to be unset"),
        ("${E:?}", "E: is not allowed to be empty"),
        ("${UNSET?set UNSET please}", "UNSET: set UNSET please"),
        ("${P/x", "syntax error: missing '/' in ${}"),
        ("${P/x/y", "syntax error: missing '}'"),
        ("${F%a\\b}", "invalid pattern (a\\b) in substitution: invalid escape '\\b'"),
    ];
    for (input, want) in cases {
        let err = expand_word(input, &env, '\\').unwrap_err();
        assert_eq!(err.to_string(), *want, "input {input:?}");
    }
}

#[test]
fn heredoc_body_keeps_quotes() {
    let got = expand_heredoc("echo '$A' \"$B\" \\$A\n", &env).unwrap();
    assert_eq!(got, "echo 'a' \"b c\" $A\n");
}

#[test]
fn raw_lexer_keeps_quotes_and_escapes() {
    let lexer = Lexer { raw_quotes: true, raw_escapes: true, skip_unset: true, ..Lexer::new('\\') };
    let (_, words) = lexer.process("cat <<\"EOF\" a\\ b $X", &env).unwrap();
    assert_eq!(words, ["cat", "<<\"EOF\"", "a\\ b", "$X"]);
}

/// Cases from BuildKit's own `TestProcessWithMatches`, which pin down the
/// pattern operators; `None` means an error.
#[test]
fn buildkit_pattern_cases() {
    type Vars = &'static [(&'static str, &'static str)];
    let cases: &[(&str, Vars, Option<&str>)] = &[
        ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", &[("FOO", "xxx"), ("BAR", "")], Some("xxx  ccc")),
        ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", &[("FOO", "xxx"), ("BAR", "")], Some("xxx bbb ccc")),
        ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", &[("FOO", "xxx"), ("BAR", "")], Some("aaa bbb ")),
        ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", &[("FOO", "xxx"), ("BAR", "")], Some("aaa  ")),
        ("${VAR:?message here$ARG}", &[("VAR", ""), ("ARG", "x")], None),
        ("${FOO=aaa}", &[("FOO", "xxx")], None),
        ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", &[("FOO", "()[]{}^$.*?|\\x")], Some("x")),
        ("${FOO%%\\**}", &[("FOO", "xx**")], Some("xx")),
        ("${FOO#*x*y}", &[("FOO", "xxyy")], Some("y")),
        ("${FOO#*}", &[("FOO", "xxyy")], Some("xxyy")),
        ("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "x")], Some("xyy")),
        ("${FOO#}", &[("FOO", "xxyy")], Some("xxyy")),
        ("${FOO##*x}", &[("FOO", "xxyy")], Some("yy")),
        ("${FOO#?\\?}", &[("FOO", "???y")], Some("?y")),
        ("${ABC:-.}${FOO%x}${ABC:-.}", &[("FOO", "xxyy")], Some(".xxyy.")),
        ("${FOO%%\\**\\*}", &[("FOO", "a***yy*")], Some("a")),
        (
            "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
            &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", "\\*/")],
            Some("/foo.*/*.txt - /foo..*.txt"),
        ),
        (
            "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
            &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
            Some("/tmp/bar.txt - /bar.txt"),
        ),
        (
            "${FOO/$NEEDLE/$R} - ${FOO//$NEEDLE/$R}",
            &[("FOO", "/a/foo/b/c.txt"), ("NEEDLE", "/?/"), ("R", "/")],
            Some("/foo/b/c.txt - /foo/c.txt"),
        ),
        ("${FOO//\\//\\/}", &[("FOO", "/tmp/foo.txt")], Some("\\/tmp\\/foo.txt")),
        ("${FOO/$BAR/ww}", &[("FOO", "xxyy"), ("BAR", "")], Some("wwxxyy")),
        ("${FOO//ww}", &[("FOO", "xxyy")], None),
        ("${FOO///}", &[("FOO", "xxyy")], Some("xxyy")),
        ("${FOO///}", &[], Some("")),
        (
            "x-${V}.${OS}-${ARCH}${VARIANT:+-${VARIANT}}.tgz",
            &[("V", "1"), ("OS", "linux"), ("ARCH", "arm"), ("VARIANT", "v7")],
            Some("x-1.linux-arm-v7.tgz"),
        ),
    ];
    for (input, vars, want) in cases {
        let lookup = |n: &str| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| (*v).to_owned());
        let got = expand_word(input, &lookup, '\\').ok();
        assert_eq!(got.as_deref(), *want, "{input:?}");
    }
}
