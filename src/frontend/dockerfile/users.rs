//! `USER` and `--chown` values resolved against the image's `/etc/passwd` and `/etc/group`,
//! as Docker does: names are looked up, numbers are taken as they are; a user without a
//! passwd entry gets gid 0.

use anyhow::{Context, bail};

/// Who a step runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6).then_some(())?;
        Some(PasswdEntry { name: f[0], uid: f[2].parse().ok()?, gid: f[3].parse().ok()?, home: f[5] })
    })
}

fn groups(text: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3).then_some(())?;
        let members = f.get(3).map(|m| m.split(',').filter(|s| !s.is_empty()).collect()).unwrap_or_default();
        Some((f[0], f[2].parse().ok()?, members))
    })
}

/// Resolve `user[:group]` given the image's passwd and group files (empty if absent).
pub fn resolve(spec: &str, passwd_text: &str, group_text: &str) -> anyhow::Result<ExecUser> {
    let spec = if spec.is_empty() { "0" } else { spec };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entry = passwd(passwd_text).find(|e| e.name == user || user.parse::<u32>().is_ok_and(|n| n == e.uid));
    let (uid, mut gid, home, name) = match (&entry, user.parse::<u32>()) {
        (Some(e), _) => (e.uid, e.gid, e.home.to_string(), Some(e.name)),
        (None, Ok(n)) => (n, 0, "/".to_string(), None),
        (None, Err(_)) => bail!("unable to find user {user}: no matching entries in /etc/passwd of the image"),
    };
    let mut extra = Vec::new();
    if let Some(g) = group {
        gid = resolve_group(g, group_text)?;
    } else if let Some(name) = name {
        extra = groups(group_text).filter(|(_, _, members)| members.contains(&name)).map(|(_, id, _)| id).collect();
    }
    let mut all = vec![gid];
    for g in extra {
        if !all.contains(&g) {
            all.push(g);
        }
    }
    Ok(ExecUser { uid, gid, groups: all, home })
}

fn resolve_group(g: &str, group_text: &str) -> anyhow::Result<u32> {
    if let Ok(n) = g.parse() {
        return Ok(n);
    }
    groups(group_text)
        .find(|(name, _, _)| *name == g)
        .map(|(_, id, _)| id)
        .with_context(|| format!("unable to find group {g}: no matching entries in /etc/group of the image"))
}

/// Resolve a `--chown=user[:group]` value to (uid, gid). A user without a group gets
/// the user's primary group when the user is known, else the same number (Docker's rule).
pub fn resolve_chown(spec: &str, passwd_text: &str, group_text: &str) -> anyhow::Result<(u32, u32)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    // `--chown=:group`: no user is root (BuildKit, buildah).
    let user = if user.is_empty() { "0" } else { user };
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => passwd(passwd_text)
            .find(|e| e.name == user)
            .map(|e| e.uid)
            .with_context(|| format!("unable to find user {user} for --chown in /etc/passwd of the image"))?,
    };
    let gid = match group {
        Some(g) => resolve_group(g, group_text)?,
        None => match user.parse::<u32>() {
            Ok(n) => n,
            Err(_) => passwd(passwd_text).find(|e| e.name == user).map_or(uid, |e| e.gid),
        },
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nappgrp:x:1001:\nextra:x:2000:app,other\n";

    #[test]
    fn chown_with_only_a_group_is_root_and_that_group() {
        assert_eq!(resolve_chown(":appgrp", PASSWD, GROUP).unwrap(), (0, 1001));
        assert_eq!(resolve_chown(":7", PASSWD, GROUP).unwrap(), (0, 7));
    }

    #[test]
    fn resolves_users() {
        let cases = [
            ("", (0, 0, vec![0], "/root")),
            ("app", (1000, 1001, vec![1001, 2000], "/home/app")),
            ("1000", (1000, 1001, vec![1001, 2000], "/home/app")),
            ("app:extra", (1000, 2000, vec![2000], "/home/app")),
            ("4242", (4242, 0, vec![0], "/")),
            ("4242:7", (4242, 7, vec![7], "/")),
        ];
        for (spec, (uid, gid, groups, home)) in cases {
            let u = resolve(spec, PASSWD, GROUP).unwrap();
            assert_eq!((u.uid, u.gid, u.groups, u.home.as_str()), (uid, gid, groups, home), "{spec}");
        }
        assert_eq!(
            resolve("nobody", PASSWD, GROUP).unwrap_err().to_string(),
            "unable to find user nobody: no matching entries in /etc/passwd of the image"
        );
        assert!(resolve("app:nogroup", PASSWD, GROUP).is_err());
    }

    #[test]
    fn resolves_chown() {
        assert_eq!(resolve_chown("app", PASSWD, GROUP).unwrap(), (1000, 1001));
        assert_eq!(resolve_chown("55", PASSWD, GROUP).unwrap(), (55, 55));
        assert_eq!(resolve_chown("app:extra", PASSWD, GROUP).unwrap(), (1000, 2000));
        assert_eq!(resolve_chown("5:6", PASSWD, GROUP).unwrap(), (5, 6));
        assert!(resolve_chown("ghost", PASSWD, GROUP).is_err());
    }
}
