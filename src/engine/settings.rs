//! The backend settings of a run: werf's `WERF_BUILDAH_*` variables, slipway's own, and
//! a snapshot of the host environment, read once at the CLI edge
//! (`cmd::ProjectArgs::settings`) into one typed [`Backend`].
//!
//! Below the CLI nothing reads the environment: whatever a build needs from the host
//! (werf.yaml secrets of type `env`, `~` in secret paths, where registry credentials
//! live) is looked up in [`HostEnv`], the snapshot taken here. A bad value is refused
//! here, naming its variable, before anything is built.

use anyhow::{Context, bail};
use slipway_runtime::rlimit::Rlimit;
use slipway_runtime::sandbox::Isolation;
use slipway_storage::unpack::Ownership;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

/// How steps are run and layers are stored.
#[derive(Debug, Clone)]
pub struct Backend {
    /// `WERF_BUILDAH_MODE`: slipway's own sandbox, or runc found on `PATH`.
    pub isolation: Isolation,
    /// Which isolation and why, for the build log's one line.
    pub isolation_why: String,
    /// `WERF_BUILDAH_STORAGE_DRIVER`.
    pub storage_driver: StorageDriver,
    /// fuse-overlayfs, if installed or named by storage.conf's `mount_program`.
    pub fuse_overlayfs: Option<FuseProgram>,
    /// `WERF_BUILDAH_ULIMIT`, for build steps and `slipway run`.
    pub rlimits: Vec<Rlimit>,
    /// `SLIPWAY_MAX_LAYER_SIZE`: the most uncompressed bytes one pulled layer may hold.
    pub max_layer_size: u64,
    /// The user namespace slipway runs in (set by `slipway_runtime::userns`).
    pub id_mapping: IdMapping,
    /// The host environment as it was when the settings were read.
    pub host: HostEnv,
}

/// `WERF_BUILDAH_STORAGE_DRIVER`: how layers become a rootfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StorageDriver {
    /// Unset, `auto` or `default`: native overlayfs, else fuse-overlayfs, else copies
    /// (vfs), with a warning on each fallback.
    #[default]
    Auto,
    /// `overlay`: native overlayfs, else fuse-overlayfs; when neither mounts, an error.
    Overlay,
    /// `vfs`: plain copies.
    Vfs,
}

/// The fuse-overlayfs program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuseProgram {
    pub path: PathBuf,
    /// The storage.conf whose `[storage.options.overlay] mount_program` names it: then
    /// it is used directly, as containers-storage does, without trying native overlayfs.
    pub forced_by: Option<PathBuf>,
}

/// How many ids the user namespace maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdMapping {
    /// Root plus a subordinate range from /etc/subuid: owners are set exactly.
    #[default]
    Full,
    /// Only the user's own id (no /etc/subuid range): only root can own files.
    Single,
}

impl IdMapping {
    /// How strictly owners are set when unpacking or copying layers: exactly, unless only
    /// root can own files (pull.rs warns about the files that keep root as owner).
    pub fn ownership(self) -> Ownership {
        match self {
            IdMapping::Full => Ownership::Exact,
            IdMapping::Single => Ownership::BestEffort,
        }
    }
}

impl Default for Backend {
    fn default() -> Self {
        Backend {
            isolation: Isolation::Builtin,
            isolation_why: String::new(),
            storage_driver: StorageDriver::Auto,
            fuse_overlayfs: None,
            rlimits: Vec::new(),
            max_layer_size: slipway_storage::unpack::Limits::default().max_size,
            id_mapping: IdMapping::Full,
            host: HostEnv::default(),
        }
    }
}

