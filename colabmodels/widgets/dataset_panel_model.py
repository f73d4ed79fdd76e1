"""The dataset panel's state and actions, with no widgets: what ``DatasetPanel`` draws.

``DatasetPanelModel`` lists an image folder on a background thread through
``colabmodels.datasets.summary.summarize`` (class names after one request, then the counts
and warnings), then fetches Drive's thumbnails of a few samples per class, as they arrive. It
checks the dataset options (``DatasetOptions``) and runs the two actions: ``create``
(``cm.image_dataset_from_drive`` into a notebook variable) and ``pack`` (``cm.pack`` with a
progress bar). Observers registered with ``DatasetPanelModel.observe`` are called, on the
thread that made the change, with ``"summary"``, ``"thumbnail"``, ``"error"`` or ``"busy"``.

Tests and notebooks drive it directly::

    model = DatasetPanelModel("MyDrive/datasets/flowers")
    model.wait()                               # listed, thumbnails in
    model.summary.counts, model.summary.warnings
    model.create("train, val", DatasetOptions(image_size=(160, 160), subset="both"))
"""

from __future__ import annotations

import keyword
import logging
import os
from collections.abc import MutableMapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..auth import redact
from ..browse import Trouble
from ..datasets.summary import MissingFolderError
from ..errors import MissingDependencyError
from .background import BackgroundModel, reporting_to, user_namespace

if TYPE_CHECKING:
    from ..datasets.summary import DatasetSummary, Thumbnail
    from ..progress import ProgressSink
    from ..refs import Ref

__all__ = ["SUBSETS", "DatasetOptions", "DatasetPanelModel", "variable_names"]

logger = logging.getLogger(__name__)

SUBSETS = ("both", "training", "validation", None)
"""The choices of ``subset``: None means the whole folder (no split)."""
_MAX_SIDE = 4096


