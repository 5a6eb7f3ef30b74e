//! werf-giterminism.yaml parsing and the secrets allowance.

use super::*;

fn parse(text: &str) -> Result<GiterminismConfig, String> {
    GiterminismConfig::parse("werf-giterminism.yaml", text).map_err(|e| e.to_string())
}

#[test]
fn parses_werfs_schema() {
    let text = "giterminismConfigVersion: \"1\"
cli:
  allowCustomTags: true
config:
  allowUncommitted: false
  allowUncommittedTemplates: [.werf/a.tmpl]
  goTemplateRendering:
    allowEnvVariables: [CI_COMMIT_SHA, /^APP_.*$/]
    allowUncommittedFiles: [a]
  secrets:
    allowEnvVariables: [CI_JOB_TOKEN]
    allowFiles: [~/.ssh/id_rsa]
    allowValueIds: [npmrc]
  stapel:
    allowFromLatest: true
    git: {allowBranch: true}
    mount: {allowBuildDir: true, allowFromPaths: [/tmp]}
  dockerfile:
    allowUncommitted: [Dockerfile]
    allowUncommittedDockerignoreFiles: [.dockerignore]
    allowContextAddFiles: [gen]
helm:
  allowUncommittedFiles: [.helm/values.yaml]
includes:
  allowIncludesUpdate: true
";
    let c = parse(text).unwrap();
    assert_eq!(c.config.go_template_rendering.allow_env_variables, ["CI_COMMIT_SHA", "/^APP_.*$/"]);
    assert_eq!(c.config.secrets.allow_env_variables, ["CI_JOB_TOKEN"]);
    assert_eq!(c.config.secrets.allow_files, ["~/.ssh/id_rsa"]);
    assert_eq!(c.config.secrets.allow_value_ids, ["npmrc"]);
    assert_eq!(c.config.dockerfile.allow_context_add_files, ["gen"]);
    assert!(c.cli.allow_custom_tags && c.config.stapel.git.allow_branch && c.includes.allow_includes_update);
    assert_eq!(parse("giterminismConfigVersion: 1\n").unwrap(), GiterminismConfig::default());
}

#[test]
fn rejects_wrong_types_and_unknown_keys() {
    // (file, error)
    let cases: &[(&str, &str)] = &[
        (
            "giterminismConfigVersion: 1\nconfig:\n  goTemplateRendering:\n    allowEnvVariables: FOO\n",
            "werf-giterminism.yaml:4: expected sequence start",
        ),
        ("giterminismConfigVersion: 1\nconfig: 5\n", "werf-giterminism.yaml:2: expected mapping start"),
        (
            "giterminismConfigVersion: 1\nconfig:\n  secrets:\n    allowEnv: [A]\n",
            "werf-giterminism.yaml:4: unknown field `allowEnv`, expected one of allowEnvVariables, allowFiles, allowValueIds",
        ),
        (
            "giterminismConfigVersion: 1\nconfg: {}\n",
            "werf-giterminism.yaml:2: unknown field `confg`, expected one of giterminismConfigVersion, cli, config, helm, includes",
        ),
        (
            "giterminismConfigVersion: 1\ncli:\n  allowCustomTags: yes please\n",
            "werf-giterminism.yaml:3: invalid boolean",
        ),
        ("config: {}\n", "werf-giterminism.yaml:1: missing field `giterminismConfigVersion`"),
        (
            "giterminismConfigVersion: 2\n",
            "werf-giterminism.yaml:1: invalid value: integer `2`, expected giterminismConfigVersion 1",
        ),
        ("- a\n", "werf-giterminism.yaml:1: expected mapping start"),
    ];
    for (text, want) in cases {
        assert_eq!(parse(text).unwrap_err(), *want, "{text:?}");
    }
}

fn host() -> HostPaths {
    HostPaths { home: "/home/dev".to_owned(), cwd: "/work/app".to_owned() }
}