impl Backend {
    /// The settings `host` asks for. Looks runc up on `PATH` for `native-rootless`, and
    /// reads the current rlimits to check `WERF_BUILDAH_ULIMIT` against them.
    pub fn from_env(host: HostEnv) -> anyhow::Result<Self> {
        let mode = host.var("WERF_BUILDAH_MODE").unwrap_or_default();
        let (isolation, isolation_why) = match parse_mode(mode)? {
            Mode::Builtin => {
                let why = match mode {
                    "native-chroot" => "WERF_BUILDAH_MODE=native-chroot".to_string(),
                    _ => format!(
                        "WERF_BUILDAH_MODE={}: werf's default, chroot isolation",
                        if mode.is_empty() { "auto" } else { mode }
                    ),
                };
                (Isolation::Builtin, format!("step isolation: slipway's chroot sandbox ({why})"))
            }
            Mode::Oci => {
                let (runtime, from) = oci_runtime(&host)?;
                let why = format!(
                    "step isolation: {} (WERF_BUILDAH_MODE=native-rootless; the runtime: {from})",
                    runtime.display()
                );
                (Isolation::Oci { runtime }, why)
            }
        };
        let storage_driver = parse_storage_driver(host.var("WERF_BUILDAH_STORAGE_DRIVER").unwrap_or_default())?;
        let fuse_overlayfs = fuse_overlayfs(&host)?;
        let rlimits = match host.var("WERF_BUILDAH_ULIMIT").filter(|v| !v.is_empty()) {
            Some(v) => slipway_runtime::rlimit::parse_list(v, slipway_runtime::rlimit::current)
                .context("WERF_BUILDAH_ULIMIT")?,
            None => Vec::new(),
        };
        let max_layer_size = match host.var("SLIPWAY_MAX_LAYER_SIZE").filter(|v| !v.is_empty()) {
            Some(v) => {
                v.parse().with_context(|| format!("SLIPWAY_MAX_LAYER_SIZE={v:?}: expected a number of bytes"))?
            }
            None => Backend::default().max_layer_size,
        };
        let id_mapping = match host.var(slipway_runtime::userns::MAPPING_ENV) {
            Some("single") => IdMapping::Single,
            _ => IdMapping::Full,
        };
        Ok(Backend {
            isolation,
            isolation_why,
            storage_driver,
            fuse_overlayfs,
            rlimits,
            max_layer_size,
            id_mapping,
            host,
        })
    }
}

/// Which isolation `WERF_BUILDAH_MODE` names.
#[derive(Debug, PartialEq, Eq)]
enum Mode {
    Builtin,
    Oci,
}

/// `auto`/`native-chroot` (werf's default too) use slipway's own sandbox,
/// `native-rootless` runs steps with an OCI runtime (runc, or crun: [`oci_runtime`]).
fn parse_mode(value: &str) -> anyhow::Result<Mode> {
    match value {
        "" | "auto" | "default" | "native-chroot" => Ok(Mode::Builtin),
        "native-rootless" => Ok(Mode::Oci),
        "docker" => bail!("WERF_BUILDAH_MODE=docker: slipway has no Docker backend; unset it or use auto"),
        other => bail!("WERF_BUILDAH_MODE={other:?} is not one of auto, native-chroot, native-rootless"),
    }
}

