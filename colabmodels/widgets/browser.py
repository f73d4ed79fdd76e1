"""``cm.DriveBrowser()``: a Drive file browser made of core ipywidgets (7.7 and 8).

It draws a ``BrowserModel`` and turns clicks into its
calls; nothing here talks to Drive. Layout, top to bottom: the roots (My Drive, Shared with me,
Shared drives) and Refresh; breadcrumbs (buttons); a search box (a Drive query, run once
typing pauses), "everywhere" and "model files only"; column headers Name / Size / Modified
(click to sort, again to reverse); the list with a details pane beside it; Up / Open / More
and a status line; then the mode's actions.

**Opening folders.** The list is a ``Select`` (a ``SelectMultiple`` in ``select`` mode): a
click selects a row and shows its details; a double-click opens a folder or loads a file;
**Open** (or choosing the ``⬆ ..`` row, or a breadcrumb) navigates. The keyboard works as in any list
(arrows, Home/End, type-ahead) and Tab reaches the buttons.

**Load mode**: a variable name (filled from the file name) and **Load**: ``cm.load_model``
runs with a progress bar, the model lands in the notebook's namespace (Load is disabled for
files that are no model, such as images), and **Copy reference** shows the reference to
paste into code. **Save mode**: pick a folder (the one shown, or a
selected subfolder), a name, a model variable from the namespace and ``key=value``
metadata; **Save** calls ``cm.save_model`` and shows the version it made.

Every callback is guarded (``CallbackGuard``: an ``Output`` capture on the kernel's thread);
errors, including those of the background listing, show in the widget with what to do next.
"""

from __future__ import annotations

import contextlib
import html
import threading
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from ..auth import redact
from ..browse import DriveItem
from ..presentation import (
    format_size,
    format_time,
    metadata_text,
    parse_meta,
    saved_line,
    versions_table,
)
from .background import user_namespace
from .browser_model import BrowserModel, Mode, model_variables, variable_name_for
from .capture import CallbackGuard, message_html
from .progress import ProgressWidget

__all__ = ["DriveBrowser", "row_label"]

NAME_WIDTH = 40
_UP = -1
_STYLE = """<style>
.cm-drive-list select, .cm-drive-list option { font-family: ui-monospace, SFMono-Regular, Menlo,
  Consolas, 'DejaVu Sans Mono', monospace !important; font-size: 12.5px; }
.cm-drive-head button { font-family: ui-monospace, Menlo, Consolas, 'DejaVu Sans Mono', monospace;
  text-align: left; }
.cm-crumbs button { padding: 0 6px; }
.cm-details th, .cm-details td { vertical-align: top; }
.cm-details td { word-break: break-word; overflow-wrap: anywhere; }
.cm-versions { max-width: 300px; max-height: 220px; overflow: auto; }
.cm-versions table { font-size: 12px; }
.cm-versions th, .cm-versions td { white-space: nowrap; max-width: 240px; overflow: hidden;
  text-overflow: ellipsis; padding: 1px 6px; }
a.cm-open-drive { display: inline-block; margin-top: 4px; padding: 2px 10px;
  border: 1px solid #4a86c5; border-radius: 3px; color: #1a5fb4; text-decoration: none; }
a.cm-open-drive:hover { background: #eef2f7; }
</style>"""

# Core widgets have no double-click. This image fails to load at once and its handler (our own
# constant text, no data in it) makes a double-click in the list press the hidden
# ``.cm-dblclick`` button, which the kernel turns into Open (a folder) or Load (a file): the
# click that selected the row has reached the kernel before it, as widget messages keep order.
_DOUBLE_CLICK = (
    "<img src='data:,' alt='' style='display:none' onerror=\""
    "var img=this,tries=0;(function hook(){"
    "var root=img.closest('.cm-drive-browser');"
    "var list=root&&root.querySelector('.cm-drive-list select');"
    "if(!list){if(tries++<50){setTimeout(hook,100);}return;}"
    "if(list.dataset.cmDblclick){return;}list.dataset.cmDblclick='1';"
    "list.addEventListener('dblclick',function(){"
    "var b=root.querySelector('.cm-dblclick');"
    "if(b&&b.tagName!=='BUTTON'){b=b.querySelector('button');}"
    "if(b){b.click();}});})();\">")


