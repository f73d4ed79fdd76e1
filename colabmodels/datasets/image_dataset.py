"""``image_dataset_from_drive``: ``keras.utils.image_dataset_from_directory`` for a Drive folder.

Same arguments, same checks and error messages, same class order, same file selection, same
split for the same seed, and the same decoding: the pipeline is Keras' own (its label
encoding, shuffle, and image loading with ``smart_resize`` / ``resize_with_pad``), fed with
the local cache paths of the Drive files. Those are fetched many at a time just ahead of
their use (``Feeder``), so the first epoch streams from
Drive and later epochs read local disk. A folder written by ``pack``
is read from its shards instead.

A new kernel on a warm cache does not wait for Drive before it starts: the dataset is built on
the remembered listing while one thread reads Drive's change feed
(``colabmodels.tree.walk_remembered``), and the call returns it only once the feed names
nothing in it; otherwise it is built again on the listing as of now. Either way the dataset
returned is Drive's as of the call.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import MissingDependencyError
from ..tree import RememberedWalk, Tree, walk_remembered, walk_tree
from .feeder import Feeder, check_on_error, keep_readable, stand_ins_when_stopped
from .interrupts import watch_interrupts
from .listing import (
    ALLOWLIST_FORMATS,
    DatasetFile,
    index_drive_folder,
    resolve_folder,
    shuffled,
    take,
)
from .member_bytes import FEED_BATCH, FEED_CALLS, decode_calls, without_autotune
from .quiet_import import quiet_import

if TYPE_CHECKING:
    from ..refs import Ref

logger = logging.getLogger(__name__)


SUPPORTED_INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5",
                            "gaussian", "mitchellcubic")


def _tf_and_keras() -> tuple[Any, Any]:
    try:
        keras = quiet_import("keras")  # TensorFlow's C++ start-up lines stay out of the notebook
        tf = quiet_import("tensorflow")
    except ImportError as e:
        raise MissingDependencyError(
            'image_dataset_from_drive needs TensorFlow and Keras 3: pip install "colabmodels[tf]"'
        ) from e
    return tf, keras


def _print(message: str, verbose: bool = True) -> None:
    """Keras' own console message (respecting its interactive-logging setting)."""
    logger.info("%s", message)
    if verbose:
        from keras.src.utils import io_utils

        io_utils.print_msg(message)


def check_arguments(labels: Any, label_mode: Any, class_names: Any, color_mode: str,
                    image_size: Any, interpolation: str, validation_split: Any, subset: Any,
                    shuffle: bool, seed: Any, format: str = "tf") -> tuple[Any, Any, int, tuple[int, int], str]:
    """Keras' argument checks, in Keras' order and with its messages.

    Returns ``(labels, label_mode, num_channels, image_size, interpolation)`` normalised.
    """
    if labels not in ("inferred", None):
        if not isinstance(labels, (list, tuple)):
            raise ValueError(
                "`labels` argument should be a list/tuple of integer labels, of the same size "
                "as the number of image files in the target directory. If you wish to infer "
                'the labels from the subdirectory names in the target directory, pass '
                '`labels="inferred"`. If you wish to get a dataset that only contains images '
                f"(no labels), pass `labels=None`. Received: labels={labels}")
        if class_names:
            raise ValueError(
                'You can only pass `class_names` if `labels="inferred"`. '
                f"Received: labels={labels}, and class_names={class_names}")
    if label_mode not in {"int", "categorical", "binary", None}:
        raise ValueError('`label_mode` argument must be one of "int", "categorical", "binary", '
                         f"or None. Received: label_mode={label_mode}")
    if labels is None or label_mode is None:
        labels = None
        label_mode = None
    channels = {"rgb": 3, "rgba": 4, "grayscale": 1}.get(color_mode)
    if channels is None:
        raise ValueError('`color_mode` must be one of {"rgb", "rgba", "grayscale"}. '
                         f"Received: color_mode={color_mode}")
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    elif not isinstance(image_size, (list, tuple)) or len(image_size) != 2:
        raise ValueError("Invalid `image_size` value. Expected a tuple of 2 integers. "
                         f"Received: image_size={image_size}")
    interpolation = interpolation.lower()
    if interpolation not in SUPPORTED_INTERPOLATIONS:
        raise ValueError(f"Argument `interpolation` should be one of {SUPPORTED_INTERPOLATIONS}. "
                         f"Received: interpolation={interpolation}")
    if format not in ("tf", "grain"):
        raise ValueError(f'`format` should be either "tf" or "grain". Received: format={format}')
    if format == "grain":
        raise ValueError('image_dataset_from_drive returns a tf.data.Dataset (format="tf"); for '
                         "a backend-neutral dataset use cm.DriveImageSequence (a keras PyDataset).")
    from keras.src.utils import dataset_utils

    dataset_utils.check_validation_split_arg(validation_split, subset, shuffle, seed)
    return labels, label_mode, channels, (int(image_size[0]), int(image_size[1])), interpolation


