//! The stage engine: from a loaded project to stages in the stage storage.
//!
//! [`build`] builds the selected images in waves (every image whose dependencies are
//! built, several at a time); each image's stages come from its front end
//! (`crate::frontend`); the report says what was built and where.

pub mod conveyor;
pub mod digest;
pub mod log;
pub mod pull;
pub mod push;
pub mod report;
pub mod rootfs;
pub mod settings;
pub mod ssh_agent;
pub mod stages;
pub mod state;
pub mod storage;

pub use log::Log;
pub use pull::Puller;
pub use rootfs::RootfsDriver;
pub use settings::Backend;
use stages::Stages;
pub use state::ImageState;

use crate::config::{Image, ImageKind, WerfConfig};
use crate::project::Project;
use anyhow::{Context, bail};
use report::{BuildReport, ImageRecord, StageFacts};
use slipway_storage::registry::{AuthStore, Client, RegistryConfig};
use slipway_storage::store::Store;
use std::collections::BTreeMap;
use std::time::Instant;

/// Settings that come from flags and the environment.
#[derive(Default)]
pub struct BuildSettings {
    pub insecure_registries: Vec<String>,
    pub skip_tls_verify_registries: Vec<String>,
    /// `--docker-config`: the Docker config directory whose `config.json` has credentials.
    pub docker_config: Option<std::path::PathBuf>,
    /// `--repo`: stages in this registry repository, the local store as a cache.
    pub repo: Option<String>,
    pub secondary_repos: Vec<String>,
    pub cache_repos: Vec<String>,
    pub final_repo: Option<String>,
    /// How long after a stage's timestamp every older tag of its digest is surely
    /// listed (`SLIPWAY_PUBLISH_GRACE_MS`, default 1 s): see `docs/STAGE-STORAGE.md`.
    pub publish_grace: std::time::Duration,
    /// Where the locks shared by every build of this user on this host live
    /// (`$XDG_RUNTIME_DIR/slipway/locks`).
    pub lock_dir: std::path::PathBuf,
    /// Only look stages up; a missing one is an error.
    pub require_built: bool,
    /// How many images may build at once (`-p`, `--parallel-tasks-limit`); 1: one by one.
    pub parallel: usize,
    /// The progress every registry transfer must make (`SLIPWAY_REGISTRY_PROGRESS_TIMEOUT`).
    pub registry_progress: slipway_storage::registry::ProgressDeadline,
    /// Isolation, storage driver, limits and the host environment (`WERF_BUILDAH_*`).
    pub backend: Backend,
    /// The ssh agent the build starts or takes (`--ssh-key`); it lives as long as the build.
    pub ssh: ssh_agent::Choice,
}

