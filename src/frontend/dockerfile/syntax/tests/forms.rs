//! Instruction forms, stages, original text, directives and heredocs.

use super::*;
use std::time::Duration;

#[test]
fn instruction_forms() {
    let cases: Vec<(&str, Instruction)> = vec![
        ("RUN echo hi", Instruction::Run(run(shell("echo hi")))),
        ("run   echo  hi  ", Instruction::Run(run(shell("echo  hi")))),
        ("RUN [\"echo\", \"hi\"]", Instruction::Run(run(exec(&["echo", "hi"])))),
        ("RUN [\"echo\", hi]", Instruction::Run(run(shell("[\"echo\", hi]")))),
        ("RUN [ \"a\" ]  ", Instruction::Run(run(exec(&["a"])))),
        (
            "RUN --mount=type=cache,target=/c --mount=type=secret,id=x --network=none --security=insecure make",
            Instruction::Run(Run {
                mounts: strings(&["type=cache,target=/c", "type=secret,id=x"]),
                network: Some(s("none")),
                security: Some(s("insecure")),
                ..run(shell("make"))
            }),
        ),
        ("COPY a b /dst/", Instruction::Copy(copy(&["a", "b"], "/dst/"))),
        ("COPY [\"a b\", \"/d\"]", Instruction::Copy(copy(&["a b"], "/d"))),
        ("COPY \"a b\" /d", Instruction::Copy(copy(&["\"a", "b\""], "/d"))),
        (
            "COPY --from=build --chown=1:2 --chmod=755 --link --parents --exclude=*.md --exclude=x ./ /app",
            Instruction::Copy(Copy {
                from: Some(s("build")),
                chown: Some(s("1:2")),
                chmod: Some(s("755")),
                link: true,
                parents: true,
                excludes: strings(&["*.md", "x"]),
                ..copy(&["./"], "/app")
            }),
        ),
        ("COPY --link=false a b", Instruction::Copy(copy(&["a"], "b"))),
        ("ADD a.tar.gz /", Instruction::Add(add(&["a.tar.gz"], "/"))),
        (
            "ADD --checksum=sha256:abc --keep-git-dir --unpack=false --chown=u https://x/y /y",
            Instruction::Add(Add {
                checksum: Some(s("sha256:abc")),
                keep_git_dir: true,
                unpack: Some(false),
                chown: Some(s("u")),
                ..add(&["https://x/y"], "/y")
            }),
        ),
        ("ENV A=1 B=\"x y\"", Instruction::Env(kv(&[("A", "1"), ("B", "\"x y\"")]))),
        ("ENV A x  y \"z\"", Instruction::Env(kv(&[("A", "x  y \"z\"")]))),
        ("ENV A=a\\ b C=", Instruction::Env(kv(&[("A", "a\\ b"), ("C", "")]))),
        ("ENV A='$B' C=\"$D\"", Instruction::Env(kv(&[("A", "'$B'"), ("C", "\"$D\"")]))),
        (
            "LABEL \"com.example.a\"=\"b c\" d=e",
            Instruction::Label(kv(&[("\"com.example.a\"", "\"b c\""), ("d", "e")])),
        ),
        ("LABEL version 1.0", Instruction::Label(kv(&[("version", "1.0")]))),
        (
            "ARG A B=2 C=\"x y\"",
            Instruction::Arg(vec![
                ArgDef { name: s("A"), default: None },
                ArgDef { name: s("B"), default: Some(s("2")) },
                ArgDef { name: s("C"), default: Some(s("\"x y\"")) },
            ]),
        ),
        ("WORKDIR /a b", Instruction::Workdir(s("/a b"))),
        ("USER app:app", Instruction::User(s("app:app"))),
        ("STOPSIGNAL SIGKILL", Instruction::StopSignal(s("SIGKILL"))),
        ("MAINTAINER Jane <j@x>", Instruction::Maintainer(s("Jane <j@x>"))),
        ("CMD [\"run\", \"--fast\"]", Instruction::Cmd(exec(&["run", "--fast"]))),
        ("CMD echo $HOME", Instruction::Cmd(shell("echo $HOME"))),
        ("CMD", Instruction::Cmd(shell(""))),
        ("ENTRYPOINT [\"/init\"]", Instruction::Entrypoint(exec(&["/init"]))),
        ("ENTRYPOINT exec app", Instruction::Entrypoint(shell("exec app"))),
        ("EXPOSE 80 443/tcp  $P", Instruction::Expose(strings(&["80", "443/tcp", "$P"]))),
        ("VOLUME /a /b", Instruction::Volume(strings(&["/a", "/b"]))),
        ("VOLUME [\"/a\", \"/b c\"]", Instruction::Volume(strings(&["/a", "/b c"]))),
        ("SHELL [\"/bin/bash\", \"-c\"]", Instruction::Shell(strings(&["/bin/bash", "-c"]))),
        ("HEALTHCHECK NONE", Instruction::Healthcheck(Healthcheck::None)),
        (
            "HEALTHCHECK CMD curl -f http://x/",
            Instruction::Healthcheck(Healthcheck::Check(check(shell("curl -f http://x/")))),
        ),
        (
            "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=0 --start-interval=5s --retries=3 cmd [\"true\"]",
            Instruction::Healthcheck(Healthcheck::Check(HealthcheckCommand {
                interval: Some(Duration::from_secs(30)),
                timeout: Some(Duration::from_secs(90)),
                start_period: Some(Duration::ZERO),
                start_interval: Some(Duration::from_secs(5)),
                retries: Some(3),
                ..check(exec(&["true"]))
            })),
        ),
        (
            "ONBUILD RUN make",
            Instruction::Onbuild(Onbuild {
                expression: s("RUN make"),
                instruction: Box::new(Instruction::Run(run(shell("make")))),
            }),
        ),
        (
            "onbuild copy --from=x a b",
            Instruction::Onbuild(Onbuild {
                expression: s("copy --from=x a b"),
                instruction: Box::new(Instruction::Copy(Copy { from: Some(s("x")), ..copy(&["a"], "b") })),
            }),
        ),
    ];
    for (body, want) in cases {
        assert_eq!(one(body), want, "{body:?}");
    }
}

