"""Model formats: recognise, load safely, save.

::

    info = sniff_format(path, source="MyDrive/m/model.pt")  # FormatInfo(name, framework, ...)
    model = load_path(path, info=info, trust=False, arch=None, source="MyDrive/m/model.pt")
    saved = save_object(model, dest_dir)   # SavedFiles(format, framework, ..., files, extra)

Detection reads bytes and structure, never file names (see ``.sniff``); loading refuses
formats that would run code from the file, and formats whose safety relies on a framework
guard the running framework version lacks (see ``.versions``), unless ``trust=True`` (see
``.load``); saving picks the format the framework recommends (see ``.save``). Format
names are listed in ``FORMAT_NAMES`` and described in ``.info``. ``source=`` is what
the user typed when ``path`` is a cache copy: messages name it first.

Models whose files were fetched one by one (a gensim main file and its sidecars, a TF
checkpoint prefix's index and shards) are loaded from a folder of links:
``required_sidecars`` / ``checkpoint_files`` say which files to fetch,
``linked_files`` puts them under their names, and ``load_path`` loads from there.

Importing this package imports no framework (nor numpy); each is imported inside the
function that needs it, and a missing one raises
``MissingDependencyError`` naming the pip extra.

Modules: ``.sniff`` (recognition), ``.load``, ``.save`` (dispatch),
``.safety`` (pickle global scans, zip checks), ``.versions`` (running-version floors),
``.arch`` (state-dict fitting), ``.keras_io``, ``.tf_io``, ``.torch_io``,
``.safetensors_io``, ``.gensim_io``, ``.onnx_io`` (one per framework),
``.protobuf`` (wire-format walking for ONNX and TensorFlow), ``.paths`` (temporary
names), ``.names`` (how messages name files).
"""

from __future__ import annotations

from .gensim_io import required_sidecars
from .info import FORMAT_NAMES, FormatInfo, SavedFiles
from .load import LOADER_OPTIONS, load_path
from .paths import linked_files
from .save import save_object
from .sniff import sniff_format
from .tf_io import checkpoint_files

__all__ = [
    "FORMAT_NAMES",
    "LOADER_OPTIONS",
    "FormatInfo",
    "SavedFiles",
    "checkpoint_files",
    "linked_files",
    "load_path",
    "required_sidecars",
    "save_object",
    "sniff_format",
]
