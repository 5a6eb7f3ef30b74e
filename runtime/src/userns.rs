//! Entering a user + mount namespace before anything else runs.
//!
//! An unprivileged `slipway` re-executes itself (`/proc/self/exe`, same arguments) with
//! `_SLIPWAY_USERNS=child`. The child unshares `CLONE_NEWUSER | CLONE_NEWNS` first thing,
//! tells the parent over a pipe, and waits. The parent maps it with `newuidmap` /
//! `newgidmap` (container 0 → the caller, 1..N → the subordinate ranges) — or, without
//! subordinate ranges, with a single id written to `/proc/PID/uid_map` — and then lets it
//! go. The child becomes root of its namespace, makes all mounts private and carries on
//! as the real slipway; the parent only waits and passes the exit status on.
//!
//! This must run before any thread exists: `unshare(CLONE_NEWUSER)` fails in a
//! multi-threaded process.

use crate::error::{Result, RuntimeError};
use crate::subid;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::unistd::{Gid, Uid};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::Command;

const STAGE_ENV: &str = "_SLIPWAY_USERNS";
const FDS_ENV: &str = "_SLIPWAY_USERNS_FDS";
/// Set in the namespace to `full` or `single`, for diagnostics and tests.
pub const MAPPING_ENV: &str = "_SLIPWAY_USERNS_MAPPING";

/// What [`enter`] decided.
pub enum Entered {
    /// This process is now root of a user namespace (or was root already) with a private
    /// mount namespace: carry on.
    Inside,
    /// This process is the outer parent; the child has finished with this exit code.
    ParentDone(i32),
}

/// Host files the mapping is read from (injectable for tests).
pub struct HostIds<'a> {
    pub subuid: &'a Path,
    pub subgid: &'a Path,
}

impl Default for HostIds<'static> {
    fn default() -> Self {
        HostIds { subuid: Path::new("/etc/subuid"), subgid: Path::new("/etc/subgid") }
    }
}

/// Enter the namespace if needed. Call first thing in `main`.
pub fn enter(host: &HostIds) -> Result<Entered> {
    if std::env::var_os(STAGE_ENV).is_some_and(|v| v == "child") {
        child_side()?;
        return Ok(Entered::Inside);
    }
    if Uid::effective().is_root() {
        // Real root, or already root of a namespace: only a private mount namespace.
        if crate::idmap::IdMap::current().is_single() {
            tracing::warn!(
                "user namespace: single-id mapping, because slipway runs as root of a namespace that maps one id; {SINGLE_ID_MEANS}"
            );
            crate::sys::set_env_single_threaded(MAPPING_ENV, "single");
        }
        match nix::sched::unshare(CloneFlags::CLONE_NEWNS) {
            Ok(()) => {
                make_mounts_private()?;
                return Ok(Entered::Inside);
            }
            // Root of a container without CAP_SYS_ADMIN (a pod's default): a user
            // namespace of our own, mapping every id this one has onto itself, gives
            // the mount rights back.
            Err(nix::errno::Errno::EPERM) => {
                let (uids, gids) = (own_id_ranges("/proc/self/uid_map"), own_id_ranges("/proc/self/gid_map"));
                return spawn_mapped(Mapping::Identity { uids, gids }).map(Entered::ParentDone);
            }
            Err(e) => return Err(RuntimeError::sys("unshare(CLONE_NEWNS)")(e)),
        }
    }
    parent_side(host).map(Entered::ParentDone)
}

/// How the re-executed child gets its ids.
enum Mapping {
    /// 0 → the caller, 1.. → subordinate ranges, by newuidmap/newgidmap.
    Subordinate { uid: u32, gid: u32, user: String, uid_ranges: Vec<subid::IdRange>, gid_ranges: Vec<subid::IdRange> },
    /// Only 0 → the caller, written by ourselves.
    Single { uid: u32, gid: u32 },
    /// Root of this namespace: every id range it has onto itself, written by ourselves.
    Identity { uids: Vec<(u32, u32)>, gids: Vec<(u32, u32)> },
}

/// The id ranges this process's namespace has (`(first, count)` by its map file's inside
/// column). A child's map extent must lie within one extent of its parent's, so an
/// identity map repeats them one by one.
fn own_id_ranges(map_file: &str) -> Vec<(u32, u32)> {
    std::fs::read_to_string(map_file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<u32> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            (f.len() == 3).then(|| (f[0], f[2]))
        })
        .collect()
}

fn make_mounts_private() -> Result<()> {
    nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(RuntimeError::sys("making mounts private"))
}

