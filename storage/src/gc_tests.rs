//! The reachability walk and the plan over small stores made with the store's own API.

use super::*;
use crate::store::{LayerMeta, StageRecord, Store};

/// A layer holding one file, stored; returns its diffID.
fn layer(s: &Store, content: &str) -> Digest {
    let tree = s.scratch_dir("t").unwrap();
    std::fs::write(tree.join("f"), content).unwrap();
    let blob = s.blobs().put_bytes(format!("gz {content}").as_bytes()).unwrap();
    let diff_id = Digest::of(content.as_bytes());
    let meta = LayerMeta {
        diff_id: diff_id.clone(),
        digest: blob,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        size: 3,
        uncompressed_size: 100,
        skipped_devices: Vec::new(),
    };
    s.add_layer(&tree, &meta).unwrap();
    diff_id
}

/// An image of `layers`: its manifest digest.
fn image(s: &Store, layers: &[&Digest], tag: &str) -> Digest {
    let ids: Vec<&str> = layers.iter().map(|d| d.as_str()).collect();
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ids}, "config": {"Labels": {"t": tag}}});
    let config = s.blobs().put_bytes(config.to_string().as_bytes()).unwrap();
    let descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|d| {
            let m = s.layer_meta(d).unwrap().unwrap();
            serde_json::json!({"mediaType": m.media_type, "digest": m.digest.as_str(), "size": 3})
        })
        .collect();
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.as_str(), "size": 1},
        "layers": descs});
    s.blobs().put_bytes(manifest.to_string().as_bytes()).unwrap()
}

fn stage(s: &Store, project: &str, digest: &str, ts: u64, manifest: &Digest) {
    s.put_stage(project, digest, ts, &StageRecord { manifest: manifest.clone(), git_commit: None, repo: None })
        .unwrap();
}

fn kinds(plan: &[Removal]) -> Vec<String> {
    plan.iter()
        .map(|r| match &r.kind {
            Kind::Stage { project, id } => format!("stage {project}:{id}"),
            Kind::Layer(h) => format!("layer {}", &h[..8]),
            Kind::Blob(_) => "blob".into(),
            Kind::ImportMetadata { id, .. } => format!("import {id}"),
            Kind::LayerIndex(_) => "index".into(),
            Kind::Temp => format!("temp {}", r.path.file_name().unwrap().to_string_lossy()),
            Kind::ImageRef(n) => format!("ref {n}"),
            Kind::Dir => "dir".into(),
        })
        .collect()
}

