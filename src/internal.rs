//! `slipway internal …`: plumbing that exercises the runtime directly (tests, debugging).

use clap::Subcommand;
use slipway_runtime::mount::{NativeOverlay, RootfsDirs, RootfsMounter};
use slipway_runtime::sandbox::{self, SandboxSpec};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in the sandbox over a rootfs directory, or over an overlay of
    /// `--lower` directories (bottom first) with the changes kept in `--upper`.
    Sandbox {
        #[arg(long)]
        rootfs: Option<PathBuf>,
        #[arg(long)]
        lower: Vec<PathBuf>,
        #[arg(long)]
        upper: Option<PathBuf>,
        #[arg(long, default_value = "0")]
        uid: u32,
        #[arg(long, default_value = "0")]
        gid: u32,
        #[arg(long, default_value = "/")]
        cwd: String,
        /// WERF_BUILDAH_ULIMIT syntax.
        #[arg(long, env = "WERF_BUILDAH_ULIMIT")]
        ulimit: Option<String>,
        #[arg(last = true, required = true)]
        args: Vec<String>,
    },
    /// Print the namespace this process runs in: uid map and mapping kind.
    Whoami,
    /// Inside the user namespace, try what a build does (an overlay mount, a sandbox set
    /// up to the exec) and print one `NAME<TAB>ok|failed<TAB>DETAIL` line for each, for
    /// `slipway host check`.
    Probe,
}

pub fn run(cmd: Command, storage_root: &Option<PathBuf>) -> anyhow::Result<u8> {
    match cmd {
        Command::Probe => {
            probe();
            Ok(0)
        }
        Command::Whoami => {
            let map = std::fs::read_to_string("/proc/self/uid_map")?;
            println!(
                "uid={} mapping={}",
                nix::unistd::geteuid(),
                std::env::var(slipway_runtime::userns::MAPPING_ENV).unwrap_or_default()
            );
            print!("{map}");
            Ok(0)
        }
        Command::Sandbox { rootfs, lower, upper, uid, gid, cwd, ulimit, args } => {
            // The store's per-process temp dir: removed with the store, or by the next
            // process if this one is killed.
            let store = slipway_storage::store::Store::open(&crate::cli::storage_root(storage_root)?)?;
            let scratch = store.scratch_dir("internal")?;
            let mut mounted = None;
            let rootfs = match rootfs {
                Some(r) => r,
                None => {
                    let dirs = RootfsDirs {
                        lowers: lower,
                        upper: upper.unwrap_or_else(|| scratch.join("upper")),
                        work: scratch.join("work"),
                        target: scratch.join("merged"),
                    };
                    NativeOverlay.mount(&dirs)?;
                    let t = dirs.target.clone();
                    mounted = Some(dirs);
                    t
                }
            };
            let rlimits = match ulimit {
                Some(u) => slipway_runtime::rlimit::parse_list(&u, slipway_runtime::rlimit::current)?,
                None => Vec::new(),
            };
            let spec = SandboxSpec {
                rootfs,
                args,
                env: vec![
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                    "HOME=/root".into(),
                ],
                cwd,
                uid,
                gid,
                groups: Vec::new(),
                hostname: "slipway".into(),
                rlimits,
                binds: Vec::new(),
                no_network: false,
                stdout_to_stderr: false,
            };
            let exit = sandbox::run(&spec, &scratch);
            if let Some(dirs) = &mounted {
                NativeOverlay.unmount(&dirs.target)?;
            }
            let _ = std::fs::remove_dir_all(scratch.join("work"));
            let _ = std::fs::remove_dir_all(&scratch);
            Ok(exit?.code.clamp(0, 255) as u8)
        }
    }
}

/// The in-namespace half of `slipway host check`: see [`Command::Probe`].
fn probe() {
    let line = |name: &str, r: Result<String, String>| match r {
        Ok(d) => println!("{name}\tok\t{d}"),
        Err(e) => println!("{name}\tfailed\t{}", e.replace(['\t', '\n'], " ")),
    };
    let mapping = std::env::var(slipway_runtime::userns::MAPPING_ENV).unwrap_or_else(|_| "root".into());
    let ids = std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.lines().filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok()).sum::<u64>())
        .unwrap_or(0);
    line("mapping", Ok(format!("{mapping} ({ids} ids)")));
    let Ok(dir) = tempdir() else {
        line("overlay", Err("cannot create a temporary directory".into()));
        return;
    };
    line(
        "overlay",
        NativeOverlay
            .probe(&dir.join("overlay"))
            .map(|()| "native overlayfs mounts here".into())
            .map_err(|e| e.to_string()),
    );
    let fuse = ["/usr/bin/fuse-overlayfs", "/usr/sbin/fuse-overlayfs", "/bin/fuse-overlayfs"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file());
    line(
        "fuse-overlayfs",
        match fuse {
            None => Err("fuse-overlayfs is not installed (Debian package fuse-overlayfs)".into()),
            Some(p) => slipway_runtime::fuse::FuseOverlay::new(p.clone())
                .probe(&dir.join("fuse"))
                .map(|()| format!("{} mounts here", p.display()))
                .map_err(|e| e.to_string()),
        },
    );
    // A sandbox over an empty rootfs, set up all the way to the exec of a program that
    // does not exist: every namespace, mount and pivot_root a step needs is tried.
    let rootfs = dir.join("rootfs");
    let spec = SandboxSpec {
        rootfs: rootfs.clone(),
        args: vec![PROBE_PROGRAM.into()],
        env: Vec::new(),
        cwd: "/".into(),
        uid: 0,
        gid: 0,
        groups: Vec::new(),
        hostname: "slipway".into(),
        rlimits: Vec::new(),
        binds: Vec::new(),
        no_network: false,
        stdout_to_stderr: false,
    };
    let sandbox = std::fs::create_dir_all(&rootfs).map_err(|e| e.to_string()).and_then(|()| {
        match sandbox::run(&spec, &dir.join("scratch")) {
            Err(e) if e.to_string().contains(&format!("executing {PROBE_PROGRAM}: ENOENT")) => {
                Ok("namespaces, /proc, /dev and pivot_root set up for a step".into())
            }
            Err(e) => Err(e.to_string()),
            Ok(exit) => Err(format!("a program that does not exist ran (exit {})", exit.code)),
        }
    });
    line("sandbox", sandbox);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The program the sandbox probe asks for; it exists in no rootfs.
const PROBE_PROGRAM: &str = "/.slipway-probe-absent";

fn tempdir() -> std::io::Result<PathBuf> {
    let base = std::env::var_os("TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join(format!("slipway-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
