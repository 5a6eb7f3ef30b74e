//! Registries as stage storage (`--repo`, secondary, cache and final repos), against the
//! real local registry, through a recording and fault-injecting proxy where it matters.

use crate::common::{Env, git_project, registry, rootless_env, run_ok, stderr, stdout};
use crate::proxy::Proxy;
use std::process::Command;

const WERF_YAML: &str = "project: repotest\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\n";

fn dockerfile(reg: &str, extra: &str) -> String {
    format!(
        "FROM {reg}/base/busybox:latest\nRUN echo built > /built.txt && mkdir /d && echo x > /d/x && chown 1234:5678 /d/x && chmod 640 /d/x && ln -s /d/x /d/link && ln /d/x /d/hard\nRUN rm /etc/os-release\n{extra}COPY hello.txt /app/hello.txt\nCMD [\"/bin/sh\", \"-c\", \"cat /built.txt /app/hello.txt\"]\n"
    )
}

/// A repository name no other test uses.
pub fn fresh_repo(reg: &str, name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{reg}/slipway-test/{name}-{}-{nanos}", std::process::id())
}

fn project(env: &Env, reg: &str, extra: &str) -> std::path::PathBuf {
    let dir = env.path().join("project");
    git_project(
        &dir,
        &[("werf.yaml", WERF_YAML), ("Dockerfile", &dockerfile(reg, extra)), ("hello.txt", "hello\n")],
        &[],
    );
    dir
}

fn build(env: &Env, dir: &std::path::Path, store: &str, args: &[&str]) -> (std::process::Output, serde_json::Value) {
    let report = env.path().join(format!("report-{store}.json"));
    let out = env
        .slipway()
        .env("XDG_DATA_HOME", env.path().join(store))
        .env("SLIPWAY_PUBLISH_GRACE_MS", "300")
        .arg("build")
        .arg("--dir")
        .arg(dir)
        .arg("--save-build-report")
        .arg("--build-report-path")
        .arg(&report)
        .args(args)
        .output()
        .unwrap();
    let r = std::fs::read(&report).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    (out, r)
}

fn ok(out: &std::process::Output) {
    assert!(out.status.success(), "build failed:\n{}\n{}", stdout(out), stderr(out));
}

fn image_name(r: &serde_json::Value) -> String {
    r["Images"]["app"]["DockerImageName"].as_str().unwrap_or_default().to_string()
}

pub fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").arg("-s").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every tag of `repo` names a manifest whose blobs are all there.
fn assert_repo_consistent(repo: &str) -> usize {
    let (host, path) = repo.split_once('/').unwrap();
    let tags: serde_json::Value =
        serde_json::from_str(&curl(&[&format!("http://{host}/v2/{path}/tags/list")])).unwrap();
    let tags = tags["tags"].as_array().cloned().unwrap_or_default();
    for t in &tags {
        let t = t.as_str().unwrap();
        let m = curl(&[
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &format!("http://{host}/v2/{path}/manifests/{t}"),
        ]);
        let m: serde_json::Value = serde_json::from_str(&m).unwrap_or_else(|e| panic!("manifest of {t}: {e}: {m}"));
        let mut digests = vec![m["config"]["digest"].as_str().unwrap().to_string()];
        digests.extend(m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()));
        for d in digests {
            let code =
                curl(&["-o", "/dev/null", "-w", "%{http_code}", "-I", &format!("http://{host}/v2/{path}/blobs/{d}")]);
            assert_eq!(code, "200", "tag {t} of {repo} names a missing blob {d}");
        }
    }
    tags.len()
}

