//! A Stapel image as a list of planned stages, each with its digest: werf's order
//! (`from → beforeInstall → gitArchive → install → beforeSetup → setup → gitCache →
//! gitLatestPatch → dockerInstructions → imageSpec`), a stage only when werf would make
//! one. Pure but for [`GitHistory`], which answers what stored git stages recorded.
//!
//! Each digest is a [`DigestInput`] with werf's inputs for that stage (WERF-SPEC §2,
//! `pkg/build/stage/*.go` GetDependencies), written as slipway's explicit parts, and the
//! digest of the stage before it.
//!
//! Git stages (werf's `nextStageDeps`): a stage after a git stage (`gitArchive`, the user
//! stages after it, `gitCache`) also covers the commit the previous stage recorded —
//! the stored stage's label when it is stored, else HEAD, at which it will be built. So
//! a `gitArchive` built at an older commit keeps the later digests stable, and
//! `gitLatestPatch` (the changes from that commit to HEAD) exists only when the mapped
//! files changed.

use super::docker::{self, Instructions};
use crate::config::{BaseImage, DockerInstructions, ImageSpec, Shell};
use crate::engine::digest::DigestInput;

/// What a Stapel image's stages need to be planned.
pub struct PlanInput<'a> {
    pub from: &'a BaseImage,
    /// For `from: <werf image>`: that image's last stage, as the build report names it
    /// (`DockerImageName`), and its ID (`DIGEST-TS`, the report's `DockerTag`).
    pub werf_base: Option<(&'a str, &'a str)>,
    /// The image's `cacheVersion`, else werf.yaml's `build.cacheVersion`.
    pub cache_version: Option<&'a str>,
    pub from_cache_version: Option<&'a str>,
    /// `fromLatest`: the base image's ID (its config digest) as the registry has it now,
    /// in the `from` digest as werf puts its `baseImageRepoId` there.
    pub base_latest_id: Option<&'a str>,
    /// werf.yaml `mount` of the image (in the `from` digest, as in werf).
    pub mounts: &'a [crate::config::Mount],
    pub shell: Option<&'a Shell>,
    /// werf.yaml `network` of the image (`default` when unset).
    pub network: &'a str,
    pub docker: Option<&'a DockerInstructions>,
    pub image_spec: Option<&'a ImageSpec>,
    /// The image's git mappings, if it has any.
    pub git: Option<GitPlan<'a>>,
    /// What each of werf's dependencies stages covers (`import` and `dependencies`), in
    /// [`DEPENDENCIES_STAGES`] order; an empty one is no stage.
    pub dependencies: &'a [DependenciesInput; 4],
}

/// werf's dependencies stages in werf's order, where `import` and `dependencies` with
/// `before: install`, `after: install`, `before: setup` and `after: setup` go.
pub const DEPENDENCIES_STAGES: [&str; 4] =
    ["dependenciesBeforeInstall", "dependenciesAfterInstall", "dependenciesBeforeSetup", "dependenciesAfterSetup"];

/// What a dependencies stage covers (werf's `DependenciesStage.GetDependencies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DependenciesInput {
    /// Per import, in werf.yaml order: the checksum of the files it takes, `to`, `group`,
    /// `owner`.
    pub imports: Vec<ImportInput>,
    /// Per dependency, in werf.yaml order: the image's last stage (its report
    /// `DockerImageName`), and its imports as `TYPE=targetEnv`.
    pub dependencies: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportInput {
    pub checksum: String,
    pub to: String,
    pub group: String,
    pub owner: String,
}

impl DependenciesInput {
    #[cfg(test)]
    pub const EMPTY: DependenciesInput = DependenciesInput { imports: Vec::new(), dependencies: Vec::new() };

    pub fn is_empty(&self) -> bool {
        self.imports.is_empty() && self.dependencies.is_empty()
    }
}

