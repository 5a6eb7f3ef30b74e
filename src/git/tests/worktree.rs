//! `Repo::snapshot` (werf's dev commit, in memory) and the reads that go with it: blob
//! ids equal `git hash-object`, the tree equals what `git add -A` would commit, ignored
//! files and `--dev-ignore` rules, symlinks kept as data, changed files refused.

use std::fs;
use std::sync::Arc;

use super::{EntryKind, GitError, dirty};
use crate::git::worktree::dev_ignore_matches;
use crate::git::{CommitInfo, Repo, TreeEntry};

fn dev(repo: &Repo, ignore: &[&str]) -> CommitInfo {
    let ignore: Vec<String> = ignore.iter().map(|s| s.to_string()).collect();
    CommitInfo { worktree: Some(Arc::new(repo.snapshot(&ignore).unwrap())), ..repo.head_commit().unwrap() }
}

fn paths(entries: &[TreeEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.path.as_str()).collect()
}

/// A working tree with every kind of change: the snapshot must be the tree git commits.
#[test]
fn the_snapshot_is_the_tree_git_add_all_would_commit() {
    let t = dirty();
    t.write("mod.txt", "v2\n");
    t.write("new.txt", "new\n");
    t.write("deep/er/new.bin", "\u{0}\u{1}binary\n");
    t.write("staged.txt", "staged\n");
    t.git(&["add", "staged.txt"]);
    t.write("forced.log", "forced\n");
    t.git(&["add", "-f", "forced.log"]);
    t.write("ignored.log", "ignored\n");
    t.write("build/out.txt", "ignored dir\n");
    t.write("secret.txt", "excluded by .git/info/exclude\n");
    t.write("vendor/lib.txt", "tracked, in a now ignored dir, changed\n");
    t.chmod("tool.sh", 0o755);
    fs::remove_file(t.path("keep.txt")).unwrap();
    t.symlink("newlink", "mod.txt");
    let repo = t.open();
    let snapshot = repo.tree_at(&dev(&repo, &[]), "").unwrap();
    // What `git add -A` and a commit make of the same working tree.
    t.commit_all("everything");
    let committed = repo.tree(&t.git(&["rev-parse", "HEAD"]), "").unwrap();
    assert_eq!(snapshot, committed);
    assert!(!paths(&snapshot).contains(&"ignored.log") && !paths(&snapshot).contains(&"build/out.txt"));
    assert!(!paths(&snapshot).contains(&"secret.txt") && !paths(&snapshot).contains(&"keep.txt"));
    let tool = snapshot.iter().find(|e| e.path == "tool.sh").unwrap();
    assert_eq!(tool.kind, EntryKind::Executable);
}

#[test]
fn blob_ids_are_git_hash_object() {
    let t = dirty();
    t.write("mod.txt", "changed\n");
    t.write("untracked.txt", "untracked\n");
    t.symlink("out", "/etc/passwd");
    let repo = t.open();
    let commit = dev(&repo, &[]);
    let entries = repo.tree_at(&commit, "").unwrap();
    for path in ["mod.txt", "untracked.txt"] {
        let e = entries.iter().find(|e| e.path == path).unwrap();
        assert_eq!(e.oid, t.git(&["hash-object", path]), "{path}");
    }
    // A symlink's blob is its target text.
    let link = entries.iter().find(|e| e.path == "out").unwrap();
    assert_eq!(link.kind, EntryKind::Symlink);
    let target = t.path("target.txt");
    fs::write(&target, "/etc/passwd").unwrap();
    assert_eq!(link.oid, t.git(&["hash-object", target.to_str().unwrap()]));
}

#[test]
fn a_symlink_pointing_outside_is_data_never_followed() {
    let t = dirty();
    t.symlink("loot", "/etc/passwd");
    t.symlink("up", "../../outside");
    let repo = t.open();
    let commit = dev(&repo, &[]);
    let mut out = Vec::new();
    let loot = repo.tree_at(&commit, "").unwrap().into_iter().find(|e| e.path == "loot").unwrap();
    repo.copy_entry(&commit, &loot.oid, &mut out).unwrap();
    assert_eq!(out, b"/etc/passwd");
    assert_eq!(repo.symlink_target_at(&commit, &loot.oid).unwrap().unwrap(), b"/etc/passwd");
    for path in ["loot", "up"] {
        let err = repo.read_at(&commit, path).unwrap_err();
        assert!(matches!(err, GitError::SymlinkOutsideRepo { .. }), "{path}: {err}");
    }
    // A symlink inside is followed within the snapshot, as in a commit.
    t.write("sub/in.txt", "new content\n");
    let commit = dev(&repo, &[]);
    assert_eq!(repo.read_at(&commit, "sub/link").unwrap().unwrap(), b"new content\n");
}

#[test]
fn a_symlinked_directory_is_not_entered() {
    let t = dirty();
    let outside = t._tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("host.txt"), "host\n").unwrap();
    t.symlink("dirlink", outside.to_str().unwrap());
    let repo = t.open();
    let entries = repo.tree_at(&dev(&repo, &[]), "").unwrap();
    assert!(entries.iter().any(|e| e.path == "dirlink" && e.kind == EntryKind::Symlink));
    assert!(!entries.iter().any(|e| e.path.starts_with("dirlink/")));
}

