"""The private Keras names colabmodels uses (``keras.src.*``) still exist where we import them.

The datasets mirror ``keras.utils.image_dataset_from_directory`` by calling the same helpers
Keras uses (split, label checks, image loading), and Keras does not export them. When a Keras
release moves one, this test fails naming the module and the name, instead of users meeting an
ImportError or AttributeError in the middle of a training run.

Every ``keras.src`` import in the package must be listed in :data:`PRIVATE` with the reason
there is no public equivalent; a new one fails :func:`test_every_private_keras_use_is_listed`.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "colabmodels"

# (module, name) -> why there is no public equivalent
PRIVATE: dict[tuple[str, str], str] = {
    ("keras.src.backend", "tensorflow"):
        "the backend module smart_resize takes, so zip/shard bytes are cropped as Keras' loader does",
    ("keras.src.utils", "image_utils"):
        "where smart_resize lives with its backend_module argument (the public one has none)",
    ("keras.src.utils.image_utils", "smart_resize"):
        "crop_to_aspect_ratio exactly as image_dataset_from_directory (zip and shard bytes)",
    ("keras.src.utils.dataset_utils", "check_validation_split_arg"):
        "Keras' own argument check for validation_split/subset/shuffle/seed (same messages)",
    ("keras.src.utils.dataset_utils", "get_training_or_validation_split"):
        "the exact split image_dataset_from_directory makes (same files in each subset)",
    ("keras.src.utils.dataset_utils", "labels_to_dataset_tf"):
        "label encoding as image_dataset_from_directory does it",
    ("keras.src.utils.image_dataset_utils", "_load_image_tf"):
        "decode + resize + crop/pad exactly as image_dataset_from_directory (private even "
        "inside Keras: the first to move)",
    ("keras.src.utils.image_dataset_utils", "paths_and_labels_to_dataset"):
        "the tf.data pipeline of image_dataset_from_directory",
    ("keras.src.utils", "dataset_utils"): "module of the helpers above",
    ("keras.src.utils", "image_dataset_utils"): "module of the helpers above",
    ("keras.src.utils", "io_utils"): "module of print_msg",
    ("keras.src.utils.io_utils", "print_msg"):
        "Keras' verbose output (follows keras.config.disable_interactive_logging, so the "
        "'Found N files' line prints where Keras' own would)",
    ("keras.src.backend.config", "standardize_data_format"):
        "the data_format argument check (public keras.config.image_data_format() gives only "
        "the default, not the validation)",
}


def _private_uses() -> set[tuple[str, str]]:
    """(module, name) of every ``from keras.src... import name`` in the package, and of every
    attribute read on such an imported module (``dataset_utils.get_training_or_validation_split``)."""
    found: set[tuple[str, str]] = set()
    for path in PACKAGE.rglob("*.py"):
        if "testing" in path.relative_to(PACKAGE).parts:
            continue
        tree = ast.parse(path.read_text())
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras.src"):
                for a in node.names:
                    found.add((node.module or "", a.name))
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in aliases and aliases[node.value.id].endswith("_utils"):
                found.add((aliases[node.value.id], node.attr))
    return found


def test_every_private_keras_use_is_listed():
    unlisted = _private_uses() - set(PRIVATE)
    assert not unlisted, (f"new private Keras names used: {sorted(unlisted)}; use a public API, "
                          "or list each in PRIVATE with why there is none")


@pytest.mark.parametrize(("module", "name"), sorted(PRIVATE))
def test_private_keras_name_is_still_there(module, name):
    keras = pytest.importorskip("keras")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        pytest.fail(f"Keras {keras.__version__} moved {module}.{name} ({e}); colabmodels' "
                    f"datasets use it ({PRIVATE[(module, name)]}): follow it to its new place")
    assert found is not None
