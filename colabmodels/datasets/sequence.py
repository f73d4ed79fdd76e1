"""``DriveImageSequence``: a ``keras.utils.PyDataset`` of a Drive image folder (any Keras backend)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import MissingDependencyError

if TYPE_CHECKING:
    from ..refs import Ref


def _pydataset_base() -> type:
    try:
        from .quiet_import import quiet_import

        keras = quiet_import("keras")
    except ImportError as e:  # pragma: no cover - keras is an optional extra
        raise MissingDependencyError('DriveImageSequence needs Keras 3: pip install "colabmodels[tf]"') from e
    return keras.utils.PyDataset


def __getattr__(name: str) -> Any:
    if name == "DriveImageSequence":
        cls = _make_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


def _make_class() -> type:
    base = _pydataset_base()  # MissingDependencyError without Keras (which brings numpy)
    import numpy as np

    class DriveImageSequence(base):  # type: ignore[misc, valid-type]
        """Batches of images from a Drive folder, as a ``keras.utils.PyDataset``.

        The files, labels, classes and the split are those of
        ``image_dataset_from_drive`` with the same arguments (Keras' rules);
        images are decoded with PIL and resized with ``keras.ops.image.resize`` (Keras'
        backend-neutral loader), so it works on the TensorFlow, JAX and torch backends. Files
        of the next batches are fetched while the current one is used. ``subset`` is
        ``"training"`` or ``"validation"`` (make one sequence per subset).

        Attributes:
            class_names, file_paths (Drive paths), labels, skipped (Drive paths skipped with
            ``on_error="skip"``).
        """

        def __init__(self, ref: str | os.PathLike[str] | Ref, *, labels: Any = "inferred",
                     label_mode: str | None = "int", class_names: list[str] | None = None,
                     color_mode: str = "rgb", batch_size: int = 32,
                     image_size: tuple[int, int] | int = (256, 256), shuffle: bool = True,
                     seed: int | None = None, validation_split: float | None = None,
                     subset: str | None = None, interpolation: str = "bilinear",
                     follow_links: bool = False, crop_to_aspect_ratio: bool = False,
                     pad_to_aspect_ratio: bool = False, data_format: str | None = None,
                     on_error: str = "raise", refresh: bool = False,
                     fetch_workers: int | None = None, prefetch_batches: int = 4,
                     **pydataset_kwargs: Any) -> None:
            super().__init__(**pydataset_kwargs)
            from keras.src.backend.config import standardize_data_format
            from keras.src.utils import dataset_utils

            from .feeder import Feeder, check_on_error
            from .image_dataset import check_arguments
            from .listing import index_drive_folder, resolve_folder

            check_on_error(on_error)
            if subset == "both":
                raise ValueError('DriveImageSequence makes one subset at a time: create one with '
                                 'subset="training" and one with subset="validation".')
            labels, label_mode, _, size, interpolation = check_arguments(
                labels, label_mode, class_names, color_mode, image_size, interpolation,
                validation_split, subset, shuffle, seed)
            if pad_to_aspect_ratio and crop_to_aspect_ratio:
                raise ValueError("Only one of `pad_to_aspect_ratio`, `crop_to_aspect_ratio` can "
                                 "be set to `True`.")
            if seed is None:
                seed = int(np.random.randint(1_000_000))
            from .zipped import open_zip_dataset

            backend, root = resolve_folder(ref, archives=True)
            zipped = None if root.is_dir else open_zip_dataset(backend, root)
            if zipped is not None:  # a .zip, read by ranges as the folder it holds
                root = zipped.root
                index = zipped.index(labels, class_names=class_names, shuffle=shuffle, seed=seed)
            else:
                index = index_drive_folder(ref, labels, class_names=class_names, shuffle=shuffle,
                                           seed=seed, follow_links=follow_links, refresh=refresh,
                                           folder=(backend, root))
            if label_mode == "binary" and len(index.class_names or []) != 2:
                raise ValueError('When passing `label_mode="binary"`, there must be exactly 2 '
                                 f"class_names. Received: class_names={index.class_names}")
            files, labs = dataset_utils.get_training_or_validation_split(
                index.stats.files, index.labels, validation_split, subset)
            if not files:
                raise ValueError(f"No images found in directory {root.ref.path or root.name}.")
            self.class_names = index.class_names
            self.file_paths = [f.path for f in files]
            self.labels = None if labs is None else np.asarray(labs)
            self.label_mode = label_mode
            self.batch_size = int(batch_size)
            self.shuffle = shuffle
            self.seed = seed
            self.skipped: list[str] = []
            self._load = dict(color_mode=color_mode, image_size=size, interpolation=interpolation,
                              data_format=standardize_data_format(data_format),
                              crop_to_aspect_ratio=crop_to_aspect_ratio,
                              pad_to_aspect_ratio=pad_to_aspect_ratio)
            self._feeder = (zipped.feeder(files, on_error=on_error, skipped=self.skipped,
                                          workers=fetch_workers, lookahead=0)
                            if zipped is not None else
                            Feeder(backend, files, on_error=on_error, skipped=self.skipped,
                                   workers=fetch_workers, lookahead=0))
            self._prefetch_batches = prefetch_batches
            self._epoch = 0
            self._order = np.arange(len(files))

        def __len__(self) -> int:
            return -(-len(self._order) // self.batch_size)

        def _batch_indices(self, index: int) -> Any:
            return self._order[index * self.batch_size:(index + 1) * self.batch_size]

        def __getitem__(self, index: int) -> Any:
            from .decode import encode_labels, keras_load

            if index < 0 or index >= len(self):
                raise IndexError(f"batch {index} of {len(self)}")
            ahead = [int(i) for b in range(index + 1, min(len(self), index + 1 + self._prefetch_batches))
                     for i in self._batch_indices(b)]
            here = [int(i) for i in self._batch_indices(index)]
            self._feeder.prefetch(here + ahead)
            images, kept = [], []
            for i in here:
                path = self._feeder.local(i)
                if path is None:
                    continue
                images.append(keras_load(path, **self._load))
                kept.append(i)
            x = np.stack(images) if images else np.zeros((0, *self._shape()), dtype="float32")
            if self.labels is None:
                return x
            y = encode_labels(self.labels[kept], self.label_mode, len(self.class_names or []))
            return x, y

        def _shape(self) -> tuple[int, int, int]:
            h, w = self._load["image_size"]
            c = {"rgb": 3, "rgba": 4, "grayscale": 1}[self._load["color_mode"]]
            return (c, h, w) if self._load["data_format"] == "channels_first" else (h, w, c)

        def on_epoch_end(self) -> None:
            """A new order for the next epoch (``shuffle=True``), from ``seed`` and the epoch."""
            self._epoch += 1
            if self.shuffle:
                self._order = np.random.RandomState(self.seed + self._epoch).permutation(
                    len(self.file_paths))

    DriveImageSequence.__qualname__ = "DriveImageSequence"  # pickles by name (DataLoader workers, spawn)
    DriveImageSequence.__module__ = __name__
    return DriveImageSequence
