//! What the planner of an image with git mappings asks ([`GitHistory`]): the commits a
//! stored git stage recorded, and whether the mapped files changed since then.
//!
//! An image's mappings take their files from one or more [`Source`]s (the own
//! repository, remote ones), each at its own commit. The planner carries "the commit"
//! as one string, [`encode`]d: the commit of each source, in source order, joined by a
//! space — for an image mapping only the own repository, HEAD itself.
//!
//! Stage selection (werf's `selectAncestorStageDescByGitMappings`): several stages may
//! share a git stage's digest (one per branch); [`Ancestry`] is the stage selector that
//! keeps those whose commit recorded for each mapping is an ancestor of that mapping's
//! current commit in that mapping's repository ([`reusable`]), and the engine uses the
//! oldest of them. The planner asks with the same selector, so the commits it plans the
//! next stage from are those of the stage the conveyor uses.

use super::git::{Mapping, Source, commit_label};
use super::plan::GitHistory;
use crate::engine::stages::Stages;
use crate::engine::state::ImageState;
use crate::engine::storage::Selector;
use crate::git::{Repo, TreeChange};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// werf's ancestry check as a stage selector: a stage whose recorded commit per mapping
/// (its `werf-git-<paramshash>-commit` label) is an ancestor of the mapping's current
/// commit in the mapping's repository — or, with werf's
/// `WERF_DISABLE_GIT_COMMIT_ANCESTRY_CHECK` set true, any commit that repository has.
#[derive(Clone)]
pub struct Ancestry {
    sources: std::rc::Rc<[Source]>,
    /// Per mapping: its commit label and the index of its source.
    labels: Vec<(String, usize)>,
    check: AncestryCheck,
}

/// Whether the recorded commit must be an ancestor of HEAD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AncestryCheck {
    On,
    /// `WERF_DISABLE_GIT_COMMIT_ANCESTRY_CHECK`: the commit only has to exist.
    Off,
}

impl AncestryCheck {
    /// From `WERF_DISABLE_GIT_COMMIT_ANCESTRY_CHECK`, read as werf reads it (Go's
    /// `strconv.ParseBool`; unset, empty or not a boolean: the check is on).
    pub fn from_env(value: Option<&str>) -> AncestryCheck {
        match value {
            Some("1" | "t" | "T" | "TRUE" | "true" | "True") => AncestryCheck::Off,
            _ => AncestryCheck::On,
        }
    }
}

impl Ancestry {
    /// The selector of an image's git stages; `None` without mappings.
    pub fn new(sources: &std::rc::Rc<[Source]>, mappings: &[Mapping], check: AncestryCheck) -> Option<Self> {
        mappings.first()?;
        let labels = mappings.iter().map(|m| (commit_label(&m.paramshash), m.source)).collect();
        Some(Ancestry { sources: sources.clone(), labels, check })
    }
}

impl Selector for Ancestry {
    fn accepts(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().all(|(label, s)| {
            let source = &self.sources[*s];
            labels.get(label).is_some_and(|commit| reusable(&source.repo, commit, &source.head, self.check))
        })
    }
}

/// The current commits of `sources`, as the planner carries them.
pub fn encode<'s>(commits: impl IntoIterator<Item = &'s str>) -> String {
    commits.into_iter().collect::<Vec<_>>().join(" ")
}

/// The commit of each source in an [`encode`]d string (`None` when it does not have
/// one per source).
pub fn decode(commits: &str, sources: usize) -> Option<Vec<&str>> {
    let v: Vec<&str> = commits.split(' ').collect();
    (v.len() == sources).then_some(v)
}

/// An image's mappings, their sources at their current commits, and the stage storage.
pub struct GitStages<'a> {
    pub sources: &'a [Source],
    pub mappings: &'a [Mapping],
    pub stages: &'a Stages<'a>,
    pub ancestry: &'a Ancestry,
}

impl GitHistory for GitStages<'_> {
    fn recorded(&self, digest: &str) -> anyhow::Result<Option<String>> {
        let found = self.stages.lookup(digest, Some(self.ancestry))?;
        Ok(found.and_then(|f| recorded_commit(&f.state, self.mappings, self.sources.len())))
    }

    fn patch(&self, from: &str) -> anyhow::Result<Option<(String, u64)>> {
        let from = decode(from, self.sources.len())
            .ok_or_else(|| anyhow::anyhow!("commits {from:?} do not name one commit per repository"))?;
        let mut h = Sha256::new();
        let (mut any, mut size) = (false, 0u64);
        for m in self.mappings {
            let source = &self.sources[m.source];
            h.update(format!("{}\n", m.paramshash));
            if from[m.source] == source.head {
                continue;
            }
            for c in m.changes(&source.repo, from[m.source], &source.head)? {
                any = true;
                match c {
                    TreeChange::Deleted(path) => h.update(format!("D {}:{path}\n", path.len())),
                    TreeChange::Written(e) => {
                        size += source.repo.blob_size(&e.oid)?;
                        h.update(format!("W {} {:?} {}:{}\n", e.oid, e.kind, e.path.len(), e.path));
                    }
                }
            }
        }
        Ok(any.then(|| (hex::encode(h.finalize()), size)))
    }
}

/// The commits a stage recorded for the image's mappings (werf's
/// `werf-git-<paramshash>-commit` of each), [`encode`]d per source: the label of the
/// first mapping of each source (the mappings of one source record the same commit).
pub fn recorded_commit(state: &ImageState, mappings: &[Mapping], sources: usize) -> Option<String> {
    let labels = state.config.config.labels.as_ref()?;
    let mut commits = Vec::with_capacity(sources);
    for s in 0..sources {
        let m = mappings.iter().find(|m| m.source == s)?;
        commits.push(labels.get(&commit_label(&m.paramshash))?.as_str());
    }
    Some(encode(commits))
}