/// What the git stages of an image are planned from.
pub struct GitPlan<'a> {
    /// Every mapping's werf `paramshash`, sorted (they name the mappings and cover
    /// their parameters).
    pub mappings: Vec<&'a str>,
    /// The checksum of the files each user stage depends on (`stageDependencies`):
    /// `install`, `beforeSetup`, `setup`.
    pub stage_dependencies: [Option<String>; 3],
    /// The current commit of the mappings' repositories (`history::encode`: HEAD alone
    /// when they all read the project's own repository). "A commit" below is such a
    /// string.
    pub head: &'a str,
    /// No `gitCache`/`gitLatestPatch` (werf.yaml `disableGitAfterPatch`).
    pub disable_git_after_patch: bool,
    pub history: &'a dyn GitHistory,
}

/// What the planner asks about git history and stored stages.
pub trait GitHistory {
    /// The commit recorded by the stage of the git stage `digest` that will be used (one
    /// whose commit is an ancestor of HEAD); `None` when none is stored.
    fn recorded(&self, digest: &str) -> anyhow::Result<Option<String>>;
    /// The changes of every mapping from commit `from` to the current one, each in its
    /// own repository: `None` when there are none, else their digest and the bytes they
    /// write.
    fn patch(&self, from: &str) -> anyhow::Result<Option<(String, u64)>>;
}

/// werf's threshold for a `gitCache` stage: a patch of at least 1 MiB.
pub const GIT_CACHE_STEP: u64 = 1024 * 1024;

/// The commit a git stage of `digest` has: the one its stored stage recorded, else HEAD,
/// at which it will be built.
fn commit_of(g: &GitPlan<'_>, digest: &str) -> anyhow::Result<String> {
    Ok(g.history.recorded(digest)?.unwrap_or_else(|| g.head.to_string()))
}

/// The image a `from` stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    /// A registry reference as written (pulled as `:latest` when it has no tag).
    Image(String),
    /// Another werf image's last stage: its name (`PROJECT:DIGEST-TS` or
    /// `REPO:DIGEST-TS`) and its ID (`DIGEST-TS`).
    Werf {
        reference: String,
        stage_id: String,
    },
}

/// What a stage does.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    From(Base),
    /// The commands of a `shell` stage, run as one script (none: the stage exists for
    /// its cache version only, and runs nothing, as in werf).
    Shell(Vec<String>),
    /// A `shell` stage of an image with git mappings: the changes from the commit the
    /// previous stage recorded to HEAD are applied first (werf's user stage with git
    /// patch).
    GitShell(Vec<String>),
    /// Every mapping's files at HEAD.
    GitArchive,
    /// The changes from the commit the previous stage recorded to HEAD (`gitCache`,
    /// `gitLatestPatch`).
    GitPatch,
    Docker(Instructions),
    ImageSpec,
    /// One of werf's dependencies stages: the files of its imports copied in, the
    /// variables of its dependencies set. `slot` indexes [`DEPENDENCIES_STAGES`];
    /// `after_git`: the stage follows `gitArchive` (and carries its commit).
    Dependencies {
        slot: usize,
        after_git: bool,
    },
}

/// One stage of the image: werf's name (log and build report), digest, what it does.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStage {
    pub name: &'static str,
    pub digest: String,
    pub step: Step,
}