/// The OCI runtime for `native-rootless`, chosen as buildah chooses it: `BUILDAH_RUNTIME`,
/// else `[engine] runtime` of the containers.conf files (`CONTAINERS_CONF` alone if set;
/// else `/usr/share/containers/`, `/etc/containers/`, then the user's
/// `$XDG_CONFIG_HOME/containers/`, the later winning), else runc. A name is looked up on
/// `PATH` (then /usr/sbin, /usr/bin); a path is taken as it is.
fn oci_runtime(host: &HostEnv) -> anyhow::Result<(PathBuf, String)> {
    let (name, from) = match host.var("BUILDAH_RUNTIME").filter(|v| !v.is_empty()) {
        Some(v) => (v.to_string(), "BUILDAH_RUNTIME".to_string()),
        None => containers_conf_runtime(host)?.unwrap_or_else(|| ("runc".into(), "the default".into())),
    };
    if name.contains('/') {
        let p = PathBuf::from(&name);
        anyhow::ensure!(p.is_file(), "OCI runtime {name} (from {from}) does not exist");
        return Ok((p, from));
    }
    anyhow::ensure!(
        matches!(name.as_str(), "runc" | "crun"),
        "OCI runtime {name:?} (from {from}): slipway runs steps with runc or crun only"
    );
    let path = host.var_os("PATH").unwrap_or_default();
    std::env::split_paths(path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
        .map(|p| (p, from.clone()))
        .with_context(|| {
            format!("WERF_BUILDAH_MODE=native-rootless runs steps with {name} (from {from}), which is not installed (Debian package {name})")
        })
}

/// `[engine] runtime` from the containers.conf files, with the file it came from.
fn containers_conf_runtime(host: &HostEnv) -> anyhow::Result<Option<(String, String)>> {
    let files: Vec<PathBuf> = match host.path("CONTAINERS_CONF") {
        Some(p) => vec![p],
        None => {
            let user = host
                .path("XDG_CONFIG_HOME")
                .or_else(|| host.path("HOME").map(|h| h.join(".config")))
                .map(|d| d.join("containers/containers.conf"));
            ["/usr/share/containers/containers.conf", "/etc/containers/containers.conf"]
                .into_iter()
                .map(PathBuf::from)
                .chain(user)
                .collect()
        }
    };
    let mut found = None;
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else { continue };
        let doc: toml::Table = toml::from_str(&text).with_context(|| format!("reading {}", f.display()))?;
        if let Some(r) = doc.get("engine").and_then(|e| e.get("runtime")).and_then(|r| r.as_str()) {
            found = Some((r.to_string(), f.display().to_string()));
        }
    }
    Ok(found)
}

/// fuse-overlayfs as containers-storage finds it: storage.conf's `mount_program`
/// (`[storage.options.overlay]`, or the older `[storage.options]`) forces it; else
/// `fuse-overlayfs` on `PATH` (then /usr/bin) is there to fall back to.
fn fuse_overlayfs(host: &HostEnv) -> anyhow::Result<Option<FuseProgram>> {
    if let Some((program, file)) = storage_conf_mount_program(host)? {
        anyhow::ensure!(
            program.is_absolute() && program.is_file(),
            "mount_program {} in {} is not an existing absolute path (Debian package fuse-overlayfs installs /usr/bin/fuse-overlayfs)",
            program.display(),
            file.display()
        );
        return Ok(Some(FuseProgram { path: program, forced_by: Some(file) }));
    }
    let path = host.var_os("PATH").unwrap_or_default();
    Ok(std::env::split_paths(path)
        .filter(|d| d.is_absolute())
        .chain(["/usr/bin".into(), "/usr/sbin".into()])
        .map(|d| d.join("fuse-overlayfs"))
        .find(|p| p.is_file())
        .map(|path| FuseProgram { path, forced_by: None }))
}

