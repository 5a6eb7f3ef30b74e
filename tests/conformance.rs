//! The Dockerfile conformance suite (issue 12): every case in `tests/conformance/cases` is
//! built by slipway and by rootless buildah, and the two images' flattened filesystems and
//! configs are compared field by field.
//!
//! A case is a directory: `Dockerfile` plus its context files. `FROM base` (and `@base@`
//! anywhere) stands for `$SLIPWAY_TEST_REGISTRY/base/busybox:latest`; `@http@` for a
//! server on 127.0.0.1 that serves the files of `tests/conformance/served/` (for `ADD
//! <URL>`), each with the same `Last-Modified`. Optional files, which
//! are not part of the context:
//! - `expect-differences`: the exact listing-and-config diff the case must produce, each
//!   line documented in `docs/DOCKERFILE-DIFFERENCES.md` (BuildKit is the reference). A fix
//!   or a regression changes the diff and fails the case.
//! - `expect-listing`: for Dockerfiles buildah 1.28 cannot build (heredocs): buildah is not
//!   run; slipway's image must differ from the base image by exactly these lines, written
//!   from BuildKit's semantics.
//! - `expect-slipway-error`: a Dockerfile BuildKit builds but slipway refuses (a documented
//!   gap): slipway's build must fail with this text in its error; buildah is not run.
//!
//! buildah 1.28 leaves the empty stubs of its own run-time mounts in every image it makes
//! with a RUN (`/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, an empty `/run`);
//! BuildKit removes such stubs, so they are dropped from buildah's side before comparing.
//!
//! `SLIPWAY_CONFORMANCE_CASES=a,b` runs only those cases; `SLIPWAY_CONFORMANCE_PRINT=1`
//! prints each case's listing relative to the base image (to write an `expect-listing`).

pub mod flatten;

use crate::common::{Env, git, registry, rootless_env, run_ok, stderr, stdout, which};
use crate::repo::fresh_repo;
use flatten::{Image, listing, read_dir_image};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const EXPECT_DIFFERENCES: &str = "expect-differences";
const EXPECT_LISTING: &str = "expect-listing";
const EXPECT_SLIPWAY_ERROR: &str = "expect-slipway-error";

/// Config fields compared (the rest are timestamps, history and builder details).
const CONFIG_FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "Healthcheck",
    "OnBuild",
    "StopSignal",
    "Shell",
];

/// Labels that say which builder made the image, not what the Dockerfile asked for.
fn builder_label(key: &str) -> bool {
    key.starts_with("werf") || key.starts_with("io.buildah.")
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/cases")
}

