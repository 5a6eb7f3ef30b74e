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
        crate::git::tests::git(dir, args);
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
    let input = plan::PlanInput {
        target: None,
        build_args: &build_args,
        context: ctx,
        cache_version: Some("7"),
        network,
        download_dir: std::path::Path::new("/nonexistent"),
        add_host: &[],
    };
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
            "0/1-FROM c5d5306784aac70a5d30d59e022d8debeda0ca5b690a35f93c908312",
            "0/2-ARG c1378b7d2af876dde224fd0857aff3f4515706f98c79b41ccca2785a",
            "0/3-ARG d59261445fff7850c433c97b84b971ded81692e554927ece1e8cc4a6",
            "0/4-ENV 8b43d104a8a6371a31af5132160e542d76258ed39112c32f305d95a2",
            "0/5-WORKDIR 3003c75a50f2a468d897bfa776cfd42345cac54d32bd19493ec248ed",
            "0/6-COPY 4a6145b2cde69c8746fa0c869ed34e2c3da9a0a941506150bc35f5a0",
            "0/7-RUN c168086e3ddce392ca83dd181fdd470a4028fa7fb3ee7b56b44b3fe2",
            "0/8-RUN 13d81479f9c53a6b8b3ab146461dd8409078b8a982826d4418c63195",
            "1/1-FROM f7a918586dbd5a679d875353e3c626802ae3e9f49ce795300e32446e",
            "1/2-ARG 8b9fb2af9a871af677dea56887a573ede92711f5c7ba3cd1029778c0",
            "1/3-COPY 2edd767a4c6061fb7ac1cf0bad72c02edc14057bba7db2dcb48fba04",
            "1/4-RUN 60e93404022c60688611e6d0d838e5fb41cee816bc02e8fa52d1b5ca",
            "1/5-ENV f57c7d48c51d0b19551532b317506470d65bf8b32eefd2b83002b952",
        ]
    );
    // werf.yaml `network` reaches the FROM steps (ONBUILD RUN triggers run there), so
    // every step; `default` is what no `network` means.
    let none = plan_digests(&ctx, MULTI_STAGE, &[("VERSION", "2.0")], Some("none"));
    assert!(none.iter().zip(&digests).all(|(a, b)| a != b));
    assert_eq!(plan_digests(&ctx, MULTI_STAGE, &[("VERSION", "2.0")], Some("default")), digests);
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
            "0/1-FROM 49eb5539c0f130fd8d8b923ffd2c2eb096132df96fdf940391ded7d6",
            "0/2-ADD 38f14c7da7e3e8ff0633d46f5ade68ef93bbd6fa43cc00b27a921170",
            "0/3-ADD 4f94f7466a9114da1098e1a08af630951151aeb07643eee0e586c3a4",
            "0/4-COPY 19e6244df9c2955018463cf3daf086adb025d6b6fe72ab480b55a7fe",
            "0/5-COPY 1c9d748d4416cbbf3b1efdbbe272ea28e89654391c595d07febb7c9b",
            "0/6-RUN 80f58203c37cd69ac2d8d08fea269596502a6ca87976d3cd42d64896",
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

/// `--exclude`: a change to an excluded file keeps the COPY's digest, a change to a
/// copied one does not; `--parents` digests what its pattern selects below the pivot.
#[test]
fn excluded_files_do_not_change_the_digest() {
    let copy_digest = |files: &[File<'_>], dockerfile: &str| {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = context(tmp.path(), files, &[]);
        plan_digests(&ctx, dockerfile, &[], None).pop().unwrap()
    };
    let df = "FROM scratch\nCOPY --exclude=*.png a /d/\n";
    let base = copy_digest(&[("a/x.txt", b"1", false), ("a/y.png", b"1", false)], df);
    assert_eq!(base, copy_digest(&[("a/x.txt", b"1", false), ("a/y.png", b"2", false)], df));
    assert_ne!(base, copy_digest(&[("a/x.txt", b"2", false), ("a/y.png", b"1", false)], df));

    let df = "FROM scratch\nCOPY --parents ./a/./x.txt /d/\n";
    let base = copy_digest(&[("a/x.txt", b"1", false), ("a/y.png", b"1", false)], df);
    assert_eq!(base, copy_digest(&[("a/x.txt", b"1", false), ("a/y.png", b"2", false)], df));
    assert_ne!(base, copy_digest(&[("a/x.txt", b"2", false), ("a/y.png", b"1", false)], df));
}
