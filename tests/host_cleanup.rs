//! `slipway host cleanup` and `host purge` on real stores, as the unprivileged user: what
//! they remove, that every kept stage still builds from cache, and that a store in use is
//! never touched.

use crate::common::{Env, git_project, registry, rootless_env, run_ok, stderr, stdout};
use std::path::{Path, PathBuf};

fn project(env: &Env, name: &str, reg: &str, run: &str) -> PathBuf {
    let dir = env.path().join(name);
    let werf = format!("project: {name}\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\n");
    let df = format!("FROM {reg}/base/busybox:latest\nRUN {run}\nRUN echo two > /two\n");
    git_project(&dir, &[("werf.yaml", werf.as_str()), ("Dockerfile", df.as_str())], &[]);
    dir
}

fn build(env: &Env, dir: &Path) -> String {
    stdout(&run_ok(env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(dir)))
}

fn host(env: &Env, args: &[&str]) -> String {
    stdout(&run_ok(env.slipway().arg("host").args(args)))
}

/// The `removed stage PROJECT:ID` lines' projects, in order.
fn removed_stage_projects(out: &str) -> Vec<&str> {
    out.lines().filter_map(|l| l.strip_prefix("removed stage ")).map(|l| l.split(':').next().unwrap()).collect()
}

#[test]
fn cleanup_removes_garbage_then_least_recently_used_stages_and_purge_one_project() {
    let t = "cleanup_removes_garbage_then_least_recently_used_stages_and_purge_one_project";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let store = env.path().join("data/slipway");
    let alpha = project(&env, "alpha", &reg, "echo alpha > /a");
    let beta = project(&env, "beta", &reg, "echo beta > /b");
    assert!(build(&env, &alpha).contains("built in"));
    assert!(build(&env, &beta).contains("built in"));

    // Garbage: a blob, a layer and temp dirs nothing references or holds.
    let orphan_blob = "0123456789abcdef".repeat(4);
    std::fs::write(store.join("blobs/sha256").join(&orphan_blob), b"orphan").unwrap();
    let orphan_layer = "fedcba9876543210".repeat(4);
    std::fs::create_dir_all(store.join("layers").join(&orphan_layer).join("diff/d")).unwrap();
    std::fs::create_dir_all(store.join("tmp/stale/x")).unwrap();
    std::fs::create_dir_all(store.join("tmp/run-1-2-3/rootfs-x")).unwrap();
    std::fs::write(store.join("tmp/run-1-2-3.lock"), b"").unwrap();

    // Far below the threshold: garbage only, every stage still there.
    let out = host(&env, &["cleanup", "--dry-run"]);
    assert!(out.contains(&format!("would remove blob sha256:{orphan_blob}")), "{out}");
    assert!(store.join("blobs/sha256").join(&orphan_blob).exists(), "--dry-run removed something");
    let out = host(&env, &["cleanup"]);
    assert!(out.contains("— OK"), "{out}");
    assert!(out.contains(&format!("removed blob sha256:{orphan_blob} (6 bytes)")), "{out}");
    assert!(out.contains(&format!("removed layer sha256:{orphan_layer}")), "{out}");
    assert!(out.contains("removed leftover tmp/stale"), "{out}");
    assert!(out.contains("removed leftover tmp/run-1-2-3 "), "{out}");
    assert!(out.contains("Freed space: "), "{out}");
    assert!(!out.contains("removed stage"), "{out}");
    assert!(!store.join("layers").join(&orphan_layer).exists() && !store.join("tmp/stale").exists());
    for dir in [&alpha, &beta] {
        let log = build(&env, dir);
        assert!(!log.contains("built in") && log.contains("cached"), "not cached after cleanup:\n{log}");
    }

    // The caches of remote git repositories are werf's local cache: kept below its
    // threshold, removed least recently fetched first above it.
    let (old_cache, new_cache) = ("a".repeat(64), "b".repeat(64));
    for (name, age) in [(&old_cache, 3600), (&new_cache, 60)] {
        let dir = store.join("git-repos").join(name);
        std::fs::create_dir_all(dir.join("objects")).unwrap();
        std::fs::write(dir.join("objects/pack"), b"pack").unwrap();
        let when = std::time::SystemTime::now() - std::time::Duration::from_secs(age);
        std::fs::File::open(&dir).unwrap().set_modified(when).unwrap();
    }
    let out = host(&env, &["cleanup"]);
    assert!(!out.contains("git-repos"), "{out}");
    let out =
        host(&env, &["cleanup", "--allowed-local-cache-volume-usage=0", "--allowed-local-cache-volume-usage-margin=0"]);
    let old_at = out.find(&format!("removed directory git-repos/{old_cache}")).unwrap_or_else(|| panic!("{out}"));
    let new_at = out.find(&format!("removed directory git-repos/{new_cache}")).unwrap_or_else(|| panic!("{out}"));
    assert!(old_at < new_at, "the older cache goes first:\n{out}");
    assert!(!out.contains("removed stage"), "{out}");
    std::fs::create_dir_all(store.join("git-repos").join(&old_cache)).unwrap();

    // Purge of one project: its stages go, the other's stay cached.
    let out = host(&env, &["purge", "--project-name", "beta"]);
    let per_project = removed_stage_projects(&out).len();
    assert!(removed_stage_projects(&out).iter().all(|p| *p == "beta"), "{out}");
    assert_eq!(per_project, 3, "two RUNs and imageSpec:\n{out}");
    assert!(!build(&env, &alpha).contains("built in"));
    assert!(build(&env, &beta).contains("built in"), "beta was purged");

    // beta was used last: over the threshold (0%), alpha's stages go first, then beta's.
    let out = host(&env, &["cleanup", "--allowed-backend-storage-volume-usage=0", "--dry-run"]);
    assert!(out.contains("HIGH VOLUME USAGE") && out.contains("would remove stage alpha:"), "{out}");
    let out = host(&env, &["cleanup", "--allowed-backend-storage-volume-usage", "0"]);
    let order = removed_stage_projects(&out);
    assert_eq!(order.len(), 2 * per_project, "{out}");
    let (first, then) = order.split_at(per_project);
    assert!(first.iter().all(|p| *p == "alpha") && then.iter().all(|p| *p == "beta"), "{out}");
    assert!(out.contains("removed layer sha256:"), "{out}");
    assert!(std::fs::read_dir(store.join("stages/alpha")).is_err(), "alpha's stage dir stays");
    // Rebuilds work (from the base image, which the pulled image's ref keeps).
    assert!(build(&env, &alpha).contains("built in"));

    // Automatic cleanup after a build over the threshold (turned on: scripts/test.sh
    // turns it off for the suite).
    let out = run_ok(
        env.slipway()
            .args(["build", "--insecure-registry", "--disable-auto-host-cleanup=false"])
            .args(["--allowed-backend-storage-volume-usage", "0", "--dir"])
            .arg(&beta),
    );
    let log = format!("{}{}", stdout(&out), stderr(&out));
    assert!(log.contains("running auto host cleanup") && log.contains("removed stage beta:"), "{log}");

    // Purge of everything leaves an empty store that builds.
    host(&env, &["purge"]);
    for d in ["stages", "images", "layers", "layers-by-blob", "blobs/sha256"] {
        assert_eq!(std::fs::read_dir(store.join(d)).unwrap().count(), 0, "{d} not empty after purge");
    }
    assert!(!store.join("git-repos").exists(), "the git caches stay after purge");
    assert!(build(&env, &beta).contains("built in"));
}

