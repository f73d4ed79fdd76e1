"""The dataset panel's logic without Drive: the option checks, the variable names, the code
line, and the chart/warning HTML drawn from a summary (ipywidgets 8 and 7.7.1)."""

from __future__ import annotations

import pytest

from colabmodels.datasets.summary import DatasetSummary, DatasetWarning, class_rows, describe
from colabmodels.widgets.dataset_panel import chart_html, warnings_html
from colabmodels.widgets.dataset_panel_model import DatasetOptions, variable_names

pytestmark = pytest.mark.colab


def test_options_become_keras_arguments():
    opts = DatasetOptions(image_size=("160", 128), batch_size=16, validation_split=0.25,
                          subset="both", seed=7).checked()
    assert opts.kwargs() == {"image_size": (160, 128), "batch_size": 16, "validation_split": 0.25,
                             "subset": "both", "seed": 7}
    whole = DatasetOptions(validation_split=0.0, subset="training", seed=1).checked()
    assert whole.subset is None and whole.validation_split is None
    assert whole.kwargs() == {"image_size": (256, 256), "batch_size": 32, "seed": 1}
    skip = DatasetOptions(on_error="skip", shuffle=False).checked().kwargs()
    assert skip["on_error"] == "skip" and skip["shuffle"] is False


@pytest.mark.parametrize(("options", "message"), [
    (DatasetOptions(image_size=(0, 10)), "each side must be between 1 and 4096"),
    (DatasetOptions(image_size=("a", 3)), "image size must be two whole numbers"),
    (DatasetOptions(batch_size=0), "batch size must be at least 1"),
    (DatasetOptions(validation_split=1.0), "validation split must be at least 0 and below 1"),
    (DatasetOptions(subset="train"), "subset must be one of"),
    (DatasetOptions(subset=None), "a validation split needs a subset"),
    (DatasetOptions(seed=None), "needs a seed"),
    (DatasetOptions(on_error="ignore"), 'on_error must be "raise" or "skip"'),
])
def test_bad_options_say_which_field(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        options.checked()


def test_variable_names():
    assert variable_names("train, val", "both") == ["train", "val"]
    assert variable_names(" ds ", "training") == ["ds"]
    assert variable_names("pair", "both") == ["pair"]
    for text, subset, message in [("", "both", "type a variable name"),
                                  ("class", None, "not a Python variable name"),
                                  ("a b", None, "not a Python variable name"),
                                  ("a, b", "training", "go with subset both"),
                                  ("a, a", "both", "different names"),
                                  ("a, b, c", "both", "go with subset both")]:
        with pytest.raises(ValueError, match=message):
            variable_names(text, subset)


def _summary(counts: dict[str, int], *, complete: bool = True) -> DatasetSummary:
    return DatasetSummary(ref="MyDrive/d", path="MyDrive/d", class_names=list(counts),
                          counts=counts if complete else {}, complete=complete)


def test_chart_bars_are_relative_to_the_largest_class_and_escaped():
    summary = _summary({"a<b": 10, "c": 5, "empty": 0})
    assert class_rows(summary) == [("a<b", 10, 1.0), ("c", 5, 0.5), ("empty", 0, 0.0)]
    chart = chart_html(summary)
    assert "data-class='a&lt;b' data-count='10' style='width:100.0%'" in chart
    assert "data-class='c' data-count='5' style='width:50.0%'" in chart
    assert "class='cm-bar cm-bar-empty' data-class='empty'" in chart
    assert "<b" not in chart.replace("<br", "")
    partial = chart_html(_summary({"a": 0, "c": 0}, complete=False))
    assert partial.count("cm-bar-count'>…<") == 2 and "cm-bar-empty" not in partial
    assert "listing" in chart_html(None)
    assert describe(summary).startswith("MyDrive/d: 15 images in 3 classes")


def test_warnings_html_lists_each_warning_or_says_all_is_well():
    summary = _summary({"a": 1})
    assert "no problems found" in warnings_html(summary)
    summary.warnings = [DatasetWarning("duplicates", "2 exact duplicates <here>", ("x = y",))]
    out = warnings_html(summary)
    assert "cm-warning-duplicates" in out and "&lt;here&gt;" in out
    assert warnings_html(_summary({"a": 1}, complete=False)) == ""