/// Plan the image's stages.
pub fn plan(input: &PlanInput<'_>) -> anyhow::Result<Vec<PlannedStage>> {
    let (base, from_digest) = from_stage(input)?;
    let mut stages = vec![PlannedStage { name: "from", digest: from_digest, step: Step::From(base) }];
    let git = input.git.as_ref();
    // The commit the last git stage recorded (none before gitArchive).
    let mut commit: Option<String> = None;
    let empty = Shell::default();
    let shell = input.shell.unwrap_or(&empty);
    for (k, (name, commands, stage_version)) in user_stages(shell).into_iter().enumerate() {
        // werf's order: each dependencies stage but the last comes before a user stage
        // (dependenciesBeforeInstall even before gitArchive); dependenciesAfterSetup
        // after the loop.
        if let Some(slot) = k.checked_sub(1) {
            dependencies_stage(input, slot, &mut stages, &mut commit)?;
        }
        if let (Some(g), "install") = (git, name) {
            let prev = &stages.last().expect("from comes first").digest;
            let digest = DigestInput::new("stapel-git-archive")
                .str("prev", prev)
                .list("mappings", g.mappings.iter().copied())
                .finish();
            commit = Some(commit_of(g, &digest)?);
            stages.push(PlannedStage { name: "gitArchive", digest, step: Step::GitArchive });
        }
        // werf's rule (`builder/shell.go`): a stage exists when it has commands or
        // any cache version, the shell's own or the stage's.
        if commands.is_empty() && stage_version.is_none() && shell.cache_version.is_none() {
            continue;
        }
        let prev = &stages.last().expect("from comes first").digest;
        let mut digest = DigestInput::new("stapel-shell");
        digest
            .str("stage", name)
            .str("prev", prev)
            .list("commands", commands.iter().map(String::as_str))
            .opt("stage-cache-version", stage_version)
            .opt("shell-cache-version", shell.cache_version.as_deref())
            .str("network", input.network);
        let step = match (git, &commit) {
            (Some(g), Some(c)) => {
                let deps = k.checked_sub(1).and_then(|i| g.stage_dependencies[i].as_deref());
                let digest = digest.opt("stage-dependencies", deps).str("prev-commit", c).finish();
                commit = Some(commit_of(g, &digest)?);
                stages.push(PlannedStage { name, digest, step: Step::GitShell(commands.to_vec()) });
                continue;
            }
            _ => Step::Shell(commands.to_vec()),
        };
        stages.push(PlannedStage { name, digest: digest.finish(), step });
    }
    dependencies_stage(input, 3, &mut stages, &mut commit)?;
    if let (Some(g), Some(mut c)) = (git, commit)
        && !g.disable_git_after_patch
    {
        let mut patch = if c == g.head { None } else { g.history.patch(&c)? };
        if let Some((_, size)) = &patch
            && *size >= GIT_CACHE_STEP
        {
            let prev = &stages.last().expect("from comes first").digest;
            let digest = DigestInput::new("stapel-git-cache")
                .str("prev", prev)
                .str("prev-commit", &c)
                .num("patch-mib", size / GIT_CACHE_STEP)
                .finish();
            c = commit_of(g, &digest)?;
            stages.push(PlannedStage { name: "gitCache", digest, step: Step::GitPatch });
            patch = if c == g.head { None } else { g.history.patch(&c)? };
        }
        if let Some((patch, _)) = patch {
            let prev = &stages.last().expect("from comes first").digest;
            let digest = DigestInput::new("stapel-git-latest-patch")
                .str("prev", prev)
                .str("prev-commit", &c)
                .str("patch", &patch)
                .finish();
            stages.push(PlannedStage { name: "gitLatestPatch", digest, step: Step::GitPatch });
        }
    }
    if let Some(d) = input.docker {
        let prev = &stages.last().expect("from comes first").digest;
        let digest = docker::stage_digest(prev, d);
        stages.push(PlannedStage { name: "dockerInstructions", digest, step: Step::Docker(docker::prepare(d)?) });
    }
    if let Some(spec) = input.image_spec {
        let prev = &stages.last().expect("from comes first").digest;
        let digest = crate::frontend::image_spec::stage_digest(prev, spec);
        stages.push(PlannedStage { name: "imageSpec", digest, step: Step::ImageSpec });
    }
    Ok(stages)
}

/// The dependencies stage `slot` when it has imports or dependencies: werf's inputs
/// (`DependenciesStage.GetDependencies`) are, per import, the checksum of the files it
/// takes, `to`, `group` and `owner`, and per dependency the image's last stage and
/// every import's type and variable; after `gitArchive` also the commit the previous
/// stage recorded.
fn dependencies_stage(
    input: &PlanInput<'_>,
    slot: usize,
    stages: &mut Vec<PlannedStage>,
    commit: &mut Option<String>,
) -> anyhow::Result<()> {
    let deps = &input.dependencies[slot];
    if deps.is_empty() {
        return Ok(());
    }
    let name = DEPENDENCIES_STAGES[slot];
    let prev = &stages.last().expect("from comes first").digest;
    let mut digest = DigestInput::new("stapel-dependencies");
    digest.str("stage", name).str("prev", prev);
    for i in &deps.imports {
        digest
            .str("import-checksum", &i.checksum)
            .str("import-to", &i.to)
            .str("import-group", &i.group)
            .str("import-owner", &i.owner);
    }
    for (image, imports) in &deps.dependencies {
        digest.str("dependency", image).list("dependency-imports", imports.iter().map(String::as_str));
    }
    let after_git = match (&input.git, commit.as_ref()) {
        (Some(g), Some(c)) => {
            let d = digest.str("prev-commit", c).finish();
            *commit = Some(commit_of(g, &d)?);
            stages.push(PlannedStage { name, digest: d, step: Step::Dependencies { slot, after_git: true } });
            return Ok(());
        }
        _ => false,
    };
    stages.push(PlannedStage { name, digest: digest.finish(), step: Step::Dependencies { slot, after_git } });
    Ok(())
}

