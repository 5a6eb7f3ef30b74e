//! Build-time use: expanding instructions, meta ARGs, targets and stage
//! dependencies.

use super::*;

fn env(name: &str) -> Option<String> {
    let v = match name {
        "A" => "a",
        "SP" => "x y",
        "PORTS" => "80 443",
        "ID" => "1000",
        "EMPTY" => "",
        _ => return None,
    };
    Some(s(v))
}

#[test]
fn expand_instruction_fields() {
    let cases: Vec<(&str, Instruction)> = vec![
        ("ENV B=\"$A b\" C='$A' D=\\$A", Instruction::Env(kv(&[("B", "a b"), ("C", "$A"), ("D", "$A")]))),
        ("ENV B x \"y  z\" $A", Instruction::Env(kv(&[("B", "x y  z a")]))),
        ("ENV $A=1", Instruction::Env(kv(&[("a", "1")]))),
        ("LABEL \"k\"=\"${SP}\"", Instruction::Label(kv(&[("k", "x y")]))),
        (
            "ARG X=${A:-d} Y",
            Instruction::Arg(vec![
                ArgDef { name: s("X"), default: Some(s("a")) },
                ArgDef { name: s("Y"), default: None },
            ]),
        ),
        ("WORKDIR /src/${A}", Instruction::Workdir(s("/src/a"))),
        ("WORKDIR \"/a b/$A\"", Instruction::Workdir(s("/a b/a"))),
        ("USER ${ID}:${GID:-${ID}}", Instruction::User(s("1000:1000"))),
        ("STOPSIGNAL ${SIG:-SIGTERM}", Instruction::StopSignal(s("SIGTERM"))),
        ("EXPOSE $PORTS 8080/udp", Instruction::Expose(strings(&["80", "443", "8080/udp"]))),
        ("EXPOSE \"$PORTS\"", Instruction::Expose(strings(&["80 443"]))),
        ("VOLUME /data/$A", Instruction::Volume(strings(&["/data/a"]))),
        (
            "COPY --from=$A --chown=$ID:$ID --chmod=${MODE:-644} --exclude=$A.tmp $A/*.txt ${EMPTY:-/d}/",
            Instruction::Copy(Copy {
                from: Some(s("a")),
                chown: Some(s("1000:1000")),
                chmod: Some(s("644")),
                excludes: strings(&["a.tmp"]),
                ..copy(&["a/*.txt"], "/d/")
            }),
        ),
        (
            "ADD --checksum=${SUM:-sha256:0} [\"$A\", \"/x\"]",
            Instruction::Add(Add { checksum: Some(s("sha256:0")), ..add(&["a"], "/x") }),
        ),
        ("RUN echo $A", Instruction::Run(run(shell("echo $A")))),
        ("CMD [\"$A\"]", Instruction::Cmd(exec(&["$A"]))),
        ("SHELL [\"$A\"]", Instruction::Shell(strings(&["$A"]))),
        ("MAINTAINER $A", Instruction::Maintainer(s("$A"))),
    ];
    for (body, want) in cases {
        let got = expand_instruction(&one(body), &env, '\\').unwrap_or_else(|e| panic!("{body:?}: {e}"));
        assert_eq!(got, want, "{body:?}");
    }
}

#[test]
fn expand_heredoc_sources_only_when_unquoted() {
    let got = steps("COPY <<A <<'B' /d/\n$A\nA\n$A\nB");
    let expanded: Vec<_> = match expand_instruction(&got[0], &env, '\\').unwrap() {
        Instruction::Copy(c) => c.heredocs.into_iter().map(|h| (h.name, h.content)).collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(expanded, [(s("A"), s("a\n")), (s("B"), s("$A\n"))]);
}

#[test]
fn expand_run_mount_values_only() {
    let got = one("RUN --mount=type=bind,source=${A:?},target=/m/$ID,from=$A --mount=type=cache,target=/c echo $A");
    let Instruction::Run(r) = expand_instruction(&got, &env, '\\').unwrap() else { panic!() };
    assert_eq!(r.mounts, strings(&["type=bind,source=a,target=/m/1000,from=a", "type=cache,target=/c"]));
    assert_eq!(r.command, shell("echo $A"));
    let err = expand_instruction(&one("RUN --mount=source=${NOPE:?},target=/m true"), &env, '\\').unwrap_err();
    assert_eq!(err.to_string(), "failed to process \"${NOPE:?}\": NOPE: is not allowed to be unset");
}

#[test]
fn expand_errors_have_location() {
    let df = parse("Dockerfile", "FROM a\nRUN x\nWORKDIR ${A\nCOPY '$A b /\n").unwrap();
    let steps = &df.stages[0].steps;
    let err = df.expand_step(&steps[1], &env).unwrap_err();
    assert_eq!(err.to_string(), "Dockerfile:3: failed to process \"${A\": syntax error: missing '}'");
    let err = df.expand_step(&steps[2], &env).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Dockerfile:4: failed to process \"'$A\": unexpected end of statement while looking for matching single-quote"
    );
    let err = expand_instruction(&one("WORKDIR ${NOPE:?must be set}"), &env, '\\').unwrap_err();
    assert_eq!(err.to_string(), "failed to process \"${NOPE:?must be set}\": NOPE: must be set");
}

