"""A VGG-style plain network (Simonyan & Zisserman 2015) with BatchNorm after every conv.

Every conv is followed by BatchNorm and ReLU, which is the structure Network Slimming
(Liu et al. 2017) prunes: the BN scale gamma of each channel is the channel's importance.
"""

from __future__ import annotations

import keras
from keras import layers

from tfcompress.models.common import classifier_head, input_block

# Filters per conv, "M" for a 2x2 max-pool.
_LAYOUT = (1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8)


def vgg(num_classes: int = 5, image_size: int = 96, width: int = 32, dropout: float = 0.2) -> keras.Model:
    """Build the VGG-style net; conv widths are multiples of ``width`` (32: 32..256 filters).

    Example:
        >>> model = vgg(num_classes=5, image_size=64, width=8)
        >>> model.output_shape
        (None, 5)
    """
    inputs, x = input_block(image_size)
    conv_index = 0
    for item in _LAYOUT:
        if item == "M":
            x = layers.MaxPooling2D(2, name=f"pool{conv_index}")(x)
            continue
        conv_index += 1
        x = layers.Conv2D(item * width, 3, padding="same", use_bias=False, name=f"conv{conv_index}")(x)
        x = layers.BatchNormalization(name=f"bn{conv_index}")(x)
        x = layers.ReLU(name=f"relu{conv_index}")(x)
    outputs = classifier_head(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name="vgg")