#[test]
fn dockerfiles_build_as_buildkit_builds_them() {
    let test = "dockerfiles_build_as_buildkit_builds_them";
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else { return };
    assert!(which("buildah").is_some(), "buildah is missing (scripts/install-deps.sh installs it)");
    let only: Option<Vec<String>> =
        std::env::var("SLIPWAY_CONFORMANCE_CASES").ok().map(|v| v.split(',').map(str::to_string).collect());
    let mut names: Vec<String> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| only.as_ref().is_none_or(|o| o.contains(n)))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no conformance cases selected");
    if let Some(only) = &only {
        let unknown: Vec<&String> = only.iter().filter(|n| !names.contains(n)).collect();
        assert!(unknown.is_empty(), "SLIPWAY_CONFORMANCE_CASES names unknown cases: {unknown:?}");
    }

    let suite = Suite::new(&reg);
    let started = Instant::now();
    let mut failures = Vec::new();
    for name in &names {
        let t = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| suite.check(name)));
        let verdict = match result {
            Ok(Ok(())) => "ok".to_string(),
            Ok(Err(why)) => {
                failures.push(format!("--- {name}\n{why}"));
                "DIFFERS".to_string()
            }
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("--- {name}\n{msg}"));
                "ERROR".to_string()
            }
        };
        eprintln!("conformance {name}: {verdict} ({:.1} s)", t.elapsed().as_secs_f64());
    }
    eprintln!("conformance: {} cases in {:.0} s", names.len(), started.elapsed().as_secs_f64());
    suite.cleanup();
    assert!(
        failures.is_empty(),
        "{} of {} conformance cases failed:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}

/// What all cases share: one slipway store, one buildah storage, the base image's listing.
struct Suite {
    env: Env,
    reg: String,
    base: BTreeMap<String, String>,
    /// `http://127.0.0.1:PORT` serving `tests/conformance/served/` (`@http@`).
    http: String,
}

impl Suite {
    fn new(reg: &str) -> Suite {
        let env = Env::new();
        let d = env.path();
        std::fs::write(d.join("policy.json"), r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
        std::fs::write(d.join("storage.conf"), "[storage]\ndriver = \"overlay\"\n").unwrap();
        std::fs::write(d.join("registries.conf"), format!("[[registry]]\nlocation = \"{reg}\"\ninsecure = true\n"))
            .unwrap();
        let base_dir = d.join("base-image");
        skopeo_copy(&format!("docker://{reg}/base/busybox:latest"), &base_dir);
        let base = listing(&read_dir_image(&base_dir).tree);
        // `@http@` in a Dockerfile: a server on 127.0.0.1 with the files of `served/`.
        let served = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/served");
        let modified = "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n".to_string();
        let routes = std::fs::read_dir(&served)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (format!("/{}", e.file_name().to_string_lossy()), modified.clone(), std::fs::read(e.path()).unwrap())
            })
            .collect();
        let http = format!("http://{}", crate::common::serve_http(routes));
        Suite { env, reg: reg.to_string(), base, http }
    }

    /// Build case `name` both ways and compare; `Err` holds a readable report.
    fn check(&self, name: &str) -> Result<(), String> {
        let case = cases_dir().join(name);
        let work = self.env.path().join("cases").join(name);
        let (context, project) = (work.join("context"), work.join("project"));
        self.make_project(&case, &context, &project);
        let expect_listing = read_opt(&case.join(EXPECT_LISTING));
        let expect_diff = read_opt(&case.join(EXPECT_DIFFERENCES));
        if let Some(want) = read_opt(&case.join(EXPECT_SLIPWAY_ERROR)) {
            let err = self.slipway_export(name, &project).expect_err("slipway built a case it is expected to refuse");
            let want = want.trim();
            return if err.contains(want) {
                Ok(())
            } else {
                Err(format!("slipway failed otherwise than expect-slipway-error says ({want}):\n{err}"))
            };
        }

        let ours = if expect_listing.is_some() {
            self.build_slipway(name, &project, &work.join("slipway"))
        } else {
            // The two builders run side by side: they share nothing but the registry.
            std::thread::scope(|s| {
                let b = s.spawn(|| self.build_buildah(name, &context, &work.join("buildah")));
                let ours = self.build_slipway(name, &project, &work.join("slipway"));
                let theirs = b.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                let diff = diff_images(&ours, &theirs);
                let want = normalize(expect_diff.as_deref().unwrap_or(""));
                if diff != want {
                    return Err(format!(
                        "slipway (-) and buildah (+) differ{}:\n{}{}",
                        if expect_diff.is_some() { " otherwise than expect-differences says" } else { "" },
                        diff,
                        if expect_diff.is_some() { format!("expected:\n{want}") } else { String::new() }
                    ));
                }
                Ok(ours)
            })?
        };
        let mut relative = relative_listing(&self.base, &listing(&ours.tree));
        for (k, v) in config_fields(&ours) {
            let _ = writeln!(relative, "{k}: {v}");
        }
        if std::env::var("SLIPWAY_CONFORMANCE_PRINT").is_ok_and(|v| v == "1") {
            eprintln!("=== {name}: slipway's image relative to the base image, and its config:\n{relative}===");
        }
        if let Some(want) = expect_listing {
            let want = normalize(&want);
            if sorted_lines(&relative) != sorted_lines(&want) {
                return Err(format!("slipway's image is not BuildKit's:\n{}", line_diff(&relative, &want)));
            }
        }
        Ok(())
    }

    /// The case's context for buildah, and the same files as a committed git repository for
    /// slipway; modes normalized to what git keeps (0644/0755) so that both see the same.
    fn make_project(&self, case: &Path, context: &Path, project: &Path) {
        copy_tree(case, context);
        let df = std::fs::read_to_string(context.join("Dockerfile")).unwrap();
        let base = format!("{}/base/busybox:latest", self.reg);
        let df: String = df
            .split_inclusive('\n')
            .map(|l| match l.get(..9).filter(|head| head.eq_ignore_ascii_case("FROM base")) {
                Some(head) if l[9..].starts_with([' ', '\n']) || l.len() == 9 => {
                    format!("{} {base}{}", &head[..4], &l[9..])
                }
                _ => l.to_string(),
            })
            .collect::<String>()
            .replace("@base@", &base)
            .replace("@http@", &self.http);
        std::fs::write(context.join("Dockerfile"), df).unwrap();
        std::fs::write(
            context.join("werf.yaml"),
            "project: conformance\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\n",
        )
        .unwrap();
        copy_tree(context, project);
        git(project, &["init", "-q", "-b", "main"]);
        git(project, &["add", "-A"]);
        git(project, &["commit", "-q", "-m", "case"]);
    }

    fn build_slipway(&self, name: &str, project: &Path, out: &Path) -> Image {
        let dest = self.slipway_export(name, project).unwrap_or_else(|e| panic!("{e}"));
        skopeo_copy(&format!("docker://{dest}"), out);
        read_dir_image(out)
    }

    /// `slipway export` of the project to a fresh repository: the image reference, or the
    /// command and its stderr.
    fn slipway_export(&self, name: &str, project: &Path) -> Result<String, String> {
        let dest = format!("{}:latest", fresh_repo(&self.reg, &format!("conformance-{name}")));
        let mut cmd = self.env.slipway();
        cmd.args(["export", "--insecure-registry", "--dir"]).arg(project).args(["--tag", &dest]);
        let out = cmd.output().expect("spawning slipway");
        if out.status.success() {
            Ok(dest)
        } else {
            Err(format!("slipway export failed with {}:\n{}", out.status, stderr(&out)))
        }
    }

    fn build_buildah(&self, name: &str, project: &Path, out: &Path) -> Image {
        let tag = format!("localhost/conformance-{name}:latest");
        let mut bud = self.buildah();
        bud.args(["bud", "--isolation", "chroot", "--layers", "--format", "docker", "--tls-verify=false"])
            .arg("--signature-policy")
            .arg(self.env.path().join("policy.json"))
            .args(["-t", &tag, "-f"])
            .arg(project.join("Dockerfile"))
            .arg(project);
        // buildah 1.28's chroot isolation now and then fails a RUN before it starts with
        // "sealing memfd copy: Device or resource busy" (its re-exec of a sealed copy of
        // itself); that failure says nothing about the Dockerfile, so it is retried.
        for attempt in 1.. {
            let out = bud.output().expect("spawning buildah");
            if out.status.success() {
                break;
            }
            let err = stderr(&out);
            assert!(
                attempt < 3 && err.contains("sealing memfd copy"),
                "command {bud:?} failed with {}\nstdout:\n{}\nstderr:\n{err}",
                out.status,
                stdout(&out)
            );
            eprintln!("conformance {name}: buildah hit its memfd sealing flake, retrying");
        }
        run_ok(
            self.buildah()
                .arg("push")
                .arg("--signature-policy")
                .arg(self.env.path().join("policy.json"))
                .arg(&tag)
                .arg(format!("dir:{}", out.display())),
        );
        let mut image = read_dir_image(out);
        drop_run_stubs(&mut image);
        image
    }

    /// `buildah` with this suite's storage and configuration, none of the user's.
    fn buildah(&self) -> Command {
        let d = self.env.path();
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(d.join("buildah/root"))
            .arg("--runroot")
            .arg(d.join("buildah/runroot"))
            .args(["--storage-driver", "overlay"])
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .env("HOME", d.join("home"));
        c
    }

    /// buildah's storage holds files owned by subordinate ids: only its namespace can
    /// remove them.
    fn cleanup(&self) {
        let root = self.env.path().join("buildah");
        let _ = self.buildah().args(["unshare", "rm", "-rf"]).arg(&root).output();
    }
}

