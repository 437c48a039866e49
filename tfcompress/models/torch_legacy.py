"""Read a PyTorch checkpoint in the legacy (non-zip) format into numpy arrays, without torch.

``torch.save(obj, f, _use_new_zipfile_serialization=False)`` writes, one after another:

1. three pickles: a magic number, the protocol version (1001) and a dict of system facts
   (``little_endian``, type sizes);
2. a pickle of the object graph (typically an ``OrderedDict`` of names to tensors), in which each
   tensor is a call to ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``
   and each storage a *persistent id* ``("storage", torch.FloatStorage, key, device, numel, view)``;
3. a pickle of the list of storage keys, in the order their data follow;
4. for each storage: its element count (int64) and its raw bytes.

:func:`load_legacy_checkpoint` unpickles step 2 with a restricted :class:`pickle.Unpickler` that
maps the few torch globals a state dict needs to placeholders (any other global is refused, so a
checkpoint cannot run code), reads the storages of step 4 with numpy, then replaces each
placeholder by an array built from its storage, offset, size and strides.

>>> from tfcompress.models.torch_legacy import load_legacy_checkpoint
>>> weights = load_legacy_checkpoint("efficientnet-lite0.pth")  # doctest: +SKIP
>>> weights["_conv_stem.weight"].shape  # doctest: +SKIP
(32, 3, 3, 3)
"""

from __future__ import annotations

import collections
import os
import pickle
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from tfcompress.errors import TfcompressError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

#: torch storage class name -> numpy dtype of its elements (byte order set from the file's header).
STORAGE_DTYPES: dict[str, str] = {
    "DoubleStorage": "f8",
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class CheckpointError(TfcompressError):
    """The file is not a legacy PyTorch checkpoint this reader understands."""


@dataclass(frozen=True)
class _StorageType:
    name: str


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: str
    numel: int


@dataclass(frozen=True)
class _PendingTensor:
    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: _StorageRef, offset: int, size: tuple, stride: tuple, *_: Any) -> _PendingTensor:
    """Stands for ``torch._utils._rebuild_tensor(_v2)``; extra arguments (requires_grad, hooks) are dropped."""
    return _PendingTensor(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data: _PendingTensor, *_: Any) -> _PendingTensor:
    """Stands for ``torch._utils._rebuild_parameter``: a parameter is its data."""
    return data


_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _Unpickler(pickle.Unpickler):
    """Resolves only the globals of :data:`_GLOBALS`; storages become :class:`_StorageRef`."""

    def __init__(self, file: BinaryIO, byte_order: str):
        super().__init__(file)
        self.byte_order = byte_order

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(f"checkpoint refers to {module}.{name}, which this reader does not load") from None

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise CheckpointError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _device, numel, view = pid
        if view is not None:
            raise CheckpointError(f"storage {key} is a view of another storage, which this reader does not support")
        return _StorageRef(str(key), self.byte_order + STORAGE_DTYPES[storage_type.name], int(numel))


def _materialize(obj: Any, storages: dict[str, np.ndarray]) -> Any:
    """Replace every :class:`_PendingTensor` inside dicts, lists and tuples by its numpy array."""
    if isinstance(obj, _PendingTensor):
        data = storages[obj.storage.key]
        if len(obj.size) != len(obj.stride):
            raise CheckpointError(f"tensor of size {obj.size} has strides {obj.stride}")
        last = obj.offset + sum((n - 1) * s for n, s in zip(obj.size, obj.stride, strict=True))
        if obj.offset < 0 or min(obj.stride, default=0) < 0 or (0 not in obj.size and last >= data.size):
            raise CheckpointError(f"tensor of size {obj.size} runs past its storage {obj.storage.key}")
        if 0 in obj.size:
            return np.zeros(obj.size, data.dtype)
        strides = tuple(s * data.itemsize for s in obj.stride)
        view = np.lib.stride_tricks.as_strided(data[obj.offset :], shape=obj.size, strides=strides)
        return np.array(view, dtype=data.dtype.newbyteorder("="))
    if isinstance(obj, dict):
        return obj.__class__((k, _materialize(v, storages)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return obj.__class__(_materialize(v, storages) for v in obj)
    return obj


def load_legacy_checkpoint(path: str | os.PathLike) -> Any:
    """The object saved in the legacy PyTorch file ``path``, with every tensor as a numpy array.

    A state dict comes back as an ``OrderedDict`` of names to arrays in torch's layout (a conv
    weight is ``(out, in, kh, kw)``).

    Raises:
        CheckpointError: the file is a zip-format checkpoint, is not a PyTorch file, is truncated,
            or holds objects other than tensors and plain containers.
    """
    with open(path, "rb") as file:
        if file.read(2) == b"PK":
            raise CheckpointError(f"{path} is a zip-format PyTorch checkpoint; only the legacy format is read")
        file.seek(0)
        try:
            magic = pickle.load(file)
            if magic != LEGACY_MAGIC:
                raise CheckpointError(f"{path} is not a legacy PyTorch checkpoint (magic number {magic!r})")
            protocol = pickle.load(file)
            if protocol != LEGACY_PROTOCOL:
                raise CheckpointError(f"{path}: unsupported protocol version {protocol!r}")
            system = pickle.load(file)
            byte_order = "<" if system.get("little_endian", True) else ">"
            graph = _Unpickler(file, byte_order).load()
            keys = pickle.load(file)
        except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as error:
            raise CheckpointError(f"{path} is not a readable legacy PyTorch checkpoint: {error}") from error
        refs = _storage_refs(graph)
        storages = {}
        for key in keys:
            if key not in refs:
                raise CheckpointError(f"{path}: storage {key} is listed but no tensor uses it")
            count = np.frombuffer(file.read(8), "<i8")
            dtype = np.dtype(refs[key].dtype)
            raw = file.read(refs[key].numel * dtype.itemsize)
            if count.size != 1 or int(count[0]) != refs[key].numel or len(raw) != refs[key].numel * dtype.itemsize:
                raise CheckpointError(f"{path} is truncated or corrupt at storage {key}")
            storages[key] = np.frombuffer(raw, dtype)
    missing = set(refs) - set(storages)
    if missing:
        raise CheckpointError(f"{path}: storages {sorted(missing)} have no data")
    return _materialize(graph, storages)


def _storage_refs(obj: Any) -> dict[str, _StorageRef]:
    """Every storage referred to inside ``obj``, by key."""
    if isinstance(obj, _PendingTensor):
        return {obj.storage.key: obj.storage}
    items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()
    found: dict[str, _StorageRef] = {}
    for item in items:
        found.update(_storage_refs(item))
    return found
