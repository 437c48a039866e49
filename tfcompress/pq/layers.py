"""Keras 3 layers whose kernel is a product-quantized codebook lookup.

Stock et al. 2020, "And the Bit Goes Down: Revisiting the Quantization of Neural
Networks" (ICLR): each kernel column is cut into blocks of ``d`` rows (see
:mod:`tfcompress.pq.layout`), and each block is replaced by one of ``k`` centroids of a
per-layer codebook ``C`` (``k x d``)::

    W[b*d:(b+1)*d, j] = C[codes[b, j]]

The codebook is trainable (float32 here; stored as float16 in the ``.tflite``), the codes
are a fixed, non-trainable integer variable. The kernel is decoded in ``call``.

Gradient to the codebook: the paper averages, over the subvectors that share a centroid,
the gradients they receive. The plain gather would *sum* them, so ``call`` uses the
codebook through the identity ``C' = sg(C) + (C - sg(C)) / n`` (``sg`` = stop-gradient,
``n[c]`` = how many subvectors use centroid ``c``): ``C'`` equals ``C`` exactly in the
forward pass (``C - sg(C)`` is exactly zero), and ``dL/dC = (1/n) * sum_i dL/dW_i``, the
average.
"""

from __future__ import annotations

import keras
from keras import ops

from tfcompress.pq.layout import check_block_size, subvectors_to_kernel


def averaged_codebook(codebook, codes, n_centroids: int):
    """``codebook`` in the forward pass; its gradient divided by each centroid's use count."""
    counts = ops.bincount(ops.reshape(codes, (-1,)), minlength=n_centroids)
    scale = 1.0 / ops.maximum(ops.cast(counts, codebook.dtype), 1.0)
    frozen = ops.stop_gradient(codebook)
    return frozen + (codebook - frozen) * ops.expand_dims(scale, 1)


class _PQKernelMixin:
    """Weights and decoding shared by :class:`PQConv2D` and :class:`PQDense`."""

    def _build_pq_weights(self, kernel_shape: tuple[int, ...]) -> None:
        self.kernel_shape = tuple(int(s) for s in kernel_shape)
        n_blocks = check_block_size(self.kernel_shape, self.block_size, self.name)
        self.codebook = self.add_weight(
            name="codebook",
            shape=(self.n_centroids, self.block_size),
            initializer=keras.initializers.RandomNormal(stddev=0.05),
            trainable=True,
        )
        self.codes = self.add_weight(
            name="codes",
            shape=(n_blocks, self.kernel_shape[-1]),
            initializer="zeros",
            dtype="int32",
            trainable=False,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.kernel_shape[-1],), initializer="zeros", trainable=True
            )
        else:
            self.bias = None

    def decoded_kernel(self):
        """The kernel ``codebook[codes]`` in Keras layout, with the averaged codebook gradient."""
        codebook = averaged_codebook(self.codebook, self.codes, self.n_centroids)
        return subvectors_to_kernel(ops.take(codebook, self.codes, axis=0), self.kernel_shape, ops)

    def _finish(self, outputs):
        if self.bias is not None:
            outputs = ops.add(outputs, self.bias)
        return self.activation(outputs)

    def _pq_config(self) -> dict:
        return {
            "block_size": self.block_size,
            "n_centroids": self.n_centroids,
            "use_bias": self.use_bias,
            "activation": keras.activations.serialize(self.activation),
        }


def _check_centroids(n_centroids: int, block_size: int) -> None:
    if int(n_centroids) < 1 or int(block_size) < 1:
        raise ValueError(f"n_centroids ({n_centroids}) and block_size ({block_size}) must be positive")


@keras.saving.register_keras_serializable(package="tfcompress")
class PQConv2D(_PQKernelMixin, keras.layers.Layer):
    """2D convolution whose kernel is decoded from a product-quantized codebook.

    Args:
        filters: output channels.
        kernel_size: int or (kh, kw).
        block_size: ``d``, the rows per subvector (9 or 18 for 3x3, 4 or 8 for 1x1);
            must divide ``C_in * kh * kw``.
        n_centroids: ``k``, the codebook size.
        strides, padding, dilation_rate: as in ``keras.layers.Conv2D`` (channels last).
        use_bias: add a float bias.
        activation: applied to the output.

    Example:
        >>> layer = PQConv2D(16, 3, block_size=9, n_centroids=32, padding="same")
        >>> layer(keras.ops.zeros((2, 8, 8, 4))).shape
        (2, 8, 8, 16)
    """

    def __init__(
        self,
        filters: int,
        kernel_size,
        block_size: int = 9,
        n_centroids: int = 256,
        strides=1,
        padding: str = "valid",
        dilation_rate=1,
        use_bias: bool = True,
        activation=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_centroids(n_centroids, block_size)
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size)
        self.block_size = int(block_size)
        self.n_centroids = int(n_centroids)
        self.strides = _pair(strides)
        self.padding = padding.lower()
        self.dilation_rate = _pair(dilation_rate)
        self.use_bias = bool(use_bias)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        self._build_pq_weights((*self.kernel_size, int(input_shape[-1]), self.filters))

    def call(self, inputs):
        outputs = ops.conv(
            inputs,
            self.decoded_kernel(),
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format="channels_last",
        )
        return self._finish(outputs)

    def compute_output_shape(self, input_shape):
        probe = keras.layers.Conv2D(
            self.filters, self.kernel_size, self.strides, self.padding, dilation_rate=self.dilation_rate
        )
        return probe.compute_output_shape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "dilation_rate": self.dilation_rate,
            **self._pq_config(),
        }


@keras.saving.register_keras_serializable(package="tfcompress")
class PQDense(_PQKernelMixin, keras.layers.Layer):
    """Fully connected layer whose kernel is decoded from a product-quantized codebook.

    Args:
        units: output features.
        block_size: ``d``, consecutive input features per subvector (4 or 8); must divide
            the input features.
        n_centroids: ``k``, the codebook size.
        use_bias: add a float bias.
        activation: applied to the output.

    Example:
        >>> layer = PQDense(10, block_size=4, n_centroids=16)
        >>> layer(keras.ops.zeros((3, 32))).shape
        (3, 10)
    """

    def __init__(
        self,
        units: int,
        block_size: int = 4,
        n_centroids: int = 256,
        use_bias: bool = True,
        activation=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_centroids(n_centroids, block_size)
        self.units = int(units)
        self.block_size = int(block_size)
        self.n_centroids = int(n_centroids)
        self.use_bias = bool(use_bias)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        self._build_pq_weights((int(input_shape[-1]), self.units))

    def call(self, inputs):
        return self._finish(ops.matmul(inputs, self.decoded_kernel()))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, **self._pq_config()}


def _pair(value) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    first, second = value
    return (int(first), int(second))
