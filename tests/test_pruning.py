"""Magnitude / N:M / channel pruning: schedules, masks through training and strip, errors."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from tfcompress.distribute import get_strategy
from tfcompress.errors import TfcompressError, UnsupportedLayerError
from tfcompress.pruning import (
    ConstantSparsity,
    PolynomialDecay,
    PruningCallback,
    ScheduleWarning,
    channel_mask,
    magnitude_mask,
    n_m_mask,
    plan,
    prune,
    pruned_kernels,
    sparsity,
    strip,
)


def small_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv_a")(x)
    x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.ReLU(name="relu_a")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(12, activation="relu", name="fc")(x)
    outputs = keras.layers.Dense(4, name="logits")(x)
    return keras.Model(inputs, outputs, name="small")


@keras.saving.register_keras_serializable(package="tfcompress_tests")
class Subclassed(keras.Model):
    def __init__(self, units: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden = keras.layers.Dense(units, activation="relu")
        self.out = keras.layers.Dense(3)

    def call(self, x):
        return self.out(self.hidden(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


# --- schedules -----------------------------------------------------------------------


def test_polynomial_decay_hits_its_target_at_end_step_and_moves_only_on_update_steps():
    schedule = PolynomialDecay(0.0, 0.8, begin_step=10, end_step=50, power=3, frequency=10)
    assert schedule.target(0) == 0.0 and schedule.target(9) == 0.0
    assert schedule.target(10) == pytest.approx(0.0)
    # between update steps the target holds the value of the last update step
    assert schedule.target(29) == schedule.target(20) == pytest.approx(0.8 * (1 - (1 - 10 / 40) ** 3))
    assert schedule.target(49) < 0.8
    assert schedule.target(50) == pytest.approx(0.8) and schedule.target(10_000) == pytest.approx(0.8)
    assert [s for s in range(70) if schedule.is_update_step(s)] == [10, 20, 30, 40, 50]


def test_end_step_is_an_update_step_even_off_the_frequency_grid():
    schedule = PolynomialDecay(0.1, 0.5, begin_step=0, end_step=25, frequency=10)
    assert [s for s in range(40) if schedule.is_update_step(s)] == [0, 10, 20, 25]
    assert schedule.target(24) < 0.5 and schedule.target(25) == pytest.approx(0.5)


def test_constant_sparsity_from_begin_step():
    schedule = ConstantSparsity(0.6, begin_step=5, frequency=3)
    assert schedule.target(4) == 0.0 and schedule.target(5) == 0.6 and schedule.target(100) == 0.6
    assert schedule.is_update_step(8) and not schedule.is_update_step(9)


def test_a_run_too_short_for_the_schedule_warns_with_the_sparsity_it_reaches():
    schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=1000, frequency=100)
    with pytest.warns(ScheduleWarning, match="frequency=100"):
        reached = schedule.check_run(50)
    assert reached == 0.0  # tfmot's silent failure: 50 steps with frequency 100 stay dense
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert PolynomialDecay(0.0, 0.8, end_step=40, frequency=10).check_run(50) == pytest.approx(0.8)


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5])
def test_sparsity_outside_unit_interval_is_refused(bad):
    with pytest.raises(TfcompressError, match=r"in \[0, 1\)"):
        ConstantSparsity(bad)
    with pytest.raises(TfcompressError, match=r"in \[0, 1\)"):
        PolynomialDecay(0.0, bad, end_step=10)


# --- masks ---------------------------------------------------------------------------


def test_magnitude_mask_removes_exactly_the_smallest_weights():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 4, 5)).astype(np.float32)
    mask = magnitude_mask(kernel, 0.7)
    assert int((mask == 0).sum()) == round(0.7 * kernel.size)
    assert np.abs(kernel[mask == 0]).max() <= np.abs(kernel[mask == 1]).min()


def test_n_m_mask_keeps_n_largest_of_every_m_input_weights():
    kernel = np.random.default_rng(1).normal(size=(3, 3, 8, 6)).astype(np.float32)
    mask = n_m_mask(kernel, 2, 4)
    groups = mask.reshape(3, 3, 2, 4, 6)
    assert (groups.sum(axis=3) == 2).all()
    magnitudes = np.abs(kernel).reshape(3, 3, 2, 4, 6)
    kept_min = np.where(groups == 1, magnitudes, np.inf).min(axis=3)
    dropped_max = np.where(groups == 0, magnitudes, -np.inf).max(axis=3)
    assert (kept_min >= dropped_max).all()


def test_channel_mask_drops_whole_low_norm_output_channels():
    kernel = np.ones((3, 3, 2, 4), np.float32) * np.array([1.0, 0.1, 2.0, 0.2], np.float32)
    mask = channel_mask(kernel, 0.5)
    assert (mask[..., [1, 3]] == 0).all() and (mask[..., [0, 2]] == 1).all()


# --- prune / train / strip -------------------------------------------------------------


def test_plan_lists_the_layers_left_alone():
    reports = {r.name: r for r in plan(small_model())}
    assert [n for n, r in reports.items() if r.pruned] == ["conv_a", "conv_b", "fc", "logits"]
    assert not reports["bn_a"].pruned and "supported" in reports["bn_a"].reason
    assert not reports["rescale"].pruned and reports["rescale"].reason == "no weights"


def test_prune_returns_a_new_model_and_leaves_the_input_untouched():
    model = small_model()
    before = [w.copy() for w in model.get_weights()]
    pruned = prune(model, ConstantSparsity(0.5, frequency=1), exclude=["logits"])
    assert pruned is not model
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(layer.kernel.constraint is None for layer in model.layers if hasattr(layer, "kernel"))
    assert sparsity(pruned) == pytest.approx(0.5, abs=0.01)
    assert pruned.get_layer("logits").kernel.constraint is None  # excluded
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    assert not np.allclose(model(x), pruned(x))


def test_pruning_under_mirrored_strategy_reaches_target_at_end_step_and_survives_strip():
    strategy = get_strategy(2)
    assert strategy.num_replicas_in_sync == 2
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (16, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 4, 16)
    schedule = PolynomialDecay(0.0, 0.75, begin_step=0, end_step=4, frequency=2)
    model = small_model()
    with strategy.scope():
        pruned = prune(model, schedule)
        pruned.compile(keras.optimizers.SGD(0.1, momentum=0.9), keras.losses.SparseCategoricalCrossentropy(True))
    history = pruned.fit(x, y, batch_size=8, epochs=4, callbacks=[PruningCallback()], verbose=0)
    # 2 steps per epoch; updates at steps 0, 2, 4: the target is met from the 3rd epoch on
    logged = history.history["sparsity"]
    assert logged[0] < logged[1] < 0.75 - 1e-3
    assert logged[2] == pytest.approx(0.75, abs=2e-3) and logged[3] == pytest.approx(0.75, abs=2e-3)
    trained = {layer.name: keras.ops.convert_to_numpy(layer.kernel) for layer, _, _ in pruned_kernels(pruned)}
    # the optimizer moved the kept weights but every masked weight is still exactly zero
    for layer, kernel, constraint in pruned_kernels(pruned):
        mask = keras.ops.convert_to_numpy(constraint.mask)
        assert (trained[layer.name][mask == 0] == 0).all()
        per_replica = getattr(kernel.value, "values", [kernel.value])
        for value in per_replica:
            np.testing.assert_array_equal(np.asarray(value), trained[layer.name])
    plain = strip(pruned)
    assert all(v.constraint is None for v in plain.weights)
    assert not pruned_kernels(plain)
    for name, values in trained.items():
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(plain.get_layer(name).kernel), values)
    np.testing.assert_allclose(plain(x[:4]), pruned(x[:4]), rtol=1e-5, atol=1e-5)


def test_n_m_pattern_holds_after_training_and_strip():
    model = small_model()
    pruned = prune(model, ConstantSparsity(0.5, frequency=1), granularity=(2, 4), exclude=["conv_a"])
    pruned.compile("sgd", keras.losses.SparseCategoricalCrossentropy(True))
    rng = np.random.default_rng(0)
    pruned.fit(rng.uniform(0, 255, (8, 8, 8, 3)), rng.integers(0, 4, 8), batch_size=4, epochs=1, verbose=0)
    plain = strip(pruned)
    for name in ("conv_b", "fc", "logits"):
        kernel = keras.ops.convert_to_numpy(plain.get_layer(name).kernel)
        moved = np.moveaxis(kernel != 0, -2, -1)
        counts = moved.reshape(*moved.shape[:-1], -1, 4).sum(-1)
        assert (counts <= 2).all() and counts.mean() > 1.9, name


def test_subclassed_and_sequential_models_prune_and_strip():
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    sub = Subclassed(8)
    sub(x)
    pruned = prune(sub, ConstantSparsity(0.5, frequency=1))
    assert isinstance(pruned, Subclassed) and len(pruned_kernels(pruned)) == 2
    plain = strip(pruned)
    assert isinstance(plain, Subclassed)
    np.testing.assert_allclose(plain(x), pruned(x), rtol=1e-6)
    assert sparsity(plain, only_pruned=False) == pytest.approx(0.5, abs=0.02)

    seq = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8), keras.layers.Dense(2)])
    pruned_seq = prune(seq, ConstantSparsity(0.25, frequency=1))
    assert sparsity(strip(pruned_seq), only_pruned=False) == pytest.approx(0.25, abs=0.02)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(TfcompressError, match="does not divide its input dimension 6"):
        seq = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, name="odd")])
        prune(seq, ConstantSparsity(0.5), granularity=(2, 4))
    no_kernels = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.BatchNormalization(), keras.layers.ReLU()])
    with pytest.raises(UnsupportedLayerError, match="no prunable layer"):
        prune(no_kernels, ConstantSparsity(0.5))
    with pytest.raises(TfcompressError, match="granularity"):
        prune(small_model(), ConstantSparsity(0.5), granularity="block")
    with pytest.raises(TfcompressError, match="0 < N < M"):
        prune(small_model(), ConstantSparsity(0.5), granularity=(4, 4))


def test_global_layer_sparsities_follow_one_threshold_and_cap_each_layer():
    from tfcompress.pruning.masks import global_layer_sparsities

    small = np.array([0.1, 0.2, 3.0, 4.0])  # two below the threshold
    large = np.array([0.05, 0.15, 0.25, 0.3, 5.0, 6.0, 7.0, 8.0])  # four below
    assert global_layer_sparsities([small, large], 0.5) == [0.5, 0.5]
    assert global_layer_sparsities([small, large * 0.01], 0.5) == [0.0, 0.75]  # the small-weight layer pays
    assert global_layer_sparsities([small, large * 0.01], 0.75, cap=0.99) == pytest.approx([0.25, 0.99])


def test_global_allocation_reaches_the_total_target_with_one_threshold_through_training():
    model = small_model()
    schedule = PolynomialDecay(0.0, 0.7, begin_step=0, end_step=2, frequency=1)
    pruned = prune(model, schedule, allocation="global")
    pruned.compile("sgd", keras.losses.SparseCategoricalCrossentropy(True))
    rng = np.random.default_rng(0)
    pruned.fit(rng.uniform(0, 255, (8, 8, 8, 3)), rng.integers(0, 4, 8), batch_size=4, epochs=2,
               callbacks=[PruningCallback()], verbose=0)  # fmt: skip
    # the last mask update (step 2) set one threshold; training after it moves only kept weights
    kernels = {layer.name: keras.ops.convert_to_numpy(kernel) for layer, kernel, _ in pruned_kernels(pruned)}
    total = sum(k.size for k in kernels.values())
    zeros = sum(int((k == 0).sum()) for k in kernels.values())
    assert zeros / total == pytest.approx(0.7, abs=1.5 / total)
    per_layer = {name: float((k == 0).mean()) for name, k in kernels.items()}
    assert len({round(v, 3) for v in per_layer.values()}) > 1, per_layer  # not uniform per layer
    with pytest.raises(TfcompressError, match="global allocation needs granularity"):
        prune(model, ConstantSparsity(0.5), granularity=(2, 4), allocation="global")
    with pytest.raises(TfcompressError, match="allocation must be one of"):
        prune(model, ConstantSparsity(0.5), allocation="sideways")


def test_global_allocation_prunes_the_smallest_weights_of_the_whole_model():
    model = small_model()
    pruned = prune(model, ConstantSparsity(0.6, frequency=1), allocation="global")
    removed, kept = [], []
    for layer, _, constraint in pruned_kernels(pruned):
        original = np.abs(keras.ops.convert_to_numpy(model.get_layer(layer.name).kernel))
        mask = keras.ops.convert_to_numpy(constraint.mask)
        removed.append(original[mask == 0])
        kept.append(original[mask == 1])
    assert np.concatenate(removed).max() <= np.concatenate(kept).min()
    assert sparsity(pruned) == pytest.approx(0.6, abs=1e-3)