@dataclass(frozen=True)
class DatasetOptions:
    """What the panel's fields say; ``checked`` validates them the way Keras would.

    Attributes:
        image_size: ``(height, width)`` the images are resized to.
        batch_size: images per batch (None: no batching).
        validation_split: fraction held out for validation (0 or None: no split).
        subset: ``"both"`` (train and validation), ``"training"``, ``"validation"`` or None.
        seed: the shuffle/split seed.
        shuffle: shuffle the files (Keras' default).
        on_error: ``"raise"`` or ``"skip"`` broken images.
        include_hidden: False leaves out hidden folders and files inside the classes.
    """

    image_size: tuple[int, int] = (256, 256)
    batch_size: int | None = 32
    validation_split: float | None = 0.2
    subset: str | None = "both"
    seed: int | None = 1337
    shuffle: bool = True
    on_error: str = "raise"
    include_hidden: bool = True

    def checked(self) -> DatasetOptions:
        """These options normalised (no split means no subset), or a ValueError saying which
        field to change."""
        try:
            height, width = (int(v) for v in self.image_size)
        except (TypeError, ValueError):
            raise ValueError(f"image size must be two whole numbers (height, width), not "
                             f"{self.image_size!r}") from None
        if not (1 <= height <= _MAX_SIDE and 1 <= width <= _MAX_SIDE):
            raise ValueError(f"image size {height}x{width}: each side must be between 1 and "
                             f"{_MAX_SIDE} pixels")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise ValueError(f"batch size must be at least 1, not {self.batch_size}")
        split = float(self.validation_split or 0.0)
        if not 0.0 <= split < 1.0:
            raise ValueError(f"validation split must be at least 0 and below 1, not {split}")
        if self.subset not in SUBSETS:
            raise ValueError(f"subset must be one of {SUBSETS}, not {self.subset!r}")
        if self.on_error not in ("raise", "skip"):
            raise ValueError(f'on_error must be "raise" or "skip", not {self.on_error!r}')
        subset = self.subset
        if split == 0.0:
            subset = None
        elif subset is None:
            raise ValueError("a validation split needs a subset: choose both, training or "
                             "validation (or set the split to 0 for the whole folder)")
        seed = self.seed
        if split and self.shuffle and seed is None:
            raise ValueError("a validation split with shuffling needs a seed (so training and "
                             "validation never share a file): fill in the seed")
        return replace(self, image_size=(height, width), validation_split=split or None,
                       subset=subset, batch_size=None if self.batch_size is None else int(self.batch_size),
                       seed=None if seed is None else int(seed))

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``image_dataset_from_drive`` (after ``checked``)."""
        out: dict[str, Any] = {"image_size": self.image_size, "batch_size": self.batch_size}
        if self.validation_split:
            out["validation_split"] = self.validation_split
            out["subset"] = self.subset
        out["seed"] = self.seed
        if not self.shuffle:
            out["shuffle"] = False
        if self.on_error != "raise":
            out["on_error"] = self.on_error
        if not self.include_hidden:
            out["include_hidden"] = False
        return out


def variable_names(text: str, subset: str | None) -> list[str]:
    """The variable(s) a dataset goes into: one name, or two (``"train, val"``) for
    ``subset="both"`` (one name then holds the ``[train, val]`` pair).

    Raises:
        ValueError: not Python names, or two names without ``subset="both"``.
    """
    names = [n.strip() for n in text.replace(";", ",").split(",") if n.strip()]
    if not names:
        raise ValueError("type a variable name for the dataset (e.g. train, or train, val)")
    for name in names:
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"{name!r} is not a Python variable name")
    if len(names) > 2 or (len(names) == 2 and subset != "both"):
        raise ValueError("two names (train, val) go with subset both; otherwise give one name")
    if len(names) == 2 and names[0] == names[1]:
        raise ValueError("the training and validation variables need different names")
    return names


def _needs_frameworks(what: str, exc: ImportError) -> MissingDependencyError:
    if isinstance(exc, MissingDependencyError):
        return exc
    missing = getattr(exc, "name", None) or str(exc)
    return MissingDependencyError(f'{what} needs {missing}, which is not installed: '
                                  'pip install "colabmodels[tf]"')


class DatasetPanelModel(BackgroundModel):
    """State and actions of a dataset panel (see the module docstring).

    Args:
        ref: the dataset folder (Drive path, folder link or id; also gs://, s3://, local).
        class_names: only these classes, in this order.
        follow_links: descend into folders reached through Drive shortcuts.
        per_class: thumbnails shown per class (fewer when there are many classes).
        max_thumbnails: thumbnails shown in all.
        thumbnail_size: the thumbnails' box in pixels.
    """

    def __init__(self, ref: str | os.PathLike[str] | Ref, *, class_names: list[str] | None = None,
                 follow_links: bool = False, per_class: int = 6, max_thumbnails: int = 120,
                 thumbnail_size: int = 96) -> None:
        if per_class < 0 or max_thumbnails < 0:
            raise ValueError("per_class and max_thumbnails must be 0 or more")
        super().__init__(what="dataset panel", workers=1, thread_name="colabmodels-dataset")
        self.max_thumbnails = max_thumbnails
        self.ref = ref
        self.class_names = class_names
        self.follow_links = follow_links
        self.per_class = per_class
        self.thumbnail_size = thumbnail_size
        self.summary: DatasetSummary | None = None
        self.thumbnails: dict[str, Thumbnail] = {}
        self.last_created: dict[str, Any] = {}
        self.last_skipped: list[str] = []
        self._submit(self._list, False)

    # -- background work -----------------------------------------------------------------------
    def refresh(self) -> None:
        """List the folder again (ignoring the remembered listing) and fetch new thumbnails."""
        with self._lock:
            self._generation += 1
            self.summary = None
            self.thumbnails = {}
            self.error = None
        self._emit("summary")
        self._submit(self._list, True)

    def _list(self, generation: int, refresh: bool) -> None:
        from ..datasets.zip_preview import summarize_source as summarize  # folders and zips

        def update(found: DatasetSummary) -> None:
            with self._lock:
                if not self._current(generation):
                    return
                self.summary = found
            self._emit("summary")

        try:
            summarize(self.ref, class_names=self.class_names, follow_links=self.follow_links,
                      refresh=refresh, on_update=update)
        except MissingFolderError as e:  # a typo: say so, not "deleted, trashed or moved"
            with self._lock:
                current = self._current(generation)
                if current:
                    self.error = Trouble("not_found", f"NotFoundError: {e}",
                                         "Check the path and open the panel again with the "
                                         "right one (or press Refresh once it exists).")
            if current:
                self._emit("error")
            return
        self._thumbnails(generation)

    def _thumbnails(self, generation: int) -> None:
        from ..datasets.summary import add_thumbnail_problems, fetch_thumbnails

        summary = self.summary
        if summary is None or not summary.complete:
            return
        wanted = [f for files in self.samples(summary).values() for f in files]
        from ..datasets.zip_preview import is_zip_summary, zip_thumbnails

        if is_zip_summary(summary):  # a zip: previews decoded from a few members
            thumbs = zip_thumbnails(wanted, size=self.thumbnail_size)
        else:
            wanted = [f for f in wanted if f.thumbnail_link]
            if not wanted or summary.session is None:
                return
            thumbs = fetch_thumbnails(wanted, size=self.thumbnail_size, session=summary.session)
        got = []
        for thumb in thumbs:
            with self._lock:
                if not self._current(generation):
                    return
                self.thumbnails[thumb.file.path] = thumb
            got.append(thumb)
            self._emit("thumbnail")
        if add_thumbnail_problems(summary, got):
            self._emit("summary")

    def samples(self, summary: DatasetSummary) -> dict[str, list[Any]]:
        """The files whose thumbnails are shown, by class: ``per_class`` each, fewer when
        there are so many classes that ``max_thumbnails`` would be passed."""
        classes = max(1, len(summary.class_names))
        each = min(self.per_class, self.max_thumbnails // classes)
        if each == 0 and self.per_class and self.max_thumbnails:  # one each, first classes
            return dict(list(summary.samples(1).items())[: self.max_thumbnails])
        return summary.samples(each) if each else {n: [] for n in summary.class_names}

    # -- actions (the kernel's thread) ---------------------------------------------------------
    @property
    def ref_text(self) -> str:
        """The folder as the user gave it (what the title and the generated code line show),
        with any signing query or token redacted: widget values are saved in the notebook."""
        from ..refs import Ref

        if isinstance(self.ref, Ref):
            return redact(self.ref.raw or (self.summary.path if self.summary else str(self.ref)))
        return redact(os.fspath(self.ref))

    def code(self, variable: str, options: DatasetOptions) -> str:
        """The code that makes the same dataset: a comment line for each choice the panel's
        findings made (broken files skipped, hidden folders left out), then the call."""
        opts = options.checked()
        names = variable_names(variable, opts.subset)
        args = ", ".join([repr(self.ref_text)] + [f"{k}={v!r}" for k, v in opts.kwargs().items()])
        notes = []
        summary = self.summary
        if summary is not None and summary.broken and opts.on_error == "skip":
            shown = ", ".join(p.rsplit("/", 1)[-1] for p in summary.broken[:3])
            more = " …" if len(summary.broken) > 3 else ""
            notes.append(f"# on_error='skip' leaves out the {len(summary.broken)} broken "
                         f"file{'s' if len(summary.broken) != 1 else ''} the panel found "
                         f"({shown}{more}), and any other file that is not a readable image")
        if summary is not None and summary.hidden_inside and not opts.include_hidden:
            shown = ", ".join(summary.hidden_inside[:3])
            notes.append(f"# include_hidden=False leaves out hidden folders inside the classes "
                         f"({shown}); Keras would include them")
        line = f"{', '.join(names)} = cm.image_dataset_from_drive({args})"
        return "\n".join([*notes, line])

    def create(self, variable: str, options: DatasetOptions, *,
               namespace: MutableMapping[str, Any] | None = None) -> dict[str, Any]:
        """``cm.image_dataset_from_drive(ref, **options)`` into ``variable`` (``"train, val"``
        for both subsets) in ``namespace`` (the notebook's by default).

        Returns:
            ``{name: dataset}`` of what was assigned.

        Raises:
            ValueError: a field is wrong (the message names it).
            MissingDependencyError: TensorFlow/Keras are not installed.
            and the errors of ``colabmodels.image_dataset_from_drive``.
        """
        opts = options.checked()
        names = variable_names(variable, opts.subset)
        try:
            from ..datasets import image_dataset_from_drive
            from ..datasets.feeder import skips_reported_to

            with skips_reported_to(logger.info):  # the panel lists them in its result line
                made = image_dataset_from_drive(self.ref, follow_links=self.follow_links,
                                                class_names=self.class_names, verbose=False,
                                                **opts.kwargs())
            self.last_skipped = list(getattr(made[0] if isinstance(made, list) else made,
                                             "skipped", []))
        except ImportError as e:
            raise _needs_frameworks("making the dataset", e) from e
        target = namespace if namespace is not None else user_namespace()
        if opts.subset == "both" and len(names) == 2:
            out = dict(zip(names, made, strict=True))
        else:
            out = {names[0]: made}
        target.update(out)
        self.last_created = out
        return out

    def pack(self, dest: str | None = None, *, options: DatasetOptions | None = None,
             progress: ProgressSink | None = None) -> Ref:
        """``cm.pack(ref, dest)``: WebDataset shards written back to Drive (default: beside
        the folder, ``<name>_shards``), with the split of ``options`` if it has one.

        Raises:
            MissingDependencyError: numpy/PIL (the frameworks' extra) are not installed.
            and the errors of ``colabmodels.pack``.
        """
        opts = (options or DatasetOptions(validation_split=None, subset=None)).checked()
        try:
            from ..datasets import pack

            with reporting_to(progress):
                return pack(self.ref, (dest or "").strip() or None,
                            validation_split=opts.validation_split,
                            seed=opts.seed if opts.validation_split else None,
                            class_names=self.class_names, follow_links=self.follow_links,
                            on_error=opts.on_error)
        except ImportError as e:
            raise _needs_frameworks("packing", e) from e

    def status(self) -> str:
        """One line for the panel: what is listed, or what is happening."""
        from ..datasets.summary import describe

        with self._lock:
            summary, busy, shown = self.summary, self._active > 0, len(self.thumbnails)
        if summary is None:
            return "listing …" if busy else ""
        line = describe(summary)
        if summary.complete and busy:
            line += f" · thumbnails {shown} …"
        return line

