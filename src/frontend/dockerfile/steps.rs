//! Executing one Dockerfile instruction on an image state.

use super::copy::{CopyAttrs, Rootfs};
use super::plan::{Plan, PlannedStep};
use super::users;
use crate::context::BuildContext;
use crate::engine::pull::Puller;
use crate::engine::rootfs::{Mutation, RootfsDriver, View};
use crate::engine::settings::{Backend, HostEnv};
use crate::engine::state::DEFAULT_PATH;
use crate::engine::state::ImageState;
use crate::frontend::dockerfile::syntax::{CommandLine, Healthcheck, Instruction, RunForm, StageRef, Step};
use anyhow::{Context, bail};
use slipway_runtime::rlimit::Rlimit;
use slipway_runtime::sandbox::{self, Bind, Isolation, SandboxSpec};
use slipway_storage::store::Store;
use std::collections::BTreeMap;

/// Where a RUN heredoc script with a shebang is put, as BuildKit puts it.
const PIPES_DIR: &str = "/dev/pipes";

/// What steps need from the build.
pub struct StepEnv<'a> {
    /// werf.yaml `secrets` of the image, for `RUN --mount=type=secret`.
    pub secrets: &'a [crate::config::Secret],
    /// Step output to stderr: stdout belongs to someone else (`slipway run`).
    pub stdout_to_stderr: bool,
    pub puller: &'a Puller<'a>,
    pub plan: &'a Plan,
    pub context: &'a BuildContext,
    /// Isolation, rlimits and the host environment (for `env` secrets).
    pub backend: &'a Backend,
    /// How image layers become the step's rootfs and the trees it reads from.
    pub rootfs: &'a RootfsDriver,
    /// The build's ssh agent, for `RUN --mount=type=ssh`.
    pub ssh: &'a crate::engine::ssh_agent::Agent,
    /// Resolves other Dockerfile stages and external images (for COPY --from).
    pub images: &'a dyn Images,
}

/// Where COPY --from finds its source image.
pub trait Images {
    fn image_of(&self, which: &StageRef) -> anyhow::Result<ImageState>;
}