fn child_side() -> Result<()> {
    let fds = std::env::var(FDS_ENV).map_err(|_| RuntimeError::Other(format!("{FDS_ENV} is not set")))?;
    let (ready_fd, go_fd) = fds
        .split_once(',')
        .and_then(|(a, b)| Some((a.parse::<i32>().ok()?, b.parse::<i32>().ok()?)))
        .ok_or_else(|| RuntimeError::Other(format!("bad {FDS_ENV}={fds}")))?;
    let (mut ready, mut go) = (fd_file(ready_fd)?, fd_file(go_fd)?);

    let unshared = nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS);
    // Always answer the parent so it never waits forever.
    ready
        .write_all(if unshared.is_ok() { b"1" } else { b"0" })
        .map_err(RuntimeError::io("signalling the parent over", "pipe"))?;
    drop(ready);
    unshared.map_err(|source| RuntimeError::UserNamespace { source })?;
    let mut answer = [0u8; 1];
    let n = go.read(&mut answer).map_err(RuntimeError::io("waiting for the id mapping on", "pipe"))?;
    match (n, answer[0]) {
        (1, b'1') => {}
        // The parent fell back to a single-id mapping after spawning us.
        (1, b's') => crate::sys::set_env_single_threaded(MAPPING_ENV, "single"),
        // The parent failed to map us and has printed why.
        _ => std::process::exit(125),
    }
    nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
        .map_err(RuntimeError::sys("setresgid(0) in the user namespace"))?;
    nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
        .map_err(RuntimeError::sys("setresuid(0) in the user namespace"))?;
    // Credentials changed, which cleared any death signal: die with the parent.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(RuntimeError::sys("prctl(PR_SET_PDEATHSIG)"))?;
    make_mounts_private()
}

/// Adopt an inherited pipe end; validate it first so a bogus env var fails cleanly.
fn fd_file(fd: i32) -> Result<std::fs::File> {
    nix::fcntl::fcntl(crate::sys::borrow_fd(fd), nix::fcntl::FcntlArg::F_GETFD)
        .map_err(RuntimeError::sys(format!("inherited fd {fd}")))?;
    Ok(std::fs::File::from(crate::sys::own_fd(fd)))
}

fn parent_side(host: &HostIds) -> Result<i32> {
    let uid = Uid::current().as_raw();
    let gid = Gid::current().as_raw();
    let user = nix::unistd::User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let uid_ranges = subid::parse(&read(host.subuid), &user, uid);
    let group = nix::unistd::Group::from_gid(Gid::from_raw(gid)).ok().flatten().map(|g| g.name);
    let mut gid_ranges = subid::parse(&read(host.subgid), &user, uid);
    if gid_ranges.is_empty()
        && let Some(g) = group
    {
        gid_ranges = subid::parse(&read(host.subgid), &g, gid);
    }
    if uid_ranges.is_empty() || gid_ranges.is_empty() {
        tracing::warn!(
            "user namespace: single-id mapping (0 → uid {uid}), because {user} has no ranges in /etc/subuid and /etc/subgid; {SINGLE_ID_MEANS}"
        );
        return spawn_mapped(Mapping::Single { uid, gid });
    }
    spawn_mapped(Mapping::Subordinate { uid, gid, user, uid_ranges, gid_ranges })
}