/// Remove the stubs buildah 1.28 leaves for its run-time mounts (BuildKit removes them):
/// empty `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf` and an empty `/run`.
fn drop_run_stubs(image: &mut Image) {
    for stub in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
        if image.tree.get(stub).is_some_and(|n| n.is_empty_file()) {
            image.tree.remove(stub);
        }
    }
    if image.tree.get("run").is_some_and(|n| n.is_dir()) && !image.tree.keys().any(|k| k.starts_with("run/")) {
        image.tree.remove("run");
    }
}

pub fn skopeo_copy(src: &str, dir: &Path) {
    let out = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", "--insecure-policy", src])
        .arg(format!("dir:{}", dir.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo copy {src}: {}", stderr(&out));
}

fn read_opt(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

/// Drop comments and blank lines; one line per entry, each ending in a newline.
fn normalize(s: &str) -> String {
    s.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).map(|l| format!("{}\n", l.trim_end())).collect()
}

/// Copy a case directory (without the expectation files), files 0644 or 0755, symlinks kept.
fn copy_tree(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == EXPECT_DIFFERENCES || name == EXPECT_LISTING || name == EXPECT_SLIPWAY_ERROR || name == ".git" {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        let meta = std::fs::symlink_metadata(&src).unwrap();
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if meta.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
            let mode = if meta.permissions().mode() & 0o100 != 0 { 0o755 } else { 0o644 };
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

/// The compared config fields, builder labels removed, empty values as absent.
fn config_fields(img: &Image) -> BTreeMap<String, String> {
    let c = &img.config["config"];
    let mut out = BTreeMap::new();
    for f in CONFIG_FIELDS {
        let mut v = c.get(*f).cloned().unwrap_or(serde_json::Value::Null);
        if let Some(m) = v.as_object_mut()
            && *f == "Labels"
        {
            m.retain(|k, _| !builder_label(k));
        }
        let empty = match &v {
            serde_json::Value::Null => true,
            serde_json::Value::String(s) => s.is_empty(),
            serde_json::Value::Array(a) => a.is_empty(),
            serde_json::Value::Object(o) => o.is_empty(),
            _ => false,
        };
        if !empty {
            out.insert(format!("config.{f}"), v.to_string());
        }
    }
    out
}

/// `- path: slipway's entry` / `+ path: buildah's entry` for every path or config field
/// that is not the same in both.
fn diff_images(ours: &Image, theirs: &Image) -> String {
    let mut a = listing(&ours.tree);
    let mut b = listing(&theirs.tree);
    a.extend(config_fields(ours));
    b.extend(config_fields(theirs));
    map_diff(&a, &b)
}

fn map_diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for k in keys {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => {
                let _ = writeln!(out, "- {k}: {}", x.map_or("(absent)", String::as_str));
                let _ = writeln!(out, "+ {k}: {}", y.map_or("(absent)", String::as_str));
            }
        }
    }
    out
}

/// The paths that differ from the base image: `path: entry` or `path: (deleted)`.
pub(crate) fn relative_listing(base: &BTreeMap<String, String>, tree: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (p, e) in tree {
        if base.get(p) != Some(e) {
            let _ = writeln!(out, "{p}: {e}");
        }
    }
    for p in base.keys().filter(|p| !tree.contains_key(*p)) {
        let _ = writeln!(out, "{p}: (deleted)");
    }
    out
}

fn sorted_lines(s: &str) -> Vec<&str> {
    let mut v: Vec<&str> = s.lines().collect();
    v.sort_unstable();
    v
}

fn line_diff(got: &str, want: &str) -> String {
    let g: std::collections::BTreeSet<&str> = got.lines().collect();
    let w: std::collections::BTreeSet<&str> = want.lines().collect();
    let mut out = String::new();
    for l in g.difference(&w) {
        let _ = writeln!(out, "- slipway: {l}");
    }
    for l in w.difference(&g) {
        let _ = writeln!(out, "+ expected: {l}");
    }
    out
}
