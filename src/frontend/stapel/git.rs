//! Stapel `git` mappings, from the project's own repository or a remote one
//! ([`Source`], fetched by `remote.rs`): what each mapping takes from a commit, as werf
//! decides it.
//!
//! - [`Mapping::prepare`]: werf.yaml's mappings with werf's auto-excludes of overlapping
//!   mappings (`pkg/config/export_base.go`) and werf's `paramshash`, which names the
//!   stage labels `werf-git-<paramshash>-commit` and `-type`;
//! - [`PathFilter`]: `includePaths`/`excludePaths` and `stageDependencies` globs matched
//!   as werf's `pkg/path_matcher` matches them (a glob, or a directory it names, matches
//!   everything below);
//! - [`Mapping::entries`] and [`Mapping::changes`]: the files of a commit, and what
//!   changed between two commits, under `add` and through the filter;
//! - [`stage_dependencies`]: the checksum of the files a user stage depends on.
//!
//! Paths inside a mapping are relative to `add`; a mapping whose `add` is a file (werf's
//! `file` archive type) has one entry, with the empty path, written at `to` itself.

use crate::config::{GitMapping, StageDependencies};
use crate::git::{Repo, TreeChange, TreeEntry};
use anyhow::{Context, bail};
use sha2::{Digest as _, Sha256};

/// werf's full name of a mapping of the project's own repository: the repository's name
/// and the mapping's, both `own` (`GitMapping.GetFullName`, `gitLocalPathInit`).
pub const LOCAL_REPO_NAME: &str = "own_own";

/// Where mappings take their files from: the project's own repository, or the cache of
/// a remote one, at the commit they are built from (werf's latest commit of the mapping).
#[derive(Clone)]
pub struct Source {
    pub repo: Repo,
    /// The commit (full id) the mappings of this source are built from.
    pub head: String,
    /// werf's full name of the repository in `paramshash`: `own_own`, or `<id>_<id>` for a
    /// remote (`remote::repository_id`).
    pub full_name: String,
    /// werf's `branch`, `tag` and `commit` of the mappings (empty for the own
    /// repository; a source is one URL with one of them).
    pub refs: [String; 3],
    /// The repository as messages name it.
    pub shown: String,
}

/// One mapping, ready to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// werf.yaml line of the mapping.
    pub line: usize,
    /// The index of the mapping's [`Source`] in the image's sources.
    pub source: usize,
    /// `add` relative to the repository root (`""` for `/`).
    pub add: String,
    /// Absolute path in the image.
    pub to: String,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub filter: PathFilter,
    pub stage_dependencies: StageDependencies,
    /// werf's `GetParamshash`: sha256 of the mapping's parameters.
    pub paramshash: String,
    /// Whether `add` is a file in HEAD (werf's archive type `file`).
    pub is_file: bool,
}

/// Include and exclude globs, relative to `add`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathFilter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl PathFilter {
    /// werf's rule: included when there are no include globs or one matches, and no
    /// exclude glob matches.
    pub fn matches(&self, path: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|g| glob_covers(g, path)))
            && !self.exclude.iter().any(|g| glob_covers(g, path))
    }
}

/// werf's `isPathMatched`: the glob itself, the glob with trailing `*` and `/` trimmed
/// (a directory it names), or everything below that directory.
pub fn glob_covers(glob: &str, path: &str) -> bool {
    let glob = clean(glob);
    let trimmed = glob.trim_end_matches(['*', '/']);
    if trimmed.is_empty() {
        return true;
    }
    let m = |g: &str| crate::project::glob_match(g, path).unwrap_or(false);
    m(&glob) || m(trimmed) || m(&format!("{trimmed}/**/*"))
}

/// Go's `filepath.Clean` for a relative glob as werf formats it (`""` for `.` and `/`).
fn clean(path: &str) -> String {
    crate::project::join_rel("", path)
}

/// The labels werf writes per mapping on every git stage.
pub fn commit_label(paramshash: &str) -> String {
    format!("werf-git-{paramshash}-commit")
}

pub fn type_label(paramshash: &str) -> String {
    format!("werf-git-{paramshash}-type")
}

