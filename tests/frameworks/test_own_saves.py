"""Issue 12: a user's own save loads back without trust=True; the same files from another user
do not; metadata JSON cannot hold as such is converted."""

from __future__ import annotations

import datetime as dt
import json

import pytest

import colabmodels as cm
from colabmodels.errors import UntrustedFormatError

gensim = pytest.importorskip("gensim")
np = pytest.importorskip("numpy")


def _word2vec():
    from gensim.models import Word2Vec

    sentences = [[f"w{(i + j) % 25}" for j in range(6)] for i in range(40)]
    return Word2Vec(sentences, vector_size=8, min_count=1, epochs=2, workers=1, seed=3)


def test_own_gensim_save_loads_back_without_trust(drive_env):
    model = _word2vec()
    info = cm.save_model(model, "MyDrive/models/w2v", progress=False)
    loaded = cm.load_model(info.ref, progress=False)  # no trust=True: it is the user's own save
    assert isinstance(loaded, gensim.models.Word2Vec)
    np.testing.assert_allclose(loaded.wv["w3"], model.wv["w3"])
    latest = cm.load_model("MyDrive/models/w2v@latest", progress=False)
    np.testing.assert_allclose(latest.wv["w3"], model.wv["w3"])


def test_the_same_files_from_another_user_still_need_trust(drive_env):
    info = cm.save_model(_word2vec(), "MyDrive/models/w2v-src", progress=False)
    bob = drive_env.add_user("bob@example.com")
    for f in [*info.files, {"path": "manifest.json"}]:
        data = drive_env.get(f"MyDrive/models/w2v-src/v1/{f['path']}")
        drive_env.put(f"MyDrive/shared-w2v/v1/{f['path']}", data, owner=bob)
    drive_env.share("MyDrive/shared-w2v", readers=[drive_env.default_user], owner=bob)

    with pytest.raises(UntrustedFormatError) as refused:
        cm.load_model("SharedWithMe/shared-w2v@v1", progress=False)
    assert "trust=True" in str(refused.value)
    loaded = cm.load_model("SharedWithMe/shared-w2v@v1", trust=True, progress=False)
    assert isinstance(loaded, gensim.models.Word2Vec)


def test_offline_own_save_needs_trust(drive_env, monkeypatch):
    info = cm.save_model(_word2vec(), "MyDrive/models/w2v-off", progress=False)
    cm.load_model(info.ref, progress=False)  # cached, and the versions listed
    monkeypatch.setenv("COLABMODELS_OFFLINE", "1")
    with pytest.raises(UntrustedFormatError):  # Drive cannot be asked whose files they are
        cm.load_model(info.ref, progress=False)
    assert isinstance(cm.load_model(info.ref, trust=True, progress=False), gensim.models.Word2Vec)


def test_metadata_numpy_datetime_and_nested_values(drive_env):
    torch = pytest.importorskip("torch")
    when = dt.datetime(2026, 11, 29, 12, 30, tzinfo=dt.timezone.utc)
    meta = {
        "acc": np.float32(0.875),
        "epochs": np.int64(3),
        "when": when,
        "day": dt.date(2026, 11, 29),
        "config": {"lr": np.float64(0.001), "layers": [np.int32(64), 32], "opt": {"name": "adam"}},
        "curve": np.array([0.5, 0.25]),
    }
    info = cm.save_model({"w": torch.ones(2)}, "MyDrive/models/meta", metadata=meta, progress=False)
    expected = {"acc": 0.875, "epochs": 3, "when": "2026-11-29T12:30:00+00:00",
                "day": "2026-11-29", "config": {"lr": 0.001, "layers": [64, 32],
                                                  "opt": {"name": "adam"}},
                "curve": [0.5, 0.25]}
    assert info.metadata == expected
    [listed] = cm.versions("MyDrive/models/meta")
    assert listed.metadata == expected
    folder = drive_env.metadata("MyDrive/models/meta/v1")
    description = folder["description"]
    assert 'config={"lr": 0.001, "layers": [64, 32], "opt": {"name": "adam"}}' in description
    assert "np.float" not in description and "datetime" not in description and "{'" not in description
    props = {p["key"]: p["value"] for p in folder.get("properties", [])}
    assert json.loads(props["meta_config"]) == expected["config"]
    assert props["meta_acc"] == "0.875"
