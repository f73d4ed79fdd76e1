"""IPython magics: ``%drive_mount``, ``%load_model``, ``%save_model``, ``%models``, ``%cache``.

``%load_ext colabmodels`` registers them (and Tab completion of Drive paths)::

    %drive_mount
    vgg = %load_model MyDrive/models/vgg16.pth --arch torchvision.models.vgg16
    %save_model vgg MyDrive/models/vgg16 --meta acc=0.93 note="fine tuned"
    %models MyDrive/models/vgg16
    %cache ls

Each magic is one call into :mod:`colabmodels.api`, :data:`colabmodels.cache` or
:mod:`colabmodels.session`; this module only parses the line and shows the result. Errors of
the library (:class:`~colabmodels.errors.ColabModelsError`) print as one line with no traceback;
``%config ColabModels.full_tracebacks = True`` brings the traceback back. Options::

    %config ColabModels.full_tracebacks = True   # show tracebacks of colabmodels errors
    %config ColabModels.progress = False         # no progress bars

Arguments are split like a shell does (quotes group words), and ``$var`` / ``{expr}`` are
expanded by IPython before that, so ``%load_model $path`` and ``%load_model "{folder}/x y.pt"``
work. Works on IPython 7.34 (Colab) and 8/9.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import threading
from collections.abc import Iterator
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class, needs_local_scope
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Bool
from traitlets.config import Configurable

from .errors import ColabModelsError

__all__ = ["ColabModels", "ColabModelsMagics", "load_ipython_extension", "unload_ipython_extension"]

COMPLETION_BUDGET_S = 1.5
"""Tab completion of Drive paths gives up listing after this long (it never blocks for longer)."""
COMPLETION_MAX_ITEMS = 500


def parse_meta(items: list[str] | None) -> dict[str, Any]:
    """``["acc=0.93", "note=fine tuned"]`` -> ``{"acc": 0.93, "note": "fine tuned"}``.

    Values that parse as JSON are taken as JSON (numbers, ``true``/``false``, ``null``, lists),
    everything else as a string.
    """
    meta: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--meta takes key=value pairs, not {item!r}")
        try:
            meta[key] = json.loads(raw)
        except ValueError:
            meta[key] = raw
    return meta


@magics_class
class ColabModels(Magics, Configurable):
    """The colabmodels magics. Configure with ``%config ColabModels.<option> = value``.

    The class is named ``ColabModels`` because traitlets and IPython's ``%config`` use the class
    name as the configuration section: ``%config ColabModels``, ``%config
    ColabModels.progress = False`` and ``c.ColabModels.progress = False`` in ``ipython_config.py``
    all refer to it. ``ColabModelsMagics`` is the same class.
    """

    full_tracebacks = Bool(
        False, help="Show the full traceback of colabmodels errors instead of one line."
    ).tag(config=True)
    progress = Bool(True, help="Show progress bars for downloads and uploads.").tag(config=True)

    # -- plumbing ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _short_errors(self) -> Iterator[None]:
        """Library errors as one line (UsageError prints without a traceback)."""
        try:
            yield
        except ColabModelsError as e:
            if self.full_tracebacks:
                raise
            raise UsageError(f"{type(e).__name__}: {e}") from None

    @staticmethod
    def _parse(magic: Any, line: str) -> Any:
        """Split ``line`` like a shell (quotes group words) and parse it with the magic's parser."""
        try:
            argv = shlex.split(line)
        except ValueError as e:
            raise UsageError(f"cannot split the arguments: {e} ({line!r})") from None
        return magic.parser.parse_args(argv)

    def _lookup(self, name: str, local_ns: dict[str, Any] | None) -> Any:
        """A variable of the notebook (``model`` or ``trainer.model``)."""
        head, *attrs = name.split(".")
        for ns in (local_ns or {}, self.shell.user_ns if self.shell is not None else {}):
            if head in ns:
                obj = ns[head]
                break
        else:
            raise UsageError(f"no variable named {head!r}")
        try:
            for attr in attrs:
                obj = getattr(obj, attr)
        except AttributeError as e:
            raise UsageError(f"{name}: {e}") from None
        return obj

    # -- magics ------------------------------------------------------------------------------
    @magic_arguments()
    @argument("mountpoint", nargs="?", default="/content/drive",
              help="where Drive appears as files in Colab (default /content/drive)")
    @argument("--service-account", metavar="KEY",
              help="a service-account key file (default: GOOGLE_APPLICATION_CREDENTIALS, Colab "
                   "sign-in, a saved login, or an interactive sign-in)")
    @argument("--endpoint", metavar="URL",
              help="a Drive-compatible endpoint, e.g. the emulator (default: "
                   "COLABMODELS_DRIVE_ENDPOINT or Google's)")
    @argument("--force", action="store_true", help="sign in again even if already signed in")
    @argument("--timeout-ms", type=int, default=120_000, metavar="N",
              help="how long Colab's mount may take (default 120000)")
    @line_magic
    def drive_mount(self, line: str = "") -> Any:
        """Sign in to Google Drive (and mount it in Colab). Idempotent; returns the session."""
        args = self._parse(self.drive_mount, line)
        from . import session

        with self._short_errors():
            drive = session.mount(args.mountpoint, service_account=args.service_account,
                                  endpoint=args.endpoint, force_remount=args.force,
                                  timeout_ms=args.timeout_ms, interactive=None)
            print(drive.describe())
        return drive

    @magic_arguments()
    @argument("ref", metavar="REF",
              help="share link, file id, Drive path (MyDrive/...), gs://, s3://, URL or local "
                   "path; REF@v3 / REF@latest for saved versions. Quote it if it has spaces.")
    @argument("--framework", metavar="F",
              help="force a framework: keras, tensorflow, torch, gensim, onnx")
    @argument("--arch", metavar="DOTTED",
              help="build this architecture and load a state dict into it "
                   "(e.g. torchvision.models.vgg16 or pkg.mod:Net)")
    @argument("--trust", action="store_true",
              help="allow formats that run code when loaded (pickled models, TorchScript, "
                   "gensim pickles, SavedModel graphs, Lambda layers); only for files you trust")
    @argument("--offline", action="store_true", help="serve from the cache only")
    @line_magic
    def load_model(self, line: str = "") -> Any:
        """Load a model from Drive, GCS, S3, a URL or disk: ``model = %load_model REF``."""
        args = self._parse(self.load_model, line)
        from . import api

        with self._short_errors():
            return api.load_model(args.ref, framework=args.framework, arch=args.arch,
                                  trust=args.trust, offline=True if args.offline else None,
                                  progress=self.progress)

    @magic_arguments()
    @argument("var", metavar="VAR", help="the variable holding the model (or var.attribute)")
    @argument("dest", metavar="DEST",
              help="where versions live: MyDrive/models/NAME, gs://..., s3://..., a folder")
    @argument("--version", default="auto", metavar="N|auto",
              help="the version number (default: the next free one)")
    @argument("--meta", nargs="*", default=[], metavar="KEY=VALUE",
              help="metadata, e.g. --meta acc=0.93 note=\"fine tuned\" (JSON values are parsed)")
    @needs_local_scope
    @line_magic
    def save_model(self, line: str = "", local_ns: dict[str, Any] | None = None) -> Any:
        """Save the model in VAR as a new version under DEST; returns its SavedModelInfo."""
        args = self._parse(self.save_model, line)
        obj = self._lookup(args.var, local_ns)
        metadata = parse_meta(args.meta)
        version: int | str = args.version
        if version != "auto":
            try:
                version = int(str(version).lstrip("vV"))
            except ValueError:
                raise UsageError(f"--version takes a number or 'auto', not {version!r}") from None
        from . import api
        from .transfer import describe_bytes

        with self._short_errors():
            info = api.save_model(obj, args.dest, version=version, metadata=metadata,
                                  progress=self.progress)
        size = describe_bytes(sum(f.get("size") or 0 for f in info.files))
        print(f"Saved {args.var} as {info.ref} ({info.framework} · {info.format} · {size})")
        return info

    @magic_arguments()
    @argument("dest", metavar="DEST", help="where versions were saved with %%save_model")
    @line_magic
    def models(self, line: str = "") -> Any:
        """The versions saved under DEST, oldest first (a list that displays as a table)."""
        args = self._parse(self.models, line)
        from . import api
        from .cli import versions_table

        with self._short_errors():
            return versions_table(api.versions(args.dest), args.dest)

    @magic_arguments()
    @argument("action", nargs="?", default="ls", choices=["ls", "verify", "prune", "clear"],
              help="ls: list entries (default); verify: hash every entry and drop bad ones; "
                   "prune: evict least recently used entries down to --max-bytes; "
                   "clear: remove everything")
    @argument("--max-bytes", metavar="N",
              help="size limit for prune, e.g. 5GiB (default COLABMODELS_CACHE_MAX_BYTES)")
    @line_magic
    def cache(self, line: str = "") -> Any:
        """Inspect the download cache: ``%cache ls|verify|prune|clear``."""
        args = self._parse(self.cache, line)
        from .cache import cache
        from .cli import cache_table, describe_entry, parse_size
        from .transfer import describe_bytes

        with self._short_errors():
            if args.action == "ls":
                return cache_table(cache.entries(), cache.root)
            if args.action == "verify":
                count = len(cache.entries())
                bad = cache.verify()
                if not bad:
                    print(f"all {count} entries verified")
                    return None
                print(f"{len(bad)} of {count} entries were bad and have been removed "
                      "(they are fetched again on next use):")
                for entry in bad:
                    print(f"  {describe_entry(entry)}")
                return None
            if args.action == "prune":
                try:
                    limit = None if args.max_bytes is None else parse_size(args.max_bytes)
                except ValueError as e:
                    raise UsageError(str(e)) from None
                removed = cache.prune(limit)
                print(f"removed {len(removed)} entries "
                      f"({describe_bytes(sum(e.size for e in removed))}); "
                      f"{describe_bytes(cache.total_bytes())} left in {cache.root}")
                return None
            entries = cache.entries()
            cache.clear()
            print(f"removed {len(entries)} entries "
                  f"({describe_bytes(sum(e.size for e in entries))}) from {cache.root}")
            return None


