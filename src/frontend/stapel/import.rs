//! Stapel `import` and `dependencies`: werf's four dependencies stages
//! (`dependenciesBeforeInstall`, `dependenciesAfterInstall`, `dependenciesBeforeSetup`,
//! `dependenciesAfterSetup`; `pkg/build/stage/dependencies.go`).
//!
//! - [`prepare`]: before planning, each import's source (a stage of an image built
//!   before this one, or an external reference) and the checksum of the files it takes
//!   (`import_tree`), and each dependency's values, from the report of the images built
//!   before;
//! - [`copy_into`]: an import's files written into the dependencies stage being built;
//! - werf's labels of a dependencies stage ([`import_labels`], [`dependency_label`]).

use super::git::PathFilter;
use super::import_tree::{EMPTY_CHECKSUM, Tree};
use super::plan::{DependenciesInput, ImportInput};
use crate::config::{Anchor, Dependency, DependencyImportType, ImageRef, Import, Relation, UserStage};
use crate::engine::state::ImageState;
use crate::engine::storage::ImportMetadata;
use crate::engine::{Job, report::BuildReport};
use crate::frontend::dockerfile::copy::Rootfs;
use anyhow::Context;
use sha2::{Digest as _, Sha256};

/// werf's label prefixes of a dependencies stage (`pkg/image/const.go`).
const CHECKSUM_LABEL: &str = "werf-import-checksum-";
const SOURCE_STAGE_LABEL: &str = "werf-import-source-stage-id-";
const DEPENDENCY_LABEL: &str = "werf-dependency-stage-id-";

/// The dependencies stage (index into [`super::plan::DEPENDENCIES_STAGES`]) of a relation.
pub fn slot(relation: Relation) -> usize {
    match relation {
        Relation::Before(Anchor::Install) => 0,
        Relation::After(Anchor::Install) => 1,
        Relation::Before(Anchor::Setup) => 2,
        Relation::After(Anchor::Setup) => 3,
    }
}

/// An import with its source resolved.
pub struct Resolved<'a> {
    pub import: &'a Import,
    pub slot: usize,
    /// The source's image name: a stage (`PROJECT:DIGEST-TS`, `REPO:DIGEST-TS`) or the
    /// external reference.
    pub reference: String,
    /// werf's source stage ID label value (`DIGEST-TS`, or `external-image:REF`).
    pub source_stage_id: String,
    pub external: bool,
    /// The checksum of the files the import takes ([`Tree::checksum`]).
    pub checksum: String,
}

/// A dependency's variables and label.
pub struct ResolvedDependency {
    pub slot: usize,
    /// `targetEnv` → value.
    pub env: Vec<(String, String)>,
    /// The image's last stage ID (`DIGEST-TS`).
    pub stage_id: String,
}

/// Everything the dependencies stages of an image need.
#[derive(Default)]
pub struct Prepared<'a> {
    pub inputs: [DependenciesInput; 4],
    pub imports: Vec<Resolved<'a>>,
    pub dependencies: Vec<ResolvedDependency>,
}

