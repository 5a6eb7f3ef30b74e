//! Planning a Dockerfile image: which Dockerfile stages are needed, and the digest of
//! every step, computed up front from the Dockerfile, the build args and the build
//! context — never from the images themselves — so a fully cached build needs no base
//! image, no layer and no network.
//!
//! A step's digest covers the previous step's digest, the instruction as written, the
//! values of the ARGs in scope, for COPY/ADD the content of the sources (git blob ids)
//! or the digest of the stage copied from, and for RUN what its mounts read and its
//! network. ENV values are covered through the instruction text and the chain. Every
//! input is a named part of a [`DigestInput`]; `docs/ARCHITECTURE.md` §7 lists them.

use super::download::{self, Downloads};
use crate::context::BuildContext;
use crate::engine::digest::DigestInput;
use crate::frontend::dockerfile::syntax::{self, Dockerfile, Instruction, MetaArgs, StageRef, Step};
use anyhow::{Context, bail};
use std::collections::BTreeMap;

/// What a Dockerfile stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    Image(String),
    Stage(usize),
}

#[derive(Debug, Clone)]
pub struct PlannedStep {
    /// The stage name in logs and reports, e.g. `3-RUN`.
    pub name: String,
    /// `None` for the FROM step.
    pub step: Option<Step>,
    pub digest: String,
    /// ARG values in scope after this step.
    pub args: Vec<(String, String)>,
    /// ARGs in scope whose default names a variable this Dockerfile does not define
    /// (`ARG A=$PATH`): the value in `args` is only what planning knew; the step
    /// expands the default again against the image's env (see [`DeferredArg`]).
    pub deferred: Vec<DeferredArg>,
}

/// An ARG default that needs the image's env, which planning never reads.
#[derive(Debug, Clone)]
pub struct DeferredArg {
    pub name: String,
    /// The default as written.
    pub default: String,
    /// The ARGs in scope before this one, as planned.
    pub args_before: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct PlannedStage {
    pub index: usize,
    pub base: Base,
    /// The FROM step first.
    pub steps: Vec<PlannedStep>,
}

impl PlannedStage {
    pub fn last_digest(&self) -> &str {
        &self.steps.last().expect("a stage has a FROM step").digest
    }
}

pub struct Plan {
    pub dockerfile: Dockerfile,
    /// Needed stages by index.
    pub stages: BTreeMap<usize, PlannedStage>,
    pub target: usize,
    /// werf.yaml `network` of the image: the network of RUN steps without `--network`.
    pub default_network: Option<String>,
    /// werf.yaml `addHost` (name, address): more `/etc/hosts` entries for RUN steps.
    pub add_hosts: Vec<(String, String)>,
    /// `ADD <URL>` contents, downloaded while planning (their checksums are in the
    /// digests) or when the step runs (`--checksum` given).
    pub downloads: Downloads,
}

pub struct PlanInput<'a> {
    pub target: Option<&'a str>,
    pub build_args: &'a BTreeMap<String, String>,
    pub context: &'a BuildContext,
    pub cache_version: Option<&'a str>,
    /// werf.yaml `network` (`default`, `host` or `none`).
    pub network: Option<&'a str>,
    /// Where `ADD <URL>` downloads go (a scratch directory of the build).
    pub download_dir: &'a std::path::Path,
    /// werf.yaml `addHost` entries (`host:ip`), as written.
    pub add_host: &'a [String],
}