#[test]
fn stages_and_meta_args() {
    let text = "\
# syntax=docker/dockerfile:1
ARG REG=docker.io TAG
FROM --platform=$BUILDPLATFORM $REG/golang:${TAG} AS Build
RUN go build

FROM scratch
COPY --from=build /out /
";
    let df = parse("Dockerfile", text).unwrap();
    assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(
        df.meta_args,
        vec![
            MetaArg { line: 2, arg: ArgDef { name: s("REG"), default: Some(s("docker.io")) } },
            MetaArg { line: 2, arg: ArgDef { name: s("TAG"), default: None } },
        ]
    );
    let summary: Vec<_> = df
        .stages
        .iter()
        .map(|st| (st.index, st.name.as_deref(), st.base.as_str(), st.platform.as_deref(), st.line, st.steps.len()))
        .collect();
    assert_eq!(
        summary,
        [(0, Some("build"), "$REG/golang:${TAG}", Some("$BUILDPLATFORM"), 3, 1), (1, None, "scratch", None, 6, 1),]
    );
    assert_eq!(df.stages[0].original, "FROM --platform=$BUILDPLATFORM $REG/golang:${TAG} AS Build");
    assert_eq!(df.stages[1].steps[0].line, 7);
}

#[test]
fn original_text_and_lines() {
    let text =
        "FROM a\n\nRUN apt-get update && \\\n    # comment inside\n    apt-get install -y x\nENV A=1 \\\n\n    B=2\n";
    let df = parse("Dockerfile", text).unwrap();
    let got: Vec<_> = df.stages[0].steps.iter().map(|s| (s.line, s.original.as_str())).collect();
    assert_eq!(got, [(3, "RUN apt-get update &&     apt-get install -y x"), (6, "ENV A=1     B=2")]);
    assert_eq!(df.stages[0].steps[1].instruction, Instruction::Env(kv(&[("A", "1"), ("B", "2")])));
}

#[test]
fn escape_directive_backtick() {
    let text = "# escape=`\nFROM windows\nCOPY C:\\src `\n  C:\\dst\nRUN dir C:\\\n";
    let df = parse("Dockerfile", text).unwrap();
    assert_eq!(df.escape, '`');
    let got: Vec<_> = df.stages[0].steps.iter().map(|s| s.instruction.clone()).collect();
    assert_eq!(got, [Instruction::Copy(copy(&["C:\\src"], "C:\\dst")), Instruction::Run(run(shell("dir C:\\"))),]);
}

