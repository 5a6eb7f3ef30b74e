//! Dockerfile semantics that must come out exactly as BuildKit's (issue 12): what a build
//! leaves in the image, checked with `slipway run` and the exported config.

use crate::common::{Env, GitDaemon, git_project, registry, rootless_env, run_ok, serve_http, stderr, stdout};
use crate::repo::fresh_repo;
use std::path::PathBuf;
use std::process::Command;

/// A werf project with one image `app` built from `dockerfile`.
struct Project {
    env: Env,
    dir: PathBuf,
    reg: String,
}

impl Project {
    /// `None` when the test cannot run here (it says why).
    fn new(test: &str, dockerfile: &str, files: &[(&str, &str)]) -> Option<Project> {
        Self::with_werf(test, dockerfile, files, "")
    }

    /// `image_extra` is appended to the image's werf.yaml document.
    fn with_werf(test: &str, dockerfile: &str, files: &[(&str, &str)], image_extra: &str) -> Option<Project> {
        if !rootless_env(test) {
            return None;
        }
        let reg = registry(test)?;
        let env = Env::new();
        let dir = env.path().join("project");
        let werf = format!("project: dftest\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\n{image_extra}");
        let df = dockerfile.replace("BASE", &format!("{reg}/base/busybox:latest"));
        let mut all = vec![("werf.yaml", werf.as_str()), ("Dockerfile", df.as_str())];
        all.extend_from_slice(files);
        git_project(&dir, &all, &[]);
        Some(Project { env, dir, reg })
    }

    /// Run `sh -c SCRIPT` in the project directory (symlinks, archives), then commit.
    fn commit_script(&self, script: &str) {
        let out = Command::new("sh").arg("-c").arg(script).current_dir(&self.dir).output().unwrap();
        assert!(out.status.success(), "{script}: {}", stderr(&out));
        crate::common::git(&self.dir, &["add", "-A"]);
        crate::common::git(&self.dir, &["commit", "-q", "-m", "more"]);
    }

    /// `slipway run app -- /bin/sh -c SCRIPT`: (stdout, stderr).
    fn run(&self, script: &str) -> (String, String) {
        let out = run_ok(
            self.env
                .slipway()
                .args(["run", "app", "--insecure-registry", "--dir"])
                .arg(&self.dir)
                .args(["--", "/bin/sh", "-c", script]),
        );
        (stdout(&out), stderr(&out))
    }

