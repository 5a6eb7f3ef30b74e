//! Commits git itself refuses to check out (bad entry names, absurd depth, huge files),
//! made with `git mktree` or by writing tree objects byte by byte.

use std::io::Write;

use super::{GitError, TestRepo};
use crate::git::tree::{MAX_READ_FILE, MAX_TREE_DEPTH};

impl TestRepo {
    /// Writes a loose object of `kind` with exactly `body`, bypassing every check git
    /// would make (what `git hash-object --literally` does), and returns its id.
    pub(super) fn write_object(&self, kind: &str, body: &[u8]) -> String {
        let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
        let header = format!("{kind} {}\0", body.len());
        hasher.update(header.as_bytes());
        hasher.update(body);
        let id = hasher.try_finalize().unwrap().to_string();
        let path = self.root.join(".git/objects").join(&id[..2]).join(&id[2..]);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(header.as_bytes()).unwrap();
        z.write_all(body).unwrap();
        std::fs::write(path, z.finish().unwrap()).unwrap();
        id
    }

    /// A tree object from `(mode, name, hex id)` entries, in the order given.
    pub(super) fn write_tree(&self, entries: &[(&str, &[u8], &str)]) -> String {
        let mut body = Vec::new();
        for (mode, name, id) in entries {
            body.extend_from_slice(mode.as_bytes());
            body.push(b' ');
            body.extend_from_slice(name);
            body.push(0);
            body.extend_from_slice(gix::ObjectId::from_hex(id.as_bytes()).unwrap().as_bytes());
        }
        self.write_object("tree", &body)
    }

    pub(super) fn commit_tree(&self, tree: &str) -> String {
        self.git(&["commit-tree", "-m", "hostile", tree])
    }

