"""``cm.DatasetPanel(ref)`` and ``%dataset REF``: look at an image folder in Drive, then make it
a dataset. Core ipywidgets only (7.7 as Colab ships it, and 8).

It draws a ``DatasetPanelModel``; nothing here
talks to Drive. Top to bottom:

- the folder and a one-line summary (images, classes, sizes), with **Refresh**;
- the class counts as a bar chart (HTML bars; class names show first, counts as the listing
  finishes);
- warnings: hidden folders skipped, empty classes, broken images, exact duplicates, very
  unbalanced classes, files left out;
- a thumbnail grid, one row per class, from Drive's thumbnails (previewing downloads no image);
- the options of ``cm.image_dataset_from_drive`` (image size, batch size, validation split,
  subset, seed) and a variable name; **Create dataset** puts the dataset into that variable
  of the notebook and shows the line of code that does the same;
- **Pack**: ``cm.pack`` writes WebDataset shards back to Drive, with a progress bar.

Every callback is guarded (``CallbackGuard``: an ``Output`` capture on the kernel's thread);
errors, also those of the background listing, show in the panel with what to do next.
"""

from __future__ import annotations

import html
import threading
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from .background import user_namespace
from .capture import CallbackGuard, message_html
from .dataset_panel_model import DatasetOptions, DatasetPanelModel
from .progress import ProgressWidget

if TYPE_CHECKING:
    import os

    from ..datasets.summary import DatasetSummary
    from ..refs import Ref

__all__ = ["DatasetPanel", "chart_html", "warnings_html"]

_STYLE = """<style>
.cm-chart { font-family: ui-monospace, Menlo, Consolas, 'DejaVu Sans Mono', monospace;
  font-size: 12.5px; max-width: 640px; }
.cm-bar-row { display: flex; align-items: center; margin: 2px 0; }
.cm-bar-label { width: 160px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.cm-bar-track { flex: 1; background: #eef2f7; height: 14px; margin: 0 8px; border-radius: 2px; }
.cm-bar { background: #4a86c5; height: 14px; border-radius: 2px; }
.cm-bar-empty { background: #c62828; }
.cm-bar-count { width: 70px; text-align: right; }
.cm-warnings li { margin: 2px 0; }
.cm-thumb-class { font-weight: bold; margin-top: 4px; }
</style>"""

_ICONS = {"hidden_folders": "\u2139", "not_images": "\u2139", "google_docs": "\u2139",
          "aspect_ratios": "\u2139", "loose_images": "\u2139"}


def chart_html(summary: DatasetSummary | None, *, failed: bool = False) -> str:
    """The class counts as HTML bars (``.cm-bar`` elements), or a placeholder while listing
    (nothing once listing ``failed``: the error line says why)."""
    if summary is None:
        return "" if failed else "<div class='cm-chart' style='color:#777'>listing …</div>"
    if not summary.class_names:
        return ("<div class='cm-chart' style='color:#777'>no class folders "
                + ("found</div>" if summary.complete else "yet …</div>"))
    from ..datasets.summary import class_rows

    rows = []
    for name, count, fraction in class_rows(summary):
        # while listing: the count so far, growing as pages arrive ("1000…"), or "…"
        shown = str(count) if summary.complete else (f"{count}…" if count else "…")
        width = f"{100 * fraction:.1f}%" if summary.complete or count else "0%"
        empty = " cm-bar-empty" if summary.complete and count == 0 else ""
        rows.append(
            f"<div class='cm-bar-row' title='{html.escape(name)}: {shown}'>"
            f"<span class='cm-bar-label'>{html.escape(name)}</span>"
            f"<div class='cm-bar-track'><div class='cm-bar{empty}' data-class='{html.escape(name)}' "
            f"data-count='{count if summary.complete else ''}' style='width:{width}'></div></div>"
            f"<span class='cm-bar-count'>{shown}</span></div>")
    return f"<div class='cm-chart'>{''.join(rows)}</div>"


def warnings_html(summary: DatasetSummary | None) -> str:
    """The warnings as a list (``.cm-warnings``); "" when there are none."""
    if summary is None or not summary.complete:
        return ""
    if not summary.warnings:
        return ("<div class='cm-warnings' style='color:#1b5e20'>\u2714 no problems found "
                "(hidden folders, empty classes, broken images, duplicates, balance)</div>")
    items = "".join(
        f"<li class='cm-warning cm-warning-{w.kind}'>{_ICONS.get(w.kind, chr(0x26a0))} "
        f"{html.escape(w.message)}</li>" for w in summary.warnings)
    return f"<ul class='cm-warnings' style='list-style:none;padding-left:0.2em;margin:4px 0'>{items}</ul>"


