"""Issue 12: a gensim main file alone fetches its sidecars from the same folder; a TensorFlow
checkpoint prefix (what ``ckpt.save()`` returns, no object of its own) fetches its files; error
messages name what the user typed."""

from __future__ import annotations

import pytest

import colabmodels as cm
from colabmodels.errors import NotFoundError, UntrustedFormatError


@pytest.fixture
def d2v_with_sidecars(tmp_path):
    pytest.importorskip("gensim")
    from gensim.models.doc2vec import Doc2Vec, TaggedDocument

    docs = [TaggedDocument([f"w{(i + j) % 30}" for j in range(8)], [i]) for i in range(50)]
    model = Doc2Vec(docs, vector_size=8, min_count=1, epochs=2, workers=1, seed=1)
    folder = tmp_path / "d2v"
    folder.mkdir()
    model.save(str(folder / "d2v.model"), sep_limit=0)  # every array in its own .npy sidecar
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert len(files) > 1, files.keys()
    return model, files


def test_gensim_main_file_alone_brings_its_sidecars(drive_env, d2v_with_sidecars):
    import numpy as np

    model, files = d2v_with_sidecars
    ids = {name: drive_env.put(f"MyDrive/m/{name}", data) for name, data in files.items()}
    unrelated = drive_env.put("MyDrive/m/unrelated.bin", b"not fetched")
    with pytest.raises(UntrustedFormatError) as refused:
        cm.load_model("MyDrive/m/d2v.model", progress=False)
    assert "MyDrive/m/d2v.model" in str(refused.value)  # the user's words, not the cache path
    loaded = cm.load_model("MyDrive/m/d2v.model", trust=True, progress=False)
    np.testing.assert_allclose(loaded.dv[0], model.dv[0])
    # by share link (an id only): the folder is found through Drive
    again = cm.load_model(f"https://drive.google.com/file/d/{ids['d2v.model']}/view", trust=True,
                          progress=False)
    np.testing.assert_allclose(again.dv[3], model.dv[3])
    media = [r.path for r in drive_env.requests if r.query.get("alt") == "media"]
    assert any(ids["d2v.model"] in m for m in media) and not any(unrelated in m for m in media)


def test_gensim_main_file_with_a_sidecar_missing_says_which(drive_env, d2v_with_sidecars):
    _model, files = d2v_with_sidecars
    sidecars = sorted(n for n in files if n != "d2v.model")
    for name, data in files.items():
        if name != sidecars[0]:
            drive_env.put(f"MyDrive/m2/{name}", data)
    with pytest.raises(NotFoundError) as info:
        cm.load_model("MyDrive/m2/d2v.model", trust=True, progress=False)
    assert sidecars[0] in str(info.value) and "MyDrive/m2/d2v.model" in str(info.value)


@pytest.fixture
def checkpoint(tmp_path):
    tf = pytest.importorskip("tensorflow")
    v = tf.Variable([1.0, 2.0, 3.0])
    prefix = tf.train.Checkpoint(v=v).save(str(tmp_path / "ckpt" / "model"))
    return tf, prefix, tmp_path / "ckpt"


def test_checkpoint_prefix_on_drive_and_gcs(drive_env, gcs_emulator, monkeypatch, checkpoint):
    tf, prefix, folder = checkpoint
    name = prefix.rsplit("/", 1)[-1]
    assert name == "model-1"
    for p in folder.iterdir():
        drive_env.put(f"MyDrive/ckpt/{p.name}", p.read_bytes())
    target = tf.Variable([0.0, 0.0, 0.0])
    restored = cm.load_model(f"MyDrive/ckpt/{name}", checkpoint=tf.train.Checkpoint(v=target),
                             progress=False)
    assert restored is not None
    assert target.numpy().tolist() == [1.0, 2.0, 3.0]

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.endpoint)
    bucket = gcs_emulator.create_bucket("ckpts")
    for p in folder.iterdir():
        gcs_emulator.put_object(bucket, f"run/ckpt/{p.name}", p.read_bytes())
    other = tf.Variable([0.0, 0.0, 0.0])
    cm.load_model(f"gs://{bucket}/run/ckpt/{name}", checkpoint=tf.train.Checkpoint(v=other),
                  progress=False)
    assert other.numpy().tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(NotFoundError):
        cm.load_model(f"gs://{bucket}/run/ckpt/model-7", progress=False)