/// Resolve the imports and dependencies of an image whose sources are built (`job.done`),
/// and compute what its dependencies stages' digests cover.
pub fn prepare<'a>(job: &Job<'_>, imports: &'a [Import], dependencies: &[Dependency]) -> anyhow::Result<Prepared<'a>> {
    let mut out = Prepared::default();
    for import in imports {
        let at = || format!("import at werf.yaml:{}", import.line);
        let (reference, source_stage_id, external) = source(job.done, import).with_context(at)?;
        let state = source_state(job, &reference, external).with_context(at)?;
        let checksum = checksum(job, &state, import, &source_stage_id).with_context(at)?;
        if checksum == EMPTY_CHECKSUM {
            job.run.log.warn(&format!(
                "this import does nothing: import at werf.yaml:{} takes no file from {reference} (add {})",
                import.line, import.add
            ));
        }
        let slot = slot(import.relation);
        out.inputs[slot].imports.push(ImportInput {
            checksum: checksum.clone(),
            to: import.to.clone(),
            group: import.group.clone().unwrap_or_default(),
            owner: import.owner.clone().unwrap_or_default(),
        });
        out.imports.push(Resolved { import, slot, reference, source_stage_id, external, checksum });
    }
    for dep in dependencies {
        let r = job.done.images.get(&dep.image).with_context(|| {
            format!("dependency at werf.yaml:{}: image {} was not built first", dep.line, dep.image)
        })?;
        let relation =
            dep.relation.with_context(|| format!("dependency at werf.yaml:{}: no before/after", dep.line))?;
        let slot = slot(relation);
        let env = dep
            .imports
            .iter()
            .map(|i| {
                let value = match i.kind {
                    DependencyImportType::ImageName => &r.docker_image_name,
                    DependencyImportType::ImageID => &r.docker_image_id,
                    DependencyImportType::ImageRepo => &r.docker_repo,
                    DependencyImportType::ImageTag => &r.docker_tag,
                    DependencyImportType::ImageDigest => &r.docker_image_digest,
                };
                (i.target.clone(), value.clone())
            })
            .collect();
        let kinds = dep.imports.iter().map(|i| format!("{}={}", type_name(i.kind), i.target)).collect();
        out.inputs[slot].dependencies.push((r.docker_image_name.clone(), kinds));
        out.dependencies.push(ResolvedDependency { slot, env, stage_id: r.docker_tag.clone() });
    }
    Ok(out)
}

/// werf.yaml's name of a dependency import type.
fn type_name(kind: DependencyImportType) -> &'static str {
    match kind {
        DependencyImportType::ImageName => "ImageName",
        DependencyImportType::ImageID => "ImageID",
        DependencyImportType::ImageRepo => "ImageRepo",
        DependencyImportType::ImageTag => "ImageTag",
        DependencyImportType::ImageDigest => "ImageDigest",
    }
}

/// werf.yaml's name of a user stage, as the report names it.
fn stage_name(stage: UserStage) -> &'static str {
    match stage {
        UserStage::BeforeInstall => "beforeInstall",
        UserStage::Install => "install",
        UserStage::BeforeSetup => "beforeSetup",
        UserStage::Setup => "setup",
    }
}

/// The source of an import: the image name, werf's source stage ID, and whether it is
/// external. A werf image's `stage` is that stage when the image has it, else its last
/// stage (werf's `findImageStage`).
fn source(done: &BuildReport, import: &Import) -> anyhow::Result<(String, String, bool)> {
    match &import.from {
        ImageRef::External(reference) => Ok((reference.clone(), format!("external-image:{reference}"), true)),
        ImageRef::Werf(name) => {
            let r = done.images.get(name).with_context(|| format!("image {name} was not built first"))?;
            let stage = import.stage.and_then(|s| r.stages.iter().find(|st| st.name == stage_name(s)));
            Ok(match stage {
                Some(st) => (st.docker_image_name.clone(), st.docker_tag.clone(), false),
                None => (r.docker_image_name.clone(), r.docker_tag.clone(), false),
            })
        }
    }
}

/// The source image: a stage of the local store, else pulled. An external reference
/// pulled before is used as it was pulled (a moved tag is not noticed, as werf's import
/// metadata is kept by the name, and as `from` does), so a cached build does not ask
/// the registry.
fn source_state(job: &Job<'_>, reference: &str, external: bool) -> anyhow::Result<ImageState> {
    if external {
        let parsed = slipway_storage::reference::Reference::parse(reference)
            .with_context(|| format!("parsing image reference {reference:?}"))?;
        if let Some(digest) = job.puller.store.image_ref(&parsed.to_string())? {
            return job.puller.local_image(&digest, Some(&parsed));
        }
    } else if let Some(state) = job.stages.local_image(reference)? {
        return Ok(state);
    }
    // Its layers come only if the checksum or the copy needs them (`with_tree`).
    Ok(job.puller.resolve_image(reference).with_context(|| format!("import source {reference}"))?.0)
}

