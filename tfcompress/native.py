"""Python side of the native op library: bit-packing of signs, and a ctypes entry to the kernels.

The ``.tflite`` files store binary weights bit-packed: for a kernel ``W[..., C]`` (float
latent weights, or anything whose sign is meant), bit ``b`` of int32 word ``j`` of a row
is set when ``W[..., 32 j + b] < 0`` (``sign(0) = +1``, the convention of every sign
quantizer), so a binary weight costs 1 bit instead of 32 (Rastegari et al. 2016,
"XNOR-Net"). :func:`pack_signs` writes that layout.

:func:`binary_conv2d` runs one binary convolution with a named kernel of
``libtfcompress_ops.so`` (``"reference"``, ``"avx512"``, ``"avx2"``, ``"neon"``,
``"scalar"`` or ``"auto"``), outside any TFLite interpreter: the tests compare every
optimized kernel with the reference this way, and the Keras layers with both::

    y = act(multiplier * (C_valid - 2 popcount(sign_bits(x) XOR W_bits) + pad) + bias)
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from tfcompress.errors import TfcompressError
from tfcompress.runtime import OPS_LIBRARY_ENV_VAR, OPS_LIBRARY_NAME, ops_library_path

ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU6": 2}
PADDINGS = {"VALID": 0, "SAME": 1}


def pack_signs(values: np.ndarray) -> np.ndarray:
    """Bit-pack the signs of ``values`` along the last axis into int32 words.

    Args:
        values: array ``[..., C]``; a value is "negative" when ``not value >= 0``.

    Returns:
        int32 array ``[..., ceil(C / 32)]``; unused high bits of the last word are 0.
    """
    values = np.asarray(values)
    channels = values.shape[-1]
    words = -(-channels // 32)
    negative = ~(values >= 0)
    padded = np.zeros((*values.shape[:-1], words * 32), dtype=bool)
    padded[..., :channels] = negative
    packed = np.packbits(padded, axis=-1, bitorder="little")
    return np.ascontiguousarray(packed).view("<i4").astype(np.int32, copy=False)


def unpack_signs(packed: np.ndarray, channels: int) -> np.ndarray:
    """Inverse of :func:`pack_signs`: ``+1.0`` / ``-1.0`` float32 array ``[..., channels]``."""
    packed = np.ascontiguousarray(np.asarray(packed, dtype="<i4"))
    bits = np.unpackbits(packed.view(np.uint8), axis=-1, bitorder="little")[..., :channels]
    return np.where(bits == 1, -1.0, 1.0).astype(np.float32)


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    """The loaded op library.

    Raises:
        TfcompressError: it has not been built.
    """
    path = ops_library_path()
    if path is None:
        raise TfcompressError(
            f"{OPS_LIBRARY_NAME} is not built; run `pip install -e .` (builds converters/) or set {OPS_LIBRARY_ENV_VAR}"
        )
    lib = ctypes.CDLL(path)
    for name in ("tfc_kernels", "tfc_default_kernel", "tfc_op_names"):
        getattr(lib, name).restype = ctypes.c_char_p
    lib.tfc_binary_conv2d_io.restype = ctypes.c_int
    lib.tfc_binary_conv2d_io.argtypes = [
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_longlong,
        ctypes.c_char_p,
        ctypes.c_int,
    ]
    lib.tfc_conv_output_size.restype = ctypes.c_int
    lib.tfc_conv_output_size.argtypes = [
        ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_char_p,
        ctypes.c_int,
    ]
    return lib


def kernels() -> list[str]:
    """Kernels usable on this CPU, ``"reference"`` first (e.g. ``reference, avx512, avx2, scalar``)."""
    return library().tfc_kernels().decode().split(",")


def default_kernel() -> str:
    """The kernel the ops pick on this CPU (``$TFCOMPRESS_KERNEL`` forces one)."""
    return library().tfc_default_kernel().decode()


def op_names() -> list[str]:
    """The custom ops (``custom_name``) the library's delegate claims."""
    return library().tfc_op_names().decode().split(",")


def _pair(value) -> tuple[int, int]:
    return (int(value), int(value)) if np.isscalar(value) else (int(value[0]), int(value[1]))


