"""A .zip of images is a dataset: what keras.utils.image_dataset_from_directory gives on the
extracted archive, from Drive (emulator), S3 (moto) and a local path, read by ranges.

The awkward dataset of test_datasets_keras.py is zipped inside one top folder (what zipping a
folder makes) plus a ``__MACOSX/`` folder, then extracted with zipfile for Keras to read.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from tests.frameworks.test_datasets_keras import _assert_same, awkward_dataset  # noqa: E402


def _zip_bytes(files: dict[str, bytes], top: str = "ds/") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, (rel, data) in enumerate(sorted(files.items())):
            method = zipfile.ZIP_DEFLATED if i % 2 else zipfile.ZIP_STORED
            zf.writestr(top + rel, data, compress_type=method)
        zf.writestr("__MACOSX/ds/cats/._0.jpg", b"\x00\x05\x16\x07 resource fork")
    return buf.getvalue()


@pytest.fixture
def zipped_twin(drive_env, tmp_path):
    """The awkward dataset as a zip in the emulator and as Keras sees it extracted."""
    data = _zip_bytes(awkward_dataset())
    local_zip = tmp_path / "ds.zip"
    local_zip.write_bytes(data)
    with zipfile.ZipFile(local_zip) as zf:
        zf.extractall(tmp_path / "extracted")
    drive_env.put("MyDrive/data/ds.zip", data)
    return tmp_path / "extracted" / "ds", local_zip, drive_env


def _media(requests) -> list:
    return [r for r in requests if (r.query or {}).get("alt") == "media"]


def _compare(extracted: Path, ref: str, prefix: str, kwargs: dict) -> tuple:
    from colabmodels import image_dataset_from_drive

    expected = keras.utils.image_dataset_from_directory(str(extracted), verbose=False, **kwargs)
    got = image_dataset_from_drive(ref, verbose=False, **kwargs)
    pairs = (expected, got) if isinstance(expected, list) else ([expected], [got])
    for e, g in zip(*pairs, strict=True):
        assert all(p.startswith(prefix) for p in g.file_paths), g.file_paths[:2]
        assert [p[len(prefix):] for p in g.file_paths] == [
            str(Path(p).relative_to(extracted)) for p in e.file_paths]
        assert g.class_names == e.class_names
        assert _assert_same(e, g) > 0
    return expected, got


CASES = [
    dict(seed=1, image_size=(24, 24), batch_size=4),
    dict(seed=7, validation_split=0.3, subset="both", image_size=(16, 16), batch_size=5),
    dict(shuffle=False, labels=None, image_size=(12, 12), batch_size=3),
    dict(seed=3, label_mode="categorical", color_mode="grayscale", crop_to_aspect_ratio=True,
         image_size=(20, 10), class_names=["dogs", "birds"]),
]


@pytest.mark.parametrize("kwargs", CASES, ids=[str(i) for i in range(len(CASES))])
def test_drive_zip_is_keras_on_the_extracted_folder(zipped_twin, kwargs):
    extracted, _, fd = zipped_twin
    fd.reset_requests()
    _compare(extracted, "MyDrive/data/ds.zip", "MyDrive/data/ds.zip/ds/", dict(kwargs))
    media = _media(fd.requests)
    assert media and all("," not in (r.range or "") for r in media)
    assert all(r.range for r in media)  # every byte came by range; the zip was never downloaded whole


def test_drive_zip_epochs_coalesced_then_local(zipped_twin):
    from colabmodels import image_dataset_from_drive

    _, _, fd = zipped_twin
    fd.reset_requests()
    ds = image_dataset_from_drive("MyDrive/data/ds.zip", image_size=(8, 8), seed=2, verbose=False)
    first = [x.numpy() for x, _ in ds]
    media = _media(fd.requests)
    files = len(ds.file_paths)
    assert len(media) <= 3 + 2, [r.range for r in media]  # directory + one or two blocks, not one per file
    assert files > 20
    fd.reset_requests()
    second = [x.numpy() for x, _ in ds]
    assert not _media(fd.requests)
    np.testing.assert_array_equal(np.concatenate(first).sum(), np.concatenate(second).sum())
    # a new dataset object (as in a new kernel, same cache): no media at all
    again = image_dataset_from_drive("MyDrive/data/ds.zip", image_size=(8, 8), seed=2,
                                     verbose=False)
    assert sum(int(x.shape[0]) for x, _ in again) == files
    assert not _media(fd.requests)


def test_local_zip_and_sequence(zipped_twin):
    import colabmodels as cm

    extracted, local_zip, _ = zipped_twin
    _compare(extracted, str(local_zip), str(local_zip).lstrip("/") + "/ds/",
             dict(seed=5, image_size=(10, 10), validation_split=0.25, subset="training"))
    seq = cm.DriveImageSequence(local_zip, image_size=(10, 10), seed=5, batch_size=8,
                                shuffle=False)
    expected = keras.utils.image_dataset_from_directory(str(extracted), seed=5, batch_size=8,
                                                        image_size=(10, 10), shuffle=False,
                                                        verbose=False)
    assert seq.class_names == expected.class_names
    assert len(seq.file_paths) == len(expected.file_paths)
    x, y = seq[0]
    ex, ey = next(iter(expected))
    np.testing.assert_array_equal(y, ey.numpy())
    assert x.shape == tuple(ex.shape)


def test_s3_zip_dataset_and_extract(isolated, moto_server, monkeypatch, tmp_path):
    import colabmodels as cm

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    bucket = moto_server.create_bucket("zips")
    files = {k: v for k, v in awkward_dataset().items() if k.startswith(("birds/", "dogs/"))}
    data = _zip_bytes(files)
    moto_server.put_object(bucket, "sets/ds.zip", data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(tmp_path / "x")
    _compare(tmp_path / "x" / "ds", f"s3://{bucket}/sets/ds.zip", f"{bucket}/sets/ds.zip/ds/",
             dict(seed=9, image_size=(12, 12)))
    root = cm.fetch(f"s3://{bucket}/sets/ds.zip", extract=True, progress=False)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == \
        sorted(f"ds/{k}" for k in files)
    assert not (root / "__MACOSX").exists()


def test_url_zip_dataset_read_by_ranges(isolated, http_server, tmp_path):
    files = {k: v for k, v in awkward_dataset().items() if k.startswith(("cats/", "birds/"))}
    data = _zip_bytes(files)
    http_server.reset()
    url = http_server.write("sets/ds.zip", data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(tmp_path / "x")
    http_server.requests.clear()
    from colabmodels import image_dataset_from_drive

    expected = keras.utils.image_dataset_from_directory(str(tmp_path / "x" / "ds"), seed=4,
                                                        image_size=(12, 12), verbose=False)
    got = image_dataset_from_drive(url, seed=4, image_size=(12, 12), verbose=False)
    assert got.class_names == expected.class_names
    assert [p.rsplit("/ds/", 1)[1] for p in got.file_paths] == [
        str(Path(p).relative_to(tmp_path / "x" / "ds")) for p in expected.file_paths]
    assert _assert_same(expected, got) > 0
    gets = [r for r in http_server.requests if r.method == "GET"]
    assert gets and all(r.range for r in gets)  # never the whole archive in one plain GET


def test_gcs_zip_sequence_matches_keras(isolated, gcs_emulator, monkeypatch, tmp_path):
    import colabmodels as cm

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.endpoint)
    bucket = gcs_emulator.create_bucket("zips-gcs")
    files = {k: v for k, v in awkward_dataset().items() if k.startswith("dogs/")}
    files.update({f"cats/{i}.jpg": v for i, v in enumerate(
        v for k, v in awkward_dataset().items() if k.startswith("cats/") and k.endswith(".jpg"))})
    data = _zip_bytes(files)
    gcs_emulator.put_object(bucket, "sets/ds.zip", data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(tmp_path / "x")
    expected = keras.utils.image_dataset_from_directory(str(tmp_path / "x" / "ds"), seed=3,
                                                        image_size=(9, 9), shuffle=False,
                                                        batch_size=4, verbose=False)
    seq = cm.DriveImageSequence(f"gs://{bucket}/sets/ds.zip", image_size=(9, 9), seed=3,
                                shuffle=False, batch_size=4)
    assert seq.class_names == expected.class_names
    assert [p.rsplit("/ds/", 1)[1] for p in seq.file_paths] == [
        str(Path(p).relative_to(tmp_path / "x" / "ds")) for p in expected.file_paths]
    _, y = seq[0]
    np.testing.assert_array_equal(y, next(iter(expected))[1].numpy())


def test_skip_keeps_the_cardinality_known_for_a_zip(drive_env):
    """on_error="skip" on a zip: broken members are left out before the dataset is made, so its
    length is known (as for a folder) and the skipped member is named by its path."""
    from colabmodels import image_dataset_from_drive

    files = dict(awkward_dataset())
    drive_env.put("MyDrive/data/whole.zip", _zip_bytes(files))
    files["cats/broken.jpg"] = b"\xff\xd8\xff\xe0 not a jpeg at all"
    drive_env.put("MyDrive/data/broken.zip", _zip_bytes(files))
    kwargs = dict(image_size=(8, 8), batch_size=2, seed=1, verbose=False)
    whole = image_dataset_from_drive("MyDrive/data/whole.zip", **kwargs)
    good = len(whole.file_paths)
    ds = image_dataset_from_drive("MyDrive/data/broken.zip", on_error="skip", **kwargs)
    tail = "/ds/cats/broken.jpg"
    assert len(ds.file_paths) == good and not any(p.endswith(tail) for p in ds.file_paths)
    assert int(ds.cardinality()) == -(-good // 2)  # known, not UNKNOWN_CARDINALITY (-2)
    assert sum(int(x.shape[0]) for x, _ in ds) == good


def test_drive_zip_cold_keeps_blocks_not_a_file_per_member_then_warm(zipped_twin):
    """image_dataset_from_drive reads members as bytes: the cache gains one file per block
    read (no entry of member files); cold and warm (a new dataset) both equal Keras."""
    from colabmodels.cachestore import cache

    extracted, _, fd = zipped_twin
    kwargs = dict(image_size=(8, 8), seed=4, batch_size=4, label_mode="binary",
                  class_names=["cats", "dogs"])
    _compare(extracted, "MyDrive/data/ds.zip", "MyDrive/data/ds.zip/ds/", kwargs)
    entries = cache.entries()
    blobs = [e for e in entries if e.identity.startswith("zip-blob:")]
    assert 1 <= len(blobs) <= 3 and all(e.kind == "file" for e in blobs)
    assert not [e for e in entries if e.identity.startswith("zip-block:")]
    fd.reset_requests()
    _compare(extracted, "MyDrive/data/ds.zip", "MyDrive/data/ds.zip/ds/", kwargs)
    assert not _media(fd.requests)
