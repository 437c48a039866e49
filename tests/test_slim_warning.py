"""Slimming warns when the BatchNorm gammas it thresholds barely differ; the sparsity phase runs by default."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from tfcompress.cli import build_parser
from tfcompress.models import build_model
from tfcompress.pruning.finetune import FinetuneConfig
from tfcompress.pruning.pipeline import MIN_GAMMA_SPREAD, gamma_spread, slim_and_finetune


def _slim_warnings(model: keras.Model) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        slim_and_finetune(model, None, 0.5, penalty_epochs=0, config=FinetuneConfig(epochs=0))
    return [str(w.message) for w in caught if "gamma" in str(w.message)]


def test_gamma_spread_is_the_10_to_90_percentile_span_over_the_median():
    inputs = keras.Input((4, 4, 11))
    model = keras.Model(inputs, keras.layers.BatchNormalization()(inputs))
    model.layers[-1].gamma.assign(0.1 * np.arange(1, 12, dtype=np.float32))  # 0.1 .. 1.1
    assert gamma_spread(model) == pytest.approx((1.0 - 0.2) / 0.6)


def test_slimming_untrained_gammas_warns_and_spread_gammas_do_not():
    keras.utils.set_random_seed(0)
    model = build_model("resnet8", num_classes=3, image_size=16, width=4)
    assert gamma_spread(model) == 0.0  # every gamma still 1.0
    (message,) = _slim_warnings(model)
    assert "barely differ" in message and "--penalty-epochs" in message
    rng = np.random.default_rng(0)
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.gamma.assign(rng.uniform(0.02, 2.0, layer.gamma.shape).astype(np.float32))
    assert gamma_spread(model) > MIN_GAMMA_SPREAD
    assert _slim_warnings(model) == []


def test_slim_command_runs_the_sparsity_phase_by_default():
    args = build_parser().parse_args(["slim", "in.keras", "--ratio", "0.5", "-o", "out.keras"])
    assert args.penalty_epochs == 3