pub fn plan(df: Dockerfile, input: &PlanInput<'_>) -> anyhow::Result<Plan> {
    let target = df.stage_by_target(input.target)?;
    let mut builtins = MetaArgs::new();
    for (k, v) in [
        ("TARGETPLATFORM", "linux/amd64"),
        ("TARGETOS", "linux"),
        ("TARGETARCH", "amd64"),
        ("BUILDPLATFORM", "linux/amd64"),
        ("BUILDOS", "linux"),
        ("BUILDARCH", "amd64"),
    ] {
        builtins.define(k, Some(v.to_string()));
    }
    let meta = df.resolve_meta_args(builtins, &|n| input.build_args.get(n).cloned())?;
    let order = df.build_order(target, &meta)?;
    let mut stages: BTreeMap<usize, PlannedStage> = BTreeMap::new();
    let downloads = Downloads::new(input.download_dir.to_path_buf());
    let add_hosts = input.add_host.iter().map(|h| parse_add_host(h)).collect::<anyhow::Result<Vec<_>>>()?;
    for &i in &order {
        let planned = plan_stage(&df, i, &meta, input, &stages, &downloads)?;
        stages.insert(i, planned);
    }
    Ok(Plan {
        dockerfile: df,
        stages,
        target,
        default_network: input.network.map(str::to_string),
        add_hosts,
        downloads,
    })
}

