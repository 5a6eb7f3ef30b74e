//! Golden stage digests: fixed projects (git repositories made with the `git` CLI; blob
//! ids depend only on content) and the exact digest of every planned step.
//!
//! If a test here fails, you changed what a digest covers or how it is encoded: every
//! stored stage stops matching. Do it deliberately: bump `CACHE_VERSION`
//! (`src/engine/digest.rs`), update `docs/ARCHITECTURE.md` §7 and the pins below.

use crate::config::{Healthcheck, ImageSpec};
use crate::context::BuildContext;
use crate::frontend::dockerfile::{plan, syntax};
use crate::frontend::image_spec::stage_digest;
use crate::git::Repo;
use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

/// A file of a fixed project: path, content, executable.
type File<'a> = (&'a str, &'a [u8], bool);

/// A repository holding `files` in one commit, and its build context (the root).
fn context(dir: &Path, files: &[File<'_>], links: &[(&str, &str)]) -> BuildContext {
    for (path, content, exec) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(if *exec { 0o755 } else { 0o644 })).unwrap();
    }
    for (path, target) in links {
        symlink(target, dir.join(path)).unwrap();
    }
    for args in [&["init", "-q", "-b", "main"][..], &["add", "-A"], &["commit", "-q", "--no-gpg-sign", "-m", "fixed"]] {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("running git");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let repo = Repo::discover(dir).unwrap();
    let commit = repo.head_commit().unwrap();
    BuildContext::load(&repo, &commit, "", &[], &[]).unwrap()
}

/// Every planned step as `STAGE/NAME DIGEST`, stages in build order.
fn plan_digests(
    ctx: &BuildContext,
    dockerfile: &str,
    build_args: &[(&str, &str)],
    network: Option<&str>,
) -> Vec<String> {
    let df = syntax::parse("Dockerfile", dockerfile).unwrap();
    let build_args: BTreeMap<String, String> = build_args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let input =
        plan::PlanInput { target: None, build_args: &build_args, context: ctx, cache_version: Some("7"), network };
    let plan = plan::plan(df, &input).unwrap();
    let mut out = Vec::new();
    for (index, stage) in &plan.stages {
        for step in &stage.steps {
            out.push(format!("{index}/{} {}", step.name, step.digest));
        }
    }
    out
}

const MULTI_STAGE: &str = r#"ARG BASE=alpine:3.20
FROM ${BASE} AS build
ARG VERSION=1.0
ARG SEARCH=$PATH:/opt
ENV APP_HOME=/app
WORKDIR $APP_HOME
COPY src/ ./src/
RUN --mount=type=bind,source=go.mod,target=/tmp/go.mod \
    --mount=type=cache,target=/root/.cache \
    echo "$VERSION" > version
RUN <<EOF
set -e
echo built > done
EOF

FROM scratch AS final
ARG VERSION
COPY --from=build /app /app
RUN --mount=type=bind,from=build,source=/app,target=/mnt \
    --mount=type=cache,from=build,source=/app/src,target=/cache \
    --network=none cp /mnt/version /version
ENV PATH=/app
"#;

/// (a) Two stages: meta ARG, ARG (one deferred to the image's env), ENV, WORKDIR,
/// COPY, RUN with bind and cache mounts, a heredoc, COPY --from, RUN --network.
#[test]
fn multi_stage_dockerfile() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = context(
        tmp.path(),
        &[
            ("go.mod", b"module example.com/app\n", false),
            ("src/main.go", b"package main\n\nfunc main() {}\n", false),
            ("src/build.sh", b"#!/bin/sh\necho build\n", true),
        ],
        &[("src/current", "main.go")],
    );
    let digests = plan_digests(&ctx, MULTI_STAGE, &[("VERSION", "2.0")], None);
    assert_eq!(
        digests,
        [
            "0/1-FROM 0e0a74cc190b6fe9e93c74ba0ae50c07da5bf57af0a384335c47691e",
            "0/2-ARG c1880a7b9db97d463c4c2f73d10b963c84fd8cf4c0c97ce3c5dd635a",
            "0/3-ARG f0a9a695df959b4a5c1d1c8fa44d720ab0e0a7e5aa8ed920749f7b5e",
            "0/4-ENV c04904c19aba8bc8c60f42def4d2bf3ced52e8e7b2dfeab7afe5da14",
            "0/5-WORKDIR 0ce9e320e5589ddb324d87798f4248b547b6c6e29ef508f7730c7fee",
            "0/6-COPY 8576a3075f88428a632d1d526b4cff188a2ac57226a42bf45213ba0d",
            "0/7-RUN 36aa6700b1a502a8dc74106ff9848b53acc802ec6fd72a176f421c37",
            "0/8-RUN 918df9a18f1fc5e521462c3f59e90fba32b96d4940d38f4c31bdb6ab",
            "1/1-FROM d363b017a22242e649c97c06d7c5deee55c21b51ae61ddbdc7bbe4b9",
            "1/2-ARG b186d41bf5156d35bba389416af924c3cd8617cd52bbecb9e788cae9",
            "1/3-COPY 9ff7e1af20a43b4cfde7c584d84166ed8f70649d5702cd6a0b220fe1",
            "1/4-RUN 3b13d74e4141a420895f32ce28a05b0946748830ff5d908a527767c0",
            "1/5-ENV 9697995f99daaba2a074c819309382de3211bf3823bde58eca1e6a9f",
        ]
    );
    // werf.yaml `network` reaches the RUN steps without `--network`, not the steps before.
    let none = plan_digests(&ctx, MULTI_STAGE, &[("VERSION", "2.0")], Some("none"));
    assert_eq!(none[..6], digests[..6]);
    assert_ne!(none[6], digests[6]);
}

