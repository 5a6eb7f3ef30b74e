//! Stapel `import` and `dependencies` (werf's dependencies stages) built end to end as
//! the unprivileged user, with `--repo` so podman can run the result.

use crate::common::{Env, git, git_project, registry, rootless_env, run_ok, stderr, stdout, write};
use crate::repo::{fresh_repo, podman_run};

fn werf_yaml(reg: &str, version: &str) -> String {
    format!(
        r#"project: imptest
configVersion: 1
---
image: builder
final: false
from: {reg}/base/busybox
shell:
  install:
  - mkdir -p /out/bin /out/doc /out/skip
  - echo "{version}" > /out/bin/app.txt
  - chown 1234:5678 /out/bin/app.txt && chmod 640 /out/bin/app.txt
  - printf '#!/bin/sh\ncat /opt/app/bin/link\necho "from $BUILDER_NAME"\n' > /out/bin/run && chmod 750 /out/bin/run
  - ln -s app.txt /out/bin/link
  - ln -s /root /out/bin/loot
  - ln /out/bin/app.txt /out/bin/hard
  - echo secret > /out/bin/secret.key
  - echo doc > /out/doc/readme
  - echo skip > /out/skip/x
---
image: app
from: {reg}/base/busybox
git:
- add: /src
  to: /src
import:
- image: builder
  add: /out
  to: /opt/app
  after: install
  includePaths: [bin, doc]
  excludePaths: ["**/*.key"]
- artifact: builder
  add: /out/doc/readme
  to: /opt/owned
  owner: app
  group: nogroup
  after: install
- image: {reg}/base/busybox:latest
  add: /etc/group
  to: /opt/group
  before: setup
dependencies:
- image: builder
  after: setup
  imports:
  - type: ImageName
    targetEnv: BUILDER_NAME
shell:
  install: echo install > /install.txt
  setup: cat /opt/app/bin/link > /setup.txt
docker:
  CMD: ["/opt/app/bin/run"]
"#
    )
}

/// What `slipway run` prints for the imported tree: owners, modes, link counts, link
/// targets and content.
const INSPECT: &str = "cd /opt/app; stat -c '%n %u:%g %a' bin; \
                       for f in bin/app.txt bin/hard bin/run doc/readme /opt/owned; do stat -c '%n %u:%g %a %h' $f; done; \
                       readlink bin/link; readlink bin/loot; test $(stat -c %i bin/app.txt) = $(stat -c %i bin/hard) && echo same-inode; \
                       ls bin; ls doc; test -e skip || echo no-skip; cat /setup.txt /opt/owned";

/// What [`INSPECT`] prints for the first version.
const WANT: &str = "bin 0:0 755\nbin/app.txt 1234:5678 640 2\nbin/hard 1234:5678 640 2\nbin/run 0:0 750 1\n\
                doc/readme 0:0 644 1\n/opt/owned 1000:65534 644 1\napp.txt\n/root\nsame-inode\n\
                app.txt\nhard\nlink\nloot\nrun\nreadme\nno-skip\nv1\ndoc\n";

