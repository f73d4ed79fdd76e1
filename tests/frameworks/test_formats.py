"""Every format, written by its own framework under a misleading name: recognised and loaded."""

from __future__ import annotations

import numpy as np
import pytest

from colabmodels.errors import (
    ArchitectureMismatchError,
    NotFoundError,
    UnknownFormatError,
    UntrustedFormatError,
)
from colabmodels.formats import FORMAT_NAMES, FormatInfo, load_path, sniff_format

pytestmark = pytest.mark.frameworks


def _check_sniff(sample):
    info = sniff_format(sample.path)
    assert isinstance(info, FormatInfo)
    assert (info.name, info.framework, info.executes_code) == sample.expect, info
    assert info.name in FORMAT_NAMES
    return info


# --------------------------------------------------------------------------- keras


@pytest.mark.parametrize(
    "key",
    [
        "keras",
        "keras-h5",
        "keras-weights",
        "keras-weights-legacy",
        "keras-lambda",
        "keras-h5-lambda",
    ],
)
def test_keras_files_are_recognised(keras_corpus, key):
    info = _check_sniff(keras_corpus[key])
    if info.executes_code:
        assert info.details["lambda_layers"] == ["double_it"]
        assert any("double_it" in w for w in info.would_run)


@pytest.mark.parametrize("key", ["keras", "keras-h5"])
def test_keras_models_load_with_same_predictions(keras_corpus, key):
    keras = pytest.importorskip("keras")
    sample = keras_corpus[key]
    loaded = load_path(sample.path)
    assert isinstance(loaded, keras.Model)
    x = sample.extra["x"]
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), sample.original.predict(x, verbose=0), atol=1e-6
    )
    # the file was given a temporary name for Keras; nothing was left beside it
    assert not [p for p in sample.path.parent.iterdir() if p.suffix in (".keras", ".h5")]


@pytest.mark.parametrize("key", ["keras-weights", "keras-weights-legacy"])
def test_keras_weights_load_into_a_model(keras_corpus, key):
    keras = pytest.importorskip("keras")
    sample = keras_corpus[key]
    fresh = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(2)]
    )
    with pytest.raises(ArchitectureMismatchError, match="model="):
        load_path(sample.path)
    loaded = load_path(sample.path, model=fresh)
    assert loaded is fresh
    x = sample.extra["x"]
    np.testing.assert_allclose(
        fresh.predict(x, verbose=0), sample.original.predict(x, verbose=0), atol=1e-6
    )


@pytest.mark.parametrize("key", ["keras-lambda", "keras-h5-lambda"])
def test_keras_lambda_needs_trust(keras_corpus, key):
    sample = keras_corpus[key]
    with pytest.raises(UntrustedFormatError, match="double_it") as err:
        load_path(sample.path)
    assert any("double_it" in w for w in err.value.would_run)
    loaded = load_path(sample.path, trust=True)
    x = sample.extra["x"]
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), sample.original.predict(x, verbose=0), atol=1e-6
    )


# --------------------------------------------------------------------------- tensorflow


@pytest.mark.parametrize(
    "key",
    [
        "tf-savedmodel",
        "keras-export",
        "tf-checkpoint-dir",
        "tf-checkpoint-prefix",
        "tf-checkpoint-renamed",
    ],
)
def test_tf_formats_are_recognised(tf_corpus, key):
    _check_sniff(tf_corpus[key])


def test_savedmodel_file_inside_is_recognised_as_the_folder(tf_corpus):
    sample = tf_corpus["tf-savedmodel"]
    info = sniff_format(sample.path / "saved_model.pb")
    assert info.name == "tf-savedmodel"
    assert info.details["folder"] == str(sample.path)
    assert "serving_default" in info.details["signatures"]


