//! werf v2.77's build report from real builds, read with `jq` as werf's docs and CI
//! scripts do, and used by `export --use-build-report`.

use crate::common::*;
use crate::repo::fresh_repo;
use std::path::Path;

fn jq(filter: &str, file: &Path) -> String {
    let out = run_ok(std::process::Command::new("jq").args(["-r", "-c", filter]).arg(file));
    stdout(&out).trim_end().to_string()
}

/// Two images, built twice: `api` (a Dockerfile image) is found whole the second time,
/// `app` (staged) is rebuilt from its COPY on.
#[test]
fn two_image_report_in_werf_schema_read_by_jq() {
    let t = "two_image_report_in_werf_schema_read_by_jq";
    if !rootless_env(t) {
        return;
    }
    let Some(reg) = registry(t) else { return };
    assert!(which("jq").is_some(), "{t}: jq is not installed");
    let env = Env::new();
    let dir = env.path().join("project");
    let werf = "project: rep\nconfigVersion: 1\n---\nimage: api\ndockerfile: Dockerfile.api\n---\nimage: app\ndockerfile: Dockerfile\nstaged: true\n";
    git_project(
        &dir,
        &[
            ("werf.yaml", werf),
            ("Dockerfile.api", &format!("FROM {reg}/base/busybox:latest\nRUN echo api > /api\n")),
            (
                "Dockerfile",
                &format!(
                    "FROM {reg}/base/busybox:latest\nRUN echo one > /one\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt > /copy\n"
                ),
            ),
            ("hello.txt", "hello\n"),
        ],
        &[],
    );
    let build = |report: &Path| {
        run_ok(
            env.slipway()
                .args(["build", "--insecure-registry", "--dir"])
                .arg(&dir)
                .arg("--save-build-report")
                .arg("--build-report-path")
                .arg(report),
        )
    };
    let r1 = env.path().join("r1.json");
    build(&r1);
    assert_eq!(jq(".Images.app.Stages | map(.Name)", &r1), r#"["FROM","run","copy","run"]"#);
    assert_eq!(jq("[.Images[] | .Rebuilt]", &r1), "[true,true]");

    write(&dir, "hello.txt", "changed\n");
    git(&dir, &["commit", "-q", "-am", "change"]);
    let r2 = env.path().join("r2.json");
    build(&r2);

    // The issue's query and werf's docs' query, unchanged.
    assert_eq!(jq(".Images.app.Stages[] | select(.Rebuilt) | .Name", &r2), "copy\nrun");
    let names = jq(".Images | to_entries | map({key: .key, value: .value.DockerImageName}) | from_entries", &r2);
    let v: serde_json::Value = serde_json::from_str(&names).unwrap();
    assert!(v["app"].as_str().unwrap().starts_with("rep:") && v["api"].as_str().unwrap().starts_with("rep:"), "{v}");
    assert_eq!(jq("[.Images.api.Rebuilt, .Images.app.Rebuilt]", &r2), "[false,true]");
    assert_eq!(jq(".Images.api.Stages | map(.Rebuilt) | any", &r2), "false");
    assert_eq!(
        jq("[.Images.app.Stages[] | select(.Rebuilt) | .SourceType, .BaseImagePulled]", &r2),
        r#"["",false,"",false]"#
    );
    // The api image and app's first two stages are the first build's.
    assert_eq!(jq(".Images.api.DockerImageName", &r2), jq(".Images.api.DockerImageName", &r1));
    assert_eq!(jq(".Images.app.Stages[1].DockerTag", &r2), jq(".Images.app.Stages[1].DockerTag", &r1));
    assert_ne!(jq(".Images.app.Stages[3].Commit", &r2), jq(".Images.app.Stages[1].Commit", &r2));

    // werf's field order and types.
    assert_eq!(jq("keys_unsorted", &r2), r#"["Runtime","Images","ImagesByPlatform"]"#);
    assert_eq!(jq(".Runtime", &r2), r#"{"Backend":"buildah","InContainer":false}"#);
    assert_eq!(
        jq(".Images.app | keys_unsorted", &r2),
        r#"["WerfImageName","ConfigType","DockerRepo","DockerTag","DockerImageID","DockerImageDigest","DockerImageName","TargetPlatform","Rebuilt","Final","Size","BuildTime","Commit","Stages"]"#
    );
    assert_eq!(
        jq(".Images.app.Stages[0] | keys_unsorted", &r2),
        r#"["Name","DockerImageName","DockerTag","DockerImageID","DockerImageDigest","CreatedAt","Size","SourceType","BaseImagePulled","Rebuilt","BuildTime","Commit"]"#
    );
    assert_eq!(
        jq("[.Images.api.ConfigType, .Images.app.ConfigType, .Images.app.TargetPlatform]", &r2),
        r#"["dockerfile","staged","linux/amd64"]"#
    );
    assert_eq!(
        jq(
            "[.Images[] | (.Size, .BuildTime, .Final), (.Stages[] | .CreatedAt, .Size, .BuildTime) | type] | unique",
            &r2
        ),
        r#"["boolean","number","string"]"#
    );
    assert_eq!(
        jq("[.Images[] | .BuildTime, .Stages[].BuildTime | test(\"^[0-9]+\\\\.[0-9]{2}$\")] | all", &r2),
        "true"
    );
    assert_eq!(jq("[.Images[] | .DockerImageName == .DockerRepo + \":\" + .DockerTag] | all", &r2), "true");
    assert_eq!(
        jq("[.Images[] | .Stages[-1].DockerImageName == .DockerImageName and .Stages[-1].Size == .Size] | all", &r2),
        "true"
    );
    assert_eq!(jq("[.Images[] | .Stages[] | .CreatedAt > 1700000000000000000 and .Size > 0] | all", &r2), "true");
    assert_eq!(jq("[.Images[] | .DockerImageID, .DockerImageDigest | startswith(\"sha256:\")] | all", &r2), "true");

    // The env file: werf's keys, the JSON's values; `export --use-build-report` reads it.
    let r2env = env.path().join("r2.env");
    build(&r2env);
    let text = std::fs::read_to_string(&r2env).unwrap();
    let app = jq(".Images.app.DockerImageName", &r2);
    for line in [
        format!("WERF_APP_DOCKER_IMAGE_NAME={app}"),
        format!("WERF_APP_DOCKER_IMAGE_ID={}", jq(".Images.app.DockerImageID", &r2)),
        format!("WERF_APP_DOCKER_IMAGE_DIGEST={}", jq(".Images.app.DockerImageDigest", &r2)),
        "WERF_APP_DOCKER_REPO=rep".into(),
        format!("WERF_APP_DOCKER_TAG={}", jq(".Images.app.DockerTag", &r2)),
        "WERF_APP_WERF_IMAGE_NAME=app".into(),
        "WERF_APP_FINAL=true".into(),
        "WERF_API_FINAL=true".into(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
    assert_eq!(text.lines().count(), 14, "{text}");

    let dest = fresh_repo(&reg, "from-report");
    let out = run_ok(
        env.slipway()
            .args(["export", "--insecure-registry", "--use-build-report", "--build-report-path"])
            .arg(&r2env)
            .arg("--dir")
            .arg(&dir)
            .args(["--tag", &format!("{dest}/%image%:%image_content_based_tag%")]),
    );
    let log = stdout(&out);
    assert!(!log.contains("Building image"), "export built instead of using the report:\n{log}");
    let tag = jq(".Images.app.DockerTag", &r2);
    assert!(log.contains(&format!("Exported app to {dest}/app:{tag}")), "{log}");
    assert!(log.contains("Exported api to"), "{log}");

    // werf's flag shape: the report path must be given.
    let out = env
        .slipway()
        .args(["export", "--use-build-report", "--dir"])
        .arg(&dir)
        .args(["--tag", &format!("{dest}/%image%:x")])
        .env_remove("WERF_BUILD_REPORT_PATH")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("build report path must be specified"), "{}", stderr(&out));
}