/// Builds selected images; returns the report and each image's final state.
pub fn build(
    project: &Project,
    store: &Store,
    images: &[String],
    settings: &BuildSettings,
    log: &Log,
) -> anyhow::Result<(BuildReport, BTreeMap<String, ImageState>)> {
    // First: a bad --ssh-key fails the command before anything is looked up or built.
    let ssh = ssh_agent::Agent::start(&settings.ssh, &settings.backend.host)?;
    let run = Run {
        name: &project.name,
        dir_rel: &project.dir_rel,
        commit: &project.commit,
        config: &project.config,
        allow_context_add_files: &project.allow_context_add_files,
        mount_allow: project.mount_allow.as_ref(),
        giterminism: &project.giterminism,
        store,
        settings,
        log,
        rootfs: RootfsDriver::new(&settings.backend, log),
        ssh,
        git_fetched: Default::default(),
        client: registry_client(settings)?,
    };
    let mut pending = build_order(&project.config, &project.config.select(images)?);
    // What a front end refuses is refused before any image is built.
    for image in &pending {
        if let ImageKind::Stapel(s) = &image.kind {
            crate::frontend::stapel::refuse(image, s, &project.config.meta.build.platform)?;
        }
    }
    let mut report = BuildReport::default();
    let mut states = BTreeMap::new();
    // In waves: every image whose dependencies are built, several at a time (werf's -p).
    while !pending.is_empty() {
        let (ready, rest): (Vec<&Image>, Vec<&Image>) = pending.iter().partition(|i| {
            i.depends_on().iter().all(|d| report.images.contains_key(*d) || !pending.iter().any(|p| p.name == *d))
        });
        if ready.is_empty() {
            // werf.yaml is checked for cycles when parsed; never spin if one slips through.
            bail!(
                "images {} depend on each other",
                rest.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
        pending = rest;
        for chunk in ready.chunks(settings.parallel.max(1)) {
            let results: Vec<anyhow::Result<(Vec<ImageRecord>, ImageState)>> = if chunk.len() == 1 {
                vec![run.image(&project.repo, chunk[0], &report)]
            } else {
                std::thread::scope(|s| {
                    // A git handle is not shared between threads: each build gets a clone.
                    let handles: Vec<_> = chunk
                        .iter()
                        .map(|image| {
                            let repo = project.repo.clone();
                            let (run, report) = (&run, &report);
                            s.spawn(move || run.image(&repo, image, report))
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("an image build panicked"))))
                        .collect()
                })
            };
            for (image, result) in chunk.iter().zip(results) {
                let (records, state) = result?;
                for r in records {
                    report.images.insert(r.werf_image_name.clone(), r);
                }
                states.insert(image.name.clone(), state);
            }
        }
    }
    Ok((report, states))
}

/// What every image build of one run shares (the project without its git handle,
/// which cannot be shared between threads).
pub struct Run<'a> {
    pub name: &'a str,
    pub dir_rel: &'a str,
    pub commit: &'a crate::git::CommitInfo,
    pub config: &'a WerfConfig,
    pub allow_context_add_files: &'a [String],
    /// werf-giterminism.yaml, for Stapel mounts a base image's labels ask for (`None`:
    /// loose giterminism allows every mount).
    pub mount_allow: Option<&'a crate::giterminism::GiterminismConfig>,
    /// werf-giterminism.yaml: which Dockerfiles and `.dockerignore` files may be read
    /// from the working tree (`config.dockerfile.allowUncommitted*`).
    pub giterminism: &'a crate::giterminism::GiterminismConfig,
    pub store: &'a Store,
    pub settings: &'a BuildSettings,
    pub log: &'a Log,
    /// How layers become a rootfs, for every image of the run.
    pub rootfs: RootfsDriver,
    /// The build's ssh agent, for the steps that show it; killed (if slipway started
    /// it) when the run ends.
    pub ssh: ssh_agent::Agent,
    /// The remote git fetches this run has made (cache and refspecs), so every image
    /// that maps a remote sees it as one fetch left it.
    pub git_fetched: std::sync::Mutex<std::collections::HashSet<String>>,
    client: Client,
}

/// What a front end gets to build one image.
pub struct Job<'a> {
    pub run: &'a Run<'a>,
    pub repo: &'a crate::git::Repo,
    pub image: &'a Image,
    /// The image's name as logged (`~` for the nameless image).
    pub shown: &'a str,
    pub stages: &'a Stages<'a>,
    pub puller: &'a Puller<'a>,
    /// The report of the images built before this one (its dependencies).
    pub done: &'a BuildReport,
}

/// What a front end returns for one image.
pub struct Built {
    /// The image's last stage, and its digest.
    pub state: ImageState,
    pub digest: String,
    /// The build report's `ConfigType` of the image.
    pub config_type: &'static str,
    /// The image's stage records, and the seconds each took.
    pub stages: Vec<(report::StageRecord, f64)>,
    /// Images the front end reports besides this one (werf's staged Dockerfile stages).
    pub more: Vec<ImageRecord>,
}

