//! Tests against real repositories made with the `git` CLI in temporary directories.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::{EntryKind, GitError, Repo};

/// A scratch repository driven by the `git` CLI, isolated from the user's git config.
/// Run the `git` CLI in `dir` with a fixed identity and no user or system config;
/// returns its trimmed stdout. Shared by every test that makes a real repository.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
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
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

struct TestRepo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl TestRepo {
    fn new() -> TestRepo {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repo");
        fs::create_dir(&root).unwrap();
        let repo = TestRepo { _tmp: tmp, root };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    fn git(&self, args: &[&str]) -> String {
        git(&self.root, args)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn write(&self, rel: &str, content: &str) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn chmod(&self, rel: &str, mode: u32) {
        fs::set_permissions(self.path(rel), fs::Permissions::from_mode(mode)).unwrap();
    }

    fn symlink(&self, rel: &str, target: &str) {
        symlink(target, self.path(rel)).unwrap();
    }

    fn commit_all(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--no-gpg-sign", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    fn open(&self) -> Repo {
        Repo::discover(&self.root).unwrap()
    }
}

/// A commit with a bit of everything a context can hold.
fn sample() -> TestRepo {
    let t = TestRepo::new();
    t.write("a.txt", "hello\n");
    t.write("B.txt", "upper\n");
    t.write("run.sh", "#!/bin/sh\necho hi\n");
    t.chmod("run.sh", 0o755);
    t.symlink("link", "a.txt");
    t.write("dir/b.txt", "bee\n");
    t.write("dir/nested/deep.txt", "deep\n");
    t.write("dir.txt", "not a dir\n");
    t.write("a0", "after a/\n");
    t.write("a/x", "inside a\n");
    t.commit_all("sample");
    t
}

fn kinds(entries: &[super::TreeEntry]) -> Vec<(&str, EntryKind)> {
    entries.iter().map(|e| (e.path.as_str(), e.kind)).collect()
}

#[test]
fn discover_from_a_subdirectory() {
    let t = sample();
    let repo = Repo::discover(&t.path("dir/nested")).unwrap();
    assert_eq!(repo.workdir(), fs::canonicalize(&t.root).unwrap());
    assert_eq!(repo.rel_path(&t.path("dir/nested")).unwrap(), "dir/nested");
    assert_eq!(repo.rel_path(&t.root).unwrap(), "");
    // Through a symlinked spelling of the same directory.
    let alias = t._tmp.path().join("alias");
    symlink(&t.root, &alias).unwrap();
    let via_alias = Repo::discover(&alias.join("dir")).unwrap();
    assert_eq!(via_alias.workdir(), repo.workdir());
    assert_eq!(repo.rel_path(&alias.join("dir")).unwrap(), "dir");
    let outside = repo.rel_path(t._tmp.path()).unwrap_err();
    assert!(matches!(outside, GitError::OutsideWorktree { .. }), "{outside}");
}

#[test]
fn head_commit_is_rev_parse_head() {
    let t = sample();
    let info = t.open().head_commit().unwrap();
    assert_eq!(info.id, t.git(&["rev-parse", "HEAD"]));
    let time: i64 = t.git(&["log", "-1", "--format=%ct"]).parse().unwrap();
    assert_eq!(info.time_unix, time);
}

#[test]
fn tree_of_root_is_sorted_with_kinds_and_ids() {
    let t = sample();
    let repo = t.open();
    let head = repo.head_commit().unwrap().id;
    let entries = repo.tree(&head, "").unwrap();
    assert_eq!(
        kinds(&entries),
        vec![
            ("B.txt", EntryKind::File),
            ("a.txt", EntryKind::File),
            ("a/x", EntryKind::File),
            ("a0", EntryKind::File),
            ("dir.txt", EntryKind::File),
            ("dir/b.txt", EntryKind::File),
            ("dir/nested/deep.txt", EntryKind::File),
            ("link", EntryKind::Symlink),
            ("run.sh", EntryKind::Executable),
        ]
    );
    for entry in &entries {
        let expected = t.git(&["rev-parse", &format!("HEAD:{}", entry.path)]);
        assert_eq!(entry.oid, expected, "{}", entry.path);
    }
}

#[test]
fn tree_of_subdir_is_relative_to_it() {
    let t = sample();
    let repo = t.open();
    for subdir in ["dir", "dir/", "./dir", "a/../dir"] {
        let entries = repo.tree("HEAD", subdir).unwrap();
        assert_eq!(kinds(&entries), vec![("b.txt", EntryKind::File), ("nested/deep.txt", EntryKind::File)], "{subdir}");
    }
    let err = repo.tree("HEAD", "nope").unwrap_err();
    assert!(matches!(err, GitError::PathNotFound { .. }), "{err}");
    assert!(err.to_string().contains("\"nope\""), "{err}");
    let err = repo.tree("HEAD", "a.txt").unwrap_err();
    assert!(matches!(err, GitError::NotADirectory { .. }), "{err}");
    let err = repo.tree("HEAD", "../x").unwrap_err();
    assert!(matches!(err, GitError::BadRelativePath { .. }), "{err}");
}

#[test]
fn blobs_hold_content_and_symlink_targets() {
    let t = sample();
    let repo = t.open();
    let entries = repo.tree("HEAD", "").unwrap();
    let by_path = |p: &str| entries.iter().find(|e| e.path == p).unwrap().oid.clone();
    assert_eq!(repo.blob(&by_path("a.txt")).unwrap(), b"hello\n");
    assert_eq!(repo.blob(&by_path("run.sh")).unwrap(), b"#!/bin/sh\necho hi\n");
    assert_eq!(repo.blob(&by_path("link")).unwrap(), b"a.txt");
    let tree_id = t.git(&["rev-parse", "HEAD:dir"]);
    let err = repo.blob(&tree_id).unwrap_err();
    assert!(matches!(err, GitError::WrongObjectKind { .. }), "{err}");
    let err = repo.blob("xyz").unwrap_err();
    assert!(matches!(err, GitError::BadObjectId { .. }), "{err}");
    let err = repo.blob(&"0".repeat(40)).unwrap_err();
    assert!(matches!(err, GitError::Object { .. }), "{err}");
}

#[test]
fn read_file_reads_the_commit_not_the_working_tree() {
    let t = sample();
    let first = t.git(&["rev-parse", "HEAD"]);
    t.write("dir/b.txt", "changed\n");
    t.commit_all("second");
    t.write("dir/b.txt", "uncommitted\n");
    t.write("new.txt", "uncommitted\n");
    let repo = t.open();
    assert_eq!(repo.read_file("HEAD", "dir/b.txt").unwrap().unwrap(), b"changed\n");
    assert_eq!(repo.read_file(&first, "dir/b.txt").unwrap().unwrap(), b"bee\n");
    assert_eq!(repo.read_file("HEAD", "new.txt").unwrap(), None);
    assert_eq!(repo.read_file("HEAD", "dir/missing").unwrap(), None);
    assert_eq!(repo.read_file("HEAD", "a.txt/below").unwrap(), None);
    let err = repo.read_file("HEAD", "dir").unwrap_err();
    assert!(matches!(err, GitError::NotAFile { .. }), "{err}");
    let err = repo.read_file("no-such-branch", "a.txt").unwrap_err();
    assert!(matches!(err, GitError::UnknownRevision { .. }), "{err}");
}

#[test]
fn read_file_follows_symlinks_inside_the_commit() {
    let t = sample();
    t.symlink("ldir", "dir");
    t.symlink("dir/up", "../a.txt");
    t.symlink("chain", "link");
    t.symlink("out", "../outside.txt");
    t.symlink("abs", "/etc/passwd");
    t.symlink("loop1", "loop2");
    t.symlink("loop2", "loop1");
    t.commit_all("links");
    let repo = t.open();
    let read = |p: &str| repo.read_file("HEAD", p);
    assert_eq!(read("link").unwrap().unwrap(), b"hello\n");
    assert_eq!(read("chain").unwrap().unwrap(), b"hello\n");
    assert_eq!(read("ldir/b.txt").unwrap().unwrap(), b"bee\n");
    assert_eq!(read("ldir/up").unwrap().unwrap(), b"hello\n");
    assert_eq!(read("ldir/missing").unwrap(), None);
    for outside in ["out", "abs"] {
        let err = read(outside).unwrap_err();
        assert!(matches!(err, GitError::SymlinkOutsideRepo { .. }), "{err}");
    }
    let err = read("loop1").unwrap_err();
    assert!(matches!(err, GitError::SymlinkLoop { .. }), "{err}");
}

/// A committed repo with ignore rules, then every kind of working-tree change.
fn dirty() -> TestRepo {
    let t = TestRepo::new();
    t.write(".gitignore", "*.log\nbuild/\n");
    t.write("keep.txt", "keep\n");
    t.write("mod.txt", "v1\n");
    t.write("touched.txt", "same\n");
    t.write("tool.sh", "#!/bin/sh\n");
    t.write("vendor/lib.txt", "tracked inside an ignored dir\n");
    t.write("sub/in.txt", "in\n");
    t.symlink("sub/link", "in.txt");
    t.write(".git/info/exclude", "secret.txt\n");
    t.commit_all("base");
    t.write(".gitignore", "*.log\nbuild/\nvendor/\n");
    t.git(&["commit", "-q", "--no-gpg-sign", "-am", "ignore vendor"]);
    t
}

#[test]
fn uncommitted_is_empty_for_a_clean_tree() {
    let t = dirty();
    assert_eq!(t.open().uncommitted("").unwrap(), Vec::<String>::new());
}

#[test]
fn uncommitted_reports_modified_untracked_and_staged_files() {
    let t = dirty();
    t.write("mod.txt", "v2\n"); // modified, not staged
    t.write("new.txt", "new\n"); // untracked
    t.write("staged.txt", "staged\n");
    t.git(&["add", "staged.txt"]); // staged, not committed
    t.write("forced.log", "forced\n");
    t.git(&["add", "-f", "forced.log"]); // ignored but staged: git tracks it
    t.chmod("tool.sh", 0o755); // mode change only
    t.write("vendor/lib.txt", "changed\n"); // tracked file in an ignored dir
    t.write("vendor/extra.txt", "ignored\n"); // untracked in an ignored dir
    fs::remove_file(t.path("sub/link")).unwrap();
    t.write("sub/link", "in.txt"); // symlink replaced by a file with the same bytes
    t.write("sub/new.txt", "new\n");
    t.write("debug.log", "ignored\n");
    t.write("build/out.bin", "ignored\n");
    t.write("secret.txt", "excluded by .git/info/exclude\n");
    fs::remove_file(t.path("keep.txt")).unwrap(); // deleted: the commit still has it
    // Same content, new mtime: must be hashed and found equal.
    std::thread::sleep(std::time::Duration::from_millis(20));
    t.write("touched.txt", "same\n");
    t.write("nested/.git/HEAD", "ref: refs/heads/main\n"); // a repository inside ours

    let repo = t.open();
    assert_eq!(
        repo.uncommitted("").unwrap(),
        vec![
            "forced.log",
            "mod.txt",
            "nested/",
            "new.txt",
            "staged.txt",
            "sub/link",
            "sub/new.txt",
            "tool.sh",
            "vendor/lib.txt",
        ]
    );
    assert_eq!(repo.uncommitted("sub").unwrap(), vec!["link", "new.txt"]);
    assert_eq!(repo.uncommitted("vendor").unwrap(), vec!["lib.txt"]);
    assert_eq!(repo.uncommitted("build").unwrap(), Vec::<String>::new());
    assert_eq!(repo.uncommitted("missing").unwrap(), Vec::<String>::new());
    // One path, the same answers without the walk.
    for (path, differs) in [
        ("mod.txt", true),
        ("tool.sh", true),
        ("sub/link", true),
        ("vendor/lib.txt", true),
        ("touched.txt", false),
        ("keep.txt", false),
        ("sub/in.txt", false),
        ("new.txt", true),
        ("missing.txt", false),
    ] {
        assert_eq!(repo.file_uncommitted(path).unwrap(), differs, "{path}");
    }
}

#[test]
fn uncommitted_ignores_a_staged_change_that_was_reverted() {
    let t = dirty();
    t.write("mod.txt", "v2\n");
    t.git(&["add", "mod.txt"]);
    t.write("mod.txt", "v1\n");
    // git status shows it staged, but the working tree equals HEAD: same build.
    assert_eq!(t.open().uncommitted("").unwrap(), Vec::<String>::new());
}

#[test]
fn uncommitted_in_a_new_untracked_directory() {
    let t = dirty();
    t.write("fresh/a.txt", "a\n");
    t.write("fresh/b.log", "ignored\n");
    let repo = t.open();
    assert_eq!(repo.uncommitted("fresh").unwrap(), vec!["a.txt"]);
    assert_eq!(repo.uncommitted("").unwrap(), vec!["fresh/a.txt"]);
}

#[test]
fn is_ancestor_follows_history() {
    let t = TestRepo::new();
    t.write("f", "1");
    let c1 = t.commit_all("one");
    t.write("f", "2");
    let c2 = t.commit_all("two");
    t.git(&["checkout", "-q", "-b", "side", &c1]);
    t.write("f", "3");
    let c3 = t.commit_all("three");
    let repo = t.open();
    assert!(repo.is_ancestor(&c1, &c2).unwrap());
    assert!(repo.is_ancestor(&c1, &c3).unwrap());
    assert!(repo.is_ancestor(&c2, &c2).unwrap());
    assert!(!repo.is_ancestor(&c2, &c1).unwrap());
    assert!(!repo.is_ancestor(&c2, &c3).unwrap());
    assert!(!repo.is_ancestor(&c3, &c2).unwrap());
    assert!(repo.is_ancestor("main~1", "main").unwrap());

    // Unrelated history: no merge base at all.
    t.git(&["checkout", "-q", "--orphan", "other"]);
    t.write("f", "4");
    let c4 = t.commit_all("four");
    assert!(!repo.is_ancestor(&c1, &c4).unwrap());
    assert!(!repo.is_ancestor(&c4, &c2).unwrap());
}

#[test]
fn not_a_repository_says_how_to_fix_it() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Repo::discover(tmp.path()).unwrap_err();
    assert!(matches!(err, GitError::NotARepository { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&*fs::canonicalize(tmp.path()).unwrap().to_string_lossy()), "{msg}");
    assert!(msg.contains("git init"), "{msg}");

    let err = Repo::discover(&tmp.path().join("missing")).unwrap_err();
    assert!(matches!(err, GitError::ResolveDir { .. }), "{err:?}");
}

#[test]
fn repository_without_commits_is_an_error() {
    let t = TestRepo::new();
    t.write("werf.yaml", "project: x\n");
    let err = Repo::discover(&t.root).unwrap_err();
    assert!(matches!(err, GitError::NoCommits { .. }), "{err:?}");
    assert!(err.to_string().contains("no commits"), "{err}");
}

#[test]
fn detached_head_works() {
    let t = sample();
    let first = t.git(&["rev-parse", "HEAD"]);
    t.write("a.txt", "second\n");
    t.commit_all("second");
    t.git(&["checkout", "-q", "--detach", &first]);
    let repo = t.open();
    let head = repo.head_commit().unwrap();
    assert_eq!(head.id, first);
    assert_eq!(repo.read_file(&head.id, "a.txt").unwrap().unwrap(), b"hello\n");
    assert_eq!(repo.uncommitted("").unwrap(), Vec::<String>::new());
}

#[test]
fn submodules_are_listed_not_entered() {
    let inner = sample();
    let t = TestRepo::new();
    t.write("top.txt", "top\n");
    t.commit_all("top");
    let url = inner.root.to_str().unwrap();
    t.git(&["-c", "protocol.file.allow=always", "submodule", "add", "-q", url, "mod"]);
    t.commit_all("add submodule");
    let repo = t.open();
    let entries = repo.tree("HEAD", "").unwrap();
    assert_eq!(
        kinds(&entries),
        vec![(".gitmodules", EntryKind::File), ("mod", EntryKind::Submodule), ("top.txt", EntryKind::File),]
    );
    assert_eq!(entries[1].oid, inner.git(&["rev-parse", "HEAD"]));
    assert_eq!(repo.uncommitted("").unwrap(), Vec::<String>::new());
    let err = repo.read_file("HEAD", "mod").unwrap_err();
    assert!(matches!(err, GitError::NotAFile { .. }), "{err}");
}

/// A measurement more than a test: how long a 5000-file context takes to list, read
/// and check. Ignored by default because *creating* the repository is the slow part
/// (seconds where syscalls are expensive); run it with `--ignored --nocapture`.
#[test]
#[ignore = "slow set-up; run with --ignored --nocapture to measure"]
fn five_thousand_files_are_quick() {
    let t = TestRepo::new();
    for i in 0..5000 {
        t.write(&format!("d{}/sub{}/file{i}.txt", i % 50, i % 7), &format!("content {i}\n"));
    }
    t.commit_all("many");
    for packed in [false, true] {
        if packed {
            t.git(&["repack", "-adq"]);
        }
        let repo = t.open();
        let start = Instant::now();
        let entries = repo.tree("HEAD", "").unwrap();
        let listed = start.elapsed();
        let mut bytes = 0;
        for entry in &entries {
            bytes += repo.blob(&entry.oid).unwrap().len();
        }
        let read = start.elapsed();
        let clean = repo.uncommitted("").unwrap();
        let checked = start.elapsed() - read;
        assert_eq!(entries.len(), 5000);
        assert!(clean.is_empty(), "{clean:?}");
        eprintln!(
            "5000 files ({}): tree {listed:?}, tree+blobs {read:?} ({bytes} bytes), \
             uncommitted {checked:?}",
            if packed { "packed" } else { "loose" }
        );
    }
}

#[test]
fn errors_name_what_failed() {
    let t = sample();
    let repo = t.open();
    let err = repo.tree("HEAD", "dir/b.txt").unwrap_err();
    let commit = t.git(&["rev-parse", "HEAD"]);
    assert_eq!(err.to_string(), format!("\"dir/b.txt\" in commit {commit} is not a directory"));
}

#[test]
fn repo_can_move_to_another_thread() {
    fn assert_send_clone<T: Send + Clone>() {}
    assert_send_clone::<Repo>();
    let t = sample();
    let repo = t.open();
    let clone = repo.clone();
    let id = std::thread::spawn(move || clone.head_commit().unwrap().id).join().unwrap();
    assert_eq!(id, repo.head_commit().unwrap().id);
}

mod hostile;
mod stream;
mod worktree;