def test_savedmodel_needs_trust_then_loads_as_tfsm_layer(tf_corpus):
    keras = pytest.importorskip("keras")
    sample = tf_corpus["tf-savedmodel"]
    with pytest.raises(UntrustedFormatError, match="graph"):
        load_path(sample.path)
    layer = load_path(sample.path, trust=True)
    assert isinstance(layer, keras.layers.TFSMLayer)
    out = layer(sample.extra["x"])
    out = out["output_0"] if isinstance(out, dict) else out
    np.testing.assert_allclose(np.asarray(out), np.ones((2, 3)) * [2.0, 3.0, 4.0])
    module = load_path(sample.path, trust=True, saved_model_api="tf")
    np.testing.assert_allclose(module(sample.extra["x"])["output_0"].numpy(), np.asarray(out))


def test_keras_export_loads_with_same_predictions(tf_corpus):
    sample = tf_corpus["keras-export"]
    layer = load_path(sample.path, trust=True)
    x = sample.extra["x"]
    out = layer(x)
    out = next(iter(out.values())) if isinstance(out, dict) else out
    np.testing.assert_allclose(np.asarray(out), sample.original.predict(x, verbose=0), atol=1e-6)


@pytest.mark.parametrize(
    "key", ["tf-checkpoint-dir", "tf-checkpoint-prefix", "tf-checkpoint-renamed"]
)
def test_tf_checkpoint_restores_into_model(tf_corpus, key):
    keras = pytest.importorskip("keras")
    sample = tf_corpus[key]
    with pytest.raises(ArchitectureMismatchError, match="model="):
        load_path(sample.path)
    fresh = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(2)]
    )
    x = sample.extra["x"]
    assert not np.allclose(fresh.predict(x, verbose=0), sample.original.predict(x, verbose=0))
    assert load_path(sample.path, model=fresh) is fresh
    np.testing.assert_allclose(
        fresh.predict(x, verbose=0), sample.original.predict(x, verbose=0), atol=1e-6
    )


def test_tf_checkpoint_index_path_and_missing_shard(tf_corpus, tmp_path):
    import shutil

    prefix = tf_corpus["tf-checkpoint-prefix"].path
    info = sniff_format(str(prefix) + ".index")
    assert info.name == "tf-checkpoint" and info.details["prefix"] == str(prefix)
    shutil.copy(str(prefix) + ".index", tmp_path / "weights.index")
    info = sniff_format(tmp_path / "weights")
    assert info.details["missing_shards"] == ["weights.data-00000-of-00001"]
    with pytest.raises(NotFoundError, match="data-00000-of-00001"):
        load_path(tmp_path / "weights", model=object())


# --------------------------------------------------------------------------- torch


@pytest.mark.parametrize(
    "key",
    [
        "state-dict",
        "state-dict-legacy",
        "checkpoint",
        "data-parallel",
        "compiled",
        "full",
        "full-legacy",
        "marker",
        "torchscript",
        "torch-export",
        "safetensors",
    ],
)
def test_torch_files_are_recognised(torch_corpus, key):
    info = _check_sniff(torch_corpus[key])
    if key.endswith("legacy"):
        assert info.details["container"] == "legacy" and info.details["legacy"] is True
    if key == "full":
        assert "nets.TinyNet" in info.would_run


@pytest.mark.parametrize("key", ["state-dict", "state-dict-legacy"])
def test_torch_state_dict_loads_equal_tensors(torch_corpus, key):
    torch = pytest.importorskip("torch")
    sample = torch_corpus[key]
    sd = load_path(sample.path)
    expected = torch.load(sample.path, weights_only=True)
    assert list(sd) == list(expected)
    for k in sd:
        torch.testing.assert_close(sd[k], expected[k])
        assert sd[k].device.type == "cpu"


def test_safetensors_loads_as_torch_and_numpy(torch_corpus):
    torch = pytest.importorskip("torch")
    sample = torch_corpus["safetensors"]
    tensors = load_path(sample.path)
    expected = sample.original.state_dict()
    assert set(tensors) == set(expected)
    for k, v in tensors.items():
        assert isinstance(v, torch.Tensor)
        torch.testing.assert_close(v, expected[k])
    arrays = load_path(sample.path, framework="numpy")
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    np.testing.assert_allclose(arrays["classifier.1.bias"], expected["classifier.1.bias"].numpy())
    info = sniff_format(sample.path)
    assert info.details["tensors"] == len(expected)