/// The checksum of what `import` takes from `state`: werf's import metadata when the
/// stage storage has it for this source and these filters, else computed from the
/// source's layers and recorded there.
fn checksum(job: &Job<'_>, state: &ImageState, import: &Import, source_stage_id: &str) -> anyhow::Result<String> {
    let id = import_source_id(state, import);
    if let Some(m) = job.stages.import_metadata(&id)? {
        return Ok(m.checksum);
    }
    let checksum = with_tree(job, state, import, |tree| tree.checksum())?;
    let metadata = ImportMetadata {
        import_source_id: id,
        source_stage_id: source_stage_id.to_string(),
        checksum: checksum.clone(),
    };
    job.stages.put_import_metadata(&metadata)?;
    Ok(checksum)
}

/// The import source ID: werf keys import metadata by the source's content digest and
/// the import's `add`, `includePaths` and `excludePaths`. slipway's is over the source's
/// layer diff IDs (its content, exactly, for werf images and external references
/// alike) and a version of its own checksum, so werf's records (another checksum) and
/// slipway's never mix in a shared repository.
fn import_source_id(state: &ImageState, import: &Import) -> String {
    let mut h = Sha256::new();
    h.update(b"slipway-import-checksum-v1\n");
    for d in state.diff_ids() {
        h.update(format!("{d}\n"));
    }
    for (key, value) in [
        ("Add", import.add.clone()),
        ("IncludePaths", import.include_paths.join("///")),
        ("ExcludePaths", import.exclude_paths.join("///")),
    ] {
        h.update(format!("{key} {}:{value}\n", value.len()));
    }
    hex::encode(h.finalize())
}

/// Run `f` on what `import` takes from `state` (a read-only view of its layers).
fn with_tree<T>(
    job: &Job<'_>,
    state: &ImageState,
    import: &Import,
    f: impl FnOnce(&Tree) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    job.puller.ensure_layers(state)?;
    let view = job.run.rootfs.view(job.puller.store, state.diff_ids())?;
    let filter = PathFilter { include: import.include_paths.clone(), exclude: import.exclude_paths.clone() };
    let tree = Tree::walk(view.root(), &import.add, &filter)?;
    f(&tree)
}

/// Copy the files of `r` into `rootfs` (the dependencies stage being built).
pub fn copy_into(job: &Job<'_>, rootfs: &Rootfs, r: &Resolved<'_>) -> anyhow::Result<()> {
    let at = || format!("import at werf.yaml:{} from {}", r.import.line, r.reference);
    let state = source_state(job, &r.reference, r.external).with_context(at)?;
    let owner = resolve_owner(rootfs, r.import).with_context(at)?;
    with_tree(job, &state, r.import, |tree| tree.copy(rootfs, &r.import.to, owner, (0, 0))).with_context(at)
}

/// The labels werf writes on a dependencies stage for an import: the checksum and the
/// source stage, keyed by werf's import ID.
pub fn import_labels(r: &Resolved<'_>) -> [(String, String); 2] {
    let id = import_id(r.import);
    [
        (format!("{CHECKSUM_LABEL}{id}"), r.checksum.clone()),
        (format!("{SOURCE_STAGE_LABEL}{id}"), r.source_stage_id.clone()),
    ]
}

/// werf's label for a dependency: `werf-dependency-stage-id-<sha256(stage ID)>`.
pub fn dependency_label(d: &ResolvedDependency) -> (String, String) {
    (format!("{DEPENDENCY_LABEL}{}", sha256_hash(&[&d.stage_id])), d.stage_id.clone())
}

/// werf's `getImportID`: `util.Sha256Hash` of the import's parameters.
fn import_id(i: &Import) -> String {
    let (image, artifact) = match &i.from {
        ImageRef::Werf(n) | ImageRef::External(n) => (n.as_str(), ""),
    };
    let (before, after) = match i.relation {
        Relation::Before(a) => (anchor(a), ""),
        Relation::After(a) => ("", anchor(a)),
    };
    sha256_hash(&[
        "ImageName",
        image,
        "ArtifactName",
        artifact,
        "Stage",
        i.stage.map_or("", stage_name),
        "After",
        after,
        "Before",
        before,
        "Add",
        &i.add,
        "To",
        &i.to,
        "Group",
        i.group.as_deref().unwrap_or(""),
        "Owner",
        i.owner.as_deref().unwrap_or(""),
        "IncludePaths",
        &i.include_paths.join("///"),
        "ExcludePaths",
        &i.exclude_paths.join("///"),
    ])
}

