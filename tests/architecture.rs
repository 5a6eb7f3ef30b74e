//! `docs/ARCHITECTURE.md` §2 names every source file of the three crates, and nothing
//! else: its module map matches `src/`, `runtime/src/` and `storage/src/` one to one.
//!
//! The map's grammar: under a crate heading (`**Main crate**`, `` **`slipway-runtime`** ``,
//! `` **`slipway-storage`** ``), each bullet starts with one or more backticked names
//! before its first colon. A name ending in `/` is a directory: deeper bullets below it
//! name what it holds, and a directory bullet with none covers every file in it. Other
//! names are modules (`mod` is the directory's `mod.rs`, `lib` the crate's `lib.rs`);
//! `.rs` is added when missing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const CRATES: &[(&str, &str)] =
    &[("**Main crate**", "src"), ("**`slipway-runtime`**", "runtime/src"), ("**`slipway-storage`**", "storage/src")];

#[test]
fn architecture_module_map_matches_the_source_tree_one_to_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let section = doc.split("\n## 2. ").nth(1).expect("§2").split("\n## 3. ").next().unwrap();
    let mut named = BTreeSet::new();
    let mut covered_dirs = BTreeSet::new();
    let mut crate_dir: Option<&str> = None;
    // (indent, directory) of the enclosing directory bullets.
    let mut scope: Vec<(usize, String)> = Vec::new();
    // The last directory bullet, until a deeper bullet shows it has children.
    let mut open_dir: Option<(usize, String)> = None;
    for line in section.lines() {
        if let Some((_, dir)) = CRATES.iter().find(|(heading, _)| line.trim() == *heading) {
            close(&mut open_dir, &mut covered_dirs, 0);
            crate_dir = Some(dir);
            scope.clear();
            continue;
        }
        let Some(dir) = crate_dir else { continue };
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let Some(item) = trimmed.strip_prefix("- `") else { continue };
        close(&mut open_dir, &mut covered_dirs, indent);
        scope.retain(|(i, _)| *i < indent);
        let base = scope.last().map_or(dir.to_string(), |(_, d)| d.clone());
        for name in names(&format!("`{item}")) {
            if let Some(sub) = name.strip_suffix('/') {
                let path = format!("{base}/{sub}");
                scope.push((indent, path.clone()));
                open_dir = Some((indent, path));
            } else {
                let file = match name.as_str() {
                    "mod" => "mod.rs".to_string(),
                    "lib" => "lib.rs".to_string(),
                    n if n.ends_with(".rs") => n.to_string(),
                    n => format!("{n}.rs"),
                };
                named.insert(format!("{base}/{file}"));
            }
        }
    }
    close(&mut open_dir, &mut covered_dirs, 0);
    let mut files = BTreeSet::new();
    for (_, dir) in CRATES {
        walk(root, &root.join(dir), &mut files);
    }
    let uncovered: Vec<&String> = files
        .iter()
        .filter(|f| !named.contains(*f) && !covered_dirs.iter().any(|d| f.starts_with(&format!("{d}/"))))
        .collect();
    let missing: Vec<&String> = named.iter().filter(|n| !files.contains(*n)).collect();
    assert!(
        uncovered.is_empty() && missing.is_empty(),
        "docs/ARCHITECTURE.md §2 and the source tree differ.\nFiles the map does not name: {uncovered:#?}\nNames in the map with no file: {missing:#?}"
    );
}

/// The open directory bullet, closed by a bullet at `indent` (0: the end of a crate):
/// when that bullet is not deeper, the directory got no children and covers its files.
fn close(open: &mut Option<(usize, String)>, covered: &mut BTreeSet<String>, indent: usize) {
    if let Some((i, dir)) = open.take()
        && indent <= i
    {
        covered.insert(dir);
    }
}

/// The backticked names before the first colon outside backticks.
fn names(item: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_tick = false;
    let mut current = String::new();
    for c in item.chars() {
        match (c, in_tick) {
            ('`', false) => in_tick = true,
            ('`', true) => {
                in_tick = false;
                out.push(std::mem::take(&mut current));
            }
            (':', false) => break,
            (c, true) => current.push(c),
            _ => {}
        }
    }
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path: PathBuf = entry.unwrap().path();
        if path.is_dir() {
            walk(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.insert(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        }
    }
}
