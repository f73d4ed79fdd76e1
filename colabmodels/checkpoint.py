"""Training that survives a disconnect: checkpoints saved as versions of a Drive folder.

``DriveCheckpoint(dest)`` is a Keras callback (and, for torch or anything else, an object with
``restore()``, ``save()`` and ``wait()``). Each checkpoint is a version of ``dest`` made by the
registry (``vN/`` with a ``manifest.json`` uploaded last), so ``cm.versions``, ``@latest``,
``@best``, ``cm.load_model`` and the own-saves rule apply to checkpoints as to any save.

How a checkpoint travels::

    training thread                     upload thread (one per dest and process)
    ---------------                     ---------------------------------------
    save() / on_epoch_end:              takes the oldest pending snapshot,
      serialise into the local spool      registry.publish -> vN complete,
      (a snapshot: later weights            removes the spool folder,
      cannot leak into it), queue it,       prunes (keep_last) older versions
      return                              on a dead network or an expired sign-in:
                                            the snapshot stays in the spool, retried
                                            later (network) or after signing in

Queue rules: a new snapshot replaces the one still waiting (latest wins, the skipped ones are
reported), except that a waiting best-so-far (with ``monitor``) is never dropped for a newer
one that is not a new best; so at most two snapshots wait, on disk, never in memory.

The spool is ``<cache dir>/checkpoint-spool/<dest hash>/``: one folder per snapshot, made
complete by its ``checkpoint.json`` (written last). A snapshot left there by a process that
died (a kernel restart, Ctrl-C twice) is uploaded by the next ``restore()`` when it is newer
than what ``dest`` holds; a checkpoint that already reached ``dest`` is recognised by its id.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import api, config
from .errors import (
    AuthError,
    NotFoundError,
    OfflineError,
    RetryableError,
    TransferError,
    UnknownFormatError,
)
from .formats import SavedFiles, save_object
from .formats.save import object_kind
from .progress import ProgressCallback, progress_bar
from .refs import Ref, parse_ref
from .registry import (
    SavedModelInfo,
    best_version,
    json_metadata,
    list_versions,
    model_path_in,
    prune_checkpoints,
    publish,
)

__all__ = ["DriveCheckpoint"]

logger = logging.getLogger(__name__)

_RECORD = "checkpoint.json"
_MODES = ("min", "max", "auto")


def _spool_root() -> Path:
    return config.cache_dir() / "checkpoint-spool"


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    return path


@dataclass
class _Snapshot:
    """One serialised checkpoint in the spool, waiting for (or in) its upload."""

    folder: Path
    saved: SavedFiles
    metadata: dict[str, Any]
    record: dict[str, Any]  # the manifest's "checkpoint": id, time, epoch/step, monitor...
    best: bool
    label: str

    @property
    def size(self) -> int:
        return sum((self.folder / p).stat().st_size for p in self.saved.files
                   if (self.folder / p).exists())

    def write_record(self, dest: str) -> None:
        body = {"dest": dest, "format": self.saved.format, "framework": self.saved.framework,
                "framework_version": self.saved.framework_version,
                "files": [Path(p).as_posix() for p in self.saved.files],
                "model_path": Path(self.saved.model_path).as_posix()
                if self.saved.model_path else None,
                "extra": self.saved.extra or {}, "metadata": self.metadata,
                "checkpoint": self.record, "best": self.best, "label": self.label}
        tmp = self.folder / f".{_RECORD}.tmp"
        tmp.write_text(json.dumps(body, default=str))
        os.replace(tmp, self.folder / _RECORD)  # the snapshot is complete from here on

    @classmethod
    def read(cls, folder: Path) -> _Snapshot | None:
        try:
            body = json.loads((folder / _RECORD).read_text())
            saved = SavedFiles(body["format"], body["framework"], body["framework_version"],
                               [Path(p) for p in body["files"]], dict(body.get("extra") or {}),
                               Path(body["model_path"]) if body.get("model_path") else None)
            if not all((folder / p).is_file() for p in saved.files):
                return None
            return cls(folder, saved, dict(body.get("metadata") or {}),
                       dict(body["checkpoint"]), bool(body.get("best")), str(body.get("label", "")))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


# -- the upload thread --------------------------------------------------------------------------

class _Uploader:
    """Uploads the snapshots of one ``dest`` in one background thread (one per process)."""

    def __init__(self, dest: Ref) -> None:
        self.dest = dest
        self.shown = str(dest)
        self.cond = threading.Condition()
        self.pending: list[_Snapshot] = []  # oldest first; at most a best-so-far and the newest
        self.current: _Snapshot | None = None
        self.keep_last: int | None = None
        self.state = "ok"  # ok | down (network) | auth (sign in again) | error
        self.problem: BaseException | None = None
        self.attempts = 0
        self.failures = 0
        self.kick = False
        self.uploaded: list[SavedModelInfo] = []
        self.skipped: list[str] = []
        self.sink: ProgressCallback | None = None
        self.thread: threading.Thread | None = None

    # training side
    def submit(self, snap: _Snapshot) -> None:
        with self.cond:
            kept = []
            for old in self.pending:
                if old.best and not snap.best:
                    kept.append(old)  # a best-so-far is never dropped for a lesser checkpoint
                else:
                    self.skipped.append(old.label)
                    logger.info("checkpoint of %s skipped: %s replaces it while an upload to "
                                "%s is still running", old.label, snap.label, self.shown)
                    old.discard()
            self.pending = [*kept, snap]
            self.kick = True
            self.cond.notify_all()
            self._start()

    def busy(self) -> bool:
        with self.cond:
            return bool(self.pending) or self.current is not None

    def owns(self, folder: Path) -> bool:
        with self.cond:
            return any(s.folder == folder for s in [*self.pending, *([self.current] if self.current else [])])

    def _start(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._run, name=f"colabmodels-checkpoint {self.shown}",
                                           daemon=True)
            self.thread.start()

    # upload side
    def _retry_delay(self) -> float:
        return min(60.0, 2.0 * 2 ** min(self.failures, 5))

    def _run(self) -> None:
        while True:
            with self.cond:
                while True:
                    if self.pending and (self.state == "ok" or self.kick):
                        break
                    if self.pending and self.state == "down":
                        if not self.cond.wait(self._retry_delay()):
                            break  # time to try the network again
                        continue
                    self.cond.wait()
                self.kick = False
                snap = self.pending.pop(0)
                self.current = snap
                self.attempts += 1
            ok = self._upload(snap)
            with self.cond:
                self.current = None
                if not ok:
                    # back in front, unless something newer made it redundant meanwhile
                    if self.pending and not (snap.best and not any(s.best for s in self.pending)):
                        self.skipped.append(snap.label)
                        snap.discard()
                    else:
                        self.pending.insert(0, snap)
                self.cond.notify_all()

    def _report(self, n: int) -> None:
        sink = self.sink
        if sink is not None:
            sink(n)

    def _upload(self, snap: _Snapshot) -> bool:
        try:
            info = publish(snap.folder, snap.saved, self.dest, metadata=snap.metadata,
                           extra={"checkpoint": snap.record}, progress=False, report=self._report)
        except AuthError as e:
            self._failed(snap, "auth", e)
            return False
        except (OfflineError, TransferError, RetryableError, ConnectionError, TimeoutError) as e:
            self._failed(snap, "down", e)
            return False
        except Exception as e:  # keep the snapshot: nothing a later attempt cannot redo
            logger.exception("uploading the checkpoint of %s to %s failed", snap.label, self.shown)
            self._failed(snap, "error", e)
            return False
        snap.discard()
        with self.cond:
            self.uploaded.append(info)
            if self.state != "ok":
                logger.warning("%s: uploads work again; the checkpoint of %s is %s",
                               self.shown, snap.label, info.ref)
            self.state, self.problem, self.failures = "ok", None, 0
        logger.info("checkpoint of %s saved as %s", snap.label, info.ref)
        if self.keep_last:
            try:
                prune_checkpoints(self.dest, self.keep_last)
            except Exception as e:  # the next complete checkpoint prunes again
                logger.warning("%s: could not remove older checkpoints yet (%s)", self.shown, e)
        return True

    def _failed(self, snap: _Snapshot, state: str, error: BaseException) -> None:
        with self.cond:
            first = self.state != state
            self.state, self.problem = state, error
            self.failures += 1
        if first:
            logger.warning("%s", self.explain(snap))

    def explain(self, snap: _Snapshot | None = None) -> str:
        """What is pending and why, and what to do about it."""
        with self.cond:
            waiting = [s for s in [*([self.current] if self.current else []), *self.pending]]
            snap = snap or (waiting[-1] if waiting else None)
            state, problem = self.state, self.problem
        labels = ", ".join(s.label for s in waiting) or (snap.label if snap else "nothing")
        where = f" It is kept in the local spool ({snap.folder.parent})." if snap else ""
        reason = f" ({problem})" if problem else ""
        if state == "auth":
            return (f"Drive refused the sign-in while uploading the checkpoint of {labels} to "
                    f"{self.shown}{reason}.{where} Sign in again: cm.mount(force_remount=True) "
                    "(or %drive_mount --force; in Colab run the cell that mounts Drive again), "
                    "then call ckpt.wait(); the next save uploads it as well.")
        if state == "down":
            return (f"cannot upload the checkpoint of {labels} to {self.shown}: the network or "
                    f"Drive is down{reason}.{where} Training goes on; it is uploaded when the "
                    "network is back (ckpt.wait() tries again now).")
        return (f"uploading the checkpoint of {labels} to {self.shown} failed{reason}.{where} "
                "ckpt.wait() tries again.")

    def wait(self, timeout: float | None = None) -> list[_Snapshot]:
        """Until nothing is pending, or one more attempt since this call failed; the pending
        snapshots (empty when everything is uploaded)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            if self.pending:
                self.kick = True
                self.cond.notify_all()
                self._start()
            start = self.attempts
            while self.pending or self.current is not None:
                if self.state != "ok" and self.current is None and self.attempts > start:
                    break
                if self.state != "ok" and self.current is None and not self.kick:
                    self.kick = True  # another attempt now, not after the backoff
                    self.cond.notify_all()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self.cond.wait(remaining if remaining is not None else 1.0)
            return [*([self.current] if self.current else []), *self.pending]


