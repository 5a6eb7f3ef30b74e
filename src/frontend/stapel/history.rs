//! What the planner of an image with git mappings asks ([`GitHistory`]): the commit a
//! stored git stage recorded, and whether the mapped files changed since a commit.
//!
//! Stage selection (werf's `stage/base.go`): a git stage is reused only when the commit
//! it recorded is an ancestor of HEAD ([`reusable`]). The engine's lookup returns one
//! stage per digest, so the planner steps past another branch's stage to a digest of
//! its own (`plan::settle`); once the engine hands a per-stage `Selector` down to the
//! storage, [`reusable`] is the check to run on each candidate instead
//! (docs/ARCHITECTURE.md §11).

use super::git::{Mapping, commit_label};
use super::plan::{GitHistory, Recorded};
use crate::engine::stages::Stages;
use crate::engine::state::ImageState;
use crate::git::{Repo, TreeChange};
use sha2::{Digest as _, Sha256};

/// An image's local mappings in the repository at HEAD, and the stage storage.
pub struct GitStages<'a> {
    pub repo: &'a Repo,
    pub head: &'a str,
    pub mappings: &'a [Mapping],
    pub stages: &'a Stages<'a>,
}

impl GitHistory for GitStages<'_> {
    fn recorded(&self, digest: &str) -> anyhow::Result<Recorded> {
        let Some(found) = self.stages.lookup(digest)? else { return Ok(Recorded::Missing) };
        let commit = recorded_commit(&found.state, self.mappings).unwrap_or_default();
        Ok(if reusable(self.repo, &commit, self.head) {
            Recorded::Reusable(commit)
        } else {
            Recorded::Unusable(commit)
        })
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
/// is a full id this repository has and an ancestor of HEAD (werf's ancestry check).
pub fn reusable(repo: &Repo, recorded: &str, head: &str) -> bool {
    recorded.len() == 40
        && recorded.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && repo.is_ancestor(recorded, head).unwrap_or(false)
}
