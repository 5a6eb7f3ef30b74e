//! Stapel images (`from` + `git` + `shell` + `docker`) built end to end as the unprivileged user.

use crate::common::{
    Env, git, git_project, processes_mentioning, registry, rootless_env, run_ok, ssh_add_tools, ssh_env, stderr,
    stdout, write,
};

fn werf_yaml(reg: &str, setup: &str) -> String {
    format!(
        r#"project: demo
configVersion: 1
---
image: base
from: {reg}/base/busybox
shell:
  install:
  - mkdir -p /app
  - echo "installed at $WERF_COMMIT_HASH" > /app/install.txt
  - test "$(cat /run/secrets/token)" = s3cret && echo secret-ok > /app/secret.txt
  setup:
  - echo "{setup}" > /app/setup.txt
  - id -u > /app/uid.txt; pwd > /app/pwd.txt
docker:
  ENV:
    GREETING: hello-stapel
  CMD: cat /app/setup.txt
  WORKDIR: /app
secrets:
- id: token
  value: s3cret
---
image: app
from: base
shell:
  setup: echo "on $(cat /app/setup.txt)" > /app/child.txt
"#
    )
}

const INSPECT: &str = "cat /app/install.txt /app/secret.txt /app/setup.txt /app/uid.txt /app/pwd.txt; \
                       echo $GREETING; pwd; echo ${WERF_COMMIT_HASH:-no-commit-env}; \
                       test -e /.werf || echo no-script-left; test -e /run/secrets/token || echo no-secret-left";

#[test]
fn builds_shell_stages_and_rebuilds_from_the_changed_one() {
    let test = "builds_shell_stages_and_rebuilds_from_the_changed_one";
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else {
        return;
    };
    let env = Env::new();
    let dir = env.path().join("project");
    let giterminism = "giterminismConfigVersion: 1\nconfig:\n  secrets:\n    allowValueIds: [token]\n";
    git_project(&dir, &[("werf.yaml", &werf_yaml(&reg, "setup one")), ("werf-giterminism.yaml", giterminism)], &[]);
    let head =
        String::from_utf8(crate::common::git_cmd(&dir, &["rev-parse", "HEAD"]).output().unwrap().stdout).unwrap();
    let report = env.path().join("report.json");
    let build = |insecure: bool| {
        let mut cmd = env.slipway();
        cmd.arg("build");
        if insecure {
            cmd.arg("--insecure-registry");
        }
        cmd.arg("--dir").arg(&dir).arg("--save-build-report").arg("--build-report-path").arg(&report);
        let log = stdout(&run_ok(&mut cmd));
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        (log, r)
    };

    let (log, r) = build(true);
    assert_eq!(log.matches("built in").count(), 6, "{log}");
    let stages = |r: &serde_json::Value, image: &str| -> Vec<String> {
        r["Images"][image]["Stages"].as_array().unwrap().iter().map(|s| s["Name"].as_str().unwrap().into()).collect()
    };
    assert_eq!(r["Images"]["base"]["ConfigType"], "stapel", "{r}");
    assert_eq!(stages(&r, "base"), ["from", "install", "setup", "dockerInstructions"]);
    assert_eq!(stages(&r, "app"), ["from", "setup"]);

    let out = run_ok(env.slipway().args(["run", "base", "--dir"]).arg(&dir).args(["--", "/bin/sh", "-c", INSPECT]));
    let want = format!(
        "installed at {head}secret-ok\nsetup one\n0\n/\nhello-stapel\n/app\nno-commit-env\nno-script-left\nno-secret-left\n"
    );
    assert_eq!(stdout(&out), want, "stderr:\n{}", stderr(&out));
    let out = run_ok(env.slipway().args(["run", "base", "--dir"]).arg(&dir));
    assert_eq!(stdout(&out), "setup one\n");
    let out = run_ok(env.slipway().args(["run", "app", "--dir"]).arg(&dir).args(["--", "cat", "/app/child.txt"]));
    assert_eq!(stdout(&out), "on setup one\n");

    // Nothing changed: every stage is found, no registry needed.
    let (log, r) = build(false);
    assert!(!log.contains("built in"), "a stage ran on a cached rebuild:\n{log}");
    assert_eq!(log.matches("cached").count(), 6, "{log}");
    assert_eq!(r["Images"]["base"]["Rebuilt"], false, "{r}");

    // A changed `setup` rebuilds setup and what follows it, and the image based on it.
    write(&dir, "werf.yaml", &werf_yaml(&reg, "setup two"));
    git(&dir, &["commit", "-q", "-am", "setup two"]);
    let (log, _) = build(true);
    let built: Vec<&str> = log.lines().filter(|l| l.contains("built in")).collect();
    assert_eq!(built.len(), 4, "{log}");
    for (line, stage) in built.iter().zip(["base/setup", "base/dockerInstructions", "app/from", "app/setup"]) {
        assert!(line.contains(stage), "{stage} not rebuilt in order:\n{log}");
    }
    assert_eq!(log.matches("cached").count(), 2, "{log}");
    let out = run_ok(env.slipway().args(["run", "app", "--dir"]).arg(&dir).args(["--", "cat", "/app/child.txt"]));
    assert_eq!(stdout(&out), "on setup two\n");
}