/// The `from` stage: werf's inputs are the cache versions and the base, which is
/// `scratch`, the reference as written (a change behind an external tag is not
/// noticed, as in werf), or the other werf image's last stage digest (werf: its
/// content digest).
fn from_stage(input: &PlanInput<'_>) -> anyhow::Result<(Base, String)> {
    let mut digest = DigestInput::new("stapel-from");
    digest
        .str("werf-cache-version", input.cache_version.unwrap_or(""))
        .opt("from-cache-version", input.from_cache_version);
    if let Some(id) = input.base_latest_id {
        digest.str("base-image-latest-id", id);
    }
    if !input.mounts.is_empty() {
        let parts = super::mount::digest_parts(input.mounts);
        digest.list("mounts", parts.iter().map(String::as_str));
    }
    let base = match input.from {
        BaseImage::Scratch => {
            digest.str("base", "scratch");
            Base::Scratch
        }
        BaseImage::External(reference) => {
            digest.str("base", "image").str("base-image", reference);
            Base::Image(reference.clone())
        }
        BaseImage::Werf(name) => {
            let (reference, stage_id) =
                input.werf_base.ok_or_else(|| anyhow::anyhow!("image {name} was not built before this one"))?;
            let stage_digest = stage_id.split_once('-').map_or(stage_id, |(d, _)| d);
            digest.str("base", "werf-image").str("base-stage", stage_digest);
            Base::Werf { reference: reference.to_string(), stage_id: stage_id.to_string() }
        }
    };
    Ok((base, digest.finish()))
}

