//! What this host (or pod) offers a rootless builder, read from `/proc`, `/sys`, `/etc` and
//! `PATH` without changing anything: the facts `slipway host check` reports. The probes
//! that need a user namespace (mapping, overlay, sandbox) are run by the caller in a
//! child process, the way a build would enter it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// One reading: a value, and whether it is fine for building.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub value: String,
    pub ok: bool,
}

fn fact(value: impl Into<String>, ok: bool) -> Fact {
    Fact { value: value.into(), ok }
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// The kernel release (`uname -r`).
pub fn kernel_release() -> String {
    read_trim("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into())
}

/// The sysctls that turn unprivileged user namespaces off: `user.max_user_namespaces`,
/// Debian's `kernel.unprivileged_userns_clone` and Ubuntu's
/// `kernel.apparmor_restrict_unprivileged_userns`. `ok` is false when one of them blocks.
pub fn userns_sysctls() -> Fact {
    let mut parts = Vec::new();
    let mut ok = true;
    if let Some(max) = read_trim("/proc/sys/user/max_user_namespaces") {
        ok &= max != "0";
        parts.push(format!("user.max_user_namespaces={max}"));
    }
    if let Some(v) = read_trim("/proc/sys/kernel/unprivileged_userns_clone") {
        ok &= v != "0";
        parts.push(format!("kernel.unprivileged_userns_clone={v}"));
    }
    if let Some(v) = read_trim("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") {
        ok &= v == "0";
        parts.push(format!("kernel.apparmor_restrict_unprivileged_userns={v}"));
    }
    fact(parts.join(", "), ok)
}

/// The first `name` on `path_var` (a `PATH` value) that is an executable file.
pub fn find_on_path(path_var: &str, name: &str) -> Option<PathBuf> {
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// How a `newuidmap`/`newgidmap` binary gets its privilege: set-uid root, or file
/// capabilities (`security.capability`). `ok` is false when it has neither (it would
/// fail with EPERM, as in many pod images).
pub fn id_map_tool(path: &Path) -> Fact {
    let Ok(meta) = std::fs::metadata(path) else {
        return fact("not found", false);
    };
    if meta.permissions().mode() & 0o4000 != 0 && meta.uid() == 0 {
        return fact(format!("{} (set-uid root)", path.display()), true);
    }
    if crate::sys::has_xattr(path, "security.capability") {
        return fact(format!("{} (file capabilities)", path.display()), true);
    }
    fact(format!("{} (neither set-uid root nor file capabilities)", path.display()), false)
}

/// `Seccomp`, `NoNewPrivs` and `CapEff` of this process (`/proc/self/status`).
pub fn process_status() -> (String, String, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let seccomp = match field("Seccomp").as_str() {
        "0" => "disabled".to_string(),
        "1" => "strict".to_string(),
        "2" => "filter".to_string(),
        other => other.to_string(),
    };
    let cap_eff = u64::from_str_radix(&field("CapEff"), 16).unwrap_or(0);
    (seccomp, field("NoNewPrivs"), cap_eff)
}

/// The AppArmor (or other LSM) label of this process, if the kernel exposes one.
pub fn lsm_label() -> Option<String> {
    ["/proc/self/attr/apparmor/current", "/proc/self/attr/current"]
        .iter()
        .find_map(|p| read_trim(p))
        .map(|s| s.trim_end_matches('\0').to_string())
        .filter(|s| !s.is_empty())
}

/// Whether `/dev/fuse` can be opened for reading and writing by this process.
pub fn fuse_device() -> Fact {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse") {
        Ok(_) => fact("/dev/fuse usable", true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fact("no /dev/fuse", false),
        Err(e) => {
            let mode = std::fs::metadata("/dev/fuse").map(|m| format!(" (mode {:o})", m.permissions().mode() & 0o7777));
            fact(format!("/dev/fuse not usable: {e}{}", mode.unwrap_or_default()), false)
        }
    }
}

/// The cgroup layout: `v2` (unified), `hybrid` (v1 with a v2 mount at `unified`) or `v1`.
pub fn cgroup_layout() -> String {
    match nix::sys::statfs::statfs("/sys/fs/cgroup") {
        Ok(s) if s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => "v2".into(),
        Ok(_) if Path::new("/sys/fs/cgroup/unified").is_dir() => "hybrid".into(),
        Ok(_) => "v1".into(),
        Err(_) => "none".into(),
    }
}

/// Whether `path` is mounted read-only.
pub fn read_only(path: &str) -> bool {
    nix::sys::statvfs::statvfs(path).is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// Whether this process looks like it runs in a container (podman/Docker/Kubernetes).
pub fn in_container() -> Option<&'static str> {
    if Path::new("/run/.containerenv").exists() {
        return Some("podman");
    }
    if Path::new("/.dockerenv").exists() {
        return Some("docker");
    }
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return Some("kubernetes");
    }
    None
}

/// The first line `PROGRAM --version` prints, if it runs.
pub fn version_of(program: &Path) -> Option<String> {
    let out = std::process::Command::new(program).arg("--version").output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().next().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_lookup_takes_the_first_executable() {
        let t = std::env::temp_dir().join(format!("hostfacts-{}", std::process::id()));
        let (a, b) = (t.join("a"), t.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("tool"), "").unwrap(); // not executable: skipped
        std::fs::write(b.join("tool"), "").unwrap();
        std::fs::set_permissions(b.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}::{}", a.display(), b.display());
        assert_eq!(find_on_path(&path, "tool"), Some(b.join("tool")));
        assert_eq!(find_on_path(&path, "other"), None);
        std::fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn a_plain_file_is_no_id_map_tool() {
        let t = std::env::temp_dir().join(format!("hostfacts-map-{}", std::process::id()));
        std::fs::write(&t, "").unwrap();
        let f = id_map_tool(&t);
        assert!(!f.ok, "{f:?}");
        assert!(f.value.contains("neither set-uid root nor file capabilities"), "{f:?}");
        std::fs::remove_file(&t).unwrap();
        assert_eq!(id_map_tool(&t), fact("not found", false));
    }
}
