"""The demo notebooks, runnable anywhere: ``make demo``, CI, Binder, Colab and plain Jupyter.

Every notebook in ``notebooks/NN_*.ipynb`` starts with the same first cell::

    USE_EMULATOR = None   # None: the bundled emulator unless this is Colab with your files filled in
    MY_FILES = {"KERAS_LINK": "https://drive.google.com/file/d/YOUR_KERAS_FILE_ID/view"}
    from colabmodels.demo import setup
    FILES = setup(MY_FILES, use_emulator=USE_EMULATOR)

``setup`` either returns your own references (after checking that no ``YOUR_...``
placeholder is left) or starts the demo servers (``start_emulator``) and returns the demo
content's references under the same keys, with the environment pointed at the servers.

The demo servers run in one background process (``python -m colabmodels.demo serve``): the
bundled Drive emulator, moto's S3 server and gcp-storage-emulator, all on 127.0.0.1, with demo
content generated on first use (a Keras classifier as HDF5, a torch state dict, a TF
SavedModel, a TF checkpoint and VGG-style weights). The process outlives a kernel restart, so a
"fresh kernel" finds the same servers and files again; its state file (``state.json`` in the
work folder, named by ``COLABMODELS_DEMO_STATE``) holds the environment and the references.

Command line (``python -m colabmodels.demo`` or ``colabmodels demo``)::

    colabmodels demo [NOTEBOOK ...] [--open] [--workdir D]   run every notebook (or the ones named:
                                                            "04", "04_cloud...", a path), or open
                                                            them all in JupyterLab
    colabmodels demo start [--workdir D] [--print-env]      start the servers in the background
    colabmodels demo stop [--workdir D]                     stop them
    colabmodels demo prepare [--workdir D]                  only generate the demo content

The package has one module per job: ``content`` (the demo files),
``servers`` (the background servers), ``first_cell``
(``setup``), ``runner`` (executing notebooks) and
``command`` (the command line).
"""

from __future__ import annotations

from .command import main
from .content import SHAPES_DATASET, make_content, make_shapes, small_vgg_class, stage
from .first_cell import PLACEHOLDER, NotebookFiles, setup
from .runner import (
    FRESH_KERNEL_TAG,
    NOTEBOOK,
    NOTEBOOKS_DIR,
    RunResult,
    cell_texts,
    execute_notebook,
    notebook_text,
    notebooks,
    run_notebooks,
    widget_views,
)
from .servers import (
    GCS_BUCKET,
    LOOPBACK,
    S3_BUCKET,
    STATE_VAR,
    WORKDIR_VAR,
    DemoServers,
    default_workdir,
    demo_servers,
    running,
    s3_requests,
    serve,
    start_emulator,
    stop_emulator,
)
from .servers import (
    _alive as _alive,
)
from .servers import (
    _answers as _answers,
)

__all__ = [
    "FRESH_KERNEL_TAG",
    "GCS_BUCKET",
    "LOOPBACK",
    "NOTEBOOK",
    "NOTEBOOKS_DIR",
    "PLACEHOLDER",
    "S3_BUCKET",
    "SHAPES_DATASET",
    "STATE_VAR",
    "WORKDIR_VAR",
    "DemoServers",
    "NotebookFiles",
    "RunResult",
    "cell_texts",
    "default_workdir",
    "demo_servers",
    "execute_notebook",
    "main",
    "make_content",
    "make_shapes",
    "notebook_text",
    "notebooks",
    "run_notebooks",
    "running",
    "s3_requests",
    "serve",
    "setup",
    "small_vgg_class",
    "stage",
    "start_emulator",
    "stop_emulator",
    "widget_views",
]
