//! Golden tests: the report of a two-image build, written as werf v2.77's
//! `ImagesReport.ToJsonData` and `ToEnvFileData` would write it for the same build
//! (field order and types from `pkg/build/build_report.go`).

use super::*;

const D1: &str = "0a7f1a6c21ad4b9a4f7d6b0f03e8e2d74b8e4a6ef4d5d1c33a5e0e4d";
const D2: &str = "1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccd";
const D3: &str = "2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccdde";
const D4: &str = "3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeef";
const COMMIT: &str = "4f1c2b3a4f1c2b3a4f1c2b3a4f1c2b3a4f1c2b3a";
const OLD_COMMIT: &str = "9e8d7c6b9e8d7c6b9e8d7c6b9e8d7c6b9e8d7c6b";

fn facts(digest: &str, ts: u64, n: u8, created: &str, layers: &[u64], commit: &str) -> StageFacts {
    StageFacts {
        repo: "127.0.0.1:5055/demo".into(),
        id: format!("{digest}-{ts}"),
        config_digest: format!("sha256:{}", format!("{n:x}").repeat(64)),
        manifest_digest: format!("sha256:{}", format!("{:x}", n + 1).repeat(64)),
        created: Some(created.into()),
        layer_sizes: layers.to_vec(),
        commit: commit.into(),
    }
}

/// `back-end.v2`: a Dockerfile image found whole in the repo. `app`: a staged
/// Dockerfile image whose last two stages were rebuilt (the base was not pulled:
/// its stage was local), with two `run` stages whose times werf sums.
fn two_images() -> BuildReport {
    let b1 = facts(D1, 1_760_000_000_100, 2, "2025-10-09T08:53:20Z", &[2_000_000], OLD_COMMIT);
    let back = image_record(
        "back-end.v2",
        "dockerfile",
        true,
        &b1,
        vec![StageRecord::new("FROM", &b1, StageMeta::FOUND, 0.0)],
        &[0.004],
        0.31,
    );
    let a1 = facts(D2, 1_760_000_000_200, 4, "2025-10-09T08:53:20.5Z", &[2_000_000], OLD_COMMIT);
    let a2 = facts(D3, 1_760_000_500_000, 6, "2025-10-09T09:01:40Z", &[2_000_000, 512], COMMIT);
    let a3 = facts(D4, 1_760_000_501_000, 8, "2025-10-09T11:01:41+02:00", &[2_000_000, 512, 1024], COMMIT);
    let stages = vec![
        StageRecord::new("FROM", &a1, StageMeta::FOUND, 0.0),
        StageRecord::new("run", &a2, StageMeta::BUILT_ON_LOCAL, 0.0),
        StageRecord::new("run", &a3, StageMeta::BUILT_ON_LOCAL, 0.0),
    ];
    let app = image_record("app", "staged", false, &a3, stages, &[0.0, 1.234, 0.5], 1.8449);
    BuildReport {
        runtime: Runtime::default(),
        images: [("back-end.v2".to_string(), back), ("app".to_string(), app)].into_iter().collect(),
        images_by_platform: BTreeMap::new(),
    }
}

