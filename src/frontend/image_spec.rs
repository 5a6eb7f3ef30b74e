//! werf's `imageSpec`: the final image's config rewritten after the last Dockerfile step
//! (its own stage, with no layer), as werf's imageSpec stage does.

use crate::config::{Healthcheck, ImageSpec};
use crate::engine::digest::DigestInput;
use anyhow::Context;
use slipway_storage::image::ImageConfig;

/// The imageSpec stage's digest: the previous stage's and every field of the spec, by
/// name (maps sorted, lists in the order written). The struct is destructured, so a new
/// field does not compile until it is covered here.
pub fn stage_digest(prev: &str, spec: &ImageSpec) -> String {
    let ImageSpec {
        author,
        clear_history,
        keep_essential_werf_labels,
        clear_werf_labels,
        remove_labels,
        remove_volumes,
        remove_env,
        clear_cmd,
        clear_entrypoint,
        clear_user,
        clear_working_dir,
        volumes,
        labels,
        env,
        user,
        cmd,
        entrypoint,
        working_dir,
        stop_signal,
        expose,
        healthcheck,
    } = spec;
    fn strs(v: &[String]) -> impl Iterator<Item = &str> {
        v.iter().map(String::as_str)
    }
    fn pairs(m: &std::collections::BTreeMap<String, String>) -> impl Iterator<Item = (&str, &str)> {
        m.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    let mut digest = DigestInput::new("image-spec");
    digest
        .str("prev", prev)
        .opt("author", author.as_deref())
        .bool("clear-history", *clear_history)
        .bool("keep-essential-werf-labels", *keep_essential_werf_labels)
        .bool("clear-werf-labels", *clear_werf_labels)
        .list("remove-labels", strs(remove_labels))
        .list("remove-volumes", strs(remove_volumes))
        .list("remove-env", strs(remove_env))
        .bool("clear-cmd", *clear_cmd)
        .bool("clear-entrypoint", *clear_entrypoint)
        .bool("clear-user", *clear_user)
        .bool("clear-working-dir", *clear_working_dir)
        .list("volumes", strs(volumes))
        .map("labels", pairs(labels))
        .map("env", pairs(env))
        .opt("user", user.as_deref());
    if let Some(cmd) = cmd {
        digest.list("cmd", strs(cmd));
    }
    if let Some(entrypoint) = entrypoint {
        digest.list("entrypoint", strs(entrypoint));
    }
    digest
        .opt("working-dir", working_dir.as_deref())
        .opt("stop-signal", stop_signal.as_deref())
        .list("expose", strs(expose));
    if let Some(Healthcheck { test, interval, timeout, start_period, retries }) = healthcheck {
        digest
            .list("healthcheck-test", strs(test))
            .num("healthcheck-interval", *interval)
            .num("healthcheck-timeout", *timeout)
            .num("healthcheck-start-period", *start_period)
            .num("healthcheck-retries", *retries);
    }
    digest.finish()
}

/// `%project%` and `%image%` in label and env values, as werf expands them.
fn expand(value: &str, project: &str, image: &str) -> String {
    value.replace("%project%", project).replace("%image%", image)
}

/// A `removeLabels`/`removeVolumes`/`removeEnv` item: a name, or `/regex/`.
enum Matcher {
    Name(String),
    Regex(regex_lite::Regex),
}

impl Matcher {
    fn parse(item: &str) -> anyhow::Result<Self> {
        Ok(match item.strip_prefix('/').and_then(|r| r.strip_suffix('/')) {
            Some(re) => Matcher::Regex(
                regex_lite::Regex::new(re).with_context(|| format!("imageSpec: invalid regex {item:?}"))?,
            ),
            None => Matcher::Name(item.to_string()),
        })
    }

    fn is_match(&self, s: &str) -> bool {
        match self {
            Matcher::Name(n) => n == s,
            Matcher::Regex(r) => r.is_match(s),
        }
    }
}

fn any_of(items: &[String]) -> anyhow::Result<impl Fn(&str) -> bool> {
    let ms = items.iter().map(|i| Matcher::parse(i)).collect::<anyhow::Result<Vec<_>>>()?;
    Ok(move |s: &str| ms.iter().any(|m| m.is_match(s)))
}

/// Apply `spec` to `config`. werf's own labels are written again when the stage is
/// stored, so removing them here cannot lose them (they are essential).
pub fn apply(spec: &ImageSpec, config: &mut ImageConfig, project: &str, image: &str) -> anyhow::Result<()> {
    if let Some(a) = &spec.author {
        config.author = Some(a.clone());
    }
    if spec.clear_history {
        config.history.clear();
    }
    let c = &mut config.config;
    let remove_label = any_of(&spec.remove_labels)?;
    if let Some(labels) = c.labels.as_mut() {
        labels.retain(|k, _| !remove_label(k));
    }
    for (k, v) in &spec.labels {
        c.labels.get_or_insert_with(Default::default).insert(k.clone(), expand(v, project, image));
    }
    let remove_volume = any_of(&spec.remove_volumes)?;
    if let Some(v) = c.volumes.as_mut() {
        v.retain(|k, _| !remove_volume(k));
    }
    for v in &spec.volumes {
        c.volumes.get_or_insert_with(Default::default).insert(v.clone(), serde_json::json!({}));
    }
    // Values are shell words expanded against the env the image had before this
    // stage (werf's `shlexProcessWord(v, imageInfo.Env)`): `PATH=${PATH}:/x`.
    let before = c.env.clone().unwrap_or_default();
    let lookup =
        |name: &str| before.iter().rev().find_map(|e| e.strip_prefix(name)?.strip_prefix('=').map(str::to_string));
    let remove_env = any_of(&spec.remove_env)?;
    if let Some(env) = c.env.as_mut() {
        env.retain(|e| !remove_env(e.split_once('=').map_or(e.as_str(), |(k, _)| k)));
    }
    for (k, v) in &spec.env {
        let value = crate::frontend::dockerfile::syntax::expand_word(&expand(v, project, image), &lookup, '\\')
            .map_err(|e| anyhow::anyhow!("imageSpec env {k}: {e}"))?;
        c.set_env(k, &value);
    }
    if spec.clear_cmd {
        c.cmd = None;
    }
    if spec.clear_entrypoint {
        c.entrypoint = None;
    }
    if spec.clear_user {
        c.user = None;
    }
    if spec.clear_working_dir {
        c.working_dir = None;
    }
    if let Some(u) = &spec.user {
        c.user = Some(u.clone());
    }
    if let Some(cmd) = &spec.cmd {
        c.cmd = Some(cmd.clone());
    }
    if let Some(e) = &spec.entrypoint {
        c.entrypoint = Some(e.clone());
        // As in a Dockerfile: a new ENTRYPOINT drops the inherited CMD unless one is given.
        if spec.cmd.is_none() {
            c.cmd = None;
        }
    }
    if let Some(w) = &spec.working_dir {
        c.working_dir = Some(w.clone());
    }
    if let Some(s) = &spec.stop_signal {
        c.stop_signal = Some(s.clone());
    }
    if !spec.expose.is_empty() {
        // The set is replaced, not merged (werf).
        let ports = spec.expose.iter().map(|p| {
            let p = if p.contains('/') { p.clone() } else { format!("{p}/tcp") };
            (p, serde_json::json!({}))
        });
        c.exposed_ports = Some(ports.collect());
    }
    if let Some(h) = &spec.healthcheck {
        let ns = |s: u64| s * 1_000_000_000;
        c.healthcheck = Some(serde_json::json!({
            "Test": h.test, "Interval": ns(h.interval), "Timeout": ns(h.timeout),
            "StartPeriod": ns(h.start_period), "Retries": h.retries,
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_the_config() {
        let mut config: ImageConfig = serde_json::from_str(
            r#"{"config":{"Env":["A=1","SECRET_X=2","PATH=/bin"],"Labels":{"keep":"1","drop.me":"2","tmp-a":"3"},"Cmd":["x"],"User":"app"},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"x"}]}"#,
        )
        .unwrap();
        let spec = ImageSpec {
            author: Some("me".into()),
            clear_history: true,
            remove_labels: vec!["drop.me".into(), "/^tmp-/".into()],
            remove_env: vec!["/^SECRET_/".into()],
            labels: [("app".to_string(), "%project%/%image%".to_string())].into(),
            env: [("B".to_string(), "%image%".to_string())].into(),
            clear_cmd: true,
            clear_user: true,
            expose: vec!["80".into()],
            ..Default::default()
        };
        config.config.exposed_ports = Some([("22/tcp".to_string(), serde_json::json!({}))].into_iter().collect());
        apply(&spec, &mut config, "proj", "web").unwrap();
        let c = &config.config;
        assert_eq!(config.author.as_deref(), Some("me"));
        assert!(config.history.is_empty());
        let labels: Vec<(&str, &str)> =
            c.labels.as_ref().unwrap().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(labels, [("app", "proj/web"), ("keep", "1")]);
        assert_eq!(c.env.as_deref().unwrap(), ["A=1", "PATH=/bin", "B=web"]);
        assert!(c.cmd.is_none() && c.user.is_none());
        let ports: Vec<&String> = c.exposed_ports.as_ref().unwrap().keys().collect();
        assert_eq!(ports, ["80/tcp"]);
        assert!(
            apply(&ImageSpec { remove_labels: vec!["/(/".into()], ..Default::default() }, &mut config, "p", "i")
                .is_err()
        );
    }

    #[test]
    fn env_expands_against_the_image_and_entrypoint_clears_cmd() {
        let mut config: ImageConfig = serde_json::from_str(
            r#"{"config":{"Env":["PATH=/bin","OLD=o"],"Cmd":["x"]},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        let spec = ImageSpec {
            env: [
                ("PATH".to_string(), "${PATH}:/x".to_string()),
                ("Q".to_string(), "'$OLD' \"$OLD\" $MISSING-%image%".to_string()),
            ]
            .into(),
            remove_env: vec!["OLD".into()],
            entrypoint: Some(vec!["/e".into()]),
            ..Default::default()
        };
        apply(&spec, &mut config, "p", "web").unwrap();
        let c = &config.config;
        assert_eq!(c.env.as_deref().unwrap(), ["PATH=/bin:/x", "Q=$OLD o -web"]);
        assert!(c.cmd.is_none());
        assert_eq!(c.entrypoint.as_deref().unwrap(), ["/e"]);
    }
}
