//! werf's command line, end to end: flag shapes a werf user types, and what they do.

use crate::common::{Env, git_project, registry, rootless_env, run_ok, stderr, stdout};
use crate::repo::fresh_repo;
use std::process::Command;

const WERF_YAML: &str = "project: clitest\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\nargs:\n  NAME: app\n---\nimage: worker\ndockerfile: Dockerfile\nargs:\n  NAME: worker\n---\nimage: base\nfinal: false\ndockerfile: Dockerfile\nargs:\n  NAME: base\n";

fn project(env: &Env, reg: &str) -> std::path::PathBuf {
    let dir = env.path().join("project");
    let df = format!("FROM {reg}/base/busybox:latest\nARG NAME\nRUN echo \"I am $NAME\" > /name.txt\n");
    git_project(&dir, &[("werf.yaml", WERF_YAML), ("Dockerfile", &df)], &[]);
    dir
}

/// `skopeo list-tags`, sorted.
fn tags(repo: &str) -> Vec<String> {
    let out = Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{repo}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo list-tags {repo}: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut t: Vec<String> = v["Tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    t.sort();
    t
}

fn digest(image: &str) -> String {
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo inspect {image}: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

/// `--add-custom-tag` (flag and `WERF_ADD_CUSTOM_TAG_*`) tags the final images in
/// `--repo`, then in `--final-repo` when there is one; the tags name the content-based
/// tag's manifest. Bare `--insecure-registry` reaches the plain-HTTP test registry.
#[test]
fn add_custom_tag_tags_final_images_in_the_repo() {
    let t = "add_custom_tag_tags_final_images_in_the_repo";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let dir = project(&env, &reg);
    let repo = fresh_repo(&reg, "custom-tags");
    let report = env.path().join("report.json");
    let out = run_ok(
        env.slipway()
            .env("WERF_ADD_CUSTOM_TAG_1", "%image_slug%-from-env")
            .args(["build", "--insecure-registry", "--repo", &repo, "--save-build-report", "--build-report-path"])
            .arg(&report)
            .args(["--add-custom-tag", "%image%-latest", "--add-custom-tag=v1-%image_safe_slug%", "--dir"])
            .arg(&dir),
    );
    assert!(stdout(&out).contains(&format!("tagged app as {repo}:app-latest")), "{}", stdout(&out));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let all = tags(&repo);
    for image in ["app", "worker"] {
        for tag in [format!("{image}-latest"), format!("v1-{image}"), format!("{image}-from-env")] {
            assert!(all.contains(&tag), "{tag} not in {all:?}");
            assert_eq!(digest(&format!("{repo}:{tag}")), r["Images"][image]["DockerImageDigest"], "{tag}");
        }
    }
    assert!(!all.iter().any(|t| t.starts_with("base")), "a non-final image was tagged: {all:?}");

    // --check-built-images checks the custom tags instead of adding them.
    let check = |tag: &str| {
        env.slipway()
            .args([
                "build",
                "--check-built-images",
                "--insecure-registry",
                "--repo",
                &repo,
                "--add-custom-tag",
                tag,
                "--dir",
            ])
            .arg(&dir)
            .output()
            .unwrap()
    };
    let out = check("%image%-latest");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = check("%image%-missing");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("check custom tag \"app-missing\" existence failed"), "{}", stderr(&out));
    assert!(!tags(&repo).contains(&"app-missing".to_string()));

    // With --final-repo the tags go there, with the content-based tag in the template.
    let fin = fresh_repo(&reg, "custom-tags-final");
    run_ok(
        env.slipway()
            .args([
                "build",
                "app",
                "--insecure-registry",
                "--repo",
                &repo,
                "--final-repo",
                &fin,
                "--add-custom-tag",
                "%image%-%image_content_based_tag%",
                "--dir",
            ])
            .arg(&dir),
    );
    let content = r["Images"]["app"]["DockerTag"].as_str().unwrap();
    let fin_tags = tags(&fin);
    assert!(fin_tags.contains(&format!("app-{content}")), "{fin_tags:?}");
    // `stage image` names the stage in --repo, even with --final-repo (werf's rule).
    let out = run_ok(
        env.slipway()
            .args(["stage", "image", "app", "--insecure-registry", "--repo", &repo, "--final-repo", &fin, "--dir"])
            .arg(&dir),
    );
    assert_eq!(stdout(&out), format!("{repo}:{content}\n"));

    // Refused before building: no --repo, and a template two images would share.
    for (args, want) in [
        (
            vec!["--add-custom-tag", "latest"],
            "custom tags can only be used with remote storage: --repo=ADDRESS param required",
        ),
        (
            vec!["--add-custom-tag", "latest", "--repo", repo.as_str()],
            "it is necessary to use the image name in the tag format",
        ),
    ] {
        let out =
            env.slipway().arg("build").args(&args).arg("--insecure-registry").arg("--dir").arg(&dir).output().unwrap();
        assert!(!out.status.success());
        assert!(stderr(&out).contains(want), "{}", stderr(&out));
    }
}

/// `WERF_INSECURE_REGISTRY=1` is the bare flag; `--insecure-registry=false` is not.
#[test]
fn insecure_registry_is_a_werf_boolean() {
    let t = "insecure_registry_is_a_werf_boolean";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let dir = project(&env, &reg);
    let out = env.slipway().args(["build", "app", "--insecure-registry=false", "--dir"]).arg(&dir).output().unwrap();
    assert!(!out.status.success(), "a plain-HTTP registry was used without --insecure-registry");
    let out = run_ok(env.slipway().env("WERF_INSECURE_REGISTRY", "1").args(["build", "app", "--dir"]).arg(&dir));
    assert!(stdout(&out).contains("Building image app"), "{}", stdout(&out));
    // `stage image` prints the last stage's name, as the report has it.
    let out = run_ok(env.slipway().args(["stage", "image", "app", "--dir"]).arg(&dir));
    let name = stdout(&out);
    assert!(name.starts_with("clitest:") && name.trim_end().len() == "clitest:".len() + 70, "{name:?}");
    let out = env.slipway().args(["stage", "image", "worker", "--dir"]).arg(&dir).output().unwrap();
    assert!(!out.status.success(), "stage image built an image");
}

/// `slugify` prints what `werf slugify` prints (werf's own examples).
#[test]
fn slugify_prints_werfs_output() {
    let env = Env::new();
    for (format, input, want) in [
        ("kubernetes-namespace", "feature-fix-2", "feature-fix-2\n"),
        ("kubernetes-namespace", "branch/one/!@#4.4-3", "branch-one-4-4-3-4fe08955\n"),
        ("kubernetes-namespace", "My_branch", "my-branch-8ebf2d1d\n"),
        (
            "helm-release",
            "looooooooooooooooooooooooooooooooooooooooooong_string",
            "looooooooooooooooooooooooooooooooooooooooooo-b150a895\n",
        ),
        ("docker-tag", "helo/ehlo", "helo-ehlo-b6f6ab1f\n"),
        ("docker-tag", "16.04", "16.04\n"),
    ] {
        let out = run_ok(env.slipway().args(["slugify", "-f", format, input]));
        assert_eq!(stdout(&out), want, "-f {format} {input}");
    }
    let out = env.slipway().args(["slugify", "x"]).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(stderr(&out), "Error: --format FORMAT argument required\n");
}

/// A werf flag slipway cannot honour stops the command with one line naming it.
#[test]
fn unsupported_flags_fail_with_one_line() {
    let env = Env::new();
    let dir = env.path().join("project");
    git_project(&dir, &[("werf.yaml", "project: x\nconfigVersion: 1\n")], &[]);
    for (args, want) in [
        (&["build", "--virtual-merge"][..], "Error: --virtual-merge is not supported by slipway\n"),
        (
            &["build", "--platform", "linux/arm64"][..],
            "Error: --platform linux/arm64 is not supported by slipway: it builds linux/amd64 only\n",
        ),
        (
            &["export", "--introspect-error", "--tag", "r/x:y"][..],
            "Error: --introspect-error is not supported by slipway\n",
        ),
        (&["run", "--follow"][..], "Error: --follow is not supported by slipway\n"),
        (
            &["build", "--allowed-backend-storage-volume-usage", "10GB"][..],
            "Error: host cleanup: mixing percentages and absolute units in backend storage group is not allowed (usage: \"10 GB\", margin: \"5\")\n",
        ),
    ] {
        let out = env.slipway().args(args).arg("--dir").arg(&dir).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(stderr(&out), want, "{args:?}");
    }
}

/// `--git-work-tree` must be the project's work tree; `--log-project-dir` prints the
/// project dir as werf does.
#[test]
fn git_work_tree_and_log_project_dir() {
    let t = "git_work_tree_and_log_project_dir";
    if !rootless_env(t) {
        return;
    }
    let env = Env::new();
    let dir = env.path().join("project");
    git_project(&dir, &[("werf.yaml", "project: x\nconfigVersion: 1\n")], &[]);
    let out = env.slipway().args(["build", "--git-work-tree"]).arg(env.path()).arg("--dir").arg(&dir).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not the work tree of --dir"), "{}", stderr(&out));
    let out =
        run_ok(env.slipway().args(["build", "--log-project-dir", "--git-work-tree"]).arg(&dir).arg("--dir").arg(&dir));
    let canonical = std::fs::canonicalize(&dir).unwrap();
    assert!(stdout(&out).starts_with(&format!("Using project dir: {}\n", canonical.display())), "{}", stdout(&out));
}