#[test]
fn matches_allowed_files_like_werf() {
    // (allowFiles entry, secret src, allowed)
    let cases: &[(&str, &str, bool)] = &[
        ("~/.ssh/id_rsa", "~/.ssh/id_rsa", true),
        ("~/.ssh/id_rsa", "/home/dev/.ssh/id_rsa", true),
        ("/home/dev/.ssh/id_rsa", "~/.ssh/id_rsa", true),
        ("~/.ssh/id_rsa", "~/.ssh/id_ed25519", false),
        ("~/.ssh", "~/.ssh/id_rsa", true),
        ("~/.ssh/*", "~/.ssh/id_rsa", true),
        ("~/.ssh/**", "~/.ssh/keys/id_rsa", true),
        ("~/.ssh/id_*", "~/.ssh/id_rsa", true),
        ("~/.ssh/id_*", "~/.ssh/config", false),
        ("~/.ssh/id_*", "~/.ssh/id_rsa/../config", false),
        ("secrets/token", "secrets/token", true),
        ("secrets/token", "/work/app/secrets/token", true),
        ("secrets/token", "../app/secrets/token", true),
        ("secrets/token", "/work/other/secrets/token", false),
        ("/etc/**/*.pem", "/etc/ssl/certs/a.pem", true),
        ("/etc/**/*.pem", "/etc/a.pem", true),
        ("/etc/**/*.pem", "/etc/ssl/a.key", false),
        ("~/.ssh/id_rsa", "~/.ssh/id_rsa.pub", false),
    ];
    for (pattern, src, want) in cases {
        assert_eq!(file_allowed(&[pattern.to_string()], src, &host()), *want, "{pattern} {src}");
    }
    assert!(!file_allowed(&[], "~/.ssh/id_rsa", &host()));
}

#[test]
fn path_globs_are_linear() {
    use std::time::{Duration, Instant};
    let start = Instant::now();
    let deep = "/d".repeat(2000) + "/f";
    assert!(!path_glob_matches(&("/**".repeat(200) + "/x"), &deep));
    assert!(path_glob_matches(&("/**".repeat(200) + "/f"), &deep));
    assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
}

const WERF: &str = "configVersion: 1
project: p
---
image: app
dockerfile: Dockerfile
secrets:
- env: CI_JOB_TOKEN
- src: ~/.ssh/id_rsa
- id: npmrc
  value: registry=x
";

#[test]
fn secrets_need_an_allowance() {
    let config = crate::config::parse("werf.yaml", WERF).unwrap();
    let check = |giterminism: &str| {
        parse(giterminism).unwrap().check_secrets("werf.yaml", &config.images, &host()).map_err(|e| e.to_string())
    };
    let tail = "is not allowed by giterminism: using env and file secrets complicates the sharing and \
                reproducibility of the configuration in CI jobs and among developers; to allow it, list it in \
                config.secrets.";
    // (werf-giterminism.yaml, outcome)
    let cases: Vec<(&str, Result<(), String>)> = vec![
        (
            "giterminismConfigVersion: 1\n",
            Err(format!("werf.yaml:7: secret \"CI_JOB_TOKEN\" {tail}allowEnvVariables of werf-giterminism.yaml")),
        ),
        (
            "giterminismConfigVersion: 1\nconfig:\n  goTemplateRendering:\n    allowEnvVariables: [CI_JOB_TOKEN]\n",
            Err(format!("werf.yaml:7: secret \"CI_JOB_TOKEN\" {tail}allowEnvVariables of werf-giterminism.yaml")),
        ),
        (
            "giterminismConfigVersion: 1\nconfig:\n  secrets:\n    allowEnvVariables: [CI_*]\n",
            Err(format!("werf.yaml:7: secret \"CI_JOB_TOKEN\" {tail}allowEnvVariables of werf-giterminism.yaml")),
        ),
        (
            "giterminismConfigVersion: 1\nconfig:\n  secrets:\n    allowEnvVariables: [CI_JOB_TOKEN]\n",
            Err(format!("werf.yaml:8: secret \"~/.ssh/id_rsa\" {tail}allowFiles of werf-giterminism.yaml")),
        ),
        (
            "giterminismConfigVersion: 1\nconfig:\n  secrets:\n    allowEnvVariables: [CI_JOB_TOKEN]\n    allowFiles: [~/.ssh]\n",
            Err(format!("werf.yaml:9: secret \"npmrc\" {tail}allowValueIds of werf-giterminism.yaml")),
        ),
        (
            "giterminismConfigVersion: 1\nconfig:\n  secrets:\n    allowEnvVariables: [CI_JOB_TOKEN]\n    allowFiles: [~/.ssh]\n    allowValueIds: [npmrc]\n",
            Ok(()),
        ),
    ];
    for (giterminism, want) in cases {
        assert_eq!(check(giterminism), want, "{giterminism}");
    }
}

