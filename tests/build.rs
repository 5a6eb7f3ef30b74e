//! Building werf projects end to end as the unprivileged user, against the real registry.

use crate::common::{
    Env, git, git_project, processes_mentioning, registry, rootless_env, run_ok, ssh_add_tools, ssh_env, stderr,
    stdout, write,
};

const WERF_YAML: &str =
    "project: demo\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\nargs:\n  GREETING: hello-from-werf\n";

fn dockerfile(reg: &str) -> String {
    format!(
        r#"FROM {reg}/base/busybox:latest
ARG GREETING=default
RUN mkdir -p /data/old/sub && echo old > /data/old/sub/f && echo gone > /data/gone.txt && echo keep > /data/keep.txt
RUN rm -r /data/old && rm /data/gone.txt \
 && ln /data/keep.txt /data/hard.txt && ln -s /data/keep.txt /data/sym.txt \
 && echo "$GREETING" > /data/greeting && chown 1000:1000 /data/keep.txt
COPY --chown=app:app src/ /app/
USER app
WORKDIR /app/work
RUN echo "made by $(id -u):$(id -g) in $(pwd)" > out.txt
CMD ["/bin/sh", "-c", "echo default command"]
"#
    )
}

const INSPECT: &str = "pwd && id -u && cd /data && ls -a && stat -c '%n %u:%g %h %F' * && cat greeting && ls -a /app && stat -c '%n %u:%g %a' /app/hello.txt /app/bin/tool.sh && cat /app/work/out.txt";

const EXPECTED: &str = "\
/app/work
1000
.
..
greeting
hard.txt
keep.txt
sym.txt
greeting 0:0 1 regular file
hard.txt 1000:1000 2 regular file
keep.txt 1000:1000 2 regular file
sym.txt 0:0 1 symbolic link
hello-from-werf
.
..
bin
hello.txt
work
/app/hello.txt 1000:1000 644
/app/bin/tool.sh 1000:1000 755
made by 1000:1000 in /app/work
";

#[test]
fn builds_runs_and_rebuilds_from_cache() {
    build_run_rebuild("builds_runs_and_rebuilds_from_cache", Env::new());
}

/// The same project with layers copied instead of mounted (`vfs`, the fallback where
/// overlayfs cannot be mounted): the same image content must come out.
#[test]
fn builds_with_the_vfs_driver() {
    build_run_rebuild("builds_with_the_vfs_driver", Env::new().with_var("WERF_BUILDAH_STORAGE_DRIVER", "vfs"));
}

/// The same project with steps run by runc (`WERF_BUILDAH_MODE=native-rootless`).
#[test]
fn builds_with_runc_isolation() {
    build_run_rebuild("builds_with_runc_isolation", Env::new().with_var("WERF_BUILDAH_MODE", "native-rootless"));
}

/// The same project with steps run by crun (`BUILDAH_RUNTIME=crun`; on this hybrid-cgroup
/// host crun needs the cgroup v2 mount hidden and its cgroup manager off).
#[test]
fn builds_with_crun_isolation() {
    build_run_rebuild(
        "builds_with_crun_isolation",
        Env::new().with_var("WERF_BUILDAH_MODE", "native-rootless").with_var("BUILDAH_RUNTIME", "crun"),
    );
}

