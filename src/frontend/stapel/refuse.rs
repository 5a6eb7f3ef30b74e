//! The parts of a Stapel image slipway does not build yet. Each is refused before
//! anything is built, with one line naming the werf.yaml line and the key, so nothing
//! in a werf.yaml is silently ignored. Keys with a line of their own (`git` entries,
//! mounts) give it; for the others the caller names the image's line.

use crate::config::StapelImage;

/// `Err((line of the key if known, message))` for the first key of `s` that is not
/// supported. `build_platforms` is werf.yaml's `build.platform`.
pub fn unsupported(s: &StapelImage, build_platforms: &[String]) -> Result<(), (Option<usize>, String)> {
    let StapelImage {
        from: _,
        from_latest: _,
        from_cache_version: _,
        cache_version: _,
        artifact: _,
        disable_git_after_patch: _,
        git,
        shell: _,
        ansible,
        mount,
        docker: _,
        import: _,
        dependencies: _,
        image_spec: _,
        platform,
        network,
        secrets: _,
    } = s;
    let not_yet =
        |line: Option<usize>, key: &str| Err((line, format!("`{key}` is not supported for Stapel images yet")));
    if ansible.is_some() {
        return Err((
            None,
            "`ansible` is not supported: werf's Buildah mode has no Ansible either; use `shell`".into(),
        ));
    }
    for g in git {
        let crate::config::GitSource::Remote { url, basic_auth, .. } = &g.source else { continue };
        if let Some(crate::config::BasicAuth { password: Some(p), .. }) = basic_auth
            && !matches!(p, crate::config::PasswordSource::Value(_))
        {
            return Err((
                Some(g.line),
                "git basicAuth.password: only `value` is supported (`env` and `src` are not yet); \
                 `value: {{ env \"NAME\" }}` reads a variable werf-giterminism.yaml allows"
                    .into(),
            ));
        }
        if !["https://", "http://", "git://", "file://"].iter().any(|s| url.starts_with(s)) {
            return Err((
                Some(g.line),
                format!(
                    "git url {url}: only https://, http://, git:// and file:// urls are supported for remote \
                     mappings (ssh and scp-like urls are not yet)"
                ),
            ));
        }
    }
    if let Some(g) = git.iter().find(|g| g.lfs) {
        return not_yet(Some(g.line), "git.lfs");
    }
    if let Some(m) = mount.iter().find(|m| super::mount::go_clean(&m.to) == "/") {
        return Err((Some(m.line), "mount `to: /` would hide the whole image; mount a directory in it".into()));
    }
    if let Some(p) =
        platform.iter().chain(build_platforms).find(|p| !crate::frontend::dockerfile::plan::is_linux_amd64(p))
    {
        return Err((None, format!("platform {p}: slipway builds linux/amd64 only so far")));
    }
    match network.as_deref() {
        None | Some("default" | "host" | "none") => Ok(()),
        Some(other) => Err((None, format!("network {other:?} is not one of default, host, none"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(doc: &str) -> StapelImage {
        let text = format!("project: p\nconfigVersion: 1\n---\nimage: app\nfrom: busybox\n{doc}");
        let config = crate::config::parse("werf.yaml", &text).unwrap();
        match &config.images[0].kind {
            crate::config::ImageKind::Stapel(s) => s.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_each_unsupported_key_in_one_line() {
        let cases = [
            (
                "git:\n- url: git@example.com:x.git\n  to: /app\n",
                Some(7),
                "git url git@example.com:x.git: only https://, http://, git:// and file:// urls are supported for \
                 remote mappings (ssh and scp-like urls are not yet)",
            ),
            (
                "git:\n- url: https://example.com/x.git\n  to: /app\n  basicAuth: {username: u, password: {env: P}}\n",
                Some(7),
                "git basicAuth.password: only `value` is supported (`env` and `src` are not yet); \
                 `value: {{ env \"NAME\" }}` reads a variable werf-giterminism.yaml allows",
            ),
            ("git:\n- to: /app\n  lfs: true\n", Some(7), "`git.lfs` is not supported for Stapel images yet"),
            (
                "ansible:\n  install:\n  - debug: {}\n",
                None,
                "`ansible` is not supported: werf's Buildah mode has no Ansible either; use `shell`",
            ),
            ("platform: [linux/arm64]\n", None, "platform linux/arm64: slipway builds linux/amd64 only so far"),
            ("network: bridge\n", None, "network \"bridge\" is not one of default, host, none"),
        ];
        for (doc, line, want) in cases {
            assert_eq!(unsupported(&parsed(doc), &[]), Err((line, want.to_string())), "{doc}");
        }
        assert_eq!(unsupported(&parsed("shell:\n  install: [true]\nnetwork: none\n"), &[]), Ok(()));
        assert_eq!(unsupported(&parsed("git:\n- add: /src\n  to: /app\n"), &[]), Ok(()));
        assert_eq!(
            unsupported(&parsed("git:\n- url: https://example.com/x.git\n  tag: v1\n  to: /app\n"), &[]),
            Ok(())
        );
        assert_eq!(unsupported(&parsed("mount:\n- from: tmp_dir\n  to: /tmp/x\n"), &[]), Ok(()));
        assert_eq!(
            unsupported(&parsed("mount:\n- from: tmp_dir\n  to: /x\n- from: tmp_dir\n  to: /a/..\n"), &[]),
            Err((Some(9), "mount `to: /` would hide the whole image; mount a directory in it".to_string()))
        );
    }
}
