//! Running a step with an OCI runtime (runc): the same [`SandboxSpec`] written as a
//! bundle's `config.json`. slipway is already root of its own user namespace, so the
//! spec asks for no user namespace of its own and sets no cgroup resources (there is no
//! cgroup delegation to users on these hosts).

use crate::error::{Result, RuntimeError};
use crate::oci_chown::ChownListener;
use crate::rlimit;
use crate::sandbox::{Exit, SandboxSpec};
use serde_json::json;
use std::path::Path;

/// Docker's default capabilities: what build steps usually need (chown, setuid, …).
const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The bundle configuration for `spec`.
pub fn config(spec: &SandboxSpec) -> serde_json::Value {
    let rlimits: Vec<_> = spec
        .rlimits
        .iter()
        .map(|r| json!({"type": format!("RLIMIT_{}", rlimit::name_of(r.resource).to_uppercase()), "soft": r.soft, "hard": r.hard}))
        .collect();
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "none", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}),
    ];
    for b in &spec.binds {
        let mut options = vec!["rbind"];
        if b.readonly {
            options.push("ro");
        }
        mounts.push(json!({"destination": b.dest, "type": "none", "source": b.source, "options": options}));
    }
    let mut namespaces =
        vec![json!({"type": "pid"}), json!({"type": "ipc"}), json!({"type": "uts"}), json!({"type": "mount"})];
    if spec.no_network {
        // runc brings up loopback in a network namespace it creates.
        namespaces.push(json!({"type": "network"}));
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": spec.uid, "gid": spec.gid, "additionalGids": spec.groups},
            "args": spec.args,
            "env": spec.env,
            "cwd": spec.cwd,
            "capabilities": {"bounding": CAPS, "effective": CAPS, "permitted": CAPS},
            "rlimits": rlimits,
            "noNewPrivileges": true
        },
        "root": {"path": spec.rootfs, "readonly": false},
        "hostname": spec.hostname,
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// Run `spec` with the OCI runtime binary `runtime` and wait for it.
pub fn run(spec: &SandboxSpec, scratch: &Path, runtime: &Path) -> Result<Exit> {
    let bundle = scratch.join("bundle");
    std::fs::create_dir_all(&bundle).map_err(RuntimeError::io("creating", &bundle))?;
    let config_path = bundle.join("config.json");
    let mut config = config(spec);
    // A single-id namespace: chown in the step is recorded, as in the built-in sandbox.
    let chown = match crate::idmap::IdMap::current().is_single() {
        true => {
            let listener = ChownListener::start()?;
            config["linux"]["seccomp"] = crate::oci_chown::seccomp_section(listener.socket());
            Some(listener)
        }
        false => None,
    };
    let bytes =
        serde_json::to_vec_pretty(&config).map_err(|e| RuntimeError::Other(format!("encoding config.json: {e}")))?;
    std::fs::write(&config_path, bytes).map_err(RuntimeError::io("writing", &config_path))?;
    // The runtime's state lives with the step and goes away with it.
    let state = scratch.join("runtime-state");
    let id = format!(
        "slipway-{}-{}",
        std::process::id(),
        scratch.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    );
    let mut cmd = std::process::Command::new(runtime);
    cmd.arg("--root").arg(&state);
    if is_crun(runtime) {
        hide_hybrid_cgroup2()?;
        // No cgroup is delegated to users here: crun must not try to create one.
        cmd.arg("--cgroup-manager=disabled");
    }
    cmd.arg("run").arg("--bundle").arg(&bundle).arg(&id);
    let exit = crate::sandbox::wait_step(cmd, spec).map_err(|e| {
        RuntimeError::Other(format!(
            "starting the OCI runtime {}: {e}; install it or use WERF_BUILDAH_MODE=native-chroot",
            runtime.display()
        ))
    })?;
    if let Some(listener) = chown {
        listener.finish()?;
    }
    Ok(exit)
}

fn is_crun(runtime: &Path) -> bool {
    runtime.file_name().is_some_and(|n| n == "crun")
}

/// crun refuses a hybrid cgroup layout (v1 controllers plus a v2 mount at
/// `/sys/fs/cgroup/unified`) even with its cgroup manager disabled. In slipway's own
/// mount namespace, cover that v2 mount with an empty read-only tmpfs, once: crun then
/// sees plain v1 and, disabled, uses no cgroup at all.
fn hide_hybrid_cgroup2() -> Result<()> {
    static DONE: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let unified = Path::new("/sys/fs/cgroup/unified");
        let is_cgroup2 = nix::sys::statfs::statfs(unified)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
        if !is_cgroup2 {
            return Ok(());
        }
        use nix::mount::MsFlags;
        let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        nix::mount::mount(Some("tmpfs"), unified, Some("tmpfs"), flags, Some("size=4k,mode=555"))
            .map_err(|e| format!("hiding the hybrid cgroup v2 mount {} from crun: {e}", unified.display()))
    })
    .clone()
    .map_err(RuntimeError::Other)
}
