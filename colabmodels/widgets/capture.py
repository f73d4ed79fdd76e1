"""Callbacks that cannot fail silently: each runs inside an ``Output`` capture, and an error
shows in the widget as one line plus what to do next (never a traceback lost in the kernel log).

ipywidgets drops exceptions raised in ``on_click``/``observe`` callbacks unless they run inside
an ``Output`` widget's context. Only callbacks on the kernel's thread enter it: on a worker
thread the capture would take the output of whichever cell runs at that moment.
``CallbackGuard`` owns that ``Output`` and an ``HTML`` message line; ``guard.wrap(fn)``
returns the wrapped callback. Shared by the Drive browser and the dataset panel. Works on
ipywidgets 7.7 and 8.

A model's observers run on its worker threads, where an exception would vanish as well (or
stop the model): ``guard.follow(model, draw, what=...)`` redraws the widget after each change
of the model and turns a drawing error into the error line.
"""

from __future__ import annotations

import contextlib
import functools
import html
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..browse import Trouble, trouble
from ..errors import ColabModelsError

if TYPE_CHECKING:
    from .background import BackgroundModel

__all__ = ["CallbackGuard", "message_html"]

logger = logging.getLogger("colabmodels.widgets")
F = TypeVar("F", bound=Callable[..., Any])

_COLOURS = {"error": "#b00020", "ok": "#1b5e20", "info": "#333333"}


def message_html(text: str, *, kind: str = "info", advice: str = "") -> str:
    """A one-line message (escaped) in the widget's style; ``advice`` on a second line."""
    colour = _COLOURS.get(kind, _COLOURS["info"])
    body = f"<span style='color:{colour}'>{html.escape(text)}</span>"
    if advice:
        body += f"<br><span style='color:#555'>{html.escape(advice)}</span>"
    return f"<div class='cm-message cm-message-{kind}'>{body}</div>"


class CallbackGuard:
    """An ``Output`` that widget callbacks run in, and an ``HTML`` line for their errors.

    Attributes:
        output: the ``ipywidgets.Output`` (shows what callbacks print).
        message: the ``ipywidgets.HTML`` status/error line.
        last_trouble: the last error shown (tests read it), or None.
    """

    def __init__(self) -> None:
        import ipywidgets as w

        self.output = w.Output(layout=w.Layout(max_height="12em", overflow="auto"))
        self.message = w.HTML("")
        self.last_trouble: Trouble | None = None
        self._lock = threading.Lock()

    def wrap(self, fn: F) -> F:
        """``fn`` run inside the output capture; an exception becomes the error line."""

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            # ``Output`` captures by the id of the request the kernel is running *now*: from a
            # worker thread (an observer fired by a background redraw) that is whatever cell
            # runs next, and its prints would vanish into this widget. Only the kernel's own
            # thread, where clicks and typing arrive, enters the capture.
            capture = self.output if threading.current_thread() is threading.main_thread() \
                else contextlib.nullcontext()
            with capture:
                try:
                    return fn(*args, **kwargs)
                except Exception as e:
                    self.show_error(e)
                    return None

        return guarded  # type: ignore[return-value]

    def follow(self, model: BackgroundModel, draw: Callable[[str], None], *, what: str) -> None:
        """After each change of ``model``: show its error on ``"error"``, then ``draw(event)``
        (any thread). An error while drawing is logged and shown, never raised into the model.

        Args:
            model: the widget's model.
            draw: redraws what ``event`` changed (and the status line).
            what: the widget's name in the log (``"the browser"``).
        """

        def changed(event: str) -> None:
            try:
                if event == "error" and model.error is not None:
                    self.show_trouble(model.error)
                draw(event)
            except Exception as e:  # drawing must never kill the model's thread
                logger.exception("drawing %s failed", what)
                self.show_error(e)

        model.observe(changed)

    def show_error(self, exc: BaseException) -> Trouble:
        """Show ``exc`` as one line and what to do (any thread)."""
        found = trouble(exc)
        if isinstance(exc, (ValueError, KeyError)) and not isinstance(exc, ColabModelsError):
            found = Trouble("error", str(exc), "")  # the user's input: the message says it all
        logger.debug("widget callback failed", exc_info=exc)
        self.show_trouble(found)
        return found

    def show_trouble(self, found: Trouble) -> None:
        with self._lock:
            self.last_trouble = found
            self.message.value = message_html(found.message, kind="error", advice=found.advice)

    def say(self, text: str, *, kind: str = "info") -> None:
        """Show a status line (replaces the error line)."""
        with self._lock:
            if kind != "error":
                self.last_trouble = None
            self.message.value = message_html(text, kind=kind) if text else ""

    @property
    def text(self) -> str:
        """The message line as plain text (tests, notebooks)."""
        import re

        return html.unescape(re.sub(r"<br>", "\n", re.sub(r"<(?!br>)[^>]+>", "", self.message.value)))
