//! Malformed Dockerfiles: one-line messages naming file and line.

use super::*;

#[test]
fn errors_name_file_and_line() {
    let cases: &[(&str, &str)] = &[
        ("", "Dockerfile: file with no instructions"),
        ("# just a comment\n\n", "Dockerfile: file with no instructions"),
        ("ARG A=1\n", "Dockerfile: no FROM instruction in the file"),
        ("\nRUN echo\n", "Dockerfile:2: no FROM instruction before RUN"),
        ("ARG X\nENV A=1\n", "Dockerfile:2: no FROM instruction before ENV"),
        ("FROM a\n\n\n\n\n\nRUNN x\n", "Dockerfile:7: unknown instruction \"RUNN\""),
        ("FROM a\nCOPY \\\n  onlyone\n", "Dockerfile:2: COPY requires at least two arguments, but got 1"),
        ("FROM a\nADD\n", "Dockerfile:2: ADD requires at least two arguments, but got 0"),
        ("FROM a\nCOPY --form=x a b\n", "Dockerfile:2: unknown flag --form for COPY"),
        ("FROM a\nADD --from=x a b\n", "Dockerfile:2: unknown flag --from for ADD"),
        ("FROM a\nENV --x=1 A=b\n", "Dockerfile:2: unknown flag --x for ENV"),
        ("FROM a\nCOPY --chown a b\n", "Dockerfile:2: missing a value on flag --chown"),
        ("FROM a\nCOPY --link=maybe a b\n", "Dockerfile:2: expecting boolean value for flag --link, not: maybe"),
        ("FROM a\nCOPY --from=a --from=b a b\n", "Dockerfile:2: duplicate flag --from"),
        ("FROM a\nSHELL /bin/sh -c\n", "Dockerfile:2: SHELL requires the arguments to be in JSON form"),
        ("FROM a\nSHELL []\n", "Dockerfile:2: SHELL requires at least one argument"),
        (
            "FROM a\nRUN [\"a\", 1]\n",
            "Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only",
        ),
        ("FROM\n", "Dockerfile:1: FROM requires either one or three arguments"),
        ("FROM a AS\n", "Dockerfile:1: FROM requires either one or three arguments"),
        (
            "FROM a AS 1st\n",
            "Dockerfile:1: invalid name for build stage: \"1st\", name can't start with a number or contain symbols",
        ),
        ("FROM a AS x\nFROM b AS X\n", "Dockerfile:2: duplicate stage name \"x\""),
        ("FROM --platfrom=x a\n", "Dockerfile:1: unknown flag --platfrom for FROM"),
        ("FROM a\nENV\n", "Dockerfile:2: ENV requires at least one argument"),
        ("FROM a\nENV A\n", "Dockerfile:2: ENV must have two arguments"),
        ("FROM a\nENV A=1 B\n", "Dockerfile:2: can't find = in \"B\", must be of the form name=value"),
        ("FROM a\nLABEL =x\n", "Dockerfile:2: LABEL names can not be blank"),
        ("FROM a\nARG\n", "Dockerfile:2: ARG requires at least one argument"),
        ("FROM a\nWORKDIR\n", "Dockerfile:2: WORKDIR requires exactly one argument"),
        ("FROM a\nUSER\n", "Dockerfile:2: USER requires exactly one argument"),
        ("FROM a\nEXPOSE\n", "Dockerfile:2: EXPOSE requires at least one argument"),
        ("FROM a\nVOLUME [\"\"]\n", "Dockerfile:2: VOLUME specified can not be an empty string"),
        ("FROM a\nHEALTHCHECK NONE x\n", "Dockerfile:2: HEALTHCHECK NONE takes no arguments"),
        ("FROM a\nHEALTHCHECK CMD\n", "Dockerfile:2: missing command after HEALTHCHECK CMD"),
        ("FROM a\nHEALTHCHECK RUN x\n", "Dockerfile:2: unknown type \"RUN\" in HEALTHCHECK (try CMD)"),
        ("FROM a\nHEALTHCHECK --interval=5 CMD x\n", "Dockerfile:2: --interval: missing unit in duration \"5\""),
        ("FROM a\nHEALTHCHECK --timeout=10us CMD x\n", "Dockerfile:2: --timeout cannot be less than 1ms"),
        (
            "FROM a\nHEALTHCHECK --retries=-1 CMD x\n",
            "Dockerfile:2: --retries must be a non-negative integer, not \"-1\"",
        ),
        ("FROM a\nONBUILD ONBUILD RUN x\n", "Dockerfile:2: chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("FROM a\nONBUILD FROM b\n", "Dockerfile:2: FROM isn't allowed as an ONBUILD trigger"),
        ("FROM a\nONBUILD maintainer me\n", "Dockerfile:2: MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("FROM a\nONBUILD\n", "Dockerfile:2: ONBUILD requires at least one argument"),
        ("FROM a\nONBUILD RUNN x\n", "Dockerfile:2: unknown instruction \"RUNN\""),
        ("FROM a\nRUN <<EOF\nno end\n", "Dockerfile:2: unterminated heredoc \"EOF\""),
        ("FROM a\nCOPY a <<EOF\nx\nEOF\n", "Dockerfile:2: COPY cannot have a heredoc as a destination"),
        ("# escape=x\nFROM a\n", "Dockerfile:1: invalid escape token 'x' does not match ` or \\"),
    ];
    for (text, want) in cases {
        let err = parse("Dockerfile", text).unwrap_err();
        assert_eq!(err.to_string(), *want, "{text:?}");
    }
}

/// `${A:-${A:-…}}` 20,000 deep: a clean error naming file and line, not a stack
/// overflow; 64 levels still expand.
#[test]
fn deeply_nested_substitutions_fail_cleanly() {
    let nested = |depth: usize| format!("{}x{}", "${A:-".repeat(depth), "}".repeat(depth));
    let too_deep = "variable substitutions nested more than 64 deep";
    let hostile = nested(20_000);
    let df = parse("Dockerfile", &format!("ARG X={hostile}\nFROM scratch\nARG Y=\"{hostile}\"\n")).unwrap();
    let err = df.resolve_meta_args(MetaArgs::new(), &|_| None).unwrap_err();
    let shown = format!("{}…", &hostile[..80]);
    assert_eq!(err.to_string(), format!("Dockerfile:1: failed to process \"{shown}\": {too_deep}"));
    let step = &df.stages[0].steps[0].instruction;
    let err = expand_instruction(step, &|_| None, '\\').unwrap_err();
    assert_eq!(err.to_string(), format!("failed to process \"\"{}…\": {too_deep}", &hostile[..79]));
    let quoted = format!("{}x{}", "${A:-\"".repeat(20_000), "\"}".repeat(20_000));
    assert_eq!(expand_word(&quoted, &|_| None, '\\'), Err(ExpandError::TooDeep));
    let replaced = format!("{}x{}", "${A/".repeat(20_000), "/r}".repeat(20_000));
    assert_eq!(expand_word(&replaced, &|_| Some("a".to_owned()), '\\'), Err(ExpandError::TooDeep));
    assert_eq!(expand_word(&nested(64), &|_| None, '\\').as_deref(), Ok("x"));
    assert_eq!(expand_word(&nested(65), &|_| None, '\\'), Err(ExpandError::TooDeep));
}

/// `ENV A=$A$A` doubles a value per line and `${A//?/$A}` squares it: one word's
/// substitutions stop at 1 MiB.
#[test]
fn substitution_output_is_bounded() {
    let big = "a".repeat(600 << 10);
    let lookup = |n: &str| (n == "A").then(|| big.clone());
    assert_eq!(expand_word("$A", &lookup, '\\').map(|s| s.len()), Ok(big.len()));
    assert_eq!(expand_word("$A$A", &lookup, '\\'), Err(ExpandError::TooLong));
    assert_eq!(expand_word("${A//?/$A}", &lookup, '\\'), Err(ExpandError::TooLong));
    let df = parse("Dockerfile", "FROM scratch\nENV B=\"$A$A\"\n").unwrap();
    let err = expand_instruction(&df.stages[0].steps[0].instruction, &lookup, '\\').unwrap_err();
    assert_eq!(err.to_string(), "failed to process \"\"$A$A\"\": variable substitutions produce more than 1024 KiB");
}