fn anchor(a: Anchor) -> &'static str {
    match a {
        Anchor::Install => "install",
        Anchor::Setup => "setup",
    }
}

/// werf's `util.Sha256Hash`: sha256 of the arguments joined by `:::`.
fn sha256_hash(args: &[&str]) -> String {
    hex::encode(Sha256::digest(args.join(":::")))
}

/// `owner`/`group` of an import as ids, looked up in the stage rootfs' `/etc/passwd`
/// and `/etc/group` (names or numbers); `None` keeps the source's.
fn resolve_owner(rootfs: &Rootfs, import: &Import) -> anyhow::Result<(Option<u32>, Option<u32>)> {
    let (passwd, group) = (rootfs.read_file("/etc/passwd"), rootfs.read_file("/etc/group"));
    let resolve = |spec: &str| crate::frontend::dockerfile::users::resolve_chown(spec, &passwd, &group);
    let uid = import.owner.as_deref().map(|o| resolve(o).map(|(u, _)| u)).transpose()?;
    let gid = import.group.as_deref().map(|g| resolve(&format!("0:{g}")).map(|(_, g)| g)).transpose()?;
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `stage` names that stage of the source when it has one, else its last stage; a
    /// reference with a tag is external.
    #[test]
    fn the_source_is_the_named_stage_or_the_last() {
        use crate::engine::report::{ImageRecord, StageRecord};
        let stage = |name: &str, tag: &str| StageRecord {
            name: name.into(),
            docker_image_name: format!("p:{tag}"),
            docker_tag: tag.into(),
            ..Default::default()
        };
        let mut done = BuildReport::default();
        done.images.insert(
            "builder".into(),
            ImageRecord {
                docker_image_name: "p:last-2".into(),
                docker_tag: "last-2".into(),
                stages: vec![stage("from", "f-1"), stage("install", "i-1"), stage("setup", "last-2")],
                ..Default::default()
            },
        );
        let import = |from: ImageRef, stage: Option<UserStage>| Import {
            line: 1,
            from,
            relation: Relation::After(Anchor::Install),
            stage,
            add: "/out".into(),
            to: "/out".into(),
            owner: None,
            group: None,
            include_paths: vec![],
            exclude_paths: vec![],
        };
        let werf = ImageRef::Werf("builder".into());
        assert_eq!(source(&done, &import(werf.clone(), None)).unwrap(), ("p:last-2".into(), "last-2".into(), false));
        let install = import(werf.clone(), Some(UserStage::Install));
        assert_eq!(source(&done, &install).unwrap(), ("p:i-1".into(), "i-1".into(), false));
        let missing = import(werf, Some(UserStage::BeforeSetup));
        assert_eq!(source(&done, &missing).unwrap(), ("p:last-2".into(), "last-2".into(), false));
        let external = import(ImageRef::External("r/x:1".into()), None);
        assert_eq!(source(&done, &external).unwrap(), ("r/x:1".into(), "external-image:r/x:1".into(), true));
        let unknown = import(ImageRef::Werf("nothere".into()), None);
        assert_eq!(source(&done, &unknown).unwrap_err().to_string(), "image nothere was not built first");
        // werf's import ID over every parameter.
        assert_eq!(
            import_id(&install),
            sha256_hash(&[
                "ImageName",
                "builder",
                "ArtifactName",
                "",
                "Stage",
                "install",
                "After",
                "install",
                "Before",
                "",
                "Add",
                "/out",
                "To",
                "/out",
                "Group",
                "",
                "Owner",
                "",
                "IncludePaths",
                "",
                "ExcludePaths",
                ""
            ])
        );
    }

    /// If this fails, werf's import ID (the label keys) changed.
    #[test]
    fn import_id_is_werfs() {
        assert_eq!(sha256_hash(&["a", "b"]), hex::encode(Sha256::digest("a:::b")));
        assert_eq!(slot(Relation::After(Anchor::Install)), 1);
    }
}
