//! Source paths, and the build context of werf's dev commit and of loose giterminism
//! against real repositories made with the `git` CLI.

use super::{BuildContext, clean};
use crate::git::{CommitInfo, Repo};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("running git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn write(dir: &Path, path: &str, content: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn dev(repo: &Repo) -> CommitInfo {
    CommitInfo { worktree: Some(Arc::new(repo.snapshot(&[]).unwrap())), ..repo.head_commit().unwrap() }
}

/// The same content gives the same checksum from the dev snapshot and from a commit,
/// and the snapshot's files are what is written out.
#[test]
fn dev_context_checksums_as_the_commit_of_the_same_content() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, ".dockerignore", "**/*.log\n");
    write(dir, "src/a.txt", "committed\n");
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--no-gpg-sign", "-m", "one"]);
    write(dir, "src/a.txt", "edited\n");
    write(dir, "src/b.txt", "untracked\n");
    write(dir, "src/c.log", "dockerignored\n");
    let repo = Repo::discover(dir).unwrap();
    let head = BuildContext::load(&repo, &repo.head_commit().unwrap(), "", &[], &[]).unwrap();
    let snapshot = BuildContext::load(&repo, &dev(&repo), "", &[], &[]).unwrap();
    assert_eq!(head.uncommitted, ["src/a.txt", "src/b.txt"]);
    assert!(snapshot.uncommitted.is_empty());
    let all = vec![String::new()];
    assert_ne!(head.checksum(&all), snapshot.checksum(&all));
    let out = tempfile::tempdir().unwrap();
    let written = snapshot.materialize(out.path()).unwrap();
    assert_eq!(std::fs::read_to_string(written.join("src/a.txt")).unwrap(), "edited\n");
    assert_eq!(std::fs::read_to_string(written.join("src/b.txt")).unwrap(), "untracked\n");
    assert!(!written.join("src/c.log").exists());
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--no-gpg-sign", "-m", "two"]);
    let committed = BuildContext::load(&repo, &repo.head_commit().unwrap(), "", &[], &[]).unwrap();
    assert_eq!(committed.checksum(&all), snapshot.checksum(&all));
}

/// Loose giterminism takes `contextAddFiles` without an allow-list; otherwise refused.
#[test]
fn loose_giterminism_lifts_the_context_add_files_allow_list() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "Dockerfile", "FROM scratch\n");
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--no-gpg-sign", "-m", "one"]);
    write(dir, "generated.txt", "made by CI\n");
    let repo = Repo::discover(dir).unwrap();
    let mut commit = repo.head_commit().unwrap();
    let add = ["generated.txt".to_string()];
    let err = BuildContext::load(&repo, &commit, "", &add, &[]).err().unwrap();
    assert!(format!("{err:#}").contains("config.dockerfile.allowContextAddFiles"), "{err:#}");
    commit.loose = true;
    let ctx = BuildContext::load(&repo, &commit, "", &add, &[]).unwrap();
    assert!(ctx.entries.iter().any(|e| e.path == "generated.txt"));
}

#[test]
fn cleans_sources() {
    assert_eq!(clean("./a/b/").unwrap(), "a/b");
    assert_eq!(clean("/a/../b").unwrap(), "b");
    assert_eq!(clean(".").unwrap(), "");
    assert!(clean("../x").is_err());
}

#[test]
fn tells_wildcards_as_buildkit() {
    assert!(BuildContext::is_wildcard("nomatch*"));
    assert!(BuildContext::is_wildcard("a/?.txt"));
    assert!(BuildContext::is_wildcard("[ab].txt"));
    assert!(!BuildContext::is_wildcard("missing.txt"));
    assert!(!BuildContext::is_wildcard("a\\*b"));
}
