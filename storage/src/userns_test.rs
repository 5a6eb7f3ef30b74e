//! Tests that need a real user namespace re-run themselves under `unshare`, with an
//! environment variable telling the child that it is the inside half.

use std::ffi::OsStr;
use std::process::Command;

/// Printed by the inside half once every assertion held.
pub(crate) const CHECKED: &str = "checked inside a user namespace";

/// Runs the test `name` of this test binary as `unshare UNSHARE_ARGS EXE --exact NAME`
/// (under `timeout -k 5 SECS`, so a hang fails the test) with `env` added. Returns
/// `false` after saying why when `unshare` cannot run here (a failure when
/// `SLIPWAY_REQUIRE_PRIVILEGED_TESTS=1`); panics with the child's output when the child
/// ran and failed, or did not print [`CHECKED`].
pub(crate) fn rerun_under_unshare(unshare_args: &[&str], name: &str, env: &[(&str, &OsStr)], secs: u32) -> bool {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "5", &secs.to_string(), "unshare"]).args(unshare_args).arg(&exe);
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output();
    let out = match out {
        // libtest says "running 1 test" once the binary runs inside: from then on its
        // verdict is the test's.
        Ok(o) if o.status.success() || String::from_utf8_lossy(&o.stdout).contains("running 1 test") => o,
        other => {
            let why = format!("cannot run `unshare {}` here: {other:?}", unshare_args.join(" "));
            assert!(std::env::var("SLIPWAY_REQUIRE_PRIVILEGED_TESTS").as_deref() != Ok("1"), "{why}");
            eprintln!("skipping: {why}");
            return false;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "inside the namespace ({}): {stdout}{stderr}", out.status);
    assert!(stdout.contains(CHECKED), "{stdout}{stderr}");
    true
}
