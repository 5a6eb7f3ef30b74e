//! `slipway host cleanup` and `slipway host purge`: werf's host commands over the local
//! store (`slipway_storage::gc`), and the automatic cleanup after `build`.
//!
//! slipway's stages are what werf's local backend (Docker or Buildah) storage holds, so
//! the `--allowed-backend-storage-volume-usage[-margin]` thresholds, measured on the
//! filesystem of `--backend-storage-path` (default: the store), decide when the least
//! recently used stages go. werf's local cache (git clones and worktrees) does not exist
//! in slipway: `--allowed-local-cache-volume-usage[-margin]` are checked as werf checks
//! them and change nothing. Both commands take the store lock exclusive, at once, or
//! refuse in one line naming the processes that use the store.

use super::flags::{LogArgs, werf_bool};
use super::units::{UnitValue, bytes, parse_unit_value};
use crate::engine::Log;
use anyhow::{Context, bail};
use clap::Args;
use slipway_storage::gc::{self, Inventory, Removal};
use slipway_storage::store::Store;
use std::path::{Path, PathBuf};

/// werf's defaults (`pkg/host_cleaning/host_cleanup.go`).
const DEFAULT_USAGE: UnitValue = UnitValue::percent(70);
const DEFAULT_MARGIN: UnitValue = UnitValue::percent(5);

/// The flags werf's host commands share that name no store data: accepted, as werf
/// accepts them, and unused by slipway (but `--home-dir`, which places the store).
#[derive(Debug, Args)]
pub struct HostArgs {
    /// Use specified dir to store tmp files and dirs (default $WERF_TMP_DIR). Unused:
    /// slipway's temporary files are in the store.
    #[arg(long, env = "WERF_TMP_DIR")]
    pub tmp_dir: Option<PathBuf>,

    /// Use specified dir to store werf cache files and dirs (default $WERF_HOME or
    /// ~/.werf): without --storage-root the store is HOME_DIR/slipway.
    #[arg(long, env = "WERF_HOME")]
    pub home_dir: Option<PathBuf>,

    /// Docker config directory (default $WERF_DOCKER_CONFIG or $DOCKER_CONFIG). Unused.
    #[arg(long, env = "WERF_DOCKER_CONFIG")]
    pub docker_config: Option<PathBuf>,

    /// Set a specific project name (default $WERF_PROJECT_NAME).
    #[arg(short = 'N', long, env = "WERF_PROJECT_NAME")]
    pub project_name: Option<String>,

    /// Loose werf giterminism mode restrictions (default $WERF_LOOSE_GITERMINISM). Unused.
    #[arg(long, env = "WERF_LOOSE_GITERMINISM", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub loose_giterminism: bool,

    /// Enable development mode (default $WERF_DEV). Unused.
    #[arg(long, env = "WERF_DEV", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub dev: bool,

    /// Rules to ignore in development mode (repeatable). Unused.
    #[arg(long = "dev-ignore", value_name = "RULE")]
    pub dev_ignore: Vec<String>,

    /// Dev git branch name (default $WERF_DEV_BRANCH or "_werf-dev"). Unused.
    #[arg(long, env = "WERF_DEV_BRANCH", default_value = "_werf-dev")]
    pub dev_branch: String,

    /// Target platform (repeatable). Unused: the store is cleaned for every platform.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Vec<String>,

    /// Use plain HTTP requests when accessing a registry (default
    /// $WERF_INSECURE_REGISTRY). Unused: no registry is contacted.
    #[arg(long, env = "WERF_INSECURE_REGISTRY", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub insecure_registry: bool,

    /// Skip TLS certificate validation (default $WERF_SKIP_TLS_VERIFY_REGISTRY). Unused.
    #[arg(long, env = "WERF_SKIP_TLS_VERIFY_REGISTRY", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub skip_tls_verify_registry: bool,

    /// (Buildah-only) Use specified mirrors for docker.io (repeatable). Unused.
    #[arg(long = "container-registry-mirror", value_name = "MIRROR")]
    pub container_registry_mirror: Vec<String>,

    /// Indicate what the command would do without actually doing that (default
    /// $WERF_DRY_RUN).
    #[arg(long, env = "WERF_DRY_RUN", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub dry_run: bool,

    #[command(flatten)]
    pub log: LogArgs,
}

impl HostArgs {
    fn storage_root(&self, flag: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
        match (flag, &self.home_dir) {
            (None, Some(h)) if !h.as_os_str().is_empty() => Ok(h.join("slipway")),
            _ => crate::cli::storage_root(flag),
        }
    }