/// The user stages in werf's order: name, commands, the stage's own cache version
/// (`installCacheVersion`, ...).
fn user_stages(shell: &Shell) -> [(&'static str, &[String], Option<&str>); 4] {
    [
        ("beforeInstall", &shell.before_install, shell.before_install_cache_version.as_deref()),
        ("install", &shell.install, shell.install_cache_version.as_deref()),
        ("beforeSetup", &shell.before_setup, shell.before_setup_cache_version.as_deref()),
        ("setup", &shell.setup, shell.setup_cache_version.as_deref()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(from: &'a BaseImage, shell: Option<&'a Shell>) -> PlanInput<'a> {
        PlanInput {
            from,
            werf_base: None,
            cache_version: None,
            from_cache_version: None,
            base_latest_id: None,
            mounts: &[],
            shell,
            network: "default",
            docker: None,
            image_spec: None,
            git: None,
            dependencies: &NO_DEPENDENCIES,
        }
    }

    static NO_DEPENDENCIES: [DependenciesInput; 4] = [const { DependenciesInput::EMPTY }; 4];

    fn names(stages: &[PlannedStage]) -> Vec<&str> {
        stages.iter().map(|s| s.name).collect()
    }

    fn digests(stages: &[PlannedStage]) -> Vec<(&str, &str)> {
        stages.iter().map(|s| (s.name, s.digest.as_str())).collect()
    }

    fn shell() -> Shell {
        Shell {
            install: vec!["echo install > /install.txt".into()],
            setup: vec!["echo setup > /setup.txt".into(), "date".into()],
            ..Default::default()
        }
    }

    /// If this fails, a Stapel digest's inputs or encoding changed: every stored Stapel
    /// stage stops matching. Bump `CACHE_VERSION` deliberately and update the pins.
    #[test]
    fn golden_digests() {
        let from = BaseImage::External("registry.local/base/busybox".into());
        let shell = shell();
        let docker = DockerInstructions {
            env: [("A".to_string(), "1".to_string())].into(),
            cmd: Some(crate::config::Command::Exec(vec!["/bin/app".into()])),
            ..Default::default()
        };
        let mut i = input(&from, Some(&shell));
        i.docker = Some(&docker);
        let stages = plan(&i).unwrap();
        // The from stage byte for byte, as docs/ARCHITECTURE.md §7 lists its parts.
        let bytes = "cache-version:::=9:slipway-2\nkind:::=11:stapel-from\nwerf-cache-version:::=0:\n\
                     base:::=5:image\nbase-image:::=27:registry.local/base/busybox\n";
        assert_eq!(stages[0].digest, hex::encode(<sha3::Sha3_224 as sha3::Digest>::digest(bytes)));
        assert_eq!(
            digests(&stages),
            [
                ("from", "382ae5f7fd18c862596748c8783206303627fe32f3107cb639a8b5df"),
                ("install", "42e627841d44a8a7dcb5ca3bc58b781598542fd35905994a3904b077"),
                ("setup", "b8da68d9856eccb43a4f9f239af8a9744c53db3c9a24643cb0a770f8"),
                ("dockerInstructions", "6719e24e9c9e36a2c65583c2aa9ffd8c7d8104da35216b9cb85b7224"),
            ]
        );
        let werf = BaseImage::Werf("base".into());
        let mut i = input(&werf, None);
        i.werf_base = Some(("demo:0123-1", "0123-1"));
        i.cache_version = Some("2");
        i.from_cache_version = Some("x");
        assert_eq!(digests(&plan(&i).unwrap()), [("from", "6a034036fc938804a3dc41f2f44145f1dd47ad4bbdaa0d0e97e69b76")]);
        assert_eq!(
            digests(&plan(&input(&BaseImage::Scratch, None)).unwrap()),
            [("from", "d4898322c5ff667a5a7b76160effa7c4f7caf8cf6c028b6a9dbb6cd5")]
        );
    }

    #[test]
    fn stages_exist_only_when_configured() {
        let from = BaseImage::Scratch;
        assert_eq!(names(&plan(&input(&from, None)).unwrap()), ["from"]);
        assert_eq!(names(&plan(&input(&from, Some(&shell()))).unwrap()), ["from", "install", "setup"]);
        // A stage's own cache version makes it exist without commands; the shell's
        // cache version makes every user stage exist (werf's `builder/shell.go`).
        let versioned = Shell { before_setup_cache_version: Some("1".into()), ..shell() };
        assert_eq!(names(&plan(&input(&from, Some(&versioned))).unwrap()), ["from", "install", "beforeSetup", "setup"]);
        let all = Shell { cache_version: Some("1".into()), ..Default::default() };
        let stages = plan(&input(&from, Some(&all))).unwrap();
        assert_eq!(names(&stages), ["from", "beforeInstall", "install", "beforeSetup", "setup"]);
        assert_eq!(stages[1].step, Step::Shell(vec![]));
        let spec = ImageSpec::default();
        let docker = DockerInstructions::default();
        let mut i = input(&from, None);
        i.docker = Some(&docker);
        i.image_spec = Some(&spec);
        assert_eq!(names(&plan(&i).unwrap()), ["from", "dockerInstructions", "imageSpec"]);
    }

    /// What each input invalidates: the stage it belongs to and every later one.
    #[test]
    fn inputs_invalidate_their_stage_and_later_ones() {
        let from = BaseImage::External("busybox".into());
        let base = shell();
        let before = plan(&input(&from, Some(&base))).unwrap();
        let changed = |shell: &Shell, f: &dyn Fn(&mut PlanInput<'_>)| {
            let mut i = input(&from, Some(shell));
            f(&mut i);
            let after = plan(&i).unwrap();
            before.iter().zip(&after).map(|(a, b)| a.digest != b.digest).collect::<Vec<_>>()
        };
        let setup = Shell { setup: vec!["echo other".into()], ..shell() };
        assert_eq!(changed(&setup, &|_| {}), [false, false, true]);
        let install_version = Shell { install_cache_version: Some("2".into()), ..shell() };
        assert_eq!(changed(&install_version, &|_| {}), [false, true, true]);
        assert_eq!(changed(&base, &|i| i.from_cache_version = Some("1")), [true, true, true]);
        assert_eq!(changed(&base, &|i| i.cache_version = Some("1")), [true, true, true]);
        assert_eq!(changed(&base, &|i| i.network = "none"), [false, true, true]);
        let shell_version = Shell { cache_version: Some("1".into()), ..shell() };
        let stages = plan(&input(&from, Some(&shell_version))).unwrap();
        assert_ne!(stages[2].digest, before[1].digest, "install covers shell.cacheVersion");
    }

    /// Stored stages by digest (their recorded commit), and a patch per commit. A commit
    /// named `other…` is another branch's: the engine's selector does not pick it.
    struct FakeHistory {
        stored: std::collections::HashMap<String, String>,
        patches: std::collections::HashMap<String, (String, u64)>,
    }

    impl GitHistory for FakeHistory {
        fn recorded(&self, digest: &str) -> anyhow::Result<Option<String>> {
            Ok(self.stored.get(digest).filter(|c| !c.starts_with("other")).cloned())
        }
        fn patch(&self, from: &str) -> anyhow::Result<Option<(String, u64)>> {
            Ok(self.patches.get(from).cloned())
        }
    }

    fn git_plan<'a>(history: &'a FakeHistory, head: &'a str, install_deps: Option<&str>) -> GitPlan<'a> {
        GitPlan {
            mappings: vec!["p1"],
            stage_dependencies: [install_deps.map(str::to_string), None, None],
            head,
            disable_git_after_patch: false,
            history,
        }
    }

    /// If this fails, a git stage digest's inputs or encoding changed (see
    /// `golden_digests`). The second gitArchive (another branch's stage stored) was
    /// `bb8ec1d4…`, a derived `stapel-git-elsewhere` digest, until the engine selected
    /// git stages by ancestry: it is now the plain digest, as in werf.
    #[test]
    fn golden_git_digests() {
        let from = BaseImage::Scratch;
        let shell = shell();
        let (head, old) = ("c".repeat(40), "b".repeat(40));
        let none = FakeHistory { stored: Default::default(), patches: Default::default() };
        let mut i = input(&from, Some(&shell));
        i.git = Some(git_plan(&none, &old, Some("deps")));
        let built = plan(&i).unwrap();
        let stored = built.iter().skip(1).map(|s| (s.digest.clone(), old.clone())).collect();
        let patched = FakeHistory { stored, patches: [(old.clone(), ("p".to_string(), GIT_CACHE_STEP + 1))].into() };
        let mut i = input(&from, Some(&shell));
        i.git = Some(git_plan(&patched, &head, Some("deps")));
        let second = plan(&i).unwrap();
        let mut all = digests(&second);
        let stored = built.iter().skip(1).map(|s| (s.digest.clone(), "other".to_string())).collect();
        let elsewhere = FakeHistory { stored, patches: Default::default() };
        let mut i = input(&from, Some(&shell));
        i.git = Some(git_plan(&elsewhere, &head, None));
        let branch = plan(&i).unwrap();
        all.push(digests(&branch)[1]);
        let stored = built.iter().skip(1).map(|s| (s.digest.clone(), old.clone())).collect();
        let small = FakeHistory { stored, patches: [(old.clone(), ("p".to_string(), 1))].into() };
        let mut i = input(&from, Some(&shell));
        i.git = Some(git_plan(&small, &head, Some("deps")));
        let latest = plan(&i).unwrap();
        all.push(digests(&latest)[4]);
        assert_eq!(
            all,
            [
                ("from", "d4898322c5ff667a5a7b76160effa7c4f7caf8cf6c028b6a9dbb6cd5"),
                ("gitArchive", "ce1dd76472de83bc7dc81a04cc7e7f755e36a3fa30185cfa098a8f31"),
                ("install", "08b14fc262eb7e55694f76f6a60981541b409664ba8c9e5786e417f8"),
                ("setup", "c44849be5cb8e0c2c865744b48db5222307e12f643bd580003c52113"),
                ("gitCache", "0221c0e0cc51b4b92920607ae13063896da4c3d7ad4e7677fec31de5"),
                ("gitArchive", "ce1dd76472de83bc7dc81a04cc7e7f755e36a3fa30185cfa098a8f31"),
                ("gitLatestPatch", "fe1ad23d7b0578c459ddbd44f36f48155095811e4061a4577588625d"),
            ]
        );
        // gitArchive byte for byte, as docs/ARCHITECTURE.md §7 lists its parts.
        let bytes = format!(
            "cache-version:::=9:slipway-2\nkind:::=18:stapel-git-archive\nprev:::=56:{}\nmappings:::[1]2:p1\n",
            built[0].digest
        );
        assert_eq!(built[1].digest, hex::encode(<sha3::Sha3_224 as sha3::Digest>::digest(bytes)));
    }

    #[test]
    fn git_stages_follow_the_recorded_commits() {
        let from = BaseImage::Scratch;
        let shell = shell();
        let none = FakeHistory { stored: Default::default(), patches: Default::default() };
        let mut i = input(&from, Some(&shell));
        i.git = Some(git_plan(&none, "c1", None));
        let first = plan(&i).unwrap();
        assert_eq!(names(&first), ["from", "gitArchive", "install", "setup"]);
        assert_eq!(first[1].step, Step::GitArchive);
        assert!(matches!(first[2].step, Step::GitShell(_)));
        // The same config at a later commit, nothing stored: the same gitArchive (it
        // covers the mappings, not the commit); what follows it is built at HEAD.
        let mut i = input(&from, Some(&shell));
        i.git = Some(git_plan(&none, "c2", None));
        let later = plan(&i).unwrap();
        assert_eq!(digests(&later)[..2], digests(&first)[..2]);
        assert_ne!(later[2].digest, first[2].digest);
        // Everything stored at c1, HEAD c2 with changes: a gitLatestPatch stage.
        let stored = first.iter().skip(1).map(|s| (s.digest.clone(), "c1".to_string())).collect();
        let small = FakeHistory { stored, patches: [("c1".to_string(), ("p".to_string(), 10))].into() };
        let mut i = input(&from, Some(&shell));
        i.git = Some(git_plan(&small, "c2", None));
        let second = plan(&i).unwrap();
        assert_eq!(names(&second), ["from", "gitArchive", "install", "setup", "gitLatestPatch"]);
        assert_eq!(digests(&second)[..4], digests(&first)[..]);
        assert_eq!(second[4].step, Step::GitPatch);
        // `disableGitAfterPatch`: no patch stages.
        let mut i = input(&from, Some(&shell));
        i.git = Some(GitPlan { disable_git_after_patch: true, ..git_plan(&small, "c2", None) });
        assert_eq!(names(&plan(&i).unwrap()), ["from", "gitArchive", "install", "setup"]);
        // A big patch: gitCache first (built at HEAD, so no gitLatestPatch after it).
        let stored = first.iter().skip(1).map(|s| (s.digest.clone(), "c1".to_string())).collect();
        let big = FakeHistory { stored, patches: [("c1".to_string(), ("p".to_string(), 3 * GIT_CACHE_STEP))].into() };
        let mut i = input(&from, Some(&shell));
        i.git = Some(git_plan(&big, "c2", None));
        assert_eq!(names(&plan(&i).unwrap()), ["from", "gitArchive", "install", "setup", "gitCache"]);
        // A change in install's stage dependencies changes install and later stages only.
        let mut i = input(&from, Some(&shell));
        i.git = Some(git_plan(&none, "c1", Some("deps")));
        let changed = plan(&i).unwrap();
        let differs: Vec<bool> = first.iter().zip(&changed).map(|(a, b)| a.digest != b.digest).collect();
        assert_eq!(differs, [false, false, true, true]);
        // Stages another branch stored share the digests (the engine's selector keeps
        // them apart); what follows them is planned from HEAD.
        let stored = first.iter().skip(1).map(|s| (s.digest.clone(), "other-branch".to_string())).collect();
        let other = FakeHistory { stored, patches: Default::default() };
        let mut i = input(&from, Some(&shell));
        i.git = Some(git_plan(&other, "c1", None));
        assert_eq!(digests(&plan(&i).unwrap()), digests(&first));
        // An image without commands still gets its gitArchive.
        let mut i = input(&from, None);
        i.git = Some(git_plan(&none, "c1", None));
        assert_eq!(names(&plan(&i).unwrap()), ["from", "gitArchive"]);
    }

    fn deps() -> [DependenciesInput; 4] {
        let import = ImportInput { checksum: "c1".into(), to: "/app".into(), group: "".into(), owner: "app".into() };
        [
            DependenciesInput {
                dependencies: vec![("demo:d-1".into(), vec!["ImageName=BASE".into()])],
                ..Default::default()
            },
            DependenciesInput { imports: vec![import], ..Default::default() },
            DependenciesInput::default(),
            DependenciesInput::default(),
        ]
    }

    /// werf's order of the dependencies stages, and their digests pinned (see
    /// `golden_digests`).
    #[test]
    fn golden_dependencies_digests() {
        let from = BaseImage::Scratch;
        let shell = shell();
        let deps = deps();
        let mut i = input(&from, Some(&shell));
        i.dependencies = &deps;
        let stages = plan(&i).unwrap();
        assert_eq!(
            digests(&stages),
            [
                ("from", "d4898322c5ff667a5a7b76160effa7c4f7caf8cf6c028b6a9dbb6cd5"),
                ("dependenciesBeforeInstall", "62e9cb8226ca78d3c5525c2ce6f39c73e4b81c772badade14e082c9d"),
                ("install", "983cb4c59bc65ee25003504a91d5b4811039c3a984798d4fd3b218b8"),
                ("dependenciesAfterInstall", "6751a02aa829ab4542602de714ebbf7685cf4b45ad8cdd5df288ecfe"),
                ("setup", "43843be73f5e212657adc42a7795a46e8769ba8d77ec0f9044dd784a"),
            ]
        );
        assert_eq!(stages[3].step, Step::Dependencies { slot: 1, after_git: false });
        // The dependencies stage byte for byte, as docs/ARCHITECTURE.md §7 lists its parts.
        let bytes = format!(
            "cache-version:::=9:slipway-2\nkind:::=19:stapel-dependencies\nstage:::=24:dependenciesAfterInstall\n\
             prev:::=56:{}\nimport-checksum:::=2:c1\nimport-to:::=4:/app\nimport-group:::=0:\nimport-owner:::=3:app\n",
            stages[2].digest
        );
        assert_eq!(stages[3].digest, hex::encode(<sha3::Sha3_224 as sha3::Digest>::digest(bytes)));
        // Each input invalidates its stage and the later ones.
        let mut changed = deps.clone();
        changed[1].imports[0].checksum = "c2".into();
        let mut i = input(&from, Some(&shell));
        i.dependencies = &changed;
        let after = plan(&i).unwrap();
        let differs: Vec<bool> = stages.iter().zip(&after).map(|(a, b)| a.digest != b.digest).collect();
        assert_eq!(differs, [false, false, false, true, true]);
        // With git mappings: dependenciesBeforeInstall comes before gitArchive, and the
        // stages after gitArchive cover the recorded commit and select by ancestry.
        let none = FakeHistory { stored: Default::default(), patches: Default::default() };
        let mut i = input(&from, Some(&shell));
        i.dependencies = &deps;
        i.git = Some(git_plan(&none, "c1", None));
        let git = plan(&i).unwrap();
        assert_eq!(
            names(&git),
            ["from", "dependenciesBeforeInstall", "gitArchive", "install", "dependenciesAfterInstall", "setup"]
        );
        assert_eq!(git[1].step, Step::Dependencies { slot: 0, after_git: false });
        assert_eq!(git[4].step, Step::Dependencies { slot: 1, after_git: true });
        let mut i = input(&from, Some(&shell));
        i.dependencies = &deps;
        i.git = Some(git_plan(&none, "c2", None));
        assert_ne!(plan(&i).unwrap()[4].digest, git[4].digest);
    }

    #[test]
    fn werf_base_must_be_built_first() {
        let werf = BaseImage::Werf("base".into());
        let err = plan(&input(&werf, None)).unwrap_err().to_string();
        assert_eq!(err, "image base was not built before this one");
    }
}
