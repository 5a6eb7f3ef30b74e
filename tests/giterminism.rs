//! `werf-giterminism.yaml`'s `allowUncommitted*` keys, as the unprivileged user: a
//! configuration file a key accepts is read from the working tree (and what is built
//! follows it); one that differs from the commit without an allowance is refused with
//! werf's message.

use crate::common::{Env, git, git_project, registry, rootless_env, run_ok, stderr, stdout, write};
use std::path::Path;

/// Commit `werf-giterminism.yaml` with `text`, and nothing else.
fn allow(dir: &Path, text: &str) {
    write(dir, "werf-giterminism.yaml", &format!("giterminismConfigVersion: 1\n{text}"));
    git(dir, &["add", "werf-giterminism.yaml"]);
    git(dir, &["commit", "-q", "-m", "giterminism", "--", "werf-giterminism.yaml"]);
}

fn refused(out: &std::process::Output, want: &str) {
    assert!(!out.status.success(), "not refused: {}", stdout(out));
    assert!(stderr(out).contains(want), "wanted {want:?} in:\n{}", stderr(out));
    assert!(stderr(out).contains("You may be interested in the development mode"), "{}", stderr(out));
}

/// werf.yaml (`config.allowUncommitted`), `.werf` partials (`allowUncommittedTemplates`),
/// `.Files` (`goTemplateRendering.allowUncommittedFiles`) and werf-giterminism.yaml itself
/// (never accepted uncommitted).
#[test]
fn uncommitted_config_files_as_giterminism_allows() {
    if !rootless_env("uncommitted_config_files_as_giterminism_allows") {
        return;
    }
    let env = Env::new();
    let dir = env.path().join("project");
    let werf = |tag: &str| {
        format!(
            "project: gtm\nconfigVersion: 1\n---\n{{{{ include \"part.tmpl\" . }}}}\nfrom: alpine:{tag}\nshell:\n  install: echo {{{{ .Files.Get \"notes.txt\" | trim }}}} {{{{ .Files.Glob \"extra/*\" | len }}}}\n"
        )
    };
    git_project(
        &dir,
        &[
            ("werf.yaml", &werf("3.19")),
            (".werf/part.tmpl", "image: committed"),
            ("notes.txt", "committed-note\n"),
            ("werf-giterminism.yaml", "giterminismConfigVersion: 1\n"),
        ],
        &[],
    );
    let render = || env.slipway().args(["config", "render", "--dir"]).arg(&dir).output().unwrap();
    assert!(
        stdout(&run_ok(env.slipway().args(["config", "render", "--dir"]).arg(&dir)))
            .ends_with("image: committed\nfrom: alpine:3.19\nshell:\n  install: echo committed-note 0\n")
    );

    // .Files: a deleted file (git status lists it), a changed one and an untracked one.
    std::fs::remove_file(dir.join("notes.txt")).unwrap();
    refused(&render(), "{{ .Files.Get \"notes.txt\" }}: the file \"notes.txt\" must be committed");
    write(&dir, "notes.txt", "edited-note\n");
    write(&dir, "extra/new.txt", "new\n");
    refused(&render(), "{{ .Files.Get \"notes.txt\" }}: the file \"notes.txt\" must be committed");
    allow(&dir, "config:\n  goTemplateRendering:\n    allowUncommittedFiles: [notes.txt]\n");
    refused(&render(), "the untracked file \"extra/new.txt\" must be committed");
    allow(&dir, "config:\n  goTemplateRendering:\n    allowUncommittedFiles: [notes.txt, \"extra/*\"]\n");
    let out = run_ok(env.slipway().args(["config", "render", "--dir"]).arg(&dir));
    assert!(stdout(&out).ends_with("install: echo edited-note 1\n"), "{}", stdout(&out));

    // Partials.
    let files = "  goTemplateRendering:\n    allowUncommittedFiles: [notes.txt, extra]\n";
    write(&dir, ".werf/part.tmpl", "image: edited");
    refused(&render(), "the file \".werf/part.tmpl\" must be committed");
    allow(&dir, &format!("config:\n  allowUncommittedTemplates: [\".werf/**/*.tmpl\"]\n{files}"));
    let out = run_ok(env.slipway().args(["config", "render", "--dir"]).arg(&dir));
    assert!(stdout(&out).contains("image: edited\nfrom: alpine:3.19\n"), "{}", stdout(&out));

    // werf.yaml.
    write(&dir, "werf.yaml", &werf("3.20"));
    refused(&render(), "unable to read werf config: the file \"werf.yaml\" must be committed");
    allow(&dir, &format!("config:\n  allowUncommitted: true\n  allowUncommittedTemplates: [.werf]\n{files}"));
    let out = run_ok(env.slipway().args(["config", "render", "--dir"]).arg(&dir));
    assert!(stdout(&out).ends_with("image: edited\nfrom: alpine:3.20\nshell:\n  install: echo edited-note 1\n"));

    // An accepted symlink must lead to an accepted path inside the work tree.
    std::fs::remove_file(dir.join("notes.txt")).unwrap();
    write(&dir, "other.txt", "other\n");
    std::os::unix::fs::symlink("other.txt", dir.join("notes.txt")).unwrap();
    let out = render();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("accepted file \"notes.txt\" check failed: the link target \"other.txt\" should be also accepted by giterminism config"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(dir.join("notes.txt")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", dir.join("notes.txt")).unwrap();
    let out = render();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("the file \"/etc/hostname\" not found in the project directory"), "{}", stderr(&out));
    std::fs::remove_file(dir.join("notes.txt")).unwrap();
    std::os::unix::fs::symlink("extra/new.txt", dir.join("notes.txt")).unwrap();
    let out = run_ok(env.slipway().args(["config", "render", "--dir"]).arg(&dir));
    assert!(stdout(&out).ends_with("install: echo new 1\n"), "{}", stdout(&out));

    // werf-giterminism.yaml itself is never read uncommitted.
    write(&dir, "werf-giterminism.yaml", "giterminismConfigVersion: 1\nconfig:\n  allowUncommitted: true\n");
    refused(&render(), "unable to read werf giterminism config: the file \"werf-giterminism.yaml\" must be committed");
}

/// The Dockerfile (`dockerfile.allowUncommitted`) and `.dockerignore`
/// (`dockerfile.allowUncommittedDockerignoreFiles`): refused while uncommitted, then
/// read from the working tree once allowed, the image built from what was read.
#[test]
fn uncommitted_dockerfile_and_dockerignore_as_giterminism_allows() {
    let test = "uncommitted_dockerfile_and_dockerignore_as_giterminism_allows";
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else {
        return;
    };
    let env = Env::new();
    let dir = env.path().join("project");
    let df = |word: &str| format!("FROM {reg}/base/busybox:latest\nCOPY . /ctx/\nRUN echo {word} > /df.txt\n");
    git_project(
        &dir,
        &[
            ("werf.yaml", "project: gtmdf\nconfigVersion: 1\n---\nimage: app\ndockerfile: docker/Dockerfile\n"),
            ("docker/Dockerfile", &df("committed")),
            (".dockerignore", "secret.txt\n"),
            ("a.txt", "a\n"),
            ("secret.txt", "s\n"),
            ("werf-giterminism.yaml", "giterminismConfigVersion: 1\n"),
        ],
        &[],
    );
    let build = || env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&dir).output().unwrap();
    let inspect = || {
        let mut c = env.slipway();
        c.args(["run", "app", "--insecure-registry", "--dir"]).arg(&dir);
        c.args(["--", "/bin/sh", "-c", "cat /df.txt; ls /ctx"]);
        stdout(&run_ok(&mut c))
    };
    let out = build();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(inspect(), "committed\na.txt\ndocker\nwerf-giterminism.yaml\nwerf.yaml\n");

    // The Dockerfile.
    write(&dir, "docker/Dockerfile", &df("edited"));
    refused(
        &build(),
        "unable to read dockerfile \"docker/Dockerfile\": the file \"docker/Dockerfile\" must be committed",
    );
    allow(&dir, "config:\n  dockerfile:\n    allowUncommitted: [\"docker/*\"]\n");
    let out = build();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("built in"), "{}", stdout(&out));
    assert_eq!(inspect(), "edited\na.txt\ndocker\nwerf-giterminism.yaml\nwerf.yaml\n");

    // `.dockerignore`.
    write(&dir, ".dockerignore", "a.txt\n");
    refused(
        &build(),
        "unable to read dockerignore file \".dockerignore\": the file \".dockerignore\" must be committed",
    );
    allow(
        &dir,
        "config:\n  dockerfile:\n    allowUncommitted: [docker]\n    allowUncommittedDockerignoreFiles: [.dockerignore]\n",
    );
    let out = build();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(inspect(), "edited\ndocker\nsecret.txt\nwerf-giterminism.yaml\nwerf.yaml\n");

    // werf's `DOCKERFILE.dockerignore` comes first; an untracked one is refused too.
    write(&dir, "docker/Dockerfile.dockerignore", "secret.txt\na.txt\n");
    refused(&build(), "the untracked file \"docker/Dockerfile.dockerignore\" must be committed");
    allow(
        &dir,
        "config:\n  dockerfile:\n    allowUncommitted: [docker]\n    allowUncommittedDockerignoreFiles: [\"**/*.dockerignore\"]\n",
    );
    let out = build();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(inspect(), "edited\ndocker\nwerf-giterminism.yaml\nwerf.yaml\n");
}
