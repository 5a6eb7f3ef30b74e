//! `slipway host check`: what this host or pod offers a rootless build, and for each
//! thing missing the one change that enables it.
//!
//! It runs outside the user namespace (`main` calls it before entering one), reads the
//! host's facts (`slipway_runtime::hostfacts`), then runs `slipway internal probe` as a
//! child — which enters the namespace exactly as a build does — to try the id mapping, an
//! overlay mount and a step sandbox for real.

use slipway_runtime::hostfacts::{self, Fact};
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, clap::Subcommand)]
pub enum HostCommand {
    /// Report what this host supports for rootless builds (user namespaces, subordinate
    /// ids, newuidmap, overlay in a user namespace, the step sandbox, fuse, seccomp,
    /// runtimes, ulimits) and how to enable what is missing.
    Check,
    /// Cleanup old unused werf cache and data of all projects on host machine: what no
    /// stage references, and the least recently used stages when the store's volume is
    /// above --allowed-backend-storage-volume-usage.
    #[command(args_override_self = true)]
    Cleanup(super::host_gc::CleanupArgs),
    /// Purge werf images, cache and other data for all projects on host machine (or one
    /// project's with --project-name).
    #[command(args_override_self = true)]
    Purge(super::host_gc::PurgeArgs),
}

/// One row of the report.
struct Row {
    name: &'static str,
    /// `Some(true)` works, `Some(false)` missing or failing, `None` information only.
    ok: Option<bool>,
    detail: String,
    /// The change that enables it, for rows that fail.
    fix: Option<String>,
}

impl Row {
    fn info(name: &'static str, detail: impl Into<String>) -> Row {
        Row { name, ok: None, detail: detail.into(), fix: None }
    }
    fn check(name: &'static str, f: Fact, fix: impl FnOnce() -> String) -> Row {
        let fix = (!f.ok).then(fix);
        Row { name, ok: Some(f.ok), detail: f.value, fix }
    }
}

/// Run the check; prints the report and returns 0 when a build can run here.
pub fn run(command: HostCommand, storage_root: &Option<std::path::PathBuf>) -> anyhow::Result<u8> {
    match command {
        HostCommand::Check => Ok(check()),
        HostCommand::Cleanup(a) => super::host_gc::cleanup(a, storage_root),
        HostCommand::Purge(a) => super::host_gc::purge(a, storage_root),
    }
}

fn check() -> u8 {
    let (rows, summary) = gather();
    print!("{}", render(&rows, &summary));
    if rows.iter().any(|r| r.ok == Some(false) && blocks_builds(r.name)) { 1 } else { 0 }
}

/// The rows whose failure means no build can run (the others cost speed or a feature).
fn blocks_builds(name: &str) -> bool {
    matches!(name, "user namespaces" | "id mapping" | "sandbox")
}

