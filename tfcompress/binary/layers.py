"""Binarized layers: ``BinaryConv2D`` and ``BinaryDense``.

Each is its Keras base layer with two additions: ``input_quantizer`` is applied to the
inputs and ``kernel_quantizer`` to the latent float kernel before the ordinary
convolution / matrix product. With sign quantizers on both, every multiply-accumulate is
between ``+-1`` values, which the converter lowers to XOR + popcount kernels
(Rastegari et al. 2016, "XNOR-Net"; Hubara et al. 2016, "Binarized Neural Networks")::

    y = act(conv(q_in(x), q_k(W)) + b)

The latent ``W`` stays float during training (it accumulates small updates); only its
sign (and, for ``magnitude_aware_sign``, a per-channel scale) reaches the ``.tflite``.

One-padding: with ``padding="same"`` the zeros a plain conv pads with are a third value
next to ``+-1``, which a 1-bit kernel cannot represent. ``pad_values=1.0`` pads the
quantized input with ``+1`` instead (as Larq Compute Engine does), so the layer is exactly
a binary conv; ``pad_values=0.0`` keeps Keras' zero padding.
"""

from __future__ import annotations

import keras
from keras import ops

from tfcompress.binary import quantizers
from tfcompress.errors import TfcompressError


def _quantize(quantizer, x):
    return x if quantizer is None else quantizer(x)