def _without_gc_pauses(make: Callable[..., Any]) -> Callable[..., Any]:
    """``make`` with Python's automatic garbage collection held off while it runs.

    Making a dataset turns a listing into some ten objects per file (10,000s for a large
    folder), all of which live on. With TensorFlow loaded, that many new objects set off a
    full collection, which walks every object TensorFlow and Keras made (a million or so): a
    tenth of a second or more, spent finding nothing, before the first batch. Collections go
    on as usual afterwards (and a caller that turned them off keeps them off).
    """

    @functools.wraps(make)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        was = gc.isenabled()
        gc.disable()
        try:
            return make(*args, **kwargs)
        finally:
            if was:
                gc.enable()

    return wrapper


@_without_gc_pauses
def image_dataset_from_drive(
    ref: str | os.PathLike[str] | Ref,
    labels: Any = "inferred",
    label_mode: str | None = "int",
    class_names: list[str] | None = None,
    color_mode: str = "rgb",
    batch_size: int | None = 32,
    image_size: tuple[int, int] | int = (256, 256),
    shuffle: bool = True,
    seed: int | None = None,
    validation_split: float | None = None,
    subset: str | None = None,
    interpolation: str = "bilinear",
    follow_links: bool = False,
    crop_to_aspect_ratio: bool = False,
    pad_to_aspect_ratio: bool = False,
    data_format: str | None = None,
    format: str = "tf",
    verbose: bool = True,
    *,
    on_error: str = "raise",
    refresh: bool = False,
    workers: int | None = None,
    include_hidden: bool = True,
) -> Any:
    """A ``tf.data.Dataset`` of the images in a Drive folder, as Keras makes one from a local folder.

    Every argument before ``on_error`` means what it means for
    ``keras.utils.image_dataset_from_directory`` (read its documentation); ``follow_links``
    follows Drive shortcuts to folders. The result has ``class_names`` and ``file_paths``
    (Drive paths); ``subset="both"`` returns ``(train, validation)``.

    Where the files go: each file is downloaded once into the colabmodels cache
    (``COLABMODELS_CACHE_DIR``, by default ``~/.cache/colabmodels``; ``%cache ls`` or
    ``colabmodels cache ls`` show it), 64 at a time, just ahead of its use in the first epoch
    (the first few hundred start while the dataset is being made); later epochs, and later
    sessions on the same machine, read local disk. The dataset takes
    as much disk as its files take in Drive (``cm.DatasetPanel`` shows the total);
    ``COLABMODELS_CACHE_MAX_BYTES`` caps the cache, and ``cm.cache.prune()`` /
    ``cm.cache.clear()`` free it. Nothing is held in memory beyond Keras' own buffers.

    Interrupting (Ctrl-C, or Kernel > Interrupt) stops the downloads within about a second;
    files already complete stay in the cache, and the next run resumes with the rest.

    Args:
        ref: the dataset folder: ``MyDrive/datasets/flowers``, a folder link or id (also
            ``gs://``, ``s3://`` or a local folder), or a folder written by ``cm.pack``;
            or a ``.zip`` of it, read by ranges as if extracted (one top folder is descended
            into; see ``colabmodels.datasets.zipped``).
        on_error: ``"raise"`` (a broken image raises an error naming its Drive path, when it
            is read) or ``"skip"``: every file is fetched and checked before the dataset is
            returned (with a progress bar counting files), broken ones are left out with one
            logged warning each and listed in the dataset's ``skipped``, and the dataset's
            length stays known (so ``fit`` never reports running out of data).
        refresh: list the folder again instead of checking the remembered listing.
        workers: files fetched at the same time (default 64).
        include_hidden: False leaves out files in hidden folders inside the classes (and hidden
            files), such as ``lily/.ipynb_checkpoints/``; Keras includes them (the default).
            Hidden folders at the top are never classes, as in Keras.

    Raises:
        ValueError: a bad argument (Keras' checks and messages), or no images found.
        NotFoundError, AuthError: the folder cannot be read.
        MissingDependencyError: TensorFlow/Keras are not installed.
    """
    tf, _ = _tf_and_keras()
    check_on_error(on_error)
    labels, label_mode, num_channels, image_size, interpolation = check_arguments(
        labels, label_mode, class_names, color_mode, image_size, interpolation,
        validation_split, subset, shuffle, seed, format)
    if pad_to_aspect_ratio and crop_to_aspect_ratio:
        raise ValueError("Only one of `pad_to_aspect_ratio`, `crop_to_aspect_ratio` can be set "
                         "to `True`.")
    import numpy as np

    if seed is None:
        seed = int(np.random.randint(1_000_000))
    backend, root = _resolve(ref)
    from .shards import INDEX_NAME, open_packed

    zipped = None
    if not root.is_dir:
        from .zipped import open_zip_dataset

        zipped = open_zip_dataset(backend, root)
    early = None
    if zipped is not None:  # a .zip, read by ranges as the folder it holds
        root, tree = zipped.root, zipped.tree
    elif not refresh:
        # A new kernel on a warm cache: the remembered listing is used at once while Drive's
        # change feed is read in a thread; what is built on it is kept only if the feed names
        # nothing in it (otherwise everything is built again on the listing as of now).
        early = walk_remembered(backend, root, follow_links=follow_links)
    if early is not None:
        tree = early.tree
    elif zipped is None:
        tree = walk_tree(backend, root, follow_links=follow_links, refresh=refresh)
    messages: list[str] = []

    def build(tree: Tree, root: Any, speculation: _Speculation) -> Any:
        packed = None
        if zipped is None:
            if any(c.name == INDEX_NAME for c in tree.root.children or () if not c.is_dir):
                speculation.settle()  # reading the shard index may take requests
            packed = open_packed(backend, root, tree)
        skipped: list[str] = []
        if packed is not None:
            files, labels_arr, class_names_out = packed.select(labels, class_names, shuffle, seed)

            def make_feeder(part: list[DatasetFile], lookahead: int, early: bool = True) -> Any:
                return packed.feeder(part, on_error=on_error, skipped=skipped)
        else:
            index = index_drive_folder(ref, labels, formats=ALLOWLIST_FORMATS,
                                       class_names=class_names,
                                       shuffle=shuffle and include_hidden, seed=seed,
                                       follow_links=follow_links, refresh=refresh,
                                       folder=(backend, root), tree=tree)
            files, labels_arr, class_names_out = index.stats.files, index.labels, index.class_names
            if zipped is not None:
                zipped.check(files)  # encrypted members raise now, naming archive and member
            if not include_hidden:  # as Keras would list the folder without them
                files, labels_arr = _without_hidden(files, labels_arr, labels == "inferred")
                if shuffle:
                    files, labels_arr = shuffled(files, labels_arr, seed)
            for where, why in index.stats.unreadable:
                if on_error == "raise":
                    from ..errors import AuthError

                    raise AuthError(f"{where}: {why}. Pass on_error=\"skip\" to leave it out.")
                speculation.settle()
                logger.warning("skipped %s: %s", where, why)
                skipped.append(where)

            def make_feeder(part: list[DatasetFile], lookahead: int, early: bool = True) -> Any:
                """``early``: start fetching now (not for a validation split: the training
                split is read first)."""
                if zipped is not None:
                    return zipped.feeder(part, on_error=on_error, skipped=skipped,
                                         workers=workers, lookahead=lookahead)
                feeder = Feeder(backend, part, on_error=on_error, skipped=skipped,
                                workers=workers, lookahead=lookahead)
                feeder.find_cached()
                if early and on_error == "raise" and feeder.pending():
                    if shuffle and len(part) > 1:
                        # In the order the first epoch asks for them: its first batch waits
                        # for its own files, not for the shuffle buffer's (the first few
                        # hundred in list order). Not on a warm cache: there the first
                        # tf.data run in a new kernel (about 50 ms) would delay its batch.
                        feeder.fetch_in_order(first_epoch_order(len(part), shuffle_buffer_size,
                                                                seed))
                    # The first batches come from the first files: fetch them while TensorFlow
                    # builds the pipeline (a listing not yet confirmed is confirmed first).
                    speculation.settle()
                    started.append(feeder)
                    feeder.read_ahead_now()
                return feeder
        if on_error == "skip":
            speculation.settle()  # every file is fetched now: only those of the listing as of now
        if on_error == "skip" and zipped is not None:
            files, labels_arr = zipped.checked_up_front(files, labels_arr, skipped, workers)
        elif on_error == "skip" and packed is None:
            files, labels_arr = _checked_up_front(backend, files, labels_arr, skipped, workers,
                                                  verbose)
        if labels_arr is None:
            messages.append(f"Found {len(files)} files.")
        else:
            messages.append(f"Found {len(files)} files belonging to "
                            f"{len(class_names_out or [])} classes.")
        if label_mode == "binary" and len(class_names_out or []) != 2:
            raise ValueError('When passing `label_mode="binary"`, there must be exactly 2 '
                             f"class_names. Received: class_names={class_names_out}")
        from keras.src.backend.config import standardize_data_format

        shuffle_buffer_size = batch_size * 8 if batch_size is not None else 1024
        directory = root.ref.path or root.name
        num_classes = len(class_names_out) if class_names_out else 0
        common: dict[str, Any] = dict(image_size=image_size, num_channels=num_channels,
                      label_mode=label_mode, num_classes=num_classes,
                      interpolation=interpolation, crop_to_aspect_ratio=crop_to_aspect_ratio,
                      pad_to_aspect_ratio=pad_to_aspect_ratio,
                      data_format=standardize_data_format(data_format=data_format),
                      on_error=on_error)

        def split(which: str | None) -> tuple[list[DatasetFile], Any]:
            """Keras' split; its "Using N files for ..." line waits in ``messages``."""
            import contextlib
            import io

            from keras.src.utils import dataset_utils

            with contextlib.redirect_stdout(io.StringIO()):
                part, part_labels = dataset_utils.get_training_or_validation_split(
                    files, labels_arr, validation_split, which)
            if which in ("training", "validation"):  # Keras' line, with its counts
                val = int((validation_split or 0) * len(files))
                messages.append(f"Using {len(files) - val if which == 'training' else val} "
                                f"files for {which}.")
            return part, part_labels

        def finish(ds: Any, part: list[DatasetFile]) -> Any:
            feeder, known = ds._colabmodels_feeder, ds._colabmodels_paths
            if batch_size is not None:
                ds = ds.batch(batch_size)
            ds = ds.prefetch(tf.data.AUTOTUNE)
            ds.class_names = class_names_out
            ds.file_paths = [f.path for f in part]
            ds.skipped = skipped
            ds._colabmodels_feeder = feeder  # the fetcher lives as long as the dataset
            ds._colabmodels_paths = known
            return ds

        if subset == "both":
            train_files, train_labels = split("training")
            val_files, val_labels = split("validation")
            if not train_files:
                raise ValueError(f"No training images found in directory {directory}. "
                                 f"Allowed formats: {ALLOWLIST_FORMATS}")
            if not val_files:
                raise ValueError(f"No validation images found in directory {directory}. "
                                 f"Allowed formats: {ALLOWLIST_FORMATS}")
            train = files_to_dataset(train_files, train_labels, shuffle=shuffle,
                                     shuffle_buffer_size=shuffle_buffer_size, seed=seed,
                                     feeder=make_feeder(train_files, shuffle_buffer_size + 256),
                                     **common)
            val = files_to_dataset(val_files, val_labels, shuffle=False,
                                   feeder=make_feeder(val_files, 256, early=False), **common)
            return [finish(train, train_files), finish(val, val_files)]
        part, part_labels = split(subset) if validation_split else (files, labels_arr)
        if not part:
            raise ValueError(f"No images found in directory {directory}. "
                             f"Allowed formats: {ALLOWLIST_FORMATS}"
                             + _one_class_hint(tree, directory, labels, class_names_out))
        ds = files_to_dataset(part, part_labels, shuffle=shuffle,
                              shuffle_buffer_size=shuffle_buffer_size, seed=seed,
                              feeder=make_feeder(part, (shuffle_buffer_size if shuffle else 0) + 256),
                              **common)
        return finish(ds, part)

    started: list[Feeder] = []  # feeders fetching already: stopped if the build fails

    def attempt(tree: Tree, root: Any, speculation: _Speculation) -> Any:
        try:
            try:
                out = build(tree, root, speculation)
            except _Changed:
                raise
            except Exception:
                speculation.settle()  # an error met on an unconfirmed listing counts if it holds
                raise
            speculation.settle()
        except BaseException:
            for feeder in started:
                feeder.stop()
            started.clear()
            raise
        return out

    try:
        out = attempt(tree, root, _Speculation(early))
    except _Changed as changed:  # Drive changed since the listing was remembered
        logger.info("the remembered listing of %s changed; building on the listing as of now",
                    root.name)
        messages.clear()
        out = attempt(changed.tree, changed.tree.root.stat, _Speculation(None))
    for message in messages:
        _print(message, verbose)
    return out