_UPLOADERS: dict[str, _Uploader] = {}
_UPLOADERS_LOCK = threading.Lock()
_AT_EXIT: list[bool] = []


def _uploader(dest: Ref) -> _Uploader:
    with _UPLOADERS_LOCK:
        key = str(dest)
        found = _UPLOADERS.get(key)
        if found is None:
            found = _UPLOADERS[key] = _Uploader(dest)
        if not _AT_EXIT:
            atexit.register(_flush_at_exit)
            _AT_EXIT.append(True)
        return found


def _flush_at_exit() -> None:
    """At interpreter exit (a finished script, or one stopped by Ctrl-C): upload what is
    pending, with a progress line; a second Ctrl-C abandons it (it stays in the spool)."""
    for up in list(_UPLOADERS.values()):
        if not up.busy():
            continue
        with up.cond:
            snaps = [*([up.current] if up.current else []), *up.pending]
        total = sum(s.size for s in snaps)
        try:  # from the line that invites the second Ctrl-C on, it abandons cleanly
            logger.warning("uploading %d pending checkpoint(s) (%s) to %s before exiting; "
                           "press Ctrl-C again to abandon (they stay in %s)", len(snaps),
                           ", ".join(s.label for s in snaps), up.shown, _spool_root())
            with progress_bar(total, f"checkpoints to {up.shown}") as bar:
                up.sink = bar
                left = up.wait()
        except KeyboardInterrupt:
            logger.warning("abandoned the upload to %s; the checkpoint(s) stay in the local spool "
                           "(%s) and the next restore() on this machine uploads them", up.shown,
                           _spool_root())
            return
        finally:
            up.sink = None
        if left:
            logger.warning("%s", up.explain())


