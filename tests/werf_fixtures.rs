//! werf's own e2e fixtures (`tests/werf-fixtures/`, see its README): every Stapel
//! werf.yaml of werf's `test/e2e/*/_fixtures` either builds, as the unprivileged user
//! from the local registry's busybox, with its stages and files checked, or is refused
//! (or fails) with exactly one line naming `werf.yaml:LINE` and the key. The table below
//! is the expected outcome per fixture: a change in behaviour fails the test.

use std::path::Path;

use crate::common::{Env, git_project, registry, rootless_env, stderr, stdout};

enum Outcome {
    /// Builds: each image's stage names (build report), then `sh -c CMD` in an image
    /// prints OUT.
    Builds {
        stages: &'static [(&'static str, &'static [&'static str])],
        runs: &'static [(&'static str, &'static str, &'static str)],
    },
    /// `slipway build` fails with exactly this one line on stderr.
    Refused(&'static str),
    /// `slipway build` fails with one line on stderr that starts with this: a remote
    /// `git` mapping's host cannot be reached (the rest is git's words for why). The
    /// build runs with [`NO_NETWORK`], so it fails the same with or without internet.
    Unreachable(&'static str),
    /// werf's legacy mount suite (`base_test.go`): built twice, with
    /// `FROM_CACHE_VERSION` 1 then 2 and loose giterminism, in the project directory;
    /// each build's log has the line given, and then `sh -c CMD` in the image prints OUT.
    BuildsTwice { first: &'static str, second: &'static str, run: (&'static str, &'static str) },
}

struct Fixture {
    /// The directory under `tests/werf-fixtures/`.
    dir: &'static str,
    /// Variables the werf.yaml template reads (allowed by its werf-giterminism.yaml).
    env: &'static [(&'static str, &'static str)],
    outcome: Outcome,
}

use Outcome::{Builds, BuildsTwice, Refused, Unreachable};

/// For the fixtures that fetch from github.com: git's https goes to a proxy on the
/// discard port of 127.0.0.1 (connection refused at once); the local registry is not
/// proxied.
const NO_NETWORK: &[(&str, &str)] = &[
    ("https_proxy", "http://127.0.0.1:9"),
    ("HTTPS_PROXY", "http://127.0.0.1:9"),
    ("no_proxy", "127.0.0.1,localhost"),
    ("NO_PROXY", "127.0.0.1,localhost"),
];

/// werf's check that the mount point is empty in the image (`[[ -z "$(ls -A /mount)" ]]`).
const MOUNT_EMPTY: (&str, &str) = ("test -z \"$(ls -A /mount 2>/dev/null)\" && echo empty", "empty\n");

const FIXTURES: &[Fixture] = &[
    Fixture {
        dir: "build/complex/state0",
        env: NO_NETWORK,
        outcome: Unreachable(
            "Error: image stapel-shell (werf.yaml:39): werf.yaml:46: git url https://github.com/golang/example: fetching https://github.com/golang/example: git fetch failed: fatal: unable to access 'https://github.com/golang/example/': ",
        ),
    },
    Fixture {
        dir: "build/complex/state1",
        env: NO_NETWORK,
        outcome: Unreachable(
            "Error: image stapel-shell (werf.yaml:41): werf.yaml:48: git url https://github.com/golang/example: fetching https://github.com/golang/example: git fetch failed: fatal: unable to access 'https://github.com/golang/example/': ",
        ),
    },
    Fixture {
        dir: "build/custom_tag/state0",
        env: &[],
        outcome: Refused(
            "Error: image base-dockerfile (werf.yaml:4): platform linux/arm64: slipway builds linux/amd64 only so far",
        ),
    },
    Fixture {
        dir: "build/images_dependencies/state0",
        env: &[],
        outcome: Builds { stages: &[("stapel", &["from", "install", "dependenciesAfterInstall", "setup"])], runs: &[] },
    },
    Fixture {
        dir: "build/import/no_system_dirs/state0",
        env: &[],
        outcome: Builds { stages: &[("destination", &["from", "dependenciesBeforeInstall"])], runs: &[] },
    },
    Fixture {
        dir: "build/import/symlink_dest/state0",
        env: &[],
        outcome: Builds { stages: &[("target", &["from", "beforeInstall", "dependenciesAfterInstall"])], runs: &[] },
    },
    Fixture {
        dir: "build/multiarch/state0",
        env: &[("ENABLE_STAPEL_IMAGE", "1"), ("ENABLE_STAGED_DOCKERFILE_IMAGE", "0"), ("ENABLE_DOCKERFILE_IMAGE", "0")],
        outcome: Refused(
            "Error: image orange (werf.yaml:10): platform linux/arm64: slipway builds linux/amd64 only so far",
        ),
    },
    Fixture {
        dir: "build/network/stapel",
        env: &[],
        outcome: Builds { stages: &[("stapel", &["from", "setup"])], runs: &[] },
    },
    Fixture {
        dir: "build/network/stapel_yml",
        env: &[],
        outcome: Refused(
            "Error: building image stapel (werf.yaml:4), stage setup: the shell commands exited with code 1",
        ),
    },
    Fixture {
        dir: "build/network/stapel_yml_success",
        env: &[],
        outcome: Builds { stages: &[("stapel", &["from", "setup"])], runs: &[] },
    },
    Fixture {
        dir: "build/scratch/state0",
        env: &[],
        outcome: Builds { stages: &[("stapel-scratch", &["from", "dependenciesBeforeInstall"])], runs: &[] },
    },
    Fixture {
        dir: "build/simple/state0",
        env: &[],
        outcome: Builds {
            stages: &[("stapel-shell", &["from", "gitArchive", "setup"])],
            runs: &[
                ("stapel-shell", "cat /file; ls /created-by-setup", "filecontent\n/created-by-setup\n"),
                ("dockerfile", "cat /file; ls /created-by-run", "filecontent\n/created-by-run\n"),
            ],
        },
    },
    Fixture {
        dir: "export/complex/state0",
        env: &[],
        outcome: Builds {
            stages: &[("backend", &["from"]), ("frombackend", &["from"]), ("frombackend2", &["from", "install"])],
            runs: &[("frombackend2", "test -x /bin/sh && echo shell", "shell\n")],
        },
    },
    Fixture {
        dir: "kube-run/simple/state0",
        env: &[],
        outcome: Builds {
            stages: &[("main", &["from", "gitArchive"])],
            runs: &[("main", "head -n 3 /opt/app.sh", "#!/bin/bash\n\nset -eu\n")],
        },
    },
    Fixture {
        dir: "legacy_e2e/build/stapel_image/mount/tmp_dir",
        env: &[],
        outcome: BuildsTwice { first: "Result number is 2", second: "Result number is 2", run: MOUNT_EMPTY },
    },
    Fixture {
        dir: "legacy_e2e/build/stapel_image/mount/build_dir",
        env: &[],
        outcome: BuildsTwice { first: "Result number is 2", second: "Result number is 4", run: MOUNT_EMPTY },
    },
    Fixture {
        dir: "legacy_e2e/build/stapel_image/mount/from_path",
        env: &[],
        outcome: BuildsTwice { first: "Result number is 4", second: "Result number is 6", run: MOUNT_EMPTY },
    },
    Fixture {
        dir: "stages/copy/complex/state0",
        env: &[("ARTIFACT_CACHE_VERSION", "1"), ("ARTIFACT_DATA", "one")],
        outcome: Builds { stages: &[("backend", &["from", "dependenciesBeforeSetup"])], runs: &[] },
    },
    Fixture {
        dir: "stages/copy/complex/state1",
        env: &[("ARTIFACT_CACHE_VERSION", "1"), ("ARTIFACT_DATA", "one")],
        outcome: Builds { stages: &[("backend", &["from", "dependenciesAfterSetup"])], runs: &[] },
    },
    Fixture {
        dir: "stages/copy/simple",
        env: &[("ARTIFACT_CACHE_VERSION", "1"), ("ARTIFACT_DATA", "one")],
        outcome: Builds { stages: &[("backend", &["from", "dependenciesBeforeSetup"])], runs: &[] },
    },
];

fn fixtures_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/werf-fixtures")
}

