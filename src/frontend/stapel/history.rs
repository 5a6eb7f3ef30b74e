//! What the planner of an image with git mappings asks ([`GitHistory`]): the commit a
//! stored git stage recorded, and whether the mapped files changed since a commit.
//!
//! Stage selection (werf's `SelectSuitableStage` of the git stages): several stages
//! may share a git stage's digest (one per branch); [`Ancestry`] is the stage selector
//! that keeps those whose recorded commit is an ancestor of HEAD ([`reusable`]), and
//! the engine uses the oldest of them. The planner asks with the same selector, so the
//! commit it plans the next stage from is the one of the stage the conveyor uses.

use super::git::{Mapping, commit_label};
use super::plan::GitHistory;
use crate::engine::stages::Stages;
use crate::engine::state::ImageState;
use crate::engine::storage::Selector;
use crate::git::{Repo, TreeChange};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// werf's ancestry check as a stage selector: a stage whose recorded commit (the
/// image's `werf-git-<paramshash>-commit` label; every local mapping records the same
/// commit) is an ancestor of HEAD — or, with werf's
/// `WERF_DISABLE_GIT_COMMIT_ANCESTRY_CHECK` set true, any commit this repository has.
#[derive(Clone)]
pub struct Ancestry<'a> {
    repo: &'a Repo,
    head: &'a str,
    label: String,
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

impl<'a> Ancestry<'a> {
    /// The selector of an image's git stages; `None` without mappings.
    pub fn new(repo: &'a Repo, head: &'a str, mappings: &[Mapping], check: AncestryCheck) -> Option<Self> {
        Some(Ancestry { repo, head, label: commit_label(&mappings.first()?.paramshash), check })
    }
}

impl Selector for Ancestry<'_> {
    fn accepts(&self, labels: &BTreeMap<String, String>) -> bool {
        labels.get(&self.label).is_some_and(|commit| reusable(self.repo, commit, self.head, self.check))
    }
}

/// An image's local mappings in the repository at HEAD, and the stage storage.
pub struct GitStages<'a> {
    pub repo: &'a Repo,
    pub head: &'a str,
    pub mappings: &'a [Mapping],
    pub stages: &'a Stages<'a>,
    pub ancestry: &'a Ancestry<'a>,
}

impl GitHistory for GitStages<'_> {
    fn recorded(&self, digest: &str) -> anyhow::Result<Option<String>> {
        let found = self.stages.lookup(digest, Some(self.ancestry))?;
        Ok(found.and_then(|f| recorded_commit(&f.state, self.mappings)))
    }

    fn patch(&self, from: &str) -> anyhow::Result<Option<(String, u64)>> {
        let mut h = Sha256::new();
        let (mut any, mut size) = (false, 0u64);
        for m in self.mappings {
            h.update(format!("{}\n", m.paramshash));
            for c in m.changes(self.repo, from, self.head)? {
                any = true;
                match c {
                    TreeChange::Deleted(path) => h.update(format!("D {}:{path}\n", path.len())),
                    TreeChange::Written(e) => {
                        size += self.repo.blob_size(&e.oid)?;
                        h.update(format!("W {} {:?} {}:{}\n", e.oid, e.kind, e.path.len(), e.path));
                    }
                }
            }
        }
        Ok(any.then(|| (hex::encode(h.finalize()), size)))
    }
}

/// The commit a stage recorded for the image's mappings (werf's
/// `werf-git-<paramshash>-commit`; every local mapping records the same commit).
pub fn recorded_commit(state: &ImageState, mappings: &[Mapping]) -> Option<String> {
    let first = mappings.first()?;
    state.config.config.labels.as_ref()?.get(&commit_label(&first.paramshash)).cloned()
}

/// Whether a stage that recorded commit `recorded` may be reused at `head`: the commit
/// is a full id this repository has and (unless `check` is off) an ancestor of HEAD
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
    use super::AncestryCheck;

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
