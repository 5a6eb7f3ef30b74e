//! The file-copying sections of a Stapel image: `git[]` mappings from a repository and
//! `import[]` from other images. Both copy `add` (a path in the source) to `to` (an
//! absolute path in the image), filtered by relative include/exclude globs.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::common::{Anchor, Ctx, Relation, relation, require_absolute, require_relative, str_or_seq};
use super::error::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitMapping {
    pub line: usize,
    pub source: GitSource,
    /// Path in the repository, absolute; default `/`.
    pub add: String,
    /// Absolute path in the image.
    pub to: String,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub include_paths: Vec<String>,
    pub exclude_paths: Vec<String>,
    pub stage_dependencies: StageDependencies,
    /// Fetch Git LFS objects instead of pointer files.
    pub lfs: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitSource {
    /// The project's own repository.
    Local,
    Remote {
        url: String,
        /// `None`: the remote's default branch.
        reference: Option<GitRef>,
        basic_auth: Option<BasicAuth>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    Branch(String),
    Tag(String),
    Commit(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: Option<String>,
    pub password: Option<PasswordSource>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    Env(String),
    File(String),
    Value(String),
}

/// Globs (relative to `add`) whose changes rebuild a user stage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StageDependencies {
    #[serde(default, deserialize_with = "str_or_seq")]
    pub install: Vec<String>,
    #[serde(default, deserialize_with = "str_or_seq")]
    pub before_setup: Vec<String>,
    #[serde(default, deserialize_with = "str_or_seq")]
    pub setup: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawGit {
    url: Option<String>,
    branch: Option<String>,
    tag: Option<String>,
    commit: Option<String>,
    basic_auth: Option<RawBasicAuth>,
    add: Option<String>,
    to: Option<String>,
    owner: Option<String>,
    group: Option<String>,
    #[serde(default, deserialize_with = "str_or_seq")]
    include_paths: Vec<String>,
    #[serde(default, deserialize_with = "str_or_seq")]
    exclude_paths: Vec<String>,
    stage_dependencies: Option<StageDependencies>,
    lfs: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasicAuth {
    username: Option<String>,
    password: Option<RawPassword>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPassword {
    env: Option<String>,
    src: Option<String>,
    value: Option<String>,
}

pub(crate) fn convert_git(ctx: &Ctx<'_>, raw: Vec<Spanned<RawGit>>) -> Result<Vec<GitMapping>, ConfigError> {
    raw.into_iter().map(|s| convert_one_git(ctx, ctx.line_of(&s), s.value)).collect()
}

fn convert_one_git(ctx: &Ctx<'_>, line: usize, r: RawGit) -> Result<GitMapping, ConfigError> {
    let refs: Vec<GitRef> = [r.branch.map(GitRef::Branch), r.tag.map(GitRef::Tag), r.commit.map(GitRef::Commit)]
        .into_iter()
        .flatten()
        .collect();
    if refs.len() > 1 {
        return Err(ctx.invalid(line, "git: specify only one of `branch`, `tag` and `commit`"));
    }
    let source = match r.url.filter(|u| !u.is_empty()) {
        None => {
            if !refs.is_empty() || r.basic_auth.is_some() {
                return Err(ctx.invalid(line, "git: `branch`, `tag`, `commit` and `basicAuth` need a remote `url`"));
            }
            GitSource::Local
        }
        Some(url) => GitSource::Remote {
            url,
            reference: refs.into_iter().next(),
            basic_auth: r.basic_auth.map(|a| convert_auth(ctx, line, a)).transpose()?,
        },
    };
    let Some(to) = r.to else {
        return Err(ctx.invalid(line, "git: `to` is required"));
    };
    require_absolute(ctx, line, "git: `to`", &to)?;
    let add = r.add.unwrap_or_else(|| "/".to_owned());
    require_absolute(ctx, line, "git: `add`", &add)?;
    require_relative(ctx, line, "git: `includePaths`", &r.include_paths)?;
    require_relative(ctx, line, "git: `excludePaths`", &r.exclude_paths)?;
    let stage_dependencies = r.stage_dependencies.unwrap_or_default();
    for globs in [&stage_dependencies.install, &stage_dependencies.before_setup, &stage_dependencies.setup] {
        require_relative(ctx, line, "git: `stageDependencies`", globs)?;
    }
    Ok(GitMapping {
        line,
        source,
        add,
        to,
        owner: r.owner,
        group: r.group,
        include_paths: r.include_paths,
        exclude_paths: r.exclude_paths,
        stage_dependencies,
        lfs: r.lfs.unwrap_or(false),
    })
}

fn convert_auth(ctx: &Ctx<'_>, line: usize, raw: RawBasicAuth) -> Result<BasicAuth, ConfigError> {
    let password = match raw.password {
        None => None,
        Some(p) => Some(match (p.env, p.src, p.value) {
            (Some(env), None, None) => PasswordSource::Env(env),
            (None, Some(src), None) => PasswordSource::File(src),
            (None, None, Some(value)) => PasswordSource::Value(value),
            _ => {
                return Err(ctx.invalid(line, "git: basicAuth.password needs exactly one of `env`, `src` and `value`"));
            }
        }),
    };
    Ok(BasicAuth { username: raw.username, password })
}

/// The four user stages, for `import[].stage` (the source image's stage to copy from).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UserStage {
    BeforeInstall,
    Install,
    BeforeSetup,
    Setup,
}

/// An image to read from: one of this werf.yaml, or an external reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    Werf(String),
    /// A registry reference with a tag or digest, e.g. `nginx:1.25`.
    External(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub line: usize,
    /// `from:` (or the deprecated `image:` / `artifact:`).
    pub from: ImageRef,
    pub relation: Relation,
    /// Stage of the source image to copy from; `None` = its last stage.
    pub stage: Option<UserStage>,
    /// Absolute path in the source image.
    pub add: String,
    /// Absolute path in this image; default `add`, trailing `/` removed.
    pub to: String,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub include_paths: Vec<String>,
    pub exclude_paths: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawImport {
    from: Option<String>,
    image: Option<String>,
    artifact: Option<String>,
    before: Option<Anchor>,
    after: Option<Anchor>,
    stage: Option<UserStage>,
    add: Option<String>,
    to: Option<String>,
    owner: Option<String>,
    group: Option<String>,
    #[serde(default, deserialize_with = "str_or_seq")]
    include_paths: Vec<String>,
    #[serde(default, deserialize_with = "str_or_seq")]
    exclude_paths: Vec<String>,
}

pub(crate) fn convert_imports(ctx: &Ctx<'_>, raw: Vec<Spanned<RawImport>>) -> Result<Vec<Import>, ConfigError> {
    raw.into_iter().map(|s| convert_one_import(ctx, ctx.line_of(&s), s.value)).collect()
}

fn convert_one_import(ctx: &Ctx<'_>, line: usize, r: RawImport) -> Result<Import, ConfigError> {
    let names: Vec<String> = [r.from, r.image, r.artifact].into_iter().flatten().collect();
    let from = match <[String; 1]>::try_from(names) {
        Ok([name]) if !name.is_empty() => ImageRef::Werf(name),
        Ok(_) => return Err(ctx.invalid(line, "import: the source image name must not be empty")),
        Err(names) if names.is_empty() => {
            return Err(ctx.invalid(line, "import: `from: IMAGE` is required"));
        }
        Err(_) => {
            return Err(ctx.invalid(line, "import: specify only one of `from`, `image` and `artifact`"));
        }
    };
    let relation = relation(ctx, line, "import", r.before, r.after)?;
    let Some(add) = r.add else {
        return Err(ctx.invalid(line, "import: `add` is required"));
    };
    require_absolute(ctx, line, "import: `add`", &add)?;
    let mut to = r.to.unwrap_or_else(|| add.clone());
    require_absolute(ctx, line, "import: `to`", &to)?;
    while to.len() > 1 && to.ends_with('/') {
        to.pop();
    }
    if add == "/" && r.include_paths.is_empty() {
        return Err(ctx.invalid(line, "import: `add: /` requires `includePaths`"));
    }
    require_relative(ctx, line, "import: `includePaths`", &r.include_paths)?;
    require_relative(ctx, line, "import: `excludePaths`", &r.exclude_paths)?;
    Ok(Import {
        line,
        from,
        relation,
        stage: r.stage,
        add,
        to,
        owner: r.owner,
        group: r.group,
        include_paths: r.include_paths,
        exclude_paths: r.exclude_paths,
    })
}

/// Whether a reference names a tag or a digest (`nginx:1.25`, `x@sha256:…`), which is how
/// werf tells an external import source from a misspelt image name.
pub(crate) fn has_tag_or_digest(reference: &str) -> bool {
    if reference.contains('@') {
        return true;
    }
    let last = reference.rsplit('/').next().unwrap_or(reference);
    last.contains(':')
}