fn build_run_rebuild(test: &str, env: Env) {
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else {
        return;
    };
    let dir = env.path().join("project");
    git_project(
        &dir,
        &[
            ("werf.yaml", WERF_YAML),
            ("Dockerfile", &dockerfile(&reg)),
            ("src/hello.txt", "hello\n"),
            ("src/bin/tool.sh", "#!/bin/sh\necho tool\n"),
        ],
        &[("src/untracked.txt", "not committed\n")],
    );
    std::process::Command::new("chmod").arg("+x").arg(dir.join("src/bin/tool.sh")).status().unwrap();
    git(&dir, &["add", "-A", "src/bin/tool.sh"]);
    git(&dir, &["commit", "-q", "-m", "exec bit"]);
    let report = env.path().join("report.json");

    let out = run_ok(
        env.slipway()
            .args(["build", "--insecure-registry", "--dir"])
            .arg(&dir)
            .arg("--save-build-report")
            .arg("--build-report-path")
            .arg(&report),
    );
    let log = stdout(&out);
    assert!(log.contains("built in"), "{log}");
    assert!(stderr(&out).contains("src/untracked.txt"), "no warning about the uncommitted file:\n{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["Images"]["app"]["Rebuilt"], true, "{r}");
    let name = r["Images"]["app"]["DockerImageName"].as_str().unwrap().to_string();
    assert!(name.starts_with("demo:") && name.len() == "demo:".len() + 56 + 1 + 13, "{name}");

    let out = run_ok(
        env.slipway()
            .args(["run", "app", "--insecure-registry", "--dir"])
            .arg(&dir)
            .args(["--", "/bin/sh", "-c", INSPECT]),
    );
    assert_eq!(stdout(&out), EXPECTED, "stderr:\n{}", stderr(&out));
    let out = run_ok(env.slipway().args(["run", "--dir"]).arg(&dir));
    assert_eq!(stdout(&out), "default command\n");

    // Nothing changed: no step runs, the same image comes out, no registry needed.
    let out = run_ok(
        env.slipway()
            .args(["build", "--dir"])
            .arg(&dir)
            .arg("--save-build-report")
            .arg("--build-report-path")
            .arg(&report),
    );
    let log = stdout(&out);
    assert!(!log.contains("built in"), "a step ran on a cached rebuild:\n{log}");
    assert_eq!(log.matches("cached").count(), 9, "{log}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["Images"]["app"]["Rebuilt"], false, "{r}");
    assert_eq!(r["Images"]["app"]["DockerImageName"], name.as_str());

    // A committed change to a copied file rebuilds from the COPY on.
    write(&dir, "src/hello.txt", "changed\n");
    git(&dir, &["commit", "-q", "-am", "change"]);
    let out = run_ok(env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&dir));
    let log = stdout(&out);
    assert_eq!(log.matches("cached").count(), 4, "{log}");
    assert_eq!(log.matches("built in").count(), 5, "{log}");
}

#[test]
fn hostile_base_layers_write_nothing_outside() {
    if !rootless_env("hostile_base_layers_write_nothing_outside") {
        return;
    }
    let Some(reg) = registry("hostile_base_layers_write_nothing_outside") else {
        return;
    };
    let cases = [
        ("dotdot", "\"../../escape\"", "'..' would leave the layer"),
        ("abs-symlink", "\"evil/pwned\"", "its parent evil is a symlink"),
        ("hardlink-out", "\"hl\"", "hardlink target ../../../etc/passwd: '..' would leave the layer"),
        ("abspath", "\"/abs-escape\"", "absolute paths are not allowed"),
    ];
    for (image, entry, reason) in cases {
        let env = Env::new();
        let dir = env.path().join("project");
        let df = format!("FROM {reg}/hostile/{image}:latest\nRUN true\n");
        git_project(
            &dir,
            &[
                ("werf.yaml", "project: bad\nconfigVersion: 1\n---\nimage: x\ndockerfile: Dockerfile\n"),
                ("Dockerfile", &df),
            ],
            &[],
        );
        let out = env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&dir).output().unwrap();
        assert!(!out.status.success(), "{image}: build succeeded");
        let err = stderr(&out);
        assert!(err.contains(&format!("refusing layer entry {entry}")) && err.contains(reason), "{image}: {err}");
        for outside in ["escape", "abs-escape", "pwned"] {
            let found = walk_find(env.path(), outside);
            assert!(found.is_none(), "{image}: {outside} written at {found:?}");
        }
        assert!(!std::path::Path::new("/tmp/slipway-escape-target").exists(), "{image}: wrote through the symlink");
    }
}

fn walk_find(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if e.file_name() == name {
            return Some(p);
        }
        if e.file_type().is_ok_and(|t| t.is_dir())
            && let Some(f) = walk_find(&p, name)
        {
            return Some(f);
        }
    }
    None
}

