"""Callbacks that cannot fail silently: each runs inside an ``Output`` capture, and an error
shows in the widget as one line plus what to do next (never a traceback lost in the kernel log).

ipywidgets drops exceptions raised in ``on_click``/``observe`` callbacks unless they run inside
an ``Output`` widget's context. :class:`CallbackGuard` owns that ``Output`` and an ``HTML``
message line; ``guard.wrap(fn)`` returns the wrapped callback. Shared by the Drive browser and
the dataset panel. Works on ipywidgets 7.7 and 8.
"""

from __future__ import annotations

import functools
import html
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ..browse import Trouble, trouble
from ..errors import ColabModelsError

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
            with self.output:
                try:
                    return fn(*args, **kwargs)
                except Exception as e:
                    self.show_error(e)
                    return None

        return guarded  # type: ignore[return-value]

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