const GOLDEN_JSON: &str = r#"{
	"Runtime": {
		"Backend": "buildah",
		"InContainer": false
	},
	"Images": {
		"app": {
			"WerfImageName": "app",
			"ConfigType": "staged",
			"DockerRepo": "127.0.0.1:5055/demo",
			"DockerTag": "3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeef-1760000501000",
			"DockerImageID": "sha256:8888888888888888888888888888888888888888888888888888888888888888",
			"DockerImageDigest": "sha256:9999999999999999999999999999999999999999999999999999999999999999",
			"DockerImageName": "127.0.0.1:5055/demo:3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeef-1760000501000",
			"TargetPlatform": "linux/amd64",
			"Rebuilt": true,
			"Final": false,
			"Size": 2001536,
			"BuildTime": "1.84",
			"Commit": "4f1c2b3a4f1c2b3a4f1c2b3a4f1c2b3a4f1c2b3a",
			"Stages": [
				{
					"Name": "FROM",
					"DockerImageName": "127.0.0.1:5055/demo:1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccd-1760000000200",
					"DockerTag": "1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccd-1760000000200",
					"DockerImageID": "sha256:4444444444444444444444444444444444444444444444444444444444444444",
					"DockerImageDigest": "sha256:5555555555555555555555555555555555555555555555555555555555555555",
					"CreatedAt": 1760000000000000000,
					"Size": 2000000,
					"SourceType": "",
					"BaseImagePulled": false,
					"Rebuilt": false,
					"BuildTime": "0.00",
					"Commit": "9e8d7c6b9e8d7c6b9e8d7c6b9e8d7c6b9e8d7c6b"
				},
				{
					"Name": "run",
					"DockerImageName": "127.0.0.1:5055/demo:2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccdde-1760000500000",
					"DockerTag": "2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccdde-1760000500000",
					"DockerImageID": "sha256:6666666666666666666666666666666666666666666666666666666666666666",
					"DockerImageDigest": "sha256:7777777777777777777777777777777777777777777777777777777777777777",
					"CreatedAt": 1760000500000000000,
					"Size": 2000512,
					"SourceType": "",
					"BaseImagePulled": false,
					"Rebuilt": true,
					"BuildTime": "1.73",
					"Commit": "4f1c2b3a4f1c2b3a4f1c2b3a4f1c2b3a4f1c2b3a"
				},
				{
					"Name": "run",
					"DockerImageName": "127.0.0.1:5055/demo:3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeef-1760000501000",
					"DockerTag": "3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeef-1760000501000",
					"DockerImageID": "sha256:8888888888888888888888888888888888888888888888888888888888888888",
					"DockerImageDigest": "sha256:9999999999999999999999999999999999999999999999999999999999999999",
					"CreatedAt": 1760000501000000000,
					"Size": 2001536,
					"SourceType": "",
					"BaseImagePulled": false,
					"Rebuilt": true,
					"BuildTime": "1.73",
					"Commit": "4f1c2b3a4f1c2b3a4f1c2b3a4f1c2b3a4f1c2b3a"
				}
			]
		},
		"back-end.v2": {
			"WerfImageName": "back-end.v2",
			"ConfigType": "dockerfile",
			"DockerRepo": "127.0.0.1:5055/demo",
			"DockerTag": "0a7f1a6c21ad4b9a4f7d6b0f03e8e2d74b8e4a6ef4d5d1c33a5e0e4d-1760000000100",
			"DockerImageID": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
			"DockerImageDigest": "sha256:3333333333333333333333333333333333333333333333333333333333333333",
			"DockerImageName": "127.0.0.1:5055/demo:0a7f1a6c21ad4b9a4f7d6b0f03e8e2d74b8e4a6ef4d5d1c33a5e0e4d-1760000000100",
			"TargetPlatform": "linux/amd64",
			"Rebuilt": false,
			"Final": true,
			"Size": 2000000,
			"BuildTime": "0.31",
			"Commit": "9e8d7c6b9e8d7c6b9e8d7c6b9e8d7c6b9e8d7c6b",
			"Stages": [
				{
					"Name": "FROM",
					"DockerImageName": "127.0.0.1:5055/demo:0a7f1a6c21ad4b9a4f7d6b0f03e8e2d74b8e4a6ef4d5d1c33a5e0e4d-1760000000100",
					"DockerTag": "0a7f1a6c21ad4b9a4f7d6b0f03e8e2d74b8e4a6ef4d5d1c33a5e0e4d-1760000000100",
					"DockerImageID": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
					"DockerImageDigest": "sha256:3333333333333333333333333333333333333333333333333333333333333333",
					"CreatedAt": 1760000000000000000,
					"Size": 2000000,
					"SourceType": "",
					"BaseImagePulled": false,
					"Rebuilt": false,
					"BuildTime": "0.00",
					"Commit": "9e8d7c6b9e8d7c6b9e8d7c6b9e8d7c6b9e8d7c6b"
				}
			]
		}
	},
	"ImagesByPlatform": {}
}
"#;