/// What this slice does not build is refused in one line naming the key's werf.yaml line;
/// a base without /bin/sh is named too. Neither needs a registry.
#[test]
fn refuses_what_it_cannot_build_in_one_line() {
    let test = "refuses_what_it_cannot_build_in_one_line";
    if !rootless_env(test) {
        return;
    }
    let cases = [
        (
            "image: app\nfrom: alpine:3\ngit:\n- url: git@example.com:x.git\n  to: /app\n",
            "Error: image app (werf.yaml:7): git url git@example.com:x.git: only https://, http://, git:// and file:// urls are supported for remote mappings (ssh and scp-like urls are not yet)\n",
        ),
        (
            "image: app\nfrom: scratch\nshell:\n  install: echo hi\n",
            "Error: building image app (werf.yaml:4), stage install: the base image has no /bin/sh, which runs the shell commands\n",
        ),
    ];
    for (doc, want) in cases {
        let env = Env::new();
        let dir = env.path().join("project");
        git_project(&dir, &[("werf.yaml", &format!("project: demo\nconfigVersion: 1\n---\n{doc}"))], &[]);
        let out = env.slipway().args(["build", "--dir"]).arg(&dir).output().unwrap();
        assert!(!out.status.success(), "{doc}");
        assert_eq!(stderr(&out), want, "{doc}");
    }
}