impl Run<'_> {
    /// Build one image whose dependencies are in `done`.
    fn image(
        &self,
        repo: &crate::git::Repo,
        image: &Image,
        done: &BuildReport,
    ) -> anyhow::Result<(Vec<ImageRecord>, ImageState)> {
        let (store, log, settings) = (self.store, self.log, self.settings);
        let puller = Puller { client: &self.client, store, log, backend: &settings.backend };
        let stages = stage_storage(self.name, store, &puller, settings, log)?;
        let started = Instant::now();
        let shown = if image.name.is_empty() { "~".to_string() } else { image.name.clone() };
        let job = Job { run: self, repo, image, shown: &shown, stages: &stages, puller: &puller, done };
        let (built, selector) = match &image.kind {
            ImageKind::Dockerfile(d) => (crate::frontend::dockerfile::build(&job, d)?, None),
            ImageKind::Stapel(s) => crate::frontend::stapel::build(&job, s)?,
        };
        let state = stages.settle(built.state, &built.digest, selector.as_deref())?;
        let repo_name = match image.final_.then(|| stages.to_final_repo(&state)).transpose()?.flatten() {
            Some(final_repo) => final_repo.to_string(),
            None => stages.name().to_string(),
        };
        let last = stage_facts(store, &repo_name, &state)?;
        let (records, secs): (Vec<_>, Vec<_>) = built.stages.into_iter().unzip();
        let mut images = vec![report::image_record(
            &image.name,
            built.config_type,
            image.final_,
            &last,
            records,
            &secs,
            started.elapsed().as_secs_f64(),
        )];
        images.extend(built.more);
        log.image_footer(&shown, started.elapsed().as_secs_f64(), &images[0].docker_image_name);
        Ok((images, state))
    }
}

/// The image a build report names (`DockerImageName`, for `export --use-build-report`):
/// a stage of the local store (`PROJECT:DIGEST-TS`), else pulled. Returns it with its
/// manifest digest, which must be the report's `DockerImageDigest` when that is given.
pub fn report_image(
    project: &str,
    store: &Store,
    settings: &BuildSettings,
    log: &Log,
    name: &str,
    digest: &str,
) -> anyhow::Result<(ImageState, slipway_storage::Digest)> {
    let client = registry_client(settings)?;
    let puller = Puller { client: &client, store, log, backend: &settings.backend };
    let (state, manifest) = match (storage::local::LocalStorage { store, project, log }).image(name)? {
        Some(state) => {
            let m = state.stage.as_ref().context("a local stage is recorded")?.record.manifest.clone();
            (state, m)
        }
        None => {
            let (state, _) = puller.pull_counted(name)?;
            let reference = slipway_storage::reference::Reference::parse(name)?;
            let m = store
                .image_ref(&reference.to_string())?
                .with_context(|| format!("{name} was pulled but not recorded"))?;
            (state, m)
        }
    };
    if !digest.is_empty() && manifest.as_str() != digest {
        bail!("{name} is {manifest} now, but the build report says {digest}");
    }
    Ok((state, manifest))
}

/// A stored stage as the report describes it, named in `repo`.
pub fn stage_facts(store: &Store, repo: &str, state: &ImageState) -> anyhow::Result<StageFacts> {
    let stage = state.stage.as_ref().context("the stage is not stored")?;
    let manifest = store.manifest(&stage.record.manifest)?;
    Ok(StageFacts {
        repo: repo.to_string(),
        id: stage.id(),
        config_digest: manifest.config.digest.to_string(),
        manifest_digest: stage.record.manifest.to_string(),
        created: state.config.created.clone(),
        layer_sizes: manifest.layers.iter().map(|l| l.size).collect(),
        commit: state
            .config
            .config
            .labels
            .as_ref()
            .and_then(|l| l.get("werf-project-repo-commit"))
            .cloned()
            .unwrap_or_default(),
    })
}

