//! Rootfs drivers: overlayfs and vfs give steps the same trees, and a store where
//! overlayfs cannot be mounted falls back to copies.

use crate::common::{Env, git_project, registry, rootless_env, run_ok, stderr, stdout, which};
use std::process::Command;

/// A source stage of two layers (a removed directory, an opaque one, a hard link, a
/// symlink, owners), a one-layer and a layerless `FROM scratch` stage, read by
/// `COPY --from`, read-only and `rw` bind mounts, and a cache seeded from a stage.
const DOCKERFILE: &str = r#"FROM BASE AS src
RUN mkdir -p /out/gone /out/opaque/old /out/d && echo 1 > /out/f && echo x > /out/gone/x \
 && echo o > /out/opaque/old/o && ln /out/f /out/hard && ln -s f /out/sym \
 && chown 1000:1000 /out/f && chown 123:456 /out/d && chmod 700 /out/d
RUN rm -r /out/gone /out/opaque && mkdir /out/opaque && echo n > /out/opaque/new && echo 2 > /out/two
FROM scratch AS one
COPY one.txt /one.txt
FROM scratch AS empty
FROM BASE
COPY --from=src /out /copied
COPY --from=one /one.txt /one.txt
RUN --mount=type=bind,from=src,source=/out,target=/m cd /m && find . | sort > /ro.txt \
 && stat -c '%n %u:%g %a %F' $(find . | sort) >> /ro.txt && cat f two opaque/new >> /ro.txt \
 && (touch new 2>/dev/null && echo writable || echo read-only) >> /ro.txt
RUN --mount=type=bind,from=src,source=/out,target=/m,rw echo changed > /m/f && rm /m/sym && cat /m/f > /rw.txt
COPY --from=src /out/f /out/sym /after-rw/
RUN --mount=type=cache,id=view-seed,from=src,source=/out,target=/c find /c | sort > /cache.txt
RUN --mount=type=bind,from=empty,target=/e ls -A /e | wc -l > /empty.txt
"#;

const INSPECT: &str = "cd /copied && find . | sort && stat -c '%n %u:%g %a %F %h' $(find . | sort) \
 && cat /one.txt /ro.txt /rw.txt /after-rw/f /after-rw/sym /cache.txt /empty.txt";

const EXPECTED: &str = "\
.
./d
./f
./hard
./opaque
./opaque/new
./sym
./two
. 0:0 755 directory 4
./d 123:456 700 directory 2
./f 1000:1000 644 regular file 2
./hard 1000:1000 644 regular file 2
./opaque 0:0 755 directory 2
./opaque/new 0:0 644 regular file 1
./sym 0:0 777 symbolic link 1
./two 0:0 644 regular file 1
one
.
./d
./f
./hard
./opaque
./opaque/new
./sym
./two
. 0:0 755 directory
./d 123:456 700 directory
./f 1000:1000 644 regular file
./hard 1000:1000 644 regular file
./opaque 0:0 755 directory
./opaque/new 0:0 644 regular file
./sym 0:0 777 symbolic link
./two 0:0 644 regular file
1
2
n
read-only
changed
1
1
/c
/c/d
/c/f
/c/hard
/c/opaque
/c/opaque/new
/c/sym
/c/two
0
";

/// The same Dockerfile under overlayfs and vfs: what `COPY --from` and the mounts read
/// is the same, a read-only mount cannot be written, and a `rw` one leaves the stage as
/// it was.
#[test]
fn stage_sources_read_the_same_under_overlay_and_vfs() {
    let test = "stage_sources_read_the_same_under_overlay_and_vfs";
    if !rootless_env(test) {
        return;
    }
    let Some(reg) = registry(test) else { return };
    for driver in ["overlay", "vfs"] {
        let env = Env::new().with_var("WERF_BUILDAH_STORAGE_DRIVER", driver);
        let dir = env.path().join("project");
        let df = DOCKERFILE.replace("BASE", &format!("{reg}/base/busybox:latest"));
        let werf = "project: views\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\n";
        git_project(&dir, &[("werf.yaml", werf), ("Dockerfile", &df), ("one.txt", "one\n")], &[]);
        let out = run_ok(
            env.slipway()
                .args(["run", "app", "--insecure-registry", "--dir"])
                .arg(&dir)
                .args(["--", "/bin/sh", "-c", INSPECT]),
        );
        assert_eq!(stdout(&out), EXPECTED, "{driver}: stderr:\n{}", stderr(&out));
        assert!(!stderr(&out).contains("Warning"), "{driver}: {}", stderr(&out));
    }
}

