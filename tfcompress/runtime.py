"""One interpreter factory for every TFLite runtime, with the project's op library loaded.

Runtimes are tried in order: ``ai-edge-litert`` (the maintained LiteRT wheel),
``tflite-runtime`` (the ``pi`` extra, for older boards), then ``tf.lite``. When the native
op library (``libtfcompress_ops.so``, built from ``converters/``) is present it is loaded
as a delegate that claims the project's custom ops (``Tfc*``); the stock XNNPACK delegate
still runs every builtin op.
"""

from __future__ import annotations

import os
from pathlib import Path

from tfcompress.errors import ModelFileError, TfcompressError

OPS_LIBRARY_NAME = "libtfcompress_ops.so"
OPS_LIBRARY_ENV_VAR = "TFCOMPRESS_OPS_LIBRARY"
CUSTOM_OP_PREFIX = "Tfc"
RUNTIMES = ("ai_edge_litert", "tflite_runtime", "tensorflow")


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
        ModelFileError: the file is missing or not a valid ``.tflite`` flatbuffer.
        TfcompressError: no runtime is installed, or the model needs our custom ops and
            the op library has not been built.
    """
    if model_content is None:
        if model_path is None:
            raise TfcompressError("give model_path or model_content")
        path = Path(model_path)
        if not path.is_file():
            raise ModelFileError(f"model file {path} does not exist")
        model_content = path.read_bytes()
    names = [runtime] if runtime else available_runtimes()
    if not names:
        raise TfcompressError("no TFLite runtime installed: pip install ai-edge-litert")
    module = _runtime_module(names[0])
    try:
        ours = [op for op in custom_op_names(model_content) if op.startswith(CUSTOM_OP_PREFIX)]
    except Exception as error:  # a corrupt buffer can fail anywhere in the generated reader
        raise ModelFileError(f"{model_path or 'model'} is not a valid .tflite file: {error}") from error
    delegates = []
    library = ops_library_path() if load_ops else None
    if ours and library is None:
        raise TfcompressError(
            f"the model uses tfcompress custom ops ({', '.join(sorted(set(ours)))}) but the op "
            f"library {OPS_LIBRARY_NAME} is not built; reinstall tfcompress with its native build "
            f"or set {OPS_LIBRARY_ENV_VAR}"
        )
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