#[test]
fn heredoc_bodies_are_part_of_the_original_text() {
    let df = parse("Dockerfile", "FROM a\nCOPY <<-A <<B /d/\n\tx\n\tA\ny\nB\nRUN z\n").unwrap();
    let got: Vec<_> = df.stages[0].steps.iter().map(|s| (s.line, s.original.as_str())).collect();
    assert_eq!(got, [(2, "COPY <<-A <<B /d/\nx\nA\ny\nB"), (7, "RUN z")]);
}

#[test]
fn heredoc_instructions() {
    let got = steps(
        "RUN <<EOF\nset -e\necho $A\nEOF\nCOPY <<-\"CONF\" /etc/app.conf\n\tkey=$V\n\tCONF\nONBUILD RUN <<X\nhi\nX",
    );
    let run_doc = Heredoc { name: s("EOF"), content: s("set -e\necho $A\n"), expand: true, chomp: false, fd: 0 };
    let conf = Heredoc { name: s("CONF"), content: s("key=$V\n"), expand: false, chomp: true, fd: 0 };
    let x = Heredoc { name: s("X"), content: s("hi\n"), expand: true, chomp: false, fd: 0 };
    assert_eq!(
        got,
        [
            Instruction::Run(Run { heredocs: vec![run_doc], ..run(shell("<<EOF")) }),
            Instruction::Copy(Copy { heredocs: vec![conf], ..copy(&[], "/etc/app.conf") }),
            Instruction::Onbuild(Onbuild {
                expression: s("RUN <<X\nhi\nX"),
                instruction: Box::new(Instruction::Run(Run { heredocs: vec![x], ..run(shell("<<X")) })),
            }),
        ]
    );
}

#[test]
fn onbuild_triggers_from_an_image() {
    let cases: Vec<(&str, Result<Instruction, &str>)> = vec![
        ("RUN make", Ok(Instruction::Run(run(shell("make"))))),
        ("COPY . /src", Ok(Instruction::Copy(copy(&["."], "/src")))),
        (
            "RUN <<X\nhi\nX",
            Ok(Instruction::Run(Run {
                heredocs: vec![Heredoc { name: s("X"), content: s("hi\n"), expand: true, chomp: false, fd: 0 }],
                ..run(shell("<<X"))
            })),
        ),
        ("FROM x", Err("base:1: FROM isn't allowed as an ONBUILD trigger")),
        ("RUN a\nRUN b", Err("base: ONBUILD trigger is not one instruction: \"RUN a\nRUN b\"")),
        ("COPY a", Err("base:1: COPY requires at least two arguments, but got 1")),
    ];
    for (expression, want) in cases {
        let got = parse_trigger("base", expression).map_err(|e| e.to_string());
        assert_eq!(got, want.map_err(str::to_owned), "{expression:?}");
    }
}

#[test]
fn run_heredoc_forms_follow_buildkit() {
    let form = |text: &str| match &steps(text)[0] {
        Instruction::Run(r) => match r.form() {
            RunForm::Command(CommandLine::Shell(s)) => format!("shell {s:?}"),
            RunForm::Command(CommandLine::Exec(v)) => format!("exec {v:?}"),
            RunForm::Script(h) => format!("script {:?}", h.content),
            RunForm::File(h) => format!("file {} {:?}", h.name, h.content),
        },
        other => panic!("{other:?}"),
    };
    let cases: &[(&str, &str)] = &[
        ("RUN echo hi", r#"shell "echo hi""#),
        ("RUN <<EOT\necho a\necho b\nEOT", r#"script "echo a\necho b\n""#),
        ("RUN <<-'EOT'\n\techo $A\n\tEOT", r#"script "echo $A\n""#),
        ("RUN <<EOT\n#!/bin/sh -e\necho a\nEOT", r##"file EOT "#!/bin/sh -e\necho a\n""##),
        ("RUN cat <<A 3<<B\na\nA\nb\nB", r#"shell "cat <<A 3<<B\na\nA\nb\nB""#),
        ("RUN <<A cat > /a && <<B cat > /b\na\nA\nb\nB", r#"shell "<<A cat > /a && <<B cat > /b\na\nA\nb\nB""#),
        ("RUN <<EOT bash\necho a\nEOT", r#"shell "<<EOT bash\necho a\nEOT""#),
        ("RUN [\"echo\", \"<<X\"]", r#"exec ["echo", "<<X"]"#),
    ];
    for (text, want) in cases {
        assert_eq!(form(text), *want, "{text:?}");
    }
}
