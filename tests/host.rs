//! `slipway host check` as the unprivileged test user: every probe really runs (the user
//! namespace, the overlay mount, the step sandbox) and the report says so.

use crate::common::{Env, rootless_env, run_ok, stdout};

/// The report's row `name`: (status, detail).
fn row<'a>(text: &'a str, name: &str) -> (&'a str, &'a str) {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name:<16} ")))
        .unwrap_or_else(|| panic!("no row {name}:\n{text}"));
    let rest = &line[17..];
    (rest[..8].trim(), rest[8..].trim())
}

#[test]
fn host_check_probes_namespace_overlay_and_sandbox() {
    if !rootless_env("host_check_probes_namespace_overlay_and_sandbox") {
        return;
    }
    let env = Env::new();
    let out = run_ok(env.slipway().args(["host", "check"]));
    let text = stdout(&out);
    assert_eq!(row(&text, "user namespaces").0, "ok", "{text}");
    assert_eq!(row(&text, "subordinate ids").0, "ok", "{text}");
    assert_eq!(row(&text, "newuidmap"), ("ok", "/usr/bin/newuidmap (set-uid root)"), "{text}");
    let (status, mapping) = row(&text, "id mapping");
    assert_eq!(status, "ok", "{text}");
    // The probe's own namespace: the caller and 65536 subordinate ids (scripts/test-user.sh).
    assert_eq!(mapping, "full (65537 ids)", "{text}");
    assert_eq!(row(&text, "overlay"), ("ok", "native overlayfs mounts here"), "{text}");
    assert_eq!(row(&text, "sandbox"), ("ok", "namespaces, /proc, /dev and pivot_root set up for a step"), "{text}");
    // scripts/test-user.sh gives /dev/fuse Debian's mode 0666: fuse-overlayfs mounts.
    assert_eq!(row(&text, "fuse"), ("ok", "/usr/bin/fuse-overlayfs mounts here"), "{text}");
    assert!(text.contains("\nslipway builds here: a full id mapping, layers on native overlayfs"), "{text}");
    // Every row that is missing something says how to enable it.
    for l in text.lines().filter(|l| l.get(17..25) == Some("MISSING ")) {
        let name = l[..16].trim();
        assert!(text.contains(&format!("\n  {name}: ")), "no fix for {name}:\n{text}");
    }
}
