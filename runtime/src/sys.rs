//! The crate's only `unsafe`: raw calls that `nix` does not wrap the way we need.
#![allow(unsafe_code)]

use nix::unistd::ForkResult;

/// `fork(2)`. Only called from processes that are single-threaded by construction (the
/// sandbox helper right after exec), so the child may allocate and call anything.
pub(crate) fn fork() -> nix::Result<ForkResult> {
    // SAFETY: every caller is single-threaded (a freshly exec'd helper that never starts
    // a thread), so no lock can be held by another thread at the time of the fork.
    unsafe { nix::unistd::fork() }
}

/// `getrlimit(2)` by raw resource number (nix wants its own enum).
pub(crate) fn getrlimit(resource: i32) -> (u64, u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid, writable rlimit struct for the duration of the call.
    let rc = unsafe { libc::getrlimit(resource as _, &mut lim) };
    if rc != 0 {
        return (u64::MAX, u64::MAX);
    }
    (lim.rlim_cur, lim.rlim_max)
}

/// `setrlimit(2)` by raw resource number.
pub(crate) fn setrlimit(resource: i32, soft: u64, hard: u64) -> nix::Result<()> {
    let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: `lim` is a valid rlimit struct; the kernel only reads it.
    let rc = unsafe { libc::setrlimit(resource as _, &lim) };
    nix::errno::Errno::result(rc).map(drop)
}

/// Adopt an fd number nothing else in this process owns (inherited from our parent, or
/// just returned by a syscall).
pub(crate) fn own_fd(fd: i32) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: the number comes from our parent (passed in the environment) and nothing
    // else in this process owns it; callers validate it with F_GETFD first.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// Borrow an fd number for a validity check.