/// With `--repo`: an image `from:` another starts from that image's last stage, and its
/// stages carry werf's labels (the first one names the base's last stage as its parent).
#[test]
fn builds_in_a_repo_with_werfs_stage_labels() {
    let test = "builds_in_a_repo_with_werfs_stage_labels";
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else {
        return;
    };
    let env = Env::new();
    let dir = env.path().join("project");
    let werf_yaml = format!(
        "project: demo\nconfigVersion: 1\n---\nimage: base\nfrom: {reg}/base/busybox:latest\nshell:\n  install: echo base > /base.txt\n\
         ---\nimage: app\nfrom: base\nshell:\n  setup: cat /base.txt > /app.txt\n"
    );
    git_project(&dir, &[("werf.yaml", &werf_yaml)], &[]);
    let head =
        String::from_utf8(crate::common::git_cmd(&dir, &["rev-parse", "HEAD"]).output().unwrap().stdout).unwrap();
    let repo = crate::repo::fresh_repo(&reg, "stapel");
    let report = env.path().join("report.json");
    run_ok(
        env.slipway()
            .args(["build", "--insecure-registry", "--repo", &repo, "--dir"])
            .arg(&dir)
            .arg("--save-build-report")
            .arg("--build-report-path")
            .arg(&report),
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let labels = |stage: &serde_json::Value| {
        let name = stage["DockerImageName"].as_str().unwrap();
        assert!(name.starts_with(&format!("{repo}:")), "{r}");
        let out = std::process::Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{name}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo inspect {name}: {}", stderr(&out));
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        info["Labels"].clone()
    };
    let base = &r["Images"]["base"]["Stages"];
    let app = &r["Images"]["app"]["Stages"];
    let base_from = labels(&base[0]);
    assert_eq!(base_from["werf"], "demo");
    assert_eq!(base_from["werf-project-repo-commit"], head.trim());
    assert!(base_from.get("werf.io/parent-stage-id").is_none(), "{base_from}");
    assert_eq!(labels(&base[1])["werf.io/parent-stage-id"], base[0]["DockerTag"]);
    assert_eq!(app[0]["Name"], "from");
    assert_eq!(labels(&app[0])["werf.io/parent-stage-id"], r["Images"]["base"]["DockerTag"]);
    assert_eq!(labels(&app[1])["werf.io/parent-stage-id"], app[0]["DockerTag"]);

    // A fresh store finds every stage in the repo.
    let out = run_ok(
        env.slipway()
            .env("XDG_DATA_HOME", env.path().join("store2"))
            .args(["build", "--insecure-registry", "--repo", &repo, "--dir"])
            .arg(&dir),
    );
    let log = stdout(&out);
    assert!(!log.contains("built in"), "{log}");
}

fn git_werf_yaml(reg: &str) -> String {
    format!(
        r#"project: demo
configVersion: 1
---
image: app
from: {reg}/base/busybox
git:
- add: /src
  to: /app
  excludePaths: "*.md"
  stageDependencies:
    install: deps.txt
- add: /extra
  to: /extra
  includePaths: [keep]
- add: /conf/app.conf
  to: /etc/app.conf
  owner: nobody
  group: "65533"
shell:
  install: cat /app/deps.txt > /installed.txt
"#
    )
}

const GIT_INSPECT: &str = "cat /app/a.txt /installed.txt /etc/app.conf /extra/keep/k.txt; readlink /app/passwd; \
                           test -L /app/passwd && echo is-link; ls /app | tr '\\n' ' '; echo; \
                           test -e /extra/drop.txt || echo no-drop";

/// Local git mappings: the first build writes them (gitArchive); a commit changing and
/// deleting files adds only a gitLatestPatch stage; a change to an install stage
/// dependency rebuilds install on the patched files.
#[test]
fn git_mappings_are_archived_then_patched() {
    let test = "git_mappings_are_archived_then_patched";
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else {
        return;
    };
    let env = Env::new();
    let dir = env.path().join("project");
    let files = [
        ("werf.yaml", git_werf_yaml(&reg)),
        ("src/a.txt", "a1\n".into()),
        ("src/deps.txt", "d1\n".into()),
        ("src/gone.txt", "gone\n".into()),
        ("src/README.md", "excluded\n".into()),
        ("extra/keep/k.txt", "kept\n".into()),
        ("extra/drop.txt", "not included\n".into()),
        ("conf/app.conf", "conf\n".into()),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, c)| (*n, c.as_str())).collect();
    git_project(&dir, &files, &[]);
    std::os::unix::fs::symlink("/etc/passwd", dir.join("src/passwd")).unwrap();
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "link"]);
    let build = || build_app(&env, &dir);
    let inspect = || {
        let out =
            run_ok(env.slipway().args(["run", "app", "--dir"]).arg(&dir).args(["--", "/bin/sh", "-c", GIT_INSPECT]));
        stdout(&out)
    };

    let (log, names, built) = build();
    assert_eq!(names, ["from", "gitArchive", "install"], "{log}");
    assert_eq!(built.len(), 3, "{log}");
    assert_eq!(inspect(), "a1\nd1\nconf\nkept\n/etc/passwd\nis-link\na.txt deps.txt gone.txt passwd \nno-drop\n");
    let out = run_ok(env.slipway().args(["run", "app", "--dir"]).arg(&dir).args([
        "--",
        "stat",
        "-c",
        "%u:%g %a %n",
        "/etc/app.conf",
        "/app/a.txt",
    ]));
    assert_eq!(stdout(&out), "65534:65533 644 /etc/app.conf\n0:0 644 /app/a.txt\n");

    // Change one file, delete another: only gitLatestPatch is built.
    write(&dir, "src/a.txt", "a2\n");
    git(&dir, &["rm", "-q", "src/gone.txt"]);
    git(&dir, &["commit", "-q", "-am", "change and delete"]);
    let (log, names, built) = build();
    assert_eq!(names, ["from", "gitArchive", "install", "gitLatestPatch"], "{log}");
    assert_eq!(built.len(), 1, "{log}");
    assert!(built[0].contains("gitLatestPatch"), "{log}");
    assert_eq!(inspect(), "a2\nd1\nconf\nkept\n/etc/passwd\nis-link\na.txt deps.txt passwd \nno-drop\n");

    // A change in install's stage dependency rebuilds install, on the patched files.
    write(&dir, "src/deps.txt", "d2\n");
    git(&dir, &["commit", "-q", "-am", "deps"]);
    let (log, names, built) = build();
    assert_eq!(names, ["from", "gitArchive", "install"], "{log}");
    assert_eq!(built.len(), 1, "{log}");
    assert!(built[0].contains("install"), "{log}");
    assert_eq!(inspect(), "a2\nd2\nconf\nkept\n/etc/passwd\nis-link\na.txt deps.txt passwd \nno-drop\n");

    // A change outside every mapping: nothing is built.
    write(&dir, "extra/drop.txt", "still not included\n");
    git(&dir, &["commit", "-q", "-am", "outside"]);
    let (log, _, built) = build();
    assert!(built.is_empty(), "{log}");

    // Changes writing ≥ 1 MiB make a gitCache stage (werf's threshold); a rename after
    // it is a gitLatestPatch on top of it.
    let sh = |script: &str| {
        let out = run_ok(env.slipway().args(["run", "app", "--dir"]).arg(&dir).args(["--", "/bin/sh", "-c", script]));
        stdout(&out)
    };
    write(&dir, "src/big.txt", &"0123456789abcdef".repeat(96 * 1024));
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "big"]);
    let (log, names, built) = build();
    assert_eq!(names, ["from", "gitArchive", "install", "gitCache"], "{log}");
    assert_eq!(built.len(), 1, "{log}");
    assert_eq!(sh("wc -c < /app/big.txt"), "1572864\n");
    git(&dir, &["mv", "src/a.txt", "src/b.txt"]);
    git(&dir, &["commit", "-q", "-m", "rename"]);
    let (log, names, built) = build();
    assert_eq!(names, ["from", "gitArchive", "install", "gitCache", "gitLatestPatch"], "{log}");
    assert_eq!(built.len(), 1, "{log}");
    assert_eq!(sh("cat /app/b.txt; test -e /app/a.txt || echo a-gone"), "a2\na-gone\n");
}