const ARCHIVE_AND_DIR: &str = r#"FROM alpine:3.20
ADD files.tar.gz /opt/
ADD --chown=1:1 notes.txt /opt/
COPY dir/ /dir/
COPY *.txt /txt/
RUN cat /txt/readme.txt
"#;

/// (b) ADD of an archive (planning never reads content: any bytes do) and COPY of a
/// directory and of a wildcard, with `.dockerignore` dropping files and emptying a
/// directory.
#[test]
fn archive_and_dockerignore() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = context(
        tmp.path(),
        &[
            (".dockerignore", b"**/*.tmp\ndir/secret\n", false),
            ("files.tar.gz", b"\x1f\x8b\x08\x00fixed bytes", false),
            ("notes.txt", b"notes\n", false),
            ("readme.txt", b"readme\n", false),
            ("dir/a.conf", b"a=1\n", false),
            ("dir/run.sh", b"#!/bin/sh\n", true),
            ("dir/secret", b"hunter2\n", false),
            ("dir/cache/x.tmp", b"tmp\n", false),
        ],
        &[("dir/link", "a.conf")],
    );
    let paths: Vec<&str> = ctx.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [".dockerignore", "dir/a.conf", "dir/link", "dir/run.sh", "files.tar.gz", "notes.txt", "readme.txt"]
    );
    assert_eq!(ctx.empty_dirs, ["dir/cache"]);
    assert_eq!(ctx.checksum(&["dir".to_string()]), "661c1005bce0da5d3b6b3d12703cb0b8cce9fb2f5f3c28ea084294c9");
    assert_eq!(ctx.checksum(&[String::new()]), "ce38648651d5cc020c10fb96c8254786e996b5ad568aef4089d9e425");
    assert_eq!(
        plan_digests(&ctx, ARCHIVE_AND_DIR, &[], Some("host")),
        [
            "0/1-FROM 0e0a74cc190b6fe9e93c74ba0ae50c07da5bf57af0a384335c47691e",
            "0/2-ADD 6bdecc1355abe9dc5a9f643559e9938d7939aa555a03bc2eb75412fa",
            "0/3-ADD 875dbff10f28fd9cd50dba303e9b6ad0eee9201d6ff493e5edf2a9fb",
            "0/4-COPY 3c5f8d6ddf363752ee73af22fb40c8cf2d3f988b7e3d4ca225e41a71",
            "0/5-COPY aba39e6202b55f90864c64aed434884c3b68d5156a3917183821888c",
            "0/6-RUN ac79e7f0bba63c6a7c8aff9fbbdbcf4cf5e6ef68ed5bc171cdd06870",
        ]
    );
}

/// (c) The imageSpec stage of a fixed spec after a fixed previous stage.
#[test]
fn image_spec_stage() {
    let spec = ImageSpec {
        author: Some("Team <team@example.com>".into()),
        clear_history: true,
        remove_labels: vec!["/^org\\.opencontainers\\./".into()],
        labels: [("app".to_string(), "%project%/%image%".to_string()), ("tier".to_string(), "web".to_string())].into(),
        env: [("PATH".to_string(), "${PATH}:/app/bin".to_string()), ("MODE".to_string(), "prod".to_string())].into(),
        expose: vec!["80".into(), "443/tcp".into()],
        entrypoint: Some(vec!["/app/bin/serve".into()]),
        healthcheck: Some(Healthcheck { test: vec!["CMD".into(), "true".into()], interval: 30, ..Default::default() }),
        ..Default::default()
    };
    let prev = "0".repeat(56);
    assert_eq!(stage_digest(&prev, &spec), "7642d06322f1975ea0dd712073a3b59d5484c15ae7045888f585b748");
    assert_eq!(stage_digest(&prev, &ImageSpec::default()), "d538c711fd42d3e3050d0065fbe4e00b23a8e243f380d1bc8cb2ced8");
}
