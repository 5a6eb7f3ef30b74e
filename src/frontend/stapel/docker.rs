//! werf's deprecated `docker:` directives of a Stapel image: the `dockerInstructions`
//! stage, which changes the image config only (no layer).
//!
//! The semantics are werf's Buildah mode (`stage/stapel_docker_instructions.go`,
//! `buildah.Config` in `pkg/buildah/native_linux.go`): values are set as written
//! (no variable expansion, `EXPOSE` ports kept as written); a `CMD`/`ENTRYPOINT` string
//! is the shell form `/bin/sh -c STRING` unless it is a JSON array between `[` and `]`;
//! an empty command changes nothing (so `ENTRYPOINT` alone keeps the base's `CMD`);
//! `HEALTHCHECK` is the text after a Dockerfile `HEALTHCHECK`.

use crate::config::{Command, DockerInstructions};
use crate::engine::digest::DigestInput;
use crate::frontend::dockerfile::steps::healthcheck_json;
use crate::frontend::dockerfile::syntax::{self, Instruction};
use anyhow::{Context, bail};
use slipway_storage::image::ContainerConfig;
use std::collections::BTreeMap;

/// The directives, checked and ready to apply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Instructions {
    volumes: Vec<String>,
    expose: Vec<String>,
    env: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    cmd: Vec<String>,
    entrypoint: Vec<String>,
    workdir: Option<String>,
    user: Option<String>,
    healthcheck: Option<serde_json::Value>,
}

/// Check the directives (JSON commands, the HEALTHCHECK text) before anything is built.
pub fn prepare(d: &DockerInstructions) -> anyhow::Result<Instructions> {
    let healthcheck = match d.healthcheck.as_deref().filter(|h| !h.is_empty()) {
        None => None,
        Some(text) => {
            let instruction = syntax::parse_trigger("werf.yaml docker.HEALTHCHECK", &format!("HEALTHCHECK {text}"))?;
            let Instruction::Healthcheck(h) = instruction else {
                bail!("docker.HEALTHCHECK {text:?} is not a HEALTHCHECK");
            };
            Some(healthcheck_json(&h))
        }
    };
    Ok(Instructions {
        volumes: d.volume.clone(),
        expose: d.expose.clone(),
        env: d.env.clone(),
        labels: d.label.clone(),
        cmd: command("CMD", d.cmd.as_ref())?,
        entrypoint: command("ENTRYPOINT", d.entrypoint.as_ref())?,
        workdir: d.workdir.clone().filter(|w| !w.is_empty()),
        user: d.user.clone().filter(|u| !u.is_empty()),
        healthcheck,
    })
}

/// werf's `CmdOrEntrypointStringToSlice`.
fn command(key: &str, c: Option<&Command>) -> anyhow::Result<Vec<String>> {
    Ok(match c {
        None => Vec::new(),
        Some(Command::Exec(args)) => args.clone(),
        Some(Command::Shell(s)) if s.is_empty() => Vec::new(),
        Some(Command::Shell(s)) if s.starts_with('[') && s.ends_with(']') => {
            serde_json::from_str(s).with_context(|| format!("docker.{key} {s:?} is not a JSON array of strings"))?
        }
        Some(Command::Shell(s)) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
    })
}