pub(crate) fn borrow_fd(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: only used for an immediate fcntl(F_GETFD), which is harmless on any number.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// Let `fds` (created close-on-exec) survive the exec of `cmd`.
pub(crate) fn keep_fds_on_exec(cmd: &mut std::process::Command, fds: &[i32]) {
    use std::os::unix::process::CommandExt;
    let fds = fds.to_vec();
    // SAFETY: the closure only calls fcntl, which is async-signal-safe, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// The outer parent ignores terminal signals: they reach the child through the terminal,
/// and the parent must stay to collect its status.
pub(crate) fn ignore_interactive_signals() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    for sig in [Signal::SIGINT, Signal::SIGQUIT] {
        // SAFETY: SIG_IGN installs no handler code.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
}

/// Mount overlayfs through the new mount API, one `lowerdir+` per layer (Linux >= 6.8),
/// which lifts mount(2)'s one-page limit on the option string. Without `upper_work`
/// (upper and work directory) the overlay is read-only.
pub(crate) fn mount_overlay_fsconfig(
    lowers_top_first: &[std::path::PathBuf],
    upper_work: Option<(&std::path::Path, &std::path::Path)>,
    target: &std::path::Path,
) -> nix::Result<()> {
    use nix::errno::Errno;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_SET_FLAG: libc::c_uint = 0;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    let cstr = |b: &[u8]| CString::new(b).map_err(|_| Errno::EINVAL);

    let fstype = cstr(b"overlay")?;
    // SAFETY: fsopen takes a NUL-terminated name and flags; it returns an fd or -1.
    let fsfd = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
    let fsfd = Errno::result(fsfd)? as libc::c_int;
    let fs = own_fd(fsfd);
    let set = |key: &str, value: Option<&[u8]>| -> nix::Result<()> {
        let k = cstr(key.as_bytes())?;
        let v = value.map(cstr).transpose()?;
        let (cmd, vp) = match &v {
            Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
            None => (FSCONFIG_SET_FLAG, std::ptr::null()),
        };
        // SAFETY: key and value are NUL-terminated strings that outlive the call.
        let rc = unsafe { libc::syscall(libc::SYS_fsconfig, fsfd, cmd, k.as_ptr(), vp, 0) };
        Errno::result(rc).map(drop)
    };
    for l in lowers_top_first {
        set("lowerdir+", Some(l.as_os_str().as_bytes()))?;
    }
    if let Some((upper, work)) = upper_work {
        set("upperdir", Some(upper.as_os_str().as_bytes()))?;
        set("workdir", Some(work.as_os_str().as_bytes()))?;
    }
    set("userxattr", None)?;
    // SAFETY: no pointers are passed with FSCONFIG_CMD_CREATE.
    let rc = unsafe { libc::syscall(libc::SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, 0usize, 0usize, 0) };
    Errno::result(rc)?;
    // SAFETY: fsmount takes the configured fs context fd and flags only.
    let mfd = unsafe { libc::syscall(libc::SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, 0) };
    let mfd = Errno::result(mfd)? as libc::c_int;
    let _m = own_fd(mfd);
    drop(fs);
    let empty = cstr(b"")?;
    let t = cstr(target.as_os_str().as_bytes())?;
    // SAFETY: both paths are NUL-terminated; mfd is the mount fd we own.
    let rc = unsafe {
        libc::syscall(libc::SYS_move_mount, mfd, empty.as_ptr(), libc::AT_FDCWD, t.as_ptr(), MOVE_MOUNT_F_EMPTY_PATH)
    };
    Errno::result(rc).map(drop)
}

/// Drop every capability not in `keep` (bit numbers) from the bounding set, so the
/// command exec'd next runs with at most those (Docker's default set for build steps).
pub(crate) fn drop_bounding_caps(keep: u64) -> nix::Result<()> {
    let last: u32 =
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(40);
    for cap in 0..=last {
        if keep & (1u64 << cap) != 0 {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP takes a capability number and no pointers.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        nix::errno::Errno::result(rc)?;
    }
    Ok(())
}

/// Mark every fd from `first` up close-on-exec with `close_range(first, ~0,
/// CLOSE_RANGE_CLOEXEC)` (Linux >= 5.11). Allocation-free and async-signal-safe, so it
/// may run between fork and exec of a multi-threaded parent. Returns the errno when the
/// kernel lacks the call (ENOSYS, or EINVAL for the flag on 5.9/5.10), so the caller can
/// fall back.
pub(crate) fn close_range_cloexec(first: u32) -> nix::Result<()> {
    // SAFETY: close_range takes two numbers and a flag; with CLOSE_RANGE_CLOEXEC it only
    // sets a flag on open fds and closes nothing, so no Rust owner loses its fd.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    nix::errno::Errno::result(rc).map(drop)
}

/// Set `FD_CLOEXEC` on one fd number, whoever owns it (EBADF for a closed number).
pub(crate) fn set_cloexec_raw(fd: i32) -> nix::Result<()> {
    // SAFETY: fcntl(F_SETFD) on a number only changes its close-on-exec flag; it is
    // harmless on a closed number (EBADF) and does not affect any Rust owner of the fd.
    let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    nix::errno::Errno::result(rc).map(drop)
}

/// Make every fd from 3 up close-on-exec in the child of `cmd`, right before it execs:
/// the command gets stdin, stdout and stderr and nothing else this process holds (an fd
/// it inherited without close-on-exec, or one a library opened carelessly).
pub(crate) fn only_stdio_on_exec(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec; it calls only close_range, fcntl
    // and getrlimit (async-signal-safe) and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if close_range_cloexec(3).is_ok() {
                return Ok(());
            }
            // Kernels before 5.11: every number below the soft limit (no fd can be above it
            // unless the limit was lowered after it was opened).
            let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            let top = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                lim.rlim_cur.min(1 << 20) as i32
            } else {
                1 << 16
            };
            for fd in 3..top {
                let _ = set_cloexec_raw(fd);
            }
            Ok(())
        });
    }
}