    fn project(&self) -> Option<&str> {
        self.project_name.as_deref().filter(|p| !p.is_empty())
    }
}

/// werf's host-cleanup thresholds, shared by `host cleanup` and `build`.
#[derive(Debug, Args, Clone)]
pub struct Thresholds {
    /// Disable auto host cleanup after build (default $WERF_DISABLE_AUTO_HOST_CLEANUP).
    #[arg(long, env = "WERF_DISABLE_AUTO_HOST_CLEANUP", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub disable_auto_host_cleanup: bool,

    /// Allowed percentage or absolute value (e.g. 10GB) of the store's volume usage above
    /// which the least recently used stages are removed (default 70% or
    /// $WERF_ALLOWED_BACKEND_STORAGE_VOLUME_USAGE).
    #[arg(long, env = "WERF_ALLOWED_BACKEND_STORAGE_VOLUME_USAGE", value_parser = parse_unit_value)]
    pub allowed_backend_storage_volume_usage: Option<UnitValue>,

    #[arg(long, hide = true, env = "WERF_ALLOWED_DOCKER_STORAGE_VOLUME_USAGE", value_parser = parse_unit_value)]
    pub allowed_docker_storage_volume_usage: Option<UnitValue>,

    /// Stages are removed until the volume usage is below "allowed usage - margin"
    /// (default 5% or $WERF_ALLOWED_BACKEND_STORAGE_VOLUME_USAGE_MARGIN).
    #[arg(long, env = "WERF_ALLOWED_BACKEND_STORAGE_VOLUME_USAGE_MARGIN", value_parser = parse_unit_value)]
    pub allowed_backend_storage_volume_usage_margin: Option<UnitValue>,

    #[arg(long, hide = true, env = "WERF_ALLOWED_DOCKER_STORAGE_VOLUME_USAGE_MARGIN", value_parser = parse_unit_value)]
    pub allowed_docker_storage_volume_usage_margin: Option<UnitValue>,

    /// werf's local cache threshold (default 70% or $WERF_ALLOWED_LOCAL_CACHE_VOLUME_USAGE):
    /// above it, the least recently used caches of remote git repositories are removed.
    #[arg(long, env = "WERF_ALLOWED_LOCAL_CACHE_VOLUME_USAGE", value_parser = parse_unit_value)]
    pub allowed_local_cache_volume_usage: Option<UnitValue>,

    /// werf's local cache margin (default 5% or
    /// $WERF_ALLOWED_LOCAL_CACHE_VOLUME_USAGE_MARGIN).
    #[arg(long, env = "WERF_ALLOWED_LOCAL_CACHE_VOLUME_USAGE_MARGIN", value_parser = parse_unit_value)]
    pub allowed_local_cache_volume_usage_margin: Option<UnitValue>,

    /// A path on the volume whose usage the thresholds measure (default: the store;
    /// $WERF_BACKEND_STORAGE_PATH).
    #[arg(long, env = "WERF_BACKEND_STORAGE_PATH")]
    pub backend_storage_path: Option<PathBuf>,

    #[arg(long, hide = true, env = "WERF_DOCKER_SERVER_STORAGE_PATH")]
    pub docker_server_storage_path: Option<PathBuf>,
}

impl Thresholds {
    /// The local cache usage and margin (checked by [`Thresholds::backend`]).
    fn local_cache(&self) -> (UnitValue, UnitValue) {
        (
            self.allowed_local_cache_volume_usage.unwrap_or(DEFAULT_USAGE),
            self.allowed_local_cache_volume_usage_margin.unwrap_or(DEFAULT_MARGIN),
        )
    }

    /// The backend usage and margin, checked as werf checks both groups.
    pub fn backend(&self) -> anyhow::Result<(UnitValue, UnitValue)> {
        let usage = self.allowed_backend_storage_volume_usage.or(self.allowed_docker_storage_volume_usage);
        let margin =
            self.allowed_backend_storage_volume_usage_margin.or(self.allowed_docker_storage_volume_usage_margin);
        let (usage, margin) = (usage.unwrap_or(DEFAULT_USAGE), margin.unwrap_or(DEFAULT_MARGIN));
        let local = self.local_cache();
        for (name, (u, m)) in [("backend storage", (usage, margin)), ("local cache", local)] {
            if u.absolute != m.absolute {
                bail!(
                    "host cleanup: mixing percentages and absolute units in {name} group is not allowed (usage: {:?}, margin: {:?})",
                    u.to_string(),
                    m.to_string()
                );
            }
        }
        Ok((usage, margin))
    }

