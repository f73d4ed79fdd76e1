"""The Drive browser's state and logic, with no widgets: what ``DriveBrowser`` draws.

``BrowserModel`` holds where the user is (a trail of places: the breadcrumbs), the rows
listed so far, the sort, the search text, the model filter, the selection and its details,
and the last error. Every Drive call runs on a background thread through
``colabmodels.browse``, one page (one list request) at a time, so the kernel stays free;
results that arrive after the user moved on are dropped (each navigation bumps a generation
number). Observers registered with ``BrowserModel.observe`` are called, on whichever
thread made the change, with the name of what changed: ``"rows"``, ``"trail"``, ``"busy"``,
``"selection"``, ``"details"``, ``"error"``.

Tests and notebooks drive it directly::

    model = BrowserModel("MyDrive/models")
    model.wait()                       # the first page is in
    model.open(model.rows[0]); model.wait()
    model.set_search("resnet"); model.wait()
"""

from __future__ import annotations

import keyword
import threading
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Literal

from .. import browse
from ..auth import redact
from ..browse import Details, DriveItem, Place, Trouble
from ..datasets.quiet_import import held_native_stderr
from .background import BackgroundModel, reporting_to, user_namespace

if TYPE_CHECKING:
    from ..progress import ProgressSink

__all__ = ["BrowserModel", "Mode", "model_variables", "variable_name_for"]

Mode = Literal["load", "save", "select"]
_MODEL_MODULES = {"torch", "keras", "tensorflow", "tf_keras", "gensim", "sklearn", "onnx",
                  "transformers", "torchvision", "timm"}


_NOT_MODELS = ("image/", "video/", "audio/", "font/")
_NOT_MODEL_TYPES = ("application/pdf", "text/csv", "text/html", "text/markdown",
                    "application/vnd.ms-excel", "application/msword", "text/x-python",
                    "application/x-ipynb+json", "application/vnd.google.colaboratory")


def _looks_like_model(value: Any) -> bool:
    if isinstance(value, type) or callable(getattr(value, "__module__", None)):
        return False
    module = (type(value).__module__ or "").split(".")[0]
    if module in _MODEL_MODULES:
        return not type(value).__name__.endswith(("Tensor", "Device", "dtype", "Generator"))
    if isinstance(value, Mapping) and value:
        first = next(iter(value.values()))
        return (type(first).__module__ or "").split(".")[0] in ("torch", "numpy")
    return False


def model_variables(namespace: Mapping[str, Any]) -> list[str]:
    """Names in ``namespace`` holding something ``save_model`` takes (a torch module or state
    dict, a Keras model, a gensim model...), sorted; private names are left out."""
    names = []
    for name, value in list(namespace.items()):
        if name.startswith("_") or name in ("In", "Out", "exit", "quit"):
            continue
        try:
            if _looks_like_model(value):
                names.append(name)
        except Exception:  # an odd object in the namespace must not break the widget
            continue
    return sorted(names)


def variable_name_for(name: str) -> str:
    """A Python variable name made from a file name: ``"resnet-18 v2.pth"`` -> ``"resnet_18_v2"``."""
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in stem).strip("_") or "model"
    while "__" in out:
        out = out.replace("__", "_")
    if out[0].isdigit() or keyword.iskeyword(out):
        out = f"model_{out}"
    return out