#[test]
fn garbage_is_what_no_stage_or_ref_reaches() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let (base, shared, own_a, orphan) = (layer(&s, "base"), layer(&s, "shared"), layer(&s, "a"), layer(&s, "orphan"));
    let base_image = image(&s, &[&base], "base");
    s.set_image_ref("docker.io/library/base:1", &base_image).unwrap();
    let a = image(&s, &[&base, &shared, &own_a], "a");
    let b = image(&s, &[&base, &shared], "b");
    stage(&s, "p", "aaa", 1, &a);
    stage(&s, "q", "bbb", 2, &b);
    let orphan_blob = s.blobs().put_bytes(b"nobody").unwrap();
    std::fs::create_dir_all(t.path().join("tmp/stale/x")).unwrap();
    std::fs::write(t.path().join("stages/p/.tmp-half"), b"{").unwrap();
    // Import metadata of a kept stage, and of a stage that is gone.
    let im = t.path().join("import-metadata/p");
    std::fs::create_dir_all(&im).unwrap();
    std::fs::write(im.join("1".repeat(64)), r#"{"import-source-id":"1","source-stage-id":"aaa-1","checksum":"c"}"#)
        .unwrap();
    std::fs::write(im.join("2".repeat(64)), r#"{"import-source-id":"2","source-stage-id":"zzz-9","checksum":"c"}"#)
        .unwrap();
    drop(s);

    let s = Store::open_exclusive(t.path()).unwrap().unwrap();
    let inv = Inventory::scan(&s).unwrap();
    let plan = inv.plan(&Discard::default());
    let got = kinds(&plan);
    let orphan_hex = &orphan.hex()[..8];
    assert_eq!(
        got,
        [
            format!("import {}", "2".repeat(64)),
            "index".into(),
            format!("layer {orphan_hex}"),
            "blob".into(),
            "blob".into(),
            "temp .tmp-half".into(),
            "temp stale".into()
        ],
        "{plan:#?}"
    );
    let blobs: BTreeSet<&Digest> =
        plan.iter().filter_map(|r| if let Kind::Blob(d) = &r.kind { Some(d) } else { None }).collect();
    let orphan_layer_blob = s.layer_meta(&orphan).unwrap().unwrap().digest;
    assert_eq!(blobs, BTreeSet::from([&orphan_blob, &orphan_layer_blob]));

    apply(&s, &plan, |_| {}).unwrap();
    assert!(s.layer_meta(&orphan).unwrap().is_none());
    for d in [&base, &shared, &own_a] {
        assert!(s.layer_meta(d).unwrap().is_some());
    }
    assert!(s.manifest(&a).is_ok() && s.manifest(&b).is_ok() && s.manifest(&base_image).is_ok());
    assert!(!t.path().join("tmp/stale").exists());
    assert!(s.scratch().exists(), "the collector's own temp dir stays");
    // A second pass finds nothing.
    assert!(Inventory::scan(&s).unwrap().plan(&Discard::default()).is_empty());
}

#[test]
fn dropping_stages_frees_only_what_they_alone_reach() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let (shared, own_a, own_b) = (layer(&s, "shared"), layer(&s, "a"), layer(&s, "b"));
    let a = image(&s, &[&shared, &own_a], "a");
    let b = image(&s, &[&shared, &own_b], "b");
    stage(&s, "p", "aaa", 1, &a);
    stage(&s, "q", "bbb", 2, &b);
    drop(s);
    let s = Store::open_exclusive(t.path()).unwrap().unwrap();
    let inv = Inventory::scan(&s).unwrap();
    let only_p = inv.stages_of(Some("p"));
    let plan = inv.plan(&Discard { stages: only_p, ..Discard::default() });
    apply(&s, &plan, |_| {}).unwrap();
    assert!(s.stages("p", None).unwrap().is_empty());
    assert_eq!(s.stages("q", None).unwrap().len(), 1);
    assert!(s.layer_meta(&own_a).unwrap().is_none());
    assert!(s.layer_meta(&shared).unwrap().is_some() && s.layer_meta(&own_b).unwrap().is_some());
    assert!(s.manifest(&a).is_err() && s.manifest(&b).is_ok());
    assert!(!t.path().join("stages/p").exists(), "an emptied project dir goes too");
}

#[test]
fn least_recently_used_goes_first_until_enough_is_freed() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let (la, lb) = (layer(&s, "a"), layer(&s, "b"));
    let (a, b) = (image(&s, &[&la], "a"), image(&s, &[&lb], "b"));
    stage(&s, "p", "aaa", 1, &a);
    stage(&s, "p", "bbb", 2, &b);
    // aaa was used after bbb.
    std::thread::sleep(std::time::Duration::from_millis(20));
    s.touch_stage("p", "aaa", 1).unwrap();
    drop(s);
    let s = Store::open_exclusive(t.path()).unwrap().unwrap();
    let inv = Inventory::scan(&s).unwrap();
    assert_eq!(inv.least_recently_used(0), Vec::<(String, String)>::new());
    // One layer's worth: the least recently used stage alone.
    assert_eq!(inv.least_recently_used(50), [("p".to_string(), "bbb-2".to_string())]);
    assert_eq!(inv.least_recently_used(u64::MAX).len(), 2);
}

