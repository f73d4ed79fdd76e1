"""%load_model / cm.load_model of a zip that holds a model: unpacked into the cache, sniffed by
content (a .keras file is itself a zip and loads as such), loaded under the usual trust rules."""

from __future__ import annotations

import io
import zipfile

import pytest

torch = pytest.importorskip("torch")


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("__MACOSX/model/._weights.pt", b"resource fork")
    return buf.getvalue()


def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_zip_holding_a_state_dict_loads_and_a_pickled_model_needs_trust(drive_env):
    import colabmodels as cm
    from colabmodels.errors import UntrustedFormatError

    net = torch.nn.Linear(3, 2)
    drive_env.put("MyDrive/models/weights.zip",
                  _zip({"model/weights.pt": _torch_bytes(net.state_dict()),
                        "model/README.txt": b"weights of a 3->2 linear layer"}))
    loaded = cm.load_model("MyDrive/models/weights.zip", progress=False)
    assert set(loaded) == {"weight", "bias"}
    torch.testing.assert_close(loaded["weight"], net.weight.detach())

    drive_env.put("MyDrive/models/full.zip", _zip({"model/full.pt": _torch_bytes(net)}))
    with pytest.raises(UntrustedFormatError):
        cm.load_model("MyDrive/models/full.zip", progress=False)
    again = cm.load_model("MyDrive/models/full.zip", trust=True, progress=False)
    torch.testing.assert_close(again.weight, net.weight)


def test_zip_holding_a_keras_file_and_a_keras_file_itself(isolated, tmp_path):
    keras = pytest.importorskip("keras")
    import numpy as np

    import colabmodels as cm

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.save(tmp_path / "m.keras")
    x = np.ones((1, 4), dtype="float32")
    # a .keras file is itself a zip: loaded as Keras, never unpacked as an archive
    direct = cm.load_model(tmp_path / "m.keras", progress=False)
    np.testing.assert_allclose(direct.predict(x, verbose=0), model.predict(x, verbose=0))
    outer = tmp_path / "bundle.zip"
    outer.write_bytes(_zip({"bundle/m.keras": (tmp_path / "m.keras").read_bytes()}))
    inner = cm.load_model(outer, progress=False)
    np.testing.assert_allclose(inner.predict(x, verbose=0), model.predict(x, verbose=0))


def test_zip_holding_a_savedmodel_needs_trust_then_loads(isolated, tmp_path):
    tf = pytest.importorskip("tensorflow")
    import colabmodels as cm
    from colabmodels.errors import UntrustedFormatError

    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def __call__(self, x):
            return 2.0 * x

    tf.saved_model.save(Doubler(), str(tmp_path / "doubler"))
    files = {f"doubler/{p.relative_to(tmp_path / 'doubler').as_posix()}": p.read_bytes()
             for p in (tmp_path / "doubler").rglob("*") if p.is_file()}
    archive = tmp_path / "doubler.zip"
    archive.write_bytes(_zip(files))
    with pytest.raises(UntrustedFormatError):
        cm.load_model(archive, progress=False)
    model = cm.load_model(archive, trust=True, progress=False)
    out = model(tf.constant([1.5, 2.0]))
    out = next(iter(out.values())) if isinstance(out, dict) else out  # a serving signature's dict
    assert out.numpy().tolist() == [3.0, 4.0]


def test_load_model_magic_on_a_zip(new_shell, tmp_path):
    net = torch.nn.Linear(2, 2)
    archive = tmp_path / "w.zip"
    archive.write_bytes(_zip({"w/weights.pt": _torch_bytes(net.state_dict())}))
    shell = new_shell()
    shell.run_cell(f"sd = %load_model {archive}")
    torch.testing.assert_close(shell.user_ns["sd"]["bias"], net.bias.detach())