/// A build holds the store: cleanup and purge refuse at once, naming it, and remove
/// nothing; once it is done they run.
#[test]
fn cleanup_refuses_while_a_build_holds_the_store() {
    let t = "cleanup_refuses_while_a_build_holds_the_store";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    let env = Env::new();
    let store = env.path().join("data/slipway");
    let dir = project(&env, "slow", &reg, "sleep 4");
    let child = env
        .slipway()
        .args(["build", "--insecure-registry", "--dir"])
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the build has claimed its temp dir (it holds the store lock by then).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_dir(store.join("tmp"))
        .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().ends_with(".lock")))
        .unwrap_or(false)
    {
        assert!(std::time::Instant::now() < deadline, "the build never opened the store");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let garbage = store.join("tmp/stale");
    std::fs::create_dir_all(&garbage).unwrap();
    for args in [&["host", "cleanup"][..], &["host", "purge"][..]] {
        let started = std::time::Instant::now();
        let out = env.slipway().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "{}: the local store {} is in use by slipway process",
                args[1..].join(" "),
                store.display()
            )) && err.contains("nothing was removed"),
            "{err}"
        );
        assert!(started.elapsed().as_secs() < 3, "{args:?} waited for the build");
    }
    assert!(garbage.exists());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("built in"));
    let out = host(&env, &["cleanup"]);
    assert!(out.contains("removed leftover tmp/stale"), "{out}");
    assert!(!build(&env, &dir).contains("built in"));
}