#[test]
fn dev_ignore_rules_keep_heads_version() {
    let t = dirty();
    t.write("mod.txt", "v2\n");
    t.write("sub/in.txt", "changed\n");
    t.write("docs/new.md", "untracked\n");
    t.write("notes.md", "untracked\n");
    let repo = t.open();
    let head = repo.head_commit().unwrap();
    let commit = dev(&repo, &["mod.txt", "sub", "*.md"]);
    let entries = repo.tree_at(&commit, "").unwrap();
    let head_entries = repo.tree(&head.id, "").unwrap();
    for path in ["mod.txt", "sub/in.txt"] {
        let want = head_entries.iter().find(|e| e.path == path).unwrap();
        assert_eq!(entries.iter().find(|e| e.path == path), Some(want), "{path}");
    }
    assert!(!paths(&entries).contains(&"docs/new.md") && !paths(&entries).contains(&"notes.md"));
    assert_eq!(repo.read_at(&commit, "mod.txt").unwrap().unwrap(), b"v1\n");
}

#[test]
fn dev_ignore_rules_match_as_git_pathspecs() {
    let cases = [
        ("docs", "docs/a.md", true),
        ("docs/", "docs/a/b.md", true),
        ("docs", "docsx/a.md", false),
        ("*.md", "a/b/c.md", true),
        ("*_test.go", "pkg/x_test.go", true),
        ("pkg/*.go", "pkg/sub/x.go", true),
        ("a?c", "abc", true),
        ("a?c", "abcd", false),
        ("[ab].txt", "b.txt", true),
        ("./x", "x", true),
    ];
    for (rule, path, want) in cases {
        assert_eq!(dev_ignore_matches(rule, path), want, "{rule} {path}");
    }
}

#[test]
fn a_file_changed_after_the_snapshot_is_refused() {
    let t = dirty();
    t.write("mod.txt", "v2\n");
    let repo = t.open();
    let commit = dev(&repo, &[]);
    let e = repo.tree_at(&commit, "").unwrap().into_iter().find(|e| e.path == "mod.txt").unwrap();
    t.write("mod.txt", "v3\n");
    let err = repo.copy_entry(&commit, &e.oid, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, GitError::WorktreeChanged { .. }), "{err}");
}

#[test]
fn subtrees_and_files_of_the_snapshot() {
    let t = dirty();
    t.write("sub/extra.txt", "extra\n");
    let repo = t.open();
    let commit = dev(&repo, &[]);
    assert_eq!(paths(&repo.tree_at(&commit, "sub").unwrap()), ["extra.txt", "in.txt", "link"]);
    assert!(matches!(repo.tree_at(&commit, "nope").unwrap_err(), GitError::PathNotFound { .. }));
    assert!(matches!(repo.tree_at(&commit, "mod.txt").unwrap_err(), GitError::NotADirectory { .. }));
    assert!(matches!(repo.read_at(&commit, "sub").unwrap_err(), GitError::NotAFile { .. }));
    assert_eq!(repo.read_at(&commit, "sub/extra.txt").unwrap().unwrap(), b"extra\n");
    assert_eq!(repo.read_at(&commit, "missing").unwrap(), None);
}

#[test]
fn worktree_files_are_read_beneath_the_root() {
    let t = dirty();
    t.write("new.txt", "uncommitted\n");
    t.symlink("passwd", "/etc/passwd");
    t.symlink("inside", "new.txt");
    let repo = t.open();
    assert_eq!(repo.read_worktree_file("new.txt").unwrap().unwrap(), b"uncommitted\n");
    assert_eq!(repo.read_worktree_file("inside").unwrap().unwrap(), b"uncommitted\n");
    assert_eq!(repo.read_worktree_file("missing.txt").unwrap(), None);
    let err = repo.read_worktree_file("passwd").unwrap_err();
    assert!(matches!(err, GitError::WorktreeEscape { .. }), "{err}");
    assert!(repo.read_worktree_file("../x").is_err());
}

/// A measurement, as `five_thousand_files_are_quick`: 5000 committed files (the stat
/// cache answers, none is read) and 5000 untracked ones (each hashed).
#[test]
#[ignore = "slow set-up; run with --ignored --nocapture to measure"]
fn five_thousand_files_snapshot_quickly() {
    let t = super::TestRepo::new();
    for i in 0..5000 {
        t.write(&format!("d{}/sub{}/file{i}.txt", i % 50, i % 7), &format!("content {i}\n"));
    }
    t.commit_all("many");
    for i in 0..5000 {
        t.write(&format!("new{}/file{i}.txt", i % 50), &format!("new {i}\n"));
    }
    let repo = t.open();
    let start = std::time::Instant::now();
    let snapshot = repo.snapshot(&[]).unwrap();
    let took = start.elapsed();
    let commit = CommitInfo { worktree: Some(Arc::new(snapshot)), ..repo.head_commit().unwrap() };
    assert_eq!(repo.tree_at(&commit, "").unwrap().len(), 10_000);
    eprintln!("snapshot of 5000 committed + 5000 untracked files: {took:?}");
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
}

/// Loose giterminism lists the filesystem: ignored files too, never `.git`, symlinks
/// listed and not entered.
#[test]
fn worktree_files_list_the_filesystem() {
    let t = dirty();
    t.write("build/out.txt", "ignored\n");
    t.write("sub/deeper/new.txt", "untracked\n");
    let outside = t._tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("host.txt"), "host\n").unwrap();
    t.symlink("sub/dirlink", outside.to_str().unwrap());
    let repo = t.open();
    let all = repo.worktree_files("").unwrap();
    assert!(all.contains(&"build/out.txt".to_string()) && all.contains(&"vendor/lib.txt".to_string()));
    assert!(!all.iter().any(|p| p.starts_with(".git/")));
    assert_eq!(repo.worktree_files("sub").unwrap(), ["deeper/new.txt", "dirlink", "in.txt", "link"]);
    assert_eq!(repo.worktree_files("nope").unwrap(), Vec::<String>::new());
    assert_eq!(repo.worktree_files("mod.txt").unwrap(), Vec::<String>::new());
    assert!(repo.worktree_files("sub/dirlink").is_err());
}
