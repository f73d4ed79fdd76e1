"""05_gensim_to_drive: a Doc2Vec saved to Drive with metadata, loaded back in a fresh kernel;
in a Jupyter and a Colab-pinned kernel."""

from __future__ import annotations

import re

import pytest
from notebook_envs import assert_progress_widgets, assert_ran

pytest.importorskip("gensim")
pytest.importorskip("nbclient")
pytestmark = pytest.mark.timeout(1200)


def test_gensim_to_drive_runs_and_shows_what_it_did(run_notebook, kernel):
    done = run_notebook("05", kernel)
    assert_ran(done)
    text = done.text
    trained = re.search(r"trained in kernel (\d+): 10 documents, \d+ words, vectors of 16", text)
    assert trained, text[:2000]
    assert "saved MyDrive/models/doc2vec-demo@v1 as gensim" in text
    # Drive holds the metadata: in the version folder's description and properties
    fingerprint = re.search(r"^  meta_fingerprint = ([0-9a-f]{16})$", text, re.MULTILINE).group(1)
    assert re.search(r"^description: .*fingerprint=" + fingerprint, text, re.MULTILINE)
    assert re.search(r"^  cm_framework = gensim$", text, re.MULTILINE)
    # section 2 ran in a new kernel that had nothing of section 1
    fresh = re.search(r"kernel (\d+); a model from section 1 in memory: (\w+)", text)
    assert fresh.group(2) == "False"
    assert fresh.group(1) != trained.group(1)
    assert f"'fingerprint': '{fingerprint}'" in text
    assert "same vectors as when saved: True" in text
    top = re.search(r"query: load the keras model from an hdf5 file\n\s+\d\.\d\d\s+(\S+)", text)
    assert top.group(1) == "keras-h5"
    assert_progress_widgets(done, kernel)
