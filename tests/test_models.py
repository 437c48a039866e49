"""The model zoo builds every model by name, at the sizes the kit targets."""

from __future__ import annotations

import numpy as np
import pytest

from tfcompress.errors import TfcompressError
from tfcompress.models import available_models, build_model


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("resnet8", {"width": 8}),
        ("resnet14", {"width": 8}),
        ("resnet18", {"width": 8}),
        ("mobilenet_v2", {"width": 0.35}),
        ("vgg", {"width": 4}),
    ],
)
def test_zoo_model_builds_and_runs(name, kwargs):
    model = build_model(name, num_classes=5, image_size=64, **kwargs)
    out = model(np.zeros((2, 64, 64, 3), np.float32), training=False)
    assert out.shape == (2, 5)


def test_resnet_depths_differ():
    counts = {n: build_model(n, 5, 64, width=8).count_params() for n in ("resnet8", "resnet14", "resnet18")}
    assert counts["resnet8"] < counts["resnet14"] < counts["resnet18"]


def test_unknown_model_name_lists_the_zoo():
    with pytest.raises(TfcompressError, match=r"unknown model .resnet99.*resnet18"):
        build_model("resnet99", 5)
    assert {"resnet8", "resnet14", "resnet18", "mobilenet_v2", "vgg"} <= set(available_models())