#[test]
fn malformed_inputs_give_one_line_errors() {
    if !rootless_env("malformed_inputs_give_one_line_errors") {
        return;
    }
    let cases: &[(&str, &str, &str)] = &[
        (
            "project: p\nconfigVersion: 1\n---\nimage: x\ndockerfile: Dockerfile\ndockerfle: typo\n",
            "FROM scratch\n",
            "werf.yaml:6:",
        ),
        ("project: p\nconfigVersion: 2\n", "FROM scratch\n", "werf.yaml:2:"),
        ("project: Bad_Name\nconfigVersion: 1\n", "FROM scratch\n", "werf.yaml:1:"),
        (
            "project: p\nconfigVersion: 1\n---\nimage: x\ndockerfile: Dockerfile\n",
            "FROM scratch\nRUNN echo\n",
            "Dockerfile:2: unknown instruction",
        ),
        (
            "project: p\nconfigVersion: 1\n---\nimage: x\ndockerfile: Dockerfile\n",
            "FROM scratch\nCOPY onlyone\n",
            "Dockerfile:2:",
        ),
        ("project: p\nconfigVersion: 1\n---\nimage: x\ndockerfile: Dockerfile\n", "RUN true\n", "Dockerfile:1:"),
        (
            "project: p\nconfigVersion: 1\n---\nimage: x\ndockerfile: Dockerfile\n",
            "FROM scratch\nCOPY missing.txt /x\n",
            "Dockerfile:2: missing.txt not found in the build context",
        ),
        (
            "project: p\nconfigVersion: 1\n---\nimage: x\ndockerfile: Dockerfile\n",
            "FROM --platform=linux/arm64 scratch\n",
            "Dockerfile:1: FROM --platform=linux/arm64: slipway builds linux/amd64 only",
        ),
        (
            "project: p\nconfigVersion: 1\n---\nimage: x\ndockerfile: Dockerfile\nplatform: [linux/arm64]\n",
            "FROM scratch\n",
            "platform linux/arm64: slipway builds linux/amd64 only",
        ),
    ];
    for (werf, df, needle) in cases {
        let env = Env::new();
        let dir = env.path().join("project");
        git_project(&dir, &[("werf.yaml", werf), ("Dockerfile", df)], &[]);
        let out = env.slipway().args(["build", "--dir"]).arg(&dir).output().unwrap();
        assert!(!out.status.success(), "{needle}: build succeeded");
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("Warning:")).collect();
        assert_eq!(lines.len(), 1, "{needle}: not one line:\n{err}");
        assert!(lines[0].starts_with("Error: ") && lines[0].contains(needle), "{needle}: {err}");
    }
}

#[test]
fn templates_and_env_report() {
    if !rootless_env("templates_and_env_report") {
        return;
    }
    let env = Env::new();
    let dir = env.path().join("project");
    let werf = "project: tpl\nconfigVersion: 1\n---\nimage: {{ env \"WERF_TEST_IMAGE\" \"fallback\" }}\ndockerfile: Dockerfile\n";
    let giterminism =
        "giterminismConfigVersion: 1\nconfig:\n  goTemplateRendering:\n    allowEnvVariables: [WERF_TEST_IMAGE]\n";
    git_project(
        &dir,
        &[("werf.yaml", werf), ("Dockerfile", "FROM scratch\nLABEL a=b\n"), ("werf-giterminism.yaml", giterminism)],
        &[],
    );
    let report = env.path().join("report.env");
    run_ok(
        env.slipway()
            .env("WERF_TEST_IMAGE", "back-end.v2")
            .args(["build", "--dir"])
            .arg(&dir)
            .arg("--save-build-report")
            .arg("--build-report-path")
            .arg(&report),
    );
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.starts_with("WERF_BACK_END_V2_DOCKER_IMAGE_NAME=tpl:"), "{text}");
    run_ok(
        env.slipway()
            .env_remove("WERF_TEST_IMAGE")
            .args(["build", "--dir"])
            .arg(&dir)
            .arg("--save-build-report")
            .arg("--build-report-path")
            .arg(&report),
    );
    assert!(std::fs::read_to_string(&report).unwrap().starts_with("WERF_FALLBACK_DOCKER_IMAGE_NAME=tpl:"));
}

#[test]
fn nameless_dockerfile_image_builds() {
    if !rootless_env("nameless_dockerfile_image_builds") {
        return;
    }
    let env = Env::new();
    let dir = env.path().join("project");
    let werf = "project: nameless\nconfigVersion: 1.0\n---\nimage: ~\ndockerfile: Dockerfile\n";
    git_project(&dir, &[("werf.yaml", werf), ("Dockerfile", "FROM scratch\nLABEL a=b\n")], &[]);
    let report = env.path().join("report.env");
    run_ok(
        env.slipway()
            .args(["build", "--dir"])
            .arg(&dir)
            .arg("--save-build-report")
            .arg("--build-report-path")
            .arg(&report),
    );
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.starts_with("WERF_DOCKER_IMAGE_NAME=nameless:"), "{text}");
}