class DatasetPanel:
    """Class counts, thumbnails and warnings of an image folder, and buttons that make it a
    dataset (into a notebook variable) or pack it into shards.

    Args:
        ref: the dataset folder: ``"MyDrive/datasets/flowers"``, a folder link or id (also
            ``gs://``, ``s3://``, a local folder: no thumbnails there).
        variable: the variable name(s) Create fills (default ``"train, val"``).
        image_size, batch_size, validation_split, subset, seed: the fields' first values
            (the options of ``colabmodels.image_dataset_from_drive``); the image size
            follows the images' own size while it is not edited.
        class_names, follow_links: as for ``image_dataset_from_drive``.
        per_class: thumbnails per class.
        namespace: where Create puts the dataset (default: the notebook's,
            ``get_ipython().user_ns``).

    Display it as the last expression of a cell (or with ``display(panel)``).
    """

    def __init__(self, ref: str | os.PathLike[str] | Ref, *, variable: str | None = None,
                 image_size: tuple[int, int] | None = None, batch_size: int = 32,
                 validation_split: float = 0.2, subset: str | None = "both", seed: int = 1337,
                 class_names: list[str] | None = None, follow_links: bool = False,
                 per_class: int = 6, namespace: MutableMapping[str, Any] | None = None) -> None:
        import ipywidgets as w

        self._namespace = namespace
        self.guard = CallbackGuard()
        self.progress = ProgressWidget()
        self._ui = threading.RLock()
        self._size_edited = image_size is not None
        self._variable_edited = variable is not None
        self._images: dict[str, Any] = {}
        self._grid_for: object = None
        self.last_packed: Any = None
        guard = self.guard.wrap
        height, width = image_size or (256, 256)

        self.title = w.HTML("")
        self.status = w.Label("")
        self.status.add_class("cm-status")
        self.refresh_button = w.Button(description="Refresh", icon="refresh",
                                       tooltip="list the folder again", layout=w.Layout(width="100px"))
        self.chart = w.HTML(chart_html(None))
        self.warnings = w.HTML("")
        self.grid = w.VBox([])
        self.grid.add_class("cm-thumbs")

        field = {"style": {"description_width": "initial"}}
        self.height = w.BoundedIntText(value=height, min=1, max=4096, description="image size",
                                       layout=w.Layout(width="150px"), **field)
        self.width = w.BoundedIntText(value=width, min=1, max=4096, description="x",
                                      layout=w.Layout(width="90px"), **field)
        self.batch_size = w.BoundedIntText(value=batch_size, min=1, max=65536,
                                           description="batch size", layout=w.Layout(width="150px"),
                                           **field)
        self.validation_split = w.BoundedFloatText(value=validation_split, min=0.0, max=0.95,
                                                   step=0.05, description="validation split",
                                                   layout=w.Layout(width="190px"), **field)
        self.subset = w.Dropdown(options=[("both (train, val)", "both"), ("training", "training"),
                                          ("validation", "validation"), ("all (no split)", None)],
                                 value=subset, description="subset",
                                 layout=w.Layout(width="220px"), **field)
        self.seed = w.IntText(value=seed, description="seed", layout=w.Layout(width="150px"),
                              **field)
        self.variable = w.Text(value=variable or self._default_variable(subset),
                               description="variable", layout=w.Layout(width="240px"), **field)
        self.create_button = w.Button(description="Create dataset", icon="play",
                                      button_style="primary", disabled=True,
                                      tooltip="cm.image_dataset_from_drive into the variable")
        self.pack_dest = w.Text(value="", placeholder="default: <folder>_shards beside it",
                                description="pack to", layout=w.Layout(width="360px"), **field)
        self.pack_button = w.Button(description="Pack", icon="archive", disabled=True,
                                    tooltip="cm.pack: WebDataset shards written back to Drive")
        self.skip_broken = w.Checkbox(value=True, description="skip broken files",
                                      indent=False, layout=w.Layout(width="auto", display="none"))
        self.skip_broken.add_class("cm-skip-broken")
        self.leave_hidden = w.Checkbox(value=True, description="leave out hidden folders",
                                       indent=False, layout=w.Layout(width="auto", display="none"))
        self.leave_hidden.add_class("cm-leave-hidden")
        self.result = w.HTML("")
        self.code = w.HTML("")

        self.model = DatasetPanelModel(ref, class_names=class_names, follow_links=follow_links,
                                       per_class=per_class)
        self.title.value = (f"<b>Dataset</b> <code>{html.escape(self.model.ref_text)}</code>")
        self.widget = w.VBox([
            w.HTML(_STYLE),
            w.HBox([self.title, self.refresh_button], layout=w.Layout(align_items="center")),
            self.status,
            self.chart,
            self.warnings,
            self.grid,
            w.HBox([self.height, self.width, self.batch_size, self.validation_split]),
            w.HBox([self.subset, self.seed, self.variable, self.create_button]),
            w.HBox([self.skip_broken, self.leave_hidden]),
            w.HBox([self.pack_dest, self.pack_button]),
            self.progress.box, self.result, self.code, self.guard.message, self.guard.output,
        ])
        self.widget.add_class("cm-dataset-panel")

        self.refresh_button.on_click(guard(lambda _: self.model.refresh()))
        self.create_button.on_click(guard(self._create))
        self.pack_button.on_click(guard(self._pack))
        self.subset.observe(guard(self._subset_changed), names="value")
        self.height.observe(guard(self._size_typed), names="value")
        self.width.observe(guard(self._size_typed), names="value")
        self.variable.observe(guard(self._variable_typed), names="value")
        self._drawing = False
        self.guard.follow(self.model, self._changed, what="the dataset panel")
        self._draw_all()

    # -- display -------------------------------------------------------------------------------
    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return f"<DatasetPanel {self.model.ref_text!r}: {self.model.status()}>"

    @property
    def namespace(self) -> MutableMapping[str, Any]:
        return self._namespace if self._namespace is not None else user_namespace()

    @property
    def summary(self) -> DatasetSummary | None:
        """What the listing found (None while the first request runs)."""
        return self.model.summary

    def wait(self, timeout: float | None = 120) -> bool:
        """Wait until listing and thumbnails are done (tests, notebooks)."""
        done = self.model.wait(timeout)
        self._draw_all()
        return done

    def close(self) -> None:
        """Stop background work and close the widgets."""
        self.model.close()
        self.widget.close()

    def options(self) -> DatasetOptions:
        """The fields as ``DatasetOptions`` (not yet checked)."""
        summary = self.summary
        broken = bool(summary is not None and summary.broken)
        hidden = bool(summary is not None and summary.hidden_inside)
        return DatasetOptions(image_size=(self.height.value, self.width.value),
                              batch_size=self.batch_size.value,
                              validation_split=self.validation_split.value,
                              subset=self.subset.value, seed=self.seed.value,
                              on_error="skip" if broken and self.skip_broken.value else "raise",
                              include_hidden=not (hidden and self.leave_hidden.value))

    # -- drawing (any thread) ------------------------------------------------------------------
    def _changed(self, event: str) -> None:
        if event == "summary" or (event in ("error", "busy") and self.model.summary is None):
            self._draw_summary()
        elif event == "thumbnail":
            self._draw_thumbnails()
        self._draw_status()

    def _draw_all(self) -> None:
        if self.model.error is not None:
            self.guard.show_trouble(self.model.error)
        self._draw_summary()
        self._draw_thumbnails()
        self._draw_status()

    def _draw_status(self) -> None:
        self.status.value = self.model.status()

    def _draw_summary(self) -> None:
        summary = self.model.summary
        with self._ui:
            failed = self.model.error is not None and not self.model.busy
            self.chart.value = chart_html(summary, failed=failed)
            self.warnings.value = warnings_html(summary)
            ready = summary is not None and summary.complete and summary.total > 0
            self.create_button.disabled = not ready
            self.pack_button.disabled = not ready
            broken = len(summary.broken) if summary is not None and summary.complete else 0
            hidden = summary.hidden_inside if summary is not None and summary.complete else []
            self.skip_broken.description = (
                f"skip the {broken} broken file{'s' if broken != 1 else ''}")
            self.skip_broken.layout.display = "" if broken else "none"
            self.leave_hidden.description = (
                f"leave out {len(hidden)} hidden folder{'s' if len(hidden) != 1 else ''} "
                "inside classes (Keras includes them)")
            self.leave_hidden.layout.display = "" if hidden else "none"
            if summary is not None and summary.complete and not self._size_edited:
                common = summary.suggested_image_size
                if common is not None:
                    self._drawing = True
                    try:
                        self.height.value = max(1, min(512, common[0]))
                        self.width.value = max(1, min(512, common[1]))
                    finally:
                        self._drawing = False
            self._draw_grid(summary)

    def _draw_grid(self, summary: DatasetSummary | None) -> None:
        """One row per class: its name, then an Image per sample (filled as thumbnails come)."""
        import ipywidgets as w

        if summary is None or not summary.complete:
            if self._grid_for is not None:
                self._grid_for = None
                self._images = {}
                self.grid.children = []
            return
        if self._grid_for is summary:
            return
        self._grid_for = summary
        samples = self.model.samples(summary)
        images: dict[str, Any] = {}
        rows: list[Any] = []
        for name, files in samples.items():
            cells = []
            for f in files:
                if not f.thumbnail_link and "zip_member" not in f.info:  # zips: decoded previews
                    continue
                image = w.Image(value=b"", format="png",
                                layout=w.Layout(width="96px", height="96px", object_fit="contain",
                                                border="1px solid #ddd", margin="2px"))
                image.add_class("cm-thumb")
                images[f.path] = image
                cells.append(image)
            if not files and not self.model.per_class:
                continue
            label = w.HTML(f"<div class='cm-thumb-class'>{html.escape(name)} "
                           f"<span style='color:#777;font-weight:normal'>"
                           f"({summary.counts.get(name, 0)})</span></div>")
            if not cells:
                cells = [w.HTML("<span style='color:#777'>no thumbnails</span>")]
            rows.append(w.VBox([label, w.HBox(cells, layout=w.Layout(flex_flow="row wrap"))]))
        self._images = images
        old = self.grid.children
        self.grid.children = rows
        for child in old:
            child.close()

    def _draw_thumbnails(self) -> None:
        with self._ui:
            for path, thumb in list(self.model.thumbnails.items()):
                image = self._images.get(path)
                if image is None or image.value:
                    continue
                if thumb.data:
                    image.format = thumb.format
                    image.value = thumb.data
                else:
                    image.layout.border = "2px solid #c62828"

    # -- callbacks (kernel thread, inside the guard) -------------------------------------------
    def _default_variable(self, subset: str | None) -> str:
        return {"both": "train, val", "training": "train", "validation": "val"}.get(
            subset or "", "dataset")

    def _subset_changed(self, change: dict[str, Any]) -> None:
        if not self._variable_edited:
            self._drawing = True
            try:
                self.variable.value = self._default_variable(change["new"])
            finally:
                self._drawing = False

    def _size_typed(self, _: Any) -> None:
        if not self._drawing:
            self._size_edited = True

    def _variable_typed(self, _: Any) -> None:
        if not self._drawing:
            self._variable_edited = True

    def _create(self, _: Any) -> None:
        options = self.options()
        line = self.model.code(self.variable.value, options)  # checks the fields first
        self.guard.say("Creating the dataset …")
        self.result.value = ""
        self.code.value = ""
        made = self.model.create(self.variable.value, options, namespace=self.namespace)
        self.guard.say("")
        parts = []
        for name, ds in made.items():
            files = getattr(ds, "file_paths", None)
            if isinstance(ds, (list, tuple)):
                files = [p for d in ds for p in getattr(d, "file_paths", [])]
            parts.append(f"`{name}` ({len(files)} files)" if files is not None else f"`{name}`")
        classes = len(self.summary.class_names) if self.summary else 0
        skipped = self.model.last_skipped
        left_out = (f"; {len(skipped)} broken file{'s' if len(skipped) != 1 else ''} left out "
                    f"({', '.join(p.rsplit('/', 1)[-1] for p in skipped[:3])}"
                    f"{' …' if len(skipped) > 3 else ''})") if skipped else ""
        self.result.value = message_html(f"Created {' and '.join(parts)}, {classes} classes"
                                         + left_out, kind="ok")
        self.code.value = (f"<div style='color:#555'>the same in code:</div>"
                           f"<code class='cm-code' style='white-space:pre-wrap;"
                           f"overflow-wrap:anywhere'>{html.escape(line)}</code>")

    def _pack(self, _: Any) -> None:
        options = self.options()
        self.guard.say("Packing: reading the images, then writing shards to Drive …")
        self.result.value = ""
        done = self.model.pack(self.pack_dest.value, options=options,
                               progress=self.progress.track)
        self.guard.say("")
        where = done.path or done.raw or str(done)
        self.last_packed = done
        self.result.value = message_html(f"Packed into {where}: pass it to "
                                         "cm.image_dataset_from_drive to read the shards",
                                         kind="ok")
