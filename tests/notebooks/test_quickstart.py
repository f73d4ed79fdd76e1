"""The quickstart notebook, executed with nbclient against the Drive emulator (what `make demo` does)."""

from __future__ import annotations

import pytest

from colabmodels import demo

pytest.importorskip("torch")
pytest.importorskip("keras")
pytestmark = pytest.mark.timeout(900)


def test_quickstart_runs_and_shows_what_it_did(tmp_path, monkeypatch):
    from colabmodels.testing import FakeDrive

    with FakeDrive() as fd:
        env = demo.stage(fd, tmp_path)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        nb, failed = demo.execute_notebook(demo.NOTEBOOK, tmp_path)
        requests = list(fd.requests)
    assert failed is None, str(failed)[-3000:]
    text = "\n".join("\n".join(demo.cell_texts(c)) for c in nb.cells if c.cell_type == "code")
    assert "Signed in as" in text
    assert "keras model: demo_classifier" in text
    assert "torch state dict: 4 tensors" in text
    assert "quickstart-classifier@v1" in text
    assert "v1 predicts like the original: True" in text
    assert "classifier.h5" in text  # %cache ls lists the downloaded file
    media = [r for r in requests if r.query.get("alt") == "media"]
    keras_id = env["DEMO_KERAS_LINK"].split("/d/")[1].split("/")[0]
    torch_id = env["DEMO_TORCH_LINK"].split("id=")[1]
    # the Keras model was loaded twice and downloaded once; the torch file once
    assert [r.path for r in media if keras_id in r.path] == [f"/drive/v2/files/{keras_id}"]
    assert [r.path for r in media if torch_id in r.path] == [f"/drive/v2/files/{torch_id}"]
