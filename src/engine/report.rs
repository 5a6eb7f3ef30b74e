//! werf's build report, as werf v2.77 writes and reads it (`pkg/build/build_report.go`):
//! `--save-build-report` with `--build-report-path` (`.json`, `.env`, or no extension
//! for JSON), and `export --use-build-report`.
//!
//! The JSON is what Go's `json.MarshalIndent(report, "", "\t")` prints for werf's
//! types: fields in declaration order, map keys sorted, tab indents, `<`, `>`, `&`,
//! U+2028 and U+2029 escaped, an empty `Stages` as `null`, a trailing newline. The
//! env file has werf's seven keys per image, images sorted by name (werf's order is
//! Go's map order, that is random).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// werf's default report path, relative to the working directory.
pub const DEFAULT_PATH: &str = ".werf-build-report.json";

/// `ImagesReport`. `Operations` and `StageCache` (werf writes them only with
/// `--log-debug`, and omits them when empty) are never written.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildReport {
    #[serde(rename = "Runtime", default)]
    pub runtime: Runtime,
    #[serde(rename = "Images", default, deserialize_with = "null_as_default")]
    pub images: BTreeMap<String, ImageRecord>,
    /// Filled by werf only with `WERF_ENABLE_REPORT_BY_PLATFORM=1`; `{}` otherwise.
    #[serde(rename = "ImagesByPlatform", default, deserialize_with = "null_as_default")]
    pub images_by_platform: BTreeMap<String, BTreeMap<String, ImageRecord>>,
}

/// `RuntimeInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runtime {
    /// `buildah` (werf says `docker` for its Docker server backend).
    #[serde(rename = "Backend", default)]
    pub backend: String,
    /// `WERF_CONTAINERIZED=yes`.
    #[serde(rename = "InContainer", default)]
    pub in_container: bool,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime { backend: "buildah".into(), in_container: false }
    }
}

/// `ReportImageRecord`: the image's last stage, plus what happened to its stages.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageRecord {
    #[serde(rename = "WerfImageName")]
    pub werf_image_name: String,
    /// `dockerfile`, `staged` (a Dockerfile image with `staged: true`) or `stapel`.
    #[serde(rename = "ConfigType")]
    pub config_type: String,
    #[serde(rename = "DockerRepo")]
    pub docker_repo: String,
    /// The stage ID, `DIGEST-TIMESTAMP_MS`.
    #[serde(rename = "DockerTag")]
    pub docker_tag: String,
    /// The config digest.
    #[serde(rename = "DockerImageID")]
    pub docker_image_id: String,
    /// The manifest digest.
    #[serde(rename = "DockerImageDigest")]
    pub docker_image_digest: String,
    /// `DockerRepo:DockerTag`.
    #[serde(rename = "DockerImageName")]
    pub docker_image_name: String,
    #[serde(rename = "TargetPlatform")]
    pub target_platform: String,
    /// At least one of the image's stages was built in this run.
    #[serde(rename = "Rebuilt")]
    pub rebuilt: bool,
    #[serde(rename = "Final")]
    pub final_: bool,
    /// Bytes: the sum of the last stage's layer blob sizes.
    #[serde(rename = "Size")]
    pub size: i64,
    /// Seconds spent on the image, `%.2f`.
    #[serde(rename = "BuildTime")]
    pub build_time: String,
    /// `werf-project-repo-commit` of the last stage.
    #[serde(rename = "Commit")]
    pub commit: String,
    #[serde(rename = "Stages", serialize_with = "empty_as_null", deserialize_with = "null_as_default")]
    pub stages: Vec<StageRecord>,
}

/// `ReportStageRecord`.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StageRecord {
    /// werf's stage name: `from`, `beforeInstall`, … for Stapel; `FROM`, `run`, `copy`, …
    /// (the lower-case keyword) for staged Dockerfile instructions; `imageSpec`.
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "DockerImageName")]
    pub docker_image_name: String,
    #[serde(rename = "DockerTag")]
    pub docker_tag: String,
    #[serde(rename = "DockerImageID")]
    pub docker_image_id: String,
    #[serde(rename = "DockerImageDigest")]
    pub docker_image_digest: String,
    /// Unix nanoseconds of the image config's `created` (whole seconds, as werf reads
    /// it from a registry).
    #[serde(rename = "CreatedAt")]
    pub created_at: i64,
    /// Bytes: the sum of the stage's layer blob sizes.
    #[serde(rename = "Size")]
    pub size: i64,
    /// See [`StageMeta`].
    #[serde(rename = "SourceType")]
    pub source_type: String,
    #[serde(rename = "BaseImagePulled")]
    pub base_image_pulled: bool,
    #[serde(rename = "Rebuilt")]
    pub rebuilt: bool,
    /// `%.2f` seconds; werf sums the time of every stage with this name in the image.
    #[serde(rename = "BuildTime")]
    pub build_time: String,
    #[serde(rename = "Commit")]
    pub commit: String,
}

