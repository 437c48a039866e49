"""ctypes entry to the native Deep Compression decoder (``tfc_sparse_decode`` in ``libtfcompress_ops.so``).

The same C++ code runs inside the ``TfcSparseDecode`` op (when the delegate is applied); the tests compare it
with the pure-Python :func:`tfcompress.pruning.deep_compression.decode_kernel` bit for bit.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from tfcompress.errors import TfcompressError
from tfcompress.pruning.deep_compression import EncodedKernel
from tfcompress.runtime import OPS_LIBRARY_ENV_VAR, OPS_LIBRARY_NAME, ops_library_path


@functools.lru_cache(maxsize=1)
def _decoder():
    path = ops_library_path()
    if path is None:
        raise TfcompressError(f"{OPS_LIBRARY_NAME} is not built; run `pip install -e .` or set {OPS_LIBRARY_ENV_VAR}")
    lib = ctypes.CDLL(path)
    if not hasattr(lib, "tfc_sparse_decode"):
        raise TfcompressError(f"{path} has no Deep Compression decoder; rebuild it from converters/")
    fn = lib.tfc_sparse_decode
    fn.restype = ctypes.c_int
    fn.argtypes = [
        ctypes.c_void_p,
        ctypes.c_longlong,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_longlong,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_longlong,
        ctypes.c_void_p,
        ctypes.c_longlong,
        ctypes.c_char_p,
        ctypes.c_int,
    ]
    return fn


def sparse_decode(encoded: EncodedKernel) -> np.ndarray:
    """Decode ``encoded`` with the native reference decoder (float32, ``encoded.shape``).

    Raises:
        TfcompressError: the library is missing, or the streams are malformed.
    """
    gaps = np.frombuffer(encoded.gaps.data or b"\0", np.uint8)
    indices = np.frombuffer(encoded.indices.data or b"\0", np.uint8)
    gap_lengths = np.ascontiguousarray(encoded.gaps.lengths, np.uint8)
    index_lengths = np.ascontiguousarray(encoded.indices.lengths, np.uint8)
    codebook = np.ascontiguousarray(encoded.codebook, np.float32)
    out = np.empty(int(np.prod(encoded.shape)), np.float32)
    error = ctypes.create_string_buffer(512)
    status = _decoder()(
        gaps.ctypes.data,
        len(encoded.gaps.data),
        gap_lengths.ctypes.data,
        encoded.gap_bits,
        indices.ctypes.data,
        len(encoded.indices.data),
        index_lengths.ctypes.data,
        encoded.bits,
        codebook.ctypes.data,
        encoded.gaps.count,
        out.ctypes.data,
        out.size,
        error,
        len(error),
    )
    if status != 0:
        raise TfcompressError(f"sparse decode: {error.value.decode()}")
    return out.reshape(encoded.shape)
