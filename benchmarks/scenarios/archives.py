"""Scenario: a zip of images in Drive read by ranges, against a local copy and the unzip ritual.

The emulator is the datasets scenario's (50 ms latency per request, the run's per-connection and
total bandwidth: 16 MiB/s and 128 MiB/s by default). Contenders, each its own process
(``python -m benchmarks.scenarios.archives SPEC.json``), signed in and with TensorFlow imported
before the clock starts:

* ``local_keras``: ``keras.utils.image_dataset_from_directory`` on a local copy of the datasets
  scenario's 2,000 JPEGs (256x256, 8 classes): making the dataset + one epoch at (160, 160);
* ``cm_zip_cold``: ``cm.image_dataset_from_drive("MyDrive/datasets/flowers.zip")`` (the same
  files zipped in one top folder), empty cache, the same work;
* ``ritual_ttfb``: the Colab ritual on a ~1 GiB archive of large JPEGs: copy the zip to local
  disk (one stream, as ``cp`` from the Drive mount does), extract it, then Keras on the folder
  with ``validation_split=0.1, subset="validation"`` (an epoch that reads 10% of it): the time
  to the first batch;
* ``cm_ttfb``: ``cm.image_dataset_from_drive`` on that archive with the same arguments, empty
  cache: the time to the first batch (and then to the end of that 10% epoch);
* ``zip_listing``: listing a 20,000-member archive (``ZipArchive.open``): requests and bytes
  the emulator sent.
* ``cm_packed_cold``: ``cm.image_dataset_from_drive`` on the same 2,000 JPEGs as a folder in
  Drive packed by ``cm.pack`` (32 MiB tar shards; the pack is timed as information), empty
  cache, the same work as ``local_keras``.

``local_keras``, ``cm_zip_cold`` and ``cm_packed_cold`` run interleaved, three times each
(medians); the others once.
"""

from __future__ import annotations

import io
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from ..child import run_task
from ..common import Child, Emulator, Params, ratio, scratch, start_child
from .base import contender, fmt, med, new_result, row, target

CONTENDERS = {
    "local_keras": "keras image_dataset_from_directory on a local copy",
    "cm_zip_cold": "cm.image_dataset_from_drive on the zip in Drive, cold cache",
    "ritual_ttfb": "copy the 1 GiB zip, unzip, Keras: time to first batch",
    "cm_ttfb": "cm.image_dataset_from_drive on the 1 GiB zip: time to first batch",
    "zip_listing": "listing a 20,000-member zip (central directory by ranges)",
    "cm_packed_cold": "cm.image_dataset_from_drive on cm.pack shards (32 MiB), cold cache",
}
FOLDER = "MyDrive/datasets/flowers"
SMALL = "MyDrive/datasets/flowers.zip"
BIG = "MyDrive/datasets/big.zip"
LISTING = "MyDrive/datasets/many.zip"


def sizes(params: Params) -> dict[str, Any]:
    if params.quick:
        return {"images": 96, "classes": 8, "side": 48, "big_bytes": 48 * 1024 * 1024,
                "big_side": 256, "listing_members": 2000, "image_size": [32, 32],
                "batch_size": 32}
    return {"images": 2000, "classes": 8, "side": 256, "big_bytes": 1024 ** 3, "big_side": 512,
            "listing_members": 20000, "image_size": [160, 160], "batch_size": 32}