impl Mapping {
    /// The mappings of an image, with werf's auto-excludes, each checked against the
    /// commit of its source `sources[of[i]]` (`add` must exist there). Refuses
    /// overlapping mappings werf refuses ("Conflict between imports").
    pub fn prepare(sources: &[Source], of: &[usize], git: &[GitMapping]) -> anyhow::Result<Vec<Mapping>> {
        let mut filters: Vec<PathFilter> = git
            .iter()
            .map(|g| PathFilter { include: g.include_paths.clone(), exclude: g.exclude_paths.clone() })
            .collect();
        for i in 0..git.len() {
            for j in 0..git.len() {
                if i == j {
                    continue;
                }
                let other = (git[j].to.as_str(), &filters[j].clone());
                if !auto_exclude(&git[i].to, &mut filters[i], other) {
                    bail!(
                        "werf.yaml:{}: git: conflict between the mappings to {} and to {} (werf.yaml:{}): \
                         one would overwrite the other; narrow them with includePaths/excludePaths",
                        git[i].line,
                        git[i].to,
                        git[j].to,
                        git[j].line
                    );
                }
            }
        }
        git.iter()
            .zip(filters)
            .zip(of)
            .map(|((g, filter), &source)| {
                let src = &sources[source];
                let add = clean(g.add.trim_start_matches('/'));
                let is_file = match src.repo.is_dir(&src.head, &add)? {
                    Some(dir) => !dir,
                    None => bail!(
                        "werf.yaml:{}: git: add {} does not exist in commit {} of {}",
                        g.line,
                        g.add,
                        src.head,
                        src.shown
                    ),
                };
                let paramshash = paramshash(
                    &src.full_name,
                    &g.to,
                    &g.add,
                    &filter,
                    g.owner.as_deref(),
                    g.group.as_deref(),
                    &src.refs,
                );
                Ok(Mapping {
                    line: g.line,
                    source,
                    add,
                    to: g.to.clone(),
                    owner: g.owner.clone(),
                    group: g.group.clone(),
                    filter,
                    stage_dependencies: g.stage_dependencies.clone(),
                    paramshash,
                    is_file,
                })
            })
            .collect()
    }

    /// The directory of the repository that is diffed and listed, and for a file
    /// mapping the file's name in it.
    fn scope(&self) -> (&str, Option<&str>) {
        if !self.is_file {
            return (&self.add, None);
        }
        match self.add.rsplit_once('/') {
            Some((dir, name)) => (dir, Some(name)),
            None => ("", Some(&self.add)),
        }
    }

    /// The mapping's files in commit `rev` (paths relative to `add`).
    pub fn entries(&self, repo: &Repo, rev: &str) -> anyhow::Result<Vec<TreeEntry>> {
        let what = || format!("listing {} in commit {rev}", self.shown());
        if self.is_file {
            let entry = repo.entry(rev, &self.add).with_context(what)?;
            return Ok(entry.into_iter().map(|e| TreeEntry { path: String::new(), ..e }).collect());
        }
        let listing = repo.tree(rev, &self.add).with_context(what)?;
        Ok(listing.into_iter().filter(|e| self.filter.matches(&e.path)).collect())
    }

    /// What changed in the mapping from commit `from` to commit `to` (deletions first).
    pub fn changes(&self, repo: &Repo, from: &str, to: &str) -> anyhow::Result<Vec<TreeChange>> {
        let (dir, file) = self.scope();
        let changes =
            repo.diff(from, to, dir).with_context(|| format!("diffing {} from {from} to {to}", self.shown()))?;
        Ok(changes
            .into_iter()
            .filter_map(|c| {
                let path = match &c {
                    TreeChange::Deleted(p) => p,
                    TreeChange::Written(e) => &e.path,
                };
                match file {
                    Some(name) if path == name => Some(match c {
                        TreeChange::Deleted(_) => TreeChange::Deleted(String::new()),
                        TreeChange::Written(e) => TreeChange::Written(TreeEntry { path: String::new(), ..e }),
                    }),
                    Some(_) => None,
                    None => self.filter.matches(path).then_some(c),
                }
            })
            .collect())
    }

    /// Where a mapping's entry goes in the image.
    pub fn dest(&self, rel: &str) -> String {
        if rel.is_empty() { self.to.clone() } else { format!("{}/{rel}", self.to.trim_end_matches('/')) }
    }

