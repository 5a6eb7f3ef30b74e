//! werf's development mode (`--dev`) and loose giterminism (`--loose-giterminism`): the
//! working tree instead of the HEAD commit, as the unprivileged user.

use crate::common::{Env, git, git_project, registry, rootless_env, run_ok, stderr, stdout, write};

const WERF_YAML: &str = "project: devmode\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\n";

fn report(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `--dev` builds uncommitted and untracked files (not ignored ones), caches by content,
/// and gives the same stage digests as a commit of the same content; without it, HEAD.
#[test]
fn dev_builds_the_working_tree_with_content_digests() {
    let test = "dev_builds_the_working_tree_with_content_digests";
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else {
        return;
    };
    let env = Env::new();
    let dir = env.path().join("project");
    let df = format!("FROM {reg}/base/busybox:latest\nCOPY src/ /app/\nRUN cat /app/hello.txt > /out.txt\n");
    git_project(
        &dir,
        &[("werf.yaml", WERF_YAML), ("Dockerfile", &df), (".gitignore", "*.log\n"), ("src/hello.txt", "committed\n")],
        &[("src/hello.txt", "uncommitted\n"), ("src/new.txt", "untracked\n"), ("src/ignored.log", "ignored\n")],
    );
    std::os::unix::fs::symlink("/etc/passwd", dir.join("src/loot")).unwrap();
    let build = |dev: bool, report: &str| {
        let mut c = env.slipway();
        c.args(["build", "--insecure-registry", "--save-build-report", "--build-report-path"])
            .arg(env.path().join(report))
            .arg("--dir")
            .arg(&dir);
        if dev {
            c.arg("--dev");
        }
        run_ok(&mut c)
    };
    let inspect = |dev: bool| {
        let mut c = env.slipway();
        c.args(["run", "app", "--insecure-registry", "--dir"]).arg(&dir);
        if dev {
            c.arg("--dev");
        }
        c.args(["--", "/bin/sh", "-c", "cat /out.txt /app/hello.txt; ls /app; readlink /app/loot; true"]);
        stdout(&run_ok(&mut c))
    };

    // Without --dev: HEAD, with the warning about what is left out.
    let out = build(false, "head.json");
    assert!(stderr(&out).contains("src/hello.txt"), "{}", stderr(&out));
    assert_eq!(inspect(false), "committed\ncommitted\nhello.txt\n");

    // --dev: the working tree as git would commit it; a symlink out is copied as data.
    let out = build(true, "dev.json");
    assert!(stdout(&out).contains("built in"), "{}", stdout(&out));
    assert!(!stderr(&out).contains("not committed"), "{}", stderr(&out));
    assert_eq!(inspect(true), "uncommitted\nuncommitted\nhello.txt\nloot\nnew.txt\n/etc/passwd\n");
    let dev = report(&env.path().join("dev.json"));
    let name = dev["Images"]["app"]["DockerImageName"].as_str().unwrap().to_string();
    assert_ne!(report(&env.path().join("head.json"))["Images"]["app"]["DockerImageName"], name.as_str());

    // Unchanged: cached.
    let out = build(true, "again.json");
    assert!(!stdout(&out).contains("built in"), "{}", stdout(&out));
    assert_eq!(report(&env.path().join("again.json"))["Images"]["app"]["DockerImageName"], name.as_str());

    // An edit rebuilds what depends on it.
    write(&dir, "src/hello.txt", "edited\n");
    let out = build(true, "edited.json");
    assert!(stdout(&out).contains("built in"), "{}", stdout(&out));
    assert!(inspect(true).starts_with("edited\nedited\n"));

    // The same content committed, built without --dev: the same stages, nothing built.
    write(&dir, "src/hello.txt", "uncommitted\n");
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "dev content"]);
    let out = build(false, "committed.json");
    assert!(!stdout(&out).contains("built in"), "{}", stdout(&out));
    assert_eq!(report(&env.path().join("committed.json"))["Images"]["app"]["DockerImageName"], name.as_str());
}