/// werf's `StageMeta` as the report shows it.
///
/// - A stage found in the primary storage: not rebuilt, `SourceType` empty.
/// - A stage found in a secondary repo (and copied to the primary): `secondary`.
/// - A built stage: where its base came from. The first stage's base image: `registry`
///   and pulled when pulled now, empty when it was already local (or `scratch`). A
///   previous stage or a Dockerfile stage: empty when its layers were local, `repo`
///   (not "pulled") when fetched from the primary, `cache-repo` (pulled) from a cache repo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StageMeta {
    pub rebuilt: bool,
    pub base_image_pulled: bool,
    pub source_type: &'static str,
}

impl StageMeta {
    pub const FOUND: StageMeta = StageMeta { rebuilt: false, base_image_pulled: false, source_type: "" };
    pub const SECONDARY: StageMeta = StageMeta { rebuilt: false, base_image_pulled: false, source_type: "secondary" };
    pub const BUILT_ON_LOCAL: StageMeta = StageMeta { rebuilt: true, base_image_pulled: false, source_type: "" };
    pub const BUILT_ON_PULLED_IMAGE: StageMeta =
        StageMeta { rebuilt: true, base_image_pulled: true, source_type: "registry" };
    pub const BUILT_ON_REPO_STAGE: StageMeta =
        StageMeta { rebuilt: true, base_image_pulled: false, source_type: "repo" };
    pub const BUILT_ON_CACHE_STAGE: StageMeta =
        StageMeta { rebuilt: true, base_image_pulled: true, source_type: "cache-repo" };
}

/// What the engine knows about one stored stage.
#[derive(Debug, Clone, Default)]
pub struct StageFacts {
    /// Where the stage is: the project name (local store) or the repository.
    pub repo: String,
    /// `DIGEST-TIMESTAMP_MS`.
    pub id: String,
    pub config_digest: String,
    pub manifest_digest: String,
    /// The config's `created`, RFC 3339.
    pub created: Option<String>,
    pub layer_sizes: Vec<u64>,
    /// `werf-project-repo-commit`.
    pub commit: String,
}

impl StageRecord {
    pub fn new(name: &str, facts: &StageFacts, meta: StageMeta, secs: f64) -> StageRecord {
        StageRecord {
            name: name.to_string(),
            docker_image_name: format!("{}:{}", facts.repo, facts.id),
            docker_tag: facts.id.clone(),
            docker_image_id: facts.config_digest.clone(),
            docker_image_digest: facts.manifest_digest.clone(),
            created_at: facts.created.as_deref().and_then(unix_seconds).map_or(0, |s| s.saturating_mul(1_000_000_000)),
            size: total_size(&facts.layer_sizes),
            source_type: meta.source_type.to_string(),
            base_image_pulled: meta.base_image_pulled,
            rebuilt: meta.rebuilt,
            build_time: seconds(secs),
            commit: facts.commit.clone(),
        }
    }
}

/// An image's record from its last stage. `durations` are the seconds each stage took,
/// in `stages` order: werf reports per stage the sum over the image's stages of that
/// name (`Image.AddStageDuration` keys by name), and so does this.
pub fn image_record(
    name: &str,
    config_type: &str,
    final_: bool,
    last: &StageFacts,
    mut stages: Vec<StageRecord>,
    durations: &[f64],
    secs: f64,
) -> ImageRecord {
    let mut by_name: BTreeMap<&str, f64> = BTreeMap::new();
    for (s, d) in stages.iter().zip(durations) {
        *by_name.entry(&s.name).or_default() += d;
    }
    let sums: Vec<String> =
        stages.iter().map(|s| seconds(by_name.get(s.name.as_str()).copied().unwrap_or(0.0))).collect();
    for (s, t) in stages.iter_mut().zip(sums) {
        s.build_time = t;
    }
    ImageRecord {
        werf_image_name: name.to_string(),
        config_type: config_type.to_string(),
        docker_repo: last.repo.clone(),
        docker_tag: last.id.clone(),
        docker_image_id: last.config_digest.clone(),
        docker_image_digest: last.manifest_digest.clone(),
        docker_image_name: format!("{}:{}", last.repo, last.id),
        target_platform: "linux/amd64".into(),
        rebuilt: stages.iter().any(|s| s.rebuilt),
        final_,
        size: total_size(&last.layer_sizes),
        build_time: seconds(secs),
        commit: last.commit.clone(),
        stages,
    }
}

