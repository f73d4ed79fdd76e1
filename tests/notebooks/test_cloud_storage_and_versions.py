"""04_cloud_storage_and_versions: gs:// (GCS emulator) and s3:// (moto) models, a hundred loads
with one download, versions with metadata; in a Jupyter and a Colab-pinned kernel."""

from __future__ import annotations

import ast
import re

import pytest
from notebook_envs import assert_progress_widgets, assert_ran

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("moto")
pytest.importorskip("gcp_storage_emulator")
pytestmark = pytest.mark.timeout(1200)


def test_cloud_storage_and_versions_runs_and_shows_what_it_did(run_notebook, kernel):
    done = run_notebook("04", kernel)
    assert_ran(done)
    text = done.text
    assert "gs://demo-models/standardizer" in text and "s3://demo-weights/" in text
    # the SavedModel is refused without trust, then standardises (x - mean) / std
    assert "without trust=True it is refused: UntrustedFormatError" in text
    assert "SavedModel output: {'output_0': [[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]]}" in text
    assert "HDF5 model: demo_classifier ['Dense', 'Dense'] 195 parameters" in text
    assert "restored w = [1.5, -2.0, 0.25]  b = [0.5]" in text
    assert "100 loads of a SmallVGG (38570 parameters)" in text
    counts = ast.literal_eval(re.search(r"during the 100 loads: (\{.*\})", text).group(1))
    assert counts["GET"] == 1, counts  # one download ...
    assert 0 < counts["HEAD"] <= 100, counts  # ... and at most one metadata request per load
    assert "s3://demo-weights/runs/small-vgg@v1 predicts like the original: True" in text
    assert "@latest predicts like the fine-tuned one: True" in text
    assert re.search(r"v1 .* torch/\S+ .*'acc': 0.61.*'from the S3 checkpoint'", text)
    assert re.search(r"v2 .* torch/\S+ .*'acc': 0.74.*'fine-tuned'", text)
    # %models shows the same versions as a table
    assert re.search(r"^v1\s.*acc=0.61", text, re.MULTILINE)
    assert re.search(r"^v2\s.*note=fine-tuned", text, re.MULTILINE)
    assert_progress_widgets(done, kernel)