class _Changed(Exception):
    """The listing a dataset was being built on is no longer Drive's (``_Speculation``)."""

    def __init__(self, tree: Tree) -> None:
        super().__init__("the remembered listing changed")
        self.tree = tree


class _Speculation:
    """A dataset being built on a remembered listing that the change feed has not confirmed
    yet (``colabmodels.tree.walk_remembered``); None when the listing is Drive's as of now."""

    def __init__(self, walk: RememberedWalk | None) -> None:
        self.walk = walk

    def settle(self) -> None:
        """Wait for the change feed (once); raise ``_Changed`` with the tree as of now
        when the remembered one is no longer right."""
        walk, self.walk = self.walk, None
        if walk is None:
            return
        current = walk.confirm()
        if current is not walk.tree:
            raise _Changed(current)


def _resolve(ref: Any) -> tuple[Any, Any]:
    """``resolve_folder``, and for a path that names nothing, an error that says so with
    the nearest existing names (``flowers`` for ``flowerz``)."""
    from ..errors import NotFoundError

    try:
        return resolve_folder(ref, archives=True)
    except NotFoundError as e:
        if "is a file" in str(e):
            raise
        from ..storage import backend_for
        from .listing import as_ref
        from .summary import missing_folder

        parsed = as_ref(ref)
        better = missing_folder(parsed, backend_for(parsed))
        if better is None:
            raise
        raise better from e