/// Have the child of `cmd` get SIGKILL when the thread that spawned it ends (slipway
/// killed, say), so that a helper daemon such as ssh-agent never outlives it.
pub(crate) fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec; prctl is async-signal-safe and
    // nothing is allocated.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Have the child of `cmd` write no file larger than `bytes` (`RLIMIT_FSIZE`: a write
/// past it fails with EFBIG and SIGXFSZ).
pub(crate) fn limit_file_size(cmd: &mut std::process::Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    let limit = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
    // SAFETY: the closure runs between fork and exec; setrlimit is async-signal-safe and
    // nothing is allocated.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Bring the loopback interface up in this process's network namespace (a new one is
/// created with `lo` down). libc, not nix: nix has no SIOCSIFFLAGS wrapper.
pub(crate) fn loopback_up() -> nix::Result<()> {
    use nix::errno::Errno;
    // SAFETY: socket takes numbers and returns a new fd, which we own right away.
    let raw = Errno::result(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    let sock = own_fd(raw);
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we pass, which lives
    // across both calls; the union member written is ifru_flags, the one these use.
    unsafe {
        Errno::result(libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req))?;
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        Errno::result(libc::ioctl(fd, libc::SIOCSIFFLAGS, &req))?;
    }
    Ok(())
}

/// Whether `path` (not followed if a symlink) has the extended attribute `name`.
pub(crate) fn has_xattr(path: &std::path::Path, name: &str) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (Ok(p), Ok(n)) = (std::ffi::CString::new(path.as_os_str().as_bytes()), std::ffi::CString::new(name)) else {
        return false;
    };
    // SAFETY: both arguments are valid NUL-terminated strings; a null buffer of size 0
    // only asks for the value's length.
    let rc = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) };
    rc >= 0
}

/// `std::env::set_var` in a process that has no other thread yet (the namespace child
/// right after its re-exec, before it starts anything).
pub(crate) fn set_env_single_threaded(key: &str, value: &str) {
    // SAFETY: called only from `userns::child_side`, which runs first thing in `main`,
    // before any thread exists, so nothing can read the environment concurrently.
    unsafe { std::env::set_var(key, value) }
}

/// The syscalls a chown notifier intercepts, and the audit arch they belong to.
#[cfg(target_arch = "x86_64")]
const CHOWN_SYSCALLS: (u32, &[libc::c_long]) =
    (0xc000_003e, &[libc::SYS_chown, libc::SYS_fchown, libc::SYS_lchown, libc::SYS_fchownat]);
#[cfg(target_arch = "aarch64")]
const CHOWN_SYSCALLS: (u32, &[libc::c_long]) = (0xc000_00b7, &[libc::SYS_fchown, libc::SYS_fchownat]);

/// Install a seccomp filter on this thread that sends the chown family to a user-space
/// listener (`SECCOMP_RET_USER_NOTIF`) and allows everything else; returns the
/// listener fd (close-on-exec). Needs `no_new_privs` (or CAP_SYS_ADMIN) first.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn install_chown_notifier() -> nix::Result<std::os::fd::OwnedFd> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let stmt = |code, k| libc::sock_filter { code, jt: 0, jf: 0, k };
    let (arch, calls) = CHOWN_SYSCALLS;
    let n = calls.len() as u8;
    // seccomp_data: nr at offset 0, arch at offset 4.
    let mut prog = vec![
        stmt(LD_W_ABS, 4),
        // Another arch: allow (jump over the nr checks to ALLOW).
        libc::sock_filter { code: JEQ_K, jt: 0, jf: n + 1, k: arch },
        stmt(LD_W_ABS, 0),
    ];
    for (i, nr) in calls.iter().enumerate() {
        // Match: jump to NOTIF (after the remaining checks and ALLOW).
        prog.push(libc::sock_filter { code: JEQ_K, jt: n - i as u8, jf: 0, k: *nr as u32 });
    }
    prog.push(stmt(RET_K, libc::SECCOMP_RET_ALLOW));
    prog.push(stmt(RET_K, libc::SECCOMP_RET_USER_NOTIF));
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_mut_ptr() };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel copies it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog as *const libc::sock_fprog,
        )
    };
    let fd = nix::errno::Errno::result(rc)? as i32;
    Ok(own_fd(fd))
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) fn install_chown_notifier() -> nix::Result<std::os::fd::OwnedFd> {
    Err(nix::errno::Errno::ENOSYS)
}

