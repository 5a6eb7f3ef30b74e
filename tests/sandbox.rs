//! The rootless runtime through `slipway internal`: user namespace, sandbox, overlay.

use crate::common::{Env, rootless_env, run_ok, stderr, stdout};
use std::os::unix::fs::MetadataExt;

#[test]
fn user_namespace_is_fully_mapped() {
    if !rootless_env("user_namespace_is_fully_mapped") {
        return;
    }
    let env = Env::new();
    let out = run_ok(env.slipway().args(["internal", "whoami"]));
    let text = stdout(&out);
    assert!(text.starts_with("uid=0 mapping=full\n"), "{text}");
    let lines: Vec<Vec<&str>> = text.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["0", &nix_uid().to_string(), "1"], "{text}");
    assert_eq!(lines[1][0], "1");
    assert!(lines[1][2].parse::<u32>().unwrap() >= 65536, "{text}");
}

fn nix_uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

#[test]
fn runs_sh_id_in_busybox_rootfs() {
    if !rootless_env("runs_sh_id_in_busybox_rootfs") {
        return;
    }
    let env = Env::new();
    let root = env.busybox_rootfs("rootfs");
    let out = run_ok(env.slipway().args(["internal", "sandbox", "--rootfs"]).arg(&root).args([
        "--",
        "/bin/sh",
        "-c",
        "id; echo pid=$$; hostname; ls /dev; test -r /proc/self/status && echo proc-ok; grep CapBnd /proc/self/status",
    ]));
    let text = stdout(&out);
    assert!(text.starts_with("uid=0(root) gid=0(root)"), "{text}");
    assert!(text.contains("pid=1\n"), "{text}");
    assert!(text.contains("\nslipway\n"), "{text}");
    for dev in ["null", "zero", "urandom", "shm", "pts"] {
        assert!(text.lines().any(|l| l == dev), "/dev/{dev} missing:\n{text}");
    }
    assert!(text.contains("proc-ok"), "{text}");
    // Docker's default capability set, not everything root of the namespace has.
    assert!(text.contains("CapBnd:\t00000000a80425fb"), "{text}");
    // Mount points the sandbox created are gone again.
    assert!(!root.join("proc").exists() && !root.join("dev").exists() && !root.join("sys").exists());
}

#[test]
fn exit_status_and_user_are_propagated() {
    if !rootless_env("exit_status_and_user_are_propagated") {
        return;
    }
    let env = Env::new();
    let root = env.busybox_rootfs("rootfs");
    let out = env
        .slipway()
        .args(["internal", "sandbox", "--rootfs"])
        .arg(&root)
        .args(["--", "/bin/sh", "-c", "exit 42"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
    let out = run_ok(
        env.slipway()
            .args(["internal", "sandbox", "--uid", "1000", "--gid", "1000", "--cwd", "/tmp", "--rootfs"])
            .arg(&root)
            .args(["--", "/bin/sh", "-c", "id -u; id -g; pwd"]),
    );
    assert_eq!(stdout(&out), "1000\n1000\n/tmp\n");
    let out = env
        .slipway()
        .args(["internal", "sandbox", "--rootfs"])
        .arg(&root)
        .args(["--", "nonexistent-cmd"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nonexistent-cmd: executable file not found in $PATH"), "{}", stderr(&out));
}

#[test]
fn ulimits_apply_and_bad_ones_are_refused() {
    if !rootless_env("ulimits_apply_and_bad_ones_are_refused") {
        return;
    }
    let env = Env::new();
    let root = env.busybox_rootfs("rootfs");
    let out = run_ok(
        env.slipway()
            .env("WERF_BUILDAH_ULIMIT", "nofile=256:512")
            .args(["internal", "sandbox", "--rootfs"])
            .arg(&root)
            .args(["--", "/bin/sh", "-c", "ulimit -n; ulimit -Hn"]),
    );
    assert_eq!(stdout(&out), "256\n512\n");
    let out = env
        .slipway()
        .env("WERF_BUILDAH_ULIMIT", "nofile=1:99999999999")
        .args(["internal", "sandbox", "--rootfs"])
        .arg(&root)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("invalid ulimit \"nofile=1:99999999999\""), "{}", stderr(&out));
}

#[test]
fn overlay_records_chown_and_whiteouts_in_upper() {
    if !rootless_env("overlay_records_chown_and_whiteouts_in_upper") {
        return;
    }
    let env = Env::new();
    let lower = env.busybox_rootfs("lower");
    std::fs::create_dir_all(lower.join("olddir/sub")).unwrap();
    std::fs::write(lower.join("olddir/sub/f"), "x").unwrap();
    std::fs::write(lower.join("oldfile"), "x").unwrap();
    let upper = env.path().join("upper");
    run_ok(env.slipway().args(["internal", "sandbox", "--lower"]).arg(&lower).arg("--upper").arg(&upper).args([
        "--",
        "/bin/sh",
        "-c",
        "mkdir /new && echo hi > /new/f && chown 1234:2345 /new/f && rm /oldfile && rm -r /olddir && mkdir /olddir",
    ]));
    let f = std::fs::metadata(upper.join("new/f")).unwrap();
    let subuid_base = subid_start("/etc/subuid");
    let subgid_base = subid_start("/etc/subgid");
    assert_eq!(
        (f.uid(), f.gid()),
        (subuid_base + 1233, subgid_base + 2344),
        "chown inside is a subordinate id outside"
    );
    let wh = std::fs::symlink_metadata(upper.join("oldfile")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(&wh.file_type()) && wh.rdev() == 0, "whiteout expected");
    assert!(!upper.join("proc").exists(), "sandbox mount points leaked into the upper dir");
    assert!(lower.join("oldfile").exists(), "lower layer was modified");
}

fn subid_start(file: &str) -> u32 {
    let name = std::env::var("USER").ok().or_else(|| std::env::var("LOGNAME").ok()).unwrap_or_default();
    let uid = nix_uid().to_string();
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .find_map(|l| {
            let mut p = l.split(':');
            let who = p.next()?;
            (who == name || who == uid).then(|| p.next()?.parse().ok()).flatten()
        })
        .expect("test user has a subordinate range")
}
