"""Small residual networks for 96-128 px inputs (He et al. 2016, "Deep Residual Learning").

Basic blocks ``y = relu(x + BN(conv3x3(relu(BN(conv3x3(x))))))``; a 1x1 projection with
BatchNorm on the shortcut where the shape changes. The stem is a 3x3 stride-2 conv, so a
96 px input runs its first stage at 48x48.

- ``resnet8``:  3 stages x 1 block  (widths w, 2w, 4w)
- ``resnet14``: 3 stages x 2 blocks (widths w, 2w, 4w)
- ``resnet18``: 4 stages x 2 blocks (widths w, 2w, 4w, 8w)
"""

from __future__ import annotations

import keras
from keras import layers

from tfcompress.models.common import classifier_head, input_block

_BLOCKS = {"resnet8": (1, 1, 1), "resnet14": (2, 2, 2), "resnet18": (2, 2, 2, 2)}


def _conv(filters: int, kernel: int, stride: int, name: str) -> layers.Conv2D:
    return layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
    )


def _bn(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def basic_block(x, filters: int, stride: int, name: str):
    """One residual basic block; a projection shortcut when stride or width changes."""
    shortcut = x
    y = _conv(filters, 3, stride, f"{name}_conv1")(x)
    y = _bn(f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(filters, 3, 1, f"{name}_conv2")(y)
    y = _bn(f"{name}_bn2")(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv(filters, 1, stride, f"{name}_proj")(x)
        shortcut = _bn(f"{name}_proj_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def resnet(
    depth: str = "resnet14",
    num_classes: int = 5,
    image_size: int = 96,
    width: int = 32,
    dropout: float = 0.2,
) -> keras.Model:
    """Build a small ResNet by name (``resnet8``, ``resnet14`` or ``resnet18``).

    Args:
        depth: which layout of :data:`_BLOCKS`.
        num_classes: outputs of the classifier (logits, no softmax).
        image_size: input side in pixels; inputs are RGB in [0, 255].
        width: filters of the first stage; stage ``i`` has ``width * 2**i``.
        dropout: dropout rate before the classifier.

    Example:
        >>> model = resnet("resnet8", num_classes=5, image_size=64, width=8)
        >>> model.output_shape
        (None, 5)
    """
    inputs, x = input_block(image_size)
    x = _conv(width, 3, 2, "stem_conv")(x)
    x = _bn("stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, blocks in enumerate(_BLOCKS[depth]):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = basic_block(x, width * 2**stage, stride, f"stage{stage + 1}_block{block + 1}")
    outputs = classifier_head(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name=depth)
