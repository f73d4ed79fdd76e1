"""``DriveImageFolder``: a torch ``Dataset`` of a Drive image folder, shaped like ``ImageFolder``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import MissingDependencyError

if TYPE_CHECKING:
    from ..refs import Ref

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
"""What PIL reads; torchvision's ImageFolder list plus ``.gif``."""


def to_tensor(img: Any) -> Any:
    """A PIL image as a float ``(C, H, W)`` tensor in ``[0, 1]`` (torchvision's ``ToTensor``)."""
    import numpy as np
    import torch

    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    tensor = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    return tensor.float().div(255) if tensor.dtype == torch.uint8 else tensor.float()


def __getattr__(name: str) -> Any:
    if name == "DriveImageFolder":
        cls = _make_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


def _make_class() -> type:
    try:
        from torch.utils.data import Dataset
    except ImportError as e:  # pragma: no cover - torch is an optional extra
        raise MissingDependencyError('DriveImageFolder needs torch: pip install "colabmodels[torch]"') from e

    class DriveImageFolder(Dataset):  # type: ignore[misc, type-arg]
        """The images of a Drive folder with one subfolder per class, as a torch ``Dataset``.

        Shaped like torchvision's ``ImageFolder``: ``classes``, ``class_to_idx``, ``samples``
        (``(Drive path, class index)``), ``targets``; ``dataset[i]`` is ``(image, target)``
        with the image loaded by PIL as RGB (or ``loader(path)``) and passed through
        ``transform``. Folders are selected by Keras' rules (hidden top-level folders such as
        ``.ipynb_checkpoints`` are not classes).

        ``download="ahead"`` (default) fetches every file into the cache when the dataset is
        made (64 at a time, with a progress bar), so ``DataLoader`` workers only read local
        disk: it pickles without any connection and works with ``num_workers>0`` under fork
        and spawn. ``download="lazy"`` fetches each file when first asked for; every worker
        process then opens its own connections (none is shared across a fork).

        Args:
            ref: the dataset folder, or a ``.zip`` of it: then the constructor reads only the
                zip's central directory, and members are read by range when first asked for.
            transform: called on each PIL image (e.g. ``to_tensor`` from this module, or
                torchvision transforms when installed).
            target_transform: called on each class index.
            extensions: file extensions to keep (lowercase, with the dot).
            loader: ``loader(local_path)`` -> image (default: PIL, converted to RGB).
            on_error: ``"raise"`` or ``"skip"``. With ``download="ahead"`` every file is
                checked when fetched, and with ``"skip"`` broken ones are left out of
                ``samples`` and listed in ``skipped``. With ``download="lazy"`` a broken file
                raises when it is read (a map-style dataset cannot drop an index later).
            follow_links: follow Drive shortcuts to folders.
        """

        def __init__(self, ref: str | os.PathLike[str] | Ref, transform: Any = None,
                     target_transform: Any = None, *, extensions: tuple[str, ...] = IMG_EXTENSIONS,
                     loader: Any = None, on_error: str = "raise", download: str = "ahead",
                     follow_links: bool = False, refresh: bool = False, progress: bool = True,
                     workers: int | None = None) -> None:
            from .feeder import Feeder, check_on_error
            from .listing import index_drive_folder, resolve_folder

            check_on_error(on_error)
            if download not in ("ahead", "lazy"):
                raise ValueError(f'download must be "ahead" or "lazy", received: {download!r}')
            from .zipped import open_zip_dataset

            backend, root = resolve_folder(ref, archives=True)
            # A .zip: the constructor reads its central directory only; members are read by
            # range (neighbours coalesced) when first asked for, as with download="lazy".
            zipped = None if root.is_dir else open_zip_dataset(backend, root)
            if zipped is not None:
                root = zipped.root
                index = zipped.index("inferred", formats=tuple(extensions))
            else:
                index = index_drive_folder(ref, "inferred", formats=tuple(extensions),
                                           follow_links=follow_links, refresh=refresh,
                                           folder=(backend, root))
            files = index.stats.files
            self.root = root.ref.path or root.name
            self.classes: list[str] = list(index.class_names or [])
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
            self.transform = transform
            self.target_transform = target_transform
            self.loader = loader
            self.skipped: list[str] = []
            self._feeder: Any = None
            self._local: list[str] | None = None
            if zipped is not None:
                self._feeder = zipped.feeder(files, on_error="raise", workers=workers,
                                             check_images=False)
            elif download == "ahead":
                feeder = Feeder(backend, files, on_error=on_error, skipped=self.skipped,
                                workers=workers)
                feeder.find_cached()
                try:
                    paths = feeder.fetch_all(progress=progress, desc=self.root)
                finally:
                    feeder.close()
                kept = [(f, p) for f, p in zip(files, paths, strict=True) if p is not None]
                files = [f for f, _ in kept]
                self._local = [p for _, p in kept if p is not None]
            else:
                self._feeder = Feeder(backend, files, on_error="raise", workers=workers or 8,
                                      check_images=False)
            self.samples: list[tuple[str, int]] = [(f.path, int(f.label or 0)) for f in files]
            self.targets = [t for _, t in self.samples]
            self.imgs = self.samples

        def __len__(self) -> int:
            return len(self.samples)

        def local_path(self, index: int) -> str:
            """The cache path of sample ``index`` (fetched first in lazy mode)."""
            if self._local is not None:
                return self._local[index]
            assert self._feeder is not None
            path = self._feeder.local(index)
            assert path is not None
            return path

        def __getitem__(self, index: int) -> tuple[Any, Any]:
            from .decode import pil_open
            from .feeder import BrokenImageError

            path = self.local_path(index)
            try:
                img = self.loader(path) if self.loader else pil_open(path, "rgb")
            except BrokenImageError as e:  # e.g. a decompression bomb
                raise BrokenImageError(f"{self.samples[index][0]}: {e}") from e
            except (OSError, SyntaxError, ValueError) as e:
                raise BrokenImageError(f"{self.samples[index][0]}: not a readable image ({e})") from e
            target = self.samples[index][1]
            if self.transform is not None:
                img = self.transform(img)
            if self.target_transform is not None:
                target = self.target_transform(target)
            return img, target

        def __repr__(self) -> str:
            return (f"DriveImageFolder({self.root!r}: {len(self)} images, "
                    f"{len(self.classes)} classes)")

    DriveImageFolder.__qualname__ = "DriveImageFolder"  # pickles by name (DataLoader workers, spawn)
    DriveImageFolder.__module__ = __name__
    return DriveImageFolder
