"""ctypes entry to the native PQ kernels of ``libtfcompress_ops.so``, outside any interpreter.

For tests and benchmarks: :func:`pq_dense` runs the lookup-table dense kernel
(``"reference"`` or an optimized variant: ``"avx512"``, ``"avx2"``, ``"scalar"``) on
packed codes and a float16 codebook, exactly as the ``TfcPQDense`` op does;
:func:`pq_decode` decodes a kernel as ``TfcPQDecode`` does (``[C_out, kh, kw, C_in]``).
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from tfcompress.errors import TfcompressError
from tfcompress.pq.packing import pack_codes

ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU6": 2}
_P = ctypes.c_void_p


@functools.lru_cache(maxsize=1)
def _library() -> ctypes.CDLL:
    from tfcompress.native import library

    lib = library()
    lib.tfc_pq_dense_variants.restype = ctypes.c_char_p
    lib.tfc_pq_dense.restype = ctypes.c_int
    lib.tfc_pq_dense.argtypes = [
        ctypes.c_char_p, _P, ctypes.c_int64, ctypes.c_int, ctypes.c_int, _P, ctypes.c_int64, _P,
        ctypes.c_int, ctypes.c_int, _P, ctypes.c_int, ctypes.c_int, ctypes.c_int, _P,
        ctypes.POINTER(ctypes.c_double), ctypes.c_char_p, ctypes.c_int,
    ]  # fmt: skip
    lib.tfc_pq_decode.restype = ctypes.c_int
    lib.tfc_pq_decode.argtypes = [
        _P, ctypes.c_int64, _P, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
        _P, ctypes.c_char_p, ctypes.c_int,
    ]  # fmt: skip
    return lib


def dense_variants() -> list[str]:
    """Optimized dense variants usable on this CPU, best first."""
    return _library().tfc_pq_dense_variants().decode().split(",")


def _ptr(array: np.ndarray) -> int:
    return array.ctypes.data


def pq_dense(
    x: np.ndarray,
    codes: np.ndarray,
    codebook: np.ndarray,
    bias: np.ndarray | None = None,
    variant: str = "reference",
    activation: str = "NONE",
    threads: int = 1,
    repeats: int = 1,
) -> tuple[np.ndarray, float]:
    """``act(x W + bias)`` with ``W`` = ``codebook[codes]`` (codes ``[C_in/d, C_out]``).

    The codebook is rounded to float16 and the codes bit-packed, as in the ``.tflite``.
    Returns the output and the median seconds per run over ``repeats`` runs.

    Raises:
        TfcompressError: the kernel rejected the arguments.
    """
    x = np.ascontiguousarray(x, np.float32)
    blocks, out_features = codes.shape
    n_centroids, block_size = codebook.shape
    in_features = blocks * block_size
    if x.shape[-1] != in_features:
        raise TfcompressError(f"x has {x.shape[-1]} features, the codes need {in_features}")
    rows = int(np.prod(x.shape[:-1]))
    packed = pack_codes(codes, n_centroids)
    half = np.ascontiguousarray(codebook, np.float16).view(np.uint16)
    bias = np.ascontiguousarray(np.zeros(out_features) if bias is None else bias, np.float32)
    output = np.empty((*x.shape[:-1], out_features), np.float32)
    seconds = ctypes.c_double()
    error = ctypes.create_string_buffer(512)
    status = _library().tfc_pq_dense(
        variant.encode(), _ptr(x), rows, in_features, out_features, _ptr(packed), packed.size, _ptr(half),
        n_centroids, block_size, _ptr(bias), ACTIVATIONS[activation], threads, repeats, _ptr(output),
        ctypes.byref(seconds), error, len(error),
    )  # fmt: skip
    if status != 0:
        raise TfcompressError(f"pq_dense ({variant}): {error.value.decode()}")
    return output, seconds.value


def pq_decode(codes: np.ndarray, codebook: np.ndarray, kernel_shape: tuple[int, int, int, int]) -> np.ndarray:
    """The ``[C_out, kh, kw, C_in]`` kernel ``TfcPQDecode`` produces from ``codes`` and ``codebook``."""
    kh, kw, cin, cout = kernel_shape
    n_centroids, block_size = codebook.shape
    packed = pack_codes(codes, n_centroids)
    half = np.ascontiguousarray(codebook, np.float16).view(np.uint16)
    output = np.empty((cout, kh, kw, cin), np.float32)
    error = ctypes.create_string_buffer(512)
    status = _library().tfc_pq_decode(
        _ptr(packed), packed.size, _ptr(half), n_centroids, block_size, kh, kw, cin, cout, _ptr(output), error,
        len(error),
    )  # fmt: skip
    if status != 0:
        raise TfcompressError(f"pq_decode: {error.value.decode()}")
    return output
