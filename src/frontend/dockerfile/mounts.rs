//! `RUN --mount=…`: cache, secret, bind and tmpfs mounts for one step, BuildKit's syntax.

use anyhow::{Context, bail};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMount {
    /// A directory kept between builds in the store (`id` defaults to the target). With
    /// `from`, a new cache starts as a copy of `source` of that stage or image.
    Cache {
        target: String,
        id: String,
        uid: u32,
        gid: u32,
        mode: u32,
        readonly: bool,
        from: Option<String>,
        source: String,
    },
    /// A werf.yaml secret as a read-only file (default `/run/secrets/<id>`).
    Secret { id: String, target: String, required: bool, mode: u32 },
    /// A file or directory of the build context, or of another stage or image (`from`).
    Bind { target: String, source: String, from: Option<String>, readonly: bool },
    /// An empty directory that is thrown away after the step.
    Tmpfs { target: String },
    /// The build's SSH agent as a socket (default `/run/buildkit/ssh_agent.N`, N counting
    /// the step's ssh mounts), named by `SSH_AUTH_SOCK` in the step.
    Ssh { id: String, target: Option<String>, required: bool, uid: u32, gid: u32, mode: u32 },
}

/// Parse one `--mount` value, e.g. `type=cache,target=/root/.cache,id=go`.
pub fn parse(spec: &str) -> anyhow::Result<RunMount> {
    let mut kind = "bind".to_string();
    let (mut target, mut source, mut from, mut id) = (None, None, None, None);
    let (mut readonly, mut rw_given, mut required) = (false, false, false);
    let (mut uid, mut gid, mut mode) = (0u32, 0u32, None);
    for field in spec.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), v.to_string()),
            None => (field.to_ascii_lowercase(), "true".to_string()),
        };
        let flag = |v: &str| -> anyhow::Result<bool> {
            match v {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => bail!("--mount={spec}: {k} takes true or false"),
            }
        };
        let num =
            |v: &str, radix| u32::from_str_radix(v, radix).with_context(|| format!("--mount={spec}: bad {k}={v}"));
        match k.as_str() {
            "type" => kind = v,
            "target" | "dst" | "destination" => target = Some(v),
            "source" | "src" => source = Some(v),
            "from" => from = Some(v),
            "id" => id = Some(v),
            "ro" | "readonly" => readonly = flag(&v)?,
            "rw" | "readwrite" => {
                readonly = !flag(&v)?;
                rw_given = true;
            }
            "required" => required = flag(&v)?,
            "uid" => uid = num(&v, 10)?,
            "gid" => gid = num(&v, 10)?,
            "mode" => mode = Some(num(&v, 8)?),
            "sharing" | "relabel" | "size" => {}
            other => bail!("--mount={spec}: unknown option {other}"),
        }
    }
    let need_target = |t: Option<String>| t.with_context(|| format!("--mount={spec}: target is required"));
    Ok(match kind.as_str() {
        "cache" => {
            let target = need_target(target)?;
            RunMount::Cache {
                id: id.unwrap_or_else(|| target.clone()),
                target,
                uid,
                gid,
                mode: mode.unwrap_or(0o755),
                readonly,
                from,
                source: source.unwrap_or_else(|| "/".into()),
            }
        }
        "secret" => {
            let id = id.or_else(|| target.as_ref().and_then(|t| t.rsplit('/').next().map(str::to_string)));
            let id = id.with_context(|| format!("--mount={spec}: a secret needs an id"))?;
            let target = target.unwrap_or_else(|| format!("/run/secrets/{id}"));
            RunMount::Secret { id, target, required, mode: mode.unwrap_or(0o400) }
        }
        "bind" => RunMount::Bind {
            target: need_target(target)?,
            source: source.unwrap_or_else(|| "/".into()),
            from,
            // Binds are read-only unless rw is given, as in BuildKit.
            readonly: !rw_given || readonly,
        },
        "tmpfs" => RunMount::Tmpfs { target: need_target(target)? },
        "ssh" => RunMount::Ssh {
            id: id.unwrap_or_else(|| "default".into()),
            target,
            required,
            uid,
            gid,
            mode: mode.unwrap_or(0o600),
        },
        other => bail!("--mount={spec}: unknown type {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildkit_mounts() {
        assert_eq!(
            parse("type=cache,target=/root/.cache,uid=1000,mode=0700").unwrap(),
            RunMount::Cache {
                target: "/root/.cache".into(),
                id: "/root/.cache".into(),
                uid: 1000,
                gid: 0,
                mode: 0o700,
                readonly: false,
                from: None,
                source: "/".into(),
            }
        );
        assert_eq!(
            parse("type=secret,id=token").unwrap(),
            RunMount::Secret { id: "token".into(), target: "/run/secrets/token".into(), required: false, mode: 0o400 }
        );
        assert_eq!(
            parse("target=/src,source=app,from=build").unwrap(),
            RunMount::Bind { target: "/src".into(), source: "app".into(), from: Some("build".into()), readonly: true }
        );
        assert_eq!(
            parse("type=bind,target=/w,rw").unwrap(),
            RunMount::Bind { target: "/w".into(), source: "/".into(), from: None, readonly: false }
        );
        assert_eq!(
            parse("type=cache,target=/c,from=seed,source=/seed").unwrap(),
            RunMount::Cache {
                target: "/c".into(),
                id: "/c".into(),
                uid: 0,
                gid: 0,
                mode: 0o755,
                readonly: false,
                from: Some("seed".into()),
                source: "/seed".into(),
            }
        );
        assert_eq!(
            parse("type=ssh,required").unwrap(),
            RunMount::Ssh { id: "default".into(), target: None, required: true, uid: 0, gid: 0, mode: 0o600 }
        );
        assert_eq!(parse("type=tmpfs,dst=/tmp/x").unwrap(), RunMount::Tmpfs { target: "/tmp/x".into() });
        for (bad, needle) in [
            ("type=cache", "target is required"),
            ("type=nope,target=/x", "unknown type"),
            ("type=cache,target=/x,bogus=1", "unknown option"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