/// `SECCOMP_IOCTL_NOTIF_RECV`: the next intercepted call.
pub(crate) fn notif_recv(listener: &impl std::os::fd::AsRawFd) -> nix::Result<libc::seccomp_notif> {
    // SAFETY: seccomp_notif is plain old data; the kernel wants it zeroed.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl writes one seccomp_notif into `req`, which is large enough.
    let rc = unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
    nix::errno::Errno::result(rc).map(|_| req)
}

/// `SECCOMP_IOCTL_NOTIF_ID_VALID`: the call `id` still waits (its task is alive).
pub(crate) fn notif_id_valid(listener: &impl std::os::fd::AsRawFd, id: u64) -> bool {
    // SAFETY: the ioctl reads one u64 from `id`, which lives across the call.
    unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 }
}

/// `SECCOMP_IOCTL_NOTIF_SEND`: answer the call `id` with `error` (0 or a negative errno),
/// or let the kernel run it as the task would (`cont`).
pub(crate) fn notif_send(listener: &impl std::os::fd::AsRawFd, id: u64, error: i32, cont: bool) -> nix::Result<()> {
    let resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error,
        flags: if cont { libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32 } else { 0 },
    };
    // SAFETY: the ioctl reads one seccomp_notif_resp from `resp`, which lives across it.
    let rc = unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
    nix::errno::Errno::result(rc).map(drop)
}

/// `fsetxattr(2)`.
pub(crate) fn fsetxattr(fd: &impl std::os::fd::AsRawFd, name: &str, value: &[u8]) -> nix::Result<()> {
    let n = std::ffi::CString::new(name).map_err(|_| nix::errno::Errno::EINVAL)?;
    // SAFETY: `n` is NUL-terminated and `value` is valid for the call.
    let rc = unsafe { libc::fsetxattr(fd.as_raw_fd(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    nix::errno::Errno::result(rc).map(drop)
}

/// `fgetxattr(2)`, growing the buffer up to `XATTR_SIZE_MAX` (64 KiB).
pub(crate) fn fgetxattr(fd: &impl std::os::fd::AsRawFd, name: &str) -> nix::Result<Vec<u8>> {
    let n = std::ffi::CString::new(name).map_err(|_| nix::errno::Errno::EINVAL)?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: `n` is NUL-terminated; `buf` is writable for its length.
        let rc = unsafe { libc::fgetxattr(fd.as_raw_fd(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        match nix::errno::Errno::result(rc) {
            Ok(len) => {
                buf.truncate(len as usize);
                return Ok(buf);
            }
            Err(nix::errno::Errno::ERANGE) if buf.len() < 64 * 1024 => buf.resize(buf.len() * 4, 0),
            Err(e) => return Err(e),
        }
    }
}

/// `fremovexattr(2)`.
pub(crate) fn fremovexattr(fd: &impl std::os::fd::AsRawFd, name: &str) -> nix::Result<()> {
    let n = std::ffi::CString::new(name).map_err(|_| nix::errno::Errno::EINVAL)?;
    // SAFETY: `n` is NUL-terminated.
    let rc = unsafe { libc::fremovexattr(fd.as_raw_fd(), n.as_ptr()) };
    nix::errno::Errno::result(rc).map(drop)
}

/// `pidfd_open(2)`: an fd that polls readable once `pid` has exited.
pub(crate) fn pidfd_open(pid: i32) -> nix::Result<std::os::fd::OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd, which we own.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    Ok(own_fd(nix::errno::Errno::result(rc)? as i32))
}