def _pad(text: str, width: int) -> str:
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text + "\u00a0" * (width - len(text))


def _icon(item: DriveItem) -> str:
    """A one-character mark that every monospace font has (emoji are missing on many
    Linux browsers): ▣ shared drive, ◆ model (file or folder), ▸ folder, ▫ image, · file."""
    if item.shared_drive:
        return "\u25a3"
    if item.model_kind is not None:
        return "\u25c6"
    if item.is_folder:
        return "\u25b8"
    if (item.mime or "").startswith("image/"):
        return "\u25ab"
    return "\u00b7"


def row_label(item: DriveItem) -> str:
    """One list row: icon and name, size, modified, in fixed-width columns."""
    name = ("\u21aa " if item.shortcut else "") + item.name + ("/" if item.is_folder else "")
    size = "" if item.is_folder else format_size(item.size)
    return (f"{_icon(item)} {_pad(name, NAME_WIDTH)} {size.rjust(10).replace(' ', chr(0xa0))}"
            f"\u00a0\u00a0{format_time(item.modified)}")


class DriveBrowser:
    """Browse Drive, then load the chosen model into a variable (or save one into a folder).

    Args:
        start: where to begin (``"MyDrive"``, ``"MyDrive/models"``, ``"SharedWithMe"``,
            ``"Shareddrives/Team"``, a folder link or id).
        mode: ``"load"`` (default), ``"save"``, or ``"select"`` (several items; use
            ``on_select`` or ``value``).
        on_select: called with the selected ``DriveItem`` (a list in
            ``select`` mode) each time the selection changes; its errors show in the widget.
        namespace: where Load puts the model and Save finds variables (default: the
            notebook's, ``get_ipython().user_ns``).
        page_size: rows per Drive request (the first screen costs one request).
        rows: visible rows of the list.

    Display it as the last expression of a cell (or with ``display(browser)``).
    """

    def __init__(self, start: str = "MyDrive", *, mode: Mode = "load",
                 on_select: Callable[[Any], Any] | None = None,
                 namespace: MutableMapping[str, Any] | None = None, page_size: int = 100,
                 rows: int = 14) -> None:
        import ipywidgets as w

        self.model = BrowserModel(start, mode=mode, page_size=page_size)
        self.on_select = on_select
        self._namespace = namespace
        self.guard = CallbackGuard()
        self.progress = ProgressWidget()
        self._ui = threading.RLock()
        self._local = threading.local()
        self._shown: list[DriveItem] = []
        self.last_saved: Any = None
        guard = self.guard.wrap

        self.roots = w.ToggleButtons(options=[("My Drive", "mydrive"), ("Shared with me", "shared"),
                                              ("Shared drives", "drives")], value=None,
                                     style={"button_width": "130px"})
        self.refresh_button = w.Button(description="Refresh", icon="refresh",
                                       tooltip="list this folder again",
                                       layout=w.Layout(width="100px"))
        self.crumbs = w.HBox([], layout=w.Layout(flex_flow="row wrap"))
        self.crumbs.add_class("cm-crumbs")
        self.search = w.Text(value="", placeholder="Search names (Drive query; as you type)",
                             continuous_update=True, layout=w.Layout(width="40%"))
        self.everywhere = w.Checkbox(value=False, description="everywhere", indent=False,
                                     layout=w.Layout(width="110px"))
        self.models_only = w.Checkbox(value=False, description="model files only", indent=False,
                                      layout=w.Layout(width="150px"))
        self.headers = {
            "name": w.Button(description="", layout=w.Layout(width="340px")),
            "size": w.Button(description="", layout=w.Layout(width="80px")),
            "modified": w.Button(description="", layout=w.Layout(width="140px")),
        }
        head = w.HBox(list(self.headers.values()))
        head.add_class("cm-drive-head")
        select_cls = w.SelectMultiple if self.model.multiple else w.Select
        self.listing = select_cls(options=[], rows=rows, layout=w.Layout(width="570px"))
        self.listing.add_class("cm-drive-list")
        self.up_button = w.Button(description="Up", icon="arrow-up", layout=w.Layout(width="80px"))
        self.open_button = w.Button(description="Open", icon="folder-open", disabled=True,
                                    tooltip="open the selected folder", layout=w.Layout(width="90px"))
        self.more_button = w.Button(description="More", icon="angle-double-down", disabled=True,
                                    tooltip=f"list the next {page_size} items",
                                    layout=w.Layout(width="90px"))
        self.status = w.Label("")
        self.details = w.HTML("", layout=w.Layout(width="100%"))
        self.thumbnail = w.Image(value=b"", format="png", layout=w.Layout(display="none",
                                                                          max_width="220px"))
        self.versions = w.HTML("")
        self.double_click = w.Button(description="", tooltip="a double-click in the list",
                                     layout=w.Layout(display="none"))
        self.double_click.add_class("cm-dblclick")
        self.copy_button = w.Button(description="Copy reference", icon="clipboard", disabled=True,
                                    tooltip="show the reference to paste into code")
        self.reference = w.Text(value="", layout=w.Layout(width="310px", display="none"))
        self.reference.add_class("cm-reference")
        side = w.VBox([self.details, self.thumbnail, self.versions, self.copy_button, self.reference],
                      layout=w.Layout(width="330px", padding="0 0 0 10px", overflow="hidden"))

        # mode actions
        self.variable = w.Text(value="model", description="variable", layout=w.Layout(width="260px"))
        self.load_button = w.Button(description="Load", icon="download", button_style="primary",
                                    disabled=True)
        self.save_variable = w.Dropdown(options=[], description="model",
                                        layout=w.Layout(width="260px"))
        self.save_name = w.Text(value="", description="name", placeholder="e.g. resnet18",
                                layout=w.Layout(width="260px"))
        self.metadata = w.Text(value="", description="metadata",
                               placeholder="acc=0.93 note=\"fine tuned\"",
                               layout=w.Layout(width="420px"))
        self.save_button = w.Button(description="Save here", icon="upload", button_style="primary")
        self.vars_button = w.Button(description="", icon="refresh", tooltip="look for model variables again",
                                    layout=w.Layout(width="40px"))
        self.result = w.HTML("")
        if mode == "load":
            actions = w.HBox([self.variable, self.load_button])
        elif mode == "save":
            actions = w.VBox([w.HBox([self.save_variable, self.vars_button, self.save_name]),
                              w.HBox([self.metadata, self.save_button])])
        else:
            actions = w.HBox([])
        self.widget = w.VBox([
            w.HTML(_STYLE + _DOUBLE_CLICK),
            w.HBox([self.roots, self.refresh_button]),
            self.crumbs,
            w.HBox([self.search, self.everywhere, self.models_only]),
            head,
            w.HBox([self.listing, side]),
            w.HBox([self.up_button, self.open_button, self.more_button, self.status]),
            actions, self.progress.box, self.result, self.guard.message, self.guard.output,
            self.double_click,
        ])
        self.widget.add_class("cm-drive-browser")

        self.roots.observe(guard(self._root_chosen), names="value")
        self.refresh_button.on_click(guard(lambda _: self.model.refresh()))
        self.search.observe(guard(self._search_typed), names="value")
        self.everywhere.observe(guard(self._everywhere_changed), names="value")
        self.models_only.observe(guard(self._models_only_changed), names="value")
        for column, button in self.headers.items():
            button.on_click(guard(lambda _, c=column: self._sort(c)))
        self.listing.observe(guard(self._picked), names="value")
        self.up_button.on_click(guard(lambda _: self.model.up()))
        self.open_button.on_click(guard(lambda _: self.model.open_selected()))
        self.double_click.on_click(guard(self._double_clicked))
        self.more_button.on_click(guard(lambda _: self.model.more()))
        self.copy_button.on_click(guard(self._copy_reference))
        self.load_button.on_click(guard(self._load))
        self.save_button.on_click(guard(self._save))
        self.vars_button.on_click(guard(lambda _: self._refresh_variables()))

        self.guard.follow(self.model, self._changed, what="the browser")
        self._refresh_variables()
        self._draw_headers()
        self._draw_all()

    # -- display -----------------------------------------------------------------------------
    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        place = self.model.place
        return f"<DriveBrowser {redact(place.path if place else self.model.start)} ({self.model.mode})>"

    @property
    def value(self) -> DriveItem | list[DriveItem] | None:
        """The selection: a ``DriveItem``, a list of them in ``select``
        mode, or None."""
        chosen = list(self.model.selected)
        if self.model.multiple:
            return chosen
        return chosen[0] if chosen else None

    @property
    def namespace(self) -> MutableMapping[str, Any]:
        return self._namespace if self._namespace is not None else user_namespace()

    def close(self) -> None:
        """Stop background work and close the widgets."""
        self.model.close()
        self.widget.close()

    # -- drawing (any thread) ----------------------------------------------------------------
    @contextlib.contextmanager
    def _drawing(self) -> Iterator[None]:
        """Changes made here are the widget's own: the observers ignore them (this thread only)."""
        with self._ui:
            was = getattr(self._local, "drawing", False)
            self._local.drawing = True
            try:
                yield
            finally:
                self._local.drawing = was

    def _changed(self, event: str) -> None:
        if event == "rows":
            self._draw_rows()
        elif event == "trail":
            self.guard.say("")
            self._draw_trail()
        elif event in ("selection", "details"):
            self._draw_details()
        self._draw_status()

    def _draw_all(self) -> None:
        if self.model.error is not None:  # the first listing may have failed before we observed
            self.guard.show_trouble(self.model.error)
        self._draw_trail()
        self._draw_rows()
        self._draw_details()
        self._draw_status()

    def _draw_trail(self) -> None:
        import ipywidgets as w

        trail = list(self.model.trail)
        with self._drawing():
            parts: list[Any] = []
            for i, place in enumerate(trail):
                if i:
                    parts.append(w.Label("\u203a"))
                button = w.Button(description=place.title, tooltip=place.path,
                                  layout=w.Layout(width="auto"),
                                  button_style="info" if i == len(trail) - 1 else "")
                button.on_click(self.guard.wrap(lambda _, i=i: self.model.go(i)))
                parts.append(button)
            old = self.crumbs.children
            self.crumbs.children = parts
            for child in old:
                child.close()
            root = trail[0].kind if trail else None
            self.roots.value = root if root in ("mydrive", "shared", "drives") else None
            self.up_button.disabled = len(trail) < 2
            self._refresh_variables()

    def _draw_rows(self) -> None:
        rows = self.model.rows
        with self._drawing():
            options: list[tuple[str, int]] = []
            if len(self.model.trail) > 1:
                options.append(("\u2191 ..", _UP))
            options += [(row_label(item), i) for i, item in enumerate(rows)]
            chosen_ids = {i.id for i in self.model.selected}
            self._shown = rows
            self.listing.options = options
            keep = [i for i, item in enumerate(rows) if item.id in chosen_ids]
            if self.model.multiple:
                self.listing.value = tuple(keep)
            else:
                self.listing.value = keep[0] if keep else None
            self.more_button.disabled = self.model.complete or not self.model.items
            left = "" if self.model.complete else f"next {self.model.next_page_size}"
            self.more_button.tooltip = f"list the {left} items" if left else "everything is listed"

    def _draw_headers(self) -> None:
        arrow = " ▼" if self.model.descending else " ▲"
        titles = {"name": "Name", "size": "Size", "modified": "Modified"}
        for column, button in self.headers.items():
            button.description = titles[column] + (arrow if column == self.model.sort else "")
            button.tooltip = f"sort by {titles[column].lower()}"

    def _draw_status(self) -> None:
        with self._drawing():
            self.status.value = self.model.status()

    def _draw_details(self) -> None:
        chosen = list(self.model.selected)
        found = self.model.details
        with self._drawing():
            single = len(chosen) == 1
            item = found.item if found is not None and single else (chosen[0] if single else None)
            self.open_button.disabled = not (item is not None and item.is_folder)
            self.copy_button.disabled = item is None
            why = self.model.not_a_model(item) if item is not None else "nothing selected"
            self.load_button.disabled = why is not None
            self.load_button.tooltip = (f"cannot load: {why}" if why else
                                        "cm.load_model into the variable")
            if item is None:
                self.details.value = (f"<p>{len(chosen)} selected</p>" if chosen else
                                      "<p style='color:#777'>Select a file or folder to see its "
                                      "details.</p>")
                self.thumbnail.layout.display = "none"
                self.versions.value = ""
                return
            self.details.value = _details_html(item, loading=found is None,
                                               web_link=self.model.web_links)
            if found is not None and found.thumbnail:
                self.thumbnail.format = found.thumbnail_format
                self.thumbnail.value = found.thumbnail
                self.thumbnail.layout.display = "block"
            else:
                self.thumbnail.layout.display = "none"
            if found is not None and found.versions:
                self.versions.value = ("<b>Saved versions</b><div class='cm-versions'>"
                                       + versions_table(found.versions, item.path).to_html()
                                       + "</div>")
            else:
                self.versions.value = ""

    # -- callbacks (kernel thread, inside the guard) -----------------------------------------
    def _ignored(self) -> bool:
        return bool(getattr(self._local, "drawing", False))

    def _root_chosen(self, change: dict[str, Any]) -> None:
        if self._ignored() or change["new"] is None:
            return
        self.guard.say("")
        self.model.go_root(change["new"])

    def _sort(self, column: str) -> None:
        self.model.set_sort(column)
        self._draw_headers()

    def _search_typed(self, change: dict[str, Any]) -> None:
        safe = redact(change["new"])
        if safe != change["new"]:  # a pasted link's token or signature: kept out of the .ipynb
            self.search.value = safe  # (this observer runs again, with the safe text)
            return
        if not self._ignored():
            self.model.search_soon(change["new"])

    def _everywhere_changed(self, change: dict[str, Any]) -> None:
        if not self._ignored():
            self.model.set_search(self.search.value, everywhere=bool(change["new"]))

    def _models_only_changed(self, change: dict[str, Any]) -> None:
        if not self._ignored():
            self.model.set_models_only(bool(change["new"]))

    def _picked(self, change: dict[str, Any]) -> None:
        if self._ignored():
            return
        value = change["new"]
        indices = list(value) if isinstance(value, (tuple, list)) else ([] if value is None else [value])
        if _UP in indices:
            self.model.up()
            return
        chosen = [self._shown[i] for i in indices if 0 <= i < len(self._shown)]
        self.model.select(chosen if self.model.multiple else (chosen[0] if chosen else None))
        if len(chosen) == 1 and (not chosen[0].is_folder or chosen[0].model_kind):
            self.variable.value = variable_name_for(chosen[0].name)
        self.reference.layout.display = "none"
        if self.on_select is not None and chosen:
            self.on_select(self.value)

    def _double_clicked(self, _: Any) -> None:
        """A double-click on a row: open a folder, load a file (in load mode)."""
        chosen = list(self.model.selected)
        if len(chosen) != 1:
            return
        item = chosen[0]
        if item.is_folder:  # as in any file manager (Load loads a model folder)
            self.model.open(item)
        elif self.model.mode == "load" and not self.load_button.disabled:
            self._load(None)

    def _copy_reference(self, _: Any) -> None:
        self.reference.value = self.model.reference()
        self.reference.layout.display = "block"

    def _load(self, _: Any) -> None:
        name = self.variable.value.strip()
        item = self.value
        label = item.name if isinstance(item, DriveItem) else "the selection"
        self.guard.say(f"Loading {label} …")
        self.result.value = ""
        obj = self.model.load(name, namespace=self.namespace, progress=self.progress.track)
        kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
        self.guard.say("")
        self.result.value = message_html(f"Loaded {label} into `{name}` ({kind})", kind="ok")

    def _save(self, _: Any) -> None:
        variable = self.save_variable.value
        if not variable:
            raise ValueError("no model variable to save: make one in the notebook, then press ↻")
        metadata = parse_meta(_split_meta(self.metadata.value))
        dest = self.model.save_destination(self.save_name.value)
        self.guard.say(f"Saving {variable} to {dest} …")
        self.result.value = ""
        info = self.model.save(variable, self.save_name.value, metadata=metadata,
                               namespace=self.namespace, progress=self.progress.track)
        self.guard.say("")
        extra = f" · {metadata_text(info.metadata)}" if info.metadata else ""
        self.result.value = message_html(saved_line(variable, info) + extra, kind="ok")
        self.last_saved = info

    def _refresh_variables(self) -> None:
        if self.model.mode != "save":
            return
        names = model_variables(self.namespace)
        with self._drawing():
            current = self.save_variable.value
            self.save_variable.options = names
            if current in names:
                self.save_variable.value = current
            elif names:
                self.save_variable.value = names[0]
            if names and not self.save_name.value:
                self.save_name.value = self.save_variable.value or ""

    # -- for tests and notebooks -------------------------------------------------------------
    def wait(self, timeout: float | None = 60) -> bool:
        """Wait until the background listing/details work is done (then the widget is drawn)."""
        done = self.model.wait(timeout)
        self._draw_headers()
        return done

    def choose(self, name: str) -> DriveItem:
        """Select the row called ``name`` as a click would (tests, notebooks)."""
        for i, item in enumerate(self._shown):
            if item.name == name:
                if self.model.multiple:
                    self.listing.value = (*self.listing.value, i)
                else:
                    self.listing.value = i
                return item
        raise KeyError(f"no row named {name!r} in {[i.name for i in self._shown][:20]}")