# -- the callback -------------------------------------------------------------------------------

def _keras_callback_class() -> type | None:
    keras = sys.modules.get("keras")
    if keras is None and "tensorflow" in sys.modules:
        with contextlib.suppress(ImportError):
            import keras  # type: ignore[no-redef]
    base = getattr(getattr(keras, "callbacks", None), "Callback", None) if keras else None
    if base is None:
        return None
    cls = _KERAS_CLASSES.get(id(base))
    if cls is None:
        cls = _KERAS_CLASSES[id(base)] = type(
            "DriveCheckpoint", (DriveCheckpoint, base),
            {"__module__": __name__, "__qualname__": "DriveCheckpoint",
             "__doc__": DriveCheckpoint.__doc__})
    return cls


_KERAS_CLASSES: dict[int, type] = {}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class DriveCheckpoint:
    """Checkpoints as versions of ``dest``: training survives a disconnect.

    Keras (a ``keras.callbacks.Callback`` whenever Keras is imported before it is made)::

        ckpt = cm.DriveCheckpoint("MyDrive/runs/flowers", keep_last=3, monitor="val_loss")
        model.fit(train, validation_data=val, epochs=50, callbacks=[ckpt])  # again after a disconnect
        best = cm.load_model("MyDrive/runs/flowers@best")

    On train begin, when ``dest`` holds a checkpoint, the model's weights and optimizer state
    (Adam's ``iterations`` included) are restored from the latest one and training continues
    at the next epoch. Each epoch end (every ``every_epochs``) saves a checkpoint; train end
    waits for the uploads.

    torch and anything else::

        state = ckpt.restore()          # the last saved object, or None
        ckpt.save({"model": model.state_dict(), ...}, step=epoch, metrics={"val_loss": v})
        ckpt.wait()                     # at the end: until the uploads are done

    Args:
        dest: where the checkpoints live (a Drive path, ``gs://``, ``s3://``, a local folder).
        keep_last: keep this many checkpoints (plus the best one); older ones go to Drive's
            trash once a newer one is complete. None keeps all.
        every_epochs: Keras: save every this many epochs (and the last one).
        monitor: a metric (``"val_loss"``); the best checkpoint by it is ``dest@best``.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracy-like names).
        metadata: your key/values, recorded with every checkpoint.

    Raises:
        RefError: ``dest`` is not a place versions can be saved.
        ValueError: a bad ``keep_last``, ``every_epochs`` or ``mode``.
        MetadataError: metadata JSON cannot hold.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> DriveCheckpoint:
        if cls is DriveCheckpoint:
            keras_cls = _keras_callback_class()
            if keras_cls is not None:
                cls = keras_cls
        return super().__new__(cls)

    def __init__(self, dest: str | os.PathLike[str] | Ref, keep_last: int | None = 3,
                 every_epochs: int = 1, monitor: str | None = None, mode: str = "min",
                 metadata: dict[str, Any] | None = None) -> None:
        ref = dest if isinstance(dest, Ref) else parse_ref(os.fspath(dest))
        if ref.version:
            from .errors import RefError

            raise RefError(f"checkpoint into {ref.unversioned()}, not into a version "
                           f"({ref.raw or ref}); each checkpoint becomes a new version")
        if keep_last is not None and (isinstance(keep_last, bool) or not isinstance(keep_last, int)
                                      or keep_last < 1):
            raise ValueError(f"keep_last must be a whole number >= 1 (or None to keep all), "
                             f"not {keep_last!r}")
        if isinstance(every_epochs, bool) or not isinstance(every_epochs, int) or every_epochs < 1:
            raise ValueError(f"every_epochs must be a whole number >= 1, not {every_epochs!r}")
        if mode not in _MODES:
            raise ValueError(f"mode must be 'min', 'max' or 'auto', not {mode!r}")
        if monitor is not None and not isinstance(monitor, str):
            raise ValueError(f"monitor must be a metric name such as 'val_loss', not {monitor!r}")
        if mode == "auto":
            mode = "max" if monitor and any(k in monitor for k in ("acc", "auc", "f1", "precision",
                                                                   "recall")) else "min"
        self.dest = ref.unversioned()
        self.keep_last = keep_last
        self.every_epochs = every_epochs
        self.monitor = monitor
        self.mode = mode
        self.metadata = json_metadata(metadata)
        self.params: Any = None
        self._model: Any = None
        self._best: float | None = None
        self._best_known = False
        self._last_epoch: int | None = None
        self._last_saved_epoch: int | None = None
        self._initial_epoch_before: Any = None
        self._up = _uploader(self.dest)
        self._up.keep_last = keep_last

    def __repr__(self) -> str:
        best = f", monitor={self.monitor!r}, mode={self.mode!r}" if self.monitor else ""
        return f"DriveCheckpoint({str(self.dest)!r}, keep_last={self.keep_last}{best})"

    # -- what is on the destination -------------------------------------------------------------
    @property
    def spool(self) -> Path:
        """The local folder where this destination's checkpoints wait for their upload."""
        digest = hashlib.sha256(str(self.dest).encode()).hexdigest()[:16]
        return _spool_root() / digest

    def _versions(self) -> list[SavedModelInfo]:
        try:
            return list_versions(self.dest)
        except NotFoundError:
            return []

    def _learn_best(self, infos: list[SavedModelInfo]) -> None:
        if self._best_known or not self.monitor:
            return
        best = best_version(infos)
        record = (best.manifest.get("checkpoint") or {}) if best is not None else {}
        if record.get("monitor") == self.monitor and record.get("mode") == self.mode:
            self._best = _number(record.get("value"))
        self._best_known = True

    def _leftovers(self, infos: list[SavedModelInfo]) -> list[_Snapshot]:
        """Complete snapshots a previous process left in the spool that ``dest`` lacks and that
        are newer than its newest checkpoint (half-written ones are removed)."""
        if not self.spool.is_dir():
            return []
        ids = set()
        newest = 0.0
        for info in infos:
            record = info.manifest.get("checkpoint")
            if isinstance(record, dict):
                ids.add(record.get("id"))
                newest = max(newest, _number(record.get("time")) or 0.0)
        found = []
        for folder in sorted(p for p in self.spool.iterdir() if p.is_dir()):
            if self._up.owns(folder):
                continue
            snap = _Snapshot.read(folder)
            if snap is None:
                shutil.rmtree(folder, ignore_errors=True)
                continue
            if snap.record.get("id") in ids or (_number(snap.record.get("time")) or 0.0) <= newest:
                snap.discard()  # uploaded already, or older than what dest holds
                continue
            found.append(snap)
        return found  # oldest first: submitted in order, older ones are coalesced away

    # -- torch and anything else ----------------------------------------------------------------
    def restore(self, *, map_location: Any = "cpu") -> Any:
        """The last saved checkpoint (loaded as ``cm.load_model`` would), or None when ``dest``
        holds none yet. Checkpoints still uploading from this process are waited for first, and
        one a previous process left in the local spool is uploaded (or, with no network, used).

        Raises:
            NetworkDownError, AuthError: ``dest`` cannot be read (and nothing is spooled).
        """
        infos = self._prepare()
        if self._up.busy():
            local = self._newest_pending()
            if local is not None:
                logger.warning("restoring the checkpoint of %s from the local spool: it could "
                               "not be uploaded yet (%s)", local.label, self._up.explain())
                from .formats import load_path

                assert local.saved.model_path is not None
                return load_path(local.folder / local.saved.model_path, map_location=map_location,
                                 trust=True, source=str(local.folder))
        if not infos:
            return None
        latest = infos[-1]
        return api.load_model(replace(self.dest, version=f"v{latest.version}",
                                      raw=latest.ref), map_location=map_location, progress=False)

    def _prepare(self) -> list[SavedModelInfo]:
        """Wait for this process's uploads, upload a leftover snapshot; the versions of dest."""
        self._up.wait()
        infos = self._versions()
        leftovers = self._leftovers(infos)
        for snap in leftovers:
            logger.warning("uploading the checkpoint of %s that a previous run left in the local "
                           "spool (%s)", snap.label, snap.folder)
            self._up.submit(snap)
        if leftovers:
            self._up.wait()
            infos = self._versions()
        self._learn_best(infos)
        return infos

    def _newest_pending(self) -> _Snapshot | None:
        with self._up.cond:
            snaps = [*([self._up.current] if self._up.current else []), *self._up.pending]
        return max(snaps, key=lambda s: _number(s.record.get("time")) or 0.0) if snaps else None

    def save(self, obj: Any, step: int | None = None, metrics: dict[str, Any] | None = None) -> None:
        """Serialise ``obj`` now (a consistent snapshot) and upload it in the background.

        ``obj``: a checkpoint dict (nested state dicts, tensors, numbers: saved with
        ``torch.save`` and loaded back with ``weights_only=True``), a torch module, a Keras
        model, or anything ``cm.save_model`` takes. Returns at once; the upload never blocks
        training (see ``wait``).
        """
        metrics = json_metadata(metrics or {})
        meta = {**self.metadata, **metrics}
        if step is not None:
            meta["step"] = step
        label = f"step {step}" if step is not None else time.strftime("%H:%M:%S")
        self._snapshot(obj, meta, {"step": step} if step is not None else {}, metrics, label)

    def wait(self, timeout: float | None = None) -> list[str]:
        """Block until every checkpoint is uploaded (and older ones pruned).

        A checkpoint that cannot be uploaded yet is tried once more now; then this returns
        what is still pending (empty when everything is on ``dest``), with a warning that says
        why and where it is kept.

        Raises:
            AuthError: the sign-in expired; the message says how to sign in again (the
                checkpoint stays in the local spool, and the next ``wait()`` uploads it).
        """
        left = self._up.wait(timeout)
        if not left:
            return []
        message = self._up.explain()
        if self._up.state == "auth":
            raise AuthError(message)
        warnings.warn(message, UserWarning, stacklevel=2)
        return [s.label for s in left]

    # -- serialising ----------------------------------------------------------------------------
    def _snapshot(self, obj: Any, metadata: dict[str, Any], where: dict[str, Any],
                  metrics: dict[str, Any], label: str) -> None:
        folder = _private_dir(self.spool) / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        try:
            saved = _serialise(obj, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        value = _number(metrics.get(self.monitor)) if self.monitor else None
        if self.monitor and value is None:
            logger.warning("%s: metric %r is not in this checkpoint's metrics (%s); it cannot "
                           "be the best", self.dest, self.monitor, ", ".join(metrics) or "none")
        best = value is not None and (
            self._best is None or (value < self._best if self.mode == "min" else value > self._best))
        if best:
            self._best = value
        record = {"id": uuid.uuid4().hex, "time": time.time(), **where,
                  "monitor": self.monitor, "mode": self.mode if self.monitor else None,
                  "value": value}
        snap = _Snapshot(folder, saved, metadata, record, best, label)
        snap.write_record(str(self.dest))
        self._up.submit(snap)

    # -- Keras ----------------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        return self._model

    def set_model(self, model: Any) -> None:
        self._model = model

    def set_params(self, params: Any) -> None:
        self.params = params

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        model = self._model
        self._last_epoch = self._last_saved_epoch = None
        self._initial_epoch_before = getattr(model, "_initial_epoch", None)
        infos = self._prepare()
        if not infos:
            return
        latest = infos[-1]
        if latest.framework != "keras" or latest.format != "keras":
            raise UnknownFormatError(
                f"{latest.ref} is a {latest.framework}/{latest.format} save, not a Keras "
                "checkpoint; give DriveCheckpoint a folder of its own for this model")
        folder = api.fetch(latest.folder_ref, progress=False)
        path, _ = model_path_in(folder, shown=latest.ref)
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and not getattr(optimizer, "built", True):
            optimizer.build(model.trainable_variables)  # else its state is skipped on load
        model.load_weights(str(path))
        epoch = latest.metadata.get("epoch")
        if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch > 0:
            model._initial_epoch = epoch
            self._last_epoch = self._last_saved_epoch = epoch
        logger.info("restored %s (epoch %s); training continues at epoch %s", latest.ref,
                    epoch, (epoch or 0) + 1)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        done = epoch + 1  # epochs completed, counting from 1 (as BackupAndRestore stores it)
        self._last_epoch = done
        if done % self.every_epochs:
            return
        self._save_keras(done, logs)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        model = self._model
        if self._last_epoch is not None and self._last_saved_epoch != self._last_epoch:
            self._save_keras(self._last_epoch, logs)
        if model is not None and hasattr(model, "_initial_epoch"):
            model._initial_epoch = self._initial_epoch_before
        left = self._up.wait()
        skipped = self._up.skipped
        if skipped:
            logger.info("%s: %d checkpoint(s) skipped while uploads lagged (%s)", self.dest,
                        len(skipped), ", ".join(skipped))
        if left:
            message = self._up.explain()
            logger.warning("%s", message)
            warnings.warn(message, UserWarning, stacklevel=2)

    def _save_keras(self, epoch: int, logs: dict[str, Any] | None) -> None:
        metrics = {k: v for k, v in ((k, _number(v)) for k, v in (logs or {}).items())
                   if v is not None}
        meta = {**self.metadata, **metrics, "epoch": epoch}
        self._snapshot(self._model, meta, {"epoch": epoch}, metrics, f"epoch {epoch}")
        self._last_saved_epoch = epoch

    # every other hook Keras calls does nothing
    def _noop(self, *args: Any, **kwargs: Any) -> None:
        return None

    on_epoch_begin = on_batch_begin = on_batch_end = _noop
    on_train_batch_begin = on_train_batch_end = _noop
    on_test_begin = on_test_end = on_test_batch_begin = on_test_batch_end = _noop
    on_predict_begin = on_predict_end = on_predict_batch_begin = on_predict_batch_end = _noop


def _serialise(obj: Any, folder: Path) -> SavedFiles:
    """Write ``obj`` into ``folder``: what ``save_object`` takes, or a torch checkpoint dict."""
    if object_kind(obj) is not None or not isinstance(obj, dict):
        return save_object(obj, folder)
    torch = sys.modules.get("torch")
    if torch is None:
        raise UnknownFormatError(
            "a checkpoint dict is saved with torch.save; import torch first (or save a model "
            "object that cm.save_model takes)")
    target = folder / "checkpoint.pt"
    torch.save(obj, str(target))
    from .formats import sniff_format

    info = sniff_format(target)
    if info.executes_code:
        logger.warning("this checkpoint holds objects torch.load(weights_only=True) refuses "
                       "(%s); your own saves load anyway, others need trust=True",
                       ", ".join(info.details.get("would_run", [])[:3]))
    return SavedFiles(info.name if info.framework == "torch" else "torch-state-dict", "torch",
                      str(torch.__version__), [Path("checkpoint.pt")], {})

