//! Running a `shell` stage (`beforeInstall`, `install`, `beforeSetup`, `setup`): the
//! commands as one script in the image's own `/bin/sh`, and the changes committed as
//! the stage's layer.
//!
//! As werf's Buildah mode does (`applyCommands` in `container_backend/buildah_backend.go`):
//! the script is bound at `/.werf/script.sh` and run as `sh /.werf/script.sh` by root
//! (`0:0`) in `/`, with `set -e` and re-executed by `bash` when the image has one; the
//! environment is the image's plus `WERF_COMMIT_HASH`, `WERF_COMMIT_TIME_HUMAN` and
//! `WERF_COMMIT_TIME_UNIX`; every werf.yaml secret is a read-only file at
//! `/run/secrets/ID` (`pkg/build/secrets`), in neither the layer nor the digest; the
//! image's `mount`s are bound read-write (`mount.rs`). When the build has an ssh agent
//! (`--ssh-key`, `SSH_AUTH_SOCK`, `~/.ssh/id_rsa`), a socket relayed to it is bound at
//! werf's `/.werf/tmp/ssh-auth-sock` (root's, 0600) and named by `SSH_AUTH_SOCK`
//! (`MountSSHAgentSocket` in `container_backend`); it is in neither the digest nor the
//! stage's config, as werf's digest does not have it (werf v2 leaves the variable in
//! the stage's config, and its imageSpec stage drops it again).
//!
//! werf v2 also leaves the three variables in the stage's config (its issue #3403, fixed
//! in v3); slipway gives them to the commands only, as v3 does, so a stage's config
//! never depends on the commit that happened to build it.

use crate::engine::pull::Puller;
use crate::engine::rootfs::RootfsDriver;
use crate::engine::settings::Backend;
use crate::engine::state::ImageState;
use crate::frontend::dockerfile::copy::Rootfs;
use crate::frontend::dockerfile::{Command, run_command};
use anyhow::{Context, bail};
use slipway_runtime::sandbox::Bind;

/// Where the script is bound in the build container, as werf binds it.
const SCRIPT: &str = "/.werf/script.sh";

/// Where the build's ssh agent is bound, as werf binds it (`SSHContainerAuthSockPath`).
const SSH_AUTH_SOCK: &str = "/.werf/tmp/ssh-auth-sock";

/// What every shell stage of one image shares.
pub struct ShellEnv<'a> {
    pub puller: &'a Puller<'a>,
    /// Isolation, rlimits and the host environment (for `env` secrets).
    pub backend: &'a Backend,
    /// How image layers become the stage's rootfs.
    pub rootfs: &'a RootfsDriver,
    /// Step output to stderr: stdout belongs to someone else (`slipway run`).
    pub stdout_to_stderr: bool,
    /// werf.yaml `network: none`.
    pub no_network: bool,
    pub commit: &'a crate::git::CommitInfo,
    /// werf.yaml `secrets` of the image.
    pub secrets: &'a [crate::config::Secret],
    /// werf.yaml `mount` of the image, and where the mounts come from.
    pub mounts: &'a super::mount::MountEnv<'a>,
    /// The build's ssh agent, shown to the commands.
    pub ssh: &'a crate::engine::ssh_agent::Agent,
}

/// werf's script: `set -e`, then `bash` if the image has it, then the commands.
pub fn script(commands: &[String]) -> String {
    format!(
        "#!/bin/sh\n\nset -e\n\nif [ \"x$_IS_REEXEC\" = \"x\" ]; then\n\tif type bash >/dev/null 2>&1 ; then\n\t\t\
         export _IS_REEXEC=\"1\"\n\t\texec bash $0\n\tfi\nfi\n\n{}\n",
        commands.join("\n")
    )
}

/// The variables werf adds for the commands (`build_phase.go` prepareStageInstructions).
pub fn commit_env(commit: &crate::git::CommitInfo) -> [String; 3] {
    [
        format!("WERF_COMMIT_HASH={}", commit.id),
        format!("WERF_COMMIT_TIME_HUMAN={}", crate::config::go_time_string(commit.time_unix)),
        format!("WERF_COMMIT_TIME_UNIX={}", commit.time_unix),
    ]
}

/// What a stage does to the rootfs before its commands (a user stage's git patch).
pub type Prepare<'p> = &'p dyn Fn(&Rootfs) -> anyhow::Result<()>;