/// Apply `planned` (not FROM) to `state`. `cmd_set` tells whether CMD was set earlier in
/// this Dockerfile stage (ENTRYPOINT resets an inherited CMD only).
pub fn execute(
    env: &StepEnv<'_>,
    state: &ImageState,
    planned: &PlannedStep,
    cmd_set: bool,
) -> anyhow::Result<ImageState> {
    let step = planned.step.as_ref().expect("not the FROM step");
    let df = &env.plan.dockerfile;
    let at = |e: anyhow::Error| e.context(format!("{}:{}: {}", df.file, step.line, step.instruction.keyword()));
    let mut next = state.clone();
    let config_env = state.config.config.env.clone().unwrap_or_default();
    let args = args_in_scope(planned, &config_env, df.escape).map_err(at)?;
    let lookup = |name: &str| -> Option<String> {
        env_value(&config_env, name).or_else(|| args.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    };
    let instruction = step.expand(&df.file, &lookup, df.escape)?;
    let c = &mut next.config.config;
    let mut layer = None;
    match &instruction {
        Instruction::Arg(_) => {}
        Instruction::Env(kvs) => kvs.iter().for_each(|kv| c.set_env(&kv.key, &kv.value)),
        Instruction::Label(kvs) => {
            let labels = c.labels.get_or_insert_with(Default::default);
            for kv in kvs {
                labels.insert(kv.key.clone(), kv.value.clone());
            }
        }
        Instruction::User(u) => c.user = Some(u.clone()),
        Instruction::Cmd(cl) => c.cmd = Some(argv(cl, c.shell.as_deref())),
        Instruction::Entrypoint(cl) => {
            c.entrypoint = match cl {
                CommandLine::Shell(s) if s.trim().is_empty() => None,
                cl => Some(argv(cl, c.shell.as_deref())),
            };
            if !cmd_set {
                c.cmd = None;
            }
        }
        Instruction::Expose(ports) => {
            let e = c.exposed_ports.get_or_insert_with(Default::default);
            for p in ports {
                let p = if p.contains('/') { p.to_lowercase() } else { format!("{p}/tcp") };
                e.insert(p, serde_json::json!({}));
            }
        }
        Instruction::Volume(vs) => {
            let v = c.volumes.get_or_insert_with(Default::default);
            for p in vs {
                v.insert(p.clone(), serde_json::json!({}));
            }
        }
        Instruction::StopSignal(s) => c.stop_signal = Some(s.clone()),
        Instruction::Shell(s) => c.shell = Some(s.clone()),
        Instruction::Maintainer(m) => next.config.author = Some(m.clone()),
        Instruction::Onbuild(o) => c.on_build.get_or_insert_with(Vec::new).push(o.expression.clone()),
        Instruction::Healthcheck(h) => c.healthcheck = Some(healthcheck_json(h)),
        Instruction::Workdir(w) => {
            let dir = resolve_path(c.working_dir.as_deref().unwrap_or("/"), w);
            c.working_dir = Some(dir.clone());
            let user = c.user.clone().unwrap_or_default();
            layer = with_rootfs(env, state, |root| {
                let u = super::resolve_user_in(root, &user)?;
                Rootfs::open(root)?.mkdir_all(&dir, (u.uid, u.gid))?;
                Ok(())
            })
            .map_err(at)?;
        }
        Instruction::Run(run) => {
            // BuildKit's choice: a lone heredoc is the script; a script with a shebang
            // is written to /dev/pipes/NAME and that file is what the shell runs.
            let (cmd, script) = match run.form() {
                RunForm::Command(cmd) => (cmd, None),
                RunForm::Script(h) => (CommandLine::Shell(h.content.clone()), None),
                RunForm::File(h) => {
                    if h.name.contains('/') || h.name == "." || h.name == ".." {
                        return Err(at(anyhow::anyhow!("heredoc name {:?} cannot name a script file", h.name)));
                    }
                    (CommandLine::Shell(format!("{PIPES_DIR}/{}", h.name)), Some(h))
                }
            };
            let argv = argv(&cmd, c.shell.as_deref());
            let mut run_env = c.env.clone().unwrap_or_default();
            for (k, v) in &args {
                if !run_env.iter().any(|e| e.split_once('=').is_some_and(|(ek, _)| ek == k)) {
                    run_env.push(format!("{k}={v}"));
                }
            }
            let user = c.user.clone().unwrap_or_default();
            let cwd = c.working_dir.clone().unwrap_or_else(|| "/".into());
            let mounts =
                run.mounts.iter().map(|m| super::mounts::parse(m)).collect::<anyhow::Result<Vec<_>>>().map_err(at)?;
            layer = with_mutation(env, state, |m| {
                let root = &m.root().to_path_buf();
                let mut prepared = prepare_mounts(env, &mounts)?;
                if let Some(h) = script {
                    let dir = env.puller.store.scratch_dir("heredoc")?;
                    let file = dir.join("script");
                    std::fs::write(&file, &h.content).with_context(|| format!("writing heredoc {}", h.name))?;
                    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
                    prepared.binds.push(Bind { source: file, dest: format!("{PIPES_DIR}/{}", h.name), readonly: true });
                }
                let mut run_env = run_env.clone();
                if !prepared.env.is_empty() {
                    run_env.retain(|e| !e.starts_with("SSH_AUTH_SOCK="));
                }
                run_env.extend(prepared.env.iter().cloned());
                let cmd = Command {
                    args: argv,
                    env: run_env,
                    user: &user,
                    cwd: &cwd,
                    rlimits: &env.backend.rlimits,
                    isolation: &env.backend.isolation,
                    stdout_to_stderr: env.stdout_to_stderr,
                    binds: prepared.binds.clone(),
                    no_network: super::plan::effective_network(
                        run.network.as_deref(),
                        env.plan.default_network.as_deref(),
                    ) == "none",
                };
                let new_owner = unmapped_run_user(root, &user)?;
                let exit = run_command_with_hosts(root, cmd, &env.plan.add_hosts)?;
                if !exit.success() {
                    bail!("the command exited with code {}", exit.code);
                }
                if let Some(owner) = new_owner {
                    m.new_entries_owned_by(owner);
                }
                Ok(())
            })
            .map_err(at)?;
        }
        Instruction::Copy(copy) => {
            let spec = CopySpec {
                from: copy.from.clone(),
                chown: copy.chown.clone(),
                chmod: copy.chmod.clone(),
                sources: copy.sources.clone(),
                heredocs: copy.heredocs.clone(),
                dest: copy.dest.clone(),
                add: false,
                excludes: copy.excludes.clone(),
                parents: copy.parents,
                unpack_urls: false,
                checksum: None,
                keep_git_dir: false,
            };
            layer = with_rootfs(env, state, |root| copy_in(root, env, state, &spec)).map_err(at)?;
        }
        Instruction::Add(add) => {
            let spec = CopySpec {
                from: None,
                chown: add.chown.clone(),
                chmod: add.chmod.clone(),
                sources: add.sources.clone(),
                heredocs: add.heredocs.clone(),
                dest: add.dest.clone(),
                add: add.unpack != Some(false),
                excludes: add.excludes.clone(),
                parents: false,
                unpack_urls: add.unpack == Some(true),
                checksum: add.checksum.clone(),
                keep_git_dir: add.keep_git_dir,
            };
            layer = with_rootfs(env, state, |root| copy_in(root, env, state, &spec)).map_err(at)?;
        }
    }
    if let Some(meta) = &layer {
        next.push_layer(meta);
    }
    next.push_history(&step.original, layer.is_none());
    Ok(next)
}

fn env_value(env: &[String], name: &str) -> Option<String> {
    env.iter().rev().find_map(|e| e.strip_prefix(name)?.strip_prefix('=').map(str::to_string))
}

/// The ARG values of `planned`, with the defaults planning could not know
/// (`ARG A=$PATH`) expanded against the image's env, as BuildKit expands them.
/// The env is the one of this step: an ENV after the ARG that sets a name the default
/// uses would be seen too (a difference from BuildKit, in docs/DOCKERFILE-DIFFERENCES.md).
fn args_in_scope(planned: &PlannedStep, env: &[String], escape: char) -> anyhow::Result<Vec<(String, String)>> {
    let mut args = planned.args.clone();
    // Earlier deferred ARGs, already expanded: a later default may name them.
    let mut fixed: Vec<(String, String)> = Vec::new();
    for d in &planned.deferred {
        let lookup = |name: &str| {
            let planned = d.args_before.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            match fixed.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) if planned.is_some() => Some(v.clone()),
                _ => planned,
            }
            .or_else(|| env_value(env, name))
        };
        let value = crate::frontend::dockerfile::syntax::expand_word(&d.default, &lookup, escape)?;
        if let Some(slot) = args.iter_mut().find(|(k, _)| *k == d.name) {
            slot.1 = value.clone();
        }
        fixed.push((d.name.clone(), value));
    }
    Ok(args)
}

