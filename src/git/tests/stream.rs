//! `Repo::copy_blob`: same bytes as `Repo::blob` for loose, packed and deltified blobs,
//! refusals for non-blobs and corrupt objects, and peak memory while streaming.

use super::{GitError, TestRepo};

/// Pseudo-random bytes (xorshift), incompressible enough to defeat zlib.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn copied(t: &TestRepo, oid: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let n = t.open().copy_blob(oid, &mut out).unwrap();
    assert_eq!(n, out.len() as u64);
    out
}

#[test]
fn copy_blob_matches_blob_loose_packed_and_deltified() {
    let t = TestRepo::new();
    let base = noise(300_000, 7);
    let mut edited = base.clone();
    edited[150_000..150_010].copy_from_slice(b"0123456789");
    std::fs::write(t.path("base.bin"), &base).unwrap();
    std::fs::write(t.path("edited.bin"), &edited).unwrap();
    t.write("empty", "");
    t.commit_all("blobs");
    let id = |p: &str| t.git(&["rev-parse", &format!("HEAD:{p}")]);
    let (base_id, edited_id, empty_id) = (id("base.bin"), id("edited.bin"), id("empty"));
    let check = |stage: &str| {
        for (oid, want) in [(&base_id, &base), (&edited_id, &edited), (&empty_id, &Vec::new())] {
            assert!(copied(&t, oid) == *want, "{stage}: {oid} differs");
            assert!(t.open().blob(oid).unwrap() == *want, "{stage}: blob() {oid} differs");
        }
    };
    check("loose");
    t.git(&["repack", "-adq", "--window=10", "--depth=10"]);
    t.git(&["prune-packed"]);
    assert!(!t.path(&format!(".git/objects/{}", &base_id[..2])).join(&base_id[2..]).exists());
    // One of the two similar files is now a delta against the other.
    let pack = std::fs::read_dir(t.path(".git/objects/pack"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .unwrap();
    let verify = t.git(&["verify-pack", "-v", pack.to_str().unwrap()]);
    let deltified = verify.lines().filter(|l| l.contains(" blob ") && l.split_whitespace().count() > 5).count();
    assert_eq!(deltified, 1, "{verify}");
    check("packed");
}

#[test]
fn copy_blob_refuses_non_blobs_and_corrupt_objects() {
    let t = TestRepo::new();
    t.write("a.txt", "hello\n");
    let commit = t.commit_all("one");
    let tree = t.git(&["rev-parse", "HEAD^{tree}"]);
    let repo = t.open();
    for (oid, found) in [(&tree, "tree"), (&commit, "commit")] {
        let err = repo.copy_blob(oid, &mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), format!("git object {oid} is a {found}, not a blob"));
    }
    // A loose object whose content does not hash to its name.
    let good = t.write_object("blob", b"good\n");
    let bad = t.write_object("blob", b"evil\n");
    let dir = |id: &str| t.path(&format!(".git/objects/{}/{}", &id[..2], &id[2..]));
    std::fs::copy(dir(&bad), dir(&good)).unwrap();
    let err = repo.copy_blob(&good, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, GitError::CorruptObject { .. }), "{err}");
    assert_eq!(err.to_string(), format!("git object {good} is corrupt: its content hashes to {bad}"));
    // Packed, the kinds are refused the same way.
    t.git(&["repack", "-adq"]);
    t.git(&["prune-packed"]);
    let repo = t.open();
    let err = repo.copy_blob(&tree, &mut Vec::new()).unwrap_err();
    assert_eq!(err.to_string(), format!("git object {tree} is a tree, not a blob"));
}

/// The probe's size, in MiB, and the env vars that make the probe run.
const PROBE_MIB: &str = "SLIPWAY_RSS_PROBE_MIB";

/// Peak-memory growth while copying a 64 MiB blob, loose and packed, measured in a fresh
/// process (this test binary running only [`rss_probe`]) so that other tests do not move
/// the high-water mark. Reading the blob whole costs about its size; streaming must
/// stay below 32 MiB.
#[test]
fn copy_blob_streams_without_holding_the_blob() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["git::tests::stream::rss_probe", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(PROBE_MIB, "64")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let kib = |key: &str| -> u64 {
        let line = text
            .lines()
            .find_map(|l| l.split_once(&format!("{key}=")).map(|(_, v)| v))
            .unwrap_or_else(|| panic!("{key}?\n{text}"));
        line.trim_end_matches(" KiB").parse().unwrap()
    };
    for case in ["loose_copy_blob", "packed_copy_blob"] {
        assert!(kib(case) < 32 * 1024, "{case} grew the peak RSS by {} KiB:\n{text}", kib(case));
    }
    // The probe is sound: reading it whole is seen to cost at least the blob's size.
    assert!(kib("loose_blob") >= 64 * 1024, "{text}");
}

/// Peak RSS growth around `f`, in KiB: the high-water mark is reset first
/// (`/proc/self/clear_refs` 5), so only what `f` adds shows.
fn peak_growth_kib(f: impl FnOnce()) -> u64 {
    let status = |key: &str| -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = s.lines().find_map(|l| l.strip_prefix(key)).unwrap();
        line.trim().trim_end_matches(" kB").trim().parse().unwrap()
    };
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status("VmRSS:");
    f();
    status("VmHWM:").saturating_sub(before)
}

/// Run only by [`copy_blob_streams_without_holding_the_blob`] (or by hand with
/// `SLIPWAY_RSS_PROBE_MIB=200 cargo test -p slipway rss_probe -- --ignored --nocapture`).
#[test]
#[ignore = "a helper process for copy_blob_streams_without_holding_the_blob"]
fn rss_probe() {
    let mib: usize = std::env::var(PROBE_MIB).ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let t = TestRepo::new();
    let file = t.path("big.bin");
    {
        // Written in chunks so the probe itself never holds the file.
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for i in 0..mib {
            f.write_all(&noise(1 << 20, i as u64 + 1)).unwrap();
        }
    }
    t.commit_all("big");
    let oid = t.git(&["rev-parse", "HEAD:big.bin"]);
    let sink = || std::io::sink();
    let report = |case: &str| {
        let repo = t.open();
        peak_growth_kib(|| match case {
            "copy_blob" => assert_eq!(repo.copy_blob(&oid, &mut sink()).unwrap(), (mib as u64) << 20),
            _ => assert_eq!(repo.blob(&oid).unwrap().len(), mib << 20),
        })
    };
    println!("loose_copy_blob={} KiB", report("copy_blob"));
    println!("loose_blob={} KiB", report("blob"));
    t.git(&["repack", "-adq"]);
    t.git(&["prune-packed"]);
    println!("packed_copy_blob={} KiB", report("copy_blob"));
    println!("packed_blob={} KiB", report("blob"));
}