/// The fixture's files, relative to its directory, with `@REGISTRY@` replaced.
fn files(dir: &Path, reg: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read_to_string(&p).unwrap().replace("@REGISTRY@", reg)));
            }
        }
    }
    out.sort();
    out
}

/// Every fixture directory (one with a werf.yaml) is in the table.
#[test]
fn every_fixture_has_an_expected_outcome() {
    let root = fixtures_root();
    let mut found = Vec::new();
    let mut todo = vec![root.clone()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.file_name().is_some_and(|n| n == "werf.yaml") {
                found.push(p.parent().unwrap().strip_prefix(&root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    let mut listed: Vec<String> = FIXTURES.iter().map(|f| f.dir.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed);
}

#[test]
fn werf_e2e_fixtures_build_or_are_refused_in_one_line() {
    let test = "werf_e2e_fixtures_build_or_are_refused_in_one_line";
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else {
        return;
    };
    let mut failures = Vec::new();
    for f in FIXTURES {
        if let Err(e) = check(f, &reg) {
            failures.push(format!("{}: {e}", f.dir));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn check(f: &Fixture, reg: &str) -> Result<(), String> {
    let mut env = Env::new();
    for (k, v) in f.env {
        env = env.with_var(k, v);
    }
    let dir = env.path().join("project");
    let files = files(&fixtures_root().join(f.dir), reg);
    let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    git_project(&dir, &files, &[]);
    if let BuildsTwice { first, second, run: (cmd, want) } = &f.outcome {
        for (version, line) in [("1", first), ("2", second)] {
            let out = env
                .slipway()
                .current_dir(&dir)
                .env("FROM_CACHE_VERSION", version)
                .env("WERF_LOOSE_GITERMINISM", "1")
                .args(["build", "--insecure-registry"])
                .output()
                .unwrap();
            if !out.status.success() || !stdout(&out).lines().any(|l| l.trim_end().ends_with(*line)) {
                return Err(format!("build {version}: no line {line:?}:\n{}\n{}", stdout(&out), stderr(&out)));
            }
        }
        let out = env
            .slipway()
            .current_dir(&dir)
            .env("FROM_CACHE_VERSION", "2")
            .env("WERF_LOOSE_GITERMINISM", "1")
            .args(["run", "--", "/bin/sh", "-c", cmd])
            .output()
            .unwrap();
        if stdout(&out) != *want {
            return Err(format!("{cmd:?} printed {:?} ({})", stdout(&out), stderr(&out)));
        }
        return Ok(());
    }
    let report = env.path().join("report.json");
    let out = env
        .slipway()
        .args(["build", "--insecure-registry", "--dir"])
        .arg(&dir)
        .arg("--save-build-report")
        .arg("--build-report-path")
        .arg(&report)
        .output()
        .unwrap();
    match &f.outcome {
        BuildsTwice { .. } => unreachable!("handled above"),
        Refused(want) => {
            if out.status.success() {
                return Err(format!("built, expected {want:?}"));
            }
            let got = stderr(&out);
            if got != format!("{want}\n") {
                return Err(format!("stderr {got:?}, expected {want:?}"));
            }
        }
        Unreachable(want) => {
            if out.status.success() {
                return Err(format!("built, expected {want:?}…"));
            }
            let got = stderr(&out);
            if !got.starts_with(want) || got.lines().count() != 1 {
                return Err(format!("stderr {got:?}, expected one line starting {want:?}"));
            }
        }
        Builds { stages, runs } => {
            if !out.status.success() {
                return Err(format!("failed: {}", stderr(&out)));
            }
            let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
            for (image, want) in *stages {
                let got: Vec<&str> = r["Images"][image]["Stages"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|s| s["Name"].as_str()).collect())
                    .unwrap_or_default();
                if got != *want {
                    return Err(format!("image {image}: stages {got:?}, expected {want:?}"));
                }
            }
            for (image, cmd, want) in *runs {
                let out = env
                    .slipway()
                    .args(["run", image, "--dir"])
                    .arg(&dir)
                    .args(["--", "/bin/sh", "-c", cmd])
                    .output()
                    .unwrap();
                if stdout(&out) != *want {
                    return Err(format!("image {image}: {cmd:?} printed {:?} ({})", stdout(&out), stderr(&out)));
                }
            }
        }
    }
    Ok(())
}