#[test]
fn mounts_need_an_allowance() {
    let werf = "project: p\nconfigVersion: 1\n---\nimage: app\nfrom: busybox\nmount:\n- from: tmp_dir\n  to: /t\n\
                - from: build_dir\n  to: /b\n- fromPath: ~/cache/go\n  to: /go\n";
    let config = crate::config::parse("werf.yaml", werf).unwrap();
    let check = |giterminism: &str| {
        parse(giterminism).unwrap().check_mounts("werf.yaml", &config.images).map_err(|e| e.to_string())
    };
    let head = "the configuration with potential external dependency found in the werf config:";
    let cases: Vec<(&str, Result<(), String>)> = vec![
        (
            "giterminismConfigVersion: 1\n",
            Err(format!(
                "werf.yaml:9: {head} \"mount {{ from: build_dir, ... }}\" not allowed by giterminism (the use of \
                 the build_dir mount may lead to unpredictable behavior when used in parallel and potentially \
                 affect reproducibility and reliability); to allow it, set config.stapel.mount.allowBuildDir: \
                 true in werf-giterminism.yaml"
            )),
        ),
        (
            "giterminismConfigVersion: 1\nconfig:\n  stapel:\n    mount:\n      allowBuildDir: true\n      allowFromPaths: [~/other]\n",
            Err(format!(
                "werf.yaml:11: {head} \"mount {{ fromPath: ~/cache/go, ... }}\" not allowed by giterminism (the \
                 use of the fromPath mount may lead to unpredictable behavior when used in parallel and \
                 potentially affect reproducibility and reliability; the data in the mounted directory has no \
                 effect on the final image digest); to allow it, set config.stapel.mount.allowFromPaths in \
                 werf-giterminism.yaml"
            )),
        ),
        (
            "giterminismConfigVersion: 1\nconfig:\n  stapel:\n    mount:\n      allowBuildDir: true\n      allowFromPaths: [~/cache/**]\n",
            Ok(()),
        ),
        (
            "giterminismConfigVersion: 1\nconfig:\n  stapel:\n    mount:\n      allowBuildDir: true\n      allowFromPaths: [~/cache]\n",
            Ok(()),
        ),
        (
            "giterminismConfigVersion: 1\nconfig:\n  stapel:\n    mount:\n      allowBuildDir: true\n      allowFromPaths: [~/cache/go]\n",
            Ok(()),
        ),
    ];
    for (giterminism, want) in cases {
        assert_eq!(check(giterminism), want, "{giterminism}");
    }
}

#[test]
fn matches_uncommitted_paths_like_werfs_path_matcher() {
    // (allowUncommitted* entry, path relative to the project, allowed)
    let cases: &[(&str, &str, bool)] = &[
        ("Dockerfile", "Dockerfile", true),
        ("./Dockerfile", "Dockerfile", true),
        ("Dockerfile", "Dockerfile.dev", false),
        ("Dockerfile*", "Dockerfile.dev", true),
        ("docker", "docker/Dockerfile", true),
        ("docker/", "docker/app/Dockerfile", true),
        ("docker/*", "docker/app/Dockerfile", true),
        ("docker/*", "docker", true),
        ("docker/**/*", "docker/Dockerfile", true),
        ("**/Dockerfile", "a/b/Dockerfile", true),
        ("**/Dockerfile", "Dockerfile", true),
        ("*/Dockerfile", "Dockerfile", false),
        (".werf/*.tmpl", ".werf/a.tmpl", true),
        (".werf/*.tmpl", ".werf/sub/a.tmpl", false),
        (".", "any/file", true),
        ("**/*", "any/file", true),
        ("/Dockerfile", "Dockerfile", false),
        ("docker/../Dockerfile", "Dockerfile", true),
        ("[", "[", false),
    ];
    for (pattern, path, want) in cases {
        assert_eq!(path_matcher_matches(&[pattern.to_string()], path), *want, "{pattern} {path}");
    }
    assert!(!path_matcher_matches(&[], "Dockerfile"));
}