/// Mount `state`, let `f` change it, and commit the changes (None: nothing changed).
fn with_rootfs(
    env: &StepEnv<'_>,
    state: &ImageState,
    f: impl FnOnce(&std::path::Path) -> anyhow::Result<()>,
) -> anyhow::Result<Option<slipway_storage::store::LayerMeta>> {
    with_mutation(env, state, |m| f(m.root()))
}

/// [`with_rootfs`] with the whole [`Mutation`] at hand.
fn with_mutation(
    env: &StepEnv<'_>,
    state: &ImageState,
    f: impl FnOnce(&mut Mutation<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<Option<slipway_storage::store::LayerMeta>> {
    env.puller.ensure_layers(state)?;
    let mut m = env.rootfs.begin(env.puller.store, state.diff_ids())?;
    f(&mut m)?;
    m.finish()
}

/// The owner of what a RUN step creates when the single-id namespace runs it as root in
/// place of its unmapped USER (`slipway_runtime::idmap`): that user, as a full range
/// would have made it.
fn unmapped_run_user(root: &std::path::Path, user: &str) -> anyhow::Result<Option<(u32, u32)>> {
    let ids = slipway_runtime::idmap::IdMap::current();
    if !ids.is_single() {
        return Ok(None);
    }
    let u = super::resolve_user_in(root, user)?;
    Ok((!ids.maps_uid(u.uid) || !ids.maps_gid(u.gid)).then_some((u.uid, u.gid)))
}

/// What to run in a rootfs: the command, its environment and who runs it where.
pub struct Command<'a> {
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// `USER` of the image (name or id, with an optional group).
    pub user: &'a str,
    /// Created (owned by the user) if missing.
    pub cwd: &'a str,
    pub rlimits: &'a [Rlimit],
    pub isolation: &'a Isolation,
    /// See [`SandboxSpec::stdout_to_stderr`].
    pub stdout_to_stderr: bool,
    /// Mounts of the step (`RUN --mount`), besides `/etc/hosts` and `/etc/resolv.conf`.
    pub binds: Vec<Bind>,
    /// `RUN --network=none`: a new network namespace with loopback only.
    pub no_network: bool,
}

/// Run `cmd` in the sandbox over the mounted rootfs `root`, with the host's
/// `/etc/resolv.conf` and a minimal `/etc/hosts`, as a RUN step or `slipway run` does.
pub fn run_command(root: &std::path::Path, cmd: Command<'_>) -> anyhow::Result<sandbox::Exit> {
    run_command_with_hosts(root, cmd, &[])
}

/// [`run_command`] with more `/etc/hosts` entries (werf.yaml `addHost`: name, address),
/// written after the standard ones, in the step's hosts file only (never in the layer).
pub fn run_command_with_hosts(
    root: &std::path::Path,
    cmd: Command<'_>,
    extra_hosts: &[(String, String)],
) -> anyhow::Result<sandbox::Exit> {
    let fs = Rootfs::open(root)?;
    let u = super::resolve_user_in(root, cmd.user)?;
    let mut env = cmd.env;
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", u.home));
    }
    if !fs.is_dir(cmd.cwd) {
        fs.mkdir_all(cmd.cwd, (u.uid, u.gid))?;
    }
    let scratch = root.parent().expect("rootfs has a parent").join("sandbox");
    std::fs::create_dir_all(&scratch)?;
    let hosts = scratch.join("hosts");
    let mut hosts_text =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tslipway\n");
    for (name, addr) in extra_hosts {
        hosts_text.push_str(&format!("{addr}\t{name}\n"));
    }
    std::fs::write(&hosts, hosts_text)?;
    let resolv = scratch.join("resolv.conf");
    std::fs::write(&resolv, std::fs::read("/etc/resolv.conf").unwrap_or_default())?;
    let spec = SandboxSpec {
        rootfs: root.to_path_buf(),
        args: cmd.args,
        env,
        cwd: cmd.cwd.to_string(),
        uid: u.uid,
        gid: u.gid,
        groups: u.groups,
        hostname: "slipway".into(),
        rlimits: cmd.rlimits.to_vec(),
        stdout_to_stderr: cmd.stdout_to_stderr,
        no_network: cmd.no_network,
        binds: [
            Bind { source: hosts, dest: "/etc/hosts".into(), readonly: false },
            Bind { source: resolv, dest: "/etc/resolv.conf".into(), readonly: false },
        ]
        .into_iter()
        .chain(cmd.binds)
        .collect(),
    };
    Ok(sandbox::run_with(&spec, &scratch, cmd.isolation)?)
}