/// Run `commands` on `state`, after `prepare` if given; `stage` names the werf stage in
/// errors and history.
pub fn run(
    env: &ShellEnv<'_>,
    state: &ImageState,
    stage: &str,
    commands: &[String],
    prepare: Option<Prepare<'_>>,
) -> anyhow::Result<ImageState> {
    let mut next = state.clone();
    // werf runs nothing when a stage has only a cache version.
    if commands.is_empty() && prepare.is_none() {
        next.push_history(&format!("werf {stage}: no commands"), true);
        return Ok(next);
    }
    let dir = env.puller.store.scratch_dir("stapel")?;
    let file = dir.join("script.sh");
    std::fs::write(&file, script(commands)).with_context(|| format!("writing {}", file.display()))?;
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o555))?;
    let mut binds = vec![Bind { source: file, dest: SCRIPT.into(), readonly: true }];
    for secret in env.secrets {
        let file = dir.join(format!("secret-{}", binds.len()));
        std::fs::write(&file, crate::frontend::dockerfile::steps::secret_value(secret, &env.backend.host)?)?;
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o400))?;
        binds.push(Bind { source: file, dest: format!("/run/secrets/{}", secret.id), readonly: true });
    }
    binds.extend(env.mounts.binds(&env.mounts.points(state.config.config.labels.as_ref()))?);
    let mut run_env = state.config.config.env.clone().unwrap_or_default();
    run_env.extend(commit_env(env.commit));
    env.puller.ensure_layers(state)?;
    let m = env.rootfs.begin(env.puller.store, state.diff_ids())?;
    let rootfs = Rootfs::open(m.root())?;
    if let Some(prepare) = prepare {
        prepare(&rootfs)?;
    }
    if commands.is_empty() {
        let layer = m.finish()?;
        if let Some(meta) = &layer {
            next.push_layer(meta);
        }
        next.push_history(&format!("werf {stage}: git patch"), layer.is_none());
        return Ok(next);
    }
    if rootfs.open_path("/bin/sh").is_err() {
        bail!("the base image has no /bin/sh, which runs the shell commands");
    }
    // Removed when the commands are done.
    let ssh = env.ssh.step_socket(0, 0, 0o600)?;
    if let Some(socket) = &ssh {
        binds.push(Bind { source: socket.path().to_path_buf(), dest: SSH_AUTH_SOCK.into(), readonly: false });
        run_env.retain(|e| !e.starts_with("SSH_AUTH_SOCK="));
        run_env.push(format!("SSH_AUTH_SOCK={SSH_AUTH_SOCK}"));
    }
    let cmd = Command {
        args: vec!["/bin/sh".into(), SCRIPT.into()],
        env: run_env,
        user: "0:0",
        cwd: "/",
        rlimits: &env.backend.rlimits,
        isolation: &env.backend.isolation,
        stdout_to_stderr: env.stdout_to_stderr,
        binds,
        no_network: env.no_network,
    };
    let exit = run_command(m.root(), cmd)?;
    drop(ssh);
    if !exit.success() {
        bail!("the shell commands exited with code {}", exit.code);
    }
    let layer = m.finish()?;
    if let Some(meta) = &layer {
        next.push_layer(meta);
    }
    next.push_history(&format!("werf {stage}: {}", commands.join("; ")), layer.is_none());
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_is_werfs() {
        let s = script(&["echo a".into(), "echo b > /b".into()]);
        assert_eq!(
            s,
            "#!/bin/sh\n\nset -e\n\nif [ \"x$_IS_REEXEC\" = \"x\" ]; then\n\tif type bash >/dev/null 2>&1 ; then\n\
             \t\texport _IS_REEXEC=\"1\"\n\t\texec bash $0\n\tfi\nfi\n\necho a\necho b > /b\n"
        );
    }

    #[test]
    fn commit_variables() {
        let c = crate::git::CommitInfo { id: "abc".into(), time_unix: 86_400 + 3_661, ..Default::default() };
        assert_eq!(
            commit_env(&c),
            [
                "WERF_COMMIT_HASH=abc".to_string(),
                "WERF_COMMIT_TIME_HUMAN=1970-01-02 01:01:01 +0000 UTC".into(),
                "WERF_COMMIT_TIME_UNIX=90061".into(),
            ]
        );
    }
}
