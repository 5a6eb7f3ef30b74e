//! werf.yaml `mount` of a Stapel image, as werf does it (`pkg/build/stage/base.go`,
//! `from.go`, Buildah mode):
//!
//! - every stage's mount points are the previous stage's `werf-mount-type-*` labels
//!   merged with the image's own `mount` list ([`MountPoints::of`]); every stage but a
//!   `from: scratch` one writes them back as labels, so an image built `from:` another
//!   one inherits its mounts;
//! - the `from` stage empties each mount point of the base image (werf's
//!   `RemoveInsidePath`), so the stage has a layer when they had content;
//! - a shell stage binds, read-write, `tmp_dir` to a directory made for this build of
//!   the image (`mount/<slug>` in the run's scratch directory), `build_dir` to
//!   `<store>/mounts/projects/<project>/<slug>` kept between builds, and `fromPath` to
//!   that host path (`~` and relative paths expanded, created if missing), each only as
//!   `werf-giterminism.yaml` allows ([`MountEnv::binds`]). The sandbox resolves the
//!   target inside the rootfs and removes the mount points it had to create, so they
//!   are not in the layer;
//! - the `from` stage's digest covers the image's own mounts (source, target, type);
//!   what a mount holds is in no digest (as in werf).
//!
//! Stricter than werf: mounts a base image's labels ask for are bound only as the
//! project's `werf-giterminism.yaml` allows (werf binds them unchecked), since a base
//! image from a registry must not choose host paths.

pub(super) use crate::context::dockerignore::go_clean;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, bail};
use slipway_runtime::sandbox::Bind;

use crate::config::{Mount, MountSource};
use crate::frontend::dockerfile::copy::Rootfs;
use crate::giterminism::GiterminismConfig;

pub const TMP_DIR_LABEL: &str = "werf-mount-type-tmp-dir";
pub const BUILD_DIR_LABEL: &str = "werf-mount-type-build-dir";
pub const CUSTOM_DIR_LABEL_PREFIX: &str = "werf-mount-type-custom-dir-";

/// The mount points of one stage, by source.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountPoints {
    pub tmp_dir: Vec<String>,
    pub build_dir: Vec<String>,
    /// `fromPath` as written (cleaned), and its mount points.
    pub custom: Vec<(String, Vec<String>)>,
}

impl MountPoints {
    /// werf's `getServiceMounts` and `getCustomMounts`: the previous stage's labels,
    /// then the image's own mounts, each list without duplicates.
    pub fn of(labels: Option<&BTreeMap<String, String>>, config: &[Mount]) -> MountPoints {
        let split = |v: &str| -> Vec<String> {
            let mut out = Vec::new();
            for p in v.split(';').filter(|p| !p.is_empty()) {
                push_unique(&mut out, p.to_string());
            }
            out
        };
        let mut m = MountPoints::default();
        if let Some(labels) = labels {
            m.tmp_dir = labels.get(TMP_DIR_LABEL).map(|v| split(v)).unwrap_or_default();
            m.build_dir = labels.get(BUILD_DIR_LABEL).map(|v| split(v)).unwrap_or_default();
            for (k, v) in labels {
                if let Some(from) = k.strip_prefix(CUSTOM_DIR_LABEL_PREFIX) {
                    m.custom.push((from.replace("--", "/"), split(v)));
                }
            }
        }
        for c in config {
            let to = go_clean(&c.to);
            match &c.source {
                MountSource::TmpDir => push_unique(&mut m.tmp_dir, to),
                MountSource::BuildDir => push_unique(&mut m.build_dir, to),
                MountSource::Path(from) => {
                    let from = go_clean(from);
                    match m.custom.iter_mut().find(|(f, _)| *f == from) {
                        Some((_, points)) => push_unique(points, to),
                        None => m.custom.push((from, vec![to])),
                    }
                }
            }
        }
        m
    }

    pub fn is_empty(&self) -> bool {
        self.tmp_dir.is_empty() && self.build_dir.is_empty() && self.custom.is_empty()
    }

    /// werf's labels: the mount points of each source joined by `;`.
    pub fn labels(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (label, points) in [(TMP_DIR_LABEL, &self.tmp_dir), (BUILD_DIR_LABEL, &self.build_dir)] {
            if !points.is_empty() {
                out.push((label.to_string(), points.join(";")));
            }
        }
        for (from, points) in &self.custom {
            out.push((format!("{CUSTOM_DIR_LABEL_PREFIX}{}", from.replace('/', "--")), points.join(";")));
        }
        out
    }