#[test]
fn imports_an_artifacts_files_with_owners_links_and_filters() {
    let test = "imports_an_artifacts_files_with_owners_links_and_filters";
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else {
        return;
    };
    let env = Env::new();
    let dir = env.path().join("project");
    git_project(&dir, &[("werf.yaml", &werf_yaml(&reg, "v1")), ("src/hello", "hello\n")], &[]);
    let repo = fresh_repo(&reg, "import");
    let report = env.path().join("report.json");
    let build = || {
        let mut cmd = env.slipway();
        cmd.args(["build", "--insecure-registry", "--repo", &repo, "--dir"])
            .arg(&dir)
            .arg("--save-build-report")
            .arg("--build-report-path")
            .arg(&report);
        let log = stdout(&run_ok(&mut cmd));
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        (log, r)
    };
    let stages = |r: &serde_json::Value, image: &str| -> Vec<(String, String)> {
        r["Images"][image]["Stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["Name"].as_str().unwrap().into(), s["DockerTag"].as_str().unwrap().into()))
            .collect()
    };
    let names = |s: &[(String, String)]| s.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();

    let (log, r) = build();
    let app = stages(&r, "app");
    assert_eq!(
        names(&app),
        [
            "from",
            "gitArchive",
            "install",
            "dependenciesAfterInstall",
            "dependenciesBeforeSetup",
            "setup",
            "dependenciesAfterSetup",
            "dockerInstructions"
        ],
        "{log}"
    );
    assert_eq!(names(&stages(&r, "builder")), ["from", "install"]);
    let builder_name = r["Images"]["builder"]["DockerImageName"].as_str().unwrap().to_string();

    let run = |args: &[&str]| {
        let mut cmd = env.slipway();
        cmd.args(["run", "--insecure-registry", "--repo", &repo, "app", "--dir"]).arg(&dir).arg("--").args(args);
        let out = run_ok(&mut cmd);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(run(&["/bin/sh", "-c", INSPECT]), WANT);
    assert_eq!(run(&["/bin/sh", "-c", "echo $BUILDER_NAME"]), format!("{builder_name}\n"));
    // From an external image (a reference with a tag, werf's `ExternalImage`).
    assert_eq!(run(&["/bin/sh", "-c", "cmp /opt/group /etc/group && echo same-group"]), "same-group\n");

    // The image as podman runs it: CMD reads the imported tree through the symlink.
    let image = r["Images"]["app"]["DockerImageName"].as_str().unwrap().to_string();
    assert_eq!(podman_run(&env, &image), format!("v1\nfrom {builder_name}\n"));

    // The same without --repo: sources are stages of the local store.
    let local = env.path().join("local-store");
    let mut cmd = env.slipway();
    cmd.env("XDG_DATA_HOME", &local).args(["build", "--insecure-registry", "--dir"]).arg(&dir);
    run_ok(&mut cmd);
    let mut cmd = env.slipway();
    cmd.env("XDG_DATA_HOME", &local).args(["run", "app", "--dir"]).arg(&dir).args([
        "--",
        "cat",
        "/setup.txt",
        "/src/hello",
    ]);
    assert_eq!(stdout(&run_ok(&mut cmd)), "v1\nhello\n");

    // Nothing changed: every stage is found.
    let (log, r) = build();
    assert!(!log.contains("built in"), "a stage ran on a cached rebuild:\n{log}");
    assert_eq!(stages(&r, "app"), app, "{log}");
    assert_eq!(r["Images"]["app"]["Rebuilt"], false, "{r}");

    // The same from an empty local store (a fresh CI runner): the import checksums come
    // from werf's import metadata in the repo (`import-metadata-<id>` tags), so no layer
    // is downloaded, not even the artifact's.
    let fresh = env.path().join("fresh-store");
    let mut cmd = env.slipway();
    cmd.env("XDG_DATA_HOME", &fresh).args(["build", "--insecure-registry", "--repo", &repo, "--dir"]).arg(&dir);
    let log = stdout(&run_ok(&mut cmd));
    assert!(!log.contains("built in"), "a stage ran on a cached rebuild:\n{log}");
    let layers = fresh.join("slipway/layers");
    let unpacked = std::fs::read_dir(&layers).map(|d| d.count()).unwrap_or(0);
    assert_eq!(unpacked, 0, "layers were downloaded into {}:\n{log}", layers.display());
    let tags = std::process::Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false", &format!("docker://{repo}")])
        .output()
        .unwrap();
    let metadata = stdout(&tags).matches("\"import-metadata-").count();
    assert_eq!(metadata, 3, "one import metadata tag per import source and filters:\n{}", stdout(&tags));

    // A change of the artifact's shell changes the files it makes: the importing stage
    // and those after it are new; the stages before it are the same.
    write(&dir, "werf.yaml", &werf_yaml(&reg, "v2"));
    git(&dir, &["commit", "-q", "-am", "v2"]);
    let (log, r) = build();
    let after = stages(&r, "app");
    assert_eq!(names(&after), names(&app));
    let digest = |s: &(String, String)| s.1.split('-').next().unwrap().to_string();
    let same: Vec<bool> = app.iter().zip(&after).map(|(a, b)| digest(a) == digest(b)).collect();
    assert_eq!(same, [true, true, true, false, false, false, false, false], "{log}");
    assert_eq!(run(&["cat", "/setup.txt"]), "v2\n");
}

/// An import whose source is not an image of the config and has no tag is refused
/// with its werf.yaml line; the same for `stage` of an unknown image.
#[test]
fn refuses_an_unknown_import_source_in_one_line() {
    let test = "refuses_an_unknown_import_source_in_one_line";
    if !rootless_env(test) {
        return;
    }
    let env = Env::new();
    let dir = env.path().join("project");
    let doc = "project: demo\nconfigVersion: 1\n---\nimage: app\nfrom: scratch\nimport:\n- image: nothere\n  add: /x\n  after: install\n";
    git_project(&dir, &[("werf.yaml", doc)], &[]);
    let out = env.slipway().args(["build", "--dir"]).arg(&dir).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("werf.yaml:7"), "{err}");
}

/// The same import with the vfs driver: the source stage is a tree of hard links to the
/// stored layers, which must not make every file a hard link of another.
#[test]
fn imports_with_the_vfs_driver() {
    let test = "imports_with_the_vfs_driver";
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else {
        return;
    };
    let env = Env::new().with_var("WERF_BUILDAH_STORAGE_DRIVER", "vfs");
    let dir = env.path().join("project");
    git_project(&dir, &[("werf.yaml", &werf_yaml(&reg, "v1")), ("src/hello", "hello\n")], &[]);
    run_ok(env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&dir));
    let out = run_ok(env.slipway().args(["run", "app", "--dir"]).arg(&dir).args(["--", "/bin/sh", "-c", INSPECT]));
    assert_eq!(stdout(&out), WANT);
}