    /// The path whose volume is measured: `--backend-storage-path` (which must exist, as
    /// in werf), else the store.
    fn volume_path(&self, root: &Path) -> anyhow::Result<PathBuf> {
        match self.backend_storage_path.as_ref().or(self.docker_server_storage_path.as_ref()) {
            Some(p) if !p.as_os_str().is_empty() => match std::fs::metadata(p) {
                Ok(_) => Ok(p.clone()),
                Err(e) => {
                    bail!("error getting backend storage path: error accessing {:?}: {e}", p.display().to_string())
                }
            },
            _ => Ok(root.to_path_buf()),
        }
    }
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    #[command(flatten)]
    pub host: HostArgs,

    #[command(flatten)]
    pub thresholds: Thresholds,

    /// Force deletion of images which are being used by some containers (default
    /// $WERF_FORCE). slipway has no containers and never removes a store in use: no effect.
    #[arg(long, env = "WERF_FORCE", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    pub host: HostArgs,

    /// Address of synchronizer for multiple werf processes (default $WERF_SYNCHRONIZATION).
    /// Unused: the store's own lock keeps purge away from running builds.
    #[arg(short = 'S', long, env = "WERF_SYNCHRONIZATION")]
    pub synchronization: Option<String>,

    /// First remove containers that use werf docker images which are going to be deleted.
    /// slipway has no containers: no effect.
    #[arg(long, value_parser = werf_bool, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true")]
    pub force: bool,
}

/// The store, exclusively, or the one-line refusal naming who uses it.
fn open(root: &Path, command: &str) -> anyhow::Result<Store> {
    match Store::open_exclusive(root)? {
        Ok(s) => Ok(s),
        Err(busy) => bail!(
            "{command}: the local store {} is in use by {busy}; nothing was removed: run it again when they have finished",
            root.display()
        ),
    }
}

/// `slipway host cleanup`.
pub fn cleanup(args: CleanupArgs, storage_root: &Option<PathBuf>) -> anyhow::Result<u8> {
    args.host.log.check()?;
    if let Some(p) = args.host.project() {
        bail!(
            "no functionality for cleaning a certain project is implemented (--project-name or WERF_PROJECT_NAME = {p})"
        );
    }
    let (usage, margin) = args.thresholds.backend()?;
    let root = args.host.storage_root(storage_root)?;
    let volume = args.thresholds.volume_path(&root)?;
    let store = open(&root, "host cleanup")?;
    let local = args.thresholds.local_cache();
    run_cleanup(&store, &volume, (usage, margin), local, args.host.dry_run, &mut |l| println!("{l}"))?;
    Ok(0)
}

/// Garbage always; the least recently used stages too while the volume of `volume` is
/// above the backend `(usage, margin)`, until it is below `usage - margin` (by the sizes
/// the store records); and the least recently used remote git caches while it is above
/// the `local` cache ones (werf's local cache: its git clones).
fn run_cleanup(
    store: &Store,
    volume: &Path,
    (usage, margin): (UnitValue, UnitValue),
    local: (UnitValue, UnitValue),
    dry_run: bool,
    out: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    let (used, total) = gc::volume_usage(volume)?;
    let (allowed, margin) = (usage.to_bytes(total), margin.to_bytes(total));
    let pct = |b: u64| if total == 0 { 0.0 } else { b as f64 * 100.0 / total as f64 };
    out(&format!("Storage path: {}", volume.display()));
    out(&format!("Volume usage: {} / {}", bytes(used), bytes(total)));
    let inventory = Inventory::scan(store)?;
    let mut discard = gc::Discard::default();
    if used > allowed {
        let target = allowed.saturating_sub(margin);
        out(&format!(
            "Allowed level exceeded: {} ({:.2}%) > {} ({:.2}%) — HIGH VOLUME USAGE",
            bytes(used),
            pct(used),
            bytes(allowed),
            pct(allowed)
        ));
        out(&format!(
            "Target level after cleanup: {} - {} (margin) = {} ({:.2}%)",
            bytes(allowed),
            bytes(margin),
            bytes(target),
            pct(target)
        ));
        discard.stages = inventory.least_recently_used(used - target).into_iter().collect();
    } else {
        out(&format!(
            "Allowed volume usage: {} ({:.2}%) <= {} ({:.2}%) — OK",
            bytes(used),
            pct(used),
            bytes(allowed),
            pct(allowed)
        ));
    }
    let (local_allowed, local_margin) = (local.0.to_bytes(total), local.1.to_bytes(total));
    if used > local_allowed {
        let need = used - local_allowed.saturating_sub(local_margin);
        discard.dirs.extend(least_recently_used_git_caches(store.root(), need)?);
    }
    remove(store, &inventory.plan(&discard), dry_run, out)?;
    if !dry_run {
        let (after, _) = gc::volume_usage(volume)?;
        out(&format!("Volume usage after cleanup: {} / {}", bytes(after), bytes(total)));
    }
    Ok(())
}

