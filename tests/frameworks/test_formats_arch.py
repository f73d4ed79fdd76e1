"""``arch=``: state dicts from real training setups fit into a freshly built architecture."""

from __future__ import annotations

import pytest

from colabmodels.errors import ArchitectureMismatchError, MissingDependencyError
from colabmodels.formats import load_path

pytestmark = pytest.mark.frameworks

torch = pytest.importorskip("torch")


def _assert_same_weights(model, reference):
    got, want = model.state_dict(), reference.state_dict()
    assert list(got) == list(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k])


@pytest.mark.parametrize(
    ("key", "arch"),
    [
        ("state-dict", "nets:TinyNet"),
        ("state-dict-legacy", "nets.TinyNet"),
        ("data-parallel", "nets:TinyNet"),  # 'module.' prefix
        ("compiled", "nets.TinyNet"),  # '_orig_mod.' prefix (torch.compile)
        ("checkpoint", "nets:tiny_net"),  # {'model_state_dict', 'optimizer_state_dict', ...}
        ("safetensors", "nets:TinyNet"),
    ],
)
def test_state_dicts_fit_into_arch_by_dotted_path(torch_corpus, key, arch):
    from nets import TinyNet

    sample = torch_corpus[key]
    model = load_path(sample.path, arch=arch)
    assert type(model) is TinyNet
    assert model.training  # the mode the architecture built it in
    _assert_same_weights(model, sample.original)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(model.eval()(x), sample.original.eval()(x))
    sample.original.train()


def test_arch_callable_with_kwargs(torch_corpus):
    from nets import TinyNet, tiny_net

    model = load_path(
        torch_corpus["data-parallel"].path, arch=tiny_net, arch_kwargs={"num_classes": 3}
    )
    assert isinstance(model, TinyNet)
    _assert_same_weights(model, torch_corpus["data-parallel"].original)


def test_full_pickle_refits_into_arch_with_trust(torch_corpus):
    from nets import TinyNet

    model = load_path(torch_corpus["full"].path, arch=TinyNet, trust=True)
    _assert_same_weights(model, torch_corpus["full"].original)


def test_mismatched_arch_lists_missing_unexpected_and_shapes(torch_corpus):
    with pytest.raises(ArchitectureMismatchError) as err:
        load_path(torch_corpus["data-parallel"].path, arch="nets:WideNet")
    text = str(err.value)
    assert "missing from the file (2): extra.weight, extra.bias" in text
    assert "shape mismatch (2)" in text
    assert "classifier.1.weight: file (3, 64) vs model (4, 64)" in text
    assert "stripped prefix 'module.'" in text
    assert err.value.missing == ["extra.weight", "extra.bias"]
    assert len(err.value.mismatched) == 2
    # strict=False tolerates missing keys but never a shape mismatch
    with pytest.raises(ArchitectureMismatchError, match="shape mismatch"):
        load_path(torch_corpus["data-parallel"].path, arch="nets:WideNet", strict=False)


def test_unexpected_keys_and_strict_false(torch_corpus, tmp_path):
    from nets import TinyNet

    sd = dict(torch_corpus["state-dict"].original.state_dict())
    sd["head.weight"] = torch.zeros(2)
    del sd["features.1.num_batches_tracked"]
    torch.save(sd, tmp_path / "extra.pt")
    with pytest.raises(ArchitectureMismatchError) as err:
        load_path(tmp_path / "extra.pt", arch=TinyNet)
    text = str(err.value)
    assert "unexpected in the file (1): head.weight" in text
    assert "missing from the file (1): features.1.num_batches_tracked" in text
    assert "strict=False" in text
    model = load_path(tmp_path / "extra.pt", arch=TinyNet, strict=False)
    torch.testing.assert_close(model.classifier[1].weight, sd["classifier.1.weight"])


def test_unknown_arch_module_says_how_to_install(torch_corpus):
    with pytest.raises(MissingDependencyError, match="pip install nonexistent_pkg_xyz"):
        load_path(torch_corpus["state-dict"].path, arch="nonexistent_pkg_xyz.models.vgg16")
    with pytest.raises(ArchitectureMismatchError, match="has no 'NoSuchNet'"):
        load_path(torch_corpus["state-dict"].path, arch="nets:NoSuchNet")


def test_keras_weights_with_arch_builder(keras_corpus):
    keras = pytest.importorskip("keras")
    import numpy as np

    def build():
        return keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(2)]
        )

    sample = keras_corpus["keras-weights"]
    model = load_path(sample.path, arch=build)
    x = sample.extra["x"]
    np.testing.assert_allclose(
        model.predict(x, verbose=0), sample.original.predict(x, verbose=0), atol=1e-6
    )


def test_tf_checkpoint_into_wrong_model_is_a_mismatch(tf_corpus):
    keras = pytest.importorskip("keras")
    wrong = keras.Sequential([keras.Input((4,)), keras.layers.Dense(7), keras.layers.Dense(2)])
    with pytest.raises(ArchitectureMismatchError):
        load_path(tf_corpus["tf-checkpoint-prefix"].path, model=wrong)