/// `COPY --parents`: each path of `sel` (relative, below `pivot`) as a source that keeps
/// its path below the pivot, and each of its parents below the pivot as a directory to
/// make like the source's; `open` opens a relative path of the source, `shown` names it.
fn with_parents(
    sel: Vec<String>,
    pivot: &str,
    open: &dyn Fn(&str) -> anyhow::Result<std::os::fd::OwnedFd>,
    shown: &dyn Fn(&str) -> String,
    parent_dirs: &mut Vec<(std::os::fd::OwnedFd, String, String)>,
    sources: &mut Vec<Selected>,
) -> anyhow::Result<()> {
    for p in sel {
        let below = p.strip_prefix(pivot).unwrap_or(&p).trim_start_matches('/').to_string();
        let mut up = below.as_str();
        while let Some((parent, _)) = up.rsplit_once('/') {
            let in_source = crate::project::join_rel(pivot, parent);
            parent_dirs.push((open(&in_source)?, shown(&in_source), parent.to_string()));
            up = parent;
        }
        let (fd, shown) = (open(&p)?, shown(&p));
        sources.push(Selected { fd, shown, name: String::new(), parents: Some(below), url: false, git_time: None });
    }
    Ok(())
}

/// The sources of a step's `RUN --mount`s, kept alive while the step runs.
struct PreparedMounts<'s> {
    binds: Vec<Bind>,
    /// `SSH_AUTH_SOCK=…` for a step with an ssh mount.
    env: Vec<String>,
    /// The sockets of `--mount=type=ssh`, removed when the step is done.
    _ssh: Vec<crate::engine::ssh_agent::StepSocket>,
    /// Other stages or images mounted for `--mount=from=…`.
    _sources: Vec<Source<'s>>,
}

/// A stage or image a `RUN --mount=type=bind,from=…` shows: a view when read-only; a
/// throw-away rootfs when `rw`, so the step's writes never reach a stored layer.
enum Source<'s> {
    View(View<'s>),
    Writable(Mutation<'s>),
}

fn prepare_mounts<'s>(env: &StepEnv<'s>, mounts: &[super::mounts::RunMount]) -> anyhow::Result<PreparedMounts<'s>> {
    use super::mounts::RunMount as M;
    let store = env.puller.store;
    let mut binds = Vec::new();
    let mut sources = Vec::new();
    let (mut ssh_env, mut ssh) = (Vec::new(), Vec::new());
    for m in mounts {
        match m {
            M::Cache { target, id, uid, gid, mode, readonly, from, source } => {
                use sha2::Digest as _;
                let dir = store.root().join("cache").join(hex::encode(sha2::Sha256::digest(id.as_bytes())));
                if !dir.is_dir() {
                    match from {
                        None => {
                            std::fs::create_dir_all(&dir)
                                .with_context(|| format!("creating cache {}", dir.display()))?;
                            // A single-id namespace runs every step as root: the cache is root's.
                            if let Err(e) = std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid))
                                && !(e.raw_os_error() == Some(libc::EINVAL)
                                    && slipway_storage::owner::single_id_namespace())
                            {
                                return Err(e).with_context(|| format!("chown of cache {id} to {uid}:{gid}"));
                            }
                            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(*mode))?;
                        }
                        // BuildKit seeds a new cache from `source` of the `from` stage or image.
                        Some(f) => seed_cache(env, &dir, f, source).with_context(|| format!("seeding cache {id}"))?,
                    }
                }
                binds.push(Bind { source: dir, dest: target.clone(), readonly: *readonly });
            }
            M::Secret { id, target, required, mode } => {
                let Some(secret) = env.secrets.iter().find(|s| s.id == *id) else {
                    if *required {
                        bail!("secret {id} is required by --mount but werf.yaml does not define it (secrets:)");
                    }
                    continue;
                };
                let value = secret_value(secret, &env.backend.host)?;
                let dir = store.scratch_dir("secret")?;
                let file = dir.join("secret");
                std::fs::write(&file, value)?;
                std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(*mode))?;
                binds.push(Bind { source: file, dest: target.clone(), readonly: true });
            }
            M::Bind { target, source, from, readonly } => {
                let root = match from {
                    None => env.context.materialize(store.scratch())?.to_path_buf(),
                    Some(f) => {
                        let which = env.plan.dockerfile.resolve_from(f).map_err(|k| anyhow::anyhow!("{k}"))?;
                        let image = env.images.image_of(&which)?;
                        env.puller.ensure_layers(&image)?;
                        let source = if *readonly {
                            Source::View(env.rootfs.view(store, image.diff_ids())?)
                        } else {
                            Source::Writable(env.rootfs.begin(store, image.diff_ids())?)
                        };
                        let root = match &source {
                            Source::View(v) => v.root(),
                            Source::Writable(m) => m.root(),
                        }
                        .to_path_buf();
                        sources.push(source);
                        root
                    }
                };
                // Resolved inside its root, then named by its real path for the helper.
                let fd = Rootfs::open(&root)?
                    .open_path(source)
                    .with_context(|| format!("--mount source {source} cannot be resolved inside its root"))?;
                let real = std::fs::read_link(fd_path(&fd))?;
                binds.push(Bind { source: real, dest: target.clone(), readonly: *readonly });
            }
            M::Tmpfs { target } => {
                binds.push(Bind { source: store.scratch_dir("tmpfs")?, dest: target.clone(), readonly: false });
            }
            M::Ssh { id, target, required, uid, gid, mode } => {
                // Only the build's agent exists, under BuildKit's id `default`.
                let socket = if id == "default" { env.ssh.step_socket(*uid, *gid, *mode)? } else { None };
                let Some(socket) = socket else {
                    if *required {
                        bail!(
                            "--mount=type=ssh,id={id} is required but the build has no ssh agent for it \
                             (give --ssh-key PATH or set SSH_AUTH_SOCK; only id=default exists)"
                        );
                    }
                    continue;
                };
                let target = target.clone().unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{}", ssh.len()));
                binds.push(Bind { source: socket.path().to_path_buf(), dest: target.clone(), readonly: false });
                if ssh_env.is_empty() {
                    ssh_env.push(format!("SSH_AUTH_SOCK={target}"));
                }
                ssh.push(socket);
            }
        }
    }
    Ok(PreparedMounts { binds, env: ssh_env, _ssh: ssh, _sources: sources })
}