pub fn podman_run(env: &Env, image: &str) -> String {
    let home = env.path().join("podman");
    std::fs::create_dir_all(&home).unwrap();
    // podman refuses a runroot path longer than 50 characters, and wants the same one
    // for a given root: both live in a short directory of their own per call.
    let dirs = tempfile::Builder::new().prefix("podman").tempdir_in("/tmp").unwrap();
    let out = crate::common::podman(&home, dirs.path())
        .args(["run", "--rm", "--tls-verify=false", "--network", "none", "--runtime", "runc", image])
        .output()
        .unwrap();
    crate::common::podman_cleanup(&home, dirs.path());
    assert!(out.status.success(), "podman run {image}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn repo_build_runs_in_podman_and_a_fresh_store_downloads_no_layer() {
    let t = "repo_build_runs_in_podman_and_a_fresh_store_downloads_no_layer";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let dir = project(&env, &reg, "");
    let repo = fresh_repo(&reg, "podman");
    let (out, r) = build(&env, &dir, "store1", &["--insecure-registry", "--repo", &repo]);
    ok(&out);
    let name = image_name(&r);
    assert!(name.starts_with(&format!("{repo}:")), "{r}");
    assert_eq!(r["Images"]["app"]["DockerRepo"], repo.as_str());
    assert_eq!(podman_run(&env, &name), "built\nhello\n");
    let inspect = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspect["Labels"]["werf"], "repotest");
    assert_eq!(inspect["Digest"], r["Images"]["app"]["DockerImageDigest"]);

    // `stages list` shows the four stages, in the repo and in the local store alike.
    let tag = r["Images"]["app"]["DockerTag"].as_str().unwrap();
    for (store, extra) in [("store1", vec!["--repo", repo.as_str(), "--insecure-registry"]), ("store1", vec![])] {
        let out = run_ok(
            env.slipway()
                .env("XDG_DATA_HOME", env.path().join(store))
                .args(["stages", "list", "--dir"])
                .arg(&dir)
                .args(&extra),
        );
        let text = stdout(&out);
        assert_eq!(text.lines().count(), 6, "{text}");
        assert!(text.lines().next().unwrap().starts_with("DIGEST"), "{text}");
        assert!(text.lines().last().unwrap().ends_with(tag), "{text}");
    }

    // A fresh store with the same repo: nothing rebuilt, no layer downloaded.
    let proxy = Proxy::start(&reg, 0);
    let via = repo.replacen(&reg, &proxy.addr, 1);
    let (out, r2) = build(&env, &dir, "store2", &["--insecure-registry", "--repo", &via]);
    ok(&out);
    assert!(!stdout(&out).contains("built in"), "{}", stdout(&out));
    assert_eq!(r2["Images"]["app"]["Rebuilt"], false);
    assert_eq!(r2["Images"]["app"]["DockerTag"], r["Images"]["app"]["DockerTag"]);
    // Only configs: the report describes every stage as werf does, which takes each
    // stage's manifest and config (never a layer).
    let configs: Vec<&str> = r2["Images"]["app"]["Stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["DockerImageID"].as_str().unwrap())
        .collect();
    let blob_gets: Vec<String> =
        proxy.requests().into_iter().filter(|l| l.starts_with("GET ") && l.contains("/blobs/")).collect();
    assert!(
        blob_gets.iter().all(|l| configs.iter().any(|c| l.contains(c))),
        "layer blobs were downloaded: {blob_gets:?}"
    );
    assert!(blob_gets.len() <= configs.len(), "{blob_gets:?}");
    // Without --repo, that store still knows where the stage's layers are.
    let out = run_ok(
        env.slipway()
            .env("XDG_DATA_HOME", env.path().join("store2"))
            .args(["run", "--insecure-registry", "--dir"])
            .arg(&dir),
    );
    assert_eq!(stdout(&out), "built\nhello\n");
    // Those layers came from the registry and were unpacked here: owners, modes,
    // hardlinks, symlinks and whiteouts survived commit, push, pull and unpack.
    let out = run_ok(
        env.slipway()
            .env("XDG_DATA_HOME", env.path().join("store2"))
            .args(["run", "--insecure-registry", "--dir"])
            .arg(&dir)
            .args([
                "--",
                "/bin/sh",
                "-c",
                "stat -c '%n %u:%g %a %h' /d/x /d/hard; readlink /d/link; test -e /etc/os-release || echo whiteout",
            ]),
    );
    assert_eq!(stdout(&out), "/d/x 1234:5678 640 2\n/d/hard 1234:5678 640 2\n/d/x\nwhiteout\n");
    assert_repo_consistent(&repo);
}

#[test]
fn stages_delete_removes_the_stage_from_the_repo_and_the_local_store() {
    let t = "stages_delete_removes_the_stage_from_the_repo_and_the_local_store";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let dir = project(&env, &reg, "");
    let repo = fresh_repo(&reg, "delete");
    let with_repo = ["--insecure-registry", "--repo", repo.as_str()];
    let (out, r) = build(&env, &dir, "s1", &with_repo);
    ok(&out);
    let tag = r["Images"]["app"]["DockerTag"].as_str().unwrap().to_string();
    let stages = |args: &[&str]| {
        env.slipway()
            .env("XDG_DATA_HOME", env.path().join("s1"))
            .arg("stages")
            .args(args)
            .arg("--dir")
            .arg(&dir)
            .output()
            .unwrap()
    };
    let before = stdout(&stages(&[&["list"][..], &with_repo].concat())).lines().count();

    let out = stages(&[&["delete", &tag][..], &with_repo].concat());
    ok(&out);
    assert_eq!(stdout(&out), format!("Deleted stage {tag} from {repo}\n"));
    for args in [&[&["list"][..], &with_repo].concat(), &vec!["list"]] {
        let text = stdout(&stages(args));
        assert_eq!(text.lines().count(), before - 1, "{text}");
        assert!(!text.contains(&tag), "{text}");
    }
    assert!(!curl(&[&format!("http://{}/tags/list", repo.replacen('/', "/v2/", 1))]).contains(&tag));
    assert_eq!(assert_repo_consistent(&repo), before - 2);
    // Deleting it again fails: the repository has no such stage.
    let out = stages(&[&["delete", &tag][..], &with_repo].concat());
    assert!(!out.status.success() && stderr(&out).contains(&tag), "{}", stderr(&out));

    // The next build stores the final stage again, under a new ID.
    let (out, r) = build(&env, &dir, "s1", &with_repo);
    ok(&out);
    assert_ne!(r["Images"]["app"]["DockerTag"].as_str().unwrap(), tag);
    assert_eq!(stdout(&out).matches("built in").count(), 1, "{}", stdout(&out));
}

#[test]
fn four_concurrent_builders_agree_on_one_final_image() {
    let t = "four_concurrent_builders_agree_on_one_final_image";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let dir = project(&env, &reg, "");
    let repo = fresh_repo(&reg, "race");
    let children: Vec<_> = (0..4)
        .map(|i| {
            let report = env.path().join(format!("race-{i}.json"));
            let child = env
                .slipway()
                .env("XDG_DATA_HOME", env.path().join(format!("race-store-{i}")))
                // Separate runtime dirs: no shared host lock, as on separate hosts.
                .env("XDG_RUNTIME_DIR", env.path().join(format!("race-run-{i}")))
                .args(["build", "--insecure-registry", "--repo", &repo, "--dir"])
                .arg(&dir)
                .arg("--save-build-report")
                .arg("--build-report-path")
                .arg(&report)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (child, report)
        })
        .collect();
    let mut names = Vec::new();
    for (child, report) in children {
        let out = child.wait_with_output().unwrap();
        ok(&out);
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
        names.push(image_name(&r));
    }
    assert!(names.iter().all(|n| *n == names[0]), "builders disagree: {names:?}");
    let inspect = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{}", names[0]))
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    assert!(assert_repo_consistent(&repo) >= 4);
}

#[test]
fn two_builds_share_one_local_store() {
    let t = "two_builds_share_one_local_store";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let dir = project(&env, &reg, "");
    let spawn = || {
        env.slipway()
            .env("XDG_DATA_HOME", env.path().join("shared"))
            .args(["build", "--insecure-registry", "--dir"])
            .arg(&dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    ok(&a.wait_with_output().unwrap());
    ok(&b.wait_with_output().unwrap());
    let (out, r) = build(&env, &dir, "shared", &[]);
    ok(&out);
    assert_eq!(r["Images"]["app"]["Rebuilt"], false, "{}", stdout(&out));
    let out = run_ok(env.slipway().env("XDG_DATA_HOME", env.path().join("shared")).args(["run", "--dir"]).arg(&dir));
    assert_eq!(stdout(&out), "built\nhello\n");
    let tmp = env.path().join("shared/slipway/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "temp files left in the store: {left:?}");
}

#[test]
fn faults_and_an_interrupted_push_leave_the_repo_consistent() {
    let t = "faults_and_an_interrupted_push_leave_the_repo_consistent";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let dir = project(&env, &reg, "RUN head -c 40000000 /dev/urandom > /big\n");
    let repo = fresh_repo(&reg, "faults");

    // Kill -9 in the middle of uploading the big layer.
    let proxy = Proxy::start(&reg, 0);
    let via = repo.replacen(&reg, &proxy.addr, 1);
    let mut child = env
        .slipway()
        .env("XDG_DATA_HOME", env.path().join("killed"))
        .args(["build", "--insecure-registry", "--repo", &via, "--dir"])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let uploads = || proxy.requests().iter().filter(|l| l.starts_with("PUT ") && l.contains("/blobs/uploads/")).count();
    while uploads() < 3 && started.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_repo_consistent(&repo);

    // Then a build through a proxy that fails its first requests (500s and resets).
    let faulty = Proxy::start(&reg, 4);
    let via = repo.replacen(&reg, &faulty.addr, 1);
    let (out, r) = build(&env, &dir, "after", &["--insecure-registry", "--repo", &via]);
    ok(&out);
    assert!(faulty.requests().len() > 4);
    assert!(assert_repo_consistent(&repo) >= 5);
    assert_eq!(podman_run(&env, &image_name(&r).replacen(&faulty.addr, &reg, 1)), "built\nhello\n");
}

#[test]
fn secondary_cache_and_final_repos() {
    let t = "secondary_cache_and_final_repos";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let dir = project(&env, &reg, "");
    let (a, b, cache, fin) =
        (fresh_repo(&reg, "sec-a"), fresh_repo(&reg, "sec-b"), fresh_repo(&reg, "cache"), fresh_repo(&reg, "final"));
    let insecure = ["--insecure-registry"];
    let (out, ra) = build(&env, &dir, "s1", &[&insecure[..], &["--repo", &a]].concat());
    ok(&out);

    // Secondary → primary: copied, not built.
    let (out, rb) = build(
        &env,
        &dir,
        "s2",
        &[&insecure[..], &["--repo", &b, "--secondary-repo", &a, "--cache-repo", &cache, "--final-repo", &fin]]
            .concat(),
    );
    ok(&out);
    assert!(!stdout(&out).contains("built in"), "{}", stdout(&out));
    assert!(stdout(&out).contains("copied stage"), "{}", stdout(&out));
    let tag = rb["Images"]["app"]["DockerTag"].as_str().unwrap().to_string();
    assert_eq!(tag, ra["Images"]["app"]["DockerTag"].as_str().unwrap());
    let last = rb["Images"]["app"]["Stages"].as_array().unwrap().iter().find(|s| s["SourceType"] == "secondary");
    assert!(last.is_some(), "{rb}");
    assert_eq!(assert_repo_consistent(&b), 1);
    // Cache repo filled with the stage taken; final repo holds the final image, same tag.
    assert_eq!(assert_repo_consistent(&cache), 1);
    assert_eq!(assert_repo_consistent(&fin), 1);
    assert_eq!(rb["Images"]["app"]["DockerImageName"], format!("{fin}:{tag}").as_str());
    assert_eq!(podman_run(&env, &format!("{fin}:{tag}")), "built\nhello\n");

    // A fresh store prefers the cache repo for pulls.
    let (out, rc) = build(&env, &dir, "s3", &[&insecure[..], &["--repo", &b, "--cache-repo", &cache]].concat());
    ok(&out);
    // Found in the primary (fetched from the cache repo): werf reports such stages as
    // not rebuilt with an empty SourceType; the log says where they came from.
    let stages = rc["Images"]["app"]["Stages"].as_array().unwrap();
    assert!(stages.iter().all(|s| s["SourceType"] == "" && s["Rebuilt"] == false), "{rc}");
    assert!(stdout(&out).contains("cached (cache)"), "{}", stdout(&out));
    // A new stage built with a cache repo lands in both.
    let dir2 = env.path().join("project2");
    git_project(
        &dir2,
        &[("werf.yaml", WERF_YAML), ("Dockerfile", &dockerfile(&reg, "ENV CHANGED=1\n")), ("hello.txt", "hello\n")],
        &[],
    );
    let (out, _) = build(&env, &dir2, "s4", &[&insecure[..], &["--repo", &b, "--cache-repo", &cache]].concat());
    ok(&out);
    assert!(assert_repo_consistent(&cache) >= 3);
}

/// A base image whose layers are zstd-compressed (as podman pushes with
/// `--compression-format zstd`): slipway unpacks them, builds on them, and the image it
/// pushes keeps the base's zstd blob beside its own gzip layer; podman runs it.
#[test]
fn builds_on_a_base_with_zstd_layers() {
    let t = "builds_on_a_base_with_zstd_layers";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let base = format!("{}:latest", fresh_repo(&reg, "zstd-base"));
    // Through an OCI layout: a registry that has the gzip blob already would be told to
    // reuse it, and skopeo 1.9 cannot force the recompression.
    let layout = format!("oci:{}:latest", env.path().join("zstd-layout").display());
    for (from, to, compress) in [
        (format!("docker://{reg}/base/busybox:latest"), layout.clone(), true),
        (layout, format!("docker://{base}"), false),
    ] {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--format", "oci"]);
        if compress {
            cmd.args(["--dest-compress-format", "zstd"]);
        }
        let copy = cmd.arg(&from).arg(&to).output().unwrap();
        assert!(copy.status.success(), "skopeo copy {from} {to}: {}", stderr(&copy));
    }
    let dir = env.path().join("project");
    git_project(
        &dir,
        &[
            ("werf.yaml", "project: zstd\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\n"),
            ("Dockerfile", &format!("FROM {base}\nRUN echo on-zstd > /built\nCMD [\"cat\", \"/built\"]\n")),
        ],
        &[],
    );
    let repo = fresh_repo(&reg, "zstd-app");
    let (out, r) = build(&env, &dir, "store", &["--insecure-registry", "--repo", &repo]);
    ok(&out);
    let name = image_name(&r);
    let inspect = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{name}")])
        .output()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let types: Vec<&str> =
        manifest["layers"].as_array().unwrap().iter().map(|l| l["mediaType"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.oci.image.layer.v1.tar+gzip"],
        "{manifest}"
    );
    assert_eq!(podman_run(&env, &name), "on-zstd\n");
}