def _one_class_hint(tree: Any, directory: str, labels: Any, names: list[str] | None) -> str:
    """" This looks like one class…" when the images lie directly in the folder."""
    from .summary import top_level_images

    loose = top_level_images(tree) if labels == "inferred" and not names else 0
    if not loose:
        return ""
    parent = directory.rstrip("/").rsplit("/", 1)[0] if "/" in directory.strip("/") else ""
    return (f". This looks like one class: {loose} images lie directly in {directory}, with no "
            "class folders" + (f"; did you mean the parent folder {parent}?" if parent else ".")
            + " (labels=None reads unlabeled images.)")


def _without_hidden(files: list[DatasetFile], labels: Any,
                    inferred: bool) -> tuple[list[DatasetFile], Any]:
    """The files outside hidden folders (and not hidden themselves), labels to match."""
    from .summary import is_hidden_inside

    keep = [i for i, f in enumerate(files) if not is_hidden_inside(f.rel, below_class=inferred)]
    if len(keep) < len(files):
        logger.info("left out %d files in hidden folders (include_hidden=False)",
                    len(files) - len(keep))
    return take(files, labels, keep)


def _checked_up_front(backend: Any, files: list[DatasetFile], labels: Any, skipped: list[str],
                      workers: int | None, verbose: bool) -> tuple[list[DatasetFile], Any]:
    """``on_error="skip"``: every file fetched and checked now (``.feeder.keep_readable``)."""
    feeder = Feeder(backend, files, on_error="skip", skipped=skipped, workers=workers)
    feeder.find_cached()
    return keep_readable(feeder, labels, progress=verbose)


