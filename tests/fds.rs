//! No file descriptor of slipway's caller reaches a build step (built-in sandbox or runc).

use crate::common::{Env, git_project, registry, rootless_env, run_ok, stderr, stdout};
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use std::os::fd::{AsRawFd, OwnedFd};

const SECRET: &str = "host-secret-7f3a";

/// A host directory holding a secret file, opened here *without* close-on-exec (as a CI
/// runner's fd 5 would be), plus the secret file itself: (dir fd, file fd).
fn leaked_host_fds(env: &Env) -> (OwnedFd, OwnedFd) {
    let host = env.path().join("host-only");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("secret.txt"), SECRET).unwrap();
    let dir = open(&host, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
    let file = open(&host.join("secret.txt"), OFlag::O_RDONLY, Mode::empty()).unwrap();
    (dir, file)
}

/// A shell script listing the step's fds and trying to read the host through the
/// leaked ones.
fn probe(dir_fd: i32, file_fd: i32) -> String {
    format!(
        "echo fds=$(ls /proc/self/fd | tr '\\n' ,); cat /proc/self/fd/{dir_fd}/secret.txt /proc/self/fd/{file_fd} 2>/dev/null; ls /proc/self/fd/{dir_fd}/.. 2>/dev/null; true"
    )
}

/// Only 0, 1, 2 and the directory `ls` opened to list them (3).
fn assert_only_stdio(text: &str) {
    let fds = text
        .lines()
        .find_map(|l| l.split_once("fds=").map(|(_, f)| f.trim()))
        .unwrap_or_else(|| panic!("no fd list in:\n{text}"));
    let fds: Vec<&str> = fds.split(',').filter(|s| !s.is_empty()).collect();
    assert_eq!(fds, ["0", "1", "2", "3"], "the step saw more than stdio:\n{text}");
    assert!(!text.contains(SECRET), "the step read the host through a leaked fd:\n{text}");
    assert!(!text.contains("host-only"), "the step listed the host through a leaked fd:\n{text}");
}

#[test]
fn caller_fds_do_not_reach_a_sandboxed_step() {
    if !rootless_env("caller_fds_do_not_reach_a_sandboxed_step") {
        return;
    }
    let env = Env::new();
    let root = env.busybox_rootfs("rootfs");
    let (dir, file) = leaked_host_fds(&env);
    let script = probe(dir.as_raw_fd(), file.as_raw_fd());
    let out = run_ok(
        env.slipway().args(["internal", "sandbox", "--rootfs"]).arg(&root).args(["--", "/bin/sh", "-c", &script]),
    );
    assert_only_stdio(&stdout(&out));
}

#[test]
fn caller_fds_do_not_reach_run_steps_builtin_or_runc() {
    let test = "caller_fds_do_not_reach_run_steps_builtin_or_runc";
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else {
        return;
    };
    for mode in ["native-chroot", "native-rootless"] {
        let env = Env::new().with_var("WERF_BUILDAH_MODE", mode);
        let (dir, file) = leaked_host_fds(&env);
        let project = env.path().join("project");
        let dockerfile = format!("FROM {reg}/base/busybox:latest\nRUN {}\n", probe(dir.as_raw_fd(), file.as_raw_fd()));
        git_project(
            &project,
            &[
                ("werf.yaml", "project: fds\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\n"),
                ("Dockerfile", &dockerfile),
            ],
            &[],
        );
        let out = run_ok(env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&project));
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(text.contains("fds="), "{mode}: the RUN step's output is missing:\n{text}");
        assert_only_stdio(&text.lines().filter(|l| !l.contains("RUN ")).collect::<Vec<_>>().join("\n"));
    }
}