ColabModelsMagics = ColabModels
"""The magics class under its descriptive name (the config section is ``ColabModels``)."""


# -- Tab completion of Drive paths ------------------------------------------------------------
#
# Hooked in below the line's first word, not through `set_hook("complete_command", ...)`: on
# both IPython 7.34 and 9 that hook's results are merged with Jedi's, and Jedi reads
# `MyDrive/mo` as a division and offers every builtin name after the slash. IPython 8.6+ takes a
# context matcher in `IPCompleter.custom_matchers` that may suppress the other matchers (Jedi
# included); older versions consult `IPCompleter.magic_arg_matchers` before Jedi runs and stop
# there when one answers.

_DRIVE_ROOTS = ("MyDrive/",)
_VALUE_OPTIONS = {"--framework", "--arch", "--version"}
_COMPLETED = {"load_model": 0, "models": 0, "save_model": 1}  # magic -> positional of the path
_MAGIC_LINE = re.compile(r"^\s*(?:[\w.,\[\]\s]+=\s*)?%(\w+)(\s.*)$", re.DOTALL)


def _drive_children(folder_typed: str) -> list[str] | None:
    """Names in the Drive folder ``folder_typed`` (folders end in ``/``), within the time budget.

    None when there is no Drive session (completion never signs in) or the text is no Drive path.
    """
    from . import api
    from .refs import parse_ref
    from .session import current_session

    drive = current_session()
    if drive is None:
        return None
    ref = parse_ref(folder_typed.rstrip("/") or folder_typed)
    if ref.source != "drive" or ref.path is None:
        return None
    if drive.mountpoint and folder_typed.startswith(drive.mountpoint):
        return None  # a real mount: IPython's own file completion lists it
    found: list[str] = []

    def collect() -> None:
        with contextlib.suppress(Exception):
            for child in api.backend_for(ref).list(ref):
                found.append(child.name + ("/" if child.is_dir else ""))
                if len(found) >= COMPLETION_MAX_ITEMS:
                    return

    worker = threading.Thread(target=collect, name="colabmodels-complete", daemon=True)
    worker.start()
    worker.join(COMPLETION_BUDGET_S)
    return list(found)