#[test]
fn copy_sources_stay_in_the_context_heredocs_and_archives() {
    if !rootless_env("copy_sources_stay_in_the_context_heredocs_and_archives") {
        return;
    }
    let Some(reg) = registry("copy_sources_stay_in_the_context_heredocs_and_archives") else { return };
    let env = Env::new();
    let dir = env.path().join("project");
    let werf = "project: copies\nconfigVersion: 1\n---\nimage: ok\ndockerfile: Dockerfile\n---\nimage: evil\ndockerfile: Dockerfile.evil\n";
    let df = format!(
        "FROM {reg}/base/busybox:latest\nCOPY link.txt /copied/\nCOPY <<EOF /etc/greeting\nhello from a heredoc\nEOF\nADD archive.tar.gz /unpacked/\nADD plain.gz /kept/\n"
    );
    git_project(
        &dir,
        &[
            ("werf.yaml", werf),
            ("Dockerfile", &df),
            ("Dockerfile.evil", &format!("FROM {reg}/base/busybox:latest\nCOPY evil /stolen/\n")),
            ("hello.txt", "hello\n"),
        ],
        &[],
    );
    std::os::unix::fs::symlink("hello.txt", dir.join("link.txt")).unwrap();
    std::os::unix::fs::symlink("/etc", dir.join("evil")).unwrap();
    // archive.tar.gz holds a/b.txt; plain.gz is gzip but not a tar.
    let stage = env.path().join("arch");
    write(&stage, "a/b.txt", "in the archive\n");
    let tar = std::process::Command::new("tar")
        .arg("-czf")
        .arg(dir.join("archive.tar.gz"))
        .arg("-C")
        .arg(&stage)
        .arg("a")
        .status()
        .unwrap();
    assert!(tar.success());
    write(&dir, "plain", "just gzip\n");
    assert!(std::process::Command::new("gzip").arg(dir.join("plain")).status().unwrap().success());
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "more"]);

    let out = run_ok(env.slipway().args(["run", "ok", "--insecure-registry", "--dir"]).arg(&dir).args([
        "--",
        "/bin/sh",
        "-c",
        "cat /copied/link.txt /etc/greeting /unpacked/a/b.txt; ls /kept; test -L /copied/link.txt && echo symlink || echo file",
    ]));
    assert_eq!(stdout(&out), "hello\nhello from a heredoc\nin the archive\nplain.gz\nfile\n");

    let out = env.slipway().args(["build", "evil", "--insecure-registry", "--dir"]).arg(&dir).output().unwrap();
    assert!(!out.status.success(), "COPY through a symlink to /etc succeeded");
    assert!(stderr(&out).contains("evil cannot be resolved inside the build context"), "{}", stderr(&out));
}