/// A branch never reuses another branch's git stages (werf's ancestry check): main's
/// build after a feature branch's builds its own gitArchive; each branch then finds its
/// own stages.
#[test]
fn git_stages_of_another_branch_are_not_reused() {
    let test = "git_stages_of_another_branch_are_not_reused";
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else {
        return;
    };
    let env = Env::new();
    let dir = env.path().join("project");
    let werf_yaml = format!(
        "project: demo\nconfigVersion: 1\n---\nimage: app\nfrom: {reg}/base/busybox\ngit:\n- add: /src\n  to: /app\n\
         shell:\n  install: cp /app/a.txt /installed.txt\n"
    );
    git_project(&dir, &[("werf.yaml", &werf_yaml), ("src/a.txt", "base\n")], &[]);
    let build = || {
        let out = run_ok(env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&dir));
        let log = stdout(&out);
        let built: Vec<String> = log.lines().filter(|l| l.contains("built in")).map(str::to_string).collect();
        (log, built)
    };
    let show = || {
        let out = run_ok(env.slipway().args(["run", "app", "--dir"]).arg(&dir).args(["--", "cat", "/app/a.txt"]));
        stdout(&out)
    };
    git(&dir, &["checkout", "-q", "-b", "feature"]);
    write(&dir, "src/a.txt", "feature\n");
    git(&dir, &["commit", "-q", "-am", "feature"]);
    let (log, built) = build();
    assert_eq!(built.len(), 3, "{log}");
    assert_eq!(show(), "feature\n");

    git(&dir, &["checkout", "-q", "main"]);
    write(&dir, "src/a.txt", "main\n");
    git(&dir, &["commit", "-q", "-am", "main"]);
    let (log, built) = build();
    assert_eq!(built.len(), 2, "gitArchive and install of main are built:\n{log}");
    assert!(built[0].contains("gitArchive") && built[1].contains("install"), "{log}");
    assert_eq!(show(), "main\n");
    let (log, built) = build();
    assert!(built.is_empty(), "{log}");

    git(&dir, &["checkout", "-q", "feature"]);
    let (log, built) = build();
    assert!(built.is_empty(), "{log}");
    assert_eq!(show(), "feature\n");

    // The working tree (--dev) is not a commit the git stages can record: one line.
    let out = env.slipway().args(["build", "--dev", "--dir"]).arg(&dir).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        "Error: image app (werf.yaml:7): `git` mappings are not supported with --dev yet (they read commits only); \
         commit the changes and build without --dev\n"
    );

    // werf's WERF_DISABLE_GIT_COMMIT_ANCESTRY_CHECK: any stage whose commit exists is
    // reusable, the oldest first (feature's, whose install copied "feature"), patched
    // to HEAD's files.
    git(&dir, &["checkout", "-q", "main"]);
    git(&dir, &["checkout", "-q", "-b", "third"]);
    write(&dir, "src/a.txt", "third\n");
    git(&dir, &["commit", "-q", "-am", "third"]);
    let unchecked = |command: &str, rest: &[&str]| {
        let mut cmd = env.slipway();
        cmd.env("WERF_DISABLE_GIT_COMMIT_ANCESTRY_CHECK", "true").args([command, "--dir"]).arg(&dir).args(rest);
        stdout(&run_ok(&mut cmd))
    };
    let log = unchecked("build", &["--insecure-registry"]);
    let built: Vec<&str> = log.lines().filter(|l| l.contains("built in")).collect();
    assert!(built.iter().all(|l| !l.contains("gitArchive") && !l.contains("install")), "{log}");
    let shown = unchecked("run", &["app", "--", "cat", "/app/a.txt", "/installed.txt"]);
    assert_eq!(shown, "third\nfeature\n");
}

