//! `/etc/subuid` and `/etc/subgid`: which subordinate id ranges a user owns.

/// One `name_or_id:start:count` line that applies to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub start: u32,
    pub count: u32,
}

/// Ranges in `text` (the content of a subuid/subgid file) that belong to the user
/// given by name or numeric id, in file order. Malformed lines are skipped, as shadow's
/// own tools do.
pub fn parse(text: &str, user: &str, id: u32) -> Vec<IdRange> {
    let id = id.to_string();
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let mut parts = line.split(':');
            let owner = parts.next()?;
            let start = parts.next()?.trim().parse().ok()?;
            let count = parts.next()?.trim().parse().ok()?;
            (owner == user || owner == id).then_some(IdRange { start, count })
        })
        .filter(|r: &IdRange| r.count > 0)
        .collect()
}

/// The arguments for `newuidmap`/`newgidmap`: container 0 is the caller's own id, then
/// the subordinate ranges are stacked from container id 1.
pub fn map_args(own: u32, ranges: &[IdRange]) -> Vec<String> {
    let mut args = vec!["0".to_string(), own.to_string(), "1".to_string()];
    let mut next = 1u64;
    for r in ranges {
        args.extend([next.to_string(), r.start.to_string(), r.count.to_string()]);
        next += u64::from(r.count);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_by_name_and_id() {
        let text = "alice:100000:65536\n# comment\nbob:200000:65536\n1001:300000:1000\nbad line\nalice:x:1\n";
        assert_eq!(parse(text, "alice", 1000), vec![IdRange { start: 100000, count: 65536 }]);
        assert_eq!(
            parse(text, "bob", 1001),
            vec![IdRange { start: 200000, count: 65536 }, IdRange { start: 300000, count: 1000 }]
        );
        assert!(parse(text, "carol", 1002).is_empty());
    }

    #[test]
    fn stacks_ranges_from_one() {
        let ranges = [IdRange { start: 200000, count: 10 }, IdRange { start: 300000, count: 5 }];
        assert_eq!(map_args(1001, &ranges).join(" "), "0 1001 1 1 200000 10 11 300000 5");
        assert_eq!(map_args(5, &[]).join(" "), "0 5 1");
    }
}