    /// The image config, exported to a fresh repository and read with skopeo.
    fn config(&self) -> serde_json::Value {
        let dest = format!("{}:latest", fresh_repo(&self.reg, "dockerfile"));
        run_ok(
            self.env.slipway().args(["export", "--insecure-registry", "--dir"]).arg(&self.dir).args(["--tag", &dest]),
        );
        let out = Command::new("skopeo")
            .args(["inspect", "--config", "--tls-verify=false"])
            .arg(format!("docker://{dest}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo inspect {dest}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `RUN <<EOT` alone runs the body as the script; with a shebang the file is run by its
/// interpreter (BuildKit writes it to /dev/pipes/EOT); other heredocs go to the shell.
#[test]
fn run_heredocs_run_as_buildkit_runs_them() {
    let df = "FROM BASE
ARG WHO=arg
RUN <<EOT
echo \"one $WHO\" > /one
echo \"two $((1+1))\" >> /one
EOT
RUN <<EOT
#!/bin/awk -f
BEGIN { print \"awk ran\" > \"/two\" }
EOT
RUN <<'EOT'
#!/bin/sh
echo \"sh ran $0\" > /three
EOT
RUN { cat; cat <&3; } <<A 3<<B > /four
first
A
second
B
RUN <<A cat > /five && <<B cat > /six
five
A
six
B
";
    let Some(p) = Project::new("run_heredocs_run_as_buildkit_runs_them", df, &[]) else { return };
    let (out, err) = p.run("cat /one /two /three /four /five /six");
    assert_eq!(out, "one arg\ntwo 2\nawk ran\nsh ran /dev/pipes/EOT\nfirst\nsecond\nfive\nsix\n", "{err}");
}

/// `FROM scratch` images get Docker's default PATH.
#[test]
fn scratch_images_get_the_default_path() {
    let df = "FROM scratch\nCOPY f /f\n";
    let Some(p) = Project::new("scratch_images_get_the_default_path", df, &[("f", "x\n")]) else { return };
    let config = p.config();
    assert_eq!(config["config"]["Env"], serde_json::json!([DEFAULT_PATH]), "{config}");
}

/// `COPY --from` keeps the owners of the source files unless `--chown` says otherwise;
/// files from the context become 0:0. `--chown=:group` is root and that group; a file
/// source with a trailing slash is the file.
#[test]
fn copy_from_a_stage_keeps_owners() {
    let df = "FROM BASE AS build
RUN mkdir /out && echo a > /out/f && chown 1000:1000 /out/f && mkdir /out/d && chown 123:456 /out/d \\
 && ln -s f /out/l && chown -h 7:9 /out/l
FROM BASE
COPY --from=build /out /copied
COPY --from=build /out/f /single
COPY --from=build --chown=5:6 /out /chowned
COPY ctx.txt /ctx.txt
COPY --chown=:44 ctx.txt /group.txt
COPY --from=build /out/f/ /slashed/
";
    let Some(p) = Project::new("copy_from_a_stage_keeps_owners", df, &[("ctx.txt", "c\n")]) else { return };
    let (out, err) = p.run(
        "stat -c '%n %u:%g' /copied/f /copied/d /copied/l /single /chowned/f /chowned/d /ctx.txt /group.txt /slashed/f",
    );
    assert_eq!(
        out,
        "/copied/f 1000:1000\n/copied/d 123:456\n/copied/l 7:9\n/single 1000:1000\n/chowned/f 5:6\n/chowned/d 5:6\n/ctx.txt 0:0\n/group.txt 0:44\n/slashed/f 1000:1000\n",
        "{err}"
    );
}

/// Two steps that commit byte-identical layers: the overlay still mounts (the layer is
/// a lower directory once), with no fallback to copies.
#[test]
fn identical_layers_twice_still_mount_the_overlay() {
    // The bind targets exist first (COPY: a RUN's own bind targets are removed after it):
    // a RUN that needs to create `/etc/hosts` copies `/etc` up with the time of the step,
    // and two steps in different seconds would differ.
    let df = "FROM BASE
COPY hosts resolv.conf /etc/
RUN echo same > /same && touch -d @0 /same
RUN rm /same
RUN echo same > /same && touch -d @0 /same
RUN echo after > /after
";
    let Some(p) =
        Project::new("identical_layers_twice_still_mount_the_overlay", df, &[("hosts", "h\n"), ("resolv.conf", "r\n")])
    else {
        return;
    };
    let (out, err) = p.run("cat /same /after");
    assert_eq!(out, "same\nafter\n", "{err}");
    assert!(!err.contains("Warning"), "{err}");
    let config = p.config();
    let ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let n = ids.len();
    assert_eq!(ids[n - 2], ids[n - 4], "the test needs identical layers: {config}");
}

/// A parent stage's ONBUILD triggers run when a stage is built `FROM` it and are gone from
/// the child's config; ARG defaults see the image's env (`ARG B=$PATH`).
#[test]
fn parent_stage_triggers_run_and_arg_defaults_see_the_image_env() {
    let df = "FROM BASE AS parent
ENV X=from-parent
ONBUILD RUN echo triggered > /trig
ONBUILD ENV FROM_TRIGGER=yes
FROM parent
ARG A=$X
ARG B=\"$PATH\" C=${X}-c D=$C:d
RUN echo \"$A|$B|$C|$D\" > /args
";
    let t = "parent_stage_triggers_run_and_arg_defaults_see_the_image_env";
    let Some(p) = Project::new(t, df, &[]) else { return };
    let (out, err) = p.run("cat /trig /args; echo $FROM_TRIGGER");
    assert_eq!(
        out,
        "triggered\nfrom-parent|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|from-parent-c|from-parent-c:d\nyes\n",
        "{err}"
    );
    let config = p.config();
    assert!(config["config"]["OnBuild"].is_null(), "{config}");
}

/// werf's imageSpec: env values expanded against the image's env, `expose` replacing the
/// set, `entrypoint` without `cmd` clearing CMD.
#[test]
fn image_spec_expands_env_replaces_expose_and_clears_cmd() {
    let df = "FROM BASE\nEXPOSE 22\nCMD [\"base-cmd\"]\n";
    let spec = "imageSpec:\n  config:\n    env:\n      PATH: \"${PATH}:/x\"\n    expose: [\"8080\"]\n    entrypoint: [\"/bin/echo\"]\n";
    let t = "image_spec_expands_env_replaces_expose_and_clears_cmd";
    let Some(p) = Project::with_werf(t, df, &[], spec) else { return };
    let c = p.config();
    let c = &c["config"];
    assert_eq!(c["Env"], serde_json::json!([format!("{DEFAULT_PATH}:/x")]), "{c}");
    assert_eq!(c["ExposedPorts"], serde_json::json!({"8080/tcp": {}}), "{c}");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/echo"]), "{c}");
    assert!(c["Cmd"].is_null(), "{c}");
}

/// `COPY --from=$ARG` (an ARG of the stage, or a meta ARG declared again in it), a context
/// source through a symlink to a directory inside the context, and COPY destinations and
/// WORKDIRs through dangling and absolute symlinks of the image: BuildKit (and buildah)
/// follow them inside the rootfs and create what is missing.
#[test]
fn copy_from_arg_context_symlinks_and_destinations_through_image_symlinks() {
    let df = "ARG SRC=build
FROM BASE AS build
RUN echo built > /b && ln -s /nowhere/deep /dangling && mkdir /abs && ln -s /abs /abslink \\
 && ln -s ../rel-target /relink && ln -s /made/by/workdir /wd
FROM BASE AS other
RUN echo other > /o
FROM build
ARG LOCAL=build OTHER=other
ARG SRC
COPY --from=$SRC /b /b1
COPY --from=${LOCAL} /b /b2
COPY --from=$OTHER /o /o
COPY link/foo /x
COPY link/foo /dangling/
COPY link/foo /relink/sub/
WORKDIR /abslink/w
RUN touch ran
WORKDIR /wd/sub
RUN touch ran2
";
    let t = "copy_from_arg_context_symlinks_and_destinations_through_image_symlinks";
    let Some(p) = Project::new(t, df, &[("dir/foo", "foo\n")]) else { return };
    p.commit_script("ln -s dir link");
    let (out, err) = p.run("cat /b1 /b2 /o /x /nowhere/deep/foo /rel-target/sub/foo; ls /abs/w /made/by/workdir/sub; readlink /dangling; readlink /wd");
    assert_eq!(
        out,
        "built\nbuilt\nother\nfoo\nfoo\nfoo\n/abs/w:\nran\n\n/made/by/workdir/sub:\nran2\n/nowhere/deep\n/made/by/workdir\n",
        "{err}"
    );
}

/// ADD unpacks tar archives compressed with gzip, xz, bzip2 and zstd, and an archive
/// holding a dangling symlink (kept as the symlink).
#[test]
fn add_unpacks_xz_bzip2_zstd_and_dangling_symlinks() {
    let df = "FROM BASE
ADD plain.tar /plain/
ADD plain.tar /plain/
ADD a.tar.gz /gz/
ADD a.tar.xz /xz/
ADD a.tar.bz2 /bz2/
ADD a.tar.zst /zst/
";
    let t = "add_unpacks_xz_bzip2_zstd_and_dangling_symlinks";
    let Some(p) = Project::new(t, df, &[("src/f", "packed\n")]) else { return };
    p.commit_script(
        "ln -s /no/such/file src/dangling && mkdir src/d && ln -s ../../up/nothing src/d/rel \\
         && tar -cf plain.tar -C src . && rm -r src \\
         && gzip -c plain.tar > a.tar.gz && xz -c plain.tar > a.tar.xz && bzip2 -c plain.tar > a.tar.bz2 \\
         && zstd -q -c plain.tar > a.tar.zst",
    );
    let (out, err) = p.run("for d in plain gz xz bz2 zst; do echo \"$d $(cat /$d/f) $(readlink /$d/dangling) $(readlink /$d/d/rel)\"; done");
    assert_eq!(
        out,
        "plain packed /no/such/file ../../up/nothing\ngz packed /no/such/file ../../up/nothing\nxz packed /no/such/file ../../up/nothing\nbz2 packed /no/such/file ../../up/nothing\nzst packed /no/such/file ../../up/nothing\n",
        "{err}"
    );
}

/// `--mount` values are expanded (`${VAR:?}` included), and a cache mount `from` a stage
/// starts with that stage's `source` directory (BuildKit seeds a new cache from it).
#[test]
fn mount_values_expand_and_caches_are_seeded_from_a_stage() {
    let df = "FROM BASE AS seed
RUN mkdir -p /seed/sub && echo seeded > /seed/sub/s
FROM BASE
ARG DIR=data
RUN --mount=type=bind,source=${DIR:?},target=/m cat /m/d > /from-bind
RUN --mount=type=cache,id=df2-seeded-cache,from=seed,source=/seed,target=/c cat /c/sub/s > /from-cache
";
    let t = "mount_values_expand_and_caches_are_seeded_from_a_stage";
    let Some(p) = Project::new(t, df, &[("data/d", "bound\n")]) else { return };
    let (out, err) = p.run("cat /from-bind /from-cache");
    assert_eq!(out, "bound\nseeded\n", "{err}");
}

/// `RUN --network=none` and werf.yaml `network: none` run the step in a new, empty network
/// namespace (loopback only): the test registry on the host's 127.0.0.1 is out of reach,
/// while the default network reaches it.
#[test]
fn network_none_isolates_the_step() {
    let reg = std::env::var("SLIPWAY_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5055".into());
    let probe = format!("wget -q -O- http://{reg}/v2/ >/dev/null 2>&1 && echo reached || echo isolated");
    let df = format!(
        "FROM BASE\nRUN ({probe}) > /default\nRUN --network=none ({probe}) > /none\nRUN --network=host ({probe}) > /host\n"
    );
    let t = "network_none_isolates_the_step";
    let Some(p) = Project::new(t, &df, &[]) else { return };
    let (out, err) = p.run("cat /default /none /host");
    assert_eq!(out, "reached\nisolated\nreached\n", "{err}");

    let df = format!("FROM BASE\nRUN ({probe}) > /werf-none\n");
    let Some(p) = Project::with_werf(t, &df, &[], "network: none\n") else { return };
    let (out, err) = p.run("cat /werf-none");
    assert_eq!(out, "isolated\n", "{err}");

    // The same with runc isolation: the spec asks for a network namespace.
    let df = format!("FROM BASE\nRUN --network=none ({probe}) > /none\nRUN ({probe}) > /default\n");
    let Some(mut p) = Project::new(t, &df, &[]) else { return };
    p.env = std::mem::replace(&mut p.env, Env::new()).with_var("WERF_BUILDAH_MODE", "native-rootless");
    let (out, err) = p.run("cat /none /default");
    assert_eq!(out, "isolated\nreached\n", "{err}");
}

/// The tree of BuildKit's `testExcludedFilesOnCopy`, for `--exclude` and `--parents`.
const EXCLUDE_TREE: &[(&str, &str)] = &[
    ("dir1/file-101.png", "2"),
    ("dir1/file-102.txt", "3"),
    ("dir1/file-103.jpeg", "4"),
    ("dir2/file-201.pdf", "6"),
    ("dir2/file-202.jpeg", "7"),
    ("dir2/file-203.png", "8"),
    ("dir3/file-301.mp3", "9"),
    ("dir3/file-302.mpeg", "10"),
    ("dir4/file-401.txt", "11"),
];

/// `COPY/ADD --exclude`: patterns as in .dockerignore, matched below each source (a
/// source named itself is never excluded), `!` exceptions bring entries back, and the
/// cases of BuildKit's own test come out the same.
#[test]
fn copy_exclude_leaves_out_what_the_patterns_match() {
    let df = "FROM BASE AS src
COPY . /tree
FROM BASE
COPY --from=src --exclude=*/*.png --exclude=*/*.jpeg --exclude=*/*.pdf --exclude=*.yaml --exclude=Dockerfile /tree/ /8
COPY --exclude=*/*.png --exclude=*/*.jpeg --exclude=werf.yaml --exclude=Dockerfile . /1
ADD --exclude=*.mp3 dir3/ /3/
COPY --exclude=*.mp3 --exclude=*.jpeg --exclude=*.png --exclude=*.pdf --exclude=*.txt dir* /4/
COPY --exclude=dir1 --exclude=!dir1/*.txt --exclude=dir[234] . /5
ADD --exclude=* dir* /6
COPY --exclude=*.txt dir1/file-102.txt /7/
";
    let Some(p) = Project::new("copy_exclude_leaves_out_what_the_patterns_match", df, EXCLUDE_TREE) else { return };
    let (out, err) = p.run("cd / && find 1 3 4 5 6 7 8 | sort && stat -c %a 5/dir1");
    let want = "1\n1/dir1\n1/dir1/file-102.txt\n1/dir2\n1/dir2/file-201.pdf\n1/dir3\n1/dir3/file-301.mp3\n\
                1/dir3/file-302.mpeg\n1/dir4\n1/dir4/file-401.txt\n3\n3/file-302.mpeg\n4\n4/file-302.mpeg\n\
                5\n5/Dockerfile\n5/dir1\n5/dir1/file-102.txt\n5/werf.yaml\n6\n7\n7/file-102.txt\n\
                8\n8/dir1\n8/dir1/file-102.txt\n8/dir2\n8/dir3\n8/dir3/file-301.mp3\n8/dir3/file-302.mpeg\n\
                8/dir4\n8/dir4/file-401.txt\n755\n";
    assert_eq!(out, want, "{err}");
}

/// `COPY --parents`: each source keeps its directories below the context's root, or
/// below the `/./` pivot; the pattern may use `**`; `--exclude` applies below the pivot.
#[test]
fn copy_parents_keeps_the_source_directories() {
    let df = "FROM BASE
COPY --parents dir1/file-102.txt dir2/*.pdf /p/
COPY --parents ./dir3/./file-301.mp3 /q/
COPY --parents **/*.txt /s
COPY --parents --exclude=*.png --exclude=dir2/*.jpeg ./dir1/./* ./dir2 /t/
";
    let Some(p) = Project::new("copy_parents_keeps_the_source_directories", df, EXCLUDE_TREE) else { return };
    let (out, err) = p.run("cd / && find p q s t | sort && stat -c %a p/dir1 && cat p/dir1/file-102.txt");
    let want = "p\np/dir1\np/dir1/file-102.txt\np/dir2\np/dir2/file-201.pdf\nq\nq/file-301.mp3\n\
                s\ns/dir1\ns/dir1/file-102.txt\ns/dir4\ns/dir4/file-401.txt\n\
                t\nt/dir2\nt/dir2/file-201.pdf\nt/dir2/file-203.png\nt/file-102.txt\nt/file-103.jpeg\n755\n3";
    assert_eq!(out, want, "{err}");
}

/// `ADD <URL>`: the file named after the URL's path (or the destination), mode 0600,
/// its time from `Last-Modified` (else the epoch), a tar left as it is unless
/// `--unpack=true`; `--checksum` is checked, and a mismatch fails the build.
#[test]
fn add_downloads_urls_as_buildkit() {
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(6);
    header.set_mode(0o644);
    header.set_cksum();
    archive.append_data(&mut header, "inner.txt", &b"inner\n"[..]).unwrap();
    let archive = archive.into_inner().unwrap();
    let modified = "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n".to_string();
    let addr = serve_http(vec![
        ("/dir/file.txt".to_string(), modified.clone(), b"hello\n".to_vec()),
        ("/nomod".to_string(), String::new(), b"plain\n".to_vec()),
        ("/a.tar".to_string(), modified, archive),
    ]);
    let hello = "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
    let df = format!(
        "FROM BASE
ADD http://{addr}/dir/file.txt /d/
ADD http://{addr}/dir/file.txt /named
ADD --chmod=644 http://{addr}/nomod /d/
ADD http://{addr}/a.tar /d/
ADD --unpack=true http://{addr}/a.tar /u/
ADD --checksum={hello} http://{addr}/dir/file.txt /c/
"
    );
    let t = "add_downloads_urls_as_buildkit";
    let Some(p) = Project::new(t, &df, &[]) else { return };
    let (out, err) = p.run("stat -c '%n %a %Y %u' /d/file.txt /named /d/nomod /d/a.tar && ls /u && cat /c/file.txt");
    let want = "/d/file.txt 600 784111777 0\n/named 600 784111777 0\n/d/nomod 644 0 0\n/d/a.tar 600 784111777 0\n\
                inner.txt\nhello\n";
    assert_eq!(out, want, "{err}");

    let wrong = format!("sha256:{}", "0".repeat(64));
    let df = format!("FROM BASE\nADD --checksum={wrong} http://{addr}/dir/file.txt /c/\n");
    let Some(p) = Project::new(t, &df, &[]) else { return };
    let out = p.env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&p.dir).output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(&format!("checksum mismatch: the content is {hello} but --checksum={wrong}")), "{err}");
    let df = format!("FROM BASE\nADD http://{addr}/missing /m\n");
    let Some(p) = Project::new(t, &df, &[]) else { return };
    let out = p.env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&p.dir).output().unwrap();
    assert!(stderr(&out).contains("the server answered 404"), "{}", stderr(&out));
}

/// werf.yaml `addHost`: RUN steps resolve the names through their `/etc/hosts`, which is
/// not committed into the layer; `host-gateway` is refused with one line.
#[test]
fn add_host_entries_reach_run_steps_only() {
    let t = "add_host_entries_reach_run_steps_only";
    let df = "FROM BASE\nRUN grep -E 'myhost|v6host' /etc/hosts > /seen\n";
    let extra = "addHost:\n- myhost:10.1.2.3\n- v6host=::1\n";
    let Some(p) = Project::with_werf(t, df, &[], extra) else { return };
    let (out, err) = p.run("cat /seen; grep -c myhost /etc/hosts || true");
    assert_eq!(out, "10.1.2.3\tmyhost\n::1\tv6host\n0\n", "{err}");

    let Some(p) = Project::with_werf(t, df, &[], "addHost: gw:host-gateway\n") else { return };
    let out = p.env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&p.dir).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("werf.yaml addHost \"gw:host-gateway\": host-gateway is not supported"),
        "{}",
        stderr(&out)
    );
}

/// `ADD <git URL>`: the tree of the ref (or `#ref:subdir`) copied without `.git` unless
/// `--keep-git-dir`; `--checksum` is the commit; COPY refuses a git source.
#[test]
fn add_fetches_git_repositories() {
    let t = "add_fetches_git_repositories";
    if !rootless_env(t) {
        return;
    }
    let served = Env::new();
    let work = served.path().join("work");
    git_project(&work, &[("a.txt", "a\n"), ("sub/b.txt", "b\n")], &[]);
    crate::common::git(&work, &["tag", "v1"]);
    let bare = served.path().join("repos/repo.git");
    let out = Command::new("git").args(["clone", "-q", "--bare"]).arg(&work).arg(&bare).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let commit = String::from_utf8(
        Command::new("git").args(["-C"]).arg(&work).args(["rev-parse", "HEAD"]).output().unwrap().stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let daemon = GitDaemon::start(&served.path().join("repos"));
    let url = format!("git://{}/repo.git", daemon.addr);
    let df = format!(
        "FROM BASE\nADD {url} /g/\nADD {url}#v1:sub /s/\nADD --keep-git-dir {url}#main /k/\nADD --checksum={} {url}#v1 /c/\n",
        &commit[..12]
    );
    let Some(p) = Project::new(t, &df, &[]) else { return };
    let (out, err) = p.run("cd / && find g s c | sort && test -d k/.git && cat k/a.txt");
    assert_eq!(out, "c\nc/a.txt\nc/sub\nc/sub/b.txt\ng\ng/a.txt\ng/sub\ng/sub/b.txt\ns\ns/b.txt\na\n", "{err}");

    let df = format!("FROM BASE\nADD --checksum=0123456789ab {url} /x/\n");
    let Some(p) = Project::new(t, &df, &[]) else { return };
    let out = p.env.slipway().args(["build", "--insecure-registry", "--dir"]).arg(&p.dir).output().unwrap();
    assert!(stderr(&out).contains(&format!("checksum mismatch: the ref is commit {commit}")), "{}", stderr(&out));
}