fn plan_stage(
    df: &Dockerfile,
    index: usize,
    meta: &MetaArgs,
    input: &PlanInput<'_>,
    done: &BTreeMap<usize, PlannedStage>,
    downloads: &Downloads,
) -> anyhow::Result<PlannedStage> {
    let stage = &df.stages[index];
    let from = df.expand_from(index, meta)?;
    if let Some(n) = input.network.filter(|n| !KNOWN_NETWORKS.contains(n)) {
        bail!("werf.yaml network: {n}: slipway knows default, host and none");
    }
    if let Some(p) = from.platform.as_deref().filter(|p| !is_linux_amd64(p)) {
        bail!("{}:{}: FROM --platform={p}: slipway builds linux/amd64 only so far", df.file, df.stages[index].line);
    }
    let base = match from.stage {
        Some(s) => Base::Stage(s),
        None if from.base.eq_ignore_ascii_case("scratch") => Base::Scratch,
        None => Base::Image(from.base.clone()),
    };
    let mut from_digest = DigestInput::new("dockerfile-from");
    from_digest.str("werf-cache-version", input.cache_version.unwrap_or(""));
    match &base {
        Base::Scratch => from_digest.str("base", "scratch"),
        Base::Image(r) => from_digest.str("base", "image").str("base-image", r),
        // The parent's digest covers its ONBUILD triggers, which run in this step.
        Base::Stage(s) => from_digest
            .str("base", "stage")
            .str("base-stage", done.get(s).context("stage planned out of order")?.last_digest()),
    };
    // ONBUILD RUN triggers, of a base image or a parent stage, run in this step.
    from_digest.str("network", effective_network(None, input.network));
    // werf puts `addHost` into the dependencies of every Dockerfile stage; through the
    // FROM step it reaches each step. Nothing is added without it (digests unchanged).
    if !input.add_host.is_empty() {
        from_digest.list("add-host", input.add_host.iter().map(String::as_str));
    }
    let mut steps = vec![PlannedStep {
        name: "1-FROM".into(),
        step: None,
        digest: from_digest.finish(),
        args: Vec::new(),
        deferred: Vec::new(),
    }];
    let mut args: Vec<(String, String)> = Vec::new();
    let mut deferred: Vec<DeferredArg> = Vec::new();
    // ENV values known from this Dockerfile, for expanding COPY sources while planning.
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (n, step) in stage.steps.iter().enumerate() {
        let snapshot = (env.clone(), args.clone());
        let lookup = |name: &str| lookup_in(&snapshot.0, &snapshot.1, name);
        let keyword = step.instruction.keyword();
        let mut digest = DigestInput::new("dockerfile-step");
        digest
            .str("keyword", keyword)
            .str("prev", &steps.last().expect("FROM step").digest)
            .str("text", &step.original);
        match &step.instruction {
            Instruction::Arg(defs) => {
                for d in defs {
                    deferred.retain(|a| a.name != d.name);
                    let value = match (input.build_args.get(&d.name), &d.default) {
                        (Some(v), _) => Some(v.clone()),
                        (None, Some(default)) => {
                            let unknown = std::cell::Cell::new(false);
                            let recording = |name: &str| {
                                let v = lookup_in(&env, &args, name);
                                let needs_image = v.is_none() || deferred.iter().any(|a| a.name == name);
                                unknown.set(unknown.get() || needs_image);
                                v
                            };
                            let v = syntax::expand_word(default, &recording, df.escape)
                                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", df.file, step.line))?;
                            if unknown.get() {
                                deferred.push(DeferredArg {
                                    name: d.name.clone(),
                                    default: default.clone(),
                                    args_before: args.clone(),
                                });
                            }
                            Some(v)
                        }
                        (None, None) => meta.get(&d.name).flatten().map(str::to_string),
                    };
                    args.retain(|(k, _)| *k != d.name);
                    if let Some(v) = value {
                        args.push((d.name.clone(), v));
                    }
                }
            }
            Instruction::Env(_) => {
                if let Instruction::Env(kvs) = step.expand(&df.file, &lookup, df.escape)? {
                    for kv in kvs {
                        env.insert(kv.key, kv.value);
                    }
                }
            }
            Instruction::Copy(_) | Instruction::Add(_) => {
                let expanded = step.expand(&df.file, &lookup, df.escape)?;
                let (from, sources, excludes, parents) = match &expanded {
                    Instruction::Copy(c) => (c.from.clone(), c.sources.clone(), c.excludes.clone(), c.parents),
                    Instruction::Add(a) => (None, a.sources.clone(), a.excludes.clone(), false),
                    _ => unreachable!(),
                };
                let checksum = match &expanded {
                    Instruction::Add(a) => {
                        add_checksum(a).map_err(|e| anyhow::anyhow!("{}:{}: {e}", df.file, step.line))?
                    }
                    _ => None,
                };
                // The patterns are in the text too, but expanded here: an ARG in one counts.
                for e in &excludes {
                    digest.str("exclude", e);
                }
                let excludes = crate::context::dockerignore::DockerIgnore::from_patterns("--exclude", &excludes)
                    .map_err(|e| anyhow::anyhow!("{}:{}: {e}", df.file, step.line))?;
                match from.map(|f| df.resolve_from(&f).map_err(|k| k.at(&df.file, step.line))).transpose()? {
                    Some(StageRef::Stage(s)) => {
                        let stage = done.get(&s).with_context(|| {
                            format!("{}:{}: COPY --from a stage that is not built before this one", df.file, step.line)
                        })?;
                        digest.str("from-stage", stage.last_digest());
                    }
                    Some(StageRef::Image(r)) => {
                        digest.str("from-image", &r);
                    }
                    None => {
                        for src in &sources {
                            let is_add = matches!(expanded, Instruction::Add(_));
                            if download::is_git_source(src) {
                                if !is_add {
                                    bail!(
                                        "{}:{}: COPY {src}: a source can't be a git repository for COPY (ADD fetches them)",
                                        df.file,
                                        step.line
                                    );
                                }
                                let at = || format!("{}:{}", df.file, step.line);
                                let git = super::gitsource::GitSource::parse(src).with_context(at)?;
                                // BuildKit's cache key: the commit (checked against
                                // `--checksum` when given), the directory, `--keep-git-dir`.
                                let commit = downloads.git_commit(src).with_context(at)?;
                                if let Some(c) = checksum.as_deref().filter(|c| !commit.starts_with(*c)) {
                                    bail!(
                                        "{}:{}: ADD {src}: checksum mismatch: the ref is commit {commit}, --checksum={c}",
                                        df.file,
                                        step.line
                                    );
                                }
                                let keep = matches!(&expanded, Instruction::Add(a) if a.keep_git_dir);
                                digest.str("git-commit", &commit).str("git-subdir", &git.subdir);
                                digest.str("git-keep-dir", if keep { "true" } else { "false" });
                                continue;
                            }
                            if download::is_http_source(src) {
                                if !is_add {
                                    bail!(
                                        "{}:{}: COPY {src}: a source can't be a URL for COPY (ADD downloads URLs)",
                                        df.file,
                                        step.line
                                    );
                                }
                                // BuildKit's cache key: the file name and the content's
                                // checksum (`--checksum`, else of the downloaded file).
                                let content = match &checksum {
                                    Some(c) => c.clone(),
                                    None => {
                                        downloads
                                            .get(src, None)
                                            .map_err(|e| e.context(format!("{}:{}", df.file, step.line)))?
                                            .digest
                                    }
                                };
                                digest.str("url-file", &download::file_name(src)).str("url-checksum", &content);
                                continue;
                            }
                            let at = || format!("{}:{}", df.file, step.line);
                            let (pivot, sel) = if parents {
                                let (pivot, sel) = input.context.select_parents(src).with_context(at)?;
                                (Some(pivot), sel)
                            } else {
                                (None, input.context.select(src).with_context(at)?)
                            };
                            // A wildcard may select nothing (BuildKit's `AllowEmptyWildcard`).
                            if sel.is_empty() && !crate::context::BuildContext::is_wildcard(src) {
                                bail!("{}:{}: {}", df.file, step.line, input.context.explain_missing(src));
                            }
                            let checksum = input.context.checksum_excluding(&sel, pivot.as_deref(), &excludes);
                            digest.str("source", src).str("source-checksum", &checksum);
                        }
                    }
                }
            }
            Instruction::Run(_) => {
                // `--mount` values are expanded, as BuildKit expands them.
                let expanded = step.expand(&df.file, &lookup, df.escape)?;
                let Instruction::Run(r) = &expanded else { unreachable!() };
                // What bind mounts, and cache mounts seeded `from` a stage or image, read
                // is part of the step's input (werf #6823).
                for m in &r.mounts {
                    let mount = super::mounts::parse(m).with_context(|| format!("{}:{}", df.file, step.line))?;
                    let (kind, source, from) = match mount {
                        super::mounts::RunMount::Bind { source, from, .. } => ("bind", source, from),
                        super::mounts::RunMount::Cache { source, from: Some(f), .. } => ("cache", source, Some(f)),
                        _ => continue,
                    };
                    digest.str("mount", kind).str("mount-source", &source);
                    match from.map(|f| df.resolve_from(&f).map_err(|k| k.at(&df.file, step.line))).transpose()? {
                        Some(StageRef::Stage(s)) => {
                            let stage = done.get(&s).with_context(|| {
                                format!(
                                    "{}:{}: --mount from a stage that is not built before this one",
                                    df.file, step.line
                                )
                            })?;
                            digest.str("mount-from-stage", stage.last_digest());
                        }
                        Some(StageRef::Image(r)) => {
                            digest.str("mount-from-image", &r);
                        }
                        None => {
                            let sel =
                                input.context.select(&source).with_context(|| format!("{}:{}", df.file, step.line))?;
                            if sel.is_empty() {
                                bail!("{}:{}: {}", df.file, step.line, input.context.explain_missing(&source));
                            }
                            digest.str("mount-checksum", &input.context.checksum(&sel));
                        }
                    }
                }
                digest.str("network", effective_network(r.network.as_deref(), input.network));
                let unsupported = if r.network.as_deref().is_some_and(|n| !KNOWN_NETWORKS.contains(&n)) {
                    Some("RUN --network other than default, host or none")
                } else if r.security.as_deref().is_some_and(|s| s != "sandbox") {
                    Some("RUN --security=insecure")
                } else {
                    None
                };
                if let Some(what) = unsupported {
                    bail!("{}:{}: {what} is not supported yet", df.file, step.line);
                }
            }
            _ => {}
        }
        let is_deferred = |name: &str| deferred.iter().any(|d| d.name == name);
        digest.map("args", args.iter().filter(|(k, _)| !is_deferred(k)).map(|(k, v)| (k.as_str(), v.as_str())));
        // A deferred ARG's value depends on the image: its default as written stands in.
        digest.map("deferred-args", deferred.iter().map(|d| (d.name.as_str(), d.default.as_str())));
        steps.push(PlannedStep {
            name: format!("{}-{keyword}", n + 2),
            step: Some(step.clone()),
            digest: digest.finish(),
            args: args.clone(),
            deferred: deferred.clone(),
        });
    }
    Ok(PlannedStage { index, base, steps })
}

