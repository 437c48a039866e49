"""Reading what the app needs from a ``.tflite`` flatbuffer, without TensorFlow.

The only question asked of the file before it is loaded is which custom ops it uses
(``OperatorCode.custom_code`` of ``Model.operator_codes``), to know whether the op library
must be loaded. ``ai_edge_litert`` ships the generated schema reader
(``schema_py_generated``); ``tflite-runtime`` does not, so a tiny bounds-checked reader of
the two tables involved is used there. Flatbuffer layout (flatbuffers.dev, "Internals"):
a table starts with an ``int32`` offset back to its vtable; the vtable holds ``uint16``
field offsets; strings and vectors are referenced by ``uint32`` offsets relative to where
the offset is stored, and start with a ``uint32`` length.
"""

from __future__ import annotations

import struct

from flowerpi.errors import AppError

FILE_IDENTIFIER = b"TFL3"
_MODEL_OPERATOR_CODES = 1  # field index in table Model (version, operator_codes, subgraphs, ...)
_OPERATOR_CODE_CUSTOM_CODE = 1  # field index in table OperatorCode (deprecated_builtin_code, custom_code, ...)


class _Reader:
    """Bounds-checked little-endian reads from a flatbuffer."""

    def __init__(self, data: bytes):
        self.data = data

    def _unpack(self, fmt: str, offset: int) -> int:
        size = struct.calcsize(fmt)
        if offset < 0 or offset + size > len(self.data):
            raise ValueError(f"offset {offset} is outside the {len(self.data)}-byte file")
        return struct.unpack_from(fmt, self.data, offset)[0]

    def indirect(self, offset: int) -> int:
        """The position a ``uint32`` offset stored at ``offset`` points to."""
        return offset + self._unpack("<I", offset)

    def field(self, table: int, index: int) -> int | None:
        """Position of field ``index`` of the table at ``table``, or ``None`` when absent."""
        vtable = table - self._unpack("<i", table)
        vtable_size = self._unpack("<H", vtable)
        entry = 4 + 2 * index
        if entry >= vtable_size:
            return None
        relative = self._unpack("<H", vtable + entry)
        return table + relative if relative else None

    def vector(self, offset: int) -> tuple[int, int]:
        """(start of the elements, length) of the vector referenced at ``offset``."""
        start = self.indirect(offset)
        return start + 4, self._unpack("<I", start)

    def string(self, offset: int) -> bytes:
        start, length = self.vector(offset)
        if start + length > len(self.data):
            raise ValueError("a string runs past the end of the file")
        return self.data[start : start + length]


def custom_op_names_minimal(model_content: bytes) -> list[str]:
    """Custom op names read with the tiny reader of this module (no generated code needed)."""
    reader = _Reader(model_content)
    model = reader.indirect(0)
    field = reader.field(model, _MODEL_OPERATOR_CODES)
    if field is None:
        return []
    start, count = reader.vector(field)
    names = []
    for i in range(count):
        code = reader.indirect(start + 4 * i)
        custom = reader.field(code, _OPERATOR_CODE_CUSTOM_CODE)
        if custom is not None:
            names.append(reader.string(custom).decode("utf-8"))
    return names


def custom_op_names_schema(model_content: bytes) -> list[str]:
    """Custom op names read with ai-edge-litert's generated schema reader."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(model_content, 0)
    names = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i).CustomCode()
        if code:
            names.append(code.decode("utf-8"))
    return names


def custom_op_names(model_content: bytes, source: str = "model") -> list[str]:
    """Names of the custom ops the model uses (``[]`` for a builtin-only model).

    Raises:
        AppError: the bytes are not a ``.tflite`` flatbuffer.
    """
    if len(model_content) < 8 or model_content[4:8] != FILE_IDENTIFIER:
        raise AppError(f"{source} is not a .tflite model (no TFL3 flatbuffer identifier)")
    try:
        try:
            return custom_op_names_schema(model_content)
        except ImportError:
            return custom_op_names_minimal(model_content)
    except Exception as error:  # a corrupt buffer can fail anywhere inside the reader
        raise AppError(f"{source} is a corrupt .tflite model: {error}") from error