/// The caches of remote git repositories (`git-repos/<id>`, relative to the store) to
/// remove for `need` bytes, least recently fetched (directory mtime) first.
fn least_recently_used_git_caches(root: &Path, need: u64) -> anyhow::Result<Vec<PathBuf>> {
    let dir = root.join("git-repos");
    let mut caches = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for e in entries {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        let meta = e.metadata().with_context(|| format!("reading {}", e.path().display()))?;
        if meta.is_dir() {
            caches.push((meta.modified().ok(), e.file_name()));
        }
    }
    caches.sort();
    let mut freed = 0;
    let mut out = Vec::new();
    for (_, name) in caches {
        if freed >= need {
            break;
        }
        freed += gc::disk_usage(&dir.join(&name));
        out.push(Path::new("git-repos").join(name));
    }
    Ok(out)
}

/// Remove (or with `dry_run` list) `plan`, a line per item, then the total.
fn remove(store: &Store, plan: &[Removal], dry_run: bool, out: &mut dyn FnMut(&str)) -> anyhow::Result<()> {
    let root = store.root();
    let mut freed = 0;
    if dry_run {
        for r in plan {
            out(&format!("would remove {}", r.describe(root)));
            freed += r.bytes;
        }
        out(&format!("Would free: {} ({freed} bytes)", bytes(freed)));
        return Ok(());
    }
    let result = gc::apply(store, plan, |r| {
        out(&format!("removed {}", r.describe(root)));
        freed += r.bytes;
    });
    out(&format!("Freed space: {} ({freed} bytes)", bytes(freed)));
    Ok(result?)
}

/// `slipway host purge`: every stage (or `--project-name`'s) and then what only they
/// referenced; for all projects also the pulled images' refs, the RUN cache mounts, the
/// Stapel `build_dir` mounts and the caches of remote git repositories; for one project
/// its `build_dir` mounts.
pub fn purge(args: PurgeArgs, storage_root: &Option<PathBuf>) -> anyhow::Result<u8> {
    args.host.log.check()?;
    let project = args.host.project();
    if let Some(p) = project {
        crate::config::validate_project(p).map_err(|e| anyhow::anyhow!("--project-name {p:?}: {e}"))?;
    }
    let root = args.host.storage_root(storage_root)?;
    let store = open(&root, "host purge")?;
    let inventory = Inventory::scan(&store)?;
    let discard = match project {
        None => gc::Discard {
            stages: inventory.stages_of(None),
            image_refs: true,
            dirs: vec![PathBuf::from("cache"), PathBuf::from("mounts"), PathBuf::from("git-repos")],
        },
        Some(p) => gc::Discard {
            stages: inventory.stages_of(Some(p)),
            image_refs: false,
            dirs: vec![Path::new("mounts/projects").join(p)],
        },
    };
    remove(&store, &inventory.plan(&discard), args.host.dry_run, &mut |l| println!("{l}"))?;
    Ok(0)
}

/// werf's automatic host cleanup after `build`, cheap unless needed: one `statvfs`; only
/// when the volume is above the allowed usage, and nobody else uses the store, a cleanup
/// runs here (werf forks it into the background). werf skips it for a build with a
/// project name (`WERF_PROJECT_NAME`); so does slipway. Failures are warnings.
pub fn auto(root: &Path, t: &Thresholds, log: &Log) {
    if t.disable_auto_host_cleanup || std::env::var("WERF_PROJECT_NAME").is_ok_and(|p| !p.is_empty()) {
        return;
    }
    let run = || -> anyhow::Result<()> {
        let (usage, margin) = t.backend()?;
        let volume = t.volume_path(root)?;
        let (used, total) = gc::volume_usage(&volume)?;
        if used <= usage.to_bytes(total) {
            return Ok(());
        }
        match Store::open_exclusive(root)? {
            Ok(store) => {
                log.info("running auto host cleanup: the store's volume is above the allowed usage");
                run_cleanup(&store, &volume, (usage, margin), t.local_cache(), false, &mut |l| log.info(l))
            }
            Err(busy) => {
                log.info(&format!("auto host cleanup skipped: the local store is in use by {busy}"));
                Ok(())
            }
        }
    };
    if let Err(e) = run() {
        log.warn(&format!("auto host cleanup failed: {e:#}"));
    }
}