const MULTI: &str = "\
ARG BASE=alpine
ARG V
FROM ${BASE}:${V:-3.20} AS base
FROM base AS deps
RUN --mount=type=cache,target=/c --mount=type=bind,from=tools,target=/t true
FROM golang AS tools
FROM deps AS build
COPY --from=0 /a /a
FROM build AS unused
FROM scratch
COPY --from=build /out /
COPY --from=busybox:latest /bin/sh /sh
";

#[test]
fn meta_args_and_from_expansion() {
    let df = parse("Dockerfile", MULTI).unwrap();
    let mut builtins = MetaArgs::new();
    builtins.define("TARGETARCH", Some(s("amd64")));
    let build_args = |n: &str| (n == "V").then(|| s("3.19"));
    let meta = df.resolve_meta_args(builtins, &build_args).unwrap();
    let vars: Vec<_> = meta.iter().collect();
    assert_eq!(vars, [("TARGETARCH", Some("amd64")), ("BASE", Some("alpine")), ("V", Some("3.19"))]);
    let from = df.expand_from(0, &meta).unwrap();
    assert_eq!(from, ExpandedFrom { base: s("alpine:3.19"), platform: None, stage: None });
    let from = df.expand_from(1, &meta).unwrap();
    assert_eq!(from, ExpandedFrom { base: s("base"), platform: None, stage: Some(0) });

    // Declared without a value: empty, not unset, so `:-` applies.
    let meta = df.resolve_meta_args(MetaArgs::new(), &|_| None).unwrap();
    assert_eq!(meta.get("V"), Some(None));
    assert_eq!(df.expand_from(0, &meta).unwrap().base, "alpine:3.20");

    let blank = parse("Dockerfile", "ARG B\nFROM $B\n").unwrap();
    let meta = blank.resolve_meta_args(MetaArgs::new(), &|_| None).unwrap();
    assert_eq!(
        blank.expand_from(0, &meta).unwrap_err().to_string(),
        "Dockerfile:2: base name ($B) should not be blank"
    );
}

#[test]
fn targets_and_dependencies() {
    let df = parse("Dockerfile", MULTI).unwrap();
    let meta = df.resolve_meta_args(MetaArgs::new(), &|_| None).unwrap();
    assert_eq!(df.stage_by_target(None).unwrap(), 5);
    assert_eq!(df.stage_by_target(Some("BUILD")).unwrap(), 3);
    assert_eq!(
        df.stage_by_target(Some("nope")).unwrap_err().to_string(),
        "Dockerfile: target stage \"nope\" could not be found"
    );
    let cases: &[(usize, &[usize], &[usize])] = &[
        // (target, direct, all needed)
        (5, &[3], &[0, 1, 2, 3, 5]),
        (3, &[0, 1], &[0, 1, 2, 3]),
        (1, &[0, 2], &[0, 1, 2]),
        (2, &[], &[2]),
        (4, &[3], &[0, 1, 2, 3, 4]),
    ];
    for (target, direct, all) in cases {
        assert_eq!(df.direct_dependencies(*target, &meta).unwrap(), *direct, "{target}");
        assert_eq!(df.dependencies(*target, &meta).unwrap(), *all, "{target}");
    }
    // Build order puts `tools` (2) before `deps` (1), which mounts it.
    assert_eq!(df.build_order(5, &meta).unwrap(), [0, 2, 1, 3, 5]);
    assert_eq!(df.resolve_from("busybox:latest"), Ok(StageRef::Image(s("busybox:latest"))));
    assert_eq!(df.resolve_from("9"), Err(ErrorKind::InvalidStageIndex(9)));
}

#[test]
fn copy_from_names_stages_through_stage_and_meta_args() {
    let body = "ARG M=one\nFROM a AS one\nFROM a AS two\nFROM a AS three\nFROM a\n\
                ARG L=two N=${L}x\nCOPY --from=$M /a /a\nCOPY --from=${L} /b /b\nARG T=three\n\
                RUN --mount=from=$T,target=/t true\n";
    let df = parse("Dockerfile", body).unwrap();
    let meta = df.resolve_meta_args(MetaArgs::new(), &|_| None).unwrap();
    assert_eq!(df.direct_dependencies(3, &meta).unwrap(), [0, 1, 2]);
}

#[test]
fn circular_dependency() {
    let df = parse("Dockerfile", "FROM b AS a\nFROM a AS b\n").unwrap();
    let err = df.dependencies(1, &MetaArgs::new()).unwrap_err();
    assert_eq!(err.to_string(), "Dockerfile:2: circular dependency detected on stage b");
}