def test_full_torch_pickle_needs_trust(torch_corpus):
    torch = pytest.importorskip("torch")
    from nets import TinyNet

    for key in ("full", "full-legacy"):
        sample = torch_corpus[key]
        with pytest.raises(UntrustedFormatError, match=r"nets\.TinyNet") as err:
            load_path(sample.path)
        assert "nets.TinyNet" in err.value.would_run
        model = load_path(sample.path, trust=True)
        assert isinstance(model, TinyNet)
        for k, v in sample.original.state_dict().items():
            torch.testing.assert_close(model.state_dict()[k], v)


def test_torchscript_and_export_need_trust(torch_corpus):
    torch = pytest.importorskip("torch")
    x = torch.randn(1, 3, 8, 8)  # the exported program has a static batch of 1
    net = torch_corpus["torchscript"].original
    was_training = net.training
    net.eval()
    try:
        expected = net(x)
        for key in ("torchscript", "torch-export"):
            sample = torch_corpus[key]
            with pytest.raises(UntrustedFormatError):
                load_path(sample.path)
            loaded = load_path(sample.path, trust=True)
            if key == "torchscript":
                assert isinstance(loaded, torch.jit.ScriptModule)
                out = loaded(x)
            else:
                assert isinstance(loaded, torch.export.ExportedProgram)
                out = loaded.module()(x)
            torch.testing.assert_close(out, expected)
    finally:
        net.train(was_training)


# --------------------------------------------------------------------------- gensim


@pytest.mark.parametrize(
    "key", ["gensim-file", "gensim-dir", "word2vec-text", "word2vec-binary", "glove"]
)
def test_gensim_files_are_recognised(gensim_corpus, key):
    info = _check_sniff(gensim_corpus[key])
    if key.startswith("gensim"):
        assert info.details["class"] == "gensim.models.doc2vec.Doc2Vec"
        assert "d2v.bin.wv.vectors.npy" in info.details["needed_sidecars"]
        assert "d2v.bin.dv.vectors.npy" in info.details["needed_sidecars"]
        assert info.details["missing_sidecars"] == []
        assert set(info.details["needed_sidecars"]) <= set(info.details["sidecars"])


@pytest.mark.parametrize("key", ["gensim-file", "gensim-dir"])
def test_doc2vec_with_sidecars_round_trips(gensim_corpus, key):
    gensim = pytest.importorskip("gensim")
    sample = gensim_corpus[key]
    with pytest.raises(UntrustedFormatError, match="Doc2Vec") as err:
        load_path(sample.path)
    assert "gensim.models.doc2vec.Doc2Vec" in err.value.would_run
    model = load_path(sample.path, trust=True)
    assert isinstance(model, gensim.models.Doc2Vec)
    np.testing.assert_array_equal(model.wv.vectors, sample.original.wv.vectors)
    np.testing.assert_array_equal(model.dv.vectors, sample.original.dv.vectors)
    assert isinstance(model.wv.vectors, np.memmap)  # sidecars are memory-mapped
    assert model.infer_vector(["w1", "w2", "w3"]).shape == (16,)


def test_gensim_missing_sidecar_is_reported(gensim_corpus, tmp_path):
    import shutil

    src = gensim_corpus["gensim-file"].path
    shutil.copy(src, tmp_path / "d2v.bin")
    for p in src.parent.glob("d2v.bin.*"):
        if not p.name.endswith("dv.vectors.npy"):
            shutil.copy(p, tmp_path / p.name)
    info = sniff_format(tmp_path / "d2v.bin")
    assert info.details["missing_sidecars"] == ["d2v.bin.dv.vectors.npy"]
    with pytest.raises(NotFoundError, match=r"d2v\.bin\.dv\.vectors\.npy"):
        load_path(tmp_path / "d2v.bin", trust=True)


