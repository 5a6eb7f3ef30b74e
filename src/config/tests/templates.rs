//! werf.yaml templates as werf renders them: Sprig's functions, werf's `env`,
//! `include`, `tpl`, `toYaml`/`fromYaml`, `.werf` partials, `.Files` and `.Commit`.
//! Expected text follows werf's and Sprig's documented behaviour (Sprig argument order,
//! yaml.v2 output with the newline trimmed, Go's `time.Time.String`).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{CommitData, FileSource, TemplateInput, render};

/// A commit tree in memory.
struct Files(BTreeMap<&'static str, &'static str>);

impl FileSource for Files {
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.0.get(path).map(|c| c.as_bytes().to_vec()))
    }
    fn glob(&self, pattern: &str) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for (path, content) in &self.0 {
            if crate::project::glob_match(pattern, path)? {
                out.insert(path.to_string(), content.to_string());
            }
        }
        Ok(out)
    }
    fn exists(&self, path: &str) -> Result<bool, String> {
        Ok(self.0.contains_key(path) || self.is_dir(path)?)
    }
    fn is_dir(&self, path: &str) -> Result<bool, String> {
        Ok(self.0.keys().any(|p| p.starts_with(&format!("{path}/"))))
    }
}

fn input() -> TemplateInput {
    let files = Files(BTreeMap::from([
        ("Dockerfile", "FROM alpine\n"),
        ("conf/a.yaml", "a: 1\n"),
        ("conf/b.yaml", "b: 2\n"),
        ("conf/deep/c.yaml", "c: 3\n"),
        ("images.yaml", "images:\n- name: api\n  port: 8080\n- name: web\n  port: 80\n"),
    ]));
    TemplateInput {
        vars: BTreeMap::from([
            ("CI_COMMIT_TAG".to_owned(), "v1.2.3".to_owned()),
            ("EMPTY".to_owned(), String::new()),
            ("SECRET_TOKEN".to_owned(), "s3cr3t".to_owned()),
        ]),
        allow_env: Some(Arc::new(|name: &str| name.starts_with("CI_") || name == "EMPTY" || name == "UNSET")),
        env: "production".to_owned(),
        files: Some(Arc::new(files)),
        commit: Some(CommitData { hash: "0123456789abcdef0123456789abcdef01234567".to_owned(), time_unix: 1_700_000_000 }),
        partials: vec![
            (
                "_helpers.tmpl".to_owned(),
                "{{- define \"from\" }}from: {{ .base | default \"alpine:3.20\" }}{{ end -}}\n{{- define \"labels\" -}}\nlabels:\n{{ toYaml . | indent 2 }}\n{{- end }}".to_owned(),
            ),
            ("images/app.tmpl".to_owned(), "image: {{ .name }}".to_owned()),
        ],
    }
}

fn check(cases: &[(&str, Result<&str, &str>)]) {
    let input = input();
    let mut failed = Vec::new();
    for (text, want) in cases {
        let got = render("werf.yaml", text, &input);
        let ok = match (want, &got) {
            (Ok(w), Ok(g)) => g == w,
            (Err(w), Err(e)) => e.to_string().contains(w),
            _ => false,
        };
        if !ok {
            failed.push(format!("{text:?}\n  got  {got:?}\n  want {want:?}"));
        }
    }
    assert!(failed.is_empty(), "{} of {} cases failed:\n{}", failed.len(), cases.len(), failed.join("\n"));
}