/// Re-execute this process as the namespace's child, map it as `mapping` says, and wait
/// for it; returns its exit code.
fn spawn_mapped(mapping: Mapping) -> Result<i32> {
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(RuntimeError::sys("pipe2"));
    let (ready_r, ready_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    let exe = std::fs::read_link("/proc/self/exe").map_err(RuntimeError::io("reading", "/proc/self/exe"))?;
    let mut cmd = Command::new(&exe);
    let kind = match mapping {
        Mapping::Subordinate { .. } | Mapping::Identity { .. } => "full",
        Mapping::Single { .. } => "single",
    };
    cmd.args(std::env::args_os().skip(1))
        .env(STAGE_ENV, "child")
        .env(FDS_ENV, format!("{},{}", ready_w.as_raw_fd(), go_r.as_raw_fd()))
        .env(MAPPING_ENV, kind);
    if let Some(a0) = std::env::args_os().next() {
        cmd.arg0(a0);
    }
    let (ready_w_raw, go_r_raw) = (ready_w.as_raw_fd(), go_r.as_raw_fd());
    crate::sys::keep_fds_on_exec(&mut cmd, &[ready_w_raw, go_r_raw]);
    let mut child = cmd.spawn().map_err(RuntimeError::io("re-executing", &exe))?;
    drop(ready_w);
    drop(go_r);
    let pid = child.id() as i32;

    // Ctrl-C reaches the child through the terminal; the parent must outlive it.
    crate::sys::ignore_interactive_signals();

    let mut ready = std::fs::File::from(ready_r);
    let mut b = [0u8; 1];
    let n = ready.read(&mut b).map_err(RuntimeError::io("waiting for the child on", "pipe"))?;
    let mut go = std::fs::File::from(go_w);
    if n == 1 && b[0] == b'1' {
        let mut told = if matches!(mapping, Mapping::Single { .. }) { "single" } else { "full" };
        let mapped = match &mapping {
            Mapping::Subordinate { uid, gid, uid_ranges, gid_ranges, user } => {
                match run_map("newuidmap", pid, &subid::map_args(*uid, uid_ranges)) {
                    Ok(()) => run_map("newgidmap", pid, &subid::map_args(*gid, gid_ranges)).map(|()| {
                        tracing::info!(
                            "user namespace: full id mapping (0 → uid {uid}, 1… → the ranges of {user} in /etc/subuid and /etc/subgid)"
                        );
                    }),
                    // Not installed, or without its privilege (a pod image, no_new_privs, a
                    // nosuid mount): nothing is mapped yet, so map the caller alone.
                    Err(e) => {
                        tracing::warn!(
                            "user namespace: single-id mapping, because newuidmap failed ({e}); {SINGLE_ID_MEANS}"
                        );
                        told = "single";
                        single_map(pid, *uid, *gid)
                    }
                }
            }
            Mapping::Single { uid, gid } => single_map(pid, *uid, *gid),
            Mapping::Identity { uids, gids } => identity_map(pid, uids, gids).map(|()| {
                tracing::info!(
                    "user namespace: every id of this namespace mapped onto itself, because root here may not mount (no CAP_SYS_ADMIN, as in a pod)"
                );
            }),
        };
        match mapped.and_then(|()| tell_mapping(&mut go, told)) {
            Ok(()) => {}
            Err(e) => {
                let _ = go.write_all(b"0");
                drop(go);
                let _ = child.wait();
                return Err(e);
            }
        }
    }
    drop(go);
    let status = child.wait().map_err(RuntimeError::io("waiting for", &exe))?;
    Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// What a single-id mapping means for a build, in the log line that announces it.
const SINGLE_ID_MEANS: &str = "steps run as root without supplementary groups, and owners other than root (from layers, COPY/ADD, git mappings, chown in RUN steps) are recorded in the user.containers.override_stat xattr and written to the layers";

/// Let the child go, telling it which mapping it got (`1`: as announced in its
/// environment; `s`: single-id after all).
fn tell_mapping(go: &mut std::fs::File, mapping: &str) -> Result<()> {
    let byte: &[u8] = if mapping == "full" { b"1" } else { b"s" };
    go.write_all(byte).map_err(RuntimeError::io("signalling the child over", "pipe"))
}

fn run_map(tool: &'static str, pid: i32, args: &[String]) -> Result<()> {
    let out = Command::new(tool).arg(pid.to_string()).args(args).output().map_err(|e| RuntimeError::IdMap {
        tool,
        pid,
        message: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(RuntimeError::IdMap {
            tool,
            pid,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

fn single_map(pid: i32, uid: u32, gid: u32) -> Result<()> {
    let write = |file: &str, data: String| {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, data).map_err(RuntimeError::io("writing", path))
    };
    write("uid_map", format!("0 {uid} 1\n"))?;
    write("setgroups", "deny\n".into())?;
    write("gid_map", format!("0 {gid} 1\n"))
}

fn identity_map(pid: i32, uids: &[(u32, u32)], gids: &[(u32, u32)]) -> Result<()> {
    for (file, ranges) in [("uid_map", uids), ("gid_map", gids)] {
        let path = format!("/proc/{pid}/{file}");
        let text: String = ranges.iter().map(|(first, count)| format!("{first} {first} {count}\n")).collect();
        std::fs::write(&path, text).map_err(RuntimeError::io("writing", path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_id_ranges_are_read_from_the_inside_column() {
        let f = std::env::temp_dir().join(format!("userns-map-{}", std::process::id()));
        std::fs::write(&f, "         0       1001          1\n         1     100000      65536\n").unwrap();
        assert_eq!(super::own_id_ranges(f.to_str().unwrap()), [(0, 1), (1, 65536)]);
        std::fs::write(&f, "").unwrap();
        assert_eq!(super::own_id_ranges(f.to_str().unwrap()), []);
        std::fs::remove_file(&f).unwrap();
    }
}
