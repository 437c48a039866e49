"""MobileNetV2 with a width multiplier (Sandler et al. 2018, "MobileNetV2: Inverted
Residuals and Linear Bottlenecks"), sized for 96-128 px inputs.

Inverted residual block: 1x1 expansion (t x channels) -> ReLU6 -> 3x3 depthwise ->
ReLU6 -> 1x1 linear projection, with an identity shortcut when stride is 1 and the
channel count is unchanged.
"""

from __future__ import annotations

import keras
from keras import layers

from tfcompress.models.common import classifier_head, input_block

# (expansion t, output channels c, repeats n, first stride s), as in the paper's Table 2.
_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor``, never more than 10% below it."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _inverted_residual(x, expansion: int, filters: int, stride: int, name: str):
    in_channels = x.shape[-1]
    y = x
    if expansion != 1:
        y = layers.Conv2D(in_channels * expansion, 1, use_bias=False, name=f"{name}_expand")(y)
        y = layers.BatchNormalization(name=f"{name}_expand_bn")(y)
        y = layers.ReLU(6.0, name=f"{name}_expand_relu")(y)
    y = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(y)
    y = layers.BatchNormalization(name=f"{name}_dw_bn")(y)
    y = layers.ReLU(6.0, name=f"{name}_dw_relu")(y)
    y = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project")(y)
    y = layers.BatchNormalization(name=f"{name}_project_bn")(y)
    if stride == 1 and in_channels == filters:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


def mobilenet_v2(
    num_classes: int = 5,
    image_size: int = 96,
    width: float = 1.0,
    dropout: float = 0.2,
) -> keras.Model:
    """Build MobileNetV2 with width multiplier ``width`` (e.g. 0.35, 0.5, 1.0).

    Example:
        >>> model = mobilenet_v2(num_classes=5, image_size=64, width=0.35)
        >>> model.output_shape
        (None, 5)
    """
    inputs, x = input_block(image_size)
    x = layers.Conv2D(make_divisible(32 * width), 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    block = 0
    for expansion, channels, repeats, stride in _SETTINGS:
        for i in range(repeats):
            block += 1
            x = _inverted_residual(
                x, expansion, make_divisible(channels * width), stride if i == 0 else 1, f"block{block}"
            )
    last = make_divisible(1280 * max(1.0, width))
    x = layers.Conv2D(last, 1, use_bias=False, name="head_conv")(x)
    x = layers.BatchNormalization(name="head_bn")(x)
    x = layers.ReLU(6.0, name="head_relu")(x)
    outputs = classifier_head(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name=f"mobilenet_v2_{width:g}")