#[test]
fn kill_9_mid_build_leaves_the_store_consistent() {
    if !rootless_env("kill_9_mid_build_leaves_the_store_consistent") {
        return;
    }
    let Some(reg) = registry("kill_9_mid_build_leaves_the_store_consistent") else { return };
    let env = Env::new();
    let dir = env.path().join("project");
    let df = format!(
        "FROM {reg}/base/busybox:latest\nRUN head -c 20000000 /dev/urandom > /blob && sleep 3\nRUN echo done > /done\n"
    );
    git_project(
        &dir,
        &[
            ("werf.yaml", "project: killed\nconfigVersion: 1\n---\nimage: x\ndockerfile: Dockerfile\n"),
            ("Dockerfile", &df),
        ],
        &[],
    );
    let mut child = env
        .slipway()
        .args(["build", "--insecure-registry", "--dir"])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    let out = run_ok(env.slipway().args(["run", "--insecure-registry", "--dir"]).arg(&dir).args([
        "--",
        "/bin/sh",
        "-c",
        "cat /done; wc -c < /blob",
    ]));
    assert_eq!(stdout(&out), "done\n20000000\n");
    let tmp = env.path().join("data/slipway/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "the killed build's temp files were not cleaned up: {left:?}");
}

#[test]
fn context_add_files_need_giterminism_and_track_content() {
    let t = "context_add_files_need_giterminism_and_track_content";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let dir = env.path().join("project");
    let werf = "project: addfiles\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\ncontextAddFiles:\n- generated.txt\n- gen\n";
    let df = format!("FROM {reg}/base/busybox:latest\nCOPY generated.txt gen/ /app/\n");
    git_project(
        &dir,
        &[("werf.yaml", werf), ("Dockerfile", &df)],
        &[("generated.txt", "v1\n"), ("gen/a.txt", "a\n"), ("gen/sub/b.txt", "b\n")],
    );
    let out = env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&dir).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("allowContextAddFiles"), "{}", stderr(&out));

    write(
        &dir,
        "werf-giterminism.yaml",
        "giterminismConfigVersion: 1\nconfig:\n  dockerfile:\n    allowContextAddFiles:\n    - generated.txt\n    - gen\n",
    );
    git(&dir, &["add", "werf-giterminism.yaml"]);
    git(&dir, &["commit", "-q", "-m", "allow"]);
    let show = ["--", "/bin/sh", "-c", "cat /app/generated.txt /app/a.txt /app/sub/b.txt"];
    let out = run_ok(env.slipway().args(["run", "--insecure-registry", "--dir"]).arg(&dir).args(show));
    assert_eq!(stdout(&out), "v1\na\nb\n");
    assert!(!stderr(&out).contains("are not committed"), "added files are not 'uncommitted': {}", stderr(&out));

    // The working-tree content is part of the digest.
    write(&dir, "generated.txt", "v2\n");
    let out = run_ok(env.slipway().args(["run", "--insecure-registry", "--dir"]).arg(&dir).args(show));
    assert_eq!(stdout(&out), "v2\na\nb\n");
    assert!(stderr(&out).contains("2-COPY") && stderr(&out).contains("built in"), "{}", stderr(&out));
}

