"""Model formats: recognise, load safely, save.

::

    info = sniff_format(path)          # FormatInfo(name, framework, executes_code, details)
    model = load_path(path, info=info, trust=False, arch=None)
    saved = save_object(model, dest_dir)   # SavedFiles(format, framework, ..., files, extra)

Detection reads bytes and structure, never file names (see :mod:`.sniff`); loading refuses
formats that would run code from the file unless ``trust=True`` (see :mod:`.load`); saving
picks the format the framework recommends (see :mod:`.save`). Format names are listed in
:data:`FORMAT_NAMES` and described in :mod:`.info`.

Importing this package imports no framework (nor numpy); each is imported inside the
function that needs it, and a missing one raises
:class:`~colabmodels.errors.MissingDependencyError` naming the pip extra.

Modules: :mod:`.sniff` (recognition), :mod:`.load`, :mod:`.save` (dispatch),
:mod:`.safety` (pickle global scans, zip checks), :mod:`.arch` (state-dict fitting),
:mod:`.keras_io`, :mod:`.tf_io`, :mod:`.torch_io`, :mod:`.safetensors_io`,
:mod:`.gensim_io`, :mod:`.onnx_io` (one per framework), :mod:`.paths` (temporary names).
"""

from __future__ import annotations

from .info import FORMAT_NAMES, FormatInfo, SavedFiles
from .load import load_path
from .save import save_object
from .sniff import sniff_format

__all__ = ["FORMAT_NAMES", "FormatInfo", "SavedFiles", "load_path", "save_object", "sniff_format"]