def _apply_quantized_kernel(quantizer, kernel, product, channel_axis: int = -1):
    """``product(q(W))`` for a ``product`` linear in the kernel, per output channel.

    With ``magnitude_aware_sign``, ``q(W) = alpha * sign(W)`` and the result is computed as
    ``alpha * product(sign(W))``: the same value, but the sums of products of +-1 are then exact
    integers in float32, as in the ``.tflite`` op. Computed the other way, a sum that is exactly
    zero can come out as +-1e-8 and flip the sign a following binary layer takes of it.
    ``q(W) / alpha`` is exactly +-1 in IEEE arithmetic and keeps the straight-through gradient.
    """
    quantized = _quantize(quantizer, kernel)
    if not isinstance(quantizer, quantizers.MagnitudeAwareSign):
        return product(quantized)
    alpha = ops.stop_gradient(ops.mean(ops.abs(kernel), axis=list(range(len(kernel.shape) - 1))))
    outputs = product(quantized / ops.where(alpha > 0, alpha, ops.ones_like(alpha)))
    shape = [1] * len(outputs.shape)
    shape[channel_axis] = -1
    return outputs * ops.reshape(alpha, shape)


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """Before/after padding of TensorFlow's ``"same"``: ``out = ceil(size / stride)``.

    ``total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)``; the extra
    pixel of an odd total goes after.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


@keras.saving.register_keras_serializable(package="tfcompress")
class BinaryConv2D(keras.layers.Conv2D):
    """2D convolution with quantized inputs and kernel (a binary conv with sign quantizers).

    Args:
        filters, kernel_size, strides, padding, data_format, dilation_rate, groups,
        activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, activity_regularizer, bias_constraint: as ``keras.layers.Conv2D``.
        input_quantizer: quantizer of the inputs: an alias (``"ste_sign"``,
            ``"approx_sign"``, ``"swish_sign"``), a :class:`~tfcompress.binary.quantizers.Quantizer`,
            or ``None`` to keep float inputs.
        kernel_quantizer: quantizer of the kernel (typically ``"ste_sign"`` or
            ``"magnitude_aware_sign"``), or ``None``.
        kernel_constraint: constraint on the latent kernel; ``"weight_clip"`` clips it to [-1, 1].
        pad_values: the value ``"same"`` padding fills with: ``0.0`` (Keras) or ``1.0``
            (one-padding, exact for binary kernels).

    Example:
        >>> layer = BinaryConv2D(8, 3, padding="same", pad_values=1.0,
        ...                      input_quantizer="ste_sign", kernel_quantizer="ste_sign")
        >>> layer(keras.ops.ones((1, 6, 6, 4))).shape
        TensorShape([1, 6, 6, 8])
    """

    def __init__(
        self,
        filters: int,
        kernel_size,
        strides=(1, 1),
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate=(1, 1),
        groups: int = 1,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        input_quantizer=None,
        kernel_quantizer=None,
        pad_values: float = 0.0,
        **kwargs,
    ):
        if pad_values not in (0.0, 1.0):
            raise TfcompressError(f"pad_values must be 0.0 or 1.0, got {pad_values!r}")
        super().__init__(
            filters=filters,
            kernel_size=kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            groups=groups,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=quantizers.get_constraint(kernel_constraint),
            bias_constraint=bias_constraint,
            **kwargs,
        )
        self.input_quantizer = quantizers.get(input_quantizer)
        self.kernel_quantizer = quantizers.get(kernel_quantizer)
        self.pad_values = float(pad_values)

    @property
    def one_padding(self) -> bool:
        """True when ``"same"`` padding fills with ``+1`` (done explicitly before a ``"valid"`` conv)."""
        return self.padding == "same" and self.pad_values == 1.0

    def _pad_with_ones(self, inputs):
        spatial_axes = (1, 2) if self.data_format == "channels_last" else (2, 3)
        paddings = [[0, 0] for _ in range(4)]
        for i, axis in enumerate(spatial_axes):
            size = inputs.shape[axis]
            if size is None:
                raise TfcompressError(f"{self.name}: one-padding needs a known input size, got {inputs.shape}")
            paddings[axis] = list(_same_padding(size, self.kernel_size[i], self.strides[i], self.dilation_rate[i]))
        return ops.pad(inputs, paddings, constant_values=self.pad_values)

    def call(self, inputs):
        return super().call(_quantize(self.input_quantizer, inputs))

    def convolution_op(self, inputs, kernel):
        """The base conv on the quantized kernel, with explicit one-padding when asked."""
        padding = self.padding
        if self.one_padding:
            inputs, padding = self._pad_with_ones(inputs), "valid"

        def conv(quantized_kernel):
            return ops.conv(
                inputs,
                quantized_kernel,
                strides=list(self.strides),
                padding=padding,
                dilation_rate=self.dilation_rate,
                data_format=self.data_format,
            )

        channel_axis = -1 if self.data_format == "channels_last" else 1
        return _apply_quantized_kernel(self.kernel_quantizer, kernel, conv, channel_axis)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "input_quantizer": quantizers.serialize(self.input_quantizer),
                "kernel_quantizer": quantizers.serialize(self.kernel_quantizer),
                "pad_values": self.pad_values,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="tfcompress")
class BinaryDense(keras.layers.Dense):
    """Fully connected layer with quantized inputs and kernel: ``y = act(q_in(x) @ q_k(W) + b)``.

    Args:
        units, activation, use_bias, kernel_initializer, bias_initializer,
        kernel_regularizer, bias_regularizer, activity_regularizer, bias_constraint:
            as ``keras.layers.Dense``.
        input_quantizer, kernel_quantizer, kernel_constraint: as :class:`BinaryConv2D`.

    Example:
        >>> layer = BinaryDense(4, input_quantizer="ste_sign", kernel_quantizer="magnitude_aware_sign")
        >>> layer(keras.ops.ones((2, 16))).shape
        TensorShape([2, 4])
    """

    def __init__(
        self,
        units: int,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        input_quantizer=None,
        kernel_quantizer=None,
        **kwargs,
    ):
        super().__init__(
            units=units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=quantizers.get_constraint(kernel_constraint),
            bias_constraint=bias_constraint,
            **kwargs,
        )
        self.input_quantizer = quantizers.get(input_quantizer)
        self.kernel_quantizer = quantizers.get(kernel_quantizer)

    def call(self, inputs, training=None):
        quantized_inputs = _quantize(self.input_quantizer, inputs)
        outputs = _apply_quantized_kernel(
            self.kernel_quantizer, self.kernel, lambda kernel: ops.matmul(quantized_inputs, kernel)
        )
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        return outputs if self.activation is None else self.activation(outputs)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "input_quantizer": quantizers.serialize(self.input_quantizer),
                "kernel_quantizer": quantizers.serialize(self.kernel_quantizer),
            }
        )
        return config