/// `--loose-giterminism` reads an uncommitted werf.yaml, partials and `.Files`, and lets
/// templates read any env var; `--dev` reads the working tree but keeps the allow-lists;
/// neither flag: werf's refusals of the uncommitted files.
#[test]
fn loose_giterminism_reads_the_working_tree_and_allows_env() {
    let test = "loose_giterminism_reads_the_working_tree_and_allows_env";
    if !rootless_env(test) {
        return;
    }
    let env = Env::new();
    let dir = env.path().join("project");
    let committed = "project: loose\nconfigVersion: 1\n---\nimage: a\nfrom: alpine:{{ env \"TAG_FROM_ENV\" }}\n";
    let edited = "project: loose\nconfigVersion: 1\n---\n{{ include \"part.tmpl\" . }}\nfrom: alpine:{{ env \"TAG_FROM_ENV\" }}\nshell:\n  install: echo {{ .Files.Get \"notes.txt\" | trim }}\n";
    git_project(
        &dir,
        &[("werf.yaml", committed)],
        &[("werf.yaml", edited), (".werf/part.tmpl", "image: b"), ("notes.txt", "untracked-note\n")],
    );
    let render = |args: &[&str]| {
        let mut c = env.slipway();
        c.args(["config", "render", "--dir"]).arg(&dir).args(args).env("TAG_FROM_ENV", "3.20");
        c.output().unwrap()
    };
    let want = "image: b\nfrom: alpine:3.20\nshell:\n  install: echo untracked-note\n";

    // Neither flag: werf refuses the uncommitted werf.yaml.
    let out = render(&[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unable to read werf config: the file \"werf.yaml\" must be committed"),
        "{}",
        stderr(&out)
    );

    // --dev: the working tree's werf.yaml, partial and file, but the allow-list stays.
    let out = render(&["--dev"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("env name \"TAG_FROM_ENV\" not allowed by giterminism"), "{}", stderr(&out));

    // Loose: everything from the working tree, any env var, werf's warning.
    for args in [&["--loose-giterminism"][..], &["--dev", "--loose-giterminism"][..]] {
        let out = render(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).ends_with(want), "{args:?}: {}", stdout(&out));
        assert!(stderr(&out).contains("We recommend using werf-giterminism.yaml to loosen giterminism"));
    }
    let out = run_ok(
        env.slipway()
            .args(["config", "render", "--dir"])
            .arg(&dir)
            .env("TAG_FROM_ENV", "3.20")
            .env("WERF_LOOSE_GITERMINISM", "yes"),
    );
    assert!(stdout(&out).ends_with(want), "{}", stdout(&out));

    // --dev with an allow-list: the working tree is rendered.
    write(
        &dir,
        "werf-giterminism.yaml",
        "giterminismConfigVersion: 1\nconfig:\n  goTemplateRendering:\n    allowEnvVariables: [TAG_FROM_ENV]\n",
    );
    let out = render(&["--dev"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).ends_with(want), "{}", stdout(&out));
    // Without --dev the untracked werf-giterminism.yaml is refused, as werf does.
    let out = render(&[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the untracked file \"werf-giterminism.yaml\" must be committed"),
        "{}",
        stderr(&out)
    );
    // --dev-ignore (or WERF_DEV_IGNORE_*) leaves a path at HEAD's version: here, absent.
    let ignored = |out: std::process::Output| {
        assert!(!out.status.success());
        assert!(stderr(&out).contains("the file \"notes.txt\" not found"), "{}", stderr(&out));
    };
    ignored(render(&["--dev", "--dev-ignore", "notes.txt"]));
    let mut c = env.slipway();
    c.args(["config", "render", "--dev", "--dir"]).arg(&dir).env("TAG_FROM_ENV", "3.20");
    ignored(c.env("WERF_DEV_IGNORE_NOTES", "*.txt").output().unwrap());
}