/// Create the cache directory `dir` as a copy of `source` inside stage or image `from`
/// (owners kept, the source walked by fd); filled beside it and renamed into place, so
/// a failed copy never leaves a half-seeded cache.
fn seed_cache(env: &StepEnv<'_>, dir: &std::path::Path, from: &str, source: &str) -> anyhow::Result<()> {
    let store = env.puller.store;
    let which = env.plan.dockerfile.resolve_from(from).map_err(|k| anyhow::anyhow!("{k}"))?;
    let image = env.images.image_of(&which)?;
    env.puller.ensure_layers(&image)?;
    let view = env.rootfs.view(store, image.diff_ids())?;
    let fd = Rootfs::open(view.root())?
        .open_path(source)
        .with_context(|| format!("--mount source {source} cannot be resolved inside {from}"))?;
    let seeding = dir.with_extension("seeding");
    if seeding.exists() {
        slipway_storage::remove::remove_tree(&seeding)
            .with_context(|| format!("removing the leftover {}", seeding.display()))?;
    }
    std::fs::create_dir_all(&seeding).with_context(|| format!("creating {}", seeding.display()))?;
    let attrs = CopyAttrs { keep_owner: true, ..CopyAttrs::default() };
    Rootfs::open(&seeding)?.copy_contents(&fd, &format!("{from}:{source}"), "/", &attrs, (0, 0))?;
    std::fs::rename(&seeding, dir).with_context(|| format!("renaming {} into place", seeding.display()))?;
    Ok(())
}

/// The value of a werf.yaml secret: a variable of `host`, a host file, or a literal.
pub(crate) fn secret_value(secret: &crate::config::Secret, host: &HostEnv) -> anyhow::Result<Vec<u8>> {
    use crate::config::SecretSource as S;
    Ok(match &secret.source {
        S::Env(name) => host
            .var(name)
            .with_context(|| {
                format!("secret {}: environment variable {name} is not set (werf.yaml:{})", secret.id, secret.line)
            })?
            .as_bytes()
            .to_vec(),
        S::File(path) => {
            let path = match path.strip_prefix("~/") {
                Some(rest) => std::path::PathBuf::from(host.var("HOME").unwrap_or_default()).join(rest),
                None => std::path::PathBuf::from(path),
            };
            std::fs::read(&path).with_context(|| {
                format!("secret {}: reading {} (werf.yaml:{})", secret.id, path.display(), secret.line)
            })?
        }
        S::Value(v) => v.clone().into_bytes(),
    })
}

struct CopySpec {
    from: Option<String>,
    chown: Option<String>,
    chmod: Option<String>,
    sources: Vec<String>,
    /// Inline `<<EOF` sources: files named after the delimiter.
    heredocs: Vec<crate::frontend::dockerfile::syntax::Heredoc>,
    dest: String,
    /// ADD: unpack local tar archives.
    add: bool,
    /// `--exclude` patterns.
    excludes: Vec<String>,
    /// `COPY --parents`: each source keeps its path below the pivot (`/./`) or the root.
    parents: bool,
    /// `ADD --unpack=true`: downloaded tar archives are unpacked too.
    unpack_urls: bool,
    /// `ADD --checksum`: what a downloaded source must hash to.
    checksum: Option<String>,
    /// `ADD --keep-git-dir`: a git source keeps its `.git`.
    keep_git_dir: bool,
}

/// One selected source of a COPY/ADD: an fd resolved inside its root, the path shown in
/// messages, the name it gets in a destination directory, and (`COPY --parents`) its
/// path below the pivot, kept under the destination.
struct Selected {
    fd: std::os::fd::OwnedFd,
    shown: String,
    name: String,
    parents: Option<String>,
    /// Downloaded by `ADD <URL>`: its own time and mode, unpacked only on `--unpack`.
    url: bool,
    /// A git checkout (`ADD <git URL>`): its entries get the commit's time.
    git_time: Option<i64>,
}