    pub fn archive_type(&self) -> &'static str {
        if self.is_file { "file" } else { "directory" }
    }

    fn shown(&self) -> String {
        format!("git add /{} (werf.yaml:{})", self.add, self.line)
    }
}

/// werf's `AutoExcludeExportAndCheck` for mapping `to` (its filter updated) against
/// `other`: when `other` writes below `to`, what it writes is excluded here. `false`
/// when the two cannot be told apart (werf's conflict).
fn auto_exclude(to: &str, filter: &mut PathFilter, (other_to, other): (&str, &PathFilter)) -> bool {
    if !is_sub_path(to, other_to) {
        return true;
    }
    let mine = export_paths(to, &filter.include);
    let theirs = export_paths(other_to, &other.include);
    if mine.is_empty() && theirs.is_empty() {
        return false;
    }
    let excluded = export_paths(to, &filter.exclude);
    for p in theirs {
        if mine.contains(&p) {
            return false;
        }
        if mine.iter().chain(&excluded).any(|m| is_sub_path(&p, m)) {
            continue;
        }
        let base = to.trim_start_matches('/');
        let rel =
            if base.is_empty() { p.clone() } else { p.strip_prefix(&format!("{base}/")).unwrap_or(&p).to_string() };
        filter.exclude.push(rel);
    }
    true
}

/// werf's `GetIncludePathsForAutoExclude`/`GetExcludePathsForAutoExclude`: globs as
/// paths in the image (without the leading `/`); no include globs means `to` itself.
fn export_paths(to: &str, globs: &[String]) -> Vec<String> {
    let prefix = to.trim_start_matches('/');
    if globs.is_empty() {
        return if prefix.is_empty() { Vec::new() } else { vec![prefix.to_string()] };
    }
    globs.iter().map(|g| crate::project::join_rel(prefix, g)).collect()
}

/// werf's `isSubPath`: `path` is `sub` or below it.
fn is_sub_path(sub: &str, path: &str) -> bool {
    path == sub || path.starts_with(&format!("{}/", sub.trim_end_matches('/')))
}

/// werf's `GetParamshash`: the parameters joined by `:::`, list elements back to back
/// (errata 10), then branch, tag and commit (empty for the own repository).
fn paramshash(
    full_name: &str,
    to: &str,
    add: &str,
    filter: &PathFilter,
    owner: Option<&str>,
    group: Option<&str>,
    refs: &[String; 3],
) -> String {
    let mut h = Sha256::new();
    let parts = [full_name, to, add];
    for p in parts {
        h.update(p);
        h.update(":::");
    }
    for list in [&filter.include, &filter.exclude] {
        for g in list {
            h.update(g);
        }
        h.update(":::");
    }
    for p in [owner.unwrap_or(""), group.unwrap_or("")] {
        h.update(p);
        h.update(":::");
    }
    h.update(format!("{}:::{}:::{}", refs[0], refs[1], refs[2]));
    hex::encode(h.finalize())
}