def complete_drive_path(text: str) -> list[str]:
    """Completions of ``text`` (the word being typed) when it is a Drive path; never raises."""
    try:
        from .session import current_session

        if not text or current_session() is None:
            return []
        if "/" not in text:
            return [root for root in _DRIVE_ROOTS if root.startswith(text)]
        folder, _, prefix = text.rpartition("/")
        names = _drive_children(folder + "/")
        if not names:
            return []
        return sorted(f"{folder}/{name}" for name in names if name.startswith(prefix))
    except Exception:
        return []


def drive_completions(text_until_cursor: str, token: str) -> list[str]:
    """Completions of ``token``, the word before the cursor, when it is the Drive path argument
    of ``%load_model REF``, ``%models DEST`` or ``%save_model VAR DEST``; else ``[]``.

    Never raises and never signs in (it lists only when a Drive session exists).
    """
    try:
        m = _MAGIC_LINE.match(text_until_cursor)
        if m is None or m.group(1) not in _COMPLETED or not text_until_cursor.endswith(token):
            return []
        before = m.group(2)[: len(m.group(2)) - len(token)]
        positional, previous = 0, ""
        for word in before.split():
            if not word.startswith("-") and previous not in _VALUE_OPTIONS:
                positional += 1
            previous = word
        if positional != _COMPLETED[m.group(1)] or previous in _VALUE_OPTIONS:
            return []
        return complete_drive_path(token)
    except Exception:
        return []


