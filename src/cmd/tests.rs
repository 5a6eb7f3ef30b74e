//! werf invocations, table-driven: each row is a command line a werf user types, with
//! `werf` replaced by `slipway`, and what it must parse to (or that clap refuses it).
//! Environment variables are checked by name on the clap definition (setting them here
//! would race with other tests); their effect is in the integration tests.

use super::build::BuildArgs;
use super::export::ExportArgs;
use super::run::RunArgs;
use crate::cli::{Cli, Command};
use clap::{CommandFactory, Parser};

fn parse(line: &str) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("slipway").chain(line.split_whitespace()))
}

fn build(line: &str) -> BuildArgs {
    match parse(&format!("build {line}")).unwrap_or_else(|e| panic!("build {line}: {e}")).command {
        Command::Build(a) => a,
        other => panic!("{other:?}"),
    }
}

fn export(line: &str) -> ExportArgs {
    match parse(&format!("export {line}")).unwrap_or_else(|e| panic!("export {line}: {e}")).command {
        Command::Export(a) => a,
        other => panic!("{other:?}"),
    }
}

fn run(line: &str) -> RunArgs {
    match parse(&format!("run {line}")).unwrap_or_else(|e| panic!("run {line}: {e}")).command {
        Command::Run(a) => a,
        other => panic!("{other:?}"),
    }
}