/// One werf.yaml `addHost` entry, `host:ip` (docker's `--add-host`; `host=ip` too):
/// (host, ip). `host-gateway` has no meaning without a bridge network: refused.
pub fn parse_add_host(entry: &str) -> anyhow::Result<(String, String)> {
    let Some((host, ip)) = entry.split_once('=').or_else(|| entry.split_once(':')) else {
        bail!("werf.yaml addHost {entry:?}: expected HOST:IP");
    };
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if ip == "host-gateway" {
        bail!("werf.yaml addHost {entry:?}: host-gateway is not supported (steps use the host's network)");
    }
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("werf.yaml addHost {entry:?}: invalid host name");
    }
    if ip.parse::<std::net::IpAddr>().is_err() {
        bail!("werf.yaml addHost {entry:?}: {ip:?} is not an IP address");
    }
    Ok((host.to_string(), ip.to_string()))
}

/// The `--checksum` of an ADD, checked as BuildKit checks it: one source, a URL.
fn add_checksum(add: &syntax::Add) -> anyhow::Result<Option<String>> {
    let Some(value) = &add.checksum else { return Ok(None) };
    if add.sources.len() + add.heredocs.len() != 1 {
        bail!("ADD --checksum can't be specified for multiple sources");
    }
    if !download::is_http_source(&add.sources[0]) && !download::is_git_source(&add.sources[0]) {
        bail!("ADD --checksum requires an HTTP(S) or git source");
    }
    if download::is_git_source(&add.sources[0]) {
        // A commit id, or a prefix of one.
        if value.is_empty() || value.len() > 40 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("ADD --checksum={value}: a git source takes a commit id");
        }
        return Ok(Some(value.to_ascii_lowercase()));
    }
    download::parse_checksum(value).map(Some)
}

