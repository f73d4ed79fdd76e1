"""Image datasets that live in Drive (or GCS, S3, a local folder), for Keras and torch.

- ``image_dataset_from_drive``: ``keras.utils.image_dataset_from_directory`` for a Drive
  folder (a ``tf.data.Dataset``);
- ``DriveImageSequence``: a ``keras.utils.PyDataset`` (every Keras backend);
- ``DriveImageFolder``: a torch ``Dataset`` (``classes``, ``class_to_idx``, ``samples``);
- ``pack``: WebDataset tar shards + a JSON index written back to Drive, read by all of the
  above (and by ``webdataset`` and Ray Data);
- ``index_drive_folder``: the listing behind them (Drive stats, thumbnails, class counts).

Listing: ``.listing``; fetching ahead of use: ``.feeder``; Keras: ``.image_dataset``
and ``.sequence``; torch: ``.torch_folder``; shards: ``.shards``. Nothing heavy is
imported until used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .image_dataset import image_dataset_from_drive
    from .listing import DriveIndex, index_drive_folder
    from .sequence import DriveImageSequence
    from .shards import pack
    from .torch_folder import DriveImageFolder

_LAZY = {
    "DriveImageFolder": ".torch_folder",
    "DriveImageSequence": ".sequence",
    "DriveIndex": ".listing",
    "image_dataset_from_drive": ".image_dataset",
    "index_drive_folder": ".listing",
    "pack": ".shards",
}

__all__ = ["DriveImageFolder", "DriveImageSequence", "DriveIndex", "image_dataset_from_drive",
           "index_drive_folder", "pack"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
