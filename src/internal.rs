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
}

pub fn run(cmd: Command, storage_root: &Option<PathBuf>) -> anyhow::Result<u8> {
    match cmd {
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