fn gather() -> (Vec<Row>, String) {
    let uid = nix::unistd::Uid::current();
    let user = nix::unistd::User::from_uid(uid).ok().flatten().map(|u| u.name).unwrap_or_else(|| uid.to_string());
    let root = uid.is_root();
    let container = hostfacts::in_container();
    let (seccomp, no_new_privs, cap_eff) = hostfacts::process_status();
    let path = std::env::var("PATH").unwrap_or_default();
    let pod = container.is_some();
    let mut rows = vec![
        Row::info("kernel", hostfacts::kernel_release()),
        Row::info(
            "user",
            format!(
                "uid {} ({user}){}",
                uid.as_raw(),
                container.map(|c| format!(", in a {c} container")).unwrap_or_default()
            ),
        ),
    ];
    if !root {
        rows.push(Row::check("user namespaces", hostfacts::userns_sysctls(), || {
            if pod {
                "run the pod with `securityContext.seccompProfile.type: Unconfined` and AppArmor `unconfined` \
                 (or hostUsers: false), and user namespaces enabled on the node"
                    .into()
            } else {
                "sysctl -w user.max_user_namespaces=15000 kernel.unprivileged_userns_clone=1 \
                 (and kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu)"
                    .into()
            }
        }));
        let subids = subordinate_ids(&user, uid.as_raw());
        rows.push(Row::check("subordinate ids", subids, || {
            format!(
                "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user} \
                 (without ranges slipway maps only your own id: single-id mode)"
            )
        }));
        for tool in ["newuidmap", "newgidmap"] {
            let f = match hostfacts::find_on_path(&path, tool).or_else(|| fallback(tool)) {
                Some(p) => hostfacts::id_map_tool(&p),
                None => Fact { value: "not installed".into(), ok: false },
            };
            let f = if f.ok && no_new_privs == "1" {
                Fact { value: format!("{} but no_new_privs is set, so set-uid does not apply", f.value), ok: false }
            } else {
                f
            };
            rows.push(Row::check(if tool == "newuidmap" { "newuidmap" } else { "newgidmap" }, f, || {
                if no_new_privs == "1" {
                    "allow privilege escalation for the container (`allowPrivilegeEscalation: true`), or build in single-id mode".into()
                } else {
                    "apt-get install uidmap (Debian), or chmod u+s the tool".into()
                }
            }));
        }
    }
    let probe = in_namespace_probe();
    let probed = |name: &str| probe.iter().find(|(n, _, _)| n == name);
    let mapping = match probe.first() {
        Some((n, true, d)) if n == "mapping" && d.starts_with("root") => {
            Fact { value: "not needed: root with the right to mount (a private mount namespace only)".into(), ok: true }
        }
        Some((n, true, d)) if n == "mapping" => Fact { value: d.clone(), ok: true },
        Some((_, _, d)) => Fact { value: d.clone(), ok: false },
        None => Fact { value: "no answer from the probe".into(), ok: false },
    };
    let single = mapping.value.starts_with("single");
    rows.push(Row::check("id mapping", mapping, || {
        "see the rows above: user namespaces, subordinate ids and newuidmap/newgidmap".into()
    }));
    let from_probe = |name: &str| match probed(name) {
        Some((_, ok, d)) => Fact { value: d.clone(), ok: *ok },
        None => Fact { value: "not tried (no user namespace)".into(), ok: false },
    };
    let overlay = from_probe("overlay");
    let overlay_ok = overlay.ok;
    rows.push(Row::check("overlay", overlay, || {
        "Linux >= 5.11 allows overlayfs in a user namespace; until then slipway copies layers \
         (WERF_BUILDAH_STORAGE_DRIVER=vfs, slower)"
            .into()
    }));
    let sandbox = from_probe("sandbox");
    let masked_proc = sandbox.value.contains("masks parts of /proc");
    rows.push(Row::check("sandbox", sandbox, || {
        if masked_proc {
            "unmask /proc for the container: Kubernetes `securityContext.procMount: Unmasked` (with hostUsers: false), \
             podman `--security-opt unmask=ALL`, docker `--security-opt systempaths=unconfined`"
                .into()
        } else if pod {
            "run the container with seccomp and AppArmor `Unconfined`: the step sandbox needs pid, mount, uts and \
             ipc namespaces, mounts and pivot_root"
                .into()
        } else {
            "see the error: the step sandbox needs pid, mount, uts and ipc namespaces, mounts and pivot_root".into()
        }
    }));
    // fuse-overlayfs is where native overlayfs is refused: try it for real when the
    // device is usable, else say what is missing about the device.
    let device = hostfacts::fuse_device();
    let fuse = if device.ok { from_probe("fuse-overlayfs") } else { device };
    let fuse_ok = fuse.ok;
    let no_device = fuse.value.contains("/dev/fuse");
    rows.push(Row::check("fuse", fuse, || {
        let why = "slipway mounts layers with fuse-overlayfs where native overlayfs is refused";
        if !no_device {
            format!("apt-get install fuse-overlayfs (Debian); {why}")
        } else if pod {
            format!("give the pod /dev/fuse (a fuse device plugin); {why}")
        } else {
            format!("chmod 0666 /dev/fuse (Debian's default mode); {why}")
        }
    }));
    rows.push(Row::info("seccomp", format!("{seccomp}, no_new_privs {no_new_privs}, CapEff {cap_eff:016x}")));
    rows.push(Row::info("lsm", hostfacts::lsm_label().unwrap_or_else(|| "none".into())));
    rows.push(Row::info("cgroups", hostfacts::cgroup_layout()));
    rows.push(Row::info("/sys", if hostfacts::read_only("/sys") { "read-only" } else { "read-write" }));
    let mut runtimes = Vec::new();
    for name in ["runc", "crun"] {
        if let Some(p) = hostfacts::find_on_path(&path, name).or_else(|| fallback(name)) {
            let v = hostfacts::version_of(&p).unwrap_or_else(|| "version unknown".into());
            runtimes.push(format!("{v} ({})", p.display()));
        }
    }
    rows.push(Row::info(
        "runtimes",
        if runtimes.is_empty() {
            "none (the built-in sandbox needs none; WERF_BUILDAH_MODE=native-rootless needs runc)".into()
        } else {
            runtimes.join("; ")
        },
    ));
    let lim = |r: i32| {
        let (soft, hard) = slipway_runtime::rlimit::current(r);
        let show = |v: u64| if v == u64::MAX { "unlimited".to_string() } else { v.to_string() };
        format!("{} {}/{}", slipway_runtime::rlimit::name_of(r), show(soft), show(hard))
    };
    rows.push(Row::info("ulimits", format!("{}, {}", lim(libc::RLIMIT_NOFILE as i32), lim(libc::RLIMIT_NPROC as i32))));

    let can_build = rows.iter().all(|r| !(r.ok == Some(false) && blocks_builds(r.name)));
    let summary = if can_build {
        format!(
            "slipway builds here: {}, layers on {}, steps in the built-in sandbox (WERF_BUILDAH_MODE=native-chroot){}",
            if single {
                "a single-id mapping"
            } else if root && !pod {
                "the host's ids"
            } else {
                "a full id mapping"
            },
            if overlay_ok {
                "native overlayfs"
            } else if fuse_ok {
                "fuse-overlayfs"
            } else {
                "copies (vfs)"
            },
            if runtimes.iter().any(|r| r.contains("runc")) {
                "; runc for WERF_BUILDAH_MODE=native-rootless"
            } else {
                ""
            },
        )
    } else {
        "slipway cannot build here yet: make the changes listed below".into()
    };
    (rows, summary)
}

