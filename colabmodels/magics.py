"""IPython magics: ``%drive_mount``, ``%load_model``, ``%save_model``, ``%models``, ``%cache``,
``%drive_browse``, ``%dataset``.

``%load_ext colabmodels`` registers them (and Tab completion of Drive paths)::

    %drive_mount
    vgg = %load_model MyDrive/models/vgg16.pth --arch torchvision.models.vgg16
    %save_model vgg MyDrive/models/vgg16 --meta acc=0.93 note="fine tuned"
    %models MyDrive/models/vgg16
    %cache ls

Each magic is one call into ``colabmodels.api``; this module only parses the line and shows
the result through ``colabmodels.presentation`` (the same tables and messages as the CLI and
the widgets). Errors of the library (``ColabModelsError``) print as one
line with no traceback, in the magics' own words (``run without --offline``, not
``pass offline=False``); ``%config ColabModels.full_tracebacks = True`` brings the traceback
back. Options::

    %config ColabModels.full_tracebacks = True   # show tracebacks of colabmodels errors
    %config ColabModels.progress = False         # no progress bars

Arguments are split like a shell does (quotes group words), and ``$var`` / ``{expr}`` are
expanded by IPython before that, so ``%load_model $path`` and ``%load_model "{folder}/x y.pt"``
work. Works on IPython 7.34 (Colab) and 8/9.
"""

from __future__ import annotations

import contextlib
import re
import shlex
from collections.abc import Iterator
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class, needs_local_scope
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Bool
from traitlets.config import Configurable

from . import presentation
from .errors import ColabModelsError

__all__ = [
    "ColabModels",
    "ColabModelsMagics",
    "drive_completions",
    "load_ipython_extension",
    "unload_ipython_extension",
]

COMPLETION_BUDGET_S = 1.5
"""Tab completion of Drive paths gives up listing after this long (it never blocks for longer)."""
COMPLETION_MAX_ITEMS = 500


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
            raise UsageError(presentation.error_line(e, "magic")) from None

    @staticmethod
    def _typed(parse: Any, value: Any) -> Any:
        """``parse(value)`` (a presentation parser); what it rejects is a usage error."""
        try:
            return parse(value)
        except ValueError as e:
            raise UsageError(str(e)) from None

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
        from . import api

        with self._short_errors():
            drive = api.mount(args.mountpoint, service_account=args.service_account,
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
        from . import api

        metadata = self._typed(presentation.parse_meta, args.meta)
        with self._short_errors():
            info = api.save_model(obj, args.dest, version=args.version, metadata=metadata,
                                  progress=self.progress)
        print(presentation.saved_line(args.var, info))
        return info

    @magic_arguments()
    @argument("dest", metavar="DEST", help="where versions were saved with %%save_model")
    @line_magic
    def models(self, line: str = "") -> Any:
        """The versions saved under DEST, oldest first (a list that displays as a table)."""
        args = self._parse(self.models, line)
        from . import api

        with self._short_errors():
            return presentation.versions_table(api.versions(args.dest), args.dest)

    @magic_arguments()
    @argument("start", nargs="?", default="MyDrive", metavar="START",
              help="where to begin: MyDrive (default), MyDrive/models, SharedWithMe, "
                   "Shareddrives/NAME, or a folder link")
    @argument("--mode", default="load", choices=["load", "save", "select"],
              help="load (a Load button; default), save (a Save-here form) or select")
    @line_magic
    def drive_browse(self, line: str = "") -> Any:
        """Show the Drive browser: click a file, press Load, and the model lands in a variable."""
        args = self._parse(self.drive_browse, line)
        from .widgets.browser import DriveBrowser

        with self._short_errors():
            return DriveBrowser(args.start, mode=args.mode)

    @magic_arguments()
    @argument("ref", metavar="REF",
              help="the image folder: MyDrive/datasets/flowers, a folder link or id")
    @argument("--image-size", nargs=2, type=int, metavar=("H", "W"),
              help="the Create field's image size (default: the images' own size)")
    @argument("--variable", metavar="NAMES", help='where Create puts it (default "train, val")')
    @line_magic
    def dataset(self, line: str = "") -> Any:
        """Show the dataset panel: class counts, thumbnails, warnings, then Create or Pack."""
        args = self._parse(self.dataset, line)
        from .widgets.dataset_panel import DatasetPanel

        with self._short_errors():
            return DatasetPanel(args.ref, variable=args.variable,
                                image_size=tuple(args.image_size) if args.image_size else None)

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
        from . import api

        limit = None if args.max_bytes is None else self._typed(presentation.parse_size,
                                                                args.max_bytes)
        with self._short_errors():
            if args.action == "ls":
                report = api.cache_ls()
                return presentation.cache_table(report.entries, report.root)
            if args.action == "verify":
                report = api.cache_verify()
            elif args.action == "prune":
                report = api.cache_prune(limit)
            else:
                report = api.cache_clear()
            print(presentation.cache_report(report))
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

_VALUE_OPTIONS = {"--framework", "--arch", "--version"}
# magic -> which positional argument is a Drive path
_COMPLETED = {"load_model": 0, "models": 0, "save_model": 1, "drive_browse": 0, "dataset": 0}
_MAGIC_LINE = re.compile(r"^\s*(?:[\w.,\[\]\s]+=\s*)?%(\w+)(\s.*)$", re.DOTALL)


def _split_words(text: str) -> tuple[list[str], str]:
    """The finished words of ``text``, split as ``ColabModels._parse`` splits a line (like
    a shell), and the word being typed, without its opening quote: ``' net "MyDrive/my mo'``
    -> ``(["net"], "MyDrive/my mo")``."""
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    words: list[str] = []
    try:
        words.extend(lexer)
    except ValueError:  # "No closing quotation": the quoted word is being typed
        return words, lexer.token
    if not words or text[-1:].isspace():
        return words, ""
    return words[:-1], words[-1]


def drive_completions(text_until_cursor: str, token: str) -> list[str]:
    """Completions of ``token``, the word before the cursor, when it ends the Drive path
    argument of ``%load_model REF``, ``%models DEST``, ``%save_model VAR DEST``,
    ``%drive_browse START`` or ``%dataset REF``; else ``[]``.

    The argument may start with a quote (``%load_model "MyDrive/my mo``); completions then
    replace just ``token``, its tail. Never raises and never signs in (it lists only when a
    Drive session exists; see ``colabmodels.api.complete_drive_path``).
    """
    try:
        m = _MAGIC_LINE.match(text_until_cursor)
        if m is None or m.group(1) not in _COMPLETED:
            return []
        words, arg = _split_words(m.group(2))
        if not arg.endswith(token) or not arg:
            return []
        positional, previous = 0, ""
        for word in words:
            if not word.startswith("-") and previous not in _VALUE_OPTIONS:
                positional += 1
            previous = word
        if positional != _COMPLETED[m.group(1)] or previous in _VALUE_OPTIONS:
            return []
        from . import api

        found = api.complete_drive_path(arg, timeout=COMPLETION_BUDGET_S,
                                        limit=COMPLETION_MAX_ITEMS)
        keep = len(arg) - len(token)  # the part of the argument before the token stays as typed
        return [c[keep:] for c in found if c.startswith(arg[:keep])]
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