/// werf's staged-Dockerfile stage name for an instruction keyword: `FROM` for the base,
/// the keyword in lower case (BuildKit's command name) for the others.
pub fn dockerfile_stage_name(keyword: &str) -> String {
    if keyword.eq_ignore_ascii_case("FROM") { "FROM".into() } else { keyword.to_ascii_lowercase() }
}

/// The report format, from the path's extension as werf reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    EnvFile,
}

/// Where `build` writes the report: nothing without `--save-build-report`; the default
/// path without `--build-report-path`; `.json` added to a path without extension; an
/// extension other than `.json` or `.env` refused (werf's `GetBuildReportPathAndFormat`).
pub fn save_path(save: bool, path: Option<&Path>) -> anyhow::Result<Option<(PathBuf, Format)>> {
    if !save {
        return Ok(None);
    }
    let Some(p) = path.filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(Some((PathBuf::from(DEFAULT_PATH), Format::Json)));
    };
    match go_ext(p).as_str() {
        ".json" => Ok(Some((p.to_path_buf(), Format::Json))),
        ".env" => Ok(Some((p.to_path_buf(), Format::EnvFile))),
        "" => {
            let mut s = p.as_os_str().to_owned();
            s.push(".json");
            Ok(Some((PathBuf::from(s), Format::Json)))
        }
        _ => anyhow::bail!(
            "invalid --build-report-path {:?}: extension must be either .json or .env or unspecified",
            p.display().to_string()
        ),
    }
}

/// Go's `filepath.Ext`: from the last `.` of the last path element (`.env` for `.env`).
fn go_ext(p: &Path) -> String {
    let s = p.to_string_lossy();
    let last = s.rsplit('/').next().unwrap_or("");
    last.rfind('.').map_or(String::new(), |i| last[i..].to_string())
}

impl BuildReport {
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter::default());
        self.serialize(&mut ser).expect("a report always serializes");
        let mut s = String::from_utf8(out).expect("serde_json writes UTF-8");
        s.push('\n');
        s
    }

    /// werf's `ToEnvFileData`, images in name order.
    pub fn to_env_file(&self) -> String {
        let mut out = String::new();
        for (name, r) in &self.images {
            let p = env_prefix(name);
            out.push_str(&format!("{p}DOCKER_IMAGE_NAME={}\n", r.docker_image_name));
            out.push_str(&format!("{p}DOCKER_IMAGE_ID={}\n", r.docker_image_id));
            out.push_str(&format!("{p}DOCKER_IMAGE_DIGEST={}\n", r.docker_image_digest));
            out.push_str(&format!("{p}DOCKER_REPO={}\n", r.docker_repo));
            out.push_str(&format!("{p}DOCKER_TAG={}\n", r.docker_tag));
            out.push_str(&format!("{p}WERF_IMAGE_NAME={}\n", r.werf_image_name));
            out.push_str(&format!("{p}FINAL={}\n", r.final_));
        }
        out
    }

    pub fn save(&self, path: &Path, format: Format) -> anyhow::Result<()> {
        let text = match format {
            Format::Json => self.to_json(),
            Format::EnvFile => self.to_env_file(),
        };
        std::fs::write(path, text).map_err(|e| anyhow::anyhow!("writing build report {}: {e}", path.display()))
    }

    /// Read a report as `--use-build-report` does: an env file if the path ends in
    /// `.env`, JSON otherwise; then check it (werf's `validateBuildReport`).
    pub fn load(path: &Path) -> anyhow::Result<BuildReport> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("unable to read build report file {:?}: {e}", path.display().to_string()))?;
        let report = if go_ext(path) == ".env" { Self::parse_env_file(&text) } else { Self::parse_json(&text) }
            .map_err(|e| anyhow::anyhow!("unable to parse build report file {:?}: {e}", path.display().to_string()))?;
        report
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid build report file {:?}: {e}", path.display().to_string()))?;
        Ok(report)
    }

    pub fn parse_json(text: &str) -> anyhow::Result<BuildReport> {
        serde_json::from_str(text).map_err(|e| anyhow::anyhow!("unable to decode build report: {e}"))
    }

    /// Only the image-level keys are in an env file; `WerfImageName` keys the images.
    pub fn parse_env_file(text: &str) -> anyhow::Result<BuildReport> {
        let mut values = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) =
                line.split_once('=').ok_or_else(|| anyhow::anyhow!("malformed env line {}: {line:?}", n + 1))?;
            values.insert(k.to_string(), v.to_string());
        }
        let get = |p: &str, k: &str| values.get(&format!("{p}{k}")).cloned().unwrap_or_default();
        let mut report = BuildReport::default();
        for key in values.keys().filter(|k| k.ends_with("_DOCKER_IMAGE_NAME")) {
            let p = key.strip_suffix("DOCKER_IMAGE_NAME").expect("checked suffix");
            let record = ImageRecord {
                werf_image_name: get(p, "WERF_IMAGE_NAME"),
                docker_image_name: get(p, "DOCKER_IMAGE_NAME"),
                docker_image_id: get(p, "DOCKER_IMAGE_ID"),
                docker_image_digest: get(p, "DOCKER_IMAGE_DIGEST"),
                docker_repo: get(p, "DOCKER_REPO"),
                docker_tag: get(p, "DOCKER_TAG"),
                final_: values.get(&format!("{p}FINAL")).is_some_and(|v| v == "true"),
                ..Default::default()
            };
            report.images.insert(record.werf_image_name.clone(), record);
        }
        Ok(report)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.images.is_empty() {
            anyhow::bail!("build report contains no images");
        }
        let platforms =
            self.images_by_platform.iter().flat_map(|(n, m)| m.iter().map(move |(p, r)| (format!("{n}[{p}]"), r)));
        for (name, r) in self.images.iter().map(|(n, r)| (n.clone(), r)).chain(platforms) {
            for (field, value) in [
                ("WerfImageName", &r.werf_image_name),
                ("DockerImageName", &r.docker_image_name),
                ("DockerRepo", &r.docker_repo),
                ("DockerTag", &r.docker_tag),
                ("DockerImageID", &r.docker_image_id),
            ] {
                if value.is_empty() {
                    anyhow::bail!("image {name:?} has empty {field}");
                }
            }
            for (i, s) in r.stages.iter().enumerate() {
                if s.name.is_empty() {
                    anyhow::bail!("image {name:?} stage #{i} has empty Name");
                }
                if s.docker_image_name.is_empty() {
                    anyhow::bail!("image {name:?} stage {:?} has empty DockerImageName", s.name);
                }
                if s.docker_image_id.is_empty() {
                    anyhow::bail!("image {name:?} stage {:?} has empty DockerImageID", s.name);
                }
            }
        }
        Ok(())
    }
}