/// The storage.conf containers-storage reads (`CONTAINERS_STORAGE_CONF` alone if set;
/// else the user's `$XDG_CONFIG_HOME/containers/storage.conf` or
/// `~/.config/containers/storage.conf` if it exists; else /etc/containers/storage.conf)
/// and the `mount_program` it sets, with the file.
fn storage_conf_mount_program(host: &HostEnv) -> anyhow::Result<Option<(PathBuf, PathBuf)>> {
    let file = match host.path("CONTAINERS_STORAGE_CONF") {
        Some(p) => p,
        None => host
            .path("XDG_CONFIG_HOME")
            .or_else(|| host.path("HOME").map(|h| h.join(".config")))
            .map(|d| d.join("containers/storage.conf"))
            .filter(|f| f.is_file())
            .unwrap_or_else(|| PathBuf::from("/etc/containers/storage.conf")),
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let doc: toml::Table = toml::from_str(&text).with_context(|| format!("reading {}", file.display()))?;
    let options = doc.get("storage").and_then(|s| s.get("options"));
    let program = options
        .and_then(|o| o.get("overlay"))
        .and_then(|o| o.get("mount_program"))
        .or_else(|| options.and_then(|o| o.get("mount_program")))
        .and_then(|p| p.as_str())
        .filter(|p| !p.is_empty());
    Ok(program.map(|p| (PathBuf::from(p), file)))
}

fn parse_storage_driver(value: &str) -> anyhow::Result<StorageDriver> {
    match value {
        "" | "auto" | "default" => Ok(StorageDriver::Auto),
        "overlay" => Ok(StorageDriver::Overlay),
        "vfs" => Ok(StorageDriver::Vfs),
        other => bail!("WERF_BUILDAH_STORAGE_DRIVER={other:?} is not one of overlay, vfs"),
    }
}

/// A snapshot of environment variables (the CLI takes it from the process).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HostEnv(BTreeMap<OsString, OsString>);

/// Names only: values may be secrets.
impl std::fmt::Debug for HostEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl HostEnv {
    pub fn var_os(&self, name: &str) -> Option<&OsStr> {
        self.0.get(OsStr::new(name)).map(OsString::as_os_str)
    }

    /// The value if it is set and UTF-8 (as `std::env::var` would have it).
    pub fn var(&self, name: &str) -> Option<&str> {
        self.var_os(name)?.to_str()
    }

    /// Every variable whose name and value are UTF-8 (werf.yaml templates' `.Env`).
    pub fn utf8_vars(&self) -> std::collections::BTreeMap<String, String> {
        let utf8 = |(k, v): (&OsString, &OsString)| Some((k.to_str()?.to_string(), v.to_str()?.to_string()));
        self.0.iter().filter_map(utf8).collect()
    }

    /// The value as a path, for file-location lookups.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.var_os(name).map(PathBuf::from)
    }
}

impl<K: Into<OsString>, V: Into<OsString>> FromIterator<(K, V)> for HostEnv {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        HostEnv(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(vars: &[(&str, &str)]) -> anyhow::Result<Backend> {
        Backend::from_env(vars.iter().copied().collect())
    }

    fn error(vars: &[(&str, &str)]) -> String {
        format!("{:#}", backend(vars).unwrap_err())
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let b = backend(&[]).unwrap();
        assert_eq!(b.isolation, Isolation::Builtin);
        assert_eq!(b.storage_driver, StorageDriver::Auto);
        assert!(b.rlimits.is_empty());
        assert_eq!(b.max_layer_size, 64 << 30);
        assert_eq!(b.id_mapping, IdMapping::Full);
    }

    #[test]
    fn werf_modes_and_drivers() {
        for (mode, want) in [("", Mode::Builtin), ("auto", Mode::Builtin), ("default", Mode::Builtin)]
            .into_iter()
            .chain([("native-chroot", Mode::Builtin), ("native-rootless", Mode::Oci)])
        {
            assert_eq!(parse_mode(mode).unwrap(), want, "{mode}");
        }
        for (value, want) in [
            ("", StorageDriver::Auto),
            ("auto", StorageDriver::Auto),
            ("default", StorageDriver::Auto),
            ("overlay", StorageDriver::Overlay),
            ("vfs", StorageDriver::Vfs),
        ] {
            assert_eq!(backend(&[("WERF_BUILDAH_STORAGE_DRIVER", value)]).unwrap().storage_driver, want, "{value}");
        }
    }

    #[test]
    fn bad_values_are_refused_naming_the_variable() {
        assert_eq!(
            error(&[("WERF_BUILDAH_MODE", "docker")]),
            "WERF_BUILDAH_MODE=docker: slipway has no Docker backend; unset it or use auto"
        );
        assert_eq!(
            error(&[("WERF_BUILDAH_MODE", "chroot")]),
            r#"WERF_BUILDAH_MODE="chroot" is not one of auto, native-chroot, native-rootless"#
        );
        assert_eq!(
            error(&[("WERF_BUILDAH_STORAGE_DRIVER", "fuse-overlayfs")]),
            r#"WERF_BUILDAH_STORAGE_DRIVER="fuse-overlayfs" is not one of overlay, vfs"#
        );
        assert_eq!(
            error(&[("SLIPWAY_MAX_LAYER_SIZE", "1G")]),
            r#"SLIPWAY_MAX_LAYER_SIZE="1G": expected a number of bytes: invalid digit found in string"#
        );
        assert!(error(&[("WERF_BUILDAH_ULIMIT", "nofile=x")]).starts_with("WERF_BUILDAH_ULIMIT: "));
        // The mode is checked first, as before any build.
        let both = [("WERF_BUILDAH_MODE", "docker"), ("WERF_BUILDAH_STORAGE_DRIVER", "x")];
        assert!(error(&both).starts_with("WERF_BUILDAH_MODE=docker"));
    }

    #[test]
    fn runc_comes_from_path_or_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let runc = t.path().join("runc");
        std::fs::write(&runc, "").unwrap();
        let path = t.path().to_str().unwrap();
        let none = t.path().join("none.conf");
        let conf = none.to_str().unwrap();
        let b =
            backend(&[("WERF_BUILDAH_MODE", "native-rootless"), ("PATH", path), ("CONTAINERS_CONF", conf)]).unwrap();
        assert_eq!(b.isolation, Isolation::Oci { runtime: runc });
        // Without runc on PATH, the fixed fallbacks are tried; if this host has none either,
        // the refusal says what to install.
        if !["/usr/sbin/runc", "/usr/bin/runc"].iter().any(|p| std::path::Path::new(p).is_file()) {
            let empty = t.path().join("empty");
            std::fs::create_dir(&empty).unwrap();
            let e = error(&[("WERF_BUILDAH_MODE", "native-rootless"), ("PATH", empty.to_str().unwrap())]);
            assert!(e.contains("Debian package runc"), "{e}");
        }
    }

