//! File descriptors a build step must never see.
//!
//! Whatever started slipway (a CI runner, a shell, a test) may have left descriptors
//! open without close-on-exec: a runner's fd 5 on a host directory, say. A step that
//! inherited it could read the host through `/proc/self/fd/5/..`, past every mount and
//! `pivot_root`. Three guards keep them out:
//!
//! - [`cloexec_inherited`], first thing in `main`: every inherited fd from 3 up becomes
//!   close-on-exec, so no child (the namespace re-exec, `newuidmap`, the sandbox helper,
//!   runc, git) gets one. The user-namespace handshake pipes are created later and handed
//!   on deliberately (`userns`), so they are not affected;
//! - the sandbox helper marks every fd from 3 up close-on-exec right before `execve` of
//!   the step ([`cloexec_all_but_stdio`]);
//! - the helper and the OCI runtime are spawned with only stdin, stdout and stderr
//!   (`sys::only_stdio_on_exec`).

use nix::errno::Errno;

/// Mark every fd from 3 up close-on-exec, with `close_range(CLOSE_RANGE_CLOEXEC)`, or
/// (before Linux 5.11) one by one as listed in `/proc/self/fd`. Nothing is closed, so
/// fds this process uses itself keep working. Call while single-threaded.
pub fn cloexec_inherited() -> std::io::Result<()> {
    cloexec_all_but_stdio()
}

pub(crate) fn cloexec_all_but_stdio() -> std::io::Result<()> {
    match crate::sys::close_range_cloexec(3) {
        Ok(()) => return Ok(()),
        Err(Errno::ENOSYS | Errno::EINVAL | Errno::EPERM) => {}
        Err(e) => return Err(e.into()),
    }
    // Collect first: the directory fd itself shows up in the listing.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        match crate::sys::set_cloexec_raw(fd) {
            Ok(()) | Err(Errno::EBADF) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Spawn settings for a helper daemon (ssh-agent): only stdin, stdout and stderr reach it,
/// and it is killed when the thread that started it ends, even if slipway is SIGKILLed.
pub fn helper_daemon(cmd: &mut std::process::Command) {
    crate::sys::only_stdio_on_exec(cmd);
    crate::sys::die_with_parent(cmd);
}

#[cfg(test)]
mod tests {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    use std::process::Command;

    /// Open `path` *without* close-on-exec, as a careless parent would.
    fn leaky_fd(path: &std::path::Path) -> std::os::fd::OwnedFd {
        open(path, OFlag::O_RDONLY, Mode::empty()).unwrap()
    }

    fn fds_seen_by_child(cmd: &mut Command) -> Vec<String> {
        let out = cmd.arg("-c").arg("ls /proc/self/fd").output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
    }

    #[test]
    fn spawned_commands_get_only_stdio() {
        let dir = tempfile::tempdir().unwrap();
        let _fd = leaky_fd(dir.path());
        // 0, 1, 2 and the directory `ls` opened to list them: a leaked fd makes a fifth.
        let seen = fds_seen_by_child(&mut Command::new("/bin/sh"));
        assert!(seen.len() >= 5, "control: the fd should leak without the guard: {seen:?}");
        let mut cmd = Command::new("/bin/sh");
        crate::sys::only_stdio_on_exec(&mut cmd);
        assert_eq!(fds_seen_by_child(&mut cmd), ["0", "1", "2", "3"]);
    }
}
