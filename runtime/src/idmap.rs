//! The id mapping of the user namespace this process runs in, as the kernel shows it
//! (`/proc/self/uid_map`, `gid_map`, `setgroups`), and what it means for a step.
//!
//! A single-id namespace (a user without `/etc/subuid` and `/etc/subgid` ranges, or
//! without a working `newuidmap`) maps only the caller, as root, and denies
//! `setgroups(2)` for good. A step there cannot take supplementary groups and cannot
//! become any uid or gid but 0: [`IdMap::adapt`] turns a step's identity into the one
//! the namespace can give, as buildah does in such a namespace (the step runs as the
//! mapped id), and says what it changed.

/// One `inside outside count` line of a uid or gid map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// The mapping of the current user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMap {
    pub uids: Vec<Extent>,
    pub gids: Vec<Extent>,
    /// `/proc/self/setgroups` says `allow` (it says `deny` after an unprivileged
    /// single-id mapping, and that cannot change).
    pub setgroups_allowed: bool,
}

/// What [`IdMap::adapt`] changed, for the caller to log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Adapted {
    /// Supplementary groups dropped because the namespace denies setgroups.
    pub dropped_groups: Vec<u32>,
    /// (asked, given) when the uid is not mapped in a single-id namespace.
    pub uid: Option<(u32, u32)>,
    /// (asked, given) when the gid is not mapped in a single-id namespace.
    pub gid: Option<(u32, u32)>,
}

impl IdMap {
    /// The mapping of this process's user namespace. A file that cannot be read counts
    /// as the initial namespace (everything mapped, setgroups allowed).
    pub fn current() -> IdMap {
        let read = |f: &str| std::fs::read_to_string(format!("/proc/self/{f}")).ok();
        let all = || vec![Extent { inside: 0, outside: 0, count: u32::MAX }];
        IdMap {
            uids: read("uid_map").map_or_else(all, |t| parse(&t)),
            gids: read("gid_map").map_or_else(all, |t| parse(&t)),
            setgroups_allowed: read("setgroups").is_none_or(|t| t.trim() == "allow"),
        }
    }

    /// Only one uid is mapped (the caller, as 0): owners other than root cannot exist
    /// on disk here.
    pub fn is_single(&self) -> bool {
        total(&self.uids) <= 1
    }

    pub fn maps_uid(&self, id: u32) -> bool {
        maps(&self.uids, id)
    }

    pub fn maps_gid(&self, id: u32) -> bool {
        maps(&self.gids, id)
    }

    /// The identity a step can have here for the one it asks for: supplementary groups
    /// only where setgroups is allowed; in a single-id namespace an unmapped uid or gid
    /// becomes 0 (the one mapped id). In a fully mapped namespace an unmapped id is left
    /// as it is, so setting it fails with a clear error.
    pub fn adapt(&self, uid: &mut u32, gid: &mut u32, groups: &mut Vec<u32>) -> Adapted {
        let mut out = Adapted::default();
        if !self.setgroups_allowed && !groups.is_empty() {
            out.dropped_groups = std::mem::take(groups);
        }
        if self.is_single() {
            if !self.maps_uid(*uid) {
                out.uid = Some((*uid, 0));
                *uid = 0;
            }
            if !self.maps_gid(*gid) {
                out.gid = Some((*gid, 0));
                *gid = 0;
            }
        }
        out
    }
}

fn parse(text: &str) -> Vec<Extent> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(|s| s.parse::<u32>().ok());
            Some(Extent { inside: f.next()??, outside: f.next()??, count: f.next()?? })
        })
        .collect()
}

fn total(extents: &[Extent]) -> u64 {
    extents.iter().map(|e| u64::from(e.count)).sum()
}

fn maps(extents: &[Extent], id: u32) -> bool {
    extents.iter().any(|e| id >= e.inside && u64::from(id) < u64::from(e.inside) + u64::from(e.count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(uids: &str, gids: &str, setgroups: bool) -> IdMap {
        IdMap { uids: parse(uids), gids: parse(gids), setgroups_allowed: setgroups }
    }

    #[test]
    fn single_id_namespace_runs_the_step_as_the_mapped_id() {
        let single = map("         0       1000          1\n", "0 1000 1\n", false);
        assert!(single.is_single());
        let (mut uid, mut gid, mut groups) = (1000, 1000, vec![1000, 27]);
        let a = single.adapt(&mut uid, &mut gid, &mut groups);
        assert_eq!((uid, gid, groups.len()), (0, 0, 0));
        assert_eq!(a, Adapted { dropped_groups: vec![1000, 27], uid: Some((1000, 0)), gid: Some((1000, 0)) });
        let (mut uid, mut gid, mut groups) = (0, 0, vec![0]);
        let a = single.adapt(&mut uid, &mut gid, &mut groups);
        assert_eq!((uid, gid, a.uid, a.gid, a.dropped_groups), (0, 0, None, None, vec![0]));
    }

    #[test]
    fn full_namespace_changes_nothing() {
        let full = map("0 1000 1\n1 400000 65536\n", "0 1000 1\n1 400000 65536\n", true);
        assert!(!full.is_single());
        assert!(full.maps_uid(65536) && !full.maps_uid(65537));
        let (mut uid, mut gid, mut groups) = (100000, 1000, vec![1000, 27]);
        assert_eq!(full.adapt(&mut uid, &mut gid, &mut groups), Adapted::default());
        assert_eq!((uid, gid, groups), (100000, 1000, vec![1000, 27]));
        let root = map("0 0 4294967295\n", "0 0 4294967295\n", true);
        assert!(!root.is_single() && root.maps_uid(u32::MAX - 1));
    }
}