type BuildCase = (&'static str, fn(&BuildArgs) -> bool);

#[test]
fn build_flags_take_werfs_shapes() {
    let cases: &[BuildCase] = &[
        // Booleans: bare is true, `=false` is false, the next word is not a value.
        ("--insecure-registry", |a| a.project.insecure_registry && a.images.is_empty()),
        ("--insecure-registry app", |a| a.project.insecure_registry && a.images == ["app"]),
        ("--insecure-registry=false", |a| !a.project.insecure_registry),
        ("--insecure-registry=true --insecure-registry", |a| a.project.insecure_registry),
        ("", |a| !a.project.insecure_registry && !a.project.skip_tls_verify_registry),
        ("--skip-tls-verify-registry", |a| a.project.skip_tls_verify_registry),
        ("--skip-tls-verify-registry=1", |a| a.project.skip_tls_verify_registry),
        ("-p app", |a| a.project.parallel && a.images == ["app"]),
        ("--parallel=false", |a| !a.project.parallel),
        ("", |a| a.project.parallel && a.project.parallel_tasks_limit == 5),
        ("--parallel-tasks-limit -1", |a| a.project.parallel_tasks_limit == -1),
        ("--parallel-tasks-limit=2", |a| a.project.parallel_tasks_limit == 2),
        ("--save-build-report", |a| a.save_build_report),
        ("--save-build-report --build-report-path r.env", |a| {
            a.save_build_report && a.build_report_path.as_deref() == Some("r.env".as_ref())
        }),
        ("--check-built-images", |a| a.check_built_images),
        ("--require-built-images", |a| a.require_built_images),
        ("-Z", |a| a.require_built_images),
        ("--final-images-only", |a| a.final_images_only),
        ("", |a| !a.final_images_only),
        // Repeatable value flags.
        ("--add-custom-tag latest --add-custom-tag %image%-v1", |a| a.add_custom_tag == ["latest", "%image%-v1"]),
        ("--secondary-repo r1 --secondary-repo r2", |a| a.project.secondary_repo == ["r1", "r2"]),
        ("--cache-repo c1 --cache-repo c2", |a| a.project.cache_repo == ["c1", "c2"]),
        ("--platform linux/amd64 --platform linux/arm64", |a| a.project.platform == ["linux/amd64", "linux/arm64"]),
        ("--ssh-key k1 --ssh-key k2", |a| a.project.ssh_key.len() == 2),
        ("--container-registry-mirror m", |a| a.project.container_registry_mirror == ["m"]),
        ("--introspect-stage app/install", |a| a.project.introspect_stage == ["app/install"]),
        ("--dev-ignore *.md", |a| a.project.dev_ignore == ["*.md"]),
        // Value flags.
        ("--repo r --final-repo f", |a| {
            a.project.repo.as_deref() == Some("r") && a.project.final_repo.as_deref() == Some("f")
        }),
        ("--dir d --config c.yaml --env prod", |a| {
            a.project.dir.as_deref() == Some("d".as_ref()) && a.project.env == "prod"
        }),
        ("--docker-config /cfg", |a| a.project.docker_config.as_deref() == Some("/cfg".as_ref())),
        ("--tmp-dir /t --home-dir /h", |a| {
            a.project.tmp_dir.as_deref() == Some("/t".as_ref()) && a.project.home_dir.as_deref() == Some("/h".as_ref())
        }),
        ("--git-work-tree /w", |a| a.project.git_work_tree.as_deref() == Some("/w".as_ref())),
        ("-S :local", |a| a.project.synchronization.as_deref() == Some(":local")),
        ("--synchronization :local", |a| a.project.synchronization.as_deref() == Some(":local")),
        ("--backend-network host", |a| a.project.backend_network.as_deref() == Some("host")),
        // Giterminism and development mode.
        ("--dev", |a| a.project.dev),
        ("--loose-giterminism", |a| a.project.loose_giterminism),
        ("--dev-branch b", |a| a.project.dev_branch == "b"),
        ("", |a| a.project.dev_branch == "_werf-dev"),
        ("--follow", |a| a.follow),
        ("--virtual-merge", |a| a.project.virtual_merge),
        ("--introspect-error --introspect-before-error", |a| {
            a.project.introspect_error && a.project.introspect_before_error
        }),
        ("--disable-auto-host-cleanup", |a| a.host_cleanup.disable_auto_host_cleanup),
        ("--allowed-backend-storage-volume-usage 80", |a| a.host_cleanup.backend().unwrap().0.to_string() == "80"),
        ("--allowed-docker-storage-volume-usage 10GB", |a| {
            a.host_cleanup.allowed_docker_storage_volume_usage.is_some_and(|u| u.to_string() == "10 GB")
        }),
        ("--allowed-local-cache-volume-usage-margin 5", |a| {
            a.host_cleanup.allowed_local_cache_volume_usage_margin.is_some()
        }),
        ("--backend-storage-path /var/lib/x", |a| a.host_cleanup.backend_storage_path.is_some()),
        ("-N p", |a| a.project.project_name.as_deref() == Some("p")),
        ("--insecure-helm-dependencies", |a| a.project.insecure_helm_dependencies),
        // Log options.
        ("--log-quiet", |a| a.project.log.quiet()),
        ("--log-verbose", |a| a.project.log.log_verbose && a.project.log.level() == Some("info")),
        ("--log-debug", |a| a.project.log.log_debug && a.project.log.level() == Some("debug")),
        ("--debug --verbose --quiet", |a| {
            let l = &a.project.log;
            l.debug && l.verbose && l.quiet && l.quiet() && l.level() == Some("debug")
        }),
        ("", |a| a.project.log.log_pretty && a.project.log.log_color_mode == "auto" && a.project.log.level().is_none()),
        ("--log-pretty=false", |a| !a.project.log.log_pretty),
        ("--log-color-mode off", |a| !a.project.log.color()),
        ("--log-color-mode=on", |a| a.project.log.color()),
        ("--log-time", |a| a.project.log.log_time),
        ("--log-time-format x", |a| a.project.log.log_time_format.as_deref() == Some("x")),
        ("--log-terminal-width 100", |a| a.project.log.log_terminal_width == 100),
        ("", |a| a.project.log.log_terminal_width == -1),
        ("--log-project-dir", |a| a.project.log_project_dir),
    ];
    for (line, ok) in cases {
        assert!(ok(&build(line)), "build {line}");
    }
}

#[test]
fn export_and_run_flags_take_werfs_shapes() {
    let a =
        export("app --tag r/%image%:v1 --tag r/x/%image%:v2 --add-label a=1 --add-label b=2 -Z --insecure-registry");
    assert_eq!(a.images, ["app"]);
    assert_eq!(a.tags.len(), 2);
    assert_eq!(a.add_labels, ["a=1", "b=2"]);
    assert!(a.require_built_images && a.project.insecure_registry);
    assert!(a.final_images_only, "export's --final-images-only is true by default");
    assert!(!export("--final-images-only=false").final_images_only);
    assert!(export("--use-build-report --build-report-path r.json").use_build_report);
    assert!(export("--require-built-images").require_built_images);

    let a = run("app --insecure-registry -- echo hi");
    assert_eq!(a.image.as_deref(), Some("app"));
    assert_eq!(a.command, ["echo", "hi"]);
    assert!(a.project.insecure_registry);
    assert!(run("--shell").shell && run("--bash").bash);
    assert!(run("-Z").require_built_images && run("--require-built-images").require_built_images);
    assert!(run("--dry-run").dry_run && run("--follow").follow);
    assert_eq!(run("--docker-options=-ti").docker_options.as_deref(), Some("-ti"));
    assert!(run("--use-build-report").use_build_report);
}

#[test]
fn werf_shapes_that_clap_refuses() {
    let bad = [
        "build --insecure-registry=maybe",
        "build --log-color-mode rainbow",
        "build --parallel-tasks-limit -2",
        "build --final-repo",
        "build --add-custom-tag",
        "run --shell --bash",
        "slugify",
        "slugify a b",
        "stage image a b",
        "stages delete --repo r",
    ];
    for line in bad {
        assert!(parse(line).is_err(), "{line} was accepted");
    }
    for line in [
        "slugify -f docker-tag x",
        "slugify --format ns x",
        "stage image",
        "stage image app --repo r",
        "stages list --insecure-registry",
        "stages delete a-1 b-2 --repo r",
    ] {
        parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
}

/// Every flag reads werf's environment variable (the env var's effect is werf's default).
#[test]
fn flags_read_werfs_variables() {
    let cases: &[(&str, &str, &str)] = &[
        ("build", "insecure-registry", "WERF_INSECURE_REGISTRY"),
        ("build", "skip-tls-verify-registry", "WERF_SKIP_TLS_VERIFY_REGISTRY"),
        ("build", "repo", "WERF_REPO"),
        ("build", "final-repo", "WERF_FINAL_REPO"),
        ("build", "dir", "WERF_DIR"),
        ("build", "config", "WERF_CONFIG"),
        ("build", "env", "WERF_ENV"),
        ("build", "git-work-tree", "WERF_GIT_WORK_TREE"),
        ("build", "tmp-dir", "WERF_TMP_DIR"),
        ("build", "home-dir", "WERF_HOME"),
        ("build", "docker-config", "WERF_DOCKER_CONFIG"),
        ("build", "parallel", "WERF_PARALLEL"),
        ("build", "parallel-tasks-limit", "WERF_PARALLEL_TASKS_LIMIT"),
        ("build", "save-build-report", "WERF_SAVE_BUILD_REPORT"),
        ("build", "build-report-path", "WERF_BUILD_REPORT_PATH"),
        ("build", "check-built-images", "WERF_CHECK_BUILT_IMAGES"),
        ("build", "final-images-only", "WERF_FINAL_IMAGES_ONLY"),
        ("build", "dev", "WERF_DEV"),
        ("build", "loose-giterminism", "WERF_LOOSE_GITERMINISM"),
        ("build", "synchronization", "WERF_SYNCHRONIZATION"),
        ("build", "virtual-merge", "WERF_VIRTUAL_MERGE"),
        ("build", "backend-network", "WERF_BACKEND_NETWORK"),
        ("build", "follow", "WERF_FOLLOW"),
        ("build", "log-debug", "WERF_LOG_DEBUG"),
        ("build", "log-verbose", "WERF_LOG_VERBOSE"),
        ("build", "log-quiet", "WERF_LOG_QUIET"),
        ("build", "log-color-mode", "WERF_LOG_COLOR_MODE"),
        ("build", "log-pretty", "WERF_LOG_PRETTY"),
        ("build", "log-time", "WERF_LOG_TIME"),
        ("build", "log-time-format", "WERF_LOG_TIME_FORMAT"),
        ("build", "log-terminal-width", "WERF_LOG_TERMINAL_WIDTH"),
        ("build", "log-project-dir", "WERF_LOG_PROJECT_DIR"),
        ("build", "debug", "WERF_DEBUG"),
        ("build", "repo-container-registry", "WERF_REPO_CONTAINER_REGISTRY"),
        ("build", "repo-quay-token", "WERF_REPO_QUAY_TOKEN"),
        ("build", "final-repo-container-registry", "WERF_FINAL_REPO_CONTAINER_REGISTRY"),
        ("build", "final-repo-harbor-password", "WERF_FINAL_REPO_HARBOR_PASSWORD"),
        ("build", "verbose", "WERF_VERBOSE"),
        ("build", "quiet", "WERF_QUIET"),
        ("export", "require-built-images", "WERF_REQUIRE_BUILT_IMAGES"),
        ("export", "use-build-report", "WERF_USE_BUILD_REPORT"),
        ("export", "add-label-separator", "WERF_EXPORT_ADD_LABEL_SEPARATOR"),
        ("export", "final-images-only", "WERF_FINAL_IMAGES_ONLY"),
        ("run", "require-built-images", "WERF_REQUIRE_BUILT_IMAGES"),
        ("run", "docker-options", "WERF_DOCKER_OPTIONS"),
        ("run", "dry-run", "WERF_DRY_RUN"),
    ];
    let cli = Cli::command();
    for (sub, flag, env) in cases {
        let cmd = cli.find_subcommand(sub).unwrap();
        let arg = cmd.get_arguments().find(|a| a.get_long() == Some(flag)).unwrap_or_else(|| panic!("{sub} --{flag}"));
        assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(*env), "{sub} --{flag}");
    }
}

/// Flags slipway cannot honour are refused by name before anything runs.
#[test]
fn unsupported_flags_are_refused_by_name() {
    let cases = [
        ("--introspect-error", "--introspect-error is not supported"),
        ("--virtual-merge", "--virtual-merge is not supported"),
        ("--backend-network host", "--backend-network is not supported"),
        ("--container-registry-mirror m", "--container-registry-mirror is not supported"),
        ("--platform linux/arm64", "--platform linux/arm64 is not supported by slipway: it builds linux/amd64 only"),
        ("-S kubernetes://ns", "--synchronization \"kubernetes://ns\" is not supported"),
        ("--log-time", "--log-time is not supported"),
        ("--tmp-dir /nonexistent/x", "--tmp-dir /nonexistent/x: not a directory"),
        ("--project-name p", "--project-name is not supported by slipway yet: set WERF_PROJECT_NAME instead"),
        (
            "--repo-container-registry harbor",
            "--repo-container-registry \"harbor\" is not supported by slipway: only auto and default",
        ),
        ("--final-repo-container-registry=ecr", "--final-repo-container-registry \"ecr\" is not supported"),
        ("--repo-docker-hub-token t", "--repo-docker-hub-token is not supported by slipway"),
        ("--final-repo-github-token t", "--final-repo-github-token is not supported by slipway"),
    ];
    for (line, want) in cases {
        let err = build(line).project.check().unwrap_err().to_string();
        assert!(err.contains(want), "build {line}: {err}");
    }
    for line in [
        "",
        "--platform linux/amd64",
        "-S :local",
        "--log-pretty=false --log-terminal-width 80",
        "--repo-container-registry auto --final-repo-container-registry default",
        "--dev --dev-ignore docs --loose-giterminism",
    ] {
        build(line).project.check().unwrap_or_else(|e| panic!("build {line}: {e}"));
    }
}

/// `--dev`, `--dev-ignore` and `--loose-giterminism` become the project's source mode.
#[test]
fn source_mode_follows_the_flags() {
    let flags = |m: crate::project::SourceMode| (m.dev, m.dev_ignore, m.loose);
    assert_eq!(flags(build("").project.source_mode()), (false, vec![], false));
    let mode = build("--dev --dev-ignore docs --dev-ignore=*.md --loose-giterminism=true").project.source_mode();
    assert_eq!(flags(mode), (true, vec!["docs".to_string(), "*.md".to_string()], true));
}

#[test]
fn settings_follow_the_flags() {
    let s =
        build("--insecure-registry --skip-tls-verify-registry --parallel-tasks-limit=3").project.settings().unwrap();
    assert_eq!(s.insecure_registries, ["*"]);
    assert_eq!(s.skip_tls_verify_registries, ["*"]);
    assert_eq!(s.parallel, 3);
    let s = build("--parallel=false --docker-config /cfg").project.settings().unwrap();
    assert!(s.insecure_registries.is_empty());
    assert_eq!(s.parallel, 1);
    assert_eq!(s.docker_config.as_deref(), Some("/cfg".as_ref()));
    assert_eq!(build("--parallel-tasks-limit=-1").project.settings().unwrap().parallel, usize::MAX);
    let p = build("--home-dir /h").project;
    assert_eq!(p.storage_root(&None).unwrap(), std::path::Path::new("/h/slipway"));
    assert_eq!(p.storage_root(&Some("/s".into())).unwrap(), std::path::Path::new("/s"));
}

#[test]
fn slugify_prints_werfs_slugs() {
    let cases = [
        ("kubernetes-namespace", "feature-fix-2", "feature-fix-2"),
        ("ns", "branch/one/!@#4.4-3", "branch-one-4-4-3-4fe08955"),
        ("kubernetes-namespace", "My_branch", "my-branch-8ebf2d1d"),
        (
            "r",
            "looooooooooooooooooooooooooooooooooooooooooong_string",
            "looooooooooooooooooooooooooooooooooooooooooo-b150a895",
        ),
        ("docker-tag", "helo/ehlo", "helo-ehlo-b6f6ab1f"),
        ("tag", "16.04", "16.04"),
    ];
    for (format, input, want) in cases {
        assert_eq!(super::slugify::slugify(format, input).unwrap(), want, "-f {format} {input}");
    }
    assert_eq!(super::slugify::slugify("", "x").unwrap_err().to_string(), "--format FORMAT argument required");
    assert_eq!(super::slugify::slugify("dns", "x").unwrap_err().to_string(), "unknown format \"dns\"");
}

/// clap's own consistency checks over every command (unique ids, valid defaults).
#[test]
fn command_line_definition_is_consistent() {
    Cli::command().debug_assert();
}

fn host(line: &str) -> crate::cmd::host::HostCommand {
    match parse(&format!("host {line}")).unwrap_or_else(|e| panic!("host {line}: {e}")).command {
        Command::Host(c) => c,
        other => panic!("{other:?}"),
    }
}

/// `host cleanup` and `host purge` take werf's flags, names and variables.
#[test]
fn host_cleanup_and_purge_take_werfs_flags() {
    use crate::cmd::host::HostCommand;
    let HostCommand::Cleanup(c) = host(
        "cleanup --dry-run --force -N p --allowed-docker-storage-volume-usage 10GB \
         --allowed-backend-storage-volume-usage-margin 1GiB --backend-storage-path /x --platform linux/arm64",
    ) else {
        panic!()
    };
    assert!(c.host.dry_run && c.force);
    assert_eq!(c.host.project_name.as_deref(), Some("p"));
    let (usage, margin) = c.thresholds.backend().unwrap();
    assert_eq!((usage.to_bytes(0), margin.to_bytes(0)), (10_000_000_000, 1 << 30));
    // Defaults are werf's, 70% and 5%.
    let HostCommand::Cleanup(c) = host("cleanup") else { panic!() };
    let (usage, margin) = c.thresholds.backend().unwrap();
    assert_eq!((usage.to_bytes(1000), margin.to_bytes(1000)), (700, 50));
    // werf refuses mixing a percentage and a size in one group.
    let HostCommand::Cleanup(c) = host("cleanup --allowed-local-cache-volume-usage 10GB") else { panic!() };
    assert_eq!(
        c.thresholds.backend().unwrap_err().to_string(),
        "host cleanup: mixing percentages and absolute units in local cache group is not allowed (usage: \"10 GB\", margin: \"5\")"
    );
    assert!(parse("host cleanup --allowed-backend-storage-volume-usage 101").is_err());
    let HostCommand::Purge(p) = host("purge --force -S :local --project-name q --dry-run") else { panic!() };
    assert!(p.force && p.host.dry_run);
    assert_eq!(p.host.project_name.as_deref(), Some("q"));
    let cli = Cli::command();
    let cmd = cli.find_subcommand("host").unwrap();
    for (sub, flag, env) in [
        ("cleanup", "dry-run", "WERF_DRY_RUN"),
        ("cleanup", "force", "WERF_FORCE"),
        ("cleanup", "project-name", "WERF_PROJECT_NAME"),
        ("cleanup", "disable-auto-host-cleanup", "WERF_DISABLE_AUTO_HOST_CLEANUP"),
        ("cleanup", "allowed-backend-storage-volume-usage", "WERF_ALLOWED_BACKEND_STORAGE_VOLUME_USAGE"),
        ("cleanup", "allowed-docker-storage-volume-usage", "WERF_ALLOWED_DOCKER_STORAGE_VOLUME_USAGE"),
        ("cleanup", "allowed-backend-storage-volume-usage-margin", "WERF_ALLOWED_BACKEND_STORAGE_VOLUME_USAGE_MARGIN"),
        ("cleanup", "allowed-local-cache-volume-usage", "WERF_ALLOWED_LOCAL_CACHE_VOLUME_USAGE"),
        ("cleanup", "allowed-local-cache-volume-usage-margin", "WERF_ALLOWED_LOCAL_CACHE_VOLUME_USAGE_MARGIN"),
        ("cleanup", "backend-storage-path", "WERF_BACKEND_STORAGE_PATH"),
        ("cleanup", "docker-server-storage-path", "WERF_DOCKER_SERVER_STORAGE_PATH"),
        ("cleanup", "home-dir", "WERF_HOME"),
        ("purge", "dry-run", "WERF_DRY_RUN"),
        ("purge", "project-name", "WERF_PROJECT_NAME"),
        ("purge", "synchronization", "WERF_SYNCHRONIZATION"),
    ] {
        let sub = cmd.find_subcommand(sub).unwrap();
        let arg = sub.get_arguments().find(|a| a.get_long() == Some(flag)).unwrap_or_else(|| panic!("--{flag}"));
        assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(env), "--{flag}");
    }
    // purge's --force has no variable in werf.
    let purge = cmd.find_subcommand("purge").unwrap();
    assert!(purge.get_arguments().find(|a| a.get_long() == Some("force")).unwrap().get_env().is_none());
}