/// The `--network` values slipway runs (`default` and `host` are the host's network).
const KNOWN_NETWORKS: &[&str] = &["default", "host", "none"];

/// The network of a RUN step: its `--network`, else werf.yaml's `network`, else `default`.
pub fn effective_network<'a>(flag: Option<&'a str>, werf: Option<&'a str>) -> &'a str {
    flag.or(werf).unwrap_or("default")
}

fn lookup_in(env: &BTreeMap<String, String>, args: &[(String, String)], name: &str) -> Option<String> {
    env.get(name).cloned().or_else(|| args.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

/// `linux/amd64` in any of the spellings BuildKit accepts (and `$BUILDPLATFORM` etc.
/// expand to it).
pub fn is_linux_amd64(platform: &str) -> bool {
    matches!(platform.trim().to_ascii_lowercase().as_str(), "linux/amd64" | "linux/x86_64" | "linux/amd64/v1" | "amd64")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_host_entries_read_as_docker_reads_them() {
        assert_eq!(parse_add_host("db:10.0.0.1").unwrap(), ("db".into(), "10.0.0.1".into()));
        assert_eq!(parse_add_host("v6:::1").unwrap(), ("v6".into(), "::1".into()));
        assert_eq!(parse_add_host("eq=[fe80::1]").unwrap(), ("eq".into(), "fe80::1".into()));
        for bad in ["nohost", "db:notanip", ":1.2.3.4", "gw:host-gateway"] {
            assert!(parse_add_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_step_flag_wins_over_werf_network() {
        assert_eq!(effective_network(None, None), "default");
        assert_eq!(effective_network(None, Some("none")), "none");
        assert_eq!(effective_network(Some("host"), Some("none")), "host");
        assert_eq!(effective_network(Some("none"), None), "none");
    }
}
