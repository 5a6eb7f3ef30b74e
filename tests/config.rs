//! `slipway config render|list|graph` on real repositories: templates with `.werf`
//! partials, `.Files` and `.Commit` read from the commit, werf's giterminism for `env`.
//! Expected text is what werf prints for the same project (its `config` commands'
//! code paths: the rendered text as is, raw documents joined by `---\n`, names one a
//! line, yaml.v2 graph).

use crate::common::{Env, git, git_cmd, git_project, rootless_env, run_ok, stderr, stdout, write};

const WERF_YAML: &str = r#"project: cfgtest
configVersion: 1
{{- range (.Files.Get "images.yaml" | fromYaml).images }}
---
{{ include "image" (dict "name" .name "root" $) }}
{{- end }}
---
image: base
from: {{ env "CI_BASE" "alpine:3.20" }}
---
image: tool
from: base
final: false
shell:
  setup: echo '{{ "{{" }} not a template }}' {{ .Commit.Hash | trunc 7 }}
"#;

const HELPERS: &str = r#"{{- define "image" -}}
image: {{ .name }}
dockerfile: {{ .name }}.Dockerfile
args:
  BASE_TXT: {{ .root.Files.Get "base.txt" | trim | quote }}
{{- end }}"#;

fn project(env: &Env) -> std::path::PathBuf {
    let dir = env.path().join("project");
    git_project(
        &dir,
        &[
            ("werf.yaml", WERF_YAML),
            (".werf/_helpers.tmpl", HELPERS),
            ("images.yaml", "images:\n- name: api\n- name: web\n"),
            ("base.txt", "committed\n"),
            ("secret.yaml", "project: x\nconfigVersion: 1\n---\nimage: a\nfrom: {{ env \"SECRET\" \"alpine\" }}\n"),
            (
                "werf-giterminism.yaml",
                "giterminismConfigVersion: 1\nconfig:\n  goTemplateRendering:\n    allowEnvVariables: [CI_BASE]\n",
            ),
        ],
        &[("notes.txt", "not read by templates\n")],
    );
    dir
}

