//! `slipway export`: clean images under templated tags, checked with skopeo and podman.

use crate::common::{Env, git_project, registry, rootless_env, run_ok, stderr, stdout};
use crate::repo::{curl, fresh_repo, podman_run};
use std::process::Command;

const WERF_YAML: &str = "project: exporttest\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\nargs:\n  NAME: app\n---\nimage: worker\ndockerfile: Dockerfile\nargs:\n  NAME: worker\n---\nimage: tool\ndockerfile: Dockerfile\nargs:\n  NAME: tool\n";

fn project(env: &Env, reg: &str) -> std::path::PathBuf {
    let dir = env.path().join("project");
    let df = format!(
        "FROM {reg}/base/busybox:latest\nARG NAME\nRUN echo \"I am $NAME\" > /name.txt\nLABEL custom=kept\nCMD [\"cat\", \"/name.txt\"]\n"
    );
    git_project(&dir, &[("werf.yaml", WERF_YAML), ("Dockerfile", &df)], &[]);
    dir
}

fn inspect(image: &str, extra: &[&str]) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .args(extra)
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo inspect {image}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn layers(image: &str, extra: &[&str]) -> Vec<String> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .args(extra)
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo inspect --raw {image}: {}", stderr(&out));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect()
}

#[test]
fn exports_two_of_three_images_without_werf_labels() {
    let t = "exports_two_of_three_images_without_werf_labels";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let dir = project(&env, &reg);
    let repo = fresh_repo(&reg, "export-stages");
    let dest = fresh_repo(&reg, "exported");
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

    let out = run_ok(
        env.slipway()
            .env("WERF_EXPORT_ADD_LABEL_EXTRA", "from.env=1\nalso.env=2")
            .args([
                "export",
                "app",
                "worker",
                "--require-built-images",
                "--insecure-registry",
                "--repo",
                &repo,
                "--dir",
            ])
            .arg(&dir)
            .args(["--tag", &format!("{dest}/%image%:%image_content_based_tag%")])
            .args([
                "--add-label",
                "org.opencontainers.image.source=https://git.example.com/app",
                "--add-label",
                "team=core",
            ]),
    );
    assert!(!stdout(&out).contains("built in"), "{}", stdout(&out));
    for name in ["app", "worker"] {
        let tag = r["Images"][name]["DockerTag"].as_str().unwrap();
        let exported = format!("{dest}/{name}:{tag}");
        let info = inspect(&exported, &[]);
        let labels = info["Labels"].as_object().unwrap();
        let keys: Vec<&String> = labels.keys().collect();
        assert!(keys.iter().all(|k| !k.starts_with("werf")), "werf labels left: {keys:?}");
        for (k, v) in [
            ("org.opencontainers.image.source", "https://git.example.com/app"),
            ("team", "core"),
            ("from.env", "1"),
            ("also.env", "2"),
            ("custom", "kept"),
        ] {
            assert_eq!(labels.get(k).and_then(|v| v.as_str()), Some(v), "{k} in {labels:?}");
        }
        let stage = r["Images"][name]["DockerImageName"].as_str().unwrap();
        assert_eq!(layers(&exported, &[]), layers(stage, &[]), "layers differ from the stage's");
        assert_eq!(podman_run(&env, &exported), format!("I am {name}\n"));
    }
    let (host, path) = dest.split_once('/').unwrap();
    let tool_tags = curl(&[&format!("http://{host}/v2/{path}/tool/tags/list")]);
    assert!(!tool_tags.contains("\"tags\":[\""), "tool was exported: {tool_tags}");
}

