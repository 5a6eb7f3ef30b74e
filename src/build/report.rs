//! werf's build report (`--save-build-report`, `--build-report-path` as JSON or `.env`).

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Default, Serialize)]
pub struct BuildReport {
    #[serde(rename = "Images")]
    pub images: BTreeMap<String, ImageReport>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct ImageReport {
    #[serde(rename = "WerfImageName")]
    pub werf_image_name: String,
    #[serde(rename = "DockerRepo")]
    pub docker_repo: String,
    #[serde(rename = "DockerTag")]
    pub docker_tag: String,
    #[serde(rename = "DockerImageID")]
    pub docker_image_id: String,
    #[serde(rename = "DockerImageDigest")]
    pub docker_image_digest: String,
    #[serde(rename = "DockerImageName")]
    pub docker_image_name: String,
    #[serde(rename = "Rebuilt")]
    pub rebuilt: bool,
    #[serde(rename = "Final")]
    pub final_: bool,
    #[serde(rename = "Stages")]
    pub stages: BTreeMap<String, StageReport>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageReport {
    pub digest: String,
    pub created_at_unix_nano: u128,
    pub size: u64,
    pub source_repo_type: String,
    pub base_image_pulled: bool,
    pub rebuilt: bool,
    pub build_time: String,
}

impl StageReport {
    pub fn cached(digest: &str, source: &str) -> Self {
        StageReport {
            digest: digest.into(),
            source_repo_type: source.into(),
            build_time: "0.00".into(),
            ..Default::default()
        }
    }

    pub fn built(digest: &str, secs: f64, size: u64, base_image_pulled: bool) -> Self {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        StageReport {
            digest: digest.into(),
            created_at_unix_nano: now,
            size,
            source_repo_type: "local".into(),
            base_image_pulled,
            rebuilt: true,
            build_time: format!("{secs:.2}"),
        }
    }
}

impl BuildReport {
    /// Write as JSON, or as an env file when the path ends in `.env`.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = if path.extension().is_some_and(|e| e == "env") {
            self.images
                .iter()
                .map(|(name, img)| format!("WERF_{}_DOCKER_IMAGE_NAME={}\n", env_name(name), img.docker_image_name))
                .collect()
        } else {
            serde_json::to_string_pretty(self)? + "\n"
        };
        std::fs::write(path, text).map_err(|e| anyhow::anyhow!("writing build report {}: {e}", path.display()))
    }
}

/// werf's env-file key part: upper case, `/ - .` → `_`.
fn env_name(image: &str) -> String {
    image.to_uppercase().chars().map(|c| if matches!(c, '/' | '-' | '.') { '_' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_names() {
        assert_eq!(env_name("back-end/api.v2"), "BACK_END_API_V2");
    }
}