/// werf's env-file key prefix: `WERF_` + the name upper-cased with `/ - .` → `_` + `_`;
/// `WERF_` alone for the nameless image.
pub fn env_prefix(image: &str) -> String {
    if image.is_empty() {
        return "WERF_".into();
    }
    let name: String =
        image.to_uppercase().chars().map(|c| if matches!(c, '/' | '-' | '.') { '_' } else { c }).collect();
    format!("WERF_{name}_")
}

fn seconds(secs: f64) -> String {
    format!("{secs:.2}")
}

fn total_size(sizes: &[u64]) -> i64 {
    i64::try_from(sizes.iter().sum::<u64>()).unwrap_or(i64::MAX)
}

/// Seconds since the epoch of an RFC 3339 time (`2026-01-02T03:04:05.678Z`,
/// `…+02:00`); the fraction is dropped.
fn unix_seconds(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    let num =
        |r: std::ops::Range<usize>| t.get(r).filter(|s| s.bytes().all(|c| c.is_ascii_digit()))?.parse::<i64>().ok();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d, h, mi, s) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &t[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let v = o[1..3].parse::<i64>().ok()? * 3600 + o[4..6].parse::<i64>().ok()? * 60;
            if o.starts_with('-') { -v } else { v }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86400 + h * 3600 + mi * 60 + s - offset)
}

fn empty_as_null<S: Serializer>(v: &[StageRecord], s: S) -> Result<S::Ok, S::Error> {
    if v.is_empty() { s.serialize_none() } else { v.serialize(s) }
}

fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `json.MarshalIndent(v, "", "\t")`: serde_json's pretty output with tabs, plus Go's
/// HTML-safe escapes (`<`, `>`, `&`, U+2028, U+2029 as `\uXXXX`).
struct GoFormatter(serde_json::ser::PrettyFormatter<'static>);

impl Default for GoFormatter {
    fn default() -> Self {
        GoFormatter(serde_json::ser::PrettyFormatter::with_indent(b"\t"))
    }
}

impl serde_json::ser::Formatter for GoFormatter {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
    fn write_string_fragment<W: ?Sized + std::io::Write>(&mut self, w: &mut W, fragment: &str) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') {
                w.write_all(&fragment.as_bytes()[start..i])?;
                write!(w, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