def binary_conv2d(
    x: np.ndarray,
    packed_weights: np.ndarray,
    multiplier: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    *,
    in_channels: int | None = None,
    strides=1,
    dilation_rate=1,
    padding: str = "VALID",
    pad_value: int = 0,
    activation: str = "NONE",
    kernel: str = "auto",
    threads: int = 1,
    packed_input: bool = False,
    packed_output: bool = False,
) -> np.ndarray:
    """One binary convolution with a named native kernel.

    Args:
        x: float32 ``[N, H, W, C_in]`` (only signs matter), or with ``packed_input`` its signs
            as :func:`pack_signs` packs them, int32 ``[N, H, W, ceil(C_in / 32)]``.
        packed_weights: int32 ``[C_out, K_h, K_w, ceil(C_in / 32)]`` from :func:`pack_signs`.
        multiplier, bias: float32 ``[C_out]`` (default 1 and 0: the output is the integer
            dot product of the signs).
        in_channels: ``C_in`` (default ``x.shape[-1]``).
        strides, dilation_rate: an int or a pair.
        padding: ``"SAME"`` or ``"VALID"`` (TensorFlow's rules).
        pad_value: 0 (padded taps contribute nothing) or 1 (padded inputs are ``+1``).
        activation: ``"NONE"``, ``"RELU"`` or ``"RELU6"``.
        kernel: ``"reference"``, a name from :func:`kernels`, or ``"auto"``.
        threads: threads for the optimized kernels.
        packed_input: ``x`` is bit-packed (the op's int32 input).
        packed_output: return the output's signs bit-packed, int32 ``[N, H', W', ceil(C_out / 32)]``
            (``pack_signs`` of the float output), as the op's int32 output.

    Raises:
        TfcompressError: an unknown kernel, padding or activation, or shapes that do not fit.
    """
    x = np.ascontiguousarray(x, dtype=np.int32 if packed_input else np.float32)
    w = np.ascontiguousarray(packed_weights, dtype=np.int32)
    if x.ndim != 4 or w.ndim != 4:
        raise TfcompressError(
            f"expected x [N,H,W,C] and packed weights [C_out,K_h,K_w,words]; got {x.shape}, {w.shape}"
        )
    if packed_input and in_channels is None:
        raise TfcompressError("a packed input needs in_channels")
    in_channels = int(in_channels if in_channels is not None else x.shape[-1])
    x_channels = -(-in_channels // 32) if packed_input else in_channels
    if x.shape[-1] != x_channels or w.shape[-1] != -(-in_channels // 32):
        raise TfcompressError(f"{in_channels} input channels do not fit x {x.shape} and packed weights {w.shape}")
    if padding not in PADDINGS:
        raise TfcompressError(f"unknown padding {padding!r}; use SAME or VALID")
    if activation not in ACTIVATIONS:
        raise TfcompressError(f"unknown activation {activation!r}; use one of {', '.join(ACTIVATIONS)}")
    out_c = w.shape[0]
    multiplier = np.ascontiguousarray(np.ones(out_c) if multiplier is None else multiplier, dtype=np.float32)
    bias = np.ascontiguousarray(np.zeros(out_c) if bias is None else bias, dtype=np.float32)
    if multiplier.shape != (out_c,) or bias.shape != (out_c,):
        raise TfcompressError(f"multiplier and bias must have shape ({out_c},)")
    geometry = (ctypes.c_int * 13)(
        x.shape[0],
        x.shape[1],
        x.shape[2],
        in_channels,
        out_c,
        w.shape[1],
        w.shape[2],
        *_pair(strides),
        *_pair(dilation_rate),
        PADDINGS[padding],
        int(pad_value),
    )
    lib = library()
    error = ctypes.create_string_buffer(512)
    out_hw = (ctypes.c_int * 4)()
    if lib.tfc_conv_output_size(geometry, out_hw, error, len(error)) != 0:
        raise TfcompressError(f"binary conv: {error.value.decode()}")
    out_last = -(-out_c // 32) if packed_output else out_c
    output = np.empty((x.shape[0], out_hw[0], out_hw[1], out_last), dtype=np.int32 if packed_output else np.float32)
    status = lib.tfc_binary_conv2d_io(
        kernel.encode(),
        geometry,
        x.ctypes.data,
        w.ctypes.data,
        multiplier.ctypes.data,
        bias.ctypes.data,
        ACTIVATIONS[activation],
        int(threads),
        int(packed_input) | 2 * int(packed_output),
        output.ctypes.data,
        output.size,
        error,
        len(error),
    )
    if status != 0:
        raise TfcompressError(f"binary conv: {error.value.decode()}")
    return output
