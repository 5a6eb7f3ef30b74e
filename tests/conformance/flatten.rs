//! An image as one flat filesystem listing: its layers applied in order (whiteouts and
//! opaque directories honoured), each path with its type, mode, owner and content hash.
//! Read from a `dir:` copy (skopeo's or buildah's), so a test compares two builders'
//! images without unpacking anything as the test user.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// One path of the flattened filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    kind: Kind,
    mode: u32,
    uid: u64,
    gid: u64,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }

    pub fn is_empty_file(&self) -> bool {
        matches!(&self.kind, Kind::File { size: 0, .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    File {
        size: u64,
        sha256: String,
    },
    Symlink(String),
    /// A hard link to the named path (resolved into a shared-inode group when listed).
    Hardlink(String),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

/// An image read from a `dir:` directory: its config and flattened tree.
pub struct Image {
    pub config: serde_json::Value,
    pub tree: BTreeMap<String, Node>,
}

/// Read the manifest, config and every layer of the `dir:` image at `dir`.
pub fn read_dir_image(dir: &Path) -> Image {
    let blob = |digest: &str| dir.join(digest.trim_start_matches("sha256:"));
    let manifest: serde_json::Value = serde_json::from_slice(&read(&dir.join("manifest.json"))).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().expect("manifest without config digest");
    let config = serde_json::from_slice(&read(&blob(config_digest))).unwrap();
    let mut tree = BTreeMap::new();
    for layer in manifest["layers"].as_array().expect("manifest without layers") {
        let d = layer["digest"].as_str().unwrap();
        apply_layer(&mut tree, &read(&blob(d)), d);
    }
    Image { config, tree }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// Apply one (gzip-compressed or plain) layer tar to `tree`.
fn apply_layer(tree: &mut BTreeMap<String, Node>, blob: &[u8], digest: &str) {
    let plain: Box<dyn Read + '_> = match blob {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::GzDecoder::new(blob)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => panic!("layer {digest} is zstd-compressed; the harness reads gzip and plain"),
        _ => Box::new(blob),
    };
    let mut ar = tar::Archive::new(plain);
    let mut added: Vec<(String, Node)> = Vec::new();
    for entry in ar.entries().unwrap_or_else(|e| panic!("reading layer {digest}: {e}")) {
        let mut entry = entry.unwrap_or_else(|e| panic!("reading layer {digest}: {e}"));
        let path = clean(&entry.path().unwrap().to_string_lossy());
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        if name == ".wh..wh..opq" {
            let prefix = format!("{parent}/");
            tree.retain(|p, _| if parent.is_empty() { p.is_empty() } else { !p.starts_with(&prefix) });
            continue;
        }
        if let Some(gone) = name.strip_prefix(".wh.") {
            let gone = if parent.is_empty() { gone.to_string() } else { format!("{parent}/{gone}") };
            remove_tree(tree, &gone);
            continue;
        }
        let h = entry.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut hasher = Sha256::new();
                let size = std::io::copy(&mut entry, &mut hasher).unwrap();
                Kind::File { size, sha256: hex::encode(hasher.finalize()) }
            }
            tar::EntryType::Symlink => Kind::Symlink(entry_link(&h)),
            tar::EntryType::Link => Kind::Hardlink(clean(&entry_link(&h))),
            tar::EntryType::Char => {
                Kind::Char(h.device_major().unwrap().unwrap_or(0), h.device_minor().unwrap().unwrap_or(0))
            }
            tar::EntryType::Block => {
                Kind::Block(h.device_major().unwrap().unwrap_or(0), h.device_minor().unwrap().unwrap_or(0))
            }
            tar::EntryType::Fifo => Kind::Fifo,
            other => panic!("layer {digest}: {path}: unexpected entry type {other:?}"),
        };
        let node = Node { kind, mode: h.mode().unwrap() & 0o7777, uid: h.uid().unwrap(), gid: h.gid().unwrap() };
        added.push((path, node));
    }
    for (path, node) in added {
        // A non-directory replaces whatever was there, a whole tree included.
        if node.kind != Kind::Dir {
            remove_tree(tree, &path);
        } else if tree.get(&path).is_some_and(|n| n.kind != Kind::Dir) {
            tree.remove(&path);
        }
        tree.insert(path, node);
    }
}

/// The link target of a hard or symbolic link entry (long names included).
fn entry_link(h: &tar::Header) -> String {
    h.link_name().ok().flatten().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
}

fn remove_tree(tree: &mut BTreeMap<String, Node>, path: &str) {
    let prefix = format!("{path}/");
    tree.retain(|p, _| p != path && !p.starts_with(&prefix));
}

/// `./a/b/` and `/a/b` are `a/b`; the root is "".
fn clean(p: &str) -> String {
    p.split('/').filter(|c| !c.is_empty() && *c != ".").collect::<Vec<_>>().join("/")
}

/// The listing: for each path, `type detail mode owner`. A hard link is shown as the file
/// it shares, with every path of its group.
pub fn listing(tree: &BTreeMap<String, Node>) -> BTreeMap<String, String> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (p, n) in tree {
        if let Kind::Hardlink(t) = &n.kind {
            groups.entry(t.clone()).or_default().push(p.clone());
        }
    }
    let mut group_of: BTreeMap<String, String> = BTreeMap::new();
    for (target, mut members) in groups {
        members.push(target.clone());
        members.sort();
        for m in &members {
            group_of.insert(m.clone(), members.join(","));
        }
    }
    let mut out = BTreeMap::new();
    for (p, n) in tree {
        if p.is_empty() {
            continue;
        }
        let (node, extra) = match &n.kind {
            Kind::Hardlink(t) => match tree.get(t) {
                Some(target) => (target, format!(" links={}", group_of[p])),
                None => (n, String::new()),
            },
            _ => (n, group_of.get(p).map(|g| format!(" links={g}")).unwrap_or_default()),
        };
        let detail = match &node.kind {
            Kind::Dir => "dir".to_string(),
            Kind::File { size, sha256 } => format!("file size={size} sha256={}", &sha256[..16]),
            Kind::Symlink(t) => format!("symlink -> {t}"),
            Kind::Hardlink(t) => format!("dangling-hardlink -> {t}"),
            Kind::Char(a, b) => format!("char {a},{b}"),
            Kind::Block(a, b) => format!("block {a},{b}"),
            Kind::Fifo => "fifo".to_string(),
        };
        out.insert(p.clone(), format!("{detail} mode={:04o} owner={}:{}{extra}", node.mode, node.uid, node.gid));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar with `(path, kind)` entries: "dir", "file:CONTENT", "link:TARGET", "hard:TARGET".
    fn layer(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(0);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            let (t, arg) = kind.split_once(':').unwrap_or((kind, ""));
            match t {
                "dir" => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o755);
                }
                "file" => h.set_size(arg.len() as u64),
                "link" => h.set_entry_type(tar::EntryType::Symlink),
                "hard" => h.set_entry_type(tar::EntryType::Link),
                _ => unreachable!(),
            }
            if t == "link" || t == "hard" {
                b.append_link(&mut h, path, arg).unwrap();
            } else {
                b.append_data(&mut h, path, arg.as_bytes()).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    /// Whiteouts and opaque directories remove only what lower layers had; a file replaces
    /// a directory tree; hard links are listed as one group.
    #[test]
    fn layers_flatten_with_whiteouts_and_opaque_dirs() {
        let mut tree = BTreeMap::new();
        apply_layer(
            &mut tree,
            &layer(&[
                ("a", "dir"),
                ("a/x", "file:x"),
                ("a/sub", "dir"),
                ("a/sub/y", "file:y"),
                ("b", "file:b"),
                ("c", "dir"),
                ("c/deep", "file:d"),
                ("h", "file:h"),
                ("h2", "hard:h"),
            ]),
            "l1",
        );
        apply_layer(
            &mut tree,
            &layer(&[
                ("a", "dir"),
                ("a/.wh..wh..opq", "file:"),
                ("a/new", "file:n"),
                (".wh.b", "file:"),
                ("c", "file:now a file"),
                ("l", "link:a/new"),
            ]),
            "l2",
        );
        let got: Vec<String> = listing(&tree).into_iter().map(|(p, e)| format!("{p}: {e}")).collect();
        let sha = |s: &str| hex::encode(Sha256::digest(s.as_bytes()))[..16].to_string();
        assert_eq!(
            got,
            vec![
                "a: dir mode=0755 owner=0:0".to_string(),
                format!("a/new: file size=1 sha256={} mode=0644 owner=0:0", sha("n")),
                format!("c: file size=10 sha256={} mode=0644 owner=0:0", sha("now a file")),
                format!("h: file size=1 sha256={} mode=0644 owner=0:0 links=h,h2", sha("h")),
                format!("h2: file size=1 sha256={} mode=0644 owner=0:0 links=h,h2", sha("h")),
                "l: symlink -> a/new mode=0644 owner=0:0".to_string(),
            ]
        );
    }
}