    /// Every mount point, absolute.
    pub fn all(&self) -> impl Iterator<Item = String> + '_ {
        self.tmp_dir
            .iter()
            .chain(&self.build_dir)
            .chain(self.custom.iter().flat_map(|(_, p)| p))
            .map(|p| go_clean(&format!("/{p}")))
    }
}

/// The `from` digest's part for the image's own mounts, werf's triplets
/// (`filepath.Clean(fromPath)`, `path.Clean(to)`, type).
pub fn digest_parts(config: &[Mount]) -> Vec<String> {
    let mut out = Vec::new();
    for m in config {
        let (from, kind) = match &m.source {
            MountSource::TmpDir => (".".to_string(), "tmp_dir"),
            MountSource::BuildDir => (".".to_string(), "build_dir"),
            MountSource::Path(p) => (go_clean(p), "custom_dir"),
        };
        out.extend([from, go_clean(&m.to), kind.to_string()]);
    }
    out
}

/// Write the mount labels into a stage's config.
pub fn label(points: &MountPoints, labels: &mut BTreeMap<String, String>) {
    labels.extend(points.labels());
}

/// werf's `RemoveInsidePath` for each mount point in the `from` stage: the contents of
/// the directory the point names (resolved inside the rootfs) are removed; a missing
/// point or one that is not a directory is left alone.
pub fn empty_mount_points(rootfs: &Rootfs, points: &MountPoints) -> anyhow::Result<()> {
    for point in points.all() {
        if !rootfs.is_dir(&point) {
            continue;
        }
        let fd = rootfs.open_path(&point)?;
        let dir = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd)));
        let entries = std::fs::read_dir(&dir).with_context(|| format!("reading mount point {point} of the image"))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("reading mount point {point} of the image"))?;
            let path = entry.path();
            // Neither removal follows a symlink: a link is removed, not its target.
            let removed = match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path),
                Ok(_) => std::fs::remove_file(&path),
                Err(e) => Err(e),
            };
            removed.with_context(|| {
                format!("emptying mount point {point}: removing {}", entry.file_name().to_string_lossy())
            })?;
        }
    }
    Ok(())
}

/// Where one image's mounts come from on the host.
pub struct MountEnv<'a> {
    /// The image's own `mount` list.
    pub config: &'a [Mount],
    /// `werf-giterminism.yaml` (`None`: loose giterminism, everything allowed).
    pub allow: Option<&'a GiterminismConfig>,
    pub store: &'a slipway_storage::store::Store,
    pub project: &'a str,
    /// `$HOME` of the build, for `~` in `fromPath`.
    pub home: Option<&'a str>,
    /// The image's `tmp_dir` root, made at its first use in this build.
    tmp: OnceLock<PathBuf>,
}

impl<'a> MountEnv<'a> {
    pub fn new(
        config: &'a [Mount],
        allow: Option<&'a GiterminismConfig>,
        store: &'a slipway_storage::store::Store,
        project: &'a str,
        home: Option<&'a str>,
    ) -> Self {
        MountEnv { config, allow, store, project, home, tmp: OnceLock::new() }
    }

    /// The mount points of a stage whose previous stage has `labels`.
    pub fn points(&self, labels: Option<&BTreeMap<String, String>>) -> MountPoints {
        MountPoints::of(labels, self.config)
    }

    /// The read-write binds for `points`.
    pub fn binds(&self, points: &MountPoints) -> anyhow::Result<Vec<Bind>> {
        let mut binds = Vec::new();
        let slug =
            |point: &str| crate::slug::limited_slug(&go_clean(&format!("/{point}")), crate::slug::DEFAULT_SLUG_MAX_LEN);
        for point in &points.tmp_dir {
            let root = match self.tmp.get() {
                Some(r) => r.clone(),
                None => {
                    let r = self.store.scratch_dir("mount")?;
                    self.tmp.get_or_init(|| r).clone()
                }
            };
            binds.push(self.bind(root.join("mount").join(slug(point)), point)?);
        }
        // The image's own mounts were checked when werf.yaml was loaded (naming their
        // line); what only the base's labels ask for is checked here.
        let own_build_dir = self.config.iter().any(|m| m.source == MountSource::BuildDir);
        if !points.build_dir.is_empty() && !own_build_dir {
            self.check(&MountSource::BuildDir)?;
        }
        for point in &points.build_dir {
            let dir = self.store.root().join("mounts/projects").join(self.project).join(slug(point));
            binds.push(self.bind(dir, point)?);
        }
        for (from, list) in &points.custom {
            let own = self.config.iter().any(|m| matches!(&m.source, MountSource::Path(p) if go_clean(p) == *from));
            if !own {
                self.check(&MountSource::Path(from.clone()))?;
            }
            let dir = self.expand(from)?;
            for point in list {
                binds.push(self.bind(dir.clone(), point)?);
            }
        }
        Ok(binds)
    }

