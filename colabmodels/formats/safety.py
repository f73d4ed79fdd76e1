"""Look inside untrusted files without running them.

Two kinds of inspection live here:

* **Zip archives** (``.keras``, torch zips, TorchScript, ``.pt2``): ``open_zip`` reads the
  central directory only and refuses archives with absolute or ``..`` member paths, and
  archives whose stated uncompressed size is absurd (a zip bomb), before anyone reads a member.
* **Pickles** (torch, gensim): ``scan_pickle`` walks the opcodes with
  ``pickletools.genops`` and an emulated stack, so it can name every global the pickle
  would import (``GLOBAL``, ``INST`` and ``STACK_GLOBAL``, including names fetched from the
  memo) without executing anything. ``inert_unpickle`` rebuilds a pickle's structure with
  every global replaced by an inert stand-in, to read attributes such as gensim's list of
  sidecar arrays.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
import pickletools
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import UnsafeArchiveError

__all__ = [
    "MAX_MEMBER_RATIO",
    "MAX_TOTAL_UNCOMPRESSED",
    "InertObject",
    "PickleScan",
    "check_zip",
    "inert_unpickle",
    "is_numpy_safe_global",
    "is_torch_safe_global",
    "open_zip",
    "read_member",
    "scan_pickle",
    "significant_globals",
]

MAX_TOTAL_UNCOMPRESSED = 64 * 1024**3
"""Archives that claim more than this many uncompressed bytes in total are refused."""

MAX_MEMBER_RATIO = 1000
"""A member larger than ``RATIO_MIN_BYTES`` may not claim to expand more than this."""

RATIO_MIN_BYTES = 64 * 1024**2
MAX_MEMBERS = 1_000_000

_DRIVE = re.compile(r"^[A-Za-z]:")


# --------------------------------------------------------------------------- zip archives


def check_zip(zf: zipfile.ZipFile, *, source: str = "archive") -> list[str]:
    """Refuse an archive that could escape its folder or expand absurdly.

    Only the central directory (already read by ``zipfile.ZipFile``) is looked at;
    nothing is decompressed.

    Args:
        zf: an open archive.
        source: how to name the archive in error messages.

    Returns:
        The member names, in archive order.

    Raises:
        UnsafeArchiveError: a member path is absolute or contains ``..``; there are more than
            a million members; the stated uncompressed sizes add up to more than
            ``MAX_TOTAL_UNCOMPRESSED``; or a large member claims a compression ratio
            above ``MAX_MEMBER_RATIO``.
    """
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise UnsafeArchiveError(f"{source}: refusing a zip with {len(infos)} members")
    total = 0
    names = []
    for info in infos:
        name = info.filename
        norm = name.replace("\\", "/")
        if norm.startswith("/") or _DRIVE.match(norm):
            raise UnsafeArchiveError(
                f"{source}: refusing a zip with an absolute member path {name!r}"
            )
        if ".." in norm.split("/"):
            raise UnsafeArchiveError(f"{source}: refusing a zip with a '..' member path {name!r}")
        size = info.file_size
        total += size
        if size > RATIO_MIN_BYTES and size > MAX_MEMBER_RATIO * max(info.compress_size, 1):
            raise UnsafeArchiveError(
                f"{source}: refusing a zip whose member {name!r} claims {size} bytes from "
                f"{info.compress_size} compressed bytes (more than {MAX_MEMBER_RATIO}:1)"
            )
        names.append(name)
    if total > MAX_TOTAL_UNCOMPRESSED:
        raise UnsafeArchiveError(
            f"{source}: refusing a zip that claims {total} uncompressed bytes "
            f"(more than {MAX_TOTAL_UNCOMPRESSED})"
        )
    return names


def open_zip(path: str | Path, *, source: str | None = None) -> zipfile.ZipFile:
    """Open a zip archive after ``check_zip`` accepted it.

    Args:
        path: the archive.
        source: how to name it in error messages (default: ``path``).

    Raises:
        UnsafeArchiveError: see ``check_zip``.
        zipfile.BadZipFile: not a readable zip.
    """
    zf = zipfile.ZipFile(path)
    try:
        check_zip(zf, source=source or str(path))
    except BaseException:
        zf.close()
        raise
    return zf


def read_member(zf: zipfile.ZipFile, name: str, *, limit: int = 64 * 1024**2) -> bytes:
    """Read one member, refusing to inflate more than ``limit`` bytes.

    Raises:
        UnsafeArchiveError: the member is larger than ``limit``.
    """
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise UnsafeArchiveError(f"zip member {name!r} is {info.file_size} bytes (limit {limit})")
    with zf.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise UnsafeArchiveError(f"zip member {name!r} inflates past {limit} bytes")
    return data


# --------------------------------------------------------------------------- pickle scanning


class _Unknown:
    """Any non-string value on the emulated stack."""


_UNKNOWN = _Unknown()
_STRING_OPS = {
    "STRING",
    "BINSTRING",
    "SHORT_BINSTRING",
    "UNICODE",
    "SHORT_BINUNICODE",
    "BINUNICODE",
    "BINUNICODE8",
}


@dataclass
class PickleScan:
    """What ``scan_pickle`` found in one pickle.

    Attributes:
        globals: every global the pickle imports, as ``module.qualname``, in first-use order.
            Names that could not be resolved statically appear as ``<...>`` and must be
            treated as unsafe.
        protocol: the protocol from the PROTO opcode (0 when absent).
        first_value: the argument of the first opcode after PROTO (used to recognise
            torch's legacy magic number).
        opcodes: how many opcodes were read.
        error: why scanning stopped early (malformed pickle), or None.
    """

    globals: list[str] = field(default_factory=list)
    protocol: int = 0
    first_value: Any = None
    opcodes: int = 0
    error: str | None = None


def scan_pickle(data: bytes | IO[bytes]) -> PickleScan:
    """Name every global one pickle would import, without unpickling it.

    Reads exactly one pickle (up to its STOP opcode); a stream is left positioned right after
    it, so consecutive pickles can be scanned one after another.

    ``GLOBAL``/``INST`` carry their names inline. ``STACK_GLOBAL`` takes module and name from
    the stack, so the stack (with MARKs and the memo) is emulated from each opcode's declared
    stack effect; strings are tracked, everything else is an opaque placeholder. A
    ``STACK_GLOBAL`` whose operands are not known strings, and the copyreg extension opcodes,
    are reported as ``<...>`` entries.

    Args:
        data: the pickle bytes, or a binary stream positioned at its start.

    Returns:
        A ``PickleScan``; ``error`` is set when the bytes are not a well-formed pickle.
    """
    stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    scan = PickleScan()
    seen: set[str] = set()

    def add(name: str) -> None:
        if name not in seen:
            seen.add(name)
            scan.globals.append(name)

    stack: list[Any] = []
    marks: list[int] = []  # stack heights at each MARK, like the unpickler's metastack
    fence = 0  # nothing below the latest MARK may be popped
    memo: dict[Any, Any] = {}
    got_first = False
    try:
        for op, arg, _pos in pickletools.genops(stream):
            scan.opcodes += 1
            name = op.name
            if name == "PROTO":
                scan.protocol = arg if isinstance(arg, int) else 0
            elif name != "FRAME" and not got_first:
                scan.first_value = arg
                got_first = True
            if name in ("GLOBAL", "INST"):
                module, _, qual = str(arg).partition(" ")
                add(_canonical(module, qual, scan.protocol))
            elif name == "STACK_GLOBAL":
                if (
                    len(stack) - 2 >= fence
                    and isinstance(stack[-1], str)
                    and isinstance(stack[-2], str)
                ):
                    add(_canonical(stack[-2], stack[-1], scan.protocol))
                else:
                    add("<STACK_GLOBAL with computed names>")
            elif name in ("EXT1", "EXT2", "EXT4"):
                add(f"<copyreg extension {arg}>")

            if name == "MARK":
                marks.append(len(stack))
                fence = len(stack)
                continue
            npop, mark_index, pushed = _EFFECTS[name]
            if mark_index is not None or (name == "POP" and len(stack) == fence and marks):
                if not marks:
                    raise ValueError(f"{name} without a MARK")
                del stack[marks.pop() :]
                fence = marks[-1] if marks else 0
                npop = mark_index or 0
            if name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                if len(stack) <= fence:
                    raise ValueError("memo store without a value on the stack")
                memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
                continue  # the stack is unchanged
            if name in ("GET", "BINGET", "LONG_BINGET"):
                pushed = (memo.get(arg, _UNKNOWN),)
            elif name in _STRING_OPS:
                pushed = (arg if isinstance(arg, str) else str(arg),)
            elif name == "DUP":
                if len(stack) <= fence:
                    raise ValueError("DUP on an empty stack")
                npop, pushed = 0, (stack[-1],)
            if npop:
                if len(stack) - npop < fence:
                    raise ValueError(f"{name} pops {npop} items past the stack or a MARK")
                del stack[-npop:]
            stack.extend(pushed)
    except Exception as e:  # malformed pickles raise ValueError, EOFError, struct.error...
        scan.error = f"{type(e).__name__}: {e}"
    return scan


def _effects() -> dict[str, tuple[int, int | None, tuple[Any, ...]]]:
    """Per opcode: items popped, where a MARK sits among them, placeholders pushed."""
    table = {}
    for op in pickletools.opcodes:
        before = op.stack_before
        mark = before.index(pickletools.markobject) if pickletools.markobject in before else None
        table[op.name] = (len(before), mark, (_UNKNOWN,) * len(op.stack_after))
    return table


_EFFECTS = _effects()


def _canonical(module: str, qualname: str, protocol: int = 3) -> str:
    """``module.qualname`` after the renames ``pickle`` applies to protocol 0-2 pickles
    (``__builtin__.xrange`` -> ``builtins.range``, ``copy_reg`` -> ``copyreg``...)."""
    if protocol < 3:
        if (module, qualname) in _compat_pickle.NAME_MAPPING:
            module, qualname = _compat_pickle.NAME_MAPPING[(module, qualname)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{qualname}"


# torch.load(weights_only=True) accepts these (torch._weights_only_unpickler._get_allowed_globals
# in torch 2.x); kept as data so sniffing never imports torch. Loading still goes through
# weights_only=True, which has the last word.
_TORCH_SAFE_EXACT = frozenset(
    {
        "collections.OrderedDict",
        "collections.Counter",
        "torch.nn.parameter.Parameter",
        "torch.serialization._get_layout",
        "torch.Size",
        "torch.Tensor",
        "torch.device",
        "_codecs.encode",
        "builtins.bytearray",
        "builtins.set",
        "builtins.complex",
        "torch.storage.TypedStorage",
        "torch.storage.UntypedStorage",
        "torch._tensor._rebuild_from_type_v2",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._utils._rebuild_qtensor",
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_sparse_tensor",
        "torch._utils._rebuild_meta_tensor_no_storage",
        "torch._utils._rebuild_nested_tensor",
        "torch._utils._rebuild_wrapper_subclass",
        "torch._utils._rebuild_device_tensor_from_numpy",
        "torch._utils._rebuild_device_tensor_from_cpu_tensor",
        "torch.per_tensor_affine",
        "torch.per_tensor_symmetric",
        "torch.per_channel_affine",
        "torch.per_channel_symmetric",
        "torch.per_channel_affine_float_qparams",
    }
)
_TORCH_SAFE_PATTERN = re.compile(
    r"^torch\.(?:cuda\.)?(?:sparse\.)?[A-Z][A-Za-z0-9]*(?:Storage|Tensor)$"
    r"|^torch\.(?:bool|bfloat16|(?:u?int|complex|bits|q?u?int)\d+(?:x\d+)?|float\d+(?:_[a-z0-9]+)*)$"
)


# numpy scalars, arrays and dtypes (common in checkpoint dicts: ``"best_acc": np.float64``):
# rebuilding them runs no stored code; load_torch allowlists them for weights_only=True.
_NUMPY_SAFE_PATTERN = re.compile(
    r"^numpy\.(?:_core|core)\.multiarray\.(?:scalar|_reconstruct)$"
    r"|^numpy\.(?:dtype|ndarray)$|^numpy\.dtypes\.\w+DType$"
)


def is_numpy_safe_global(name: str) -> bool:
    """Whether ``name`` is a numpy scalar/array/dtype rebuild colabmodels allows in state dicts."""
    return bool(_NUMPY_SAFE_PATTERN.match(name))


def is_torch_safe_global(name: str) -> bool:
    """Whether a ``torch.save`` pickle may name this global and still be a state dict.

    True for what ``torch.load(weights_only=True)`` accepts by default, and for numpy
    scalars, arrays and dtypes (``is_numpy_safe_global``), which
    ``load_torch`` adds to ``weights_only``'s allowlist.
    """
    return (
        name in _TORCH_SAFE_EXACT
        or bool(_TORCH_SAFE_PATTERN.match(name))
        or is_numpy_safe_global(name)
    )


# Plain containers and object-rebuilding helpers: they build data and call no code of their
# own (the classes they are handed are globals of their own, listed separately).
_PLAIN_GLOBALS = frozenset(
    {
        "builtins.object",
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.frozenset",
        "builtins.slice",
        "collections.defaultdict",
        "collections.deque",
        "copyreg._reconstructor",
        "copyreg.__newobj__",
        "builtins.int",
        "builtins.float",
        "builtins.complex",
        "builtins.bool",
        "builtins.str",
        "builtins.bytes",
        "builtins.bytearray",
        "builtins.range",
        "builtins.hash",
    }
)
# numpy's random-state rebuilders (a pickled RandomState / Generator and its bit generator)
_NUMPY_RANDOM_STATE = re.compile(
    r"^numpy\.random\.(?:_pickle\.__\w+_ctor|_mt19937\.MT19937|_pcg64\.PCG64(?:DXSM)?"
    r"|_philox\.Philox|_sfc64\.SFC64|mtrand\.RandomState|_generator\.Generator)$"
)


def significant_globals(names: Iterable[str]) -> list[str]:
    """The globals worth naming to a user deciding on ``trust=True``.

    Leaves out what only rebuilds data: numpy arrays, scalars, dtypes and random states, torch
    tensors and storages, builtin scalars, plain containers (``collections.OrderedDict``, ``defaultdict``...) and
    ``copyreg`` helpers; keeps the classes and functions the pickle would import and call.
    Unresolvable names (``<...>``) are always kept.
    """
    return [
        n
        for n in names
        if n.startswith("<")
        or not (n in _PLAIN_GLOBALS or is_torch_safe_global(n) or _NUMPY_RANDOM_STATE.match(n))
    ]


# --------------------------------------------------------------------------- inert unpickling


class InertObject:
    """Stands in for any object a pickle would build; runs no code of the pickle's classes.

    Attributes:
        args: positional arguments the pickle passed (REDUCE / NEWOBJ).
        kwargs: keyword arguments (NEWOBJ_EX).
        state: what BUILD passed (usually the instance ``__dict__``).
        items: SETITEM(S) pairs, for dict-like objects.
        list_items: APPEND(S)/ADDITEMS values, for list- and set-like objects.
    """

    global_name = "<inert>"
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    state: Any
    items: dict[Any, Any]
    list_items: list[Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> InertObject:
        self = object.__new__(cls)
        self.args = args
        self.kwargs = kwargs
        self.state = None
        self.items = {}
        self.list_items = []
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.list_items.append(value)

    def extend(self, values: Iterable[Any]) -> None:
        self.list_items.extend(values)

    def add(self, value: Any) -> None:
        self.list_items.append(value)

    def __call__(self, *args: Any, **kwargs: Any) -> InertObject:
        # e.g. getattr(cls, "method") rebuilt inertly, then called by REDUCE
        result = InertObject(*args, **kwargs)
        result.global_name = f"{self.class_name()}(...)"
        return result

    def attributes(self) -> dict[str, Any]:
        """The instance attributes the pickle set (BUILD state, slot state merged in)."""
        state = self.state
        if isinstance(state, tuple) and len(state) == 2:
            merged: dict[str, Any] = {}
            for part in state:
                if isinstance(part, dict):
                    merged.update(part)
            return merged
        if isinstance(state, dict):
            return state
        # copyreg._reconstructor(cls, base, state) with the state in args
        if self.global_name == "copyreg._reconstructor" and len(self.args) == 3:
            return self.args[2] if isinstance(self.args[2], dict) else {}
        return {}

    def class_name(self) -> str:
        """The global this object stands for (the real class for ``copyreg`` helpers)."""
        if self.global_name in ("copyreg._reconstructor", "copyreg.__newobj__") and self.args:
            first = self.args[0]
            if isinstance(first, type) and issubclass(first, InertObject):
                return first.global_name
        return self.global_name

    def __repr__(self) -> str:
        return f"<inert {self.class_name()}>"


class _InertUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file, encoding="latin1")
        self._classes: dict[str, type[InertObject]] = {}

    def find_class(self, module: str, name: str) -> Any:
        key = _canonical(module, name, 0)
        cls = self._classes.get(key)
        if cls is None:
            cls = type(name.rsplit(".", 1)[-1], (InertObject,), {"global_name": key})
            self._classes[key] = cls
        return cls

    def persistent_load(self, pid: Any) -> Any:
        return InertObject(pid)


def inert_unpickle(stream: IO[bytes]) -> Any:
    """Rebuild a pickle's object tree with every global replaced by an ``InertObject``.

    No function or class named by the pickle is imported or called: ``find_class`` hands
    out fresh ``InertObject`` subclasses that only record their arguments and state.
    Built-in containers and scalars come back as themselves.

    Raises:
        pickle.UnpicklingError: malformed pickle (and anything ``pickle`` raises on bad input).
    """
    return _InertUnpickler(stream).load()
