//! The storage driver × step isolation matrix (issue 13): one small Dockerfile project
//! built with every way of mounting layers (native overlayfs, fuse-overlayfs forced by
//! storage.conf's `mount_program`, vfs copies) under every isolation (the built-in
//! sandbox, runc, crun), each in a store of its own. The nine images, flattened (paths,
//! types, modes, owners, content hashes, link targets, hard-link groups), must be equal;
//! one of them runs in podman. A combination that cannot run here fails the test.
//! `scripts/test.sh` runs it twice: with the full id range and in single-id mode.
//!
//! `SLIPWAY_MATRIX_ONLY=fuse-overlayfs+runc,vfs+crun` builds only those cells (for
//! working on one; the suite builds all nine).

use crate::common::{Env, git_project, registry, rootless_env, run_ok, stderr, stdout, which};
use crate::conformance::flatten::{listing, read_dir_image};
use crate::conformance::skopeo_copy;
use crate::repo::{fresh_repo, podman_run};
use crate::single_id::single_id_pass;
use std::collections::BTreeMap;

/// Environment variables for slipway.
type Vars<'a> = &'a [(&'a str, &'a str)];

const WERF_YAML: &str = "project: matrix\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\n";

/// Deletes a directory of the base (`/usr`), one of an earlier step (`/data/old`),
/// recreates a base directory and an earlier step's one (opaque directories), copies
/// up by chown, links hard and soft, and keeps a set-uid mode.
fn dockerfile(reg: &str) -> String {
    format!(
        r#"FROM {reg}/base/busybox:latest
RUN mkdir -p /data/old/sub /data/tree && echo old > /data/old/sub/f && echo t > /data/tree/t \
 && echo gone > /data/gone.txt && echo keep > /data/keep.txt && echo s > /data/suid && chmod 4755 /data/suid
RUN rm -r /data/old /usr && rm /data/gone.txt \
 && rm -rf /home && mkdir -p /home/fresh && echo f > /home/fresh/f \
 && rm -r /data/tree && mkdir /data/tree && echo new > /data/tree/n \
 && ln /data/keep.txt /data/hard.txt && ln -s ../data/keep.txt /data/sym.txt \
 && chown 1000:1000 /data/keep.txt && chown 1234:5678 /data/suid && chmod 4755 /data/suid
COPY --chown=app:app src/ /app/
CMD ["/bin/sh", "-c", "stat -c '%n %u:%g %a %h' /data/* /app/hello.txt && ls /data/tree /home /home/fresh && test ! -e /usr && echo no usr"]
"#
    )
}

/// What podman prints for the image's CMD.
const PODMAN_OUT: &str = "\
/data/hard.txt 1000:1000 644 2
/data/keep.txt 1000:1000 644 2
/data/suid 1234:5678 4755 1
/data/sym.txt 0:0 777 1
/data/tree 0:0 755 2
/app/hello.txt 1000:1000 644 1
/data/tree:
n

/home:
fresh

/home/fresh:
f
no usr
";

