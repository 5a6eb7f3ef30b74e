//! `imageSpec`: edits applied to the final image config, per image and globally
//! (`build.imageSpec` in the meta document, merged into every final image).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::common::seq_or_null;

/// OCI config edits. List entries of `remove_labels` / `remove_env` are exact names or
/// `/REGEXP/`, kept as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSpec {
    pub author: Option<String>,
    pub clear_history: bool,
    pub keep_essential_werf_labels: bool,
    /// Deprecated in werf, no effect; kept so configs using it parse.
    pub clear_werf_labels: bool,
    pub remove_labels: Vec<String>,
    pub remove_volumes: Vec<String>,
    pub remove_env: Vec<String>,
    pub clear_cmd: bool,
    pub clear_entrypoint: bool,
    pub clear_user: bool,
    pub clear_working_dir: bool,
    pub volumes: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    pub user: Option<String>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub stop_signal: Option<String>,
    pub expose: Vec<String>,
    pub healthcheck: Option<Healthcheck>,
}

/// `imageSpec.config.healthcheck`; durations in seconds. werf reads the keys with Go's
/// default (lower-cased) names, hence `startperiod`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    #[serde(default, deserialize_with = "seq_or_null")]
    pub test: Vec<String>,
    #[serde(default)]
    pub interval: u64,
    #[serde(default)]
    pub timeout: u64,
    #[serde(default, rename = "startperiod")]
    pub start_period: u64,
    #[serde(default)]
    pub retries: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawImageSpec {
    author: Option<String>,
    #[serde(default)]
    clear_history: bool,
    config: Option<RawImageSpecConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawImageSpecConfig {
    #[serde(default)]
    keep_essential_werf_labels: bool,
    #[serde(default)]
    clear_werf_labels: bool,
    #[serde(default, deserialize_with = "seq_or_null")]
    remove_labels: Vec<String>,
    #[serde(default, deserialize_with = "seq_or_null")]
    remove_volumes: Vec<String>,
    #[serde(default, deserialize_with = "seq_or_null")]
    remove_env: Vec<String>,
    #[serde(default)]
    clear_cmd: bool,
    #[serde(default)]
    clear_entrypoint: bool,
    #[serde(default)]
    clear_user: bool,
    #[serde(default)]
    clear_working_dir: bool,
    #[serde(default, deserialize_with = "seq_or_null")]
    volumes: Vec<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    env: Option<BTreeMap<String, String>>,
    user: Option<String>,
    cmd: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    working_dir: Option<String>,
    stop_signal: Option<String>,
    #[serde(default, deserialize_with = "seq_or_null")]
    expose: Vec<String>,
    healthcheck: Option<Healthcheck>,
}

impl From<RawImageSpec> for ImageSpec {
    fn from(raw: RawImageSpec) -> Self {
        let c = raw.config.unwrap_or_default();
        ImageSpec {
            author: raw.author,
            clear_history: raw.clear_history,
            keep_essential_werf_labels: c.keep_essential_werf_labels,
            clear_werf_labels: c.clear_werf_labels,
            remove_labels: c.remove_labels,
            remove_volumes: c.remove_volumes,
            remove_env: c.remove_env,
            clear_cmd: c.clear_cmd,
            clear_entrypoint: c.clear_entrypoint,
            clear_user: c.clear_user,
            clear_working_dir: c.clear_working_dir,
            volumes: c.volumes,
            labels: c.labels.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            user: c.user,
            cmd: c.cmd,
            entrypoint: c.entrypoint,
            working_dir: c.working_dir,
            stop_signal: c.stop_signal,
            expose: c.expose,
            healthcheck: c.healthcheck,
        }
    }
}

/// `build.imageSpec`: only the fields that make sense for every image.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawGlobalImageSpec {
    author: Option<String>,
    #[serde(default)]
    clear_history: bool,
    config: Option<RawGlobalImageSpecConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawGlobalImageSpecConfig {
    #[serde(default)]
    keep_essential_werf_labels: bool,
    #[serde(default)]
    clear_werf_labels: bool,
    #[serde(default, deserialize_with = "seq_or_null")]
    remove_labels: Vec<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

impl From<RawGlobalImageSpec> for ImageSpec {
    fn from(raw: RawGlobalImageSpec) -> Self {
        let c = raw.config.unwrap_or_default();
        ImageSpec {
            author: raw.author,
            clear_history: raw.clear_history,
            keep_essential_werf_labels: c.keep_essential_werf_labels,
            clear_werf_labels: c.clear_werf_labels,
            remove_labels: c.remove_labels,
            labels: c.labels.unwrap_or_default(),
            ..ImageSpec::default()
        }
    }
}

/// Merges the global spec into a final image's own, as werf does: the global author and
/// labels win, flags are OR-ed, label removals are united (image's first).
pub(crate) fn merge_global(global: &ImageSpec, image: Option<ImageSpec>) -> ImageSpec {
    let mut merged = image.unwrap_or_default();
    if global.author.as_deref().is_some_and(|a| !a.is_empty()) {
        merged.author.clone_from(&global.author);
    }
    merged.clear_history |= global.clear_history;
    merged.keep_essential_werf_labels |= global.keep_essential_werf_labels;
    for (k, v) in &global.labels {
        merged.labels.insert(k.clone(), v.clone());
    }
    for label in &global.remove_labels {
        if !merged.remove_labels.contains(label) {
            merged.remove_labels.push(label.clone());
        }
    }
    merged
}