def _split_meta(text: str) -> list[str]:
    import shlex

    try:
        return shlex.split(text)
    except ValueError as e:
        raise ValueError(f"metadata: {e}; write key=value pairs, quoting values with spaces") from e


def _details_html(item: DriveItem, *, loading: bool, web_link: bool = True) -> str:
    kind = {"savedmodel": "SavedModel folder", "versions": "saved with save_model (versions)",
            "version": "one saved version", "file": "model file"}.get(item.model_kind or "")
    if not kind:
        kind = "shared drive" if item.shared_drive else ("folder" if item.is_folder else (item.mime or "file"))
    rows = [("Name", item.name), ("Kind", kind)]
    if not item.is_folder:
        rows.append(("Size", format_size(item.size) or "—"))
    rows += [("Modified", format_time(item.modified) or "—"), ("Owner", item.owner or "—")]
    if item.image_size:
        rows.append(("Image", f"{item.image_size[0]} x {item.image_size[1]} px"))
    if item.description:
        rows.append(("Description", item.description))
    rows.append(("Drive path", item.path or "(found by search: load it by id)"))
    meta = {k[5:]: v for k, v in item.properties.items() if k.startswith("meta_")}
    if meta:
        rows.append(("Metadata", " ".join(f"{k}={v}" for k, v in meta.items())))
    cells = "".join(f"<tr><th style='text-align:left;padding-right:8px'>{html.escape(k)}</th>"
                    f"<td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    link = (f"<a class='cm-open-drive' href='{html.escape(item.link)}' target='_blank' "
            "rel='noopener noreferrer'>Open in Drive \u2197</a>" if web_link else "")
    wait = "<br><span style='color:#777'>loading details…</span>" if loading else ""
    return f"<table class='cm-details'>{cells}</table>{link}{wait}"