#[test]
fn dependencies_build_first_and_pass_build_args() {
    let t = "dependencies_build_first_and_pass_build_args";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let dir = env.path().join("project");
    let werf = "project: deps\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\ndependencies:\n- image: base\n  imports:\n  - type: ImageName\n    targetBuildArg: BASE_IMAGE\n  - type: ImageTag\n    targetBuildArg: BASE_TAG\n---\nimage: base\ndockerfile: Dockerfile.base\n";
    git_project(
        &dir,
        &[
            ("werf.yaml", werf),
            ("Dockerfile.base", &format!("FROM {reg}/base/busybox:latest\nRUN echo from-base > /base.txt\n")),
            (
                "Dockerfile",
                "ARG BASE_IMAGE\nFROM $BASE_IMAGE\nARG BASE_TAG\nRUN cat /base.txt > /copied && echo \"$BASE_TAG\" > /tag\n",
            ),
        ],
        &[],
    );
    let report = env.path().join("r.json");
    let out = run_ok(
        env.slipway()
            .args(["build", "app", "--insecure-registry", "--dir"])
            .arg(&dir)
            .arg("--save-build-report")
            .arg("--build-report-path")
            .arg(&report),
    );
    let log = stdout(&out);
    assert!(log.find("Building image base").unwrap() < log.find("Building image app").unwrap(), "{log}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let base_tag = r["Images"]["base"]["DockerTag"].as_str().unwrap().to_string();
    let out = run_ok(
        env.slipway()
            .args(["run", "app", "--insecure-registry", "--dir"])
            .arg(&dir)
            .args(["--", "cat", "/copied", "/tag"]),
    );
    assert_eq!(stdout(&out), format!("from-base\n{base_tag}\n"));
}

#[test]
fn run_mounts_cache_secret_bind_tmpfs() {
    let t = "run_mounts_cache_secret_bind_tmpfs";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let dir = env.path().join("project");
    let werf = "project: mounts\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\nsecrets:\n- id: token\n  value: s3cr3t\n";
    let df = |v: &str| {
        format!(
            "FROM {reg}/base/busybox:latest\n\
             RUN --mount=type=cache,target=/cache,id=c1 echo {v} >> /cache/log && wc -l < /cache/log > /count\n\
             RUN --mount=type=secret,id=token cat /run/secrets/token > /token-copy\n\
             RUN --mount=type=bind,source=data,target=/mnt/data cat /mnt/data/x > /bound\n\
             RUN --mount=type=tmpfs,target=/scratch touch /scratch/f && ls /scratch > /tmpls\n\
             RUN test ! -e /cache/log && test ! -e /run/secrets/token && test ! -e /mnt/data/x && echo clean > /clean\n"
        )
    };
    // werf (and slipway) take a value secret only when werf-giterminism.yaml allows its id.
    let giterminism = "giterminismConfigVersion: 1\nconfig:\n  secrets:\n    allowValueIds: [token]\n";
    git_project(&dir, &[("werf.yaml", werf), ("Dockerfile", &df("v1")), ("data/x", "x-data\n")], &[]);
    let refused = env.slipway().args(["run", "--insecure-registry", "--dir"]).arg(&dir).output().unwrap();
    assert!(!refused.status.success(), "a secret without an allowance was used");
    assert!(
        stderr(&refused).contains("werf.yaml:7: secret \"token\" is not allowed by giterminism"),
        "{}",
        stderr(&refused)
    );
    write(&dir, "werf-giterminism.yaml", giterminism);
    git(&dir, &["add", "werf-giterminism.yaml"]);
    git(&dir, &["commit", "-q", "-m", "allow the secret"]);
    let show = ["--", "cat", "/count", "/token-copy", "/bound", "/tmpls", "/clean"];
    let out = run_ok(env.slipway().args(["run", "--insecure-registry", "--dir"]).arg(&dir).args(show));
    assert_eq!(stdout(&out), "1\ns3cr3tx-data\nf\nclean\n");

    // The cache survives builds; the bind source's content is part of its step's digest.
    write(&dir, "Dockerfile", &df("v2"));
    write(&dir, "data/x", "changed\n");
    git(&dir, &["commit", "-q", "-am", "v2"]);
    let out = run_ok(env.slipway().args(["run", "--insecure-registry", "--dir"]).arg(&dir).args(show));
    assert_eq!(stdout(&out), "2\ns3cr3tchanged\nf\nclean\n");
}

#[test]
fn run_mount_ssh_shows_the_ssh_key_agent() {
    let t = "run_mount_ssh_shows_the_ssh_key_agent";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let (env, key, public) = ssh_env();
    let (tmp, dir) = (env.path().join("tmp"), env.path().join("project"));
    let werf = "project: ssh\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\n";
    // busybox has no unix-socket client: the host's ssh-add with its libraries, from the context.
    let df = format!(
        "FROM {reg}/base/busybox:latest\n\
         RUN --mount=type=bind,source=tools,target=/tools --mount=type=ssh,required=true \
         /tools/ld.so --library-path /tools /tools/ssh-add -L > /keys && test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK\" > /sock\n\
         RUN test ! -e /run/buildkit/ssh_agent.0 && test -z \"$SSH_AUTH_SOCK\" && echo clean > /clean\n"
    );
    git_project(&dir, &[("werf.yaml", werf), ("Dockerfile", &df)], &[]);
    ssh_add_tools(&dir.join("tools"));
    git(&dir, &["add", "tools"]);
    git(&dir, &["commit", "-q", "-m", "tools"]);

    // Without a key, an agent or ~/.ssh/id_rsa, a required ssh mount fails clearly; a
    // stale SSH_AUTH_SOCK is only warned about.
    let refused = env
        .slipway()
        .env("SSH_AUTH_SOCK", env.path().join("gone.sock"))
        .args(["build", "--insecure-registry", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!refused.status.success(), "a required ssh mount ran without an agent");
    assert!(
        stderr(&refused).contains("--mount=type=ssh,id=default is required but the build has no ssh agent"),
        "{}",
        stderr(&refused)
    );
    assert!(stderr(&refused).contains("gone.sock is not a socket; it is not used"), "{}", stderr(&refused));

    let show = ["--", "cat", "/keys", "/sock", "/clean"];
    let out = run_ok(
        env.slipway()
            .env_remove("SSH_AUTH_SOCK")
            .args(["run", "--insecure-registry", "--ssh-key"])
            .arg(&key)
            .arg("--dir")
            .arg(&dir)
            .args(show),
    );
    assert_eq!(stdout(&out), format!("{public}/run/buildkit/ssh_agent.0\nclean\n"));
    let left = processes_mentioning(tmp.to_str().unwrap());
    assert!(left.is_empty(), "processes left after the build: {left:?}");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "the agent's dir is left in {}", tmp.display());
}