/// A store on overlayfs really cannot hold an overlay upper directory ("filesystem on
/// … not supported as upperdir"): the automatic driver warns once and falls back to
/// fuse-overlayfs, or, with `/dev/fuse` unusable, to copies; a forced `overlay` driver
/// then fails naming both. The store's overlay is mounted in a user namespace of the
/// test's own (`unshare -Urm`), where slipway, already root, adds only a mount namespace.
#[test]
fn a_store_on_overlayfs_falls_back_to_fuse_overlayfs_then_copies() {
    let test = "a_store_on_overlayfs_falls_back_to_fuse_overlayfs_then_copies";
    if !rootless_env(test) {
        return;
    }
    let unshare = which("unshare").expect("unshare (util-linux) is needed");
    let env = Env::new();
    let dir = env.path().join("project");
    let df = "FROM scratch AS src\nCOPY a.txt /src/a.txt\nCOPY b.txt /src/b.txt\nFROM scratch\nCOPY --from=src /src /copied\n";
    let werf = "project: fallback\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\n";
    git_project(&dir, &[("werf.yaml", werf), ("Dockerfile", df), ("a.txt", "a\n"), ("b.txt", "b\n")], &[]);
    let on_overlay = env.path().join("on-overlay");
    for d in ["lower", "upper", "work", "mnt"] {
        std::fs::create_dir_all(on_overlay.join(d)).unwrap();
    }
    // `slipway COMMAND --dir DIR ARGS` with its store on a fresh overlay mount over the
    // same upper directory; `no_fuse` hides /dev/fuse behind /dev/null.
    let slipway = |store: &str, no_fuse: bool| -> Command {
        let o = |d: &str| on_overlay.join(d).display().to_string();
        let script = format!(
            "{}mount -t overlay overlay -o lowerdir={},upperdir={},workdir={},userxattr {} && exec \"$@\"",
            if no_fuse { "mount --bind /dev/null /dev/fuse && " } else { "" },
            o("lower"),
            o("upper"),
            o("work"),
            o("mnt")
        );
        let mut c = Command::new(&unshare);
        c.args(["-Urm", "sh", "-c", &script, "sh"])
            .arg(env!("CARGO_BIN_EXE_slipway"))
            .arg("--storage-root")
            .arg(on_overlay.join("mnt").join(store))
            .args(["build", "--dir"])
            .arg(&dir)
            .env("HOME", env.path().join("home"));
        c
    };
    let copied = |store: &str| {
        let layers = on_overlay.join("upper").join(store).join("layers");
        let mut copied: Vec<String> = std::fs::read_dir(&layers)
            .unwrap()
            .filter_map(|l| std::fs::read_dir(l.unwrap().path().join("diff/copied")).ok())
            .flat_map(|d| d.map(|e| e.unwrap().file_name().into_string().unwrap()))
            .collect();
        copied.sort();
        copied
    };
    let warnings = |err: &str| -> Vec<String> {
        err.lines().filter(|l| l.starts_with("Warning:")).map(|l| l.trim().to_string()).collect()
    };

    let out = run_ok(&mut slipway("fuse", false));
    let w = warnings(&stderr(&out));
    assert_eq!(w.len(), 1, "{}", stderr(&out));
    assert!(w[0].starts_with("Warning: mounting overlayfs at "), "{w:?}");
    assert!(w[0].ends_with("falling back to fuse-overlayfs /usr/bin/fuse-overlayfs"), "{w:?}");
    assert_eq!(copied("fuse"), ["a.txt", "b.txt"]);

    let out = run_ok(&mut slipway("copies", true));
    let w = warnings(&stderr(&out));
    assert!(
        w.last().is_some_and(|l| l.ends_with("falling back to the vfs driver (plain copies: slower, more disk)")),
        "{w:?}"
    );
    assert_eq!(copied("copies"), ["a.txt", "b.txt"]);

    let out = slipway("forced", true).env("WERF_BUILDAH_STORAGE_DRIVER", "overlay").output().unwrap();
    assert!(!out.status.success(), "a forced overlay driver built on overlayfs:\n{}", stderr(&out));
    assert!(stderr(&out).contains("mounting overlayfs at "), "{}", stderr(&out));
}
