"""One interpreter factory for every TFLite runtime, with the project's op library loaded.

Runtimes are tried in order: ``ai-edge-litert`` (the maintained LiteRT wheel),
``tflite-runtime`` (the ``pi`` extra, for older boards), then ``tf.lite``. When the native
op library (``libtfcompress_ops.so``, built from ``converters/``) is present it is loaded
as a delegate that claims the project's custom ops (``Tfc*``); the stock XNNPACK delegate
still runs every builtin op.
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
from pathlib import Path

from tfcompress.errors import ModelFileError, TfcompressError

OPS_LIBRARY_NAME = "libtfcompress_ops.so"
OPS_LIBRARY_ENV_VAR = "TFCOMPRESS_OPS_LIBRARY"
CUSTOM_OP_PREFIX = "Tfc"
RUNTIMES = ("ai_edge_litert", "tflite_runtime", "tensorflow")
TFLITE_IDENTIFIER = b"TFL3"  # the flatbuffer file identifier, bytes 4..8 of every .tflite file
BUILD_HINT = "build it with `pip install -e .` (or `make setup`) in the tfcompress checkout"


def ops_library_path() -> str | None:
    """Path of the native op library, or ``None`` when it has not been built.

    ``$TFCOMPRESS_OPS_LIBRARY`` overrides the location (e.g. a cross-built library).
    The result can be passed to ``ai_edge_litert.interpreter.load_delegate``.
    """
    override = os.environ.get(OPS_LIBRARY_ENV_VAR)
    if override:
        return override if Path(override).is_file() else None
    candidate = Path(__file__).resolve().parent / "_native" / OPS_LIBRARY_NAME
    return str(candidate) if candidate.is_file() else None


def _runtime_module(name: str):
    if name == "ai_edge_litert":
        from ai_edge_litert import interpreter

        return interpreter
    if name == "tflite_runtime":
        from tflite_runtime import interpreter

        return interpreter
    import types

    import tensorflow as tf

    return types.SimpleNamespace(Interpreter=tf.lite.Interpreter, load_delegate=tf.lite.experimental.load_delegate)


def available_runtimes() -> list[str]:
    """The installed runtimes, in the order :func:`Interpreter` tries them."""
    found = []
    for name in RUNTIMES:
        try:
            _runtime_module(name)
        except ImportError:
            continue
        found.append(name)
    return found


def custom_op_names(model_content: bytes) -> list[str]:
    """Names of the custom ops a ``.tflite`` flatbuffer uses (empty for builtin-only models)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(model_content, 0)
    names = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i).CustomCode()
        if code:
            names.append(code.decode())
    return names


def _first_runtime(runtime: str | None):
    """The module of ``runtime``, else of the first installed of :data:`RUNTIMES` (importing no other).

    Raises:
        TfcompressError: it is not installed (none is).
    """
    for name in [runtime] if runtime else RUNTIMES:
        try:
            return _runtime_module(name)
        except ImportError:
            continue
    missing = f"TFLite runtime {runtime} is not installed" if runtime else "no TFLite runtime is installed"
    raise TfcompressError(f"{missing}: pip install ai-edge-litert")


def _bytes_needed(model_content: bytes) -> int:
    """How many bytes the flatbuffer's own offsets say the file has (at least).

    Reads the whole model with ai-edge-litert's generated reader; a read past the end (a cut
    file) is a ``struct.error`` naming the size it needed.
    """
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.ModelT.InitFromPackedBuf(model_content, 0)
    except struct.error as error:
        needed = re.search(r"at least (\d+) bytes", str(error))
        if needed is None:
            raise
        return int(needed.group(1))
    # Buffers of large models lie after the flatbuffer (offset, size).
    return max([len(model_content)] + [b.offset + b.size for b in model.buffers or [] if b.offset > 1])


def check_tflite_content(model_content: bytes, name: str) -> None:
    """Check that ``model_content`` is a whole ``.tflite`` flatbuffer, before a runtime reads it.

    Raises:
        ModelFileError: it is not a TFLite flatbuffer, or it is cut short (said in bytes).
    """
    if len(model_content) < 8 or model_content[4:8] != TFLITE_IDENTIFIER:
        raise ModelFileError(
            f"{name} is not a .tflite file ({len(model_content):,} bytes without the TFLite flatbuffer "
            f"identifier {TFLITE_IDENTIFIER.decode()} at byte 4)"
        )
    try:
        needed = _bytes_needed(model_content)
    except Exception as error:  # a damaged buffer can fail anywhere in the generated reader
        raise ModelFileError(f"{name} is not a valid .tflite file: its flatbuffer is damaged ({error})") from error
    if needed > len(model_content):
        raise ModelFileError(
            f"{name} is not a complete .tflite file: {len(model_content):,} of at least {needed:,} bytes "
            "(cut short while copying or downloading?)"
        )


