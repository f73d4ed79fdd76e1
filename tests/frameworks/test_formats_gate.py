"""The trust gate (issue 11): running framework versions, TorchScript as torch itself decides,
ONNX external data kept inside the model's folder, and misspelled loader options."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from colabmodels.errors import (
    NotFoundError,
    OptionError,
    UnsafeArchiveError,
    UntrustedFormatError,
)
from colabmodels.formats import load_path, sniff_format

pytestmark = pytest.mark.frameworks


# --------------------------------------------------------------------------- running versions


def test_parse_version_orders_prereleases_below_the_release():
    from colabmodels.formats.versions import is_at_least, parse_version

    assert parse_version("2.6.0+cu124") == ((2, 6, 0), True)
    assert parse_version("2.6.0a0+git1234") == ((2, 6, 0), False)
    assert parse_version("3.13.2.dev2026") == ((3, 13, 2), False)
    assert parse_version("not a version") is None
    assert is_at_least("2.10.1", (2, 6))
    assert is_at_least("2.6.0", (2, 6))
    assert not is_at_least("2.6.0rc1", (2, 6))
    assert not is_at_least("2.5.1+cu121", (2, 6))
    assert not is_at_least("garbage", (2, 6))


def test_old_running_torch_needs_trust_for_state_dicts(torch_corpus, monkeypatch):
    torch = pytest.importorskip("torch")
    sample = torch_corpus["state-dict"]
    expected = sample.original.state_dict()
    monkeypatch.setattr(torch, "__version__", "2.5.1+cu121")
    with pytest.raises(UntrustedFormatError) as err:
        load_path(sample.path)
    message = str(err.value)
    assert "2.5.1+cu121" in message and "2.6" in message and "trust=True" in message
    assert "CVE-2025-32434" in message
    loaded = load_path(sample.path, trust=True)  # the caller's own decision still works
    assert all(torch.equal(loaded[k], v) for k, v in expected.items())
    # safetensors never goes through torch.load: no trust needed on any torch
    tensors = load_path(torch_corpus["safetensors"].path)
    assert set(tensors) == set(expected)
    monkeypatch.setattr(torch, "__version__", "2.6.0")
    loaded = load_path(sample.path)
    assert all(torch.equal(loaded[k], v) for k, v in expected.items())


@pytest.mark.parametrize(
    ("running", "refused"),
    [("3.8.0", True), ("3.11.2", True), ("3.13.1", True), ("3.12.1", False), ("3.13.2", False)],
)
def test_old_running_keras_needs_trust_for_full_models(keras_corpus, monkeypatch, running, refused):
    keras = pytest.importorskip("keras")
    sample = keras_corpus["keras"]
    monkeypatch.setattr(keras, "__version__", running)
    if refused:
        with pytest.raises(UntrustedFormatError) as err:
            load_path(sample.path)
        message = str(err.value)
        assert running in message and "3.13.2" in message and "safe_mode" in message
        assert "CVE-2026-1462" in message
        model = load_path(sample.path, trust=True)
    else:
        model = load_path(sample.path)
    x = sample.extra["x"]
    np.testing.assert_allclose(
        model.predict(x, verbose=0), sample.original.predict(x, verbose=0), atol=1e-6
    )


def test_old_running_keras_still_loads_weights_files(keras_corpus, monkeypatch):
    keras = pytest.importorskip("keras")
    sample = keras_corpus["keras-weights"]
    monkeypatch.setattr(keras, "__version__", "3.8.0")
    fresh = keras.models.clone_model(sample.original)
    assert load_path(sample.path, model=fresh) is fresh  # no safe_mode involved


# --------------------------------------------------------------------------- TorchScript


def _rewrite_zip(src: Path, dest: Path, *, drop=lambda name: False, add=()) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for item in zin.infolist():
            if not drop(item.filename):
                zout.writestr(item, zin.read(item.filename))
        for name, data in add:
            zout.writestr(name, data)


def _torch_calls_it_torchscript(path: Path) -> bool:
    torch = pytest.importorskip("torch")
    reader = torch._C.PyTorchFileReader(str(path))  # what torch.load looks at
    return "constants.pkl" in reader.get_all_records()


def test_torchscript_without_code_folder_is_still_torchscript(torch_corpus, tmp_path):
    src = torch_corpus["torchscript"].path
    dest = tmp_path / "stripped.pt"
    _rewrite_zip(src, dest, drop=lambda name: "/code/" in name)
    with zipfile.ZipFile(dest) as zf:
        assert not [n for n in zf.namelist() if "/code/" in n]
    assert _torch_calls_it_torchscript(dest)
    info = sniff_format(dest)
    assert (info.name, info.executes_code) == ("torchscript", True)
    with pytest.raises(UntrustedFormatError, match="TorchScript"):
        load_path(dest)


def test_state_dict_zip_with_constants_pkl_is_torchscript(torch_corpus, tmp_path):
    """A torch.save state dict plus the constants.pkl of a TorchScript archive: torch.load
    dispatches it to torch.jit.load, so it is code, whatever data.pkl says."""
    sd_path = torch_corpus["state-dict"].path
    with zipfile.ZipFile(torch_corpus["torchscript"].path) as ts:
        constants = next(n for n in ts.namelist() if n.endswith("/constants.pkl"))
        constants_bytes = ts.read(constants)
    with zipfile.ZipFile(sd_path) as zf:
        root = zf.namelist()[0].split("/", 1)[0]
    dest = tmp_path / "weights.pt"
    _rewrite_zip(sd_path, dest, add=[(f"{root}/constants.pkl", constants_bytes)])
    assert _torch_calls_it_torchscript(dest)
    info = sniff_format(dest)
    assert (info.name, info.executes_code) == ("torchscript", True)
    with pytest.raises(UntrustedFormatError):
        load_path(dest)


# --------------------------------------------------------------------------- ONNX external data


@pytest.fixture
def onnx_external(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    values = np.arange(4096, dtype=np.float32)
    weight = numpy_helper.from_array(values, name="w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "ext",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4096])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4096])],
        initializer=[weight],
    )
    model = helper.make_model(graph, producer_name="colabmodels-tests")
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save_model(
        model,
        str(folder / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    assert (folder / "weights.bin").stat().st_size == values.nbytes
    return folder, values


def _point_external_data_at(model_path: Path, location: str) -> None:
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    model_path.write_bytes(model.SerializeToString())


def test_onnx_external_data_inside_the_folder_loads(onnx_external):
    from onnx import numpy_helper

    folder, values = onnx_external
    assert sniff_format(folder / "model.onnx").name == "onnx"
    model = load_path(folder / "model.onnx")
    np.testing.assert_array_equal(numpy_helper.to_array(model.graph.initializer[0]), values)


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_onnx_external_data_outside_the_folder_is_refused(onnx_external, how):
    folder, _values = onnx_external
    outside = folder.parent / "secret.bin"
    shutil.copy(folder / "weights.bin", outside)
    if how == "dotdot":
        _point_external_data_at(folder / "model.onnx", "../secret.bin")
    elif how == "absolute":
        _point_external_data_at(folder / "model.onnx", str(outside))
    else:
        (folder / "weights.bin").unlink()
        os.symlink(outside, folder / "weights.bin")
    with pytest.raises(UnsafeArchiveError, match="outside") as err:
        load_path(folder / "model.onnx")
    assert "secret.bin" in str(err.value) or "weights.bin" in str(err.value)


def test_onnx_missing_external_data_is_not_found(onnx_external):
    folder, _values = onnx_external
    (folder / "weights.bin").unlink()
    with pytest.raises(NotFoundError, match=r"weights\.bin"):
        load_path(folder / "model.onnx")


# --------------------------------------------------------------------------- loader options


def _loads_without_typo(request, key):
    """(path, kwargs that load it, an option it accepts) for one corpus sample."""
    corpus, name = key.split(":")
    sample = request.getfixturevalue(corpus)[name]
    kwargs = {"trust": True}
    if name in ("keras-weights", "tf-checkpoint-prefix"):
        keras = pytest.importorskip("keras")
        kwargs["model"] = keras.models.clone_model(
            request.getfixturevalue("keras_corpus")["keras"].original
        )
    return sample.path, kwargs


_ACCEPTS = {
    "keras_corpus:keras": "compile",
    "keras_corpus:keras-weights": "skip_mismatch",
    "tf_corpus:tf-savedmodel": "call_endpoint",
    "tf_corpus:tf-checkpoint-prefix": "checkpoint_key",
    "torch_corpus:state-dict": "strict",
    "torch_corpus:full": "strict",
    "torch_corpus:torchscript": "arch_kwargs",
    "torch_corpus:safetensors": "strict",
    "gensim_corpus:gensim-file": "mmap",
    "gensim_corpus:word2vec-text": "limit",
    "onnx_corpus:onnx": "load_external_data",
}


@pytest.mark.parametrize("key", sorted(_ACCEPTS))
def test_misspelled_loader_option_is_a_type_error_naming_the_accepted_ones(request, key):
    path, kwargs = _loads_without_typo(request, key)
    with pytest.raises(TypeError) as err:
        load_path(path, stirct=False, **kwargs)
    assert isinstance(err.value, OptionError)  # one of ours, and still a TypeError
    message = str(err.value)
    assert "stirct" in message and _ACCEPTS[key] in message


def test_known_options_still_pass(gensim_corpus, torch_corpus):
    kv = load_path(gensim_corpus["word2vec-text"].path, limit=2)
    assert len(kv.index_to_key) == 2
    sd = load_path(torch_corpus["state-dict"].path, strict=True)
    assert sd