fn copy_in(root: &std::path::Path, env: &StepEnv<'_>, state: &ImageState, spec: &CopySpec) -> anyhow::Result<()> {
    let fs = Rootfs::open(root)?;
    let (passwd, group) = (fs.read_file("/etc/passwd"), fs.read_file("/etc/group"));
    let chown = spec.chown.as_deref().map(|c| users::resolve_chown(c, &passwd, &group)).transpose()?;
    let chmod = spec
        .chmod
        .as_deref()
        .map(|m| u32::from_str_radix(m, 8).map_err(|_| anyhow::anyhow!("invalid --chmod={m}: expected an octal mode")))
        .transpose()?;
    let excludes = crate::context::dockerignore::DockerIgnore::from_patterns("--exclude", &spec.excludes)?;
    let owner = chown.unwrap_or((0, 0));
    let workdir = state.config.config.working_dir.as_deref().unwrap_or("/");
    let dest = resolve_path(workdir, &spec.dest);
    let dest_is_dir = spec.parents || spec.dest.ends_with('/') || spec.dest == "." || fs.is_dir(&dest);

    let mut sources: Vec<Selected> = Vec::new();
    // `COPY --parents`: (fd of the directory, path shown) of each parent to recreate.
    let mut parent_dirs: Vec<(std::os::fd::OwnedFd, String, String)> = Vec::new();
    let mut source_mount = None;
    let mtime;
    match &spec.from {
        Some(from) => {
            let df = &env.plan.dockerfile;
            let which = df.resolve_from(from).map_err(|k| anyhow::anyhow!("{k}"))?;
            let src_state = env.images.image_of(&which)?;
            env.puller.ensure_layers(&src_state)?;
            let view = env.rootfs.view(env.puller.store, src_state.diff_ids())?;
            let src_fs = Rootfs::open(view.root())?;
            for s in &spec.sources {
                // `--parents`: the pattern below the pivot selects among the paths of the
                // source's tree, as it does among the context's.
                if spec.parents {
                    let (pivot, pattern) = BuildContext::parents_pivot(s)?;
                    let paths = src_fs.walk(&pivot)?;
                    let sel = BuildContext::select_below(&pivot, &pattern, paths.iter().map(String::as_str))?;
                    if sel.is_empty() && !BuildContext::is_wildcard(s) {
                        bail!("{s} not found in {from}");
                    }
                    let open = |p: &str| src_fs.open_path(&format!("/{p}"));
                    with_parents(sel, &pivot, &open, &|p| format!("{from}:/{p}"), &mut parent_dirs, &mut sources)?;
                    continue;
                }
                // A wildcard is resolved in the source's tree; one that names nothing
                // copies nothing (BuildKit's `AllowEmptyWildcard`).
                if BuildContext::is_wildcard(s) {
                    for path in src_fs.glob(s)? {
                        let name = path.rsplit('/').next().unwrap_or("").to_string();
                        let fd = src_fs.open_path(&path)?;
                        let shown = format!("{from}:{path}");
                        sources.push(Selected { fd, shown, name, parents: None, url: false, git_time: None });
                    }
                    continue;
                }
                // `/file/` names the file, as in BuildKit and buildah (not ENOTDIR).
                let trimmed = s.trim_end_matches('/');
                let path = if trimmed.is_empty() { "/" } else { trimmed };
                let fd = src_fs.open_path(path).with_context(|| format!("{s} not found in {from}"))?;
                let name = s.trim_end_matches('/').rsplit('/').next().unwrap_or("").to_string();
                sources.push(Selected {
                    fd,
                    shown: format!("{from}:{s}"),
                    name,
                    parents: None,
                    url: false,
                    git_time: None,
                });
            }
            source_mount = Some(view);
            mtime = None;
        }
        None => {
            // Sources are resolved inside the context, so a committed symlink can
            // never make COPY read a file of the host.
            let context = Rootfs::open(env.context.materialize(env.puller.store.scratch())?)?;
            let open = |p: &str| {
                context.open_path(p).with_context(|| {
                    format!("{p} cannot be resolved inside the build context (a symlink pointing outside it?)")
                })
            };
            for s in &spec.sources {
                if super::download::is_git_source(s) {
                    let git = super::gitsource::GitSource::parse(s)?;
                    let commit = env.plan.downloads.git_commit(s)?;
                    let dir = env.puller.store.scratch_dir("git")?.join("tree");
                    let time = git.checkout(&commit, &dir, spec.keep_git_dir)?;
                    let sub = if git.subdir.is_empty() { "/" } else { git.subdir.as_str() };
                    let fd = Rootfs::open(&dir)?
                        .open_path(sub)
                        .with_context(|| format!("ADD {s}: no directory {sub} in commit {commit}"))?;
                    let shown = s.clone();
                    sources.push(Selected {
                        fd,
                        shown,
                        name: String::new(),
                        parents: None,
                        url: false,
                        git_time: Some(time),
                    });
                    continue;
                }
                if super::download::is_http_source(s) {
                    // Downloaded (or found downloaded) and checked before anything is written.
                    let d = env.plan.downloads.get(s, spec.checksum.as_deref())?;
                    let dir = d.path.parent().expect("a download is in a directory");
                    let file = d.path.file_name().expect("a download has a name").to_string_lossy().into_owned();
                    let fd = Rootfs::open(dir)?.open_path(&file)?;
                    let name = super::download::file_name(s);
                    sources.push(Selected { fd, shown: s.clone(), name, parents: None, url: true, git_time: None });
                    continue;
                }
                if spec.parents {
                    let (pivot, sel) = env.context.select_parents(s)?;
                    if sel.is_empty() && !BuildContext::is_wildcard(s) {
                        bail!("{}", env.context.explain_missing(s));
                    }
                    with_parents(sel, &pivot, &open, &|p| p.to_string(), &mut parent_dirs, &mut sources)?;
                    continue;
                }
                let sel = env.context.select(s)?;
                if sel.is_empty() && !BuildContext::is_wildcard(s) {
                    bail!("{}", env.context.explain_missing(s));
                }
                for p in sel {
                    let name = p.rsplit('/').next().unwrap_or("").to_string();
                    sources.push(Selected { fd: open(&p)?, shown: p, name, parents: None, url: false, git_time: None });
                }
            }
            mtime = Some(env.context.commit.time_unix);
        }
    }
    if !spec.heredocs.is_empty() {
        let dir = env.puller.store.scratch_dir("heredoc")?;
        let dir_fs = Rootfs::open(&dir)?;
        for h in &spec.heredocs {
            let path = dir.join(&h.name);
            std::fs::write(&path, &h.content).with_context(|| format!("writing heredoc {}", h.name))?;
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
            let fd = dir_fs.open_path(&h.name)?;
            sources.push(Selected {
                fd,
                shown: format!("<<{}", h.name),
                name: h.name.clone(),
                parents: None,
                url: false,
                git_time: None,
            });
        }
    }
    // Directories' contents are merged into the destination (BuildKit); files need a
    // directory to go into.
    let is_dir = |fd: &std::os::fd::OwnedFd| {
        nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
    };
    if sources.len() > 1 && !dest_is_dir && !sources.iter().all(|s| is_dir(&s.fd)) {
        bail!("when copying more than one source the destination must be a directory and end with a /");
    }
    // Files from another stage or image keep their owners (BuildKit, buildah); context
    // files have no meaningful owner and become 0:0.
    let excludes = (!excludes.is_empty()).then_some(&excludes);
    let attrs = CopyAttrs { chown, keep_owner: spec.from.is_some(), chmod, mtime, excludes };
    let under = |rel: &str| format!("{}/{rel}", dest.trim_end_matches('/'));
    // Parents first, shallow ones before deep ones, each made once with its attributes.
    parent_dirs.sort_by(|a, b| a.2.cmp(&b.2));
    parent_dirs.dedup_by(|a, b| a.2 == b.2);
    for (fd, shown, rel) in &parent_dirs {
        fs.make_dir_like(fd, shown, &under(rel), &attrs, owner)?;
    }
    for src in &sources {
        let shown = src.shown.as_str();
        let st = nix::sys::stat::fstat(&src.fd).with_context(|| format!("reading {shown}"))?;
        if let Some(rel) = &src.parents {
            if rel.is_empty() {
                fs.copy_contents(&src.fd, shown, &dest, &attrs, owner)?;
            } else {
                fs.copy_in(&src.fd, shown, rel, &under(rel), &attrs, owner)?;
            }
        } else if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            let git_attrs = CopyAttrs { mtime: src.git_time, ..attrs };
            fs.copy_contents(&src.fd, shown, &dest, if src.git_time.is_some() { &git_attrs } else { &attrs }, owner)?;
        } else if let Some(compression) =
            if (spec.add && !src.url) || (spec.unpack_urls && src.url) { tar_archive(&src.fd, shown)? } else { None }
        {
            extract_archive(env.puller.store, &fs, &src.fd, shown, compression, &dest, chown, owner)?;
        } else {
            let target = if dest_is_dir { under(&src.name) } else { dest.clone() };
            // A download keeps its Last-Modified time (BuildKit, buildah).
            let url_attrs = CopyAttrs { mtime: None, ..attrs };
            fs.copy_in(&src.fd, shown, "", &target, if src.url { &url_attrs } else { &attrs }, owner)?;
        }
    }
    drop(sources);
    drop(source_mount);
    Ok(())
}