fn head(dir: &std::path::Path) -> String {
    let out = git_cmd(dir, &["rev-parse", "HEAD"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn config_render_list_and_graph_print_what_werf_prints() {
    if !rootless_env("config_render_list_and_graph_print_what_werf_prints") {
        return;
    }
    let env = Env::new();
    let dir = project(&env);
    let short = &head(&dir)[..7];
    let config = |args: &[&str]| {
        let mut c = env.slipway();
        c.arg("config").args(args).arg("--dir").arg(&dir).env_remove("CI_BASE");
        c
    };
    let rendered = stdout(&run_ok(&mut config(&["render"])));
    let want = format!(
        "project: cfgtest\nconfigVersion: 1\n---\nimage: api\ndockerfile: api.Dockerfile\nargs:\n  BASE_TXT: \"committed\"\n---\nimage: web\ndockerfile: web.Dockerfile\nargs:\n  BASE_TXT: \"committed\"\n---\nimage: base\nfrom: alpine:3.20\n---\nimage: tool\nfrom: base\nfinal: false\nshell:\n  setup: echo '{{{{ not a template }}}}' {short}\n"
    );
    assert_eq!(rendered, want);
    let api = stdout(&run_ok(&mut config(&["render", "api"])));
    assert_eq!(api, "image: api\ndockerfile: api.Dockerfile\nargs:\n  BASE_TXT: \"committed\"\n");
    let two = stdout(&run_ok(&mut config(&["render", "base", "tool"])));
    assert_eq!(
        two,
        format!(
            "image: base\nfrom: alpine:3.20\n---\nimage: tool\nfrom: base\nfinal: false\nshell:\n  setup: echo '{{{{ not a template }}}}' {short}\n"
        )
    );
    assert_eq!(stdout(&run_ok(&mut config(&["list"]))), "api\nweb\nbase\ntool\n");
    assert_eq!(stdout(&run_ok(&mut config(&["list", "--final-images-only"]))), "api\nweb\nbase\n");
    assert_eq!(
        stdout(&run_ok(&mut config(&["graph"]))),
        "- image: api\n- image: web\n- image: base\n- image: tool\n  dependsOn:\n    from: base\n"
    );
    // An allowed variable is read; a set but not allowed one is werf's giterminism error,
    // default or not.
    let out = run_ok(config(&["render", "base"]).env("CI_BASE", "debian:12"));
    assert_eq!(stdout(&out), "image: base\nfrom: debian:12\n---\n".trim_end_matches("---\n"));
    let out = config(&["render", "--config", "secret.yaml"]).env("SECRET", "x").output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the configuration with potential external dependency found in the werf config: env name \"SECRET\" not allowed by giterminism"),
        "{}",
        stderr(&out)
    );
    // A file read through .Files that differs from the commit: werf's error.
    write(&dir, "base.txt", "second\n");
    let out = config(&["render"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("{{ .Files.Get \"base.txt\" }}: the file \"base.txt\" must be committed"),
        "{}",
        stderr(&out)
    );
    // A new commit is what the next render reads.
    git(&dir, &["commit", "-qam", "second"]);
    assert!(stdout(&run_ok(&mut config(&["render", "web"]))).contains("BASE_TXT: \"second\""));
}

/// `--config-templates-dir` (and `WERF_CONFIG_TEMPLATES_DIR`) names the directory whose
/// `**/*.tmpl` are the partials instead of `.werf`, named by their path inside it; a
/// directory outside the project is refused in one line. `--config-render-path` gets a
/// copy of the rendered werf.yaml.
#[test]
fn config_templates_dir_replaces_dot_werf() {
    if !rootless_env("config_templates_dir_replaces_dot_werf") {
        return;
    }
    let env = Env::new();
    let dir = env.path().join("project");
    git_project(
        &dir,
        &[
            ("werf.yaml", "project: tpl\nconfigVersion: 1\n---\n{{ include \"sub/image.tmpl\" . }}\n"),
            (".werf/sub/image.tmpl", "image: from-dot-werf\nfrom: alpine\n"),
            ("custom/sub/image.tmpl", "image: from-custom\nfrom: alpine\n"),
        ],
        &[],
    );
    let render = |flag: Option<&std::path::Path>, var: Option<&std::path::Path>| {
        let mut c = env.slipway();
        c.arg("config").arg("render").arg("--dir").arg(&dir).env_remove("WERF_CONFIG_TEMPLATES_DIR");
        if let Some(f) = flag {
            c.arg("--config-templates-dir").arg(f);
        }
        if let Some(v) = var {
            c.env("WERF_CONFIG_TEMPLATES_DIR", v);
        }
        c
    };
    let want = |name: &str| format!("project: tpl\nconfigVersion: 1\n---\nimage: {name}\nfrom: alpine\n\n");
    let custom = dir.join("custom");
    assert_eq!(stdout(&run_ok(&mut render(None, None))), want("from-dot-werf"));
    assert_eq!(stdout(&run_ok(&mut render(Some(&custom), None))), want("from-custom"));
    assert_eq!(stdout(&run_ok(&mut render(None, Some(&custom)))), want("from-custom"));
    // --config-render-path: the rendered werf.yaml is written there too.
    let rendered = env.path().join("rendered.yaml");
    run_ok(render(Some(&custom), None).arg("--config-render-path").arg(&rendered));
    assert_eq!(std::fs::read_to_string(&rendered).unwrap(), want("from-custom"));
    let out = render(Some(env.path()), None).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("reads configuration templates only inside the project directory"),
        "{}",
        stderr(&out)
    );
}

/// werf 2's includes (`werf-includes.yaml`) bring configuration from other repositories:
/// without them slipway would build something else than werf, so it refuses in one line.
#[test]
fn werf_includes_are_refused_in_one_line() {
    if !rootless_env("werf_includes_are_refused_in_one_line") {
        return;
    }
    let env = Env::new();
    let dir = env.path().join("project");
    let includes = "includes:\n- git: https://example.com/shared.git\n  branch: main\n  add: /\n  to: /\n";
    git_project(
        &dir,
        &[
            ("werf.yaml", "project: inc\nconfigVersion: 1\n---\nimage: app\nfrom: alpine\n"),
            ("werf-includes.yaml", includes),
        ],
        &[],
    );
    let out = env.slipway().args(["config", "list", "--dir"]).arg(&dir).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        "Error: werf-includes.yaml: werf includes (configuration taken from other git repositories) are not supported yet; \
         build this project with werf, or copy the included files into it\n"
    );
}