    #[test]
    fn crun_comes_from_buildah_runtime_or_containers_conf() {
        let t = tempfile::tempdir().unwrap();
        for name in ["runc", "crun"] {
            std::fs::write(t.path().join(name), "").unwrap();
        }
        let path = t.path().to_str().unwrap();
        let conf = t.path().join("containers.conf");
        std::fs::write(&conf, "[engine]\nruntime = \"crun\"\n").unwrap();
        let conf = conf.to_str().unwrap();
        let mode = ("WERF_BUILDAH_MODE", "native-rootless");
        let oci = |vars: &[(&str, &str)]| backend(vars).unwrap().isolation;
        assert_eq!(
            oci(&[mode, ("PATH", path), ("CONTAINERS_CONF", conf)]),
            Isolation::Oci { runtime: t.path().join("crun") }
        );
        // BUILDAH_RUNTIME wins over containers.conf.
        assert_eq!(
            oci(&[mode, ("PATH", path), ("CONTAINERS_CONF", conf), ("BUILDAH_RUNTIME", "runc")]),
            Isolation::Oci { runtime: t.path().join("runc") }
        );
        let e = error(&[mode, ("PATH", path), ("BUILDAH_RUNTIME", "kata")]);
        assert_eq!(e, "OCI runtime \"kata\" (from BUILDAH_RUNTIME): slipway runs steps with runc or crun only");
        let why = backend(&[mode, ("PATH", path), ("CONTAINERS_CONF", conf)]).unwrap().isolation_why;
        assert_eq!(
            why,
            format!(
                "step isolation: {}/crun (WERF_BUILDAH_MODE=native-rootless; the runtime: {conf})",
                t.path().display()
            )
        );
    }

    #[test]
    fn the_isolation_line_says_auto_is_werfs_chroot_default() {
        let why = |mode: &str| backend(&[("WERF_BUILDAH_MODE", mode)]).unwrap().isolation_why;
        assert_eq!(
            why(""),
            "step isolation: slipway's chroot sandbox (WERF_BUILDAH_MODE=auto: werf's default, chroot isolation)"
        );
        assert_eq!(
            why("default"),
            "step isolation: slipway's chroot sandbox (WERF_BUILDAH_MODE=default: werf's default, chroot isolation)"
        );
        assert_eq!(why("native-chroot"), "step isolation: slipway's chroot sandbox (WERF_BUILDAH_MODE=native-chroot)");
    }