/// Debian's fixed places, for a PATH without the sbin directories.
fn fallback(name: &str) -> Option<std::path::PathBuf> {
    ["/usr/bin", "/usr/sbin", "/bin", "/sbin"].iter().map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

/// The caller's ranges in `/etc/subuid` and `/etc/subgid`.
fn subordinate_ids(user: &str, uid: u32) -> Fact {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let count =
        |text: &str| slipway_runtime::subid::parse(text, user, uid).iter().map(|r| u64::from(r.count)).sum::<u64>();
    let (u, g) = (count(&read("/etc/subuid")), count(&read("/etc/subgid")));
    Fact { value: format!("{u} uids, {g} gids"), ok: u > 0 && g > 0 }
}

/// `slipway internal probe` in a child that enters the user namespace as a build does:
/// `(name, ok, detail)` per line, or one failed `mapping` line with the child's error.
fn in_namespace_probe() -> Vec<(String, bool, String)> {
    let exe = match std::fs::read_link("/proc/self/exe") {
        Ok(e) => e,
        Err(e) => return vec![("mapping".into(), false, format!("reading /proc/self/exe: {e}"))],
    };
    let out = match std::process::Command::new(&exe).args(["internal", "probe"]).output() {
        Ok(o) => o,
        Err(e) => return vec![("mapping".into(), false, format!("running {}: {e}", exe.display()))],
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    // newuidmap failing turns a full mapping into a single-id one with a warning: say why.
    let fallback = stderr.lines().find(|l| l.contains("because newuidmap failed"));
    let mut parsed: Vec<(String, bool, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, '\t');
            Some((f.next()?.to_string(), f.next()? == "ok", f.next()?.to_string()))
        })
        .collect();
    if let (Some(why), Some((_, _, detail))) = (fallback, parsed.first_mut()) {
        let why = why.split_once("because ").map_or(why, |(_, w)| w);
        let why = why.split_once("; ").map_or(why, |(w, _)| w).trim();
        *detail = format!("{detail}: {why}");
    }
    if parsed.is_empty() {
        let err = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("no output").trim_start_matches("Error: ");
        return vec![("mapping".into(), false, err.to_string())];
    }
    parsed
}

fn render(rows: &[Row], summary: &str) -> String {
    let mut s = String::new();
    for r in rows {
        let mark = match r.ok {
            Some(true) => "ok",
            Some(false) => "MISSING",
            None => "",
        };
        let _ = writeln!(s, "{:<16} {:<8} {}", r.name, mark, r.detail);
    }
    let _ = writeln!(s, "\n{summary}");
    let fixes: Vec<&Row> = rows.iter().filter(|r| r.fix.is_some()).collect();
    if !fixes.is_empty() {
        let _ = writeln!(s, "\nTo enable what is missing:");
        for r in fixes {
            let _ = writeln!(s, "  {}: {}", r.name, r.fix.as_deref().unwrap_or_default());
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_render_as_a_table_with_the_fixes_last() {
        let rows = vec![
            Row::info("kernel", "6.18.0"),
            Row::check("fuse", Fact { value: "no /dev/fuse".into(), ok: false }, || "give the pod /dev/fuse".into()),
            Row::check("overlay", Fact { value: "native overlayfs mounts here".into(), ok: true }, || unreachable!()),
        ];
        assert_eq!(
            render(&rows, "slipway builds here"),
            "kernel                    6.18.0\n\
             fuse             MISSING  no /dev/fuse\n\
             overlay          ok       native overlayfs mounts here\n\
             \nslipway builds here\n\
             \nTo enable what is missing:\n  fuse: give the pod /dev/fuse\n"
        );
    }
}