const GOLDEN_ENV: &str = "\
WERF_APP_DOCKER_IMAGE_NAME=127.0.0.1:5055/demo:3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeef-1760000501000
WERF_APP_DOCKER_IMAGE_ID=sha256:8888888888888888888888888888888888888888888888888888888888888888
WERF_APP_DOCKER_IMAGE_DIGEST=sha256:9999999999999999999999999999999999999999999999999999999999999999
WERF_APP_DOCKER_REPO=127.0.0.1:5055/demo
WERF_APP_DOCKER_TAG=3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeef-1760000501000
WERF_APP_WERF_IMAGE_NAME=app
WERF_APP_FINAL=false
WERF_BACK_END_V2_DOCKER_IMAGE_NAME=127.0.0.1:5055/demo:0a7f1a6c21ad4b9a4f7d6b0f03e8e2d74b8e4a6ef4d5d1c33a5e0e4d-1760000000100
WERF_BACK_END_V2_DOCKER_IMAGE_ID=sha256:2222222222222222222222222222222222222222222222222222222222222222
WERF_BACK_END_V2_DOCKER_IMAGE_DIGEST=sha256:3333333333333333333333333333333333333333333333333333333333333333
WERF_BACK_END_V2_DOCKER_REPO=127.0.0.1:5055/demo
WERF_BACK_END_V2_DOCKER_TAG=0a7f1a6c21ad4b9a4f7d6b0f03e8e2d74b8e4a6ef4d5d1c33a5e0e4d-1760000000100
WERF_BACK_END_V2_WERF_IMAGE_NAME=back-end.v2
WERF_BACK_END_V2_FINAL=true
";

/// Line by line, so a difference names its field.
fn assert_lines(got: &str, want: &str) {
    for (n, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "line {}", n + 1);
    }
    assert_eq!(got.lines().count(), want.lines().count());
    assert_eq!(got, want);
}

#[test]
fn json_matches_werf() {
    assert_lines(&two_images().to_json(), GOLDEN_JSON);
}

#[test]
fn env_file_matches_werf() {
    assert_lines(&two_images().to_env_file(), GOLDEN_ENV);
}

#[test]
fn json_and_env_file_read_back() {
    let r = two_images();
    assert_eq!(BuildReport::parse_json(GOLDEN_JSON).unwrap(), r);
    r.validate().unwrap();
    let env = BuildReport::parse_env_file(GOLDEN_ENV).unwrap();
    for (name, img) in &env.images {
        let full = &r.images[name];
        assert_eq!(
            (&img.docker_image_name, &img.docker_image_id, &img.docker_image_digest, &img.docker_repo),
            (&full.docker_image_name, &full.docker_image_id, &full.docker_image_digest, &full.docker_repo)
        );
        assert_eq!(
            (&img.docker_tag, &img.werf_image_name, img.final_),
            (&full.docker_tag, &full.werf_image_name, full.final_)
        );
    }
    assert_eq!(env.images.len(), 2);
    env.validate().unwrap();
}

/// What werf's Go decoder accepts: unknown fields, `null` stages, missing fields.
#[test]
fn json_reads_werf_variants() {
    let text = r#"{"Images":{"a":{"WerfImageName":"a","DockerRepo":"r","DockerTag":"t","DockerImageID":"i",
        "DockerImageName":"r:t","Final":true,"Stages":null,"NewField":1}},"Operations":{},"StageCache":{}}"#;
    let r = BuildReport::parse_json(text).unwrap();
    assert!(r.images["a"].stages.is_empty() && r.images["a"].final_);
    r.validate().unwrap();
}

