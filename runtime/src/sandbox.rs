//! The per-step sandbox.
//!
//! [`run`] (called in the namespace-owning slipway process, over a mounted rootfs)
//! creates missing mount points, writes the spec to a file and spawns
//! `/proc/self/exe` with `_SLIPWAY_SANDBOX=<spec>`. That helper ([`helper_main`], entered
//! from `main` before anything else) unshares mount/pid/uts/ipc namespaces and forks; the
//! child is pid 1 of the new pid namespace: it mounts `/proc`, a tmpfs `/dev` with the
//! usual devices bound from the host, `/sys` read-only, the caller's bind mounts (such
//! as `/etc/hosts` and `/etc/resolv.conf`), pivots into the rootfs, sets hostname, rlimits, groups, gid, uid,
//! `no_new_privs` and the working directory, and execs the command. The helper waits and
//! exits with the command's status. Mount points that [`run`] had to create are removed
//! again afterwards, so they do not end up in the committed layer.
//!
//! With [`SandboxSpec::no_network`] the helper also unshares the network namespace and
//! brings `lo` up (`RUN --network=none`); otherwise the step uses the host's network.
//!
//! The step gets stdin, stdout and stderr and no other fd ([`crate::fds`]).
//!
//! Every path inside the rootfs is resolved with `openat2(RESOLVE_IN_ROOT)`, so a symlink
//! in the image (say `/etc -> /host/etc`) can never point a mount or a write at the host.

use crate::error::{Result, RuntimeError};
use crate::idmap::IdMap;
use crate::rlimit::Rlimit;
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::sys::wait::WaitStatus;
use nix::unistd::{Gid, Uid};
use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

const HELPER_ENV: &str = "_SLIPWAY_SANDBOX";
/// The capabilities a step keeps (Docker's and buildah's default set: chown, dac_override,
/// fowner, fsetid, kill, setgid, setuid, setpcap, net_bind_service, net_raw, sys_chroot,
/// mknod, audit_write, setfcap); the same set the OCI isolation asks runc for.
const DEFAULT_CAPS: u64 = 0xa80425fb;
/// Exit status of the helper when the sandbox could not be set up (details in the error file).
const SETUP_FAILED: i32 = 125;

/// A file or directory bound into the sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bind {
    pub source: PathBuf,
    /// Absolute path inside the rootfs.
    pub dest: String,
    pub readonly: bool,
}

/// Everything the sandbox needs to run one command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// The mounted rootfs (host path).
    pub rootfs: PathBuf,
    pub args: Vec<String>,
    /// `KEY=value` pairs; `PATH` from here is used to find `args[0]`.
    pub env: Vec<String>,
    /// Absolute working directory inside the rootfs.
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub hostname: String,
    pub rlimits: Vec<Rlimit>,
    pub binds: Vec<Bind>,
    /// A new, empty network namespace with only loopback (`RUN --network=none`);
    /// otherwise the host's network.
    #[serde(default)]
    pub no_network: bool,
    /// Send the command's stdout to our stderr (a build step while stdout is reserved
    /// for something else, as in `slipway run`).
    #[serde(skip)]
    pub stdout_to_stderr: bool,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Exit code, or 128 + signal number.
    pub code: i32,
}

impl Exit {
    pub fn success(self) -> bool {
        self.code == 0
    }
}

/// Run `spec` in a fresh sandbox and wait for it. `scratch` is a private directory for
/// the spec and error files.
pub fn run(spec: &SandboxSpec, scratch: &Path) -> Result<Exit> {
    run_with(spec, scratch, &Isolation::Builtin)
}

/// Who isolates the step: slipway's own sandbox (werf's `native-chroot`) or an OCI
/// runtime such as runc given the same spec as a bundle (werf's `native-rootless`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    Builtin,
    Oci { runtime: PathBuf },
}

/// [`run`] with the given isolation.
pub fn run_with(spec: &SandboxSpec, scratch: &Path, isolation: &Isolation) -> Result<Exit> {
    std::fs::create_dir_all(scratch).map_err(RuntimeError::io("creating", scratch))?;
    let spec = &adapt_to_namespace(spec, &IdMap::current());
    let created = create_mount_points(spec)?;
    let result = match isolation {
        Isolation::Builtin => spawn_helper(spec, scratch),
        Isolation::Oci { runtime } => crate::oci::run(spec, scratch, runtime),
    };
    remove_created(&spec.rootfs, &created);
    result
}