    #[test]
    fn fuse_overlayfs_is_forced_by_storage_conf_or_found_on_path() {
        let t = tempfile::tempdir().unwrap();
        let program = t.path().join("fuse-overlayfs");
        std::fs::write(&program, "").unwrap();
        let p = program.to_str().unwrap();
        let conf = t.path().join("storage.conf");
        let c = conf.to_str().unwrap();
        let fuse = |vars: &[(&str, &str)]| backend(vars).unwrap().fuse_overlayfs;

        std::fs::write(
            &conf,
            format!("[storage]\ndriver = \"overlay\"\n[storage.options.overlay]\nmount_program = \"{p}\"\n"),
        )
        .unwrap();
        let forced = Some(FuseProgram { path: program.clone(), forced_by: Some(conf.clone()) });
        assert_eq!(fuse(&[("CONTAINERS_STORAGE_CONF", c)]), forced);
        // The user's file, under XDG_CONFIG_HOME or ~/.config.
        let user = t.path().join("home/.config/containers");
        std::fs::create_dir_all(&user).unwrap();
        std::fs::copy(&conf, user.join("storage.conf")).unwrap();
        let home = t.path().join("home");
        let got = fuse(&[("HOME", home.to_str().unwrap())]).unwrap();
        assert_eq!(got.forced_by, Some(user.join("storage.conf")));
        let xdg = t.path().join("home/.config");
        assert_eq!(fuse(&[("XDG_CONFIG_HOME", xdg.to_str().unwrap())]).unwrap().path, program);
        // The older place, directly under [storage.options].
        std::fs::write(&conf, format!("[storage.options]\nmount_program = \"{p}\"\n")).unwrap();
        assert_eq!(fuse(&[("CONTAINERS_STORAGE_CONF", c)]), forced);

        // Without mount_program: found on PATH, not forced.
        std::fs::write(&conf, "[storage]\ndriver = \"overlay\"\n").unwrap();
        let path = t.path().to_str().unwrap();
        let found = Some(FuseProgram { path: program.clone(), forced_by: None });
        assert_eq!(fuse(&[("CONTAINERS_STORAGE_CONF", c), ("PATH", path)]), found);

        std::fs::write(&conf, "[storage.options.overlay]\nmount_program = \"/nonexistent/fuse-overlayfs\"\n").unwrap();
        let e = error(&[("CONTAINERS_STORAGE_CONF", c)]);
        assert!(e.starts_with("mount_program /nonexistent/fuse-overlayfs in "), "{e}");
        std::fs::write(&conf, "[storage\n").unwrap();
        assert!(error(&[("CONTAINERS_STORAGE_CONF", c)]).starts_with(&format!("reading {c}")));
    }

    #[test]
    fn limits_mapping_and_host_values() {
        let b = backend(&[
            ("SLIPWAY_MAX_LAYER_SIZE", "4096"),
            (slipway_runtime::userns::MAPPING_ENV, "single"),
            ("WERF_BUILDAH_ULIMIT", "nofile=64:64"),
            ("SECRET", "s3cret"),
        ])
        .unwrap();
        assert_eq!(b.max_layer_size, 4096);
        assert_eq!(b.id_mapping.ownership(), Ownership::BestEffort);
        assert_eq!(b.rlimits.len(), 1);
        assert_eq!(b.host.var("SECRET"), Some("s3cret"));
        assert_eq!(b.host.var("UNSET"), None);
        assert!(!format!("{b:?}").contains("s3cret"), "values stay out of debug output");
        // Empty means unset, as before.
        assert_eq!(backend(&[("SLIPWAY_MAX_LAYER_SIZE", "")]).unwrap().max_layer_size, 64 << 30);
        assert_eq!(
            backend(&[(slipway_runtime::userns::MAPPING_ENV, "full")]).unwrap().id_mapping.ownership(),
            Ownership::Exact
        );
    }
}