/// werf.yaml `mount`: `tmp_dir` shared by the image's stages and fresh per build,
/// `build_dir` kept between builds in the store, `fromPath` bound read-write as
/// werf-giterminism.yaml allows; no mount target in the image, werf's labels on the
/// stages, and the `from` stage empties the base's mount points.
#[test]
fn binds_stapel_mounts_as_werf() {
    let test = "binds_stapel_mounts_as_werf";
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else {
        return;
    };
    let env = Env::new();
    let dir = env.path().join("project");
    let host = env.path().join("host-dir");
    let werf_yaml = |version: &str| {
        format!(
            "project: demo\nconfigVersion: 1\n---\nimage: base\nfrom: {reg}/base/busybox\n\
             shell:\n  install: mkdir -p /data && echo keep > /data/keep\n---\n\
             image: app\nfromImage: base\ncacheVersion: \"{version}\"\nmount:\n- from: tmp_dir\n  to: /tmp_dir\n\
             - from: build_dir\n  to: /var/cache/app\n- fromPath: {}\n  to: /host\n- from: tmp_dir\n  to: /data\n\
             shell:\n  install:\n  - ls -A /tmp_dir > /install-saw.txt; echo from-install > /tmp_dir/a\n\
             \x20 - echo run >> /var/cache/app/runs; grep -c run /var/cache/app/runs > /runs.txt\n\
             \x20 - echo from-build > /host/out; ls -A /data > /data-saw.txt\n\
             \x20 setup:\n  - cat /tmp_dir/a > /setup-saw.txt\n",
            host.display()
        )
    };
    let giterminism = format!(
        "giterminismConfigVersion: 1\nconfig:\n  stapel:\n    mount:\n      allowBuildDir: true\n      allowFromPaths: [{}]\n",
        host.display()
    );
    git_project(&dir, &[("werf.yaml", &werf_yaml("1")), ("werf-giterminism.yaml", &giterminism)], &[]);
    let repo = crate::repo::fresh_repo(&reg, "mount");
    let report = env.path().join("report.json");
    let build = || {
        run_ok(
            env.slipway()
                .args(["build", "--insecure-registry", "--repo", &repo, "--dir"])
                .arg(&dir)
                .arg("--save-build-report")
                .arg("--build-report-path")
                .arg(&report),
        );
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(&report).unwrap()).unwrap()
    };
    let inspect = "cat /install-saw.txt /setup-saw.txt /runs.txt /data-saw.txt; \
                   for p in /tmp_dir /var/cache/app /host /.werf; do test -e $p && echo left $p; done; ls -A /data";
    let show = |r: &serde_json::Value| {
        let name = r["Images"]["app"]["DockerImageName"].as_str().unwrap().to_string();
        let out = run_ok(
            env.slipway()
                .args(["run", "--insecure-registry", "--repo", &repo, "app", "--dir"])
                .arg(&dir)
                .args(["--", "/bin/sh", "-c", inspect]),
        );
        (name, stdout(&out))
    };
    let r = build();
    let (name, out) = show(&r);
    // install saw an empty tmp_dir, setup what install left there; /data (emptied by the
    // from stage, then a tmp_dir) was empty; no mount target is left in the image.
    assert_eq!(out, "from-install\n1\n", "{r}");
    assert_eq!(std::fs::read_to_string(host.join("out")).unwrap(), "from-build\n");
    let out =
        run_ok(env.slipway().args(["run", "--insecure-registry", "--repo", &repo, "base", "--dir"]).arg(&dir).args([
            "--",
            "cat",
            "/data/keep",
        ]));
    assert_eq!(stdout(&out), "keep\n");
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo inspect {name}: {}", stderr(&out));
    let labels = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["Labels"].clone();
    assert_eq!(labels["werf-mount-type-tmp-dir"], "/tmp_dir;/data", "{labels}");
    assert_eq!(labels["werf-mount-type-build-dir"], "/var/cache/app", "{labels}");
    let custom = format!("werf-mount-type-custom-dir-{}", host.display().to_string().replace('/', "--"));
    assert_eq!(labels[&custom], "/host", "{labels}");

    // build_dir is kept between builds (a new cacheVersion rebuilds install); tmp_dir is not.
    write(&dir, "werf.yaml", &werf_yaml("2"));
    git(&dir, &["commit", "-q", "-am", "v2"]);
    let (_, out) = show(&build());
    assert_eq!(out, "from-install\n2\n");
    let slug = std::fs::read_dir(env.path().join("data/slipway/mounts/projects/demo")).unwrap().count();
    assert_eq!(slug, 1);

    // Without the allowance: refused at load, naming the mount's line.
    write(&dir, "werf-giterminism.yaml", "giterminismConfigVersion: 1\n");
    git(&dir, &["commit", "-q", "-am", "no allowance"]);
    let out = env.slipway().args(["build", "--dir"]).arg(&dir).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).starts_with(
            "Error: werf.yaml:15: the configuration with potential external dependency found in the werf config: \
             \"mount { from: build_dir, ... }\" not allowed by giterminism"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

/// A base image's `werf-mount-type-custom-dir-*` label (here written by `docker: LABEL`)
/// cannot bind a host path werf-giterminism.yaml does not allow: werf would bind it.
#[test]
fn a_base_image_mount_label_cannot_bind_a_host_path() {
    let test = "a_base_image_mount_label_cannot_bind_a_host_path";
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else {
        return;
    };
    let env = Env::new();
    let dir = env.path().join("project");
    let werf_yaml = format!(
        "project: demo\nconfigVersion: 1\n---\nimage: base\nfrom: {reg}/base/busybox\ndocker:\n  LABEL:\n    \
         werf-mount-type-custom-dir---etc: /hostetc\n---\nimage: app\nfromImage: base\nshell:\n  \
         install: cat /hostetc/passwd > /leak\n"
    );
    git_project(&dir, &[("werf.yaml", &werf_yaml)], &[]);
    let out = env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&dir).output().unwrap();
    assert!(!out.status.success(), "{}", stdout(&out));
    assert_eq!(
        stderr(&out),
        "Error: building image app (werf.yaml:10), stage install: the base image's werf-mount-type-* labels ask \
         for a mount: the configuration with potential external dependency found in the werf config: \"mount { \
         fromPath: /etc, ... }\" not allowed by giterminism (the use of the fromPath mount may lead to \
         unpredictable behavior when used in parallel and potentially affect reproducibility and reliability; \
         the data in the mounted directory has no effect on the final image digest); to allow it, set \
         config.stapel.mount.allowFromPaths in werf-giterminism.yaml\n"
    );
}

