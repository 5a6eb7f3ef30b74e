//! Accepted configs: names, lines, meta values, merges, selection.

use std::time::Duration;

use super::super::*;
use super::{META, with_meta};

pub(super) fn ok(text: &str) -> WerfConfig {
    parse("werf.yaml", text).unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
}

pub(super) fn dockerfile(image: &Image) -> &DockerfileImage {
    match &image.kind {
        ImageKind::Dockerfile(d) => d,
        ImageKind::Stapel(_) => panic!("{} is a Stapel image", image.name),
    }
}

pub(super) fn stapel(image: &Image) -> &StapelImage {
    match &image.kind {
        ImageKind::Stapel(s) => s,
        ImageKind::Dockerfile(_) => panic!("{} is a Dockerfile image", image.name),
    }
}

pub(super) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn names_lines_and_kinds() {
    // (name, line, final, is_dockerfile)
    type Row<'a> = (&'a str, usize, bool, bool);
    // (case, text, images)
    let cases: Vec<(&str, String, Vec<Row>)> = vec![
        ("meta only", META.to_owned(), vec![]),
        (
            "one of each kind",
            with_meta("image: back\ndockerfile: Dockerfile\n---\nimage: front\nfrom: alpine\n"),
            vec![("back", 4, true, true), ("front", 7, true, false)],
        ),
        (
            "a list of names shares one document",
            with_meta("image: [a, b, c]\ndockerfile: Dockerfile\nfinal: false\n"),
            vec![("a", 4, false, true), ("b", 4, false, true), ("c", 4, false, true)],
        ),
        (
            "block list of names",
            with_meta("final: false\nimage:\n- x\n- y\nfrom: alpine\n"),
            vec![("x", 5, false, false), ("y", 5, false, false)],
        ),
        ("nameless stapel", with_meta("image: ~\nfrom: alpine\n"), vec![("", 4, true, false)]),
        ("nameless stapel, empty value", with_meta("image:\nfrom: alpine\n"), vec![("", 4, true, false)]),
        ("nameless dockerfile", with_meta("image: ~\ndockerfile: Dockerfile\n"), vec![("", 4, true, true)]),
        ("artifact", with_meta("artifact: builder\nfrom: alpine\n"), vec![("builder", 4, false, false)]),
        (
            "separator with comment, empty documents, comments",
            format!(
                "# head\n{META}--- # images\n---\n# nothing here\n\n---   \nimage: a\nfrom: alpine\n---#x\n\nimage: b\nfrom: a\n---\n"
            ),
            vec![("a", 9, true, false), ("b", 13, true, false)],
        ),
        ("meta after images", format!("image: a\nfrom: alpine\n---\n{META}"), vec![("a", 1, true, false)]),
        (
            "crlf line ends",
            "configVersion: 1\r\nproject: demo\r\n---\r\nimage: a\r\nfrom: alpine\r\n".to_owned(),
            vec![("a", 4, true, false)],
        ),
        ("flow style document", with_meta("{image: a, from: alpine}\n"), vec![("a", 4, true, false)]),
    ];
    for (name, text, want) in cases {
        let cfg = parse("werf.yaml", &text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got: Vec<Row> = cfg
            .images
            .iter()
            .map(|i| (i.name.as_str(), i.line, i.final_, matches!(i.kind, ImageKind::Dockerfile(_))))
            .collect();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn meta_with_every_section() {
    let cfg = ok("configVersion: 1
project: app
build:
  cacheVersion: \"1\"
  platform: [linux/amd64, linux/arm64]
  staged: true
  imageSpec:
    author: me
    clearHistory: true
    config:
      keepEssentialWerfLabels: true
      removeLabels: [\"/^io\\\\.k8s\\\\..*/\"]
      labels:
        team: backend
deploy:
  helmChartDir: .helm
  helmChartConfig:
    appVersion: 1.2
  helmRelease: \"[[ project ]]-[[ env ]]\"
  helmReleaseSlug: false
  namespace: \"[[ project ]]\"
  namespaceSlug: true
cleanup:
  disable: false
  disableKubernetesBasedPolicy: true
  disableGitHistoryBasedPolicy: true
  disableBuiltWithinLastNHoursPolicy: true
  keepImagesBuiltWithinLastNHours: 24
  keepPolicies:
  - references:
      branch: /.*/
      limit:
        last: 10
        in: 168h
        operator: Or
    imagesPerReference:
      last: 2
      in: 1h30m
  - references:
      tag: v1.0
gitWorktree:
  forceShallowClone: true
  allowUnshallow: false
");
    let m = &cfg.meta;
    assert_eq!((m.project.as_str(), m.config_version, m.line), ("app", 1, 1));
    assert_eq!(m.build.cache_version.as_deref(), Some("1"));
    assert_eq!(m.build.platform, strings(&["linux/amd64", "linux/arm64"]));
    assert!(m.build.staged);
    let spec = m.build.image_spec.as_ref().expect("global imageSpec");
    assert_eq!(spec.author.as_deref(), Some("me"));
    assert!(spec.clear_history && spec.keep_essential_werf_labels);
    assert_eq!(spec.remove_labels, strings(&["/^io\\.k8s\\..*/"]));
    assert_eq!(spec.labels.get("team").map(String::as_str), Some("backend"));
    assert_eq!(m.deploy.helm_chart_dir.as_deref(), Some(".helm"));
    assert_eq!(m.deploy.helm_chart_config.as_ref().and_then(|c| c.app_version.as_deref()), Some("1.2"));
    assert_eq!(m.deploy.helm_release_slug, Some(false));
    assert_eq!(m.deploy.namespace.as_deref(), Some("[[ project ]]"));
    let c = &m.cleanup;
    assert!(!c.disable && c.disable_kubernetes_based_policy && c.disable_git_history_based_policy);
    assert!(c.disable_built_within_last_n_hours_policy);
    assert_eq!(c.keep_images_built_within_last_n_hours, 24);
    assert_eq!(c.keep_policies.len(), 2);
    let p = &c.keep_policies[0];
    assert_eq!(p.line, 30);
    assert_eq!(p.references.kind, RefKind::Branch);
    assert_eq!(p.references.pattern, RefPattern::Regex(".*".into()));
    assert_eq!(
        p.references.limit,
        Some(Limit {
            last: Some(10),
            within: Some(Duration::from_secs(168 * 3600)),
            operator: Some(LimitOperator::Or)
        })
    );
    assert_eq!(
        p.images_per_reference,
        Some(Limit { last: Some(2), within: Some(Duration::from_secs(5400)), operator: None })
    );
    assert_eq!(c.keep_policies[1].references.kind, RefKind::Tag);
    assert_eq!(c.keep_policies[1].references.pattern, RefPattern::Exact("v1.0".into()));
    assert_eq!(
        m.git_worktree,
        GitWorktree { force_shallow_clone: true, allow_unshallow: false, allow_fetch_origin_branches_and_tags: true }
    );
}

#[test]
fn meta_defaults() {
    let m = ok(META).meta;
    assert_eq!(m.build, MetaBuild::default());
    assert_eq!(m.deploy, MetaDeploy::default());
    assert_eq!(m.cleanup.keep_images_built_within_last_n_hours, 2);
    assert!(m.cleanup.keep_policies.is_empty());
    assert_eq!(m.git_worktree, GitWorktree::default());
    assert!(m.git_worktree.allow_unshallow && m.git_worktree.allow_fetch_origin_branches_and_tags);
}

#[test]
fn good_project_names() {
    let long = "a".repeat(MAX_PROJECT_NAME_LEN);
    for name in ["a", "7", "my-app", "a-b-c", "app2", "0x-1", long.as_str()] {
        let text = format!("configVersion: 1\nproject: {name}\n");
        assert_eq!(ok(&text).meta.project, name);
    }
}

#[test]
fn from_resolves_to_config_images() {
    let cfg = ok(&with_meta(
        "image: base\nfrom: alpine\n---\nimage: app\nfrom: base\n---\nimage: other\nfrom: registry.local:5000/base\n",
    ));
    assert_eq!(stapel(&cfg.images[1]).from, BaseImage::Werf("base".into()));
    assert_eq!(stapel(&cfg.images[2]).from, BaseImage::External("registry.local:5000/base".into()));
}

#[test]
fn global_image_spec_merges_into_final_images_only() {
    let text = "configVersion: 1
project: demo
build:
  imageSpec:
    author: team
    config:
      labels: {owner: team, tier: global}
      removeLabels: [old]
---
image: app
dockerfile: Dockerfile
imageSpec:
  author: me
  config:
    labels: {tier: app, own: yes}
    removeLabels: [mine, old]
---
image: plain
from: alpine
---
image: helper
from: alpine
final: false
";
    let cfg = ok(text);
    let app = dockerfile(&cfg.images[0]).image_spec.clone().expect("merged");
    assert_eq!(app.author.as_deref(), Some("team"), "global author wins, as in werf");
    let labels: Vec<(&str, &str)> = app.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(labels, [("own", "yes"), ("owner", "team"), ("tier", "global")]);
    assert_eq!(app.remove_labels, strings(&["mine", "old"]));
    let plain = stapel(&cfg.images[1]).image_spec.clone().expect("global applied");
    assert_eq!(plain.labels.len(), 2);
    assert_eq!(stapel(&cfg.images[2]).image_spec, None, "not final: untouched");
}

#[test]
fn select_images() {
    let cfg = ok(&with_meta("image: [a, b]\nfrom: alpine\n---\nimage: c\ndockerfile: Dockerfile\n"));
    let names = |sel: Vec<&Image>| sel.iter().map(|i| i.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(cfg.select(&[]).unwrap()), ["a", "b", "c"]);
    assert_eq!(names(cfg.select(&strings(&["c", "a", "c"])).unwrap()), ["a", "c"]);
    assert_eq!(
        cfg.select(&strings(&["a", "zz"])).unwrap_err().to_string(),
        "image \"zz\" is not defined in werf.yaml (defined: a, b, c)"
    );
    assert_eq!(cfg.image("b").map(|i| i.line), Some(4));
}

#[test]
fn templates_render_before_parsing() {
    let input = TemplateInput {
        vars: std::collections::BTreeMap::from([("BASE".to_owned(), "alpine:3.20".to_owned())]),
        env: "staging".to_owned(),
        ..Default::default()
    };
    let text = "configVersion: 1\nproject: demo\n---\nimage: app-{{ .Env }}\nfrom: {{ env \"BASE\" }}\n";
    let cfg = parse_template("werf.yaml", text, &input).unwrap();
    assert_eq!(cfg.images[0].name, "app-staging");
    assert_eq!(stapel(&cfg.images[0]).from, BaseImage::External("alpine:3.20".into()));
    let errors = [
        (
            "image: {{ env \"NOPE\" }}\n",
            "werf.yaml: rendering the Go template: template: werf.yaml:1:11: execution error: the environment variable \"NOPE\" must be set or default must be provided",
        ),
        ("image: {{ .Env \n", "werf.yaml: rendering the Go template: template: werf.yaml:2:1: unclosed action"),
        (
            "image: {{ include \"x\" . }}\n",
            "werf.yaml: rendering the Go template: template: werf.yaml:1:11: execution error: template: no template \"x\" associated with template \"werfConfig\"",
        ),
    ];
    for (text, want) in errors {
        assert_eq!(parse_template("werf.yaml", text, &input).unwrap_err().to_string(), want, "{text:?}");
    }
    // A literal `{{` written as `{{ "{{" }}` survives rendering and is plain YAML text.
    let text = "configVersion: 1\nproject: demo\n---\nimage: app\nfrom: alpine\nshell:\n  setup: [\"echo '{{ \"{{\" }} x }}'\"]\n";
    let cfg = parse_template("werf.yaml", text, &input).unwrap();
    assert_eq!(stapel(&cfg.images[0]).shell.as_ref().map(|s| s.setup.clone()), Some(vec!["echo '{{ x }}'".to_owned()]));
}