/// A `/proc/self/fd` path for an fd opened inside a rootfs or the context.
fn fd_path(fd: &std::os::fd::OwnedFd) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd)))
}

/// How a local ADD source is compressed, told by its first bytes as Docker's
/// `archive.DetectCompression` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArchiveCompression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

impl ArchiveCompression {
    fn detect(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b, 0x08]) {
            Self::Gzip
        } else if head.starts_with(b"BZh") {
            Self::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Self::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else {
            Self::None
        }
    }

    /// The decompressed stream of `input` (every member or frame, as the tools write them).
    fn decoder<'r>(self, input: impl std::io::Read + 'r) -> anyhow::Result<Box<dyn std::io::Read + 'r>> {
        let input = std::io::BufReader::new(input);
        Ok(match self {
            Self::None => Box::new(input),
            Self::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
            Self::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(input)),
            Self::Xz => Box::new(xz2::bufread::XzDecoder::new_multi_decoder(input)),
            Self::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
        })
    }
}

/// The compression of `src` if it is a tar archive, plain or compressed with gzip,
/// bzip2, xz or zstd (a compressed file that is not a tar is copied as is).
fn tar_archive(src: &std::os::fd::OwnedFd, shown: &str) -> anyhow::Result<Option<ArchiveCompression>> {
    use std::io::Read;
    let mut head = [0u8; 6];
    let n = super::copy::open_regular(src, shown)?.read(&mut head)?;
    let compression = ArchiveCompression::detect(&head[..n]);
    let mut tar = match compression.decoder(super::copy::open_regular(src, shown)?) {
        Ok(d) => d,
        Err(_) => return Ok(None),
    };
    let mut inner = [0u8; 512];
    let mut got = 0;
    while got < inner.len() {
        match tar.read(&mut inner[got..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => got += k,
        }
    }
    Ok((got >= 262 && &inner[257..262] == b"ustar").then_some(compression))
}

/// ADD of a local archive: unpack it (owners from the archive unless --chown) into `dest`.
/// The layer unpacker's bounds (size, entries) apply to the decompressed stream.
#[allow(clippy::too_many_arguments)]
fn extract_archive(
    store: &Store,
    fs: &Rootfs,
    src: &std::os::fd::OwnedFd,
    shown: &str,
    compression: ArchiveCompression,
    dest: &str,
    chown: Option<(u32, u32)>,
    owner: (u32, u32),
) -> anyhow::Result<()> {
    let scratch = store.scratch_dir("add")?;
    let tmp = scratch.join("tree");
    std::fs::create_dir(&tmp)?;
    let input = compression.decoder(super::copy::open_regular(src, shown)?)?;
    // A single-id namespace records the archive's owners (they are copied from there).
    let limits = slipway_storage::unpack::Limits {
        ownership: if slipway_storage::owner::single_id_namespace() {
            slipway_storage::unpack::Ownership::BestEffort
        } else {
            slipway_storage::unpack::Ownership::Exact
        },
        ..Default::default()
    };
    slipway_storage::unpack::unpack_limited(input, slipway_storage::image::Compression::None, &tmp, shown, limits)?;
    let tree = Rootfs::open(&tmp)?.open_path("/")?;
    let attrs = CopyAttrs { chown, keep_owner: true, ..CopyAttrs::default() };
    fs.copy_contents(&tree, shown, dest, &attrs, owner)?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

/// Docker's command vector: exec form as is, shell form through SHELL (default /bin/sh -c).
pub fn argv(cl: &CommandLine, shell: Option<&[String]>) -> Vec<String> {
    match cl {
        CommandLine::Exec(v) => v.clone(),
        CommandLine::Shell(s) => {
            let mut v: Vec<String> =
                shell.map(<[String]>::to_vec).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
            v.push(s.clone());
            v
        }
    }
}

/// A path relative to the working directory, cleaned (`..` never above `/`).
pub fn resolve_path(workdir: &str, p: &str) -> String {
    let base = if p.starts_with('/') { "" } else { workdir };
    format!("/{}", crate::project::join_rel(base, p))
}

pub(crate) fn healthcheck_json(h: &Healthcheck) -> serde_json::Value {
    match h {
        Healthcheck::None => serde_json::json!({ "Test": ["NONE"] }),
        Healthcheck::Check(c) => {
            let test: Vec<String> = match &c.test {
                CommandLine::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
                CommandLine::Exec(v) => std::iter::once("CMD".to_string()).chain(v.iter().cloned()).collect(),
            };
            let mut m = BTreeMap::new();
            m.insert("Test", serde_json::json!(test));
            let ns = |d: &Option<std::time::Duration>| d.map(|d| serde_json::json!(d.as_nanos() as u64));
            for (k, v) in [
                ("Interval", ns(&c.interval)),
                ("Timeout", ns(&c.timeout)),
                ("StartPeriod", ns(&c.start_period)),
                ("StartInterval", ns(&c.start_interval)),
            ] {
                if let Some(v) = v {
                    m.insert(k, v);
                }
            }
            if let Some(r) = c.retries {
                m.insert("Retries", serde_json::json!(r));
            }
            serde_json::json!(m)
        }
    }
}

/// Whether CMD appears among `steps` (the steps of a stage before the current one).
pub fn cmd_set_before(steps: &[PlannedStep]) -> bool {
    steps.iter().filter_map(|s| s.step.as_ref()).any(|s: &Step| matches!(s.instruction, Instruction::Cmd(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_paths() {
        assert_eq!(resolve_path("/app", "bin"), "/app/bin");
        assert_eq!(resolve_path("/app", "/etc/"), "/etc");
        assert_eq!(resolve_path("/", "../../x"), "/x");
        assert_eq!(resolve_path("/a/b", "../c"), "/a/c");
    }

    #[test]
    fn detects_archive_compression_by_magic() {
        use ArchiveCompression as C;
        for (head, want) in [
            (&[0x1f, 0x8b, 0x08, 0][..], C::Gzip),
            (b"BZh91AY", C::Bzip2),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], C::Xz),
            (&[0x28, 0xb5, 0x2f, 0xfd], C::Zstd),
            (b"ustar", C::None),
            (&[0x1f, 0x8b], C::None),
        ] {
            assert_eq!(C::detect(head), want, "{head:?}");
        }
    }

    #[test]
    fn secrets_come_from_the_settings_host_environment() {
        use crate::config::{Secret, SecretSource as S};
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("token"), "from-file").unwrap();
        let host: HostEnv = [("TOKEN", "from-env"), ("HOME", t.path().to_str().unwrap())].into_iter().collect();
        let secret = |source| Secret { line: 7, id: "s".into(), source };
        assert_eq!(secret_value(&secret(S::Env("TOKEN".into())), &host).unwrap(), b"from-env");
        assert_eq!(secret_value(&secret(S::File("~/token".into())), &host).unwrap(), b"from-file");
        assert_eq!(secret_value(&secret(S::Value("v".into())), &host).unwrap(), b"v");
        let e = secret_value(&secret(S::Env("UNSET".into())), &host).unwrap_err();
        assert_eq!(e.to_string(), "secret s: environment variable UNSET is not set (werf.yaml:7)");
    }

    #[test]
    fn argv_forms() {
        assert_eq!(argv(&CommandLine::Shell("echo hi".into()), None), ["/bin/sh", "-c", "echo hi"]);
        let bash = vec!["/bin/bash".to_string(), "-ec".to_string()];
        assert_eq!(argv(&CommandLine::Shell("x".into()), Some(&bash)), ["/bin/bash", "-ec", "x"]);
        assert_eq!(argv(&CommandLine::Exec(vec!["a".into()]), None), ["a"]);
    }
}