def test_gensim_pickle_renamed_finds_sidecars_by_original_name(gensim_corpus, tmp_path):
    import shutil

    src = gensim_corpus["gensim-file"].path
    shutil.copy(src, tmp_path / "blob")
    for p in src.parent.glob("d2v.bin.*"):
        shutil.copy(p, tmp_path / p.name)
    info = sniff_format(tmp_path / "blob")
    assert info.details["sidecar_prefix"] == "d2v.bin"
    model = load_path(tmp_path / "blob", info=info, trust=True)
    np.testing.assert_array_equal(
        model.dv.vectors, gensim_corpus["gensim-file"].original.dv.vectors
    )


@pytest.mark.parametrize("key", ["word2vec-text", "word2vec-binary", "glove"])
def test_word2vec_loads_without_trust(gensim_corpus, key):
    gensim = pytest.importorskip("gensim")
    sample = gensim_corpus[key]
    kv = load_path(sample.path)
    assert isinstance(kv, gensim.models.KeyedVectors)
    assert list(kv.index_to_key) == list(sample.original.index_to_key)
    np.testing.assert_allclose(kv.vectors, sample.original.vectors, atol=1e-5)


# --------------------------------------------------------------------------- onnx


def test_onnx_recognised_and_loaded(onnx_corpus):
    sample = onnx_corpus["onnx"]
    info = _check_sniff(sample)
    assert info.details["producer"] == "colabmodels-tests"
    model = load_path(sample.path)
    assert model.SerializeToString() == sample.original.SerializeToString()


def test_saved_model_pb_alone_is_not_onnx(tf_corpus, tmp_path):
    import shutil

    shutil.copy(tf_corpus["tf-savedmodel"].path / "saved_model.pb", tmp_path / "graph.bin")
    with pytest.raises(UnknownFormatError):
        sniff_format(tmp_path / "graph.bin")


# --------------------------------------------------------------------------- framework choice


def test_framework_that_cannot_load_the_format_is_refused(torch_corpus):
    with pytest.raises(UnknownFormatError, match="framework='keras'"):
        load_path(torch_corpus["state-dict"].path, framework="keras")


def test_unzipped_keras_folder(keras_corpus, tmp_path):
    model = keras_corpus["keras"].original
    model.save(tmp_path / "kdir", zipped=False)
    info = sniff_format(tmp_path / "kdir")
    assert (info.name, info.details["unzipped"]) == ("keras", True)
    x = keras_corpus["keras"].extra["x"]
    loaded = load_path(tmp_path / "kdir", info=info)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_folder_with_one_model_and_a_manifest(torch_corpus, tmp_path):
    import shutil

    shutil.copy(torch_corpus["safetensors"].path, tmp_path / "model.safetensors")
    (tmp_path / "manifest.json").write_text('{"format": "safetensors", "files": []}')
    (tmp_path / "README.md").write_text("weights of a tiny net\n")
    info = sniff_format(tmp_path)
    assert info.name == "safetensors" and info.details["file"] == str(
        tmp_path / "model.safetensors"
    )
    assert set(load_path(tmp_path)) == set(torch_corpus["safetensors"].original.state_dict())
    shutil.copy(torch_corpus["state-dict"].path, tmp_path / "other.bin")
    with pytest.raises(UnknownFormatError, match="several models"):
        sniff_format(tmp_path)


def test_checkpoint_with_numpy_values_is_still_a_state_dict(torch_corpus, tmp_path):
    torch = pytest.importorskip("torch")
    net = torch_corpus["state-dict"].original
    torch.save(
        {
            "state_dict": net.state_dict(),
            "best_acc": np.float64(0.93),
            "history": np.arange(4.0),
            "labels": np.array(["cat", "dog"]),
        },
        tmp_path / "ckpt",
    )
    info = sniff_format(tmp_path / "ckpt")
    assert (info.name, info.executes_code) == ("torch-state-dict", False)
    loaded = load_path(tmp_path / "ckpt")
    assert loaded["best_acc"] == np.float64(0.93) and list(loaded["labels"]) == ["cat", "dog"]
    model = load_path(tmp_path / "ckpt", info=info, arch="nets:TinyNet")
    torch.testing.assert_close(model.classifier[1].weight, net.classifier[1].weight)
