//! `slipway export [IMAGE...] --tag TEMPLATE...`: publish final images for software that
//! knows nothing of werf — every `werf*` label removed, `--add-label`s added, layers
//! identical to the stage's (mounted or streamed registry to registry, or pushed from
//! the local store), under tags rendered from templates like
//! `registry.example.com/app/%image%:%image_content_based_tag%`.

use super::ProjectArgs;
use super::flags::werf_bool;
use crate::engine::{self, Log, push::push_image, report::BuildReport};
use crate::project::Project;
use crate::slug::{TagTemplate, render_all, validate_all};
use anyhow::{Context, bail};
use clap::Args;
use slipway_storage::Digest;
use slipway_storage::image::{self, Descriptor};
use slipway_storage::reference::Reference;
use slipway_storage::store::Store;
use std::collections::BTreeMap;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Images to export (default: all final images).
    pub images: Vec<String>,

    #[command(flatten)]
    pub project: ProjectArgs,

    /// Tag template, e.g. REG/app/%image%:%image_content_based_tag% (repeatable;
    /// WERF_EXPORT_TAG_*). Placeholders: %image%, %image_slug%, %image_safe_slug%,
    /// %image_content_based_tag%.
    #[arg(long = "tag", value_name = "TEMPLATE")]
    pub tags: Vec<String>,

    /// Label for the exported images, key=value (repeatable; WERF_EXPORT_ADD_LABEL_*;
    /// one value may hold several, split by --add-label-separator).
    #[arg(long = "add-label", value_name = "KEY=VALUE")]
    pub add_labels: Vec<String>,

    /// Separator between several labels in one --add-label value.
    #[arg(long, env = "WERF_EXPORT_ADD_LABEL_SEPARATOR", default_value = "\n")]
    pub add_label_separator: String,

    /// Requires all used images to be previously built: fail instead of building
    /// (default $WERF_REQUIRE_BUILT_IMAGES).
    #[arg(short = 'Z', long, env = "WERF_REQUIRE_BUILT_IMAGES", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub require_built_images: bool,

    /// Do not build: export the images a build report (saved by `build
    /// --save-build-report`) names; the report is --build-report-path (default
    /// $WERF_USE_BUILD_REPORT).
    #[arg(long, env = "WERF_USE_BUILD_REPORT", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true")]
    pub use_build_report: bool,

    /// Process final images only ($WERF_FINAL_IMAGES_ONLY or true): with false, the
    /// default selection is every image of werf.yaml.
    #[arg(long, env = "WERF_FINAL_IMAGES_ONLY", value_parser = werf_bool, num_args = 0..=1,
          require_equals = true, default_value = "true", default_missing_value = "true")]
    pub final_images_only: bool,

    /// The build report to use with --use-build-report (`.env` for an env file, JSON
    /// otherwise).
    #[arg(long, env = "WERF_BUILD_REPORT_PATH")]
    pub build_report_path: Option<std::path::PathBuf>,
}

pub fn run(args: ExportArgs, storage_root: &Option<std::path::PathBuf>) -> anyhow::Result<u8> {
    args.project.check()?;
    let templates: Vec<TagTemplate> = super::with_env_list(&args.tags, "WERF_EXPORT_TAG_")
        .iter()
        .map(|t| TagTemplate::parse(t))
        .collect::<Result<_, _>>()?;
    if templates.is_empty() {
        bail!("no --tag given: say where to export, e.g. --tag REGISTRY/app/%image%:%image_content_based_tag%");
    }
    let labels =
        parse_labels(&super::with_env_list(&args.add_labels, "WERF_EXPORT_ADD_LABEL_"), &args.add_label_separator)?;
    let project = Project::load(
        &args.project.dir()?,
        args.project.config.as_deref(),
        &args.project.env,
        &args.project.source_mode(),
    )?;
    args.project.check_project(&project, false)?;
    let names: Vec<String> = if args.images.is_empty() {
        project.config.images.iter().filter(|i| i.final_ || !args.final_images_only).map(|i| i.name.clone()).collect()
    } else {
        args.images.clone()
    };
    // Refuse bad or colliding templates before building anything.
    validate_all(&templates, &names.iter().map(String::as_str).collect::<Vec<_>>())?;
    let report_path = match (args.use_build_report, args.build_report_path.as_deref()) {
        (false, _) => None,
        (true, Some(p)) if !p.as_os_str().is_empty() => Some(p),
        (true, _) => bail!("build report path must be specified (--build-report-path or WERF_BUILD_REPORT_PATH)"),
    };
    let store = Store::open(&args.project.storage_root(storage_root)?)?;
    let log = Log::new(false).quiet(args.project.log.quiet());
    let mut settings = args.project.settings()?;
    settings.require_built = args.require_built_images;
    let (report, states) = match report_path {
        Some(path) => {
            let report = BuildReport::load(path)?;
            let states = from_report(&project.name, &store, &settings, &log, &report, &names)?;
            (report, states)
        }
        None => {
            let (report, states) = engine::build(&project, &store, &names, &settings, &log)?;
            let states = states.into_iter().map(|(n, s)| (n, (s, None))).collect();
            (report, states)
        }
    };
    // werf exports the final images the report has and skips the others.
    let content_tags: Vec<(String, String)> = names
        .iter()
        .filter(|n| states.contains_key(*n))
        .map(|n| (n.clone(), report.images[n].docker_tag.clone()))
        .collect();
    let pairs: Vec<(&str, &str)> = content_tags.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let targets = render_all(&templates, &pairs)?;
    let client = engine::registry_client(&settings)?;
    for (name, target) in targets {
        let (state, manifest) = &states[&name];
        let manifest = exported_manifest(&store, state, manifest.as_ref(), &labels)?;
        let dest = Reference::parse(&target).with_context(|| format!("export tag {target:?}"))?;
        let started = std::time::Instant::now();
        push_image(&client, &store, &manifest, state.source.as_ref(), &dest, &log)
            .with_context(|| format!("exporting image {name} to {dest}"))?;
        println!("Exported {name} to {dest} ({manifest}) in {:.2}s", started.elapsed().as_secs_f64());
    }
    Ok(0)
}