/// The selected images and the images they depend on, each after its dependencies.
fn build_order<'c>(config: &'c WerfConfig, selected: &[&'c Image]) -> Vec<&'c Image> {
    fn visit<'c>(config: &'c WerfConfig, image: &'c Image, out: &mut Vec<&'c Image>) {
        if out.iter().any(|i| std::ptr::eq(*i, image)) {
            return;
        }
        for dep in image.depends_on() {
            if let Some(d) = config.images.iter().find(|i| i.name == dep) {
                visit(config, d, out);
            }
        }
        out.push(image);
    }
    // werf.yaml was checked for cycles when it was parsed.
    let mut out = Vec::new();
    for image in selected {
        visit(config, image, &mut out);
    }
    out
}

/// The stage storage of one image build: the local store, or with `--repo` the primary
/// repository (the local store as its cache) and its secondary, cache and final repos.
fn stage_storage<'a>(
    project: &'a str,
    store: &'a Store,
    puller: &'a Puller<'a>,
    settings: &'a BuildSettings,
    log: &'a Log,
) -> anyhow::Result<Stages<'a>> {
    use storage::layered::Layered;
    use storage::registry::{RegistryStorage, Role};
    let local = storage::local::LocalStorage { store, project, log };
    let repo = |name: &str, role| RegistryStorage::new(name, role, puller, &settings.lock_dir);
    let Some(primary) = settings.repo.as_deref() else {
        if settings.final_repo.is_some() || !settings.secondary_repos.is_empty() || !settings.cache_repos.is_empty() {
            bail!("--final-repo, --secondary-repo and --cache-repo need --repo (WERF_REPO)");
        }
        return Ok(Stages::new(local, Box::new(local)));
    };
    let all = |names: &[String], role| names.iter().map(|n| repo(n, role)).collect::<anyhow::Result<Vec<_>>>();
    let layered = Layered {
        client: puller.client,
        local,
        primary: repo(primary, Role::Primary)?,
        secondary: all(&settings.secondary_repos, Role::Secondary)?,
        cache: all(&settings.cache_repos, Role::Cache)?,
        final_repo: settings.final_repo.as_deref().map(|r| repo(r, Role::Final)).transpose()?,
        grace: settings.publish_grace,
    };
    Ok(Stages::new(local, Box::new(layered)))
}

/// The registry client of the settings: registries.conf and credentials found where the
/// host environment says, `--docker-config` replacing `~/.docker`.
pub fn registry_client(settings: &BuildSettings) -> anyhow::Result<Client> {
    use slipway_storage::registry::{default_auth_paths, default_registries_conf_paths};
    let host = &settings.backend.host;
    let mut config = RegistryConfig::load_from(&default_registries_conf_paths(|n| host.path(n)))
        .context("reading registries.conf")?;
    config = config.with_insecure(settings.insecure_registries.iter().cloned());
    config.skip_tls_verify.extend(settings.skip_tls_verify_registries.iter().cloned());
    let var = |n: &str| match (n, &settings.docker_config) {
        ("DOCKER_CONFIG", Some(dir)) => Some(dir.clone()),
        _ => host.path(n),
    };
    let auth = AuthStore::load_from(&default_auth_paths(var)).context("reading registry credentials")?;
    Ok(Client::new(config, auth).with_progress_deadline(settings.registry_progress))
}

#[cfg(test)]
mod tests {
    /// An import source (and a dependency) is built before the image that needs it,
    /// whatever the config order and even when only that image is selected.
    #[test]
    fn build_order_follows_imports_and_dependencies() {
        let text = "project: p\nconfigVersion: 1\n---\nimage: app\nfrom: base\nimport:\n- image: builder\n  add: /out\n  \
                    after: install\ndependencies:\n- image: tool\n  after: setup\n---\nimage: builder\nfinal: false\n\
                    from: alpine:3\n---\nimage: tool\nfrom: alpine:3\n---\nimage: base\nfrom: alpine:3\n";
        let config = crate::config::parse("werf.yaml", text).unwrap();
        let order = |names: &[&str]| {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            super::build_order(&config, &config.select(&names).unwrap())
                .iter()
                .map(|i| i.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(order(&["app"]), ["base", "builder", "tool", "app"]);
        assert_eq!(order(&[]), ["base", "builder", "tool", "app"]);
    }
}