def _make_matcher(ip: Any) -> Any:
    """The completion hook for this IPython version (see the comment above)."""
    completer = ip.Completer
    try:
        from IPython.core.completer import SimpleCompletion, context_matcher
    except ImportError:  # IPython < 8.6
        def legacy_matcher(line_buffer: str) -> list[str]:
            try:
                until = getattr(completer, "text_until_cursor", None) or line_buffer
                token = completer.splitter.split_line(until, len(until))
                return drive_completions(until, token)
            except Exception:
                return []

        legacy_matcher.colabmodels = True  # type: ignore[attr-defined]
        return legacy_matcher

    @context_matcher()
    def drive_path_matcher(context: Any) -> dict[str, Any]:
        try:
            until = context.line_with_cursor[: context.cursor_position]
            found = drive_completions(until, context.token)
        except Exception:
            found = []
        return {"completions": [SimpleCompletion(text=t, type="path") for t in found],
                "suppress": bool(found), "ordered": True}

    drive_path_matcher.colabmodels = True  # type: ignore[attr-defined]
    return drive_path_matcher


def _matcher_list(ip: Any) -> list[Any] | None:
    completer = getattr(ip, "Completer", None)
    if completer is None:
        return None
    try:
        from IPython.core.completer import context_matcher  # noqa: F401
    except ImportError:
        return completer.magic_arg_matchers  # type: ignore[no-any-return]
    return completer.custom_matchers  # type: ignore[no-any-return]


def _add_completer(ip: Any) -> None:
    matchers = _matcher_list(ip)
    if matchers is not None:
        matchers.insert(0, _make_matcher(ip))


def _remove_completers(ip: Any) -> None:
    matchers = _matcher_list(ip)
    if matchers is not None:
        matchers[:] = [m for m in matchers if not getattr(m, "colabmodels", False)]


# -- extension entry points -------------------------------------------------------------------

def load_ipython_extension(ip: Any) -> None:
    """``%load_ext colabmodels``: register the magics and Drive path completion."""
    unload_ipython_extension(ip)  # loading twice must not register twice
    ip.register_magics(ColabModels)
    _add_completer(ip)


def unload_ipython_extension(ip: Any) -> None:
    """``%unload_ext colabmodels``: remove the magics and the completers."""
    manager = ip.magics_manager
    instance = manager.registry.pop(ColabModels.__name__, None)
    for name in ColabModels.magics["line"]:
        if isinstance(getattr(manager.magics["line"].get(name), "__self__", None), ColabModels):
            del manager.magics["line"][name]
    if instance is not None:
        with contextlib.suppress(ValueError):
            ip.configurables.remove(instance)
    _remove_completers(ip)