/// The checksum of what user stage `stage` (`install`, `beforeSetup`, `setup`) depends
/// on, each mapping at its source's commit: per mapping with globs for it, every
/// matching file's path, kind and blob id, sorted by path (werf: the ls-tree checksum of
/// the globs). `None` when no mapping names a glob for the stage.
pub fn stage_dependencies(sources: &[Source], mappings: &[Mapping], stage: &str) -> anyhow::Result<Option<String>> {
    let mut h = Sha256::new();
    let mut any = false;
    for m in mappings {
        let globs = match stage {
            "install" => &m.stage_dependencies.install,
            "beforeSetup" => &m.stage_dependencies.before_setup,
            "setup" => &m.stage_dependencies.setup,
            _ => continue,
        };
        if globs.is_empty() {
            continue;
        }
        any = true;
        h.update(format!("{}:{}\n", m.paramshash, globs.len()));
        let src = &sources[m.source];
        for e in m.entries(&src.repo, &src.head)? {
            if globs.iter().any(|g| glob_covers(g, &e.path)) {
                h.update(format!("{} {:?} {}\n", e.oid, e.kind, e.path.len()));
                h.update(&e.path);
                h.update("\n");
            }
        }
    }
    Ok(any.then(|| hex::encode(h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> PathFilter {
        PathFilter {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// werf's `pkg/path_matcher` rules, case by case.
    #[test]
    fn include_and_exclude_match_as_werf() {
        let cases: &[(&[&str], &[&str], &str, bool)] = &[
            (&[], &[], "a/b.txt", true),
            (&["src"], &[], "src/a/b.go", true),
            (&["src"], &[], "srcx/a.go", false),
            (&["src/"], &[], "src/a.go", true),
            (&["*.go"], &[], "main.go", true),
            (&["*.go"], &[], "pkg/main.go", false),
            (&["**/*.go"], &[], "pkg/x/main.go", true),
            (&["src/**/*"], &[], "src/deep/er/f", true),
            (&["."], &[], "anything/at/all", true),
            (&[], &["*.md"], "README.md", false),
            (&[], &["docs"], "docs/x/y.md", false),
            (&[], &["docs"], "src/docs.go", true),
            (&["src"], &["src/gen"], "src/gen/a.go", false),
            (&["src"], &["src/gen"], "src/main.go", true),
            (&["a?c"], &[], "abc", true),
        ];
        for (inc, exc, path, want) in cases {
            assert_eq!(filter(inc, exc).matches(path), *want, "include {inc:?} exclude {exc:?} path {path}");
        }
    }

    /// werf's `AutoExcludeExportAndCheck` cases (`pkg/config/export_base_test.go`).
    #[test]
    fn overlapping_mappings_exclude_each_other() {
        let mut root = PathFilter::default();
        assert!(auto_exclude("/app", &mut root, ("/app/sub", &PathFilter::default())));
        assert_eq!(root.exclude, ["sub"]);
        // Not below: nothing to do.
        let mut f = PathFilter::default();
        assert!(auto_exclude("/app", &mut f, ("/other", &PathFilter::default())));
        assert!(f.exclude.is_empty());
        // The same destination without includes: a conflict.
        assert!(!auto_exclude("/app", &mut PathFilter::default(), ("/app", &PathFilter::default())));
        // Same `to`, disjoint includes: the other's include is excluded here.
        let mut a = filter(&["a"], &[]);
        assert!(auto_exclude("/app", &mut a, ("/app", &filter(&["b"], &[]))));
        assert_eq!(a.exclude, ["b"]);
        // Already excluded: nothing added.
        let mut a = filter(&[], &["b"]);
        assert!(auto_exclude("/", &mut a, ("/b", &PathFilter::default())));
        assert_eq!(a.exclude, ["b"]);
        // The same include twice: a conflict.
        assert!(!auto_exclude("/app", &mut filter(&["a"], &[]), ("/app", &filter(&["a"], &[]))));
    }

    #[test]
    fn paramshash_covers_every_parameter() {
        let none = [String::new(), String::new(), String::new()];
        let p = |to, add, f: &PathFilter, owner, group| paramshash(LOCAL_REPO_NAME, to, add, f, owner, group, &none);
        let base = p("/app", "/", &PathFilter::default(), None, None);
        assert_eq!(base.len(), 64);
        assert_ne!(base, p("/app", "/src", &PathFilter::default(), None, None));
        assert_ne!(base, p("/app2", "/", &PathFilter::default(), None, None));
        assert_ne!(base, p("/app", "/", &filter(&["a"], &[]), None, None));
        assert_ne!(base, p("/app", "/", &filter(&[], &["a"]), None, None));
        assert_ne!(base, p("/app", "/", &PathFilter::default(), Some("app"), None));
        assert_ne!(base, p("/app", "/", &PathFilter::default(), None, Some("app")));
        // A remote's: its full name and ref; werf's bytes, written out.
        let tag = [String::new(), "v1".to_string(), String::new()];
        let remote = paramshash("x/r_x/r", "/app", "/", &filter(&["a", "b"], &[]), None, None, &tag);
        let bytes = format!("x/r_x/r:::/app:::/:::ab{}v1:::", ":::".repeat(5));
        assert_eq!(remote, hex::encode(Sha256::digest(bytes)));
        assert_ne!(remote, paramshash("x/r_x/r", "/app", "/", &filter(&["a", "b"], &[]), None, None, &none));
        assert_eq!(commit_label(&base), format!("werf-git-{base}-commit"));
    }
}
