//! Builds in pod-like containers: slipway run inside a rootless podman container with
//! podman's default seccomp profile and capabilities, no devices, `/sys` read-only and
//! `/proc` masked — as container root, and as a uid without subordinate ids or
//! `newuidmap`. Each either builds or stops with one line naming the setting to change.

use crate::common::{Env, git_project, registry, rootless_env, stderr, stdout, which};
use crate::conformance::flatten::{listing, read_dir_image};
use crate::conformance::skopeo_copy;
use crate::repo::fresh_repo;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A container rootfs: busybox, the shared libraries slipway needs, `/etc/passwd` with a
/// user `nosub` (uid 2000) that has no subordinate ids, and a world-writable `/tmp`.
/// slipway itself is bind-mounted read-only at run time.
fn pod_rootfs(env: &Env) -> PathBuf {
    let root = env.path().join("podroot");
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "usr/local/bin", "project"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let busybox = which("busybox").expect("busybox (Debian package busybox-static)");
    std::fs::copy(&busybox, root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    let ldd = Command::new("ldd").arg(env!("CARGO_BIN_EXE_slipway")).output().unwrap();
    for lib in stdout(&ldd).split_whitespace().filter(|w| w.starts_with('/')) {
        let dest = root.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(lib, &dest).unwrap();
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\nnosub:x:2000:2000::/tmp:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnosub:x:2000:\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    root
}

/// `sh -c SCRIPT` in a rootless podman container over `rootfs` as `user`, slipway at
/// `/usr/local/bin/slipway`, the project directory at `/project`, a fresh tmpfs as `/tmp`
/// (and `HOME`, so the store), with `extra` podman options.
fn in_pod(env: &Env, rootfs: &Path, project: &Path, user: &str, extra: &[&str], script: &str) -> Output {
    let dirs = tempfile::Builder::new().prefix("podman").tempdir_in("/tmp").unwrap();
    let home = env.path().join("podman-home");
    std::fs::create_dir_all(&home).unwrap();
    let out = crate::common::podman(&home, dirs.path())
        .args(["run", "--rm", "--network=host", "--runtime", "runc", "--user", user, "-e", "HOME=/tmp"])
        .args(["-e", "PATH=/usr/local/bin:/bin", "--tmpfs", "/tmp:rw,exec,mode=1777,size=512m"])
        .arg("-v")
        .arg(format!("{}:/usr/local/bin/slipway:ro", env!("CARGO_BIN_EXE_slipway")))
        .arg("-v")
        .arg(format!("{}:/project", project.display()))
        .args(extra)
        .arg("--rootfs")
        .arg(rootfs)
        .args(["/bin/sh", "-c", script])
        .output()
        .unwrap();
    crate::common::podman_cleanup(&home, dirs.path());
    out
}

fn project(env: &Env, reg: &str) -> PathBuf {
    let dir = env.path().join("project");
    git_project(
        &dir,
        &[
            ("werf.yaml", "project: pod\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\n"),
            (
                "Dockerfile",
                &format!(
                    "FROM {reg}/base/busybox:latest\nRUN echo built > /built.txt && mkdir /d && ln -s /built.txt /d/link && chown 1000:1001 /built.txt\nCOPY --chown=7:8 hello.txt /app/hello.txt\n"
                ),
            ),
            ("hello.txt", "hello\n"),
        ],
        &[],
    );
    // Readable by any uid of the container, the way a CI checkout in a pod is.
    Command::new("chmod").args(["-R", "a+rX"]).arg(&dir).status().unwrap();
    dir
}

fn text(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

#[test]
fn masked_proc_stops_the_build_naming_the_pod_setting() {
    let test = "masked_proc_stops_the_build_naming_the_pod_setting";
    let Some(reg) = registry(test) else { return };
    if !rootless_env(test) {
        return;
    }
    let env = Env::new();
    let rootfs = pod_rootfs(&env);
    let dir = project(&env, &reg);
    stops_naming(
        &env,
        &rootfs,
        &dir,
        &[],
        "\n  sandbox: unmask /proc for the container: Kubernetes `securityContext.procMount: Unmasked`",
        &["securityContext.procMount: Unmasked"],
    );
}

/// As container root and as uid 2000: `host check` exits 1 saying `check_says`, and a
/// build fails with one `Error:` line that holds each of `error_says`.
fn stops_naming(env: &Env, rootfs: &Path, dir: &Path, opts: &[&str], check_says: &str, error_says: &[&str]) {
    for user in ["0", "2000"] {
        let check = in_pod(env, rootfs, dir, user, opts, "slipway host check");
        let t = text(&check);
        assert_eq!(check.status.code(), Some(1), "user {user}:\n{t}");
        assert!(t.contains(check_says), "user {user}:\n{t}");
        let build = in_pod(env, rootfs, dir, user, opts, "slipway build --dir /project --insecure-registry");
        let t = stderr(&build);
        assert!(!build.status.success(), "user {user}:\n{t}");
        let error: Vec<&str> = t.lines().filter(|l| l.starts_with("Error: ")).collect();
        assert_eq!(error.len(), 1, "user {user}:\n{t}");
        for want in error_says {
            assert!(error[0].contains(want), "user {user}:\n{t}");
        }
    }
}

#[test]
fn builds_in_a_pod_as_container_root_and_as_a_uid_without_subordinate_ids() {
    let test = "builds_in_a_pod_as_container_root_and_as_a_uid_without_subordinate_ids";
    let Some(reg) = registry(test) else { return };
    if !rootless_env(test) {
        return;
    }
    let env = Env::new();
    let rootfs = pod_rootfs(&env);
    let dir = project(&env, &reg);
    let unmasked = ["--security-opt", "unmask=ALL"];
    for (user, mapping) in [("0", "full (65537 ids)"), ("2000", "single (1 ids)")] {
        let check = in_pod(&env, &rootfs, &dir, user, &unmasked, "slipway host check");
        let t = text(&check);
        assert_eq!(check.status.code(), Some(0), "user {user}:\n{t}");
        assert!(t.contains(&format!("\nid mapping       ok       {mapping}")), "user {user}:\n{t}");
        let run = in_pod(
            &env,
            &rootfs,
            &dir,
            user,
            &unmasked,
            "slipway build --dir /project --insecure-registry >&2 && \
             slipway run --dir /project --insecure-registry app -- /bin/sh -c 'cat /built.txt /app/hello.txt; readlink /d/link'",
        );
        assert_eq!(stdout(&run), "built\nhello\n/built.txt\n", "user {user}:\n{}", text(&run));
        // The owners set by RUN chown and COPY --chown reach the image in both mappings
        // (single-id: recorded by the seccomp listener inside podman's own filter).
        let dest = format!("{}:latest", fresh_repo(&reg, &format!("pod-{user}")));
        let export = in_pod(
            &env,
            &rootfs,
            &dir,
            user,
            &unmasked,
            &format!("slipway export --dir /project --insecure-registry --tag {dest}"),
        );
        assert!(export.status.success(), "user {user}:\n{}", text(&export));
        let image = env.path().join(format!("image-{user}"));
        skopeo_copy(&format!("docker://{dest}"), &image);
        let files = listing(&read_dir_image(&image).tree);
        assert!(files["built.txt"].ends_with("owner=1000:1001"), "user {user}: {}", files["built.txt"]);
        assert!(files["app/hello.txt"].ends_with("owner=7:8"), "user {user}: {}", files["app/hello.txt"]);
    }
}

/// A seccomp profile that refuses new user namespaces, as Docker's and containerd's
/// defaults do without CAP_SYS_ADMIN: `unshare`, `clone` with CLONE_NEWUSER, and
/// `clone3` (ENOSYS, so libc falls back to `clone`).
const NO_USERNS_SECCOMP: &str = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
 {"names": ["unshare"], "action": "SCMP_ACT_ERRNO"},
 {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 268435456, "valueTwo": 268435456, "op": "SCMP_CMP_MASKED_EQ"}]},
 {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}"#;

#[test]
fn blocked_user_namespaces_stop_the_build_naming_the_pod_setting() {
    let test = "blocked_user_namespaces_stop_the_build_naming_the_pod_setting";
    let Some(reg) = registry(test) else { return };
    if !rootless_env(test) {
        return;
    }
    let env = Env::new();
    let rootfs = pod_rootfs(&env);
    let dir = project(&env, &reg);
    let profile = env.path().join("no-userns.json");
    std::fs::write(&profile, NO_USERNS_SECCOMP).unwrap();
    let seccomp = format!("seccomp={}", profile.display());
    let opts = ["--security-opt", "unmask=ALL", "--security-opt", seccomp.as_str()];
    let setting = "securityContext.seccompProfile.type: Unconfined";
    stops_naming(&env, &rootfs, &dir, &opts, setting, &["cannot create a user namespace", setting]);
}