#[test]
fn colliding_tags_are_refused() {
    let t = "colliding_tags_are_refused";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let dir = project(&env, &reg);
    let out = env
        .slipway()
        .args(["export", "app", "worker", "--insecure-registry", "--dir"])
        .arg(&dir)
        .args(["--tag", &format!("{reg}/slipway-test/same:latest")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("no image placeholder"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!stdout(&out).contains("built in"), "it built before refusing: {}", stdout(&out));
}

#[test]
fn exports_from_the_local_store_to_a_registry_with_credentials() {
    let t = "exports_from_the_local_store_to_a_registry_with_credentials";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let Some(auth_reg) = std::env::var("SLIPWAY_TEST_AUTH_REGISTRY").ok().filter(|s| !s.is_empty()) else {
        assert!(std::env::var("SLIPWAY_REQUIRE_PRIVILEGED_TESTS").is_err(), "SLIPWAY_TEST_AUTH_REGISTRY is not set");
        return;
    };
    let user = std::env::var("SLIPWAY_TEST_AUTH_USER").unwrap_or_else(|_| "slipway".into());
    let pass = std::env::var("SLIPWAY_TEST_AUTH_PASSWORD").unwrap_or_else(|_| "slipway-pass".into());
    let env = Env::new();
    let dir = project(&env, &reg);
    let docker = env.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auth = base64_encode(&format!("{user}:{pass}"));
    std::fs::write(docker.join("config.json"), format!("{{\"auths\":{{\"{auth_reg}\":{{\"auth\":\"{auth}\"}}}}}}"))
        .unwrap();
    let dest = fresh_repo(&auth_reg, "local-export");
    let out = env
        .slipway()
        .env("DOCKER_CONFIG", &docker)
        .args(["export", "app", "--insecure-registry", "--insecure-registry", "--dir"])
        .arg(&dir)
        .args(["--tag", &format!("{dest}:%image_safe_slug%"), "--add-label", "k=v"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let creds = format!("{user}:{pass}");
    let info = inspect(&format!("{dest}:app"), &["--creds", &creds]);
    assert_eq!(info["Labels"]["k"], "v");
    assert!(info["Labels"].as_object().unwrap().keys().all(|k| !k.starts_with("werf")));
    // Registry to registry: stages in one registry, export to the other with its own
    // credentials, from a fresh store — the layers never touch the local disk.
    let repo = fresh_repo(&reg, "cross-stages");
    run_ok(
        env.slipway()
            .env("XDG_DATA_HOME", env.path().join("builder"))
            .args(["build", "app", "--insecure-registry", "--repo", &repo, "--dir"])
            .arg(&dir),
    );
    let fresh = env.path().join("fresh");
    let dest2 = fresh_repo(&auth_reg, "cross-export");
    let out = env
        .slipway()
        .env("XDG_DATA_HOME", &fresh)
        .env("DOCKER_CONFIG", &docker)
        .args(["export", "app", "--require-built-images", "--repo", &repo, "--insecure-registry", "--dir"])
        .arg(&dir)
        .args(["--tag", &format!("{dest2}:%image_content_based_tag%")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let layers_dir = fresh.join("slipway/layers");
    assert_eq!(std::fs::read_dir(&layers_dir).unwrap().count(), 0, "layers were unpacked locally");
    for b in std::fs::read_dir(fresh.join("slipway/blobs/sha256")).unwrap().flatten() {
        assert!(
            b.metadata().unwrap().len() < 64 * 1024,
            "a layer-sized blob went through the local disk: {:?}",
            b.path()
        );
    }
    let exported = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("Exported app to "))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let info = inspect(&exported, &["--creds", &creds]);
    assert!(info["Labels"].as_object().unwrap().keys().all(|k| !k.starts_with("werf")));

    // Without credentials the export fails and says why.
    let out = env
        .slipway()
        .env("DOCKER_CONFIG", env.path().join("nodocker"))
        .args(["export", "app", "--insecure-registry", "--insecure-registry", "--dir"])
        .arg(&dir)
        .args(["--tag", &format!("{dest}:again")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&auth_reg), "{}", stderr(&out));
}

fn base64_encode(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &c)| acc | (u32::from(c) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn onbuild_triggers_of_an_exported_base_run_in_the_child() {
    let t = "onbuild_triggers_of_an_exported_base_run_in_the_child";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let base_dir = env.path().join("base");
    let werf = "project: onbuild\nconfigVersion: 1\n---\nimage: base\ndockerfile: Dockerfile\n---\nimage: copier\ndockerfile: Dockerfile.copy\n";
    let df =
        format!("FROM {reg}/base/busybox:latest\nONBUILD RUN echo triggered > /trig\nONBUILD ENV FROM_TRIGGER=yes\n");
    let df_copy = format!("FROM {reg}/base/busybox:latest\nONBUILD COPY . /src\n");
    git_project(&base_dir, &[("werf.yaml", werf), ("Dockerfile", &df), ("Dockerfile.copy", &df_copy)], &[]);
    let dest = fresh_repo(&reg, "onbuild");
    run_ok(
        env.slipway()
            .args(["export", "--insecure-registry", "--dir"])
            .arg(&base_dir)
            .args(["--tag", &format!("{dest}/%image%:latest")]),
    );

    let child = env.path().join("child");
    let werf = "project: child\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\n---\nimage: bad\ndockerfile: Dockerfile.bad\n";
    git_project(
        &child,
        &[
            ("werf.yaml", werf),
            ("Dockerfile", &format!("FROM {dest}/base:latest\nRUN cat /trig\n")),
            ("Dockerfile.bad", &format!("FROM {dest}/copier:latest\n")),
        ],
        &[],
    );
    let out = run_ok(env.slipway().args(["run", "app", "--insecure-registry", "--dir"]).arg(&child).args([
        "--",
        "/bin/sh",
        "-c",
        "cat /trig; echo $FROM_TRIGGER",
    ]));
    assert_eq!(stdout(&out), "triggered\nyes\n");
    let out = env.slipway().args(["build", "bad", "--insecure-registry", "--dir"]).arg(&child).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("COPY and ADD triggers are not supported yet"), "{}", stderr(&out));
}

#[test]
fn image_spec_rewrites_the_final_config() {
    let t = "image_spec_rewrites_the_final_config";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let dir = env.path().join("project");
    let werf = "project: imgspec\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\nimageSpec:\n  author: Someone\n  clearHistory: true\n  config:\n    labels:\n      team: \"%project%-%image%\"\n    removeLabels: [remove.me, /^tmp\\./]\n    env:\n      MODE: prod\n    removeEnv: [SECRET]\n    user: \"1000\"\n    workingDir: /tmp\n    expose: [\"8080\"]\n";
    let df = format!("FROM {reg}/base/busybox:latest\nLABEL remove.me=1 tmp.x=2 keep=3\nENV SECRET=s\n");
    git_project(&dir, &[("werf.yaml", werf), ("Dockerfile", &df)], &[]);
    let out = run_ok(env.slipway().args(["run", "--insecure-registry", "--dir"]).arg(&dir).args([
        "--",
        "/bin/sh",
        "-c",
        "id -u; pwd; echo \"$MODE/$SECRET\"",
    ]));
    assert_eq!(stdout(&out), "1000\n/tmp\nprod/\n");
    assert!(stderr(&out).contains("imageSpec"), "{}", stderr(&out));
    let dest = fresh_repo(&reg, "imgspec");
    run_ok(
        env.slipway()
            .args(["export", "--insecure-registry", "--dir"])
            .arg(&dir)
            .args(["--tag", &format!("{dest}:latest")]),
    );
    let info = inspect(&format!("{dest}:latest"), &[]);
    let labels = info["Labels"].as_object().unwrap();
    let mut keys: Vec<&String> = labels.keys().collect();
    keys.sort();
    assert_eq!(keys, ["keep", "team"], "{labels:?}");
    assert_eq!(labels["team"], "imgspec-app");
    let raw = Command::new("skopeo")
        .args(["inspect", "--config", "--tls-verify=false"])
        .arg(format!("docker://{dest}:latest"))
        .output()
        .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(config["author"], "Someone");
    assert!(config["history"].as_array().is_none_or(|h| h.is_empty()), "{config}");
    assert!(config["config"]["ExposedPorts"].as_object().unwrap().contains_key("8080/tcp"));
}