/// Whether a stage that recorded commit `recorded` may be reused at `head` (of one
/// repository): the commit is a full id this repository has and (unless `check` is off) an ancestor of HEAD
/// (werf's ancestry check). The git patch from any commit is a tree diff, so a stage
/// of another branch patched to HEAD has HEAD's files.
pub fn reusable(repo: &Repo, recorded: &str, head: &str, check: AncestryCheck) -> bool {
    recorded.len() == 40
        && recorded.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && match check {
            AncestryCheck::On => repo.is_ancestor(recorded, head).unwrap_or(false),
            AncestryCheck::Off => repo.has_commit(recorded),
        }
}

#[cfg(test)]
mod tests {
    use super::super::git::{Mapping, Source};
    use super::super::git_apply::tests::{commit, git};
    use super::{Ancestry, AncestryCheck, Selector, decode, encode, recorded_commit};
    use crate::git::Repo;
    use std::collections::BTreeMap;
    use std::path::Path;

    /// A repository at `dir` with commits `first` → `second`, and `side`, another
    /// branch's commit from `first`. The content names the directory, so two such
    /// repositories made in the same second share no commit.
    fn history(dir: &Path) -> (String, String, String) {
        std::fs::create_dir_all(dir).unwrap();
        git(dir, &["init", "-q", "-b", "main"]);
        std::fs::write(dir.join("f"), format!("1 {}", dir.display())).unwrap();
        let first = commit(dir);
        git(dir, &["checkout", "-q", "-b", "side"]);
        std::fs::write(dir.join("f"), "side").unwrap();
        let side = commit(dir);
        git(dir, &["checkout", "-q", "main"]);
        std::fs::write(dir.join("f"), "2").unwrap();
        (first, commit(dir), side)
    }

    fn mapping(source: usize, paramshash: &str) -> Mapping {
        Mapping {
            line: 1,
            source,
            add: String::new(),
            to: "/x".into(),
            owner: None,
            group: None,
            filter: Default::default(),
            stage_dependencies: Default::default(),
            paramshash: paramshash.into(),
            is_file: false,
        }
    }

    /// werf's `selectAncestorStageDescByGitMappings`: each mapping's recorded commit is
    /// checked in its own repository against its own current commit.
    #[test]
    fn each_mapping_is_checked_in_its_own_repository() {
        let tmp = tempfile::tempdir().unwrap();
        let (a1, a2, ax) = history(&tmp.path().join("a"));
        let (b1, b2, bx) = history(&tmp.path().join("b"));
        let source = |dir: &str, head: &str| Source {
            repo: Repo::discover(&tmp.path().join(dir)).unwrap(),
            head: head.to_string(),
            full_name: dir.into(),
            refs: Default::default(),
            shown: dir.into(),
        };
        let sources: std::rc::Rc<[Source]> = vec![source("a", &a2), source("b", &b2)].into();
        let mappings = [mapping(0, "pa"), mapping(1, "pb"), mapping(1, "pb2")];
        let selector = Ancestry::new(&sources, &mappings, AncestryCheck::On).unwrap();
        let labels = |a: &str, b: &str| -> BTreeMap<String, String> {
            [("pa", a), ("pb", b), ("pb2", b)]
                .iter()
                .map(|(p, c)| (format!("werf-git-{p}-commit"), c.to_string()))
                .collect()
        };
        assert!(selector.accepts(&labels(&a1, &b1)));
        assert!(selector.accepts(&labels(&a2, &b2)));
        assert!(!selector.accepts(&labels(&a1, &bx)), "another branch of b");
        assert!(!selector.accepts(&labels(&ax, &b1)), "another branch of a");
        assert!(!selector.accepts(&labels(&b1, &a1)), "each commit in the other repository");
        let mut missing = labels(&a1, &b1);
        missing.remove("werf-git-pb2-commit");
        assert!(!selector.accepts(&missing));
        // Without the ancestry check, the commits only have to exist, each in its own
        // repository.
        let unchecked = Ancestry::new(&sources, &mappings, AncestryCheck::Off).unwrap();
        assert!(unchecked.accepts(&labels(&ax, &bx)));
        assert!(!unchecked.accepts(&labels(&b1, &a1)));
        // What a stage recorded, per source.
        let mut state = crate::engine::state::ImageState::scratch();
        state.config.config.labels = Some(labels(&a1, &b1).into_iter().collect());
        assert_eq!(recorded_commit(&state, &mappings, 2), Some(format!("{a1} {b1}")));
    }

    #[test]
    fn commits_of_one_source_are_the_commit_itself() {
        let c = "a".repeat(40);
        assert_eq!(encode([c.as_str()]), c);
        let two = encode([c.as_str(), "b"]);
        assert_eq!(two, format!("{c} b"));
        assert_eq!(decode(&two, 2), Some(vec![c.as_str(), "b"]));
        assert_eq!(decode(&two, 1), None);
    }

    #[test]
    fn the_ancestry_check_is_off_only_for_go_true_values() {
        for v in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(AncestryCheck::from_env(Some(v)), AncestryCheck::Off, "{v}");
        }
        for v in [None, Some(""), Some("0"), Some("false"), Some("yes"), Some("on"), Some("tRuE")] {
            assert_eq!(AncestryCheck::from_env(v), AncestryCheck::On, "{v:?}");
        }
    }
}