def first_epoch_order(count: int, shuffle_buffer_size: int, seed: int | None) -> list[int]:
    """The order in which the first epoch of ``files_to_dataset(..., shuffle=True)`` over
    ``count`` files asks for them (indices): tf.data's shuffle order depends only on the
    count, the buffer and the seeds, so a twin of the index stream gives it (10-60 ms)."""
    import tensorflow as tf

    twin = tf.data.Dataset.range(count).shuffle(buffer_size=shuffle_buffer_size, seed=seed)
    return [int(i) for i in next(iter(twin.batch(count))).numpy()]


def files_to_dataset(files: list[DatasetFile], labels: Any, *, feeder: Any,
                     image_size: tuple[int, int], num_channels: int, label_mode: str | None,
                     num_classes: int, interpolation: str, data_format: str,
                     crop_to_aspect_ratio: bool, pad_to_aspect_ratio: bool, on_error: str,
                     shuffle: bool = False, shuffle_buffer_size: int | None = None,
                     seed: int | None = None) -> Any:
    """Keras' ``paths_and_labels_to_dataset`` with Drive files in place of local paths.

    The element stream is Keras' (labels encoded by its ``labels_to_dataset_tf``, shuffled
    with the same buffer and seed, images loaded by its ``_load_image_tf``); only the path
    of each element is looked up in the ``Feeder``, which fetches ahead.
    """
    import numpy as np
    import tensorflow as tf
    from keras.src.utils import dataset_utils, image_dataset_utils

    buffer = shuffle_buffer_size or 1024
    if hasattr(feeder, "to_dataset"):  # shards and zips: image bytes, decoded in TensorFlow
        return feeder.to_dataset(
            labels, image_size=image_size, num_channels=num_channels, label_mode=label_mode,
            num_classes=num_classes, interpolation=interpolation, data_format=data_format,
            crop_to_aspect_ratio=crop_to_aspect_ratio, pad_to_aspect_ratio=pad_to_aspect_ratio,
            on_error=on_error, shuffle=shuffle, shuffle_buffer_size=buffer, seed=seed)
    ready = feeder.paths() if hasattr(feeder, "paths") else []
    if files and ready and all(ready):
        # Every file is already local (a warm cache): Keras' own pipeline over the cache paths.
        ds = image_dataset_utils.paths_and_labels_to_dataset(
            image_paths=ready, image_size=image_size, num_channels=num_channels, labels=labels,
            label_mode=label_mode, num_classes=num_classes, interpolation=interpolation,
            data_format=data_format, crop_to_aspect_ratio=crop_to_aspect_ratio,
            pad_to_aspect_ratio=pad_to_aspect_ratio, shuffle=shuffle,
            shuffle_buffer_size=buffer, seed=seed)
        ds._colabmodels_feeder = feeder
        ds._colabmodels_paths = None
        return ds

    def local_batch(indices: Any) -> tuple[Any, Any]:
        """One Python call per ``FEED_BATCH`` elements: start every missing file of the
        batch at once, then collect them (the feeder fetches ahead of this too)."""
        wanted = [int(i) for i in indices]
        if hasattr(feeder, "prefetch"):
            feeder.prefetch(wanted)
        got = [feeder.local(i) for i in wanted]
        return (np.array([(p or "").encode() for p in got], dtype=object),
                np.array([p is not None for p in got], dtype=bool))

    index_ds = tf.data.Dataset.range(len(files))
    if label_mode:
        label_ds = dataset_utils.labels_to_dataset_tf(labels, label_mode, num_classes)
        ds = tf.data.Dataset.zip((index_ds, label_ds))
    else:
        ds = index_ds
    if shuffle:
        ds = ds.shuffle(buffer_size=buffer, seed=seed)
    args = (image_size, num_channels, interpolation, data_format, crop_to_aspect_ratio,
            pad_to_aspect_ratio)

    # Paths already local are looked up in TensorFlow: the files found in the cache now, and
    # all of them once the first epoch has fetched the rest. The elements go through in
    # batches of FEED_BATCH indices: a batch whose files are all local never leaves
    # TensorFlow; otherwise one Python call fetches (or waits for) the batch's missing files.
    # Decoding is Keras' own loader in TensorFlow's parallel map, one element at a time.
    known = tf.Variable(feeder.paths() if hasattr(feeder, "paths") else [""] * len(files),
                        dtype=tf.string, trainable=False, shape=(len(files),))
    if hasattr(feeder, "on_all_local"):
        feeder.on_all_local = known.assign
        known.assign(feeder.paths())  # what arrived while the variable was made
    if hasattr(feeder, "interrupt"):  # Ctrl-C stops its downloads while TF's iterator waits
        watch_interrupts(feeder)

    def ask_feeder(i: Any) -> tuple[Any, Any]:
        path, ok = tf.numpy_function(stand_ins_when_stopped(local_batch, as_path=True), [i], (tf.string, tf.bool),
                                     stateful=True)
        path.set_shape(i.shape)
        ok.set_shape(i.shape)
        return path, ok

    def lookup(i: Any) -> tuple[Any, Any]:
        path = tf.gather(known, i)
        return tf.cond(tf.reduce_all(tf.strings.length(path) > 0),
                       lambda: (path, tf.ones_like(i, dtype=tf.bool)), lambda: ask_feeder(i))

    load = image_dataset_utils._load_image_tf
    # No AutoGraph: these functions have no Python control flow on tensors, and converting
    # them (with Keras' loader they call) parsed their source for about 0.4 s per dataset.
    plain = tf.autograph.experimental.do_not_convert
    ds = ds.batch(FEED_BATCH)
    if label_mode:
        ds = ds.map(plain(lambda i, y: (*lookup(i), y)), num_parallel_calls=FEED_CALLS)
    else:
        ds = ds.map(plain(lookup), num_parallel_calls=FEED_CALLS)
    ds = ds.unbatch()
    if on_error == "skip":
        ds = ds.filter(plain(lambda p, ok, *y: ok))
    else:
        ds = ds.apply(tf.data.experimental.assert_cardinality(len(files)))
    if label_mode:
        ds = ds.map(plain(lambda p, ok, y: (load(p, *args), y)), num_parallel_calls=decode_calls())
    else:
        ds = ds.map(plain(lambda p, ok: load(p, *args)), num_parallel_calls=decode_calls())
    ds = without_autotune(ds)
    ds._colabmodels_feeder = feeder  # keeps the fetcher alive as long as the dataset
    ds._colabmodels_paths = known
    return ds
