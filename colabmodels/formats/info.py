"""What a sniffed file is, and what a save wrote.

Format names are stable strings that end up in manifests; never rename one.

========================  ============  =============  ============================================
name                      framework     executes code  what it is
========================  ============  =============  ============================================
``keras``                 keras         Lambda only    Keras 3 ``.keras`` zip (``config.json``,
                                                       ``metadata.json``, ``model.weights.h5``), or
                                                       the same three files unzipped in a folder
``keras-h5``              keras         Lambda only    legacy HDF5 full model (``model_config``)
``keras-h5-weights``      keras         no             HDF5 weights only (Keras 3 ``.weights.h5``
                                                       or legacy ``save_weights`` layout)
``tf-savedmodel``         tensorflow    yes (graphs)   SavedModel folder (``saved_model.pb``)
``tf-checkpoint``         tensorflow    no             ``tf.train.Checkpoint``: ``PREFIX.index`` +
                                                       ``PREFIX.data-*-of-*`` shards
``torch-state-dict``      torch         no             ``torch.save`` output whose pickle needs only
                                                       the globals ``torch.load(weights_only=True)``
                                                       allows (tensors, OrderedDict, numbers, ...)
                                                       plus numpy scalars/arrays/dtypes
``torch-pickle``          torch         yes            ``torch.save`` output that needs any other
                                                       global (a pickled full model, custom classes)
``torchscript``           torch         yes            ``torch.jit.save`` zip: any torch zip with a
                                                       ``constants.pkl`` (``code/`` or not), as
                                                       ``torch.load`` itself decides
``torch-export``          torch         yes            ``torch.export.save`` ``.pt2`` archive
``safetensors``           safetensors   no             safetensors file with a validated header
``gensim``                gensim        yes (pickle)   gensim ``.save()`` pickle (+ sidecar ``.npy``)
``word2vec-text``         gensim        no             word2vec text vectors (``N D`` header, or none)
``word2vec-binary``       gensim        no             word2vec C binary vectors
``onnx``                  onnx          no             ONNX ``ModelProto``
========================  ============  =============  ============================================

Pre-1.6 (non-zip) ``torch.save`` files are not a format of their own: they are named
``torch-state-dict`` or ``torch-pickle`` by the same rule, with ``details["container"] ==
"legacy"`` (zip files have ``"zip"``). Loading works the same way for both containers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FORMAT_NAMES", "FormatInfo", "SavedFiles"]

FORMAT_NAMES: tuple[str, ...] = (
    "keras",
    "keras-h5",
    "keras-h5-weights",
    "tf-savedmodel",
    "tf-checkpoint",
    "torch-state-dict",
    "torch-pickle",
    "torchscript",
    "torch-export",
    "safetensors",
    "gensim",
    "word2vec-text",
    "word2vec-binary",
    "onnx",
)
"""Every format name ``sniff_format`` can return."""


@dataclass(frozen=True)
class FormatInfo:
    """What a file or folder holds, found from its bytes and structure (never its name).

    Attributes:
        name: one of ``FORMAT_NAMES``.
        framework: the library that loads it: ``"keras"``, ``"tensorflow"``, ``"torch"``,
            ``"safetensors"``, ``"gensim"`` or ``"onnx"``.
        executes_code: True when loading runs code stored in the file (pickle globals,
            TorchScript, graphs, Keras ``Lambda`` layers); such files load only with
            ``trust=True``.
        details: format-specific facts. Common keys: ``"would_run"`` (what loading would
            execute, for formats that execute code), ``"file"`` (the model file inside a
            folder that was sniffed), ``"prefix"`` (tf checkpoints), ``"globals"`` (torch
            pickles), ``"lambda_layers"`` (Keras), ``"sidecars"``/``"missing_sidecars"``
            (gensim).
    """

    name: str
    framework: str
    executes_code: bool
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def would_run(self) -> list[str]:
        """What loading this file would execute (empty for formats that run no code)."""
        return list(self.details.get("would_run", []))


@dataclass
class SavedFiles:
    """What ``save_object`` wrote.

    Attributes:
        format: the format name (one of ``FORMAT_NAMES``).
        framework: the library that wrote it (``"keras"``, ``"torch"``, ...).
        framework_version: that library's ``__version__``.
        files: every file written, relative to the destination folder, sorted; upload exactly
            these.
        extra: what else a manifest should record to load the model back, e.g.
            ``{"arch": "mypkg.nets:Net"}`` for a torch state dict.
        model_path: what to hand to ``load_path``, relative to the
            destination folder: the file, or the folder for folder formats (SavedModel,
            gensim with sidecars, checkpoints). Defaults to the only file written.
    """

    format: str
    framework: str
    framework_version: str
    files: list[Path]
    extra: dict[str, Any] = field(default_factory=dict)
    model_path: Path | None = None

    def __post_init__(self) -> None:
        if self.model_path is None and len(self.files) == 1:
            self.model_path = self.files[0]