def _big_jpegs(side: int, n: int = 16) -> list[bytes]:
    """A few noisy (large, incompressible) JPEGs to repeat under many names."""
    import numpy as np
    from PIL import Image

    rng = np.random.RandomState(3)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.randint(0, 255, (side, side, 3), dtype=np.uint8)).save(
            buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def run(params: Params, work: Path) -> dict[str, Any]:
    from .datasets import _write_images

    sz = sizes(params)
    settings = {**sz, "latency_ms": 50.0, "bandwidth_bytes_per_s": params.bandwidth_bytes_per_s,
                "total_bandwidth_bytes_per_s": params.total_bandwidth_bytes_per_s}
    result = new_result("archives", "A zip of images in Drive, read by ranges", settings)
    for key, label in CONTENDERS.items():
        contender(result, key, label)
    with scratch(work, "archives") as w, Emulator(
        w, latency_ms=0, bandwidth=params.bandwidth_bytes_per_s,
        total_bandwidth=params.total_bandwidth_bytes_per_s, seed=params.seed,
    ) as emu:
        t0 = time.perf_counter()
        local = w / "local" / "flowers"
        rels = _write_images(local, sz["images"], sz["classes"], sz["side"], params.seed)
        small = w / "flowers.zip"
        with zipfile.ZipFile(small, "w") as zf:  # what zipping the folder makes
            for rel in rels:
                zf.write(local / rel, f"flowers/{rel}")
        emu.fd.put(SMALL, small)
        for rel in rels:
            emu.fd.put(f"{FOLDER}/{rel}", local / rel)
        big = w / "big.zip"
        jpegs = _big_jpegs(sz["big_side"])
        count = int(sz["big_bytes"] // (sum(map(len, jpegs)) / len(jpegs)))
        with zipfile.ZipFile(big, "w") as zf:
            for i in range(count):
                zf.writestr(f"big/class_{i % 8}/img_{i:06d}.jpg", jpegs[i % len(jpegs)])
        big_id = emu.fd.put(BIG, big)
        many = io.BytesIO()
        with zipfile.ZipFile(many, "w") as zf:
            for i in range(sz["listing_members"]):
                zf.writestr(f"many/class_{i % 10}/img_{i:06d}.jpg", b"\xff\xd8\xff\xd9")
        emu.fd.put(LISTING, many.getvalue())
        settings.update(populate_s=time.perf_counter() - t0, small_zip_bytes=small.stat().st_size,
                        big_zip_bytes=big.stat().st_size, big_members=count,
                        listing_zip_bytes=len(many.getvalue()))
        emu.fd.latency_ms = 50.0
        base = {"endpoint": emu.url, "key_file": str(emu.key_file), "local": str(local),
                "image_size": sz["image_size"], "batch_size": sz["batch_size"],
                "images": sz["images"], "big_id": big_id, "work": str(w)}
        packed = _child(result, emu, w, params, "pack", {**base, "task": "pack"},
                        w / "cache-pack")
        settings["pack_s"] = packed.get("op_s") if packed else None
        base["shards"] = packed.get("shards") if packed else None
        cold = ["local_keras", "cm_zip_cold"] + (["cm_packed_cold"] if base["shards"] else [])
        for rep in range(1 if params.quick else int(params.extra.get("archives_reps", 3))):
            for key in cold[rep % len(cold):] + cold[:rep % len(cold)]:  # interleaved
                _child(result, emu, w, params, key, {**base, "task": key}, w / f"cache-{key}-{rep}")
        for key in ("zip_listing", "cm_ttfb", "ritual_ttfb"):
            _child(result, emu, w, params, key, {**base, "task": key}, w / f"cache-{key}")
    _summarise(result)
    return result


def _child(result: dict[str, Any], emu: Emulator, w: Path, params: Params, key: str,
           spec: dict[str, Any], cache: Path) -> dict[str, Any] | None:
    entry = result["contenders"].get(key)
    child = _start({**spec, "contender": key}, emu.env(cache), w)
    try:
        r = child.wait(max(params.child_timeout_s, 900.0))
    except Exception as e:  # a failed contender is a row with its error, not a crash
        if entry is None:
            result["notes"].append(f"{key} failed: {str(e)[:500]}")
        else:
            entry["errors"].append(str(e)[:4000])
        return None
    if entry is None:  # a preparation step (the pack), timed as information
        return r
    reqs = emu.requests_between(*r["window"])
    media = [q for q in reqs if q.query.get("alt") == "media"]
    r.update({"wall_s": r["op_s"], "requests": len(reqs), "media_requests": len(media),
              "media_bytes": sum(q.bytes for q in media),
              "rss_growth_mib": r["growth_kib"] / 1024,
              "images_per_s": r["images_seen"] / r["op_s"] if r.get("images_seen") else None})
    if r.get("images_seen") is not None and spec.get("images") and key in (
            "local_keras", "cm_zip_cold", "cm_packed_cold") and r["images_seen"] != spec["images"]:
        entry["errors"].append(f"saw {r['images_seen']} images, expected {spec['images']}")
    entry["reps"].append(r)
    return r


def _start(spec: dict[str, Any], env: dict[str, str], work: Path) -> Child:
    return start_child(spec, env, work, module="benchmarks.scenarios.archives")


def _summarise(result: dict[str, Any]) -> None:
    c = result["contenders"]
    for entry in c.values():
        entry["median"] = {k: med(entry, k) for k in
                           ("wall_s", "images_per_s", "requests", "media_requests", "media_bytes",
                            "rss_growth_mib", "first_batch_s")}
    m = {k: c[k]["median"] for k in c}
    r = result["ratios"] = {
        "zip_cold_over_local": ratio(m["cm_zip_cold"]["images_per_s"],
                                     m["local_keras"]["images_per_s"]),
        "ttfb_ritual_over_cm": ratio(m["ritual_ttfb"]["first_batch_s"],
                                     m["cm_ttfb"]["first_batch_s"]),
        "packed_cold_over_local": ratio(m["cm_packed_cold"]["images_per_s"],
                                        m["local_keras"]["images_per_s"]),
    }
    target(result, "zip_cold", "cm_zip_cold", ">= 0.8x local Keras", r["zip_cold_over_local"], 0.8,
           higher_is_better=True)
    target(result, "packed_cold", "cm_packed_cold", ">= 0.8x local Keras",
           r["packed_cold_over_local"], 0.8, higher_is_better=True)
    target(result, "ttfb", "cm_ttfb", ">= 20x faster first batch than copy+unzip",
           r["ttfb_ritual_over_cm"], 20, higher_is_better=True)
    listing_bytes = m["zip_listing"]["media_bytes"]
    target(result, "listing_bytes", "zip_listing", "<= 2 MiB sent to list 20,000 members",
           None if listing_bytes is None else listing_bytes / 1024 / 1024, 2.0,
           higher_is_better=False, unit="MiB")
    target(result, "listing_requests", "zip_listing", "<= 3 ranged requests to list",
           m["zip_listing"]["media_requests"], 3, higher_is_better=False)
    local = m["local_keras"]["images_per_s"]
    ids = {"cm_zip_cold": ("zip_cold",), "cm_packed_cold": ("packed_cold",), "cm_ttfb": ("ttfb",),
           "zip_listing": ("listing_bytes", "listing_requests")}
    for key in c:
        first = m[key].get("first_batch_s")
        text = (f"first batch {fmt(first, '.2f', ' s')}" if first is not None
                else f"{fmt(m[key]['images_per_s'], ',.0f')} images/s"
                if m[key]["images_per_s"] else
                f"{fmt((m[key]['media_bytes'] or 0) / 1024, ',.0f')} KiB sent")
        row(result, key, wall_s=m[key]["wall_s"], throughput_text=text,
            rss_growth_mib=m[key]["rss_growth_mib"], requests=m[key]["requests"],
            ratio=(fmt(ratio(m[key]["images_per_s"], local), ".2f") + "x local")
            if m[key]["images_per_s"] and first is None else "",
            target_ids=ids.get(key, ()))
    s = result["settings"]
    result["notes"].append(
        f"zip of the 2,000 JPEGs: {fmt(s.get('small_zip_bytes', 0) / 2**20, '.1f', ' MiB')}; big "
        f"archive {fmt(s.get('big_zip_bytes', 0) / 2**30, '.2f', ' GiB')} in "
        f"{s.get('big_members')} members; 20,000-member zip "
        f"{fmt(s.get('listing_zip_bytes', 0) / 2**20, '.1f', ' MiB')}; populating took "
        f"{fmt(s.get('populate_s'), '.1f', ' s')}; cm.pack of the folder took "
        f"{fmt(s.get('pack_s'), '.1f', ' s')}")
    result["notes"].append(
        "the zip and the shards are read as bytes handed to TensorFlow (decoded in its parallel "
        "map with Keras' ops); the zip's coalesced blocks and the shards are kept in the cache "
        "as one file each, with no file per image")
    result["notes"].append(
        "the ritual copies with one stream (as cp from the Drive mount does); a parallel copy "
        "would be faster, bounded by the emulator's total bandwidth")


# -- the contender side -------------------------------------------------------------------------

def _task(spec: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.child import Measure, _quiet_logs

    from .datasets import _epoch

    _quiet_logs()
    import keras
    import tensorflow as tf  # noqa: F401 - imported before the clock, as for every contender

    key = spec["task"]
    size, batch = tuple(spec["image_size"]), spec["batch_size"]
    out: dict[str, Any] = {}
    import colabmodels as cm

    if key != "local_keras" and key != "ritual_ttfb":
        cm.mount(interactive=False)
    with Measure() as m:
        if key == "local_keras":
            ds = keras.utils.image_dataset_from_directory(spec["local"], image_size=size,
                                                          batch_size=batch, seed=1, verbose=False)
            out["images_seen"] = _epoch(ds)
        elif key == "cm_zip_cold":
            ds = cm.image_dataset_from_drive(SMALL, image_size=size, batch_size=batch, seed=1,
                                             verbose=False)
            out["images_seen"] = _epoch(ds)
        elif key == "cm_packed_cold":
            ds = cm.image_dataset_from_drive(spec["shards"], image_size=size, batch_size=batch,
                                             seed=1, verbose=False)
            out["images_seen"] = _epoch(ds)
        elif key == "pack":
            ref = cm.pack(FOLDER, shard_bytes=32 * 1024 * 1024, progress=False)
            out.update(shards=ref.path, images_seen=spec["images"])
        elif key == "zip_listing":
            from colabmodels.archives import ZipArchive
            from colabmodels.storage import backend_for

            ref = cm.parse_ref(LISTING)
            backend = backend_for(ref)
            stat = backend.stat(ref)
            t_list = time.perf_counter()
            archive = ZipArchive.open(backend, stat)
            out.update(members=len(archive.members), listing_s=time.perf_counter() - t_list,
                       listing_requests=archive.directory.requests,
                       listing_bytes=archive.directory.bytes_read)
        elif key == "cm_ttfb":
            t = time.perf_counter()
            ds = cm.image_dataset_from_drive(BIG, image_size=size, batch_size=batch, seed=1,
                                             validation_split=0.1, subset="validation",
                                             verbose=False)
            it = iter(ds)
            x, _ = next(it)
            out["first_batch_s"] = time.perf_counter() - t
            seen = int(x.shape[0]) + sum(int(xb.shape[0]) for xb, _ in it)
            out.update(epoch_s=time.perf_counter() - t, epoch_images=seen)
        elif key == "ritual_ttfb":
            t = time.perf_counter()
            copy = Path(spec["work"]) / "ritual" / "big.zip"
            copy.parent.mkdir(parents=True, exist_ok=True)
            _copy_one_stream(spec, copy)
            out["copy_s"] = time.perf_counter() - t
            with zipfile.ZipFile(copy) as zf:
                zf.extractall(copy.parent / "x")
            out["unzip_s"] = time.perf_counter() - t - out["copy_s"]
            ds = keras.utils.image_dataset_from_directory(
                str(copy.parent / "x" / "big"), image_size=size, batch_size=batch, seed=1,
                validation_split=0.1, subset="validation", verbose=False)
            x, _ = next(iter(ds))
            out["first_batch_s"] = time.perf_counter() - t
        else:
            raise ValueError(key)
    out.update(m.result)
    return out


def _copy_one_stream(spec: dict[str, Any], dest: Path) -> None:
    import urllib3

    from .datasets import _service_account

    token = _service_account(spec).token
    pool = urllib3.PoolManager()
    resp = pool.request("GET", spec["endpoint"] + f"drive/v2/files/{spec['big_id']}?alt=media",
                        headers={"Authorization": f"Bearer {token}"}, preload_content=False)
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}")
    with open(dest, "wb") as fh:
        for chunk in resp.stream(1024 * 1024):
            fh.write(chunk)
    resp.release_conn()


def main(argv: list[str]) -> int:
    return run_task(argv[0], _task)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