#[test]
fn invalid_reports_are_refused_as_werf_does() {
    let mut r = two_images();
    assert!(BuildReport::default().validate().unwrap_err().to_string().contains("contains no images"));
    r.images.get_mut("app").unwrap().docker_tag.clear();
    assert_eq!(r.validate().unwrap_err().to_string(), "image \"app\" has empty DockerTag");
    let mut r = two_images();
    r.images.get_mut("app").unwrap().stages[1].docker_image_id.clear();
    assert_eq!(r.validate().unwrap_err().to_string(), "image \"app\" stage \"run\" has empty DockerImageID");
    assert!(BuildReport::parse_env_file("WERF_A_DOCKER_IMAGE_NAME\n").is_err());
}

#[test]
fn empty_stages_are_null_and_html_is_escaped() {
    let mut r = BuildReport::default();
    let img = ImageRecord { werf_image_name: "a<b>&c\u{2028}".into(), ..Default::default() };
    r.images.insert("x".into(), img);
    let json = r.to_json();
    assert!(json.contains("\"WerfImageName\": \"a\\u003cb\\u003e\\u0026c\\u2028\""), "{json}");
    assert!(json.contains("\t\t\t\"Stages\": null\n"), "{json}");
}

#[test]
fn env_prefixes() {
    assert_eq!(env_prefix("back-end/api.v2"), "WERF_BACK_END_API_V2_");
    assert_eq!(env_prefix(""), "WERF_");
    let mut r = BuildReport::default();
    r.images.insert(String::new(), ImageRecord { docker_image_name: "p:t".into(), ..Default::default() });
    assert!(r.to_env_file().starts_with("WERF_DOCKER_IMAGE_NAME=p:t\nWERF_DOCKER_IMAGE_ID=\n"));
}

#[test]
fn stage_names() {
    assert_eq!(dockerfile_stage_name("FROM"), "FROM");
    assert_eq!(dockerfile_stage_name("RUN"), "run");
    assert_eq!(dockerfile_stage_name("STOPSIGNAL"), "stopsignal");
    assert_eq!(dockerfile_stage_name("HEALTHCHECK"), "healthcheck");
}

#[test]
fn report_paths() {
    let p = |save, path: Option<&str>| {
        save_path(save, path.map(Path::new)).map(|o| o.map(|(p, f)| (p.display().to_string(), f)))
    };
    assert_eq!(p(false, Some("r.json")).unwrap(), None);
    assert_eq!(p(true, None).unwrap(), Some((DEFAULT_PATH.into(), Format::Json)));
    assert_eq!(p(true, Some("")).unwrap(), Some((DEFAULT_PATH.into(), Format::Json)));
    assert_eq!(p(true, Some("out/r.json")).unwrap(), Some(("out/r.json".into(), Format::Json)));
    assert_eq!(p(true, Some("out/r.env")).unwrap(), Some(("out/r.env".into(), Format::EnvFile)));
    assert_eq!(p(true, Some("out.d/report")).unwrap(), Some(("out.d/report.json".into(), Format::Json)));
    assert_eq!(p(true, Some(".env")).unwrap(), Some((".env".into(), Format::EnvFile)));
    assert!(p(true, Some("r.yaml")).unwrap_err().to_string().contains("extension must be either .json or .env"));
}

#[test]
fn rfc3339_seconds() {
    assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(unix_seconds("2025-10-09T08:53:20Z"), Some(1_760_000_000));
    assert_eq!(unix_seconds("2025-10-09T08:53:20.999999999Z"), Some(1_760_000_000));
    assert_eq!(unix_seconds("2025-10-09T10:53:20+02:00"), Some(1_760_000_000));
    assert_eq!(unix_seconds("2024-02-29T00:00:00Z"), Some(1_709_164_800));
    assert_eq!(unix_seconds("garbage"), None);
}
