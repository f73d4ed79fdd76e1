"""A corpus of model files, written by each framework itself, stored under misleading names.

Everything is generated once per session in temporary folders (tiny models, so it is fast);
no binary is committed. Each fixture returns ``{key: Sample}``; ``Sample.path`` is the file
or folder under a name that says nothing true about it (``model.bin``, ``weights.txt``, no
suffix at all), and ``Sample.expect`` is the ``(name, framework, executes_code)`` that
``sniff_format`` must report.
"""

from __future__ import annotations

import copy
import pathlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


@dataclass
class Sample:
    path: Path
    expect: tuple[str, str, bool]
    original: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def _move(src: Path, dest: Path) -> Path:
    shutil.move(str(src), str(dest))
    return dest


class PathToucher:
    """Unpickling this object creates a file: ``pathlib.Path.touch(marker)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


# --------------------------------------------------------------------------- keras / tf


@pytest.fixture(scope="session")
def keras_corpus(tmp_path_factory) -> dict[str, Sample]:
    keras = pytest.importorskip("keras")
    pytest.importorskip("tensorflow")
    import h5py
    import numpy as np
    from keras.src.legacy.saving import legacy_h5_format

    d = tmp_path_factory.mktemp("keras")
    # The same bytes whatever ran before: layer names ("dense_17") count the layers made
    # earlier in the session, and the fuzz tier damages these files at fixed offsets.
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(2)],
        name="clf",
    )
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    out: dict[str, Sample] = {}

    model.save(d / "m.keras")
    out["keras"] = Sample(_move(d / "m.keras", d / "model.bin"), ("keras", "keras", False), model)
    model.save(d / "m.h5")
    out["keras-h5"] = Sample(
        _move(d / "m.h5", d / "weights.txt"), ("keras-h5", "keras", False), model
    )
    model.save_weights(d / "m.weights.h5")
    out["keras-weights"] = Sample(
        _move(d / "m.weights.h5", d / "blob"), ("keras-h5-weights", "keras", False), model
    )
    with h5py.File(d / "legacy.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    out["keras-weights-legacy"] = Sample(
        _move(d / "legacy.h5", d / "legacy_weights.dat"),
        ("keras-h5-weights", "keras", False),
        model,
    )

    lam = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(2),
            keras.layers.Lambda(lambda t: t * 2.0, name="double_it"),
        ]
    )
    lam.save(d / "lam.keras")
    out["keras-lambda"] = Sample(
        _move(d / "lam.keras", d / "lambda.bin"), ("keras", "keras", True), lam
    )
    lam.save(d / "lam.h5")
    out["keras-h5-lambda"] = Sample(
        _move(d / "lam.h5", d / "lambda_h5"), ("keras-h5", "keras", True), lam
    )
    for sample in out.values():
        sample.extra["x"] = x
    return out


@pytest.fixture(scope="session")
def tf_corpus(tmp_path_factory, keras_corpus) -> dict[str, Sample]:
    tf = pytest.importorskip("tensorflow")
    import numpy as np

    d = tmp_path_factory.mktemp("tf")

    class Doubler(tf.Module):
        def __init__(self):
            self.scale = tf.Variable([2.0, 3.0, 4.0])

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def __call__(self, x):
            return {"output_0": x * self.scale}

    doubler = Doubler()
    tf.saved_model.save(doubler, str(d / "anything"))
    out = {"tf-savedmodel": Sample(d / "anything", ("tf-savedmodel", "tensorflow", True), doubler)}

    model = keras_corpus["keras"].original
    model.export(str(d / "exported"), verbose=False)
    out["keras-export"] = Sample(d / "exported", ("tf-savedmodel", "tensorflow", True), model)

    ckdir = d / "ckpt_dir"
    tf.train.Checkpoint(model=model).save(str(ckdir / "ckpt"))  # ckpt-1.* + 'checkpoint' file
    out["tf-checkpoint-dir"] = Sample(ckdir, ("tf-checkpoint", "tensorflow", False), model)
    prefix = d / "plain" / "weights"
    tf.train.Checkpoint(model=model).write(str(prefix))
    out["tf-checkpoint-prefix"] = Sample(prefix, ("tf-checkpoint", "tensorflow", False), model)
    # an index renamed after download; its shard keeps the original prefix
    renamed = d / "renamed"
    renamed.mkdir()
    shutil.copy(str(prefix) + ".index", renamed / "download.bin")
    for shard in prefix.parent.glob("weights.data-*"):
        shutil.copy(shard, renamed / shard.name)
    out["tf-checkpoint-renamed"] = Sample(
        renamed / "download.bin", ("tf-checkpoint", "tensorflow", False), model
    )
    for sample in out.values():
        sample.extra["x"] = keras_corpus["keras"].extra["x"]
    out["tf-savedmodel"].extra["x"] = np.ones((2, 3), "float32")
    return out


# --------------------------------------------------------------------------- torch


@pytest.fixture(scope="session")
def torch_corpus(tmp_path_factory) -> dict[str, Sample]:
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    from nets import TinyNet

    d = tmp_path_factory.mktemp("torch")
    torch.manual_seed(0)
    net = TinyNet()
    with torch.no_grad():
        net.features[1].running_mean.uniform_()
    sd = net.state_dict()
    out: dict[str, Sample] = {}

    torch.save(sd, d / "model.bin")
    out["state-dict"] = Sample(
        d / "model.bin", ("torch-state-dict", "torch", False), copy.deepcopy(net)
    )
    torch.save(sd, d / "legacy.txt", _use_new_zipfile_serialization=False)
    out["state-dict-legacy"] = Sample(
        d / "legacy.txt", ("torch-state-dict", "torch", False), copy.deepcopy(net)
    )
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.ones(2, 3, 8, 8)).sum().backward()
    opt.step()
    opt.zero_grad()
    sd = net.state_dict()  # after one step, so optimizer state exists
    torch.save(
        {"model_state_dict": sd, "optimizer_state_dict": opt.state_dict(), "epoch": 3, "loss": 0.5},
        d / "ckpt.weights",
    )
    out["checkpoint"] = Sample(
        d / "ckpt.weights", ("torch-state-dict", "torch", False), copy.deepcopy(net)
    )
    torch.save(torch.nn.DataParallel(net).state_dict(), d / "dp")
    out["data-parallel"] = Sample(
        d / "dp", ("torch-state-dict", "torch", False), copy.deepcopy(net)
    )
    compiled = torch.compile(net)
    assert all(k.startswith("_orig_mod.") for k in compiled.state_dict())
    torch.save(compiled.state_dict(), d / "compiled.ckpt")
    out["compiled"] = Sample(
        d / "compiled.ckpt", ("torch-state-dict", "torch", False), copy.deepcopy(net)
    )

    torch.save(net, d / "full.safetensors")  # a lie of a suffix
    out["full"] = Sample(
        d / "full.safetensors", ("torch-pickle", "torch", True), copy.deepcopy(net)
    )
    torch.save(net, d / "full_legacy", _use_new_zipfile_serialization=False)
    out["full-legacy"] = Sample(
        d / "full_legacy", ("torch-pickle", "torch", True), copy.deepcopy(net)
    )

    marker = d / "MARKER"
    torch.save({"weight": torch.ones(2), "payload": PathToucher(marker)}, d / "innocent.pth")
    out["marker"] = Sample(
        d / "innocent.pth", ("torch-pickle", "torch", True), None, {"marker": marker}
    )

    net.eval()
    torch.jit.script(net).save(str(d / "scripted.pt"))
    out["torchscript"] = Sample(
        _move(d / "scripted.pt", d / "scripted.bin"),
        ("torchscript", "torch", True),
        copy.deepcopy(net),
    )
    ep = torch.export.export(net, (torch.ones(1, 3, 8, 8),))
    torch.export.save(ep, str(d / "prog.pt2"))
    out["torch-export"] = Sample(
        _move(d / "prog.pt2", d / "exported.zip"),
        ("torch-export", "torch", True),
        copy.deepcopy(net),
    )
    net.train()

    st.save_file(sd, str(d / "w.safetensors"))
    out["safetensors"] = Sample(
        _move(d / "w.safetensors", d / "weights.pt"),
        ("safetensors", "safetensors", False),
        copy.deepcopy(net),
    )
    return out


# --------------------------------------------------------------------------- gensim


@pytest.fixture(scope="session")
def doc2vec_model():
    pytest.importorskip("gensim")
    from gensim.models.doc2vec import Doc2Vec, TaggedDocument

    words = [f"w{i}" for i in range(40)]
    docs = [TaggedDocument(words[i % 30 : i % 30 + 8], [i]) for i in range(60)]
    return Doc2Vec(docs, vector_size=16, min_count=1, epochs=5, workers=1, seed=1)


@pytest.fixture(scope="session")
def gensim_corpus(tmp_path_factory, doc2vec_model) -> dict[str, Sample]:
    import numpy as np
    from gensim.models import KeyedVectors

    d = tmp_path_factory.mktemp("gensim")
    out: dict[str, Sample] = {}
    folder = d / "d2v_folder"
    folder.mkdir()
    # a small sep_limit so gensim writes sidecar .npy files as it does for big models
    doc2vec_model.save(str(folder / "d2v.bin"), sep_limit=100)
    out["gensim-file"] = Sample(folder / "d2v.bin", ("gensim", "gensim", True), doc2vec_model)
    out["gensim-dir"] = Sample(folder, ("gensim", "gensim", True), doc2vec_model)

    kv = KeyedVectors(vector_size=5)
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "épsilon"]
    kv.add_vectors(words, rng.normal(size=(5, 5)).astype("float32"))
    kv.save_word2vec_format(str(d / "v.txt"), binary=False)
    out["word2vec-text"] = Sample(
        _move(d / "v.txt", d / "vectors.bin"), ("word2vec-text", "gensim", False), kv
    )
    kv.save_word2vec_format(str(d / "v.bin"), binary=True)
    out["word2vec-binary"] = Sample(
        _move(d / "v.bin", d / "vectors.txt"), ("word2vec-binary", "gensim", False), kv
    )
    lines = [f"{w} " + " ".join(f"{v:.6f}" for v in kv[w]) for w in words]
    (d / "glove.model").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out["glove"] = Sample(d / "glove.model", ("word2vec-text", "gensim", False), kv)
    return out


# --------------------------------------------------------------------------- onnx


@pytest.fixture(scope="session")
def onnx_corpus(tmp_path_factory) -> dict[str, Sample]:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    d = tmp_path_factory.mktemp("onnx")
    bias = helper.make_tensor("bias", TensorProto.FLOAT, [3], [1.0, 2.0, 3.0])
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "bias"], ["y"])],
        "adder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
        initializer=[bias],
    )
    model = helper.make_model(graph, producer_name="colabmodels-tests")
    onnx.checker.check_model(model)
    onnx.save(model, str(d / "graph.bin"))
    return {"onnx": Sample(d / "graph.bin", ("onnx", "onnx", False), model)}