def _library_op_names(path: str) -> list[str]:
    """The custom ops the op library at ``path`` provides (its ``tfc_op_names()``).

    Raises:
        TfcompressError: it cannot be loaded, or it is not a tfcompress op library.
    """
    try:
        library = ctypes.CDLL(path)
    except OSError as error:
        raise TfcompressError(f"the op library {path} cannot be loaded ({error}); {BUILD_HINT}") from error
    try:
        op_names = library.tfc_op_names
    except AttributeError as error:
        raise TfcompressError(f"{path} is not a tfcompress op library (no tfc_op_names); {BUILD_HINT}") from error
    op_names.restype = ctypes.c_char_p
    return op_names().decode().split(",")


def _check_ops_library(ours: list[str], library: str | None) -> None:
    """Check that the op library is there and provides every custom op in ``ours``.

    Raises:
        TfcompressError: it is missing, or built from another version (lacks an op).
    """
    needed = ", ".join(sorted(set(ours)))
    if library is None:
        override = os.environ.get(OPS_LIBRARY_ENV_VAR)
        where = f"{OPS_LIBRARY_NAME} is not built" + (
            f" ({OPS_LIBRARY_ENV_VAR}={override} does not exist)" if override else ""
        )
        raise TfcompressError(
            f"the model uses tfcompress custom ops ({needed}) but {where}; {BUILD_HINT}, "
            f"or set {OPS_LIBRARY_ENV_VAR} to a built {OPS_LIBRARY_NAME}"
        )
    provided = _library_op_names(library)
    missing = sorted(set(ours) - set(provided))
    if missing:
        raise TfcompressError(
            f"the model uses {', '.join(missing)}, which the op library {library} does not provide (it has "
            f"{', '.join(provided)}): it was built from another version of tfcompress; re{BUILD_HINT}"
        )


def Interpreter(  # noqa: N802 - a factory that reads like the class it returns
    model_path: str | os.PathLike | None = None,
    model_content: bytes | None = None,
    num_threads: int | None = None,
    runtime: str | None = None,
    load_ops: bool = True,
):
    """Create an interpreter for a ``.tflite`` model with the project's op library loaded.

    Args:
        model_path: the ``.tflite`` file (or give ``model_content``).
        model_content: the flatbuffer bytes.
        num_threads: threads for the builtin ops and for our kernels.
        runtime: force one of :data:`RUNTIMES`; by default the first installed.
        load_ops: load ``libtfcompress_ops.so`` when it is present.

    Returns:
        An interpreter with tensors allocated.

    Raises:
        ModelFileError: the file is missing, not a ``.tflite`` flatbuffer, or cut short.
        TfcompressError: no runtime is installed, or the model needs our custom ops and
            the op library has not been built or lacks one of them (another version).
    """
    if model_content is None:
        if model_path is None:
            raise TfcompressError("give model_path or model_content")
        path = Path(model_path)
        if not path.is_file():
            raise ModelFileError(f"model file {path} does not exist")
        model_content = path.read_bytes()
    check_tflite_content(model_content, str(model_path or "model"))
    module = _first_runtime(runtime)
    ours = [op for op in custom_op_names(model_content) if op.startswith(CUSTOM_OP_PREFIX)]
    delegates = []
    library = ops_library_path() if load_ops else None
    if ours and load_ops:
        _check_ops_library(ours, library)
    if library is not None and ours:
        options = {"num_threads": str(num_threads)} if num_threads else None
        delegates.append(module.load_delegate(library, options))
    try:
        interpreter = module.Interpreter(
            model_content=model_content, num_threads=num_threads, experimental_delegates=delegates or None
        )
        interpreter.allocate_tensors()
    except ValueError as error:
        raise ModelFileError(f"{model_path or 'model'} could not be loaded: {error}") from error
    return interpreter