/// Apply the directives to a config, as buildah's config does.
pub fn apply(i: &Instructions, c: &mut ContainerConfig) {
    if !i.labels.is_empty() {
        let labels = c.labels.get_or_insert_with(Default::default);
        labels.extend(i.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    for (k, v) in &i.env {
        c.set_env(k, v);
    }
    if !i.volumes.is_empty() {
        let volumes = c.volumes.get_or_insert_with(Default::default);
        volumes.extend(i.volumes.iter().map(|v| (v.clone(), serde_json::json!({}))));
    }
    if !i.expose.is_empty() {
        let ports = c.exposed_ports.get_or_insert_with(Default::default);
        ports.extend(i.expose.iter().map(|p| (p.clone(), serde_json::json!({}))));
    }
    if !i.cmd.is_empty() {
        c.cmd = Some(i.cmd.clone());
    }
    if !i.entrypoint.is_empty() {
        c.entrypoint = Some(i.entrypoint.clone());
    }
    if let Some(u) = &i.user {
        c.user = Some(u.clone());
    }
    if let Some(w) = &i.workdir {
        c.working_dir = Some(w.clone());
    }
    if let Some(h) = &i.healthcheck {
        c.healthcheck = Some(h.clone());
    }
}

/// The stage's digest: the previous stage's and every directive as written (werf's
/// inputs: exactValues, VOLUME, EXPOSE, ENV and LABEL sorted, CMD, ENTRYPOINT, WORKDIR,
/// USER, HEALTHCHECK). The struct is destructured, so a new field does not compile
/// until it is covered here.
pub fn stage_digest(prev: &str, d: &DockerInstructions) -> String {
    let DockerInstructions { volume, expose, env, label, entrypoint, cmd, workdir, user, healthcheck, exact_values } =
        d;
    fn strs(v: &[String]) -> impl Iterator<Item = &str> {
        v.iter().map(String::as_str)
    }
    fn pairs(m: &BTreeMap<String, String>) -> impl Iterator<Item = (&str, &str)> {
        m.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    fn command(digest: &mut DigestInput, shell: &'static str, exec: &'static str, c: Option<&Command>) {
        match c {
            None => {}
            Some(Command::Shell(s)) => {
                digest.str(shell, s);
            }
            Some(Command::Exec(v)) => {
                digest.list(exec, strs(v));
            }
        }
    }
    let mut digest = DigestInput::new("stapel-docker-instructions");
    digest
        .str("prev", prev)
        .bool("exact-values", *exact_values)
        .list("volume", strs(volume))
        .list("expose", strs(expose))
        .map("env", pairs(env))
        .map("label", pairs(label));
    command(&mut digest, "cmd-shell", "cmd-exec", cmd.as_ref());
    command(&mut digest, "entrypoint-shell", "entrypoint-exec", entrypoint.as_ref());
    digest.opt("workdir", workdir.as_deref()).opt("user", user.as_deref()).opt("healthcheck", healthcheck.as_deref());
    digest.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(d: &DockerInstructions, base: ContainerConfig) -> ContainerConfig {
        let mut c = base;
        apply(&prepare(d).unwrap(), &mut c);
        c
    }

    #[test]
    fn applies_every_directive() {
        let d = DockerInstructions {
            volume: vec!["/data".into()],
            expose: vec!["80".into(), "53/udp".into()],
            env: [("PATH".into(), "/app/bin:$PATH".into()), ("MODE".into(), "prod".into())].into(),
            label: [("team".into(), "core".into())].into(),
            entrypoint: Some(Command::Exec(vec!["/entry".into()])),
            cmd: Some(Command::Shell("echo hi".into())),
            workdir: Some("/app".into()),
            user: Some("1000:1000".into()),
            healthcheck: Some("--interval=5s CMD curl -f http://localhost/".into()),
            exact_values: false,
        };
        let mut base = ContainerConfig::default();
        base.set_env("PATH", "/bin");
        let c = applied(&d, base);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "User": "1000:1000",
                "ExposedPorts": {"53/udp": {}, "80": {}},
                "Env": ["PATH=/app/bin:$PATH", "MODE=prod"],
                "Entrypoint": ["/entry"],
                "Cmd": ["/bin/sh", "-c", "echo hi"],
                "Volumes": {"/data": {}},
                "WorkingDir": "/app",
                "Labels": {"team": "core"},
                "Healthcheck": {"Test": ["CMD-SHELL", "curl -f http://localhost/"], "Interval": 5_000_000_000u64},
            })
        );
    }

    #[test]
    fn commands_follow_werf() {
        let cmd = |c: Command| {
            let d = DockerInstructions { cmd: Some(c), ..Default::default() };
            let base = ContainerConfig { cmd: Some(vec!["base".into()]), ..Default::default() };
            applied(&d, base).cmd.unwrap()
        };
        assert_eq!(cmd(Command::Shell(r#"["nginx", "-g", "daemon off;"]"#.into())), ["nginx", "-g", "daemon off;"]);
        assert_eq!(cmd(Command::Shell("nginx -g 'daemon off;'".into())), ["/bin/sh", "-c", "nginx -g 'daemon off;'"]);
        assert_eq!(cmd(Command::Exec(vec!["a".into(), "b c".into()])), ["a", "b c"]);
        // An empty command changes nothing (buildah sets a command only when not empty).
        assert_eq!(cmd(Command::Exec(vec![])), ["base"]);
        assert_eq!(cmd(Command::Shell("[]".into())), ["base"]);
        // ENTRYPOINT alone keeps the base's CMD.
        let d = DockerInstructions { entrypoint: Some(Command::Shell("/run.sh".into())), ..Default::default() };
        let c = applied(&d, ContainerConfig { cmd: Some(vec!["base".into()]), ..Default::default() });
        assert_eq!(
            (c.entrypoint.unwrap(), c.cmd.unwrap()),
            (vec!["/bin/sh".into(), "-c".into(), "/run.sh".into()], vec!["base".to_string()])
        );
    }

    #[test]
    fn refuses_bad_json_and_healthcheck() {
        let d = DockerInstructions { cmd: Some(Command::Shell("[not json]".into())), ..Default::default() };
        assert_eq!(prepare(&d).unwrap_err().to_string(), r#"docker.CMD "[not json]" is not a JSON array of strings"#);
        let d = DockerInstructions { healthcheck: Some("--bogus=1 CMD true".into()), ..Default::default() };
        assert!(prepare(&d).is_err());
        let d = DockerInstructions { healthcheck: Some("NONE".into()), ..Default::default() };
        let c = applied(&d, ContainerConfig::default());
        assert_eq!(c.healthcheck.unwrap(), serde_json::json!({"Test": ["NONE"]}));
    }

    #[test]
    fn digest_covers_every_directive() {
        let base = DockerInstructions::default();
        let d0 = stage_digest("p", &base);
        assert_ne!(d0, stage_digest("q", &base));
        let variants = [
            DockerInstructions { volume: vec!["/v".into()], ..Default::default() },
            DockerInstructions { expose: vec!["80".into()], ..Default::default() },
            DockerInstructions { env: [("A".into(), "1".into())].into(), ..Default::default() },
            DockerInstructions { label: [("A".into(), "1".into())].into(), ..Default::default() },
            DockerInstructions { cmd: Some(Command::Shell("x".into())), ..Default::default() },
            DockerInstructions { cmd: Some(Command::Exec(vec!["x".into()])), ..Default::default() },
            DockerInstructions { entrypoint: Some(Command::Shell("x".into())), ..Default::default() },
            DockerInstructions { workdir: Some("/w".into()), ..Default::default() },
            DockerInstructions { user: Some("u".into()), ..Default::default() },
            DockerInstructions { healthcheck: Some("NONE".into()), ..Default::default() },
            DockerInstructions { exact_values: true, ..Default::default() },
        ];
        let mut seen = std::collections::BTreeSet::from([d0]);
        for v in &variants {
            assert!(seen.insert(stage_digest("p", v)), "{v:?}");
        }
    }
}
