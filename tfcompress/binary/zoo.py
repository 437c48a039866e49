"""A binary ResNet for the model zoo, in the style of Bi-Real Net (Liu et al. 2018).

Bi-Real Net keeps a real-valued shortcut around *every* binary 3x3 conv, so the float
information that sign() throws away is carried past each binary layer::

    x <- x + BN(BinaryConv3x3(sign(x), sign(W) * mean|W|))

- stem (float): 3x3 stride-2 conv, BatchNorm, 3x3 stride-2 max-pool (no ReLU: a sign of
  non-negative values would be constant);
- body (binary): the ResNet-18 layout, 4 stages x 2 blocks x 2 binary convs
  (``approx_sign`` inputs, ``magnitude_aware_sign`` kernels clipped to [-1, 1], one-padding);
  where a stage halves the resolution and doubles the width the shortcut is a 2x2
  average-pool, a float 1x1 conv and BatchNorm (as in Bi-Real Net);
- head (float): ReLU, global average pooling, dropout, dense logits.

Inputs are RGB in [0, 255], rescaled inside the graph (:mod:`tfcompress.models.common`).
"""

from __future__ import annotations

import keras
from keras import layers

from tfcompress.binary.layers import BinaryConv2D
from tfcompress.models import register_model
from tfcompress.models.common import classifier_head, input_block

_STAGES = (2, 2, 2, 2)


def _bn(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def binary_conv_unit(x, filters: int, stride: int, name: str):
    """``shortcut(x) + BN(BinaryConv3x3(x))``: one Bi-Real unit with its real-valued shortcut."""
    y = BinaryConv2D(
        filters,
        3,
        strides=stride,
        padding="same",
        pad_values=1.0,
        input_quantizer="approx_sign",
        kernel_quantizer="magnitude_aware_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
        kernel_initializer="glorot_normal",
        name=f"{name}_bconv",
    )(x)
    y = _bn(f"{name}_bn")(y)
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.AveragePooling2D(stride, padding="same", name=f"{name}_pool")(x) if stride != 1 else x
        shortcut = layers.Conv2D(filters, 1, use_bias=False, kernel_initializer="he_normal", name=f"{name}_proj")(
            shortcut
        )
        shortcut = _bn(f"{name}_proj_bn")(shortcut)
    return layers.Add(name=f"{name}_add")([shortcut, y])


def binary_resnet(
    num_classes: int = 5,
    image_size: int = 96,
    width: int = 48,
    dropout: float = 0.2,
    stages: tuple[int, ...] = _STAGES,
) -> keras.Model:
    """Build the Bi-Real-style binary ResNet (ResNet-18 layout by default).

    Args:
        num_classes: outputs of the float classifier (logits).
        image_size: input side in pixels; inputs are RGB in [0, 255].
        width: channels of the first stage; stage ``i`` has ``width * 2**i``.
        dropout: dropout rate before the classifier.
        stages: blocks (of two binary convs each) per stage.

    Example:
        >>> model = binary_resnet(num_classes=5, image_size=64, width=16)
        >>> model.output_shape
        (None, 5)
    """
    inputs, x = input_block(image_size)
    x = layers.Conv2D(
        width, 3, strides=2, padding="same", use_bias=False, kernel_initializer="he_normal", name="stem_conv"
    )(x)
    x = _bn("stem_bn")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, blocks in enumerate(stages):
        filters = width * 2**stage
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            name = f"stage{stage + 1}_block{block + 1}"
            x = binary_conv_unit(x, filters, stride, f"{name}_unit1")
            x = binary_conv_unit(x, filters, 1, f"{name}_unit2")
    x = layers.ReLU(name="head_relu")(x)
    outputs = classifier_head(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name="binary_resnet18" if tuple(stages) == _STAGES else "binary_resnet")


def binary_resnet18(num_classes: int = 5, image_size: int = 96, width: int = 48, dropout: float = 0.2) -> keras.Model:
    """The zoo's ``binary_resnet18``: :func:`binary_resnet` with the ResNet-18 layout."""
    return binary_resnet(num_classes=num_classes, image_size=image_size, width=width, dropout=dropout)


register_model("binary_resnet18", binary_resnet18)
