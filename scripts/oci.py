#!/usr/bin/env python3
"""Write small OCI image layouts deterministically (helper for base-images.sh).

  oci.py image LAYOUT TAG --arch A [--variant V] [--env K=V]... [--cmd ARG]... --layer TAR...
      One image: each uncompressed TAR is gzipped (mtime 0) into a layer, in order.
  oci.py index LAYOUT TAG SRC_LAYOUT:TAG...
      An image index listing the source images' manifests in the given order
      (blobs are copied into LAYOUT).
  oci.py layer KIND OUT.tar
      A single-layer tar: KIND is a hostile layer (dotdot, abs-symlink, hardlink-out,
      abspath), "marker-ARCH" (one file /marker saying ARCH) or "owned" (/srv owned by
      1000:1000: a file, a hard link to it, a symlink, a set-uid file, a directory).

Identical inputs give identical digests, so re-pushing is a no-op for the registry.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_ANN = "org.opencontainers.image.ref.name"


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def init_layout(layout):
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


def put_blob(layout, data):
    d = sha(data)
    p = os.path.join(layout, "blobs", "sha256", d.split(":")[1])
    if not os.path.exists(p):
        with open(p, "wb") as f:
            f.write(data)
    return d


def get_blob(layout, digest):
    with open(os.path.join(layout, "blobs", "sha256", digest.split(":")[1]), "rb") as f:
        return f.read()


def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def set_ref(layout, tag, desc):
    """Point TAG in LAYOUT/index.json at desc (replacing an older entry for TAG)."""
    p = os.path.join(layout, "index.json")
    idx = {"schemaVersion": 2, "manifests": []}
    if os.path.exists(p):
        with open(p) as f:
            idx = json.load(f)
    idx["manifests"] = [m for m in idx["manifests"]
                        if m.get("annotations", {}).get(REF_ANN) != tag]
    idx["manifests"].append(dict(desc, annotations={REF_ANN: tag}))
    with open(p, "w") as f:
        json.dump(idx, f, indent=2)


def get_ref(layout, tag):
    with open(os.path.join(layout, "index.json")) as f:
        for m in json.load(f)["manifests"]:
            if m.get("annotations", {}).get(REF_ANN) == tag:
                return m
    sys.exit(f"oci.py: no tag {tag} in {layout}")


def cmd_image(a):
    init_layout(a.layout)
    layers, diff_ids, history = [], [], []
    for path in a.layer:
        with open(path, "rb") as f:
            raw = f.read()
        buf = io.BytesIO()
        # mtime=0 and no file name in the gzip header: deterministic output.
        with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=6, mtime=0, filename="") as z:
            z.write(raw)
        gz = buf.getvalue()
        layers.append({"mediaType": MT_LAYER, "digest": put_blob(a.layout, gz), "size": len(gz)})
        diff_ids.append(sha(raw))
        history.append({"created": "1970-01-01T00:00:00Z",
                        "created_by": f"slipway base-images.sh: {os.path.basename(path)}"})
    config = {
        "created": "1970-01-01T00:00:00Z",
        "architecture": a.arch,
        "os": "linux",
        "config": {"Env": a.env, "Cmd": a.cmd},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    if a.variant:
        config["variant"] = a.variant
    cfg = canon(config)
    manifest = canon({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": put_blob(a.layout, cfg), "size": len(cfg)},
        "layers": layers,
    })
    platform = {"architecture": a.arch, "os": "linux"}
    if a.variant:
        platform["variant"] = a.variant
    set_ref(a.layout, a.tag, {"mediaType": MT_MANIFEST, "digest": put_blob(a.layout, manifest),
                              "size": len(manifest), "platform": platform})


def cmd_index(a):
    init_layout(a.layout)
    entries = []
    for src in a.sources:
        src_layout, src_tag = src.rsplit(":", 1)
        desc = get_ref(src_layout, src_tag)
        man = get_blob(src_layout, desc["digest"])
        m = json.loads(man)
        for d in [m["config"]] + m["layers"] + [desc]:
            put_blob(a.layout, get_blob(src_layout, d["digest"]))
        cfg = json.loads(get_blob(src_layout, m["config"]["digest"]))
        platform = {"architecture": cfg["architecture"], "os": cfg["os"]}
        if cfg.get("variant"):
            platform["variant"] = cfg["variant"]
        entries.append({"mediaType": MT_MANIFEST, "digest": desc["digest"],
                        "size": desc["size"], "platform": platform})
    index = canon({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": entries})
    set_ref(a.layout, a.tag, {"mediaType": MT_INDEX, "digest": put_blob(a.layout, index),
                              "size": len(index)})


def cmd_layer(a):
    def info(name, typ=tarfile.REGTYPE, mode=0o644, size=0, linkname=""):
        ti = tarfile.TarInfo(name)  # written verbatim: addfile() does not sanitise names
        ti.type, ti.mode, ti.size, ti.linkname = typ, mode, size, linkname
        ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 0, 0, 0, "", ""
        return ti

    def reg(tf, name, data):
        tf.addfile(info(name, size=len(data)), io.BytesIO(data))

    with tarfile.open(a.out, "w", format=tarfile.GNU_FORMAT) as tf:
        k = a.kind
        if k == "dotdot":
            reg(tf, "../../escape", b"pwned\n")
        elif k == "abs-symlink":
            tf.addfile(info("evil", tarfile.SYMTYPE, 0o777, linkname="/tmp/slipway-escape-target"))
            reg(tf, "evil/pwned", b"pwned\n")
        elif k == "hardlink-out":
            tf.addfile(info("hl", tarfile.LNKTYPE, linkname="../../../etc/passwd"))
        elif k == "abspath":
            reg(tf, "/abs-escape", b"pwned\n")
        elif k == "owned":
            def own(ti, mode):
                ti.uid = ti.gid = 1000
                ti.mode = mode
                return ti
            data = b"owned\n"
            tf.addfile(own(info("srv", tarfile.DIRTYPE), 0o755))
            tf.addfile(own(info("srv/gone", tarfile.DIRTYPE), 0o750))
            tf.addfile(own(info("srv/gone/x", size=2), 0o644), io.BytesIO(b"x\n"))
            tf.addfile(own(info("srv/owned.txt", size=len(data)), 0o640), io.BytesIO(data))
            tf.addfile(own(info("srv/hard", tarfile.LNKTYPE, linkname="srv/owned.txt"), 0o640))
            tf.addfile(own(info("srv/suid", size=len(data)), 0o4755), io.BytesIO(data))
            tf.addfile(own(info("srv/sym", tarfile.SYMTYPE, linkname="owned.txt"), 0o777))
        elif k.startswith("marker-"):
            reg(tf, "marker", k[len("marker-"):].encode() + b"\n")
        else:
            sys.exit(f"oci.py: unknown layer kind {k}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True)
    i = sub.add_parser("image")
    i.add_argument("layout")
    i.add_argument("tag")
    i.add_argument("--arch", required=True)
    i.add_argument("--variant")
    i.add_argument("--env", action="append", default=[])
    i.add_argument("--cmd", action="append", default=[])
    i.add_argument("--layer", action="append", required=True)
    x = sub.add_parser("index")
    x.add_argument("layout")
    x.add_argument("tag")
    x.add_argument("sources", nargs="+")
    l = sub.add_parser("layer")
    l.add_argument("kind")
    l.add_argument("out")
    a = p.parse_args()
    {"image": cmd_image, "index": cmd_index, "layer": cmd_layer}[a.action](a)


if __name__ == "__main__":
    main()
