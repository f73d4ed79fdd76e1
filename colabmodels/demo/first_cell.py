"""The first cell of every demo notebook: ``setup`` returns your own references, or starts
the demo servers and returns the demo content's references under the same keys."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .. import config
from ..errors import ColabModelsError, RefError
from .servers import DemoServers, how_to_stop, start_emulator

__all__ = ["PLACEHOLDER", "NotebookFiles", "setup"]

PLACEHOLDER = "YOUR_"
"""What marks a value of ``MY_FILES`` that the user has not filled in yet."""


class NotebookFiles(dict):
    """What ``setup`` returns: the references by key, and how they were chosen."""

    def __init__(self, files: Mapping[str, str], *, emulator: DemoServers | None, note: str) -> None:
        super().__init__(files)
        self.emulator = emulator
        self.note = note

    def __repr__(self) -> str:
        lines = [self.note]
        if self.emulator is not None:
            lines.append("servers: " + ", ".join(f"{k} {v}" for k, v in self.emulator.services.items()))
            lines.append(how_to_stop(self.emulator.workdir))
        lines += [f"  {k} = {v}" for k, v in self.items()]
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))


def setup(my_files: Mapping[str, str] | None = None, *, use_emulator: bool | None = None,
          workdir: str | os.PathLike[str] | None = None) -> NotebookFiles:
    """The first cell of every demo notebook: your own files, or the emulator's demo content.

    Args:
        my_files: your references by key (share links, ``gs://``, ``s3://``, Drive paths);
            values still containing ``YOUR_`` are placeholders you have not filled in.
        use_emulator: True: the bundled emulator and demo content (started here if not
            running); False: your own files and Drive; None: the emulator, except in Colab
            when every placeholder is filled in.
        workdir: the emulator's work folder (see ``start_emulator``).

    Returns:
        the references to use, under the keys of ``my_files`` (plus any other demo keys).

    Raises:
        RefError: your own files are asked for but some are still placeholders.
        ColabModelsError: the emulator could not be started.
    """
    my_files = dict(my_files or {})
    unfilled = sorted(k for k, v in my_files.items() if PLACEHOLDER in str(v))
    if use_emulator is None:
        if config.in_colab() and unfilled and len(unfilled) < len(my_files):
            raise RefError(
                "MY_FILES is filled in only partly: replace the YOUR_... placeholders of "
                f"{', '.join(unfilled)}, or set USE_EMULATOR = True for the demo content.")
        use_emulator = not config.in_colab() or bool(unfilled)
    if not use_emulator:
        if unfilled:
            raise RefError(
                f"MY_FILES still has placeholders: {', '.join(unfilled)}. Replace the YOUR_... "
                "parts with your own links or paths, or set USE_EMULATOR = True.")
        where = "Colab" if config.in_colab() else "this machine"
        return NotebookFiles(my_files, emulator=None,
                             note=f"your own files and Drive ({where}); USE_EMULATOR = True "
                                  "switches to the bundled emulator")
    servers = start_emulator(workdir)
    servers.apply()
    files = {}
    for key, value in (my_files or servers.files).items():
        if key in servers.files:
            files[key] = servers.files[key]
        elif PLACEHOLDER not in str(value):
            files[key] = value  # e.g. a Drive folder to save into: the same path on the emulator
        else:
            raise ColabModelsError(
                f"the demo servers have no {key}: install the demo extra "
                '(pip install "colabmodels[all,demo]") and restart them with '
                "colabmodels.demo.stop_emulator()")
    if config.in_colab():
        # Colab's own sign-in would open the real Drive: sign in to the emulator instead,
        # so %drive_mount and every later call find this session.
        from ..drive.session import mount

        mount(service_account=servers.env["GOOGLE_APPLICATION_CREDENTIALS"])
    why = "" if not unfilled or not config.in_colab() else " (MY_FILES is not filled in)"
    return NotebookFiles(files, emulator=servers,
                         note=f"the bundled emulator with demo content{why}; nothing leaves "
                              "this machine")