    fn check(&self, source: &MountSource) -> anyhow::Result<()> {
        match self.allow.map(|g| g.mount_allowed(source)) {
            Some(Err(message)) => bail!("the base image's werf-mount-type-* labels ask for a mount: {message}"),
            _ => Ok(()),
        }
    }

    /// werf's `util.ExpandPath`: `~` is `$HOME`, a relative path is taken from the
    /// working directory.
    fn expand(&self, from: &str) -> anyhow::Result<PathBuf> {
        let home = || self.home.filter(|h| !h.is_empty()).context("mount fromPath: `~` needs $HOME");
        Ok(if from == "~" {
            PathBuf::from(home()?)
        } else if let Some(rest) = from.strip_prefix("~/") {
            Path::new(home()?).join(rest)
        } else {
            std::env::current_dir().context("mount fromPath: the working directory")?.join(from)
        })
    }

    fn bind(&self, source: PathBuf, point: &str) -> anyhow::Result<Bind> {
        if !source.exists() {
            std::fs::create_dir_all(&source)
                .with_context(|| format!("creating {} for the mount at {point}", source.display()))?;
        }
        Ok(Bind { source, dest: go_clean(&format!("/{point}")), readonly: false })
    }
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(source: MountSource, to: &str) -> Mount {
        Mount { line: 1, source, to: to.into() }
    }

    #[test]
    fn merges_labels_and_config_as_werf() {
        let labels: BTreeMap<String, String> = [
            (TMP_DIR_LABEL.to_string(), "/a;/b;;/a".to_string()),
            (format!("{CUSTOM_DIR_LABEL_PREFIX}~--cache"), "/c".to_string()),
            ("other".into(), "x".into()),
        ]
        .into();
        let config = [
            mount(MountSource::TmpDir, "/b/"),
            mount(MountSource::TmpDir, "/d/./e"),
            mount(MountSource::BuildDir, "/var/cache"),
            mount(MountSource::Path("~/cache/".into()), "/c2"),
        ];
        let m = MountPoints::of(Some(&labels), &config);
        assert_eq!(m.tmp_dir, ["/a", "/b", "/d/e"]);
        assert_eq!(m.build_dir, ["/var/cache"]);
        assert_eq!(m.custom, [("~/cache".to_string(), vec!["/c".to_string(), "/c2".to_string()])]);
        assert_eq!(
            m.labels(),
            [
                (TMP_DIR_LABEL.to_string(), "/a;/b;/d/e".to_string()),
                (BUILD_DIR_LABEL.to_string(), "/var/cache".to_string()),
                (format!("{CUSTOM_DIR_LABEL_PREFIX}~--cache"), "/c;/c2".to_string()),
            ]
        );
        // The labels read back give the same points.
        let written: BTreeMap<String, String> = m.labels().into_iter().collect();
        assert_eq!(MountPoints::of(Some(&written), &[]), m);
        assert!(MountPoints::of(None, &[]).is_empty());
    }

    #[test]
    fn digest_parts_are_werfs_triplets() {
        let config = [mount(MountSource::TmpDir, "/x/"), mount(MountSource::Path("./data/".into()), "/y")];
        assert_eq!(digest_parts(&config), [".", "/x", "tmp_dir", "data", "/y", "custom_dir"]);
    }

    #[test]
    fn go_clean_is_gos() {
        for (i, o) in
            [("", "."), ("/", "/"), ("/a/../..", "/"), ("a/../../b", "../b"), ("//a//b/", "/a/b"), ("./x", "x")]
        {
            assert_eq!(go_clean(i), o, "{i}");
        }
    }
}
