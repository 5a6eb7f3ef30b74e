//! Accepted image documents with every directive, and the values they produce.

use std::collections::BTreeMap;

use super::super::*;
use super::valid::{dockerfile, ok, stapel, strings};
use super::with_meta;

#[test]
fn dockerfile_image_with_every_directive() {
    let cfg = ok(&with_meta(
        "image: base
from: alpine
---
image: [backend, backend-alias]
final: false
dockerfile: docker/Dockerfile.prod
staged: true
cacheVersion: 2
context: backend
contextAddFiles: [dist, .env]
platform: [linux/amd64]
target: production
args:
  VERSION: \"1.0\"
  RETRIES: 3
  DEBUG: true
  RATIO: 1.10
addHost: registry.local:10.0.0.1
network: host
ssh: default
secrets:
- env: GITHUB_TOKEN
- src: ~/.npmrc
- id: api-key
  value: secret
dependencies:
- from: base
  imports:
  - type: ImageName
    targetBuildArg: BASE_IMAGE
  - type: ImageDigest
    targetBuildArg: BASE_DIGEST
imageSpec:
  author: me
  clearHistory: true
  config:
    clearCmd: true
    clearEntrypoint: true
    clearUser: true
    clearWorkingDir: true
    removeLabels: [a, /b.*/]
    removeVolumes: [/data]
    removeEnv: [/^DEBUG_.*/]
    volumes: [/cache]
    labels: {a: b}
    env: {A: b, N: 1}
    expose: [\"8080/tcp\", 9090]
    user: 1000
    cmd: [run]
    entrypoint: [/bin/sh, -c]
    workingDir: /app
    stopSignal: SIGTERM
    healthcheck:
      test: [CMD, curl, -f, http://localhost/]
      interval: 30
      timeout: 5
      startperiod: 10
      retries: 3
",
    ));
    let names: Vec<&str> = cfg.images.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["base", "backend", "backend-alias"]);
    let (a, b) = (&cfg.images[1], &cfg.images[2]);
    assert_eq!(a.kind, b.kind, "list names share settings");
    assert!(!a.final_);
    let d = dockerfile(a);
    assert_eq!((d.dockerfile.as_str(), d.context.as_str()), ("docker/Dockerfile.prod", "backend"));
    assert_eq!(d.context_add_files, strings(&["dist", ".env"]));
    assert_eq!(d.target.as_deref(), Some("production"));
    assert_eq!(d.cache_version.as_deref(), Some("2"));
    assert!(d.staged);
    let args: BTreeMap<&str, &str> = d.args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(args, BTreeMap::from([("VERSION", "1.0"), ("RETRIES", "3"), ("DEBUG", "true"), ("RATIO", "1.10")]));
    assert_eq!(d.add_host, strings(&["registry.local:10.0.0.1"]));
    assert_eq!((d.network.as_deref(), d.ssh.as_deref()), (Some("host"), Some("default")));
    assert_eq!(
        d.secrets,
        vec![
            Secret { line: 25, id: "GITHUB_TOKEN".into(), source: SecretSource::Env("GITHUB_TOKEN".into()) },
            Secret { line: 26, id: ".npmrc".into(), source: SecretSource::File("~/.npmrc".into()) },
            Secret { line: 27, id: "api-key".into(), source: SecretSource::Value("secret".into()) },
        ]
    );
    assert_eq!(
        d.dependencies,
        vec![Dependency {
            line: 30,
            image: "base".into(),
            relation: None,
            imports: vec![
                DependencyImport { kind: DependencyImportType::ImageName, target: "BASE_IMAGE".into() },
                DependencyImport { kind: DependencyImportType::ImageDigest, target: "BASE_DIGEST".into() },
            ],
        }]
    );
    assert_eq!(a.depends_on(), ["base"]);
    let spec = d.image_spec.as_ref().expect("imageSpec");
    assert!(spec.clear_cmd && spec.clear_entrypoint && spec.clear_user && spec.clear_working_dir);
    assert_eq!(spec.remove_labels, strings(&["a", "/b.*/"]));
    assert_eq!(spec.env.get("N").map(String::as_str), Some("1"));
    assert_eq!(spec.expose, strings(&["8080/tcp", "9090"]));
    assert_eq!(spec.user.as_deref(), Some("1000"));
    assert_eq!(spec.entrypoint, Some(strings(&["/bin/sh", "-c"])));
    assert_eq!(
        spec.healthcheck,
        Some(Healthcheck {
            test: strings(&["CMD", "curl", "-f", "http://localhost/"]),
            interval: 30,
            timeout: 5,
            start_period: 10,
            retries: 3
        })
    );
}

#[test]
fn dockerfile_defaults_and_staged_inheritance() {
    let text = "configVersion: 1\nproject: demo\nbuild:\n  staged: true\n---\nimage: a\ndockerfile: ~\n---\nimage: b\ndockerfile: Dockerfile\nstaged: false\ncontextAddFile: legacy.txt\n";
    let cfg = ok(text);
    let a = dockerfile(&cfg.images[0]);
    assert_eq!(
        *a,
        DockerfileImage {
            dockerfile: "Dockerfile".into(),
            context: ".".into(),
            context_add_files: vec![],
            target: None,
            args: BTreeMap::new(),
            add_host: vec![],
            network: None,
            ssh: None,
            secrets: vec![],
            staged: true,
            platform: vec![],
            cache_version: None,
            image_spec: None,
            dependencies: vec![],
        }
    );
    assert!(cfg.images[0].final_);
    let b = dockerfile(&cfg.images[1]);
    assert!(!b.staged, "explicit `staged: false` wins over build.staged");
    assert_eq!(b.context_add_files, strings(&["legacy.txt"]));
}

#[test]
fn stapel_image_with_every_directive() {
    let cfg = ok(&with_meta(
        "image: builder
from: golang:1.22
final: false
---
image: app
cacheVersion: \"1\"
platform: [linux/amd64]
from: alpine:3.20
fromLatest: true
fromCacheVersion: 3
network: host
disableGitAfterPatch: true
git:
- to: /app
  includePaths: src
  excludePaths: [docs, \"*.md\"]
  owner: 1000
  group: app
  stageDependencies:
    install: package.json
    beforeSetup: [config/**]
    setup: \"*.env\"
- url: https://github.com/werf/werf.git
  basicAuth:
    username: bot
    password:
      env: GIT_PASSWORD
  branch: main
  add: /cmd
  to: /werf
  lfs: true
- url: https://github.com/werf/werf.git
  commit: 0123456789abcdef0123456789abcdef01234567
  to: /werf-commit
shell:
  beforeInstall: apk add curl
  install: [npm ci, npm test]
  beforeSetup: []
  setup: [npm run build]
  cacheVersion: \"1\"
  installCacheVersion: 2
mount:
- from: tmp_dir
  to: /tmp
- from: build_dir
  to: /root/.cache
- fromPath: ~/.npm
  to: /root/.npm
import:
- from: builder
  before: install
  add: /build/app
  to: /usr/local/bin/app/
  owner: root
  group: root
  includePaths: [bin]
  excludePaths: [bin/test]
  stage: setup
- from: nginx:1.25
  after: setup
  add: /etc/nginx
dependencies:
- from: builder
  after: install
  imports:
  - type: ImageDigest
    targetEnv: BUILDER_DIGEST
secrets:
- env: NPM_TOKEN
imageSpec:
  config:
    cmd: [/usr/local/bin/app]
",
    ));
    let s = stapel(&cfg.images[1]);
    assert_eq!(s.from, BaseImage::External("alpine:3.20".into()));
    assert!(s.from_latest && s.disable_git_after_patch && !s.artifact);
    assert_eq!((s.from_cache_version.as_deref(), s.cache_version.as_deref()), (Some("3"), Some("1")));
    assert_eq!(s.network.as_deref(), Some("host"));
    assert_eq!(s.git.len(), 3);
    assert_eq!(
        s.git[0],
        GitMapping {
            line: 17,
            source: GitSource::Local,
            add: "/".into(),
            to: "/app".into(),
            owner: Some("1000".into()),
            group: Some("app".into()),
            include_paths: strings(&["src"]),
            exclude_paths: strings(&["docs", "*.md"]),
            stage_dependencies: StageDependencies {
                install: strings(&["package.json"]),
                before_setup: strings(&["config/**"]),
                setup: strings(&["*.env"]),
            },
            lfs: false,
        }
    );
    assert_eq!(
        s.git[1].source,
        GitSource::Remote {
            url: "https://github.com/werf/werf.git".into(),
            reference: Some(GitRef::Branch("main".into())),
            basic_auth: Some(BasicAuth {
                username: Some("bot".into()),
                password: Some(PasswordSource::Env("GIT_PASSWORD".into())),
            }),
        }
    );
    assert!(s.git[1].lfs);
    assert_eq!(s.git[1].add, "/cmd");
    assert!(matches!(&s.git[2].source, GitSource::Remote { reference: Some(GitRef::Commit(c)), .. } if c.len() == 40));
    let shell = s.shell.as_ref().expect("shell");
    assert_eq!(shell.before_install, strings(&["apk add curl"]));
    assert_eq!(shell.install, strings(&["npm ci", "npm test"]));
    assert!(shell.before_setup.is_empty());
    assert_eq!(shell.install_cache_version.as_deref(), Some("2"));
    assert_eq!(
        s.mount.iter().map(|m| (m.line, m.source.clone(), m.to.as_str())).collect::<Vec<_>>(),
        vec![
            (46, MountSource::TmpDir, "/tmp"),
            (48, MountSource::BuildDir, "/root/.cache"),
            (50, MountSource::Path("~/.npm".into()), "/root/.npm"),
        ]
    );
    assert_eq!(
        s.import[0],
        Import {
            line: 53,
            from: ImageRef::Werf("builder".into()),
            relation: Relation::Before(Anchor::Install),
            stage: Some(UserStage::Setup),
            add: "/build/app".into(),
            to: "/usr/local/bin/app".into(),
            owner: Some("root".into()),
            group: Some("root".into()),
            include_paths: strings(&["bin"]),
            exclude_paths: strings(&["bin/test"]),
        }
    );
    assert_eq!(s.import[1].from, ImageRef::External("nginx:1.25".into()));
    assert_eq!(s.import[1].relation, Relation::After(Anchor::Setup));
    assert_eq!(s.import[1].to, "/etc/nginx", "`to` defaults to `add`");
    assert_eq!(s.dependencies[0].relation, Some(Relation::After(Anchor::Install)));
    assert_eq!(s.dependencies[0].imports[0].target, "BUILDER_DIGEST");
    assert_eq!(s.secrets[0].id, "NPM_TOKEN");
    assert_eq!(cfg.images[1].depends_on(), ["builder"]);
}

#[test]
fn stapel_deprecated_directives() {
    let cfg = ok(&with_meta(
        "artifact: builder
from: golang
git:
- to: /src
shell:
  install: go build
---
image: base
from: scratch
---
image: app
fromImage: base
import:
- artifact: builder
  after: install
  add: /out
- image: base
  before: setup
  add: /etc
docker:
  WORKDIR: /app
  ENV:
    MODE: prod
    N: 1
  EXPOSE: 8080
  CMD: [\"/app/run\", \"--x\"]
  ENTRYPOINT: /bin/sh -c
  exactValues: true
ansible:
  install:
  - name: hello
    shell: echo hi
  - debug: msg=x
dependencies:
- image: base
  before: setup
",
    ));
    let builder = &cfg.images[0];
    assert!(!builder.final_);
    let b = stapel(builder);
    assert!(b.artifact && b.disable_git_after_patch);
    assert_eq!(stapel(&cfg.images[1]).from, BaseImage::Scratch);
    let app = stapel(&cfg.images[2]);
    assert_eq!(app.from, BaseImage::Werf("base".into()));
    assert_eq!(app.import[0].from, ImageRef::Werf("builder".into()));
    let docker = app.docker.as_ref().expect("docker");
    assert_eq!(docker.workdir.as_deref(), Some("/app"));
    assert_eq!(docker.env.get("N").map(String::as_str), Some("1"));
    assert_eq!(docker.expose, strings(&["8080"]));
    assert_eq!(docker.cmd, Some(Command::Exec(strings(&["/app/run", "--x"]))));
    assert_eq!(docker.entrypoint, Some(Command::Shell("/bin/sh -c".into())));
    assert!(docker.exact_values);
    assert_eq!(app.ansible, Some(Ansible { task_count: 2 }));
    assert_eq!(app.dependencies[0].image, "base");
    assert_eq!(cfg.images[2].depends_on(), ["base", "builder"]);
}