#[test]
fn an_index_reaches_its_manifests_and_a_busy_store_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let l = layer(&s, "x");
    let m = image(&s, &[&l], "x");
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"digest": m.as_str(), "size": 1}]});
    let index = s.blobs().put_bytes(index.to_string().as_bytes()).unwrap();
    s.set_image_ref("r", &index).unwrap();
    // A user holds the store: the collector is refused, naming this process.
    let busy = Store::open_exclusive(t.path()).unwrap().err().unwrap();
    assert_eq!(busy.pids, [std::process::id()]);
    drop(s);
    let s = Store::open_exclusive(t.path()).unwrap().unwrap();
    let plan = Inventory::scan(&s).unwrap().plan(&Discard::default());
    assert!(plan.is_empty(), "{plan:#?}");
    let plan = Inventory::scan(&s).unwrap().plan(&Discard { image_refs: true, ..Discard::default() });
    assert_eq!(kinds(&plan).iter().filter(|k| k.starts_with("layer")).count(), 1);
}

/// A collector killed after any removal (or in the middle of one layer's) leaves a store
/// where every kept stage is whole, and the next run finishes the job.
#[test]
fn every_crash_point_leaves_kept_stages_whole() {
    let make = |t: &Path| {
        let s = Store::open(t).unwrap();
        let (shared, own_a, own_b) = (layer(&s, "shared"), layer(&s, "a"), layer(&s, "b"));
        let a = image(&s, &[&shared, &own_a], "a");
        let b = image(&s, &[&shared, &own_b], "b");
        stage(&s, "p", "aaa", 1, &a);
        stage(&s, "q", "bbb", 2, &b);
        s.blobs().put_bytes(b"orphan").unwrap();
        (b, [shared, own_b])
    };
    let whole = |s: &Store, b: &Digest, layers: &[Digest]| {
        let m = s.manifest(b).unwrap();
        assert!(s.blobs().exists(&m.config.digest));
        for (l, d) in m.layers.iter().zip(layers) {
            assert!(s.blobs().exists(&l.digest), "blob {}", l.digest);
            assert!(s.layer_diff(d).join("f").exists(), "layer {d}");
        }
        assert_eq!(s.stages("q", None).unwrap().len(), 1);
    };
    let t = tempfile::tempdir().unwrap();
    make(t.path());
    let steps = {
        let s = Store::open_exclusive(t.path()).unwrap().unwrap();
        let inv = Inventory::scan(&s).unwrap();
        inv.plan(&Discard { stages: inv.stages_of(Some("p")), ..Discard::default() }).len()
    };
    assert!(steps >= 5);
    for k in 0..=steps {
        let t = tempfile::tempdir().unwrap();
        let (b, layers) = make(t.path());
        {
            let s = Store::open_exclusive(t.path()).unwrap().unwrap();
            let inv = Inventory::scan(&s).unwrap();
            let plan = inv.plan(&Discard { stages: inv.stages_of(Some("p")), ..Discard::default() });
            apply(&s, &plan[..k], |_| {}).unwrap();
            // Killed mid-way through the next layer: renamed aside into the collector's
            // run dir, which a kill leaves behind with its lock file, unheld.
            if let Some(r) = plan.get(k).filter(|r| matches!(r.kind, Kind::Layer(_))) {
                let dead = t.path().join("tmp/run-1-2-3");
                std::fs::create_dir_all(&dead).unwrap();
                std::fs::write(t.path().join("tmp/run-1-2-3.lock"), b"").unwrap();
                std::fs::rename(&r.path, dead.join("gc-x")).unwrap();
            }
        }
        let s = Store::open(t.path()).unwrap();
        whole(&s, &b, &layers);
        drop(s);
        let s = Store::open_exclusive(t.path()).unwrap().unwrap();
        let inv = Inventory::scan(&s).unwrap();
        let rest = inv.plan(&Discard { stages: inv.stages_of(Some("p")), ..Discard::default() });
        apply(&s, &rest, |_| {}).unwrap();
        whole(&s, &b, &layers);
        assert!(Inventory::scan(&s).unwrap().plan(&Discard::default()).is_empty(), "crash after {k}");
    }
}
