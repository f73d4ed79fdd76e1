"""Model formats: recognise, load safely, save.

::

    info = sniff_format(path, source="MyDrive/m/model.pt")  # FormatInfo(name, framework, ...)
    model = load_path(path, info=info, trust=False, arch=None, source="MyDrive/m/model.pt")
    saved = save_object(model, dest_dir)   # SavedFiles(format, framework, ..., files, extra)

Detection reads bytes and structure, never file names (see :mod:`.sniff`); loading refuses
formats that would run code from the file, and formats whose safety relies on a framework
guard the running framework version lacks (see :mod:`.versions`), unless ``trust=True`` (see
:mod:`.load`); saving picks the format the framework recommends (see :mod:`.save`). Format
names are listed in :data:`FORMAT_NAMES` and described in :mod:`.info`. ``source=`` is what
the user typed when ``path`` is a cache copy: messages name it first.

Models whose files were fetched one by one (a gensim main file and its sidecars, a TF
checkpoint prefix's index and shards) are loaded from a folder of links:
:func:`required_sidecars` / :func:`checkpoint_files` say which files to fetch,
:func:`linked_files` puts them under their names, and :func:`load_path` loads from there.

Importing this package imports no framework (nor numpy); each is imported inside the
function that needs it, and a missing one raises
:class:`~colabmodels.errors.MissingDependencyError` naming the pip extra.

Modules: :mod:`.sniff` (recognition), :mod:`.load`, :mod:`.save` (dispatch),
:mod:`.safety` (pickle global scans, zip checks), :mod:`.versions` (running-version floors),
:mod:`.arch` (state-dict fitting), :mod:`.keras_io`, :mod:`.tf_io`, :mod:`.torch_io`,
:mod:`.safetensors_io`, :mod:`.gensim_io`, :mod:`.onnx_io` (one per framework),
:mod:`.protobuf` (wire-format walking for ONNX and TensorFlow), :mod:`.paths` (temporary
names), :mod:`.names` (how messages name files).
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