#[test]
fn single_id_and_full_range_every_driver_and_isolation_build_the_same_image() {
    let test = "single_id_and_full_range_every_driver_and_isolation_build_the_same_image";
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else { return };
    let fuse = which("fuse-overlayfs").expect("fuse-overlayfs is missing (scripts/install-deps.sh installs it)");
    let top = Env::new();
    let project = top.path().join("project");
    git_project(
        &project,
        &[("werf.yaml", WERF_YAML), ("Dockerfile", &dockerfile(&reg)), ("src/hello.txt", "hello\n")],
        &[],
    );
    let storage_conf = top.path().join("storage.conf");
    std::fs::write(&storage_conf, format!("[storage.options.overlay]\nmount_program = \"{}\"\n", fuse.display()))
        .unwrap();
    let drivers: [(&str, Vars, &str); 3] = [
        ("overlay", &[], "storage driver: native overlayfs ("),
        (
            "fuse-overlayfs",
            &[("CONTAINERS_STORAGE_CONF", storage_conf.to_str().unwrap())],
            "storage driver: fuse-overlayfs ",
        ),
        (
            "vfs",
            &[("WERF_BUILDAH_STORAGE_DRIVER", "vfs")],
            "storage driver: vfs (plain copies) (WERF_BUILDAH_STORAGE_DRIVER=vfs)",
        ),
    ];
    let isolations: [(&str, Vars); 3] = [
        ("built-in", &[("WERF_BUILDAH_MODE", "native-chroot")]),
        ("runc", &[("WERF_BUILDAH_MODE", "native-rootless"), ("BUILDAH_RUNTIME", "runc")]),
        ("crun", &[("WERF_BUILDAH_MODE", "native-rootless"), ("BUILDAH_RUNTIME", "crun")]),
    ];

    let only = std::env::var("SLIPWAY_MATRIX_ONLY").ok();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o.split(',').any(|n| n == name));
    let mut results: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    let mut images = BTreeMap::new();
    let mut entries = BTreeMap::new();
    for (driver, driver_vars, info) in drivers {
        for (isolation, isolation_vars) in isolations {
            let name = format!("{driver}+{isolation}");
            if !wanted(&name) {
                continue;
            }
            let started = std::time::Instant::now();
            // A store (and home) of its own; no storage.conf or containers.conf but the test's.
            let mut env = Env::new()
                .with_var("CONTAINERS_CONF", "/nonexistent/containers.conf")
                .with_var("CONTAINERS_STORAGE_CONF", "/nonexistent/storage.conf");
            for (k, v) in driver_vars.iter().chain(isolation_vars.iter()) {
                env = env.with_var(k, v);
            }
            let dest = format!("{}:latest", fresh_repo(&reg, &format!("matrix-{driver}-{isolation}")));
            let out = run_ok(
                env.slipway().args(["export", "--insecure-registry", "--dir"]).arg(&project).args(["--tag", &dest]),
            );
            let said = format!("{}{}", stdout(&out), stderr(&out));
            assert!(said.contains(info), "{name}: the build did not say {info:?}:\n{said}");
            let mapping = if single_id_pass() { "single-id mapping" } else { "" };
            assert!(said.contains(mapping), "{name}: the build did not say {mapping:?}:\n{said}");
            let isolation_line = match isolation {
                "built-in" => "step isolation: slipway's chroot sandbox (WERF_BUILDAH_MODE=native-chroot)".to_string(),
                rt => format!(
                    "step isolation: {} (WERF_BUILDAH_MODE=native-rootless; the runtime: BUILDAH_RUNTIME)",
                    which(rt).unwrap().display()
                ),
            };
            assert!(said.contains(&isolation_line), "{name}: the build did not say {isolation_line:?}:\n{said}");
            assert!(!said.contains("falling back"), "{name}: a fallback happened:\n{said}");
            let dir = top.path().join(format!("image-{driver}-{isolation}"));
            skopeo_copy(&format!("docker://{dest}"), &dir);
            results.push((name.clone(), listing(&read_dir_image(&dir).tree)));
            entries.insert(name.clone(), layer_entries(&dir));
            images.insert(name.clone(), dest);
            eprintln!("matrix {name}: built in {:.1} s", started.elapsed().as_secs_f64());
        }
    }

    let (first_name, first) = &results[0];
    for want in ["data/suid", "data/hard.txt", "data/sym.txt", "home/fresh/f", "data/tree/n", "app/hello.txt"] {
        assert!(first.contains_key(want), "{first_name}: no {want} in {first:#?}");
    }
    for gone in ["usr", "data/old", "data/gone.txt", "data/tree/t"] {
        assert!(!first.contains_key(gone), "{first_name}: {gone} is still there");
    }
    assert!(first["data/suid"].contains("mode=4755 owner=1234:5678"), "{}", first["data/suid"]);
    assert!(first["data/keep.txt"].contains("links=data/hard.txt,data/keep.txt"), "{}", first["data/keep.txt"]);
    let mut differ = Vec::new();
    for (name, l) in &results[1..] {
        if l != first {
            let mut diff = String::new();
            for k in first.keys().chain(l.keys()).collect::<std::collections::BTreeSet<_>>() {
                if first.get(k) != l.get(k) {
                    diff.push_str(&format!("  {k}: {:?} vs {:?}\n", first.get(k), l.get(k)));
                }
            }
            differ.push(format!("{name} differs from {first_name}:\n{diff}"));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    if only.is_some() {
        return;
    }

    // fuse-overlayfs' upper directories were brought back to overlayfs' format: each
    // layer has the same entries (whiteouts, opaque markers, xattrs) as native overlay's.
    for isolation in ["built-in", "runc", "crun"] {
        let (native, fuse) =
            (&entries[&format!("overlay+{isolation}")], &entries[&format!("fuse-overlayfs+{isolation}")]);
        assert_eq!(native, fuse, "{isolation}: the layers of native overlayfs and fuse-overlayfs differ");
    }
    let opaque = entries["overlay+built-in"].iter().flatten().filter(|e| e.contains("/.wh..wh..opq ")).count();
    assert_eq!(opaque, 2, "/home and /data/tree are opaque: {:?}", entries["overlay+built-in"]);

    // The fuse-overlayfs + crun image, as a real client runs it. Not in the single-id
    // pass: podman itself, as a user without subordinate ids, cannot store an image
    // whose files belong to anyone but root ("lchown /home/app: invalid argument").
    if !single_id_pass() {
        assert_eq!(podman_run(&top, &images["fuse-overlayfs+crun"]), PODMAN_OUT);
    }
}

/// Each layer's entries of the `dir:` image at `dir`: path, type and xattr names.
fn layer_entries(dir: &std::path::Path) -> Vec<Vec<String>> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let mut layers = Vec::new();
    for l in manifest["layers"].as_array().unwrap() {
        let blob = std::fs::read(dir.join(l["digest"].as_str().unwrap().trim_start_matches("sha256:"))).unwrap();
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
        let mut names = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let mut xattrs: Vec<String> = match e.pax_extensions().unwrap() {
                Some(pax) => pax.map(|x| x.unwrap().key().unwrap().to_string()).collect(),
                None => Vec::new(),
            };
            xattrs.sort();
            names.push(format!("{} {:?} {}", e.path().unwrap().display(), e.header().entry_type(), xattrs.join(",")));
        }
        layers.push(names);
    }
    layers
}