class BrowserModel(BackgroundModel):
    """State and actions of a Drive browser (see the module docstring).

    Args:
        start: where to begin: ``"MyDrive"`` (default), ``"MyDrive/models"``,
            ``"SharedWithMe"``, ``"Shareddrives"``, ``"Shareddrives/Team/x"``, or a folder id
            or link.
        mode: ``"load"`` (one file or model folder, loaded into a variable), ``"save"`` (a
            folder to save into) or ``"select"`` (several items, for ``on_select``).
        page_size: rows per list request.
        search_delay_s: how long typing must pause before a search runs (debounce).
    """

    def __init__(self, start: str = "MyDrive", *, mode: Mode = "load", page_size: int = 100,
                 search_delay_s: float = 0.35) -> None:
        if mode not in ("load", "save", "select"):
            raise ValueError(f"mode must be 'load', 'save' or 'select', not {mode!r}")
        if not 1 <= page_size <= 1000:
            raise ValueError("page_size must be between 1 and 1000 (Drive's limit)")
        super().__init__(what="browser", workers=2, thread_name="colabmodels-browse")
        self.mode: Mode = mode
        self.page_size = page_size
        self.search_delay_s = search_delay_s
        self.start = start
        self.trail: list[Place] = []
        self.items: list[DriveItem] = []
        self.next_token: str | None = None
        self.complete = False
        self.sort = "name"
        self.descending = False
        self.search = ""
        self.everywhere = False
        self.models_only = False
        self.selected: list[DriveItem] = []
        self.details: Details | None = None
        self.requests = 0  # list requests made (pages), for the status line and benchmarks
        self._paging = False  # a next page is on its way
        self._pages = 0  # pages listed of the current place
        self._search_timer: threading.Timer | None = None
        self._submit(self._start)

    # -- observing ---------------------------------------------------------------------------
    @property
    def multiple(self) -> bool:
        """Whether several rows may be selected (``select`` mode)."""
        return self.mode == "select"

    def wait(self, timeout: float | None = 60) -> bool:
        """Block until no background work is left, a pending search included (tests,
        notebooks); False on timeout."""
        with self._idle:
            timer = self._search_timer
        if timer is not None:
            timer.join(timeout)
        return super().wait(timeout)

    def close(self) -> None:
        """Stop background work and a pending search (results on their way are dropped)."""
        with self._idle:
            if self._search_timer is not None:
                self._search_timer.cancel()
                self._search_timer = None
            super().close()

    # -- navigation --------------------------------------------------------------------------
    def _start(self, generation: int) -> None:
        trail = browse.trail_for(self.start)
        with self._lock:
            if not self._current(generation):
                return
            self.trail = trail
        self._emit("trail")
        self._first_page(generation)

    @property
    def place(self) -> Place | None:
        """Where the browser is (the last breadcrumb)."""
        return self.trail[-1] if self.trail else None

    def _reset(self, trail: list[Place] | None = None) -> int:
        with self._lock:
            self._generation += 1
            self._paging = False
            self._pages = 0
            if trail is not None:
                self.trail = trail
            self.items, self.next_token, self.complete = [], None, False
            self.selected, self.details, self.error = [], None, None
            return self._generation

    def _relist(self, trail: list[Place] | None = None) -> None:
        self._reset(trail)
        self._emit("trail")
        self._emit("rows")
        self._emit("selection")
        self._submit(self._first_page)

    def open(self, target: DriveItem | Place) -> None:
        """Go into a folder (a row, or a place); the first page is listed in the background."""
        if isinstance(target, DriveItem):
            if not target.is_folder:
                raise ValueError(f"{target.name} is a file: select it to load it")
            place = target.as_place()
        else:
            place = target
        if place.kind in ("mydrive", "shared", "drives"):
            self._relist([place])
            return
        self._relist([*self.trail, place])

    def open_selected(self) -> bool:
        """Open the selected folder (the Open button); False when the selection is no folder."""
        if len(self.selected) == 1 and self.selected[0].is_folder:
            self.open(self.selected[0])
            return True
        return False

    def go_root(self, kind: str) -> None:
        """Show a root: ``"mydrive"``, ``"shared"`` or ``"drives"``."""
        self._relist([Place.root(kind)])  # type: ignore[arg-type]

    def go(self, index: int) -> None:
        """Go back to breadcrumb ``index`` (0 is the root)."""
        if not 0 <= index < len(self.trail):
            raise IndexError(f"no breadcrumb {index}")
        self._relist(self.trail[: index + 1])

    def up(self) -> None:
        """Go to the parent folder (no-op at a root)."""
        if len(self.trail) > 1:
            self.go(len(self.trail) - 2)

    def refresh(self) -> None:
        """List the current place again from the first page (after an error, or changes)."""
        if not self.trail:
            self._reset()
            self._submit(self._start)
            return
        self._relist()

    # -- listing -----------------------------------------------------------------------------
    @property
    def next_page_size(self) -> int:
        """Rows the next More asks for: ``page_size`` first, then twice as many each time up to
        Drive's 1000, so a 5,000-file folder takes a few presses, not fifty."""
        return min(1000, self.page_size * (2 ** min(self._pages, 10)))

    def _fetch(self, token: str | None) -> browse.Page:
        place = self.place
        assert place is not None
        size = self.page_size if token is None else self.next_page_size
        return browse.list_page(place, page_token=token, page_size=size,
                                sort=self.sort, descending=self.descending, search=self.search,
                                everywhere=self.everywhere)

    def _first_page(self, generation: int) -> None:
        page = self._fetch(None)
        self._take(generation, page, first=True)

    def _take(self, generation: int, page: browse.Page, *, first: bool) -> None:
        items = page.items
        if self.models_only:
            items = browse.recognise_model_folders(items)
        with self._lock:
            if not self._current(generation):
                return
            self.requests += 1
            self._pages = 1 if first else self._pages + 1
            self.items = [*([] if first else self.items), *items]
            self.next_token = page.next_token
            self.complete = page.next_token is None
            self.error = None
        self._emit("rows")

    def more(self) -> bool:
        """Fetch the next page in the background; False when everything is listed or a page
        is already on its way."""
        with self._lock:
            token = self.next_token
            if self.complete or token is None or self._paging:
                return False
            self._paging = True
        self._submit(self._next_page, token)
        return True

    def _next_page(self, generation: int, token: str) -> None:
        try:
            self._take(generation, self._fetch(token), first=False)
        finally:
            with self._lock:
                self._paging = False

    @property
    def rows(self) -> list[DriveItem]:
        """The rows to show: folders first (Drive sorts), filtered when ``models_only``."""
        with self._lock:
            items = list(self.items)
        return browse.model_rows(items) if self.models_only else items

    def set_sort(self, column: str, descending: bool | None = None) -> None:
        """Sort by ``"name"``, ``"size"`` or ``"modified"``; the same column again flips the
        order. Drive sorts, so the first page is listed again (one request)."""
        if column not in browse.SORT_KEYS:
            raise ValueError(f"cannot sort by {column!r}; choose one of {', '.join(browse.SORT_KEYS)}")
        if descending is None:
            descending = not self.descending if column == self.sort else column != "name"
        self.sort, self.descending = column, descending
        self._relist()

    def set_search(self, text: str, *, everywhere: bool | None = None) -> None:
        """Show only names containing ``text`` (a Drive query; empty: the whole folder)."""
        with self._lock:
            if self._search_timer is not None:
                self._search_timer.cancel()
                self._search_timer = None
        changed = text.strip() != self.search or (everywhere is not None and everywhere != self.everywhere)
        self.search = text.strip()
        if everywhere is not None:
            self.everywhere = everywhere
        if changed:
            self._relist()

    def search_soon(self, text: str) -> None:
        """``set_search`` once typing pauses for ``search_delay_s`` (search as you type)."""
        with self._lock:
            if self._search_timer is not None:
                self._search_timer.cancel()
            timer = threading.Timer(self.search_delay_s, self._search_due, args=(text,))
            timer.daemon = True
            self._search_timer = timer
        timer.start()

    def _search_due(self, text: str) -> None:
        with self._lock:
            if self._search_timer is None or self._search_timer is not threading.current_thread():
                return
            self._search_timer = None
        self.set_search(text)

    def set_models_only(self, on: bool) -> None:
        """Show only model files and every folder, marking folders that hold a model."""
        self.models_only = on
        if on and any(i.is_folder and i.model_kind is None for i in self.items):
            self._submit(self._recognise)
        self._emit("rows")

    def _recognise(self, generation: int) -> None:
        with self._lock:
            items = list(self.items)
        marked = browse.recognise_model_folders(items)
        with self._lock:
            if not self._current(generation) or len(self.items) != len(marked):
                return
            self.items = marked
        self._emit("rows")

    # -- selection and details ---------------------------------------------------------------
    def select(self, items: list[DriveItem] | DriveItem | None) -> None:
        """Select rows (one unless ``multiple``); the details of a single row load in the
        background."""
        chosen = [] if items is None else [items] if isinstance(items, DriveItem) else list(items)
        if len(chosen) > 1 and not self.multiple:
            raise ValueError(f"{self.mode} mode selects one item at a time")
        with self._lock:
            self.selected = chosen
            self.details = None
        self._emit("selection")
        self._emit("details")
        if len(chosen) == 1:
            self._submit(self._load_details, chosen[0])

    def _load_details(self, generation: int, item: DriveItem) -> None:
        found = browse.details(item)
        with self._lock:
            if not self._current(generation) or self.selected[:1] != [item]:
                return
            self.details = found
            if found.item.model_kind != item.model_kind:  # a save_model folder found by its versions
                self.selected = [found.item]
                self.items = [found.item if i.id == item.id else i for i in self.items]
        self._emit("details")

    # -- actions -----------------------------------------------------------------------------
    def reference(self, item: DriveItem | None = None) -> str:
        """What to paste into code for the selection: its reference alone (a Drive path, a
        ``PATH@latest`` of saved versions, or the id of a search hit without a path)."""
        item = item or self._one("copy a reference")
        if item.model_kind in ("versions", "version"):
            return item.load_ref
        return item.path or item.id

    @staticmethod
    def not_a_model(item: DriveItem) -> str | None:
        """Why Load cannot load this row (an image, a video, a Google Doc...), or None.
        Files with other types may still be models (formats are told by their bytes)."""
        mime = item.mime or ""
        if item.is_folder:
            return None if item.model_kind else "a folder with no model recognised in it"
        if item.model_kind:
            return None
        if mime.startswith(_NOT_MODELS) or mime in _NOT_MODEL_TYPES:
            return f"not a model file ({mime})"
        if mime.startswith("application/vnd.google-apps."):
            return "a Google Docs file (no model bytes)"
        return None

    @property
    def web_links(self) -> bool:
        """Whether rows have a Drive web page (Google's Drive; not the emulator)."""
        from ..config import uses_google_endpoint

        try:
            return uses_google_endpoint()
        except Exception:  # a malformed endpoint: the listing shows the error already
            return False

    def _one(self, what: str) -> DriveItem:
        if len(self.selected) != 1:
            raise ValueError(f"select one file or model folder to {what}")
        return self.selected[0]

    def load(self, variable: str, *, namespace: MutableMapping[str, Any] | None = None,
             progress: ProgressSink | None = None, **load_kwargs: Any) -> Any:
        """``cm.load_model`` the selection and assign it to ``variable`` in ``namespace``
        (the notebook's by default); returns the model.

        Raises:
            ValueError: no single selection, or ``variable`` is no Python name.
            and the errors of ``colabmodels.load_model``.
        """
        item = self._one("load")
        name = variable.strip()
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"{variable!r} is not a Python variable name")
        if item.is_folder and item.model_kind is None:
            raise ValueError(f"{item.name} is a folder with no model recognised in it: open it, "
                             "or pick a file, a SavedModel or a save_model folder")
        why = self.not_a_model(item)
        if why:
            raise ValueError(f"{item.name} is {why}: pick a model file, a SavedModel or a "
                             "save_model folder")
        from .. import api

        target = namespace if namespace is not None else user_namespace()
        with reporting_to(progress), held_native_stderr():  # TF's start-up lines stay out
            obj = api.load_model(item.load_ref, **load_kwargs)
        target[name] = obj
        return obj

    def save_destination(self, name: str) -> str:
        """Where ``save`` would put versions called ``name``: the selected folder, else the
        folder shown."""
        name = name.strip().strip("/")
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"{name!r} is not a model name (a name without '/')")
        base: str | None
        if len(self.selected) == 1 and self.selected[0].is_folder and not self.selected[0].shared_drive:
            base = self.selected[0].path
        else:
            place = self.place
            base = (place.path if place is not None and place.kind in ("mydrive", "folder")
                    and place.paths else None)
        if not base:
            raise ValueError("open a folder in My Drive or a shared drive to save into "
                             "(Shared with me, shortcuts and search results have no path to "
                             "save under)")
        return f"{base}/{name}"

    def save(self, variable: str, name: str, *, metadata: dict[str, Any] | None = None,
             namespace: Mapping[str, Any] | None = None,
             progress: ProgressSink | None = None) -> Any:
        """``cm.save_model(namespace[variable], folder/name, metadata=...)``; returns its
        ``SavedModelInfo`` (a new version, never an overwrite) and lists the folder again."""
        dest = self.save_destination(name)
        source = namespace if namespace is not None else user_namespace()
        if variable not in source:
            raise ValueError(f"no variable named {variable!r} in the notebook")
        from .. import api

        with reporting_to(progress):
            info = api.save_model(source[variable], dest, metadata=metadata or {})
        self.refresh()
        return info

    def trouble_of(self, exc: BaseException) -> Trouble:
        """An action's error as the widget shows it."""
        return browse.trouble(exc)

    def status(self) -> str:
        """One line: how many rows, whether more exist, what is going on."""
        rows = self.rows
        shown = len(rows)
        loaded = len(self.items)
        parts = []
        if self.search:
            parts.append(f"matching {redact(self.search)!r}" + (" everywhere" if self.everywhere else ""))
        what = (f"{shown} of {loaded} loaded" if self.models_only
                else f"{loaded} item" + ("" if loaded == 1 else "s"))
        parts.insert(0, what + ("" if self.complete else " (more in Drive: press More)"))
        if self.busy:
            parts.append("loading…")
        elif self.search and not self.everywhere and self.complete and not loaded:
            parts.append("no name matches in this folder: tick \u201ceverywhere\u201d to search "
                         "all of Drive")
        return " · ".join(parts)

