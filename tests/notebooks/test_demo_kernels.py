"""The demo's kernels start quiet: none of TensorFlow's start-up log lines reach a notebook (or the
terminal of `make demo`), while errors still do."""

from __future__ import annotations

import nbformat
import pytest

from colabmodels import demo

pytestmark = pytest.mark.timeout(600)

NOISE = ("oneDNN custom operations", "absl::InitializeLog", "absl note")


def test_tensorflow_start_up_lines_stay_out_of_the_notebook_and_errors_still_show(tmp_path):
    pytest.importorskip("tensorflow")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import tensorflow as tf\nprint('sum', float(tf.reduce_sum(tf.ones(3))))"),
        nbformat.v4.new_code_cell("import logging\nlogging.getLogger('absl').warning('absl note')\n"
                                  "logging.getLogger('absl').error('absl error shows')"),
        nbformat.v4.new_code_cell("tf.debugging.assert_equal(1, 2)"),
    ])
    path = tmp_path / "quiet.ipynb"
    nbformat.write(nb, path)

    executed, error = demo.execute_notebook(path, tmp_path / "run", timeout=300)

    texts = [t for cell in executed.cells for t in demo.cell_texts(cell)]
    everything = "\n".join(texts)
    assert "sum 3.0" in everything
    assert not [n for n in NOISE if n in everything], everything
    assert "absl error shows" in everything  # ERROR-level logs are not hidden
    assert error is not None and "InvalidArgumentError" in str(error)  # nor are exceptions
