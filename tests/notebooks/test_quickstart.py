"""01_quickstart executed top to bottom against the demo servers, in a Jupyter and a Colab-pinned
kernel (what `make demo` does)."""

from __future__ import annotations

import pytest
from notebook_envs import assert_progress_widgets, assert_ran

pytest.importorskip("torch")
pytest.importorskip("keras")
pytest.importorskip("nbclient")
pytestmark = pytest.mark.timeout(1200)


def test_quickstart_runs_and_shows_what_it_did(run_notebook, kernel):
    done = run_notebook("01", kernel)
    assert_ran(done)
    text = done.text
    assert "the bundled emulator with demo content" in text
    assert "Signed in as" in text
    assert "keras model: demo_classifier" in text
    assert "torch state dict: 4 tensors" in text
    assert "quickstart-classifier@v1" in text
    assert "v1 predicts like the original: True" in text
    assert "classifier.h5" in text  # %cache ls lists the downloaded file
    assert_progress_widgets(done, kernel)
    media = [r["path"] for r in done.drive_requests() if r["alt"] == "media"]
    keras_id = done.servers.files["KERAS_LINK"].split("/d/")[1].split("/")[0]
    torch_id = done.servers.files["TORCH_LINK"].split("id=")[1]
    # the Keras model was loaded twice and downloaded once; the torch file once
    assert [p for p in media if keras_id in p] == [f"/drive/v2/files/{keras_id}"]
    assert [p for p in media if torch_id in p] == [f"/drive/v2/files/{torch_id}"]
