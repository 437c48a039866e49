"""The model zoo: small classifiers for 96-128 px images, built by name (EfficientNet-Lite0 with
optional ImageNet weights).

>>> from tfcompress.models import build_model
>>> model = build_model("resnet8", num_classes=5, image_size=64, width=8)
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from tfcompress.errors import TfcompressError
from tfcompress.models.efficientnet_lite import efficientnet_lite0
from tfcompress.models.mobilenet_v2 import mobilenet_v2
from tfcompress.models.resnet import resnet
from tfcompress.models.vgg import vgg

_BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "resnet8": lambda **kw: resnet("resnet8", **kw),
    "resnet14": lambda **kw: resnet("resnet14", **kw),
    "resnet18": lambda **kw: resnet("resnet18", **kw),
    "mobilenet_v2": mobilenet_v2,
    "vgg": vgg,
    "efficientnet_lite0": efficientnet_lite0,
}


#: Zoo models with pretrained (ImageNet) weights: ``build_model(name, ..., weights="imagenet")``.
PRETRAINED_MODELS = ("efficientnet_lite0",)


def available_models() -> list[str]:
    """Names accepted by :func:`build_model`."""
    from tfcompress.plugins import load_methods

    load_methods()
    return sorted(_BUILDERS)


def register_model(name: str, builder: Callable[..., keras.Model]) -> None:
    """Add a builder to the zoo (used by subpackages such as ``tfcompress.binary``)."""
    _BUILDERS[name] = builder


def build_model(name: str, num_classes: int, image_size: int = 96, **kwargs) -> keras.Model:
    """Build the zoo model ``name``; extra keyword arguments go to its builder (e.g. ``width``).

    Raises:
        TfcompressError: ``name`` is not in the zoo.
    """
    from tfcompress.plugins import load_methods

    load_methods()  # methods register their zoo models (e.g. binary_resnet18)
    if name not in _BUILDERS:
        raise TfcompressError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    return _BUILDERS[name](num_classes=num_classes, image_size=image_size, **kwargs)


__all__ = [
    "PRETRAINED_MODELS",
    "available_models",
    "build_model",
    "efficientnet_lite0",
    "mobilenet_v2",
    "register_model",
    "resnet",
    "vgg",
]