/// The images of `names` a build report has as final, found or pulled by their
/// `DockerImageName`s, with their manifest digests.
fn from_report(
    project: &str,
    store: &Store,
    settings: &engine::BuildSettings,
    log: &Log,
    report: &BuildReport,
    names: &[String],
) -> anyhow::Result<BTreeMap<String, (engine::ImageState, Option<Digest>)>> {
    let mut out = BTreeMap::new();
    for name in names {
        let Some(r) = report.images.get(name).filter(|r| r.final_) else {
            log.warn(&format!("image {name} is not a final image of the build report: not exported"));
            continue;
        };
        let (state, manifest) =
            engine::report_image(project, store, settings, log, &r.docker_image_name, &r.docker_image_digest)
                .with_context(|| format!("image {name} of the build report"))?;
        out.insert(name.clone(), (state, Some(manifest)));
    }
    Ok(out)
}

/// `key=value` items; several per value when split by `separator`.
fn parse_labels(values: &[String], separator: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for v in values {
        for item in v.split(separator).map(str::trim).filter(|s| !s.is_empty()) {
            let (k, val) = item.split_once('=').with_context(|| format!("--add-label {item:?}: expected key=value"))?;
            if k.is_empty() {
                bail!("--add-label {item:?}: the key is empty");
            }
            out.insert(k.to_string(), val.to_string());
        }
    }
    Ok(out)
}

/// The stage image with a clean config: no `werf*` labels, the added ones in; the layers
/// are the stage's own descriptors.
fn exported_manifest(
    store: &Store,
    state: &engine::ImageState,
    manifest: Option<&Digest>,
    add: &BTreeMap<String, String>,
) -> anyhow::Result<Digest> {
    let digest = match manifest {
        Some(d) => d.clone(),
        None => state.stage.as_ref().context("the image has no stored stage")?.record.manifest.clone(),
    };
    let mut manifest = store.manifest(&digest)?;
    let mut config = state.config.clone();
    let labels = config.config.labels.get_or_insert_with(Default::default);
    labels.retain(|k, _| !k.starts_with("werf"));
    labels.extend(add.iter().map(|(k, v)| (k.clone(), v.clone())));
    let bytes = serde_json::to_vec(&config)?;
    let digest = store.blobs().put_bytes(&bytes)?;
    manifest.config = Descriptor {
        media_type: image::OCI_CONFIG.into(),
        digest,
        size: bytes.len() as u64,
        urls: None,
        annotations: None,
        platform: None,
        artifact_type: None,
    };
    Ok(store.blobs().put_bytes(&serde_json::to_vec(&manifest)?)?)
}

#[cfg(test)]
mod tests {
    use super::parse_labels;

    #[test]
    fn labels() {
        let v = vec!["a=1".to_string(), "b=x=y\nc=".to_string()];
        let got = parse_labels(&v, "\n").unwrap();
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            [("a".into(), "1".into()), ("b".into(), "x=y".into()), ("c".into(), String::new())]
        );
        assert!(parse_labels(&["novalue".into()], "\n").is_err());
        assert!(parse_labels(&["=v".into()], "\n").is_err());
        assert_eq!(parse_labels(&["a=1;b=2".into()], ";").unwrap().len(), 2);
    }
}