/// werf's `fromLatest`: refused unless `config.stapel.allowFromLatest`; allowed, the
/// base's current ID is in the `from` digest, so moving the tag in the registry rebuilds
/// from the new content, and an unmoved tag stays cached.
#[test]
fn from_latest_follows_the_base_tag_in_its_registry() {
    let test = "from_latest_follows_the_base_tag_in_its_registry";
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else {
        return;
    };
    let base = crate::repo::fresh_repo(&reg, "from-latest");
    let retag = |src: &str| {
        let out = std::process::Command::new("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false"])
            .arg(format!("docker://{reg}/{src}:latest"))
            .arg(format!("docker://{base}:moving"))
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo copy {src}: {}", stderr(&out));
    };
    retag("base/busybox");
    let env = Env::new();
    let dir = env.path().join("project");
    let werf_yaml = format!(
        "project: latest\nconfigVersion: 1\n---\nimage: app\nfrom: {base}:moving\nfromLatest: true\nshell:\n  setup: ls /srv > /seen 2>&1 || true\n"
    );
    git_project(&dir, &[("werf.yaml", &werf_yaml)], &[]);
    let build = || env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&dir).output().unwrap();
    let out = build();
    assert!(!out.status.success());
    assert!(
        stderr(&out).starts_with(
            "Error: image app (werf.yaml:4): fromLatest directive not allowed by giterminism: it puts the base image's current digest"
        ),
        "{}",
        stderr(&out)
    );

    write(
        &dir,
        "werf-giterminism.yaml",
        "giterminismConfigVersion: 1\nconfig:\n  stapel:\n    allowFromLatest: true\n",
    );
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "allow fromLatest"]);
    let from_line = |log: &str| log.lines().find(|l| l.contains("app/from")).unwrap_or_default().to_string();
    let first = stdout(&run_ok(env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&dir)));
    assert!(from_line(&first).contains("built in"), "{first}");
    let again = stdout(&run_ok(env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&dir)));
    assert!(!again.contains("built in"), "an unmoved tag rebuilt:\n{again}");

    // The tag now names another image: `from` gets another digest and the new content.
    retag("base/owned");
    let moved = stdout(&run_ok(env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&dir)));
    let digest = |line: &str| line.split_whitespace().nth(2).unwrap_or_default().to_string();
    assert!(from_line(&moved).contains("built in"), "{moved}");
    assert_ne!(digest(&from_line(&moved)), digest(&from_line(&first)), "{first}\n{moved}");
    let out = run_ok(
        env.slipway().args(["run", "--insecure-registry", "app", "--dir"]).arg(&dir).args(["--", "cat", "/seen"]),
    );
    assert!(!stdout(&out).contains("No such file"), "the new base's /srv is missing: {}", stdout(&out));
}