/// The step's identity as this user namespace can give it ([`IdMap::adapt`]): no
/// supplementary groups where setgroups is denied, and in a single-id namespace the
/// mapped id for an unmapped `USER` (buildah's behaviour there), each change noted.
fn adapt_to_namespace(spec: &SandboxSpec, ids: &IdMap) -> SandboxSpec {
    let mut spec = spec.clone();
    let a = ids.adapt(&mut spec.uid, &mut spec.gid, &mut spec.groups);
    if !a.dropped_groups.is_empty() {
        tracing::debug!(groups = ?a.dropped_groups, "setgroups is denied in this user namespace: the step runs without supplementary groups");
    }
    if a.uid.is_some() || a.gid.is_some() {
        tracing::info!(
            "user {}:{} is not mapped in this single-id user namespace: the step runs as {}:{} (as buildah does)",
            a.uid.map_or(spec.uid, |u| u.0),
            a.gid.map_or(spec.gid, |g| g.0),
            a.uid.map_or(spec.uid, |u| u.1),
            a.gid.map_or(spec.gid, |g| g.1),
        );
    }
    spec
}

fn spawn_helper(spec: &SandboxSpec, scratch: &Path) -> Result<Exit> {
    let spec_path = scratch.join("sandbox.json");
    let err_path = scratch.join("sandbox.err");
    let _ = std::fs::remove_file(&err_path);
    let json = serde_json::to_vec(spec).map_err(|e| RuntimeError::Other(format!("encoding sandbox spec: {e}")))?;
    std::fs::write(&spec_path, json).map_err(RuntimeError::io("writing", &spec_path))?;
    let exe = std::fs::read_link("/proc/self/exe").map_err(RuntimeError::io("reading", "/proc/self/exe"))?;
    let mut cmd = std::process::Command::new(&exe);
    cmd.env(HELPER_ENV, &spec_path);
    let code = wait_step(cmd, spec).map_err(RuntimeError::io("starting the sandbox helper", &exe))?.code;
    if code == SETUP_FAILED
        && let Ok(msg) = std::fs::read_to_string(&err_path)
        && !msg.is_empty()
    {
        return Err(RuntimeError::Other(format!("setting up the sandbox: {}", msg.trim())));
    }
    Ok(Exit { code })
}

/// Run the process that runs a step (the helper, or the OCI runtime) and wait for it:
/// stdout goes to our stderr when the spec asks, the exit code is the step's (or 128 +
/// the signal that ended it).
pub(crate) fn wait_step(mut cmd: std::process::Command, spec: &SandboxSpec) -> std::io::Result<Exit> {
    // Nothing but stdio: an fd this process holds would be a way out of the sandbox.
    crate::sys::only_stdio_on_exec(&mut cmd);
    if spec.stdout_to_stderr {
        let err = std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned()?;
        cmd.stdout(std::process::Stdio::from(err));
    }
    let status = cmd.status()?;
    use std::os::unix::process::ExitStatusExt;
    Ok(Exit { code: status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)) })
}

/// Mount points the sandbox needs inside the rootfs: (path, is_dir).
const MOUNT_POINTS: &[(&str, bool)] = &[("proc", true), ("dev", true), ("sys", true), ("etc", true)];

fn create_mount_points(spec: &SandboxSpec) -> Result<Vec<String>> {
    let root = open_dir(&spec.rootfs)?;
    let mut created = Vec::new();
    let binds = spec.binds.iter().map(|b| (b.dest.trim_start_matches('/'), b.source.is_dir()));
    for (rel, is_dir) in MOUNT_POINTS.iter().copied().chain(binds) {
        make_mount_point(&root, &spec.rootfs, rel, is_dir, &mut created)?;
    }
    Ok(created)
}

