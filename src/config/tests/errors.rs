//! Rejected configs: the exact one-line message, whose `werf.yaml:N` is a line of the file.

use super::super::parse;
use super::with_meta;

fn long_project() -> String {
    format!("configVersion: 1\nproject: {}\n", "a".repeat(51))
}

#[test]
fn rejects_with_exact_messages() {
    // (case, werf.yaml text, expected error)
    let cases: Vec<(&str, String, &str)> = vec![
        // --- document level
        (
            "missing meta",
            "image: a\nfrom: alpine\n".into(),
            "werf.yaml: no meta document: add one with `configVersion: 1` and `project: NAME`",
        ),
        (
            "duplicate meta",
            with_meta("configVersion: 1\nproject: other\n"),
            "werf.yaml:4: duplicate meta document (the first one starts at line 1)",
        ),
        (
            "unknown document",
            with_meta("# a comment\nfrom: alpine\n"),
            "werf.yaml:5: cannot recognize the document: the meta document needs `configVersion`, \
             an image document needs `image`, `artifact` or `dockerfile`",
        ),
        (
            "document is a list",
            with_meta("- image: a\n"),
            "werf.yaml:4: expected mapping start",
        ),
        (
            "yaml syntax in second document",
            with_meta("image: a\nfrom: alpine\ngit:\n  - to: /a\n - to: /b\n"),
            "werf.yaml:8: while parsing a block mapping, did not find expected key",
        ),
        (
            "duplicate key",
            with_meta("image: a\nfrom: alpine\nfrom: debian\n"),
            "werf.yaml:6: duplicate mapping key: from, set DuplicateKeyPolicy in Options if acceptable",
        ),
        // --- meta
        ("configVersion 2", "configVersion: 2\nproject: demo\n".into(), "werf.yaml:1: configVersion must be 1, got 2"),
        (
            "configVersion null",
            "project: demo\nconfigVersion:\n".into(),
            "werf.yaml:2: configVersion must be 1, got nothing",
        ),
        ("configVersion text", "configVersion: one\nproject: demo\n".into(), "werf.yaml:1: invalid type: string \"one\", expected i64"),
        (
            "project missing",
            "configVersion: 1\n".into(),
            "werf.yaml:1: bad project name \"\": `project` is required and must not be empty",
        ),
        (
            "project uppercase",
            "configVersion: 1\nproject: Demo\n".into(),
            "werf.yaml:2: bad project name \"Demo\": only lowercase letters, digits and inner dashes are allowed",
        ),
        (
            "project leading dash",
            "configVersion: 1\nproject: -demo\n".into(),
            "werf.yaml:2: bad project name \"-demo\": only lowercase letters, digits and inner dashes are allowed",
        ),
        (
            "project trailing dash",
            "configVersion: 1\nproject: demo-\n".into(),
            "werf.yaml:2: bad project name \"demo-\": only lowercase letters, digits and inner dashes are allowed",
        ),
        (
            "project underscore",
            "configVersion: 1\nproject: my_app\n".into(),
            "werf.yaml:2: bad project name \"my_app\": only lowercase letters, digits and inner dashes are allowed",
        ),
        (
            "project too long",
            long_project(),
            "werf.yaml:2: bad project name \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": must be at most 50 characters, got 51",
        ),
        (
            "unknown meta key",
            "configVersion: 1\nproject: demo\nprojct: x\n".into(),
            "werf.yaml:3: unknown field `projct`, expected one of configVersion, project, build, deploy, cleanup, gitWorktree",
        ),
        (
            "global imageSpec has no cmd",
            "configVersion: 1\nproject: demo\nbuild:\n  imageSpec:\n    config:\n      cmd: [run]\n".into(),
            "werf.yaml:6: unknown field `cmd`, expected one of keepEssentialWerfLabels, clearWerfLabels, removeLabels, labels",
        ),
        (
            "empty helmChartDir",
            "configVersion: 1\nproject: demo\ndeploy:\n  helmChartDir: \"\"\n".into(),
            "werf.yaml:3: deploy.helmChartDir must not be empty",
        ),
        (
            "keep policy with branch and tag",
            "configVersion: 1\nproject: demo\ncleanup:\n  keepPolicies:\n  - references:\n      branch: main\n      tag: /v.*/\n".into(),
            "werf.yaml:5: cleanup keep policy: specify exactly one of `references.branch` and `references.tag`",
        ),
        (
            "keep policy bad duration",
            "configVersion: 1\nproject: demo\ncleanup:\n  keepPolicies:\n  - references:\n      tag: /v.*/\n    imagesPerReference:\n      in: 2 days\n".into(),
            "werf.yaml:5: cleanup keep policy: bad duration \"2 days\" (e.g. 24h, 90m, 1h30m)",
        ),
        (
            "keep policy bad operator",
            "configVersion: 1\nproject: demo\ncleanup:\n  keepPolicies:\n  - references:\n      branch: main\n      limit:\n        operator: Xor\n".into(),
            "werf.yaml:8: unknown variant `Xor`, expected one of And, Or",
        ),
        // --- image names
        (
            "duplicate image across documents",
            with_meta("image: a\nfrom: alpine\n---\n# again\nimage: a\ndockerfile: Dockerfile\n"),
            "werf.yaml:8: image \"a\" is already defined at line 4",
        ),
        (
            "duplicate image in one list",
            with_meta("image: [a, b, a]\ndockerfile: Dockerfile\n"),
            "werf.yaml:4: image \"a\" is already defined at line 4",
        ),
        (
            "nameless image among other final images",
            with_meta("image: ~\nfrom: alpine\n---\nimage: b\nfrom: alpine\n"),
            "werf.yaml:4: nameless image: conflict between images names: a nameless image cannot be specified in the config with multiple images",
        ),
        (
            "two nameless images",
            with_meta("image: ~\nfrom: alpine\n---\nimage:\nfrom: debian\n"),
            "werf.yaml:7: nameless image is already defined at line 4",
        ),
        (
            "image name climbing out",
            with_meta("image: ../../x\ndockerfile: Dockerfile\n"),
            "werf.yaml:4: bad image name \"../../x\": a `/`-separated part must not be empty, `.` or `..`",
        ),
        (
            "image name with a dot segment",
            with_meta("image: [ok, a/./b]\ndockerfile: Dockerfile\n"),
            "werf.yaml:4: bad image name \"a/./b\": a `/`-separated part must not be empty, `.` or `..`",
        ),
        (
            "image name with a trailing slash",
            with_meta("image: a/\nfrom: alpine\n"),
            "werf.yaml:4: bad image name \"a/\": a `/`-separated part must not be empty, `.` or `..`",
        ),
        (
            "image name is dotdot",
            with_meta("artifact: ..\nfrom: alpine\n"),
            "werf.yaml:4: bad image name \"..\": a `/`-separated part must not be empty, `.` or `..`",
        ),
        (
            "image name with a newline",
            with_meta("image: \"a\\nb\"\ndockerfile: Dockerfile\n"),
            "werf.yaml:4: bad image name \"a\\nb\": whitespace and control characters are not allowed",
        ),
        (
            "image name with NUL",
            with_meta("image: \"a\\0b\"\ndockerfile: Dockerfile\n"),
            "werf.yaml:4: bad image name \"a\\0b\": whitespace and control characters are not allowed",
        ),
        (
            "image name with a space",
            with_meta("image: \"a b\"\ndockerfile: Dockerfile\n"),
            "werf.yaml:4: bad image name \"a b\": whitespace and control characters are not allowed",
        ),
        (
            "empty image list",
            with_meta("image: []\ndockerfile: Dockerfile\n"),
            "werf.yaml:4: `image` lists no names",
        ),
        (
            "image and artifact",
            with_meta("image: a\nartifact: b\nfrom: alpine\n"),
            "werf.yaml:4: specify only one of `image` and `artifact`",
        ),
        // --- Dockerfile images
        (
            "unknown key in dockerfile image, second document",
            with_meta("# backend\n\nimage: backend\ndockerfile: Dockerfile\ndockerfle: x\n"),
            "werf.yaml:8: image \"backend\": unknown field `dockerfle`, expected one of image, final, dockerfile, cacheVersion, context, contextAddFile, contextAddFiles, target, args, addHost, network, ssh, dependencies, staged, platform, secrets, imageSpec",
        ),
        (
            "ssh other than default",
            with_meta("image: a\ndockerfile: Dockerfile\nssh: github=/tmp/agent.sock\n"),
            "werf.yaml:6: image \"a\": ssh: \"github=/tmp/agent.sock\" is not supported by slipway: only `default` (the build's agent from --ssh-key or SSH_AUTH_SOCK) is",
        ),
        (
            "dockerfile without image",
            with_meta("dockerfile: Dockerfile\n"),
            "werf.yaml:4: `image: NAME` is required",
        ),
        (
            "dockerfile with stapel directive",
            with_meta("image: app\ndockerfile: Dockerfile\nshell:\n  install: ls\n"),
            "werf.yaml:6: image \"app\": unknown field `shell`, expected one of image, final, dockerfile, cacheVersion, context, contextAddFile, contextAddFiles, target, args, addHost, network, ssh, dependencies, staged, platform, secrets, imageSpec",
        ),
        (
            "both contextAddFile and contextAddFiles",
            with_meta("image: a\ndockerfile: Dockerfile\ncontextAddFiles: [x]\ncontextAddFile: y\n"),
            "werf.yaml:7: image \"a\": use only one of `contextAddFiles` and the legacy `contextAddFile`",
        ),
        (
            "arg without value",
            with_meta("image: a\ndockerfile: Dockerfile\nargs:\n  VERSION:\n"),
            "werf.yaml:6: image \"a\": args: \"VERSION\" has no value",
        ),
        (
            "arg collides with dependency build arg",
            with_meta("image: base\nfrom: alpine\n---\nimage: a\ndockerfile: Dockerfile\nargs:\n  BASE: x\ndependencies:\n- from: base\n  imports:\n  - type: ImageName\n    targetBuildArg: BASE\n"),
            "werf.yaml:12: image \"a\": dependency: targetBuildArg \"BASE\" is also set in `args`",
        ),
        (
            "dockerfile dependency with before",
            with_meta("image: a\ndockerfile: Dockerfile\ndependencies:\n- from: base\n  before: install\n"),
            "werf.yaml:8: image \"a\": unknown field `before`, expected one of from, image, imports",
        ),
        (
            "dependency import with unknown type",
            with_meta("image: a\ndockerfile: Dockerfile\ndependencies:\n- from: base\n  imports:\n  - type: ImageSize\n    targetBuildArg: X\n"),
            "werf.yaml:9: image \"a\": unknown variant `ImageSize`, expected one of ImageName, ImageID, ImageRepo, ImageTag, ImageDigest",
        ),
        (
            "unknown dependency",
            with_meta("image: a\ndockerfile: Dockerfile\ndependencies:\n- from: nothere\n"),
            "werf.yaml:7: image \"a\" refers to dependency \"nothere\", which is not an image of this config",
        ),
        (
            "secret with two sources",
            with_meta("image: a\ndockerfile: Dockerfile\nsecrets:\n- env: A\n  src: ./a\n"),
            "werf.yaml:7: image \"a\": secret: specify exactly one of `env`, `src` and `value`",
        ),
        (
            "secret value without id",
            with_meta("image: a\ndockerfile: Dockerfile\nsecrets:\n- value: s3cr3t\n"),
            "werf.yaml:7: image \"a\": secret: `id` is required with `value`",
        ),
        // --- Stapel images
        (
            "stapel without from",
            with_meta("image: app\nshell:\n  install: ls\n"),
            "werf.yaml:4: image \"app\": a base image is required: `from: IMAGE` (or the deprecated `fromImage` / `fromArtifact`)",
        ),
        (
            "from and fromImage",
            with_meta("image: app\nfrom: alpine\nfromImage: alpine\n"),
            "werf.yaml:5: image \"app\": specify only one of `from`, `fromImage` and `fromArtifact`",
        ),
        (
            "fromLatest with scratch",
            with_meta("image: app\nfrom: scratch\nfromLatest: true\n"),
            "werf.yaml:6: image \"app\": `fromLatest` cannot be used with `from: scratch`",
        ),
        (
            "fromImage not defined",
            with_meta("image: app\nfromImage: base\n"),
            "werf.yaml:4: image \"app\" refers to base image \"base\", which is not an image of this config",
        ),
        (
            "stapel with dockerfile-only directive",
            with_meta("image: app\nfrom: alpine\ncontext: .\n"),
            "werf.yaml:6: image \"app\": unknown field `context`, expected one of image, artifact, final, cacheVersion, from, fromLatest, fromCacheVersion, fromImage, fromArtifact, disableGitAfterPatch, git, shell, ansible, mount, docker, import, dependencies, platform, network, secrets, imageSpec",
        ),
        (
            "git unknown key",
            with_meta("image: app\nfrom: alpine\ngit:\n- add: /src\n  too: /app\n"),
            "werf.yaml:8: image \"app\": unknown field `too`, expected one of url, branch, tag, commit, basicAuth, add, to, owner, group, includePaths, excludePaths, stageDependencies, lfs",
        ),
        (
            "git without to",
            with_meta("image: app\nfrom: alpine\ngit:\n- add: /src\n"),
            "werf.yaml:7: image \"app\": git: `to` is required",
        ),
        (
            "git relative to",
            with_meta("image: app\nfrom: alpine\ngit:\n- add: /src\n  to: app\n"),
            "werf.yaml:7: image \"app\": git: `to` must be an absolute path, got \"app\"",
        ),
        (
            "git absolute includePaths",
            with_meta("image: app\nfrom: alpine\ngit:\n- to: /app\n  includePaths: [src, /etc]\n"),
            "werf.yaml:7: image \"app\": git: `includePaths` must be relative paths, got \"/etc\"",
        ),
        (
            "local git with branch",
            with_meta("image: app\nfrom: alpine\ngit:\n- to: /app\n  branch: main\n"),
            "werf.yaml:7: image \"app\": git: `branch`, `tag`, `commit` and `basicAuth` need a remote `url`",
        ),
        (
            "remote git with branch and tag",
            with_meta("image: app\nfrom: alpine\ngit:\n- url: https://example.com/r.git\n  branch: main\n  tag: v1\n  to: /app\n"),
            "werf.yaml:7: image \"app\": git: specify only one of `branch`, `tag` and `commit`",
        ),
        (
            "stage dependencies for unknown stage",
            with_meta("image: app\nfrom: alpine\ngit:\n- to: /app\n  stageDependencies:\n    beforeInstall: [\"*\"]\n"),
            "werf.yaml:9: image \"app\": unknown field `beforeInstall`, expected one of install, beforeSetup, setup",
        ),
        (
            "shell with unknown stage",
            with_meta("image: app\nfrom: alpine\nshell:\n  afterSetup: ls\n"),
            "werf.yaml:7: image \"app\": unknown field `afterSetup`, expected one of beforeInstall, install, beforeSetup, setup, cacheVersion, beforeInstallCacheVersion, installCacheVersion, beforeSetupCacheVersion, setupCacheVersion",
        ),
        (
            "mount with unknown service dir",
            with_meta("image: app\nfrom: alpine\nmount:\n- from: home_dir\n  to: /root\n"),
            "werf.yaml:7: image \"app\": unknown variant `home_dir`, expected one of tmp_dir, build_dir",
        ),
        (
            "mount with from and fromPath",
            with_meta("image: app\nfrom: alpine\nmount:\n- from: tmp_dir\n  fromPath: /tmp\n  to: /tmp\n"),
            "werf.yaml:7: image \"app\": mount: specify exactly one of `from: tmp_dir|build_dir` and `fromPath: PATH`",
        ),
        (
            "import without add",
            with_meta("image: app\nfrom: alpine\nimport:\n- from: builder:1\n  before: install\n"),
            "werf.yaml:7: image \"app\": import: `add` is required",
        ),
        (
            "import without stage",
            with_meta("image: app\nfrom: alpine\nimport:\n- from: builder:1\n  add: /app\n"),
            "werf.yaml:7: image \"app\": import: `before: install|setup` or `after: install|setup` is required",
        ),
        (
            "import before and after",
            with_meta("image: app\nfrom: alpine\nimport:\n- from: builder:1\n  before: install\n  after: install\n  add: /app\n"),
            "werf.yaml:7: image \"app\": import: specify only one of `before: install|setup` and `after: install|setup`",
        ),
        (
            "import with unknown anchor",
            with_meta("image: app\nfrom: alpine\nimport:\n- from: builder:1\n  before: beforeInstall\n  add: /app\n"),
            "werf.yaml:8: image \"app\": unknown variant `beforeInstall`, expected one of install, setup",
        ),
        (
            "import add / without includePaths",
            with_meta("image: app\nfrom: alpine\nimport:\n- from: builder:1\n  after: setup\n  add: /\n"),
            "werf.yaml:7: image \"app\": import: `add: /` requires `includePaths`",
        ),
        (
            "import from unknown image",
            with_meta("image: app\nfrom: alpine\nimport:\n- from: builder\n  after: setup\n  add: /out\n"),
            "werf.yaml:7: image \"app\" refers to import source \"builder\", which is not an image of this config",
        ),
        (
            "stapel dependency without stage",
            with_meta("image: b\nfrom: alpine\n---\nimage: app\nfrom: alpine\ndependencies:\n- from: b\n"),
            "werf.yaml:10: image \"app\": dependency: `before: install|setup` or `after: install|setup` is required",
        ),
        (
            "stapel dependency import with targetBuildArg",
            with_meta("image: app\nfrom: alpine\ndependencies:\n- from: b\n  after: install\n  imports:\n  - type: ImageName\n    targetBuildArg: B\n"),
            "werf.yaml:11: image \"app\": unknown field `targetBuildArg`, expected one of type, targetEnv",
        ),
        (
            "artifact with final",
            with_meta("artifact: builder\nfrom: alpine\nfinal: true\n"),
            "werf.yaml:6: artifact \"builder\": `final` is not supported for artifacts (use `image:` with `final: false`)",
        ),
        (
            "artifact with dependencies",
            with_meta("artifact: builder\nfrom: alpine\ndependencies:\n- from: x\n  after: install\n"),
            "werf.yaml:6: artifact \"builder\": `dependencies` is not supported for artifacts (use `image:` with `final: false`)",
        ),
        (
            "docker with imageSpec",
            with_meta("image: app\nfrom: alpine\ndocker:\n  WORKDIR: /app\nimageSpec:\n  author: me\n"),
            "werf.yaml:6: image \"app\": `docker` is deprecated and cannot be combined with `imageSpec`",
        ),
        (
            "imageSpec healthcheck camelCase",
            with_meta("image: app\nfrom: alpine\nimageSpec:\n  config:\n    healthcheck:\n      startPeriod: 10\n"),
            "werf.yaml:9: image \"app\": unknown field `startPeriod`, expected one of test, interval, timeout, startperiod, retries",
        ),
        (
            "unknown key in list-named image",
            with_meta("image: [a, b]\nfrom: alpine\nfrm: x\n"),
            "werf.yaml:6: images \"a\", \"b\": unknown field `frm`, expected one of image, artifact, final, cacheVersion, from, fromLatest, fromCacheVersion, fromImage, fromArtifact, disableGitAfterPatch, git, shell, ansible, mount, docker, import, dependencies, platform, network, secrets, imageSpec",
        ),
        // --- graph
        (
            "dependency cycle",
            with_meta("image: a\nfrom: b\n---\nimage: b\nfrom: c\n---\nimage: c\nfrom: a\n"),
            "werf.yaml:4: images depend on each other in a cycle: \"a\" -> \"b\" -> \"c\" -> \"a\"",
        ),
        (
            "self import cycle",
            with_meta("image: a\nfrom: alpine\nimport:\n- from: a\n  after: setup\n  add: /x\n"),
            "werf.yaml:4: images depend on each other in a cycle: \"a\" -> \"a\"",
        ),
    ];
    let mut failures = Vec::new();
    for (name, text, want) in &cases {
        match parse("werf.yaml", text) {
            Ok(_) => failures.push(format!("{name}: parsed, want error\n  {want}")),
            Err(e) if e.to_string() != *want => {
                failures.push(format!("{name}:\n  got  {e}\n  want {want}"));
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// 20,000 levels of YAML nesting: serde-saphyr's budget (64 levels) turns them into an
/// error naming the file, not a stack overflow.
#[test]
fn deep_yaml_is_an_error_not_a_crash() {
    let depth = 20_000;
    let bodies = [
        format!("image: a\ndockerfile: Dockerfile\nargs: {}{}\n", "[".repeat(depth), "]".repeat(depth)),
        format!("image: a\ndockerfile: Dockerfile\nargs: {}x{}\n", "{a: ".repeat(depth), "}".repeat(depth)),
        format!("image: a\ndockerfile: Dockerfile\nargs:\n  {}x\n", "- ".repeat(depth)),
    ];
    for body in bodies {
        let err = parse("werf.yaml", &with_meta(&body)).unwrap_err().to_string();
        assert!(err.starts_with("werf.yaml:"), "{err}");
        assert!(err.len() < 500, "{err}");
    }
}