#[test]
fn sprig_functions_as_werf_yaml_uses_them() {
    check(&[
        // strings
        (r#"{{ "Hello" | upper | quote }}"#, Ok(r#""HELLO""#)),
        (r#"{{ "HeLLo" | lower | squote }}"#, Ok("'hello'")),
        (r#"{{ title "hello wide world" }}"#, Ok("Hello Wide World")),
        (
            r#"{{ "  x  " | trim }}|{{ trimAll "-" "--x--" }}|{{ trimPrefix "v" "v1.2" }}|{{ trimSuffix ".go" "a.go" }}"#,
            Ok("x|x|1.2|a"),
        ),
        (r#"{{ "a-b-c" | replace "-" "_" }}"#, Ok("a_b_c")),
        (
            r#"{{ contains "ell" "hello" }} {{ hasPrefix "he" "hello" }} {{ hasSuffix "lo" "hello" }}"#,
            Ok("true true true"),
        ),
        (r#"{{ (split "/" "registry/app")._1 }}"#, Ok("app")),
        (r#"{{ splitList "," "a,b,c" | last }} {{ splitList "," "a,b,c" | join "+" }}"#, Ok("c a+b+c")),
        (r#"{{ list "x" 1 true | join "," }}"#, Ok("x,1,true")),
        ("{{ \"a\\nb\" | indent 2 }}", Ok("  a\n  b")),
        ("k:{{ \"a\\nb\" | nindent 2 }}", Ok("k:\n  a\n  b")),
        (
            r#"{{ repeat 3 "ab" }} {{ substr 1 3 "hello" }} {{ trunc 3 "hello" }} {{ cat "a" "b" }}"#,
            Ok("ababab el hel a b"),
        ),
        (
            r#"{{ regexMatch "^v[0-9]+" "v12" }} {{ regexReplaceAll "v([0-9]+)" "v12" "ver-${1}" }} {{ regexFind "[0-9]+" "ab12cd" }}"#,
            Ok("true ver-12 12"),
        ),
        // encodings and hashes
        (r#"{{ "abc" | b64enc }} {{ "YWJj" | b64dec }}"#, Ok("YWJj abc")),
        (r#"{{ "abc" | sha256sum }}"#, Ok("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")),
        (
            r#"{{ uuidv4 | len }} {{ regexMatch "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$" uuidv4 }}"#,
            Ok("36 true"),
        ),
        // defaults and flow
        (
            r#"{{ "" | default "d" }} {{ "v" | default "d" }} {{ empty "" }} {{ empty list }} {{ empty 0 }} {{ empty "x" }}"#,
            Ok("d v true true true false"),
        ),
        (r#"{{ coalesce "" nil "b" "c" }} {{ ternary "yes" "no" (eq .Env "production") }}"#, Ok("b yes")),
        (r#"{{ required "TAG is required" "" }}"#, Err("TAG is required")),
        (r#"{{ fail "stop here" }}"#, Err("stop here")),
        // numbers
        (
            r#"{{ add 1 2 3 }} {{ sub 10 3 }} {{ mul 2 3 }} {{ div 7 2 }} {{ mod 7 2 }} {{ int "12" | add1 }} {{ max 1 5 3 }}"#,
            Ok("6 7 6 3 1 13 5"),
        ),
        (r#"{{ toString 5 | printf "%s!" }} {{ until 3 | join "," }}"#, Ok("5! 0,1,2")),
        // lists and dicts
        (
            r#"{{ $d := dict "name" "app" "port" 80 }}{{ get $d "name" }} {{ get $d "nope" }}|{{ hasKey $d "port" }} {{ keys $d | sortAlpha | join "," }}"#,
            Ok("app |true name,port"),
        ),
        (r#"{{ $d := dict "a" 1 }}{{ $d = set $d "b" 2 }}{{ $d = unset $d "a" }}{{ toJson $d }}"#, Ok(r#"{"b":2}"#)),
        (
            r#"{{ $l := list 1 2 }}{{ $l = append $l 3 }}{{ toJson $l }} {{ first $l }} {{ rest $l | toJson }} {{ has 2 $l }} {{ list 1 1 2 | uniq | toJson }}"#,
            Ok("[1,2,3] 1 [2,3] true [1,2]"),
        ),
        (
            r#"{{ define "two" }}{{ index . 1 }}{{ end }}{{ tuple 1 "b" | include "two" }} {{ toJson (tuple) }}"#,
            Ok("b []"),
        ),
        (
            r#"{{ merge (dict "a" 1) (dict "a" 2 "b" 3) | toJson }} {{ mergeOverwrite (dict "a" 1) (dict "a" 2) | toJson }}"#,
            Ok(r#"{"a":1,"b":3} {"a":2}"#),
        ),
        (
            r#"{{ pick (dict "a" 1 "b" 2) "a" | toJson }} {{ omit (dict "a" 1 "b" 2) "a" | toJson }} {{ dig "x" "y" "none" (dict "x" (dict "y" "found")) }}"#,
            Ok(r#"{"a":1} {"b":2} found"#),
        ),
        (
            r#"{{ kindOf (list) }} {{ kindOf (dict) }} {{ kindOf "s" }} {{ kindIs "int" 3 }}"#,
            Ok("slice map string true"),
        ),
        // YAML and JSON (werf's toYaml is yaml.v2 with the trailing newline trimmed)
        (
            r#"{{ dict "b" (list 1 "two" "true") "a" (dict "c" "x: y" "d" "") | toYaml }}"#,
            Ok("a:\n  c: 'x: y'\n  d: \"\"\nb:\n- 1\n- two\n- \"true\""),
        ),
        (r#"{{ list (dict "name" "a" "port" 1) | toYaml }}"#, Ok("- name: a\n  port: 1")),
        (
            "{{ $v := fromYaml \"a: [1, 2]\\nb: x\" }}{{ $v.b }} {{ index $v.a 1 }} {{ toJson $v }}",
            Ok(r#"x 2 {"a":[1,2],"b":"x"}"#),
        ),
        (r#"{{ $v := fromJson "{\"a\": {\"b\": [true]}}" }}{{ toJson $v.a }}"#, Ok(r#"{"b":[true]}"#)),
        (r#"{{ semverCompare ">=1.20.0-0" "v1.21.3" }} {{ semverCompare "~1.2" "1.3.0" }}"#, Ok("true false")),
        (r#"{{ expandenv "$HOME" }}"#, Err("expandenv")),
    ]);
}

#[test]
fn partials_include_and_tpl() {
    check(&[
        // Partials from .werf are named by their path relative to .werf.
        (r#"{{ include "from" (dict "base" "debian:12") }}"#, Ok("from: debian:12")),
        (r#"{{ include "from" dict }}"#, Ok("from: alpine:3.20")),
        (r#"{{ template "images/app.tmpl" (dict "name" "api") }}"#, Ok("image: api")),
        (r#"{{ include "images/app.tmpl" (dict "name" "api") | upper }}"#, Ok("IMAGE: API")),
        (
            r#"{{ include "labels" (dict "team" "core" "tier" "backend") }}"#,
            Ok("labels:\n  team: core\n  tier: backend"),
        ),
        // werf.yaml's own defines work with include too, and override nothing silently.
        (r#"{{ define "x" }}[{{ . }}]{{ end }}{{ include "x" "a" | trim }}{{ include "x" "b" }}"#, Ok("[a][b]")),
        (r#"{{ include "missing" . }}"#, Err(r#"no template "missing""#)),
        // tpl renders a string as a template, with the set's functions and defines.
        (r#"{{ tpl "image: {{ .name | upper }}" (dict "name" "app") }}"#, Ok("image: APP")),
        (r#"{{ tpl "{{ include \"from\" . }}" (dict "base" "busybox") }}"#, Ok("from: busybox")),
        (
            r#"{{ $t := .Files.Get "images.yaml" }}{{ range (fromYaml $t).images }}{{ tpl "{{ .name }}:{{ .port }};" . }}{{ end }}"#,
            Ok("api:8080;web:80;"),
        ),
        (r#"{{ tpl "{{ .Files.Get \"Dockerfile\" }}" $ }}"#, Ok("FROM alpine\n")),
        // Recursion is bounded.
        (
            r#"{{ define "r" }}{{ include "r" . }}{{ end }}{{ include "r" . }}"#,
            Err("`include` or `tpl` nests more than 32 deep"),
        ),
    ]);
}

#[test]
fn files_and_commit_come_from_the_commit() {
    check(&[
        (r#"{{ .Files.Get "Dockerfile" }}"#, Ok("FROM alpine\n")),
        (
            r#"{{ range $path, $content := .Files.Glob "conf/*.yaml" }}{{ $path }}={{ $content | trim }};{{ end }}"#,
            Ok("conf/a.yaml=a: 1;conf/b.yaml=b: 2;"),
        ),
        (
            r#"{{ range $path, $_ := .Files.Glob "conf/**/*.yaml" }}{{ $path }};{{ end }}"#,
            Ok("conf/a.yaml;conf/b.yaml;conf/deep/c.yaml;"),
        ),
        (
            r#"{{ .Files.Exists "Dockerfile" }} {{ .Files.Exists "nope" }} {{ .Files.IsDir "conf" }} {{ .Files.IsDir "Dockerfile" }}"#,
            Ok("true false true false"),
        ),
        (r#"{{ range list 1 }}{{ $.Files.Get "conf/a.yaml" | trim }}{{ end }}"#, Ok("a: 1")),
        (r#"{{ $root := . }}{{ range list 1 }}{{ $root.Files.Get "conf/b.yaml" | trim }}{{ end }}"#, Ok("b: 2")),
        (r#"{{ .Files.Get "nope.txt" }}"#, Err(r#"{{ .Files.Get "nope.txt" }}"#)),
        (
            r#"{{ include "get" (dict "root" $) }}{{ define "get" }}{{ .root.Files.Get "conf/a.yaml" | trim }}{{ end }}"#,
            Ok("a: 1"),
        ),
        // Text outside actions is left alone.
        (".Files.Get stays {{ .Env }}", Ok(".Files.Get stays production")),
        (
            r#"{{ .Commit.Hash }} {{ .Commit.Date.Unix }} {{ .Commit.Date.Human }}"#,
            Ok("0123456789abcdef0123456789abcdef01234567 1700000000 2023-11-14 22:13:20 +0000 UTC"),
        ),
    ]);
}

#[test]
fn env_follows_werf_giterminism() {
    let denied = "the configuration with potential external dependency found in the werf config: env name \"SECRET_TOKEN\" not allowed by giterminism";
    check(&[
        (r#"{{ env "CI_COMMIT_TAG" }}"#, Ok("v1.2.3")),
        (r#"{{ env "EMPTY" "dflt" }} {{ env "UNSET" "dflt" }}"#, Ok("dflt dflt")),
        (r#"{{ env "UNSET" }}"#, Err("the environment variable \"UNSET\" must be set or default must be provided")),
        // Set but not allowed: werf's giterminism error, whatever the default.
        (r#"{{ env "SECRET_TOKEN" }}"#, Err(denied)),
        (r#"{{ env "SECRET_TOKEN" "fallback" }}"#, Err(denied)),
        (r#"{{ env "SECRET_TOKEN" | default "fallback" }}"#, Err(denied)),
        (r#"{{ env "NOT_SET_NOT_ALLOWED" "x" }}"#, Err("env name \"NOT_SET_NOT_ALLOWED\" not allowed by giterminism")),
        (r#"{{ env "A" "b" "c" }}"#, Err("more than 1 optional argument prohibited")),
    ]);
    let err = render("werf.yaml", r#"{{ env "SECRET_TOKEN" }}"#, &input()).unwrap_err().to_string();
    assert!(
        err.contains("affects the final digest of built images.\n\nTo provide a strong guarantee of reproducibility"),
        "{err}"
    );
}

#[test]
fn every_function_is_bounded() {
    let budget = "a value exceeds 16 MiB";
    check(&[
        (r#"{{ repeat 20000000 "x" }}"#, Err(budget)),
        (r#"{{ until 10000000 | len }}"#, Err(budget)),
        (r#"{{ "x" | indent 999999999 }}"#, Err(budget)),
        (
            r#"{{ $l := list "xxxxxxxxxxxxxxxx" }}{{ range until 30 }}{{ $l = list $l $l }}{{ end }}{{ len $l }}"#,
            Err(budget),
        ),
        (r#"{{ $s := "xxxxxxxxxxxxxxxx" }}{{ range until 30 }}{{ $s = cat $s $s }}{{ end }}{{ len $s }}"#, Err(budget)),
        (r#"{{ $s := "xxxxxxxxxxxxxxxx" }}{{ range until 30 }}{{ $s = list $s $s | toJson }}{{ end }}"#, Err(budget)),
        (
            r#"{{ define "big" }}{{ repeat 1000000 "x" }}{{ end }}{{ $s := "" }}{{ range until 20 }}{{ $s = cat $s (include "big" .) }}{{ end }}"#,
            Err(budget),
        ),
    ]);
}

#[test]
fn errors_name_file_line_and_column() {
    let mut input = input();
    let err =
        render("werf.yaml", "a: 1\nb: {{ .Files.Get \"Dockerfile\" | nosuch }}\n", &input).unwrap_err().to_string();
    assert!(err.contains("werf.yaml:2:"), "{err}");
    assert!(err.contains("nosuch"), "{err}");
    // Execution errors name where the failing action is, in partials too.
    let err = render("werf.yaml", "a: 1\nb: {{ .Files.Get \"x\" }}\n", &input).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "werf.yaml: rendering the Go template: template: werf.yaml:2:7: execution error: {{ .Files.Get \"x\" }}: the file \"x\" not found in the project git repository. If the file exists locally"
        ),
        "{err}"
    );
    input.partials.push(("fails.tmpl".to_owned(), "{{ define \"f\" }}\n  {{ fail \"no\" }}{{ end }}".to_owned()));
    let err = render("werf.yaml", "x: {{ include \"f\" . }}", &input).unwrap_err().to_string();
    assert!(err.contains("template: fails.tmpl:2:6: execution error: no"), "{err}");
    input.partials.push(("broken.tmpl".to_owned(), "x\n{{ if }}".to_owned()));
    let err = render("werf.yaml", "{{ .Env }}", &input).unwrap_err().to_string();
    assert!(err.contains("broken.tmpl:2:"), "{err}");
}