/// Create the missing parts of the mount point `rel` inside `root` (as if it were `/`);
/// what was created goes to `created`, parents first.
fn make_mount_point(root: &OwnedFd, shown: &Path, rel: &str, is_dir: bool, created: &mut Vec<String>) -> Result<()> {
    if rel.is_empty() {
        return Ok(());
    }
    // Parents first, so they can be removed again (deepest last in `created`).
    let parts: Vec<&str> = rel.split('/').collect();
    for i in 1..=parts.len() {
        let p = parts[..i].join("/");
        let dir = i < parts.len() || is_dir;
        if resolve_in_root(root, &p, OFlag::O_PATH).is_ok() {
            continue;
        }
        let (parent, name) = match p.rsplit_once('/') {
            Some((a, b)) => (resolve_in_root(root, a, OFlag::O_PATH | OFlag::O_DIRECTORY)?, b.to_string()),
            None => (root.try_clone().map_err(RuntimeError::io("duplicating fd of", shown))?, p.clone()),
        };
        if dir {
            nix::sys::stat::mkdirat(&parent, name.as_str(), Mode::from_bits_truncate(0o755))
        } else {
            nix::fcntl::openat(
                &parent,
                name.as_str(),
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                Mode::from_bits_truncate(0o644),
            )
            .map(drop)
        }
        .map_err(RuntimeError::sys(format!("creating mount point /{p} in {}", shown.display())))?;
        created.push(p);
    }
    Ok(())
}

fn remove_created(rootfs: &Path, created: &[String]) {
    let Ok(root) = open_dir(rootfs) else { return };
    for p in created.iter().rev() {
        let (parent, name) = match p.rsplit_once('/') {
            Some((a, b)) => match resolve_in_root(&root, a, OFlag::O_PATH | OFlag::O_DIRECTORY) {
                Ok(fd) => (fd, b),
                Err(_) => continue,
            },
            None => match root.try_clone() {
                Ok(fd) => (fd, p.as_str()),
                Err(_) => continue,
            },
        };
        let is_dir = nix::sys::stat::fstatat(&parent, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
        let flag = if is_dir { nix::unistd::UnlinkatFlags::RemoveDir } else { nix::unistd::UnlinkatFlags::NoRemoveDir };
        // A directory the step filled is kept: it is the step's content now.
        let _ = nix::unistd::unlinkat(&parent, name, flag);
    }
}

fn open_dir(path: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(RuntimeError::sys(format!("opening {}", path.display())))
}

/// Open `rel` inside the rootfs, resolving symlinks as if the rootfs were `/`.
fn resolve_in_root(root: &OwnedFd, rel: &str, flags: OFlag) -> Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let rel = if rel.is_empty() { "." } else { rel };
    nix::fcntl::openat2(root, rel, how).map_err(RuntimeError::sys(format!("resolving /{rel} in the rootfs")))
}

fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// If this process is a sandbox helper, run it and never return.
pub fn helper_main_if_requested() {
    let Some(spec_path) = std::env::var_os(HELPER_ENV) else {
        return;
    };
    let spec_path = PathBuf::from(spec_path);
    let err_path = spec_path.with_file_name("sandbox.err");
    // Opened now: after pivot_root the path is out of reach, the open file is not.
    let err_file = std::fs::File::create(&err_path).ok();
    let fail = |msg: String| -> ! {
        if let Some(mut f) = err_file.as_ref() {
            let _ = std::io::Write::write_all(&mut f, msg.as_bytes());
        }
        std::process::exit(SETUP_FAILED)
    };
    let spec: SandboxSpec = match std::fs::read(&spec_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => fail(format!("reading {}: {e}", spec_path.display())),
    };
    // Die with the slipway process that started us (a killed build leaves no step running).
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let mut flags =
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    if spec.no_network {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if let Err(e) = nix::sched::unshare(flags) {
        fail(format!("unshare(mount, pid, uts, ipc{} namespaces): {e}", if spec.no_network { ", net" } else { "" }));
    }
    // A new network namespace has only `lo`, and it is down: bring it up, as BuildKit does.
    if spec.no_network
        && let Err(e) = crate::sys::loopback_up()
    {
        fail(format!("bringing up lo in the step's network namespace: {e}"));
    }
    // A single-id namespace: chown in the step is recorded (`chown_notify`). The step's
    // pid 1 sends the seccomp listener over this socketpair.
    let notify = match IdMap::current().is_single() {
        true => match (crate::chown_notify::Supervisor::new(), notify_socketpair()) {
            (Ok(sup), Ok(pair)) => Some((sup, pair)),
            (Err(e), _) | (_, Err(e)) => fail(format!("preparing the chown supervisor: {e}")),
        },
        false => None,
    };
    match crate::sys::fork() {
        Err(e) => fail(format!("fork: {e}")),
        Ok(nix::unistd::ForkResult::Child) => {
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
            let e = setup_and_exec(&spec, notify.as_ref().map(|(_, (_, child_end))| child_end));
            fail(e.to_string());
        }
        Ok(nix::unistd::ForkResult::Parent { child }) if notify.is_some() => {
            let (sup, (parent_end, child_end)) = notify.expect("checked");
            drop(child_end);
            match supervise(child, &sup, &parent_end) {
                Ok(code) => std::process::exit(code),
                Err(e) => fail(format!("supervising the step's chown calls: {e}")),
            }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => loop {
            match nix::sys::wait::waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => std::process::exit(128 + sig as i32),
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => fail(format!("waiting for the step: {e}")),
            }
        },
    }
}

/// A socketpair for handing the seccomp listener from the step to the helper.
fn notify_socketpair() -> nix::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
}

