"""``save_object`` writes what each framework recommends and it loads back the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from colabmodels.errors import UnknownFormatError
from colabmodels.formats import SavedFiles, load_path, save_object, sniff_format

pytestmark = pytest.mark.frameworks


def _all_files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def _check_listing(saved: SavedFiles, dest: Path) -> None:
    assert isinstance(saved, SavedFiles)
    assert saved.files == _all_files(dest)  # exactly what was written, relative, sorted
    assert saved.framework_version


def test_keras_model_saves_as_keras_zip(keras_corpus, tmp_path):
    keras = pytest.importorskip("keras")
    model = keras_corpus["keras"].original
    saved = save_object(model, tmp_path)
    _check_listing(saved, tmp_path)
    assert (saved.format, saved.framework, saved.files) == ("keras", "keras", [Path("model.keras")])
    assert saved.framework_version == keras.__version__
    x = keras_corpus["keras"].extra["x"]
    loaded = load_path(tmp_path)  # a folder with one model file
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    with pytest.raises(FileExistsError):
        save_object(model, tmp_path)


def test_torch_module_saves_as_safetensors_with_arch(torch_corpus, tmp_path):
    torch = pytest.importorskip("torch")
    net = torch_corpus["state-dict"].original
    saved = save_object(net, tmp_path, name="vgg")
    _check_listing(saved, tmp_path)
    assert saved.format == "safetensors" and saved.files == [Path("vgg.safetensors")]
    assert saved.model_path == Path("vgg.safetensors")
    assert saved.extra["arch"] == "nets:TinyNet"
    model = load_path(tmp_path / saved.files[0], arch=saved.extra["arch"])
    for k, v in net.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)


def test_tied_weights_survive_safetensors(tmp_path):
    torch = pytest.importorskip("torch")
    from nets import TiedNet

    net = TiedNet()
    saved = save_object(net, tmp_path)
    model = load_path(tmp_path / saved.files[0], arch="nets:TiedNet")
    idx = torch.tensor([0, 3])
    torch.testing.assert_close(model(idx), net(idx))
    assert model.head.weight is model.embed.weight


def test_local_class_has_no_arch(tmp_path):
    torch = pytest.importorskip("torch")

    class Local(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)

    saved = save_object(Local(), tmp_path)
    assert saved.extra["arch"] is None


def test_containers_record_no_arch_and_load_back_as_state_dict(tmp_path):
    """``nn.Sequential()`` builds an empty model, so its class name is no architecture."""
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    saved = save_object(net, tmp_path)
    assert saved.extra["class"] == "torch.nn.modules.container.Sequential"
    assert saved.extra["arch"] is None
    state = load_path(tmp_path / saved.files[0])
    assert sorted(state) == ["0.bias", "0.weight"]
    rebuilt = load_path(tmp_path / saved.files[0],
                        arch=lambda: torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()))
    x = torch.ones(1, 4)
    torch.testing.assert_close(rebuilt(x), net(x))


def test_torch_pickle_only_when_asked(torch_corpus, tmp_path):
    from nets import TinyNet

    saved = save_object(torch_corpus["state-dict"].original, tmp_path, format="torch-pickle")
    assert saved.format == "torch-pickle"
    info = sniff_format(tmp_path / saved.files[0])
    assert info.name == "torch-pickle" and "nets.TinyNet" in info.would_run
    assert isinstance(load_path(tmp_path / saved.files[0], trust=True), TinyNet)


def test_tensor_dicts_save_as_safetensors(tmp_path):
    torch = pytest.importorskip("torch")
    tensors = {"a": torch.arange(6.0).reshape(2, 3).t(), "b": torch.ones(2, dtype=torch.int64)}
    saved = save_object(tensors, tmp_path / "t")
    assert saved.format == "safetensors" and saved.framework == "torch"
    loaded = load_path(tmp_path / "t" / saved.files[0])
    for k, v in tensors.items():
        torch.testing.assert_close(loaded[k], v)
    arrays = {"x": np.arange(4, dtype="float32"), "y": np.eye(2)}
    saved = save_object(arrays, tmp_path / "n")
    assert saved.framework == "numpy"
    loaded = load_path(tmp_path / "n" / saved.files[0], framework="numpy")
    for k, v in arrays.items():
        np.testing.assert_array_equal(loaded[k], v)


def test_script_module_saves_as_torchscript(torch_corpus, tmp_path):
    torch = pytest.importorskip("torch")
    net = torch_corpus["state-dict"].original.eval()
    scripted = torch.jit.script(net)
    saved = save_object(scripted, tmp_path)
    assert saved.format == "torchscript"
    loaded = load_path(tmp_path / saved.files[0], trust=True)
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(loaded(x), net(x))
    net.train()


def test_gensim_model_saves_as_folder_and_round_trips(doc2vec_model, tmp_path):
    gensim = pytest.importorskip("gensim")
    saved = save_object(doc2vec_model, tmp_path)
    _check_listing(saved, tmp_path)
    assert saved.format == "gensim" and saved.files == [Path("model/model.model")]
    assert saved.model_path == Path("model")
    loaded = load_path(tmp_path, trust=True)  # the folder: found inside model/
    assert isinstance(loaded, gensim.models.Doc2Vec)
    np.testing.assert_array_equal(loaded.dv.vectors, doc2vec_model.dv.vectors)
    assert loaded.infer_vector(["w1", "w2"]).shape == (16,)


def test_gensim_save_passes_sep_limit_and_lists_sidecars(doc2vec_model, tmp_path):
    saved = save_object(doc2vec_model, tmp_path, sep_limit=100)
    _check_listing(saved, tmp_path)
    names = {p.name for p in saved.files}
    assert {"model.model.wv.vectors.npy", "model.model.dv.vectors.npy"} <= names
    loaded = load_path(tmp_path / "model", trust=True)
    np.testing.assert_array_equal(loaded.wv.vectors, doc2vec_model.wv.vectors)


def test_word_vectors_save_as_word2vec(gensim_corpus, tmp_path):
    kv = gensim_corpus["word2vec-text"].original
    saved = save_object(kv, tmp_path, format="word2vec-binary")
    assert sniff_format(tmp_path / saved.files[0]).name == "word2vec-binary"
    np.testing.assert_allclose(load_path(tmp_path / saved.files[0]).vectors, kv.vectors)


def test_tf_module_saves_as_savedmodel(tf_corpus, tmp_path):
    doubler = tf_corpus["tf-savedmodel"].original
    saved = save_object(doubler, tmp_path)
    _check_listing(saved, tmp_path)
    assert saved.format == "tf-savedmodel" and Path("model/saved_model.pb") in saved.files
    assert saved.model_path == Path("model")
    assert sniff_format(tmp_path / "model").name == "tf-savedmodel"
    layer = load_path(tmp_path, trust=True)
    out = layer(np.ones((1, 3), "float32"))
    out = out["output_0"] if isinstance(out, dict) else out
    np.testing.assert_allclose(np.asarray(out), [[2.0, 3.0, 4.0]])


def test_onnx_model_saves(onnx_corpus, tmp_path):
    model = onnx_corpus["onnx"].original
    saved = save_object(model, tmp_path)
    assert saved.format == "onnx"
    assert load_path(tmp_path / saved.files[0]).SerializeToString() == model.SerializeToString()


def test_unsupported_objects_and_formats(torch_corpus, tmp_path):
    with pytest.raises(UnknownFormatError, match="cannot save"):
        save_object(object(), tmp_path)
    with pytest.raises(UnknownFormatError, match="unknown format"):
        save_object(torch_corpus["state-dict"].original, tmp_path, format="pickle")
    with pytest.raises(UnknownFormatError, match="torch modules save as"):
        save_object(torch_corpus["state-dict"].original, tmp_path, format="keras")