/// With `--ssh-key`, shell stages reach the build's agent at werf's
/// `/.werf/tmp/ssh-auth-sock` (named by `SSH_AUTH_SOCK`); without an agent they do not.
/// The agent is in neither the stage digest nor the image: a build without it finds
/// every stage.
#[test]
fn shell_stages_get_the_ssh_key_agent() {
    let t = "shell_stages_get_the_ssh_key_agent";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let (env, key, public) = ssh_env();
    let (tmp, dir) = (env.path().join("tmp"), env.path().join("project"));
    let werf = format!(
        r#"project: ssh
configVersion: 1
---
image: app
from: {reg}/base/busybox
git:
- add: /tools
  to: /tools
shell:
  install:
  - test -S "$SSH_AUTH_SOCK" && echo "$SSH_AUTH_SOCK" > /sock
  - stat -c '%a %u' "$SSH_AUTH_SOCK" > /sock-mode
  - /tools/ld.so --library-path /tools /tools/ssh-add -L > /keys
  setup: /tools/ld.so --library-path /tools /tools/ssh-add -L > /keys-setup
"#
    );
    git_project(&dir, &[("werf.yaml", &werf)], &[]);
    ssh_add_tools(&dir.join("tools"));
    git(&dir, &["add", "tools"]);
    git(&dir, &["commit", "-q", "-m", "tools"]);
    let build = |key: Option<&std::path::Path>| {
        let mut cmd = env.slipway();
        cmd.args(["build", "--insecure-registry", "--dir"]).arg(&dir);
        if let Some(k) = key {
            cmd.arg("--ssh-key").arg(k);
        }
        cmd
    };

    // No agent (a stale SSH_AUTH_SOCK is only warned about): the step has no socket.
    let refused = build(None).env("SSH_AUTH_SOCK", env.path().join("gone.sock")).output().unwrap();
    assert!(!refused.status.success(), "the shell stage found an agent:\n{}", stdout(&refused));
    assert!(stderr(&refused).contains("gone.sock is not a socket; it is not used"), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("the shell commands exited with code"), "{}", stderr(&refused));

    let log = stdout(&run_ok(build(Some(&key)).env_remove("SSH_AUTH_SOCK")));
    assert!(log.contains("app/install") && log.contains("built in"), "{log}");
    let left = processes_mentioning(tmp.to_str().unwrap());
    assert!(left.is_empty(), "processes left after the build: {left:?}");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "the agent's dir is left in {}", tmp.display());

    let show =
        "cat /sock /sock-mode /keys /keys-setup; echo ${SSH_AUTH_SOCK:-no-env}; test -e /.werf || echo no-werf-left";
    let out = run_ok(env.slipway().args(["run", "--dir"]).arg(&dir).args(["--", "/bin/sh", "-c", show]));
    assert_eq!(stdout(&out), format!("/.werf/tmp/ssh-auth-sock\n600 0\n{public}{public}no-env\nno-werf-left\n"));

    // The agent is not in the digest: without one, every stage is found.
    let again = stdout(&run_ok(build(None).env_remove("SSH_AUTH_SOCK")));
    assert!(!again.contains("built in"), "a stage was rebuilt without the agent:\n{again}");
}

/// `slipway build` of the project at `dir` with a build report: the log, image `app`'s
/// stage names, and the log lines of the stages that were built.
pub fn build_app(env: &Env, dir: &std::path::Path) -> (String, Vec<String>, Vec<String>) {
    let report = env.path().join("report.json");
    let mut cmd = env.slipway();
    cmd.args(["build", "--insecure-registry", "--dir"]).arg(dir);
    cmd.arg("--save-build-report").arg("--build-report-path").arg(&report);
    let log = stdout(&run_ok(&mut cmd));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let names: Vec<String> =
        r["Images"]["app"]["Stages"].as_array().unwrap().iter().map(|s| s["Name"].as_str().unwrap().into()).collect();
    let built: Vec<String> = log.lines().filter(|l| l.contains("built in")).map(str::to_string).collect();
    (log, names, built)
}
