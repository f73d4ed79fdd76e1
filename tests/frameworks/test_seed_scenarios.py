"""The seed scenarios: what users do, end to end, against the Drive emulator, moto and a GCS emulator."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import colabmodels as cm

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")


def media(fd):
    return [r for r in fd.requests if r.query.get("alt") == "media"]


@pytest.fixture(scope="module")
def keras_h5(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)]
    )
    path = tmp_path_factory.mktemp("k") / "clf.h5"
    model.save(path)
    return model, path


@pytest.fixture(scope="module")
def vgg_pth(tmp_path_factory):
    from seed_nets import TinyVGG

    torch.manual_seed(0)
    net = TinyVGG()
    path = tmp_path_factory.mktemp("t") / "vgg.pth"
    torch.save(net.state_dict(), path)
    return net, path


def test_1_keras_h5_and_torch_pth_by_link_second_call_downloads_nothing(
    drive_env, keras_h5, vgg_pth
):
    model, h5 = keras_h5
    net, pth = vgg_pth
    kid = drive_env.put("MyDrive/shared/clf.h5", h5, public=True)
    tid = drive_env.put("MyDrive/shared/vgg.pth", pth, public=True)
    kmodel = cm.load_model(
        f"https://drive.google.com/file/d/{kid}/view?usp=sharing", progress=False
    )
    state = cm.load_model(f"https://drive.google.com/open?id={tid}", progress=False)
    x = np.ones((3, 6), "float32")
    np.testing.assert_allclose(kmodel.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert set(state) == set(net.state_dict())
    downloads = len(media(drive_env))
    cm.load_model(f"https://drive.google.com/uc?id={kid}&export=download", progress=False)
    cm.load_model(tid, progress=False)
    assert len(media(drive_env)) == downloads == 2


def test_2_tf_savedmodel_on_gcs_loads(isolated, gcs_emulator, monkeypatch, tmp_path):
    tf = pytest.importorskip("tensorflow")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.endpoint)

    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def __call__(self, x):
            return {"output_0": 2.0 * x}

    local = tmp_path / "sm"
    tf.saved_model.save(Doubler(), str(local))
    bucket = gcs_emulator.create_bucket("models-sm")
    for p in local.rglob("*"):
        if p.is_file():
            gcs_emulator.put_object(
                bucket, f"doubler/{p.relative_to(local).as_posix()}", p.read_bytes()
            )
    from colabmodels.errors import UntrustedFormatError

    with pytest.raises(UntrustedFormatError):
        cm.load_model(f"gs://{bucket}/doubler", progress=False)
    layer = cm.load_model(f"gs://{bucket}/doubler", trust=True, progress=False)
    out = layer(np.ones((2, 3), "float32"))
    out = out["output_0"] if isinstance(out, dict) else out
    np.testing.assert_allclose(np.asarray(out), 2 * np.ones((2, 3)))


def test_3_doc2vec_saved_to_drive_with_metadata_then_loaded(drive_env):
    gensim = pytest.importorskip("gensim")
    from gensim.models.doc2vec import Doc2Vec, TaggedDocument

    words = [f"w{i}" for i in range(40)]
    docs = [TaggedDocument(words[i % 30 : i % 30 + 8], [i]) for i in range(60)]
    model = Doc2Vec(docs, vector_size=16, min_count=1, epochs=5, workers=1, seed=1)
    meta = {"version": "2026.11", "training data": "synthetic corpus of 60 documents"}
    info = cm.save_model(model, "MyDrive/models/d2v", metadata=meta, progress=False)
    assert info.version == 1 and info.ref.endswith("@v1")
    [listed] = cm.versions("MyDrive/models/d2v")
    assert listed.metadata == meta and listed.framework == "gensim"
    # the manifest is mirrored into Drive properties of the version folder
    session = cm.mount()
    folder_id = session.resolve("MyDrive/models/d2v/v1")
    props = {
        p["key"]: p["value"]
        for p in session.service.files()
        .get(fileId=folder_id)
        .execute(http=session.http())
        .get("properties", [])
    }
    assert props["meta_version"] == "2026.11" and props["cm_framework"] == "gensim"
    loaded = cm.load_model("MyDrive/models/d2v@latest", trust=True, progress=False)
    assert isinstance(loaded, gensim.models.Doc2Vec)
    vec = loaded.infer_vector(words[:5])
    assert vec.shape == (16,)
    np.testing.assert_allclose(loaded.dv[0], model.dv[0])


def test_4_vgg_weights_into_arch_thousand_loads_one_download(drive_env, vgg_pth):
    net, pth = vgg_pth
    fid = drive_env.put("MyDrive/models/vgg.pth", pth)
    x = torch.ones(1, 3, 32, 32)
    for _ in range(1000):
        loaded = cm.load_model(fid, arch="seed_nets:TinyVGG", progress=False)
    assert type(loaded).__name__ == "TinyVGG"
    torch.testing.assert_close(loaded.eval()(x), net.eval()(x))
    assert len(media(drive_env)) == 1


def test_4b_same_from_s3(isolated, moto_server, monkeypatch, vgg_pth):
    net, pth = vgg_pth
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    bucket = moto_server.create_bucket("weights")
    moto_server.put_object(bucket, "vgg/vgg.pth", pth.read_bytes())
    from colabmodels.storage import get_backend

    backend = get_backend("s3")
    calls = {"n": 0}
    original = backend.open_range

    def counting(ref, start, end):
        calls["n"] += 1
        return original(ref, start, end)

    monkeypatch.setattr(backend, "open_range", counting)
    for _ in range(1000):
        loaded = cm.load_model(
            f"s3://{bucket}/vgg/vgg.pth", arch="seed_nets:TinyVGG", progress=False
        )
    x = torch.ones(1, 3, 32, 32)
    torch.testing.assert_close(loaded.eval()(x), net.eval()(x))
    assert calls["n"] == 1


def test_5_versions_v1_v2_latest(drive_env):
    from seed_nets import TinyVGG

    a, b = TinyVGG(), TinyVGG()
    info1 = cm.save_model(a, "MyDrive/models/vgg", metadata={"acc": 0.5}, progress=False)
    info2 = cm.save_model(b, "MyDrive/models/vgg", metadata={"acc": 0.9}, progress=False)
    assert (info1.version, info2.version) == (1, 2)
    assert [v.version for v in cm.versions("MyDrive/models/vgg")] == [1, 2]
    x = torch.ones(1, 3, 32, 32)
    v1 = cm.load_model("MyDrive/models/vgg@v1", progress=False)
    v2 = cm.load_model("MyDrive/models/vgg@latest", progress=False)
    torch.testing.assert_close(v1.eval()(x), a.eval()(x))
    torch.testing.assert_close(v2.eval()(x), b.eval()(x))
    assert cm.versions("MyDrive/models/vgg")[1].metadata == {"acc": 0.9}
    from colabmodels.errors import VersionError

    with pytest.raises(VersionError, match="has no v7"):
        cm.load_model("MyDrive/models/vgg@v7", progress=False)


def test_concurrent_saves_get_different_versions(drive_env):
    from seed_nets import TinyVGG

    cm.mount()
    results, errors = [], []

    def save():
        try:
            results.append(cm.save_model(TinyVGG(), "MyDrive/models/race", progress=False).version)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=save) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == sorted(set(results)) and len(results) == 4
    assert [v.version for v in cm.versions("MyDrive/models/race")] == sorted(results)


def test_failed_upload_leaves_no_complete_version(drive_env, monkeypatch):
    from seed_nets import TinyVGG

    from colabmodels.errors import ColabModelsError

    monkeypatch.setenv("COLABMODELS_MAX_RETRIES", "1")
    drive_env.fail_next("500", path_contains="/upload/")
    with pytest.raises(ColabModelsError):
        cm.save_model(TinyVGG(), "MyDrive/models/broken", progress=False)
    assert cm.versions("MyDrive/models/broken") == []
    monkeypatch.setenv("COLABMODELS_MAX_RETRIES", "8")
    info = cm.save_model(TinyVGG(), "MyDrive/models/broken", progress=False)
    assert [v.version for v in cm.versions("MyDrive/models/broken")] == [info.version]


def test_save_to_local_folder_and_s3(isolated, moto_server, monkeypatch, tmp_path):
    from seed_nets import TinyVGG

    net = TinyVGG()
    info = cm.save_model(net, tmp_path / "models" / "vgg", metadata={"k": "v"}, progress=False)
    assert (tmp_path / "models" / "vgg" / "v1" / "manifest.json").exists()
    assert cm.versions(tmp_path / "models" / "vgg")[0].metadata == {"k": "v"}
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    bucket = moto_server.create_bucket("saves")
    info = cm.save_model(net, f"s3://{bucket}/vgg", progress=False)
    again = cm.save_model(net, f"s3://{bucket}/vgg", progress=False)
    assert (info.version, again.version) == (1, 2)
    x = torch.ones(1, 3, 32, 32)
    from colabmodels.errors import UntrustedFormatError

    with pytest.raises(UntrustedFormatError, match="seed_nets:TinyVGG"):  # S3 has no owner to ask
        cm.load_model(f"s3://{bucket}/vgg@v1", progress=False)
    torch.testing.assert_close(
        cm.load_model(f"s3://{bucket}/vgg@v1", arch="seed_nets:TinyVGG", progress=False).eval()(x),
        net.eval()(x),
    )


def test_repeated_loads_sniff_the_cached_file_once(drive_env, vgg_pth, monkeypatch):
    import colabmodels.formats

    _, pth = vgg_pth
    fid = drive_env.put("MyDrive/models/sniff-once.pth", pth)
    calls = []
    real = colabmodels.formats.sniff_format

    def counting(path, **kwargs):
        calls.append(path)
        return real(path, **kwargs)

    monkeypatch.setattr(colabmodels.formats, "sniff_format", counting)
    for _ in range(5):
        cm.load_model(fid, arch="seed_nets:TinyVGG", progress=False)
    assert len(calls) == 1
    assert len(media(drive_env)) == 1