    /// What git says when asked to put `commit` into an index (as a checkout would).
    fn git_read_tree_error(&self, commit: &str) -> String {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&self.root)
            .args(["read-tree", commit])
            .env("GIT_INDEX_FILE", self._tmp.path().join("probe-index"))
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(!out.status.success(), "git accepted {commit}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// Names git's `verify_path` refuses (Linux defaults: core.protectNTFS on), each placed in
/// a subdirectory `sub/` next to a good file, with the exact error slipway gives.
#[test]
fn tree_entry_names_git_refuses_are_refused() {
    let t = TestRepo::new();
    t.write("x", "x\n");
    t.commit_all("first");
    let blob = t.write_object("blob", b"payload\n");
    let cases: &[(&str, &[u8], &str)] = &[
        ("100644", b"..", "Relative components '.' and '..' are disallowed"),
        ("040000", b"..", "Relative components '.' and '..' are disallowed"),
        ("100644", b".", "Relative components '.' and '..' are disallowed"),
        ("100644", b".git", "The .git name may never be used"),
        ("040000", b".GiT", "The .git name may never be used"),
        ("100644", b"git~1", "The .git name may never be used"),
        ("100644", b".git::$INDEX_ALLOCATION", "The .git name may never be used"),
        ("120000", b".gitmodules", "The .gitmodules file must not be a symlink"),
        ("100644", b"", "A path component must not be empty"),
        ("100644", b"a/../../escape", r"Path separators like / or \ are not allowed"),
    ];
    for (mode, name, reason) in cases {
        // A directory entry points at a real tree, a file entry at a real blob.
        let target = if *mode == "040000" { t.write_tree(&[("100644", b"f", &blob)]) } else { blob.clone() };
        let sub = t.write_tree(&[("100644", b"ok.txt", &blob), (mode, name, &target)]);
        let root = t.write_tree(&[("040000", b"sub", &sub), ("100644", b"werf.yaml", &blob)]);
        let commit = t.commit_tree(&root);
        let shown = format!("sub/{}", String::from_utf8_lossy(name));
        let expected = format!(
            "commit {}: tree entry {shown:?} is not a valid path ({reason}; git refuses to check it out)",
            &commit[..12]
        );
        if !name.contains(&b'/') {
            // The fixture really is one git refuses (git mktree would not write a '/').
            let git_says = t.git_read_tree_error(&commit);
            assert!(git_says.contains("invalid path") || git_says.contains("empty filename"), "{git_says}");
        }
        let repo = t.open();
        for err in [
            repo.tree(&commit, "").unwrap_err(),
            repo.tree(&commit, "sub").unwrap_err(),
            repo.read_file(&commit, "sub/ok.txt").unwrap_err(),
        ] {
            assert!(matches!(err, GitError::InvalidTreeEntry { .. }), "{err}");
            assert_eq!(err.to_string(), expected);
        }
        // Files whose own trees are sound are still readable (werf.yaml at the root).
        assert_eq!(repo.read_file(&commit, "werf.yaml").unwrap().unwrap(), b"payload\n");
    }
}

/// `..` at the root: even werf.yaml next to it is refused, and no listing comes back.
#[test]
fn dotdot_at_the_root_is_refused_everywhere() {
    let t = TestRepo::new();
    t.write("x", "x\n");
    t.commit_all("first");
    let blob = t.write_object("blob", b"payload\n");
    let evil = t.write_tree(&[("100644", b"passwd", &blob)]);
    let sub = t.write_tree(&[("100644", b"ok.txt", &blob)]);
    let root = t.write_tree(&[("040000", b"..", &evil), ("040000", b"sub", &sub), ("100644", b"werf.yaml", &blob)]);
    let commit = t.commit_tree(&root);
    let repo = t.open();
    // Listing only the sound subdirectory is refused too.
    assert!(matches!(repo.tree(&commit, "sub").unwrap_err(), GitError::InvalidTreeEntry { .. }));
    let err = repo.read_file(&commit, "werf.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "commit {}: tree entry \"..\" is not a valid path (Relative components '.' and '..' are disallowed; git refuses to check it out)",
            &commit[..12]
        )
    );
    assert!(matches!(repo.tree(&commit, "").unwrap_err(), GitError::InvalidTreeEntry { .. }));
}

/// A chain of `depth` directories named `d` with one file at the bottom; returns the commit.
fn nested(t: &TestRepo, depth: usize) -> String {
    let blob = t.write_object("blob", b"bottom\n");
    let mut tree = t.write_tree(&[("100644", b"f", &blob)]);
    for _ in 0..depth {
        tree = t.write_tree(&[("040000", b"d", &tree)]);
    }
    t.commit_tree(&tree)
}

#[test]
fn tree_depth_is_bounded() {
    let t = TestRepo::new();
    t.write("x", "x\n");
    t.commit_all("first");
    let repo = t.open();
    let ok = nested(&t, MAX_TREE_DEPTH);
    let entries = repo.tree(&ok, "").unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].path.len(), MAX_TREE_DEPTH * 2 + 1);
    let deep = nested(&t, MAX_TREE_DEPTH + 1);
    let err = repo.tree(&deep, "").unwrap_err();
    assert!(matches!(err, GitError::TreeTooDeep { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("commit {}: \"d/d/", &deep[..12])), "{}", &msg[..80]);
    assert!(msg.ends_with("/d\" is nested more than 4096 directories deep"), "{}", &msg[msg.len() - 80..]);
}

#[test]
fn read_file_refuses_files_above_the_limit() {
    let t = TestRepo::new();
    t.write("small.yaml", "ok\n");
    let big = vec![b'#'; MAX_READ_FILE as usize + 1];
    std::fs::write(t.path("werf.yaml"), &big).unwrap();
    let commit = t.commit_all("big");
    let repo = t.open();
    let err = repo.read_file(&commit, "werf.yaml").unwrap_err();
    assert!(matches!(err, GitError::FileTooLarge { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "\"werf.yaml\" in commit {} is 16777217 bytes; slipway reads it into memory and refuses more than 16777216",
            &commit[..12]
        )
    );
    assert_eq!(repo.read_file(&commit, "small.yaml").unwrap().unwrap(), b"ok\n");
    // Exactly at the limit is fine.
    std::fs::write(t.path("werf.yaml"), &big[1..]).unwrap();
    let commit = t.commit_all("at the limit");
    assert_eq!(repo.read_file(&commit, "werf.yaml").unwrap().unwrap().len() as u64, MAX_READ_FILE);
}