/// The helper's loop while the step runs in a single-id namespace: take the listener
/// from the step, answer its chown calls, and return the step's exit code.
fn supervise(child: nix::unistd::Pid, sup: &crate::chown_notify::Supervisor, sock: &OwnedFd) -> nix::Result<i32> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let exited = crate::sys::pidfd_open(child.as_raw())?;
    let mut listener: Option<OwnedFd> = None;
    let mut sock_open = true;
    loop {
        let mut fds = vec![PollFd::new(exited.as_fd(), PollFlags::POLLIN)];
        if let Some(l) = &listener {
            fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
        } else if sock_open {
            fds.push(PollFd::new(sock.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let ready = |i: usize| fds.get(i).and_then(|f| f.revents()).is_some_and(|r| !r.is_empty());
        let (child_done, other) = (ready(0), ready(1));
        drop(fds);
        if other {
            match &listener {
                Some(l) => sup.handle_one(l),
                None => match receive_fd(sock) {
                    Ok(Some(fd)) => listener = Some(fd),
                    // The step closed its end without sending (its filter failed): it runs
                    // without one and chown fails as it would anyway.
                    _ => sock_open = false,
                },
            }
        }
        if child_done {
            loop {
                match nix::sys::wait::waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                    Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
                    Ok(_) | Err(Errno::EINTR) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

pub(crate) fn receive_fd(sock: &OwnedFd) -> nix::Result<Option<OwnedFd>> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(&fd) = fds.first()
        {
            return Ok(Some(crate::sys::own_fd(fd)));
        }
    }
    Ok(None)
}

/// pid 1's side: install the chown filter and send its listener to the helper. A kernel
/// without seccomp user notification leaves the step without one.
fn send_chown_listener(sock: &OwnedFd) {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    if let Ok(listener) = crate::sys::install_chown_notifier() {
        let fds = [listener.as_raw_fd()];
        let iov = [std::io::IoSlice::new(b"l")];
        let _ = sendmsg::<()>(sock.as_raw_fd(), &iov, &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None);
    }
}

/// Runs as pid 1 of the new pid namespace; returns only on failure.
fn setup_and_exec(spec: &SandboxSpec, notify: Option<&OwnedFd>) -> RuntimeError {
    match setup(spec, notify) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

enum Never {}

fn setup(spec: &SandboxSpec, notify: Option<&OwnedFd>) -> Result<Never> {
    let rootfs = &spec.rootfs;
    let mnt =
        |src: Option<&str>, target: &str, fstype: Option<&str>, flags: MsFlags, data: Option<&str>, what: &str| {
            nix::mount::mount(src, target, fstype, flags, data).map_err(RuntimeError::sys(format!("mounting {what}")))
        };
    let rootfs_s = rootfs.to_string_lossy().into_owned();
    mnt(Some(&rootfs_s), &rootfs_s, None, MsFlags::MS_BIND | MsFlags::MS_REC, None, "the rootfs on itself")?;
    let root = open_dir(rootfs)?;
    let dir = |rel: &str| resolve_in_root(&root, rel, OFlag::O_PATH | OFlag::O_DIRECTORY);
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;

    let proc_fd = dir("proc")?;
    if let Err(e) =
        nix::mount::mount(Some("proc"), fd_path(&proc_fd).as_str(), Some("proc"), nosuid_nodev_noexec, None::<&str>)
    {
        // In a user namespace the kernel refuses a new proc mount while parts of the
        // outer /proc are hidden under other mounts (mnt_too_revealing), as container
        // runtimes do by default.
        return Err(RuntimeError::Other(if e == nix::errno::Errno::EPERM {
            format!(
                "mounting /proc: {e}: the container this runs in masks parts of /proc, so no user namespace may mount \
                 a new one; run it with /proc unmasked (Kubernetes: securityContext.procMount: Unmasked; \
                 podman/docker: --security-opt unmask=ALL / systempaths=unconfined)"
            )
        } else {
            format!("mounting /proc: {e}")
        }));
    }

    let dev_fd = dir("dev")?;
    mnt(
        Some("tmpfs"),
        &fd_path(&dev_fd),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
        "/dev",
    )?;
    let dev_tmpfs = dir("dev")?;
    let dev = fd_path(&dev_tmpfs);
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let target = format!("{dev}/{name}");
        std::fs::File::create(&target).map_err(RuntimeError::io("creating", &target))?;
        mnt(Some(&format!("/dev/{name}")), &target, None, MsFlags::MS_BIND, None, &format!("/dev/{name}"))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let link = format!("{dev}/{name}");
        std::os::unix::fs::symlink(target, &link).map_err(RuntimeError::io("creating", &link))?;
    }
    for (name, mode) in [("pts", 0o755), ("shm", 0o1777), ("mqueue", 0o755)] {
        let p = format!("{dev}/{name}");
        std::fs::create_dir(&p).map_err(RuntimeError::io("creating", &p))?;
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            p.as_str(),
            Mode::from_bits_truncate(mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(RuntimeError::sys(format!("chmod {p}")))?;
    }
    if let Err(e) = nix::mount::mount(
        Some("devpts"),
        format!("{dev}/pts").as_str(),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    ) {
        tracing::debug!(error = %e, "no devpts in the sandbox");
    }
    mnt(
        Some("shm"),
        &format!("{dev}/shm"),
        Some("tmpfs"),
        nosuid_nodev_noexec,
        Some("mode=1777,size=65536k"),
        "/dev/shm",
    )?;
    if let Err(e) = nix::mount::mount(
        Some("mqueue"),
        format!("{dev}/mqueue").as_str(),
        Some("mqueue"),
        nosuid_nodev_noexec,
        None::<&str>,
    ) {
        tracing::debug!(error = %e, "no mqueue in the sandbox");
    }

    // sysfs needs its own network namespace; bind the host's read-only instead.
    let sys_fd = dir("sys")?;
    let sys = fd_path(&sys_fd);
    mnt(Some("/sys"), &sys, None, MsFlags::MS_BIND | MsFlags::MS_REC, None, "/sys")?;
    let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | nosuid_nodev_noexec;
    if let Err(e) = nix::mount::mount(None::<&str>, sys.as_str(), None::<&str>, ro, None::<&str>) {
        tracing::debug!(error = %e, "could not make /sys read-only");
    }

    for b in &spec.binds {
        let rel = b.dest.trim_start_matches('/');
        // Targets below /dev (BuildKit's /dev/pipes/ for RUN heredoc scripts) live in the
        // fresh tmpfs, which the mount points made in the rootfs are hidden under.
        make_mount_point(&root, rootfs, rel, b.source.is_dir(), &mut Vec::new())?;
        let target_fd = resolve_in_root(&root, rel, OFlag::O_PATH)?;
        let target = fd_path(&target_fd);
        let src = b.source.to_string_lossy();
        mnt(Some(&src), &target, None, MsFlags::MS_BIND | MsFlags::MS_REC, None, &b.dest)?;
        if b.readonly {
            // Resolve again: the old fd names the directory under the new mount.
            let mounted = resolve_in_root(&root, rel, OFlag::O_PATH)?;
            remount_readonly(&fd_path(&mounted)).map_err(RuntimeError::sys(format!("making {} read-only", b.dest)))?;
        }
    }
    drop((proc_fd, dev_fd, dev_tmpfs, sys_fd));

    nix::unistd::chdir(rootfs).map_err(RuntimeError::sys(format!("chdir {}", rootfs.display())))?;
    nix::unistd::pivot_root(".", ".").map_err(RuntimeError::sys("pivot_root"))?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH).map_err(RuntimeError::sys("detaching the old root"))?;
    nix::unistd::chdir("/").map_err(RuntimeError::sys("chdir /"))?;

    if let Err(e) = nix::unistd::sethostname(&spec.hostname) {
        // Container seccomp profiles deny sethostname without CAP_SYS_ADMIN; the step's
        // own UTS namespace then keeps the outer name, which changes nothing it builds.
        if e != nix::errno::Errno::EPERM {
            return Err(RuntimeError::sys("sethostname")(e));
        }
    }
    for r in &spec.rlimits {
        crate::sys::setrlimit(r.resource, r.soft, r.hard).map_err(RuntimeError::sys(format!(
            "setting rlimit {} to {}:{}",
            crate::rlimit::name_of(r.resource),
            r.soft,
            r.hard
        )))?;
    }
    crate::sys::drop_bounding_caps(DEFAULT_CAPS).map_err(RuntimeError::sys("dropping capabilities"))?;
    let groups: Vec<Gid> = spec.groups.iter().copied().map(Gid::from_raw).collect();
    // A single-id namespace denies setgroups for good; `run` has emptied the groups
    // there (`adapt_to_namespace`), so an error left here is a real one.
    if let Err(e) = nix::unistd::setgroups(&groups)
        && !(groups.is_empty() && e == nix::errno::Errno::EPERM)
    {
        return Err(RuntimeError::sys("setgroups")(e));
    }
    let (uid, gid) = (Uid::from_raw(spec.uid), Gid::from_raw(spec.gid));
    nix::unistd::setresgid(gid, gid, gid)
        .map_err(RuntimeError::sys(format!("setting gid {} (is it mapped in the user namespace?)", spec.gid)))?;
    nix::unistd::setresuid(uid, uid, uid)
        .map_err(RuntimeError::sys(format!("setting uid {} (is it mapped in the user namespace?)", spec.uid)))?;
    nix::sys::prctl::set_no_new_privs().map_err(RuntimeError::sys("prctl(PR_SET_NO_NEW_PRIVS)"))?;
    nix::unistd::chdir(spec.cwd.as_str())
        .map_err(RuntimeError::sys(format!("changing to working directory {}", spec.cwd)))?;

    let program = find_program(spec)?;
    let cstr =
        |s: &str| CString::new(s).map_err(|_| RuntimeError::Other(format!("argument {s:?} contains a NUL byte")));
    let argv = spec.args.iter().map(|a| cstr(a)).collect::<Result<Vec<_>>>()?;
    let envp = spec.env.iter().map(|a| cstr(a)).collect::<Result<Vec<_>>>()?;
    // Last thing before exec: no fd but stdio reaches the step (an inherited directory fd
    // would let it read the host through /proc/self/fd/N/..). The error file stays open
    // until the exec succeeds.
    crate::fds::cloexec_all_but_stdio().map_err(RuntimeError::io("marking fds close-on-exec in", "/proc/self/fd"))?;
    // Last: from here on this process's own chown calls would wait for the helper.
    if let Some(sock) = notify {
        send_chown_listener(sock);
    }
    let e = nix::unistd::execve(&cstr(&program)?, &argv, &envp).unwrap_err();
    Err(RuntimeError::Other(format!("executing {program}: {e}")))
}

/// Remount a bind mount read-only. In a user namespace the flags the mount already has
/// (nosuid, nodev, noexec, atime) are locked and must be kept, so retry with them.
fn remount_readonly(target: &str) -> nix::Result<()> {
    let base = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    let first = nix::mount::mount(None::<&str>, target, None::<&str>, base, None::<&str>);
    if first.is_ok() {
        return first;
    }
    let st = nix::sys::statvfs::statvfs(target)?;
    use nix::sys::statvfs::FsFlags;
    let mut flags = base;
    for (f, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if st.flags().contains(f) {
            flags |= m;
        }
    }
    nix::mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
}

/// Find `args[0]` in the `PATH` of the step's environment (inside the new root).
fn find_program(spec: &SandboxSpec) -> Result<String> {
    let arg0 = spec.args.first().ok_or_else(|| RuntimeError::Other("no command to run".into()))?;
    if arg0.contains('/') {
        return Ok(arg0.clone());
    }
    let path = spec
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = format!("{dir}/{arg0}");
        if nix::unistd::access(candidate.as_str(), nix::unistd::AccessFlags::X_OK).is_ok()
            && std::fs::metadata(&candidate).is_ok_and(|m| m.is_file())
        {
            return Ok(candidate);
        }
    }
    Err(RuntimeError::Other(format!("{arg0}: executable file not found in $PATH ({path})")))
}
