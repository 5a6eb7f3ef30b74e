//! slipway: a daemonless, rootless container-image builder that speaks werf's language.
//!
//! `main` is a shim: become a sandbox helper if asked to, enter the user namespace,
//! parse the command line, run, and turn the error chain into one message and an exit
//! code. The work is in [`cli`] and the modules it calls.

mod cli;
mod cmd;
mod config;
mod config_reader;
mod context;
mod engine;
mod frontend;
mod git;
mod giterminism;
mod internal;
mod openat2;
mod project;
mod slug;

use std::process::ExitCode;

fn main() -> ExitCode {
    // Before anything else: fds our caller leaked to us (a CI runner's fd on a host
    // directory) must reach no child process and no build step.
    if let Err(e) = slipway_runtime::fds::cloexec_inherited() {
        eprintln!("Error: marking inherited file descriptors close-on-exec: {e}");
        return ExitCode::from(1);
    }
    // A sandbox helper is a re-exec of this binary: it must not parse arguments or log.
    slipway_runtime::sandbox::helper_main_if_requested();
    let args = <cli::Cli as clap::Parser>::parse();
    let log = args.log_args();
    init_logging(
        args.log_level.as_deref().or(log.and_then(|l| l.level())),
        log.map_or_else(|| std::io::IsTerminal::is_terminal(&std::io::stderr()), |l| l.color()),
    );
    if args.outside_namespace() {
        return finish(cli::run(args));
    }
    match slipway_runtime::userns::enter(&Default::default()) {
        Ok(slipway_runtime::userns::Entered::ParentDone(code)) => return ExitCode::from(code.clamp(0, 255) as u8),
        Ok(slipway_runtime::userns::Entered::Inside) => {}
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(1);
        }
    }
    finish(cli::run(args))
}

fn finish(result: anyhow::Result<u8>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("Error: {}", error_chain(&e));
            ExitCode::from(1)
        }
    }
}

fn error_chain(e: &anyhow::Error) -> String {
    e.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ")
}

fn init_logging(level: Option<&str>, ansi: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.unwrap_or("warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .without_time()
        .init();
}
