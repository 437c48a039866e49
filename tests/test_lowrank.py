"""Low-rank factorization: exactness at full rank, error vs rank, graph surgery, search, conversion."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from tfcompress.errors import TfcompressError, UnsupportedLayerError
from tfcompress.lowrank import (
    Target,
    apply_plan,
    energy_rank,
    evbmf_rank,
    factorize,
    finetune,
    make_plan,
    max_rank,
    model_macs,
    replaced_layer_names,
    search_ranks,
)
from tfcompress.lowrank.methods import describe

CONVS = ("conv_a", "conv_b", "conv_c")


def small_model(seed: int = 0) -> keras.Model:
    """Convs with bias+ReLU, stride 2 + BN, dilation + valid padding, then two Dense layers."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 12, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_a")(inputs)
    x = keras.layers.Conv2D(12, 3, strides=2, padding="same", use_bias=False, name="conv_b")(x)
    x = keras.layers.BatchNormalization(name="bn_b")(x)
    x = keras.layers.ReLU(name="relu_b")(x)
    x = keras.layers.Conv2D(16, (3, 2), dilation_rate=(1, 2), padding="valid", name="conv_c")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(10, activation="relu", name="fc1")(x)
    outputs = keras.layers.Dense(4, name="logits")(x)
    model = keras.Model(inputs, outputs, name="small")
    bn = model.get_layer("bn_b")
    rng = np.random.default_rng(seed)
    bn.set_weights([rng.uniform(0.5, 1.5, 12), rng.normal(0, 0.1, 12), rng.normal(0, 0.1, 12), rng.uniform(0.5, 2, 12)])
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape))
    return model


def images(count: int = 4, size: int = 12, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, size, size, 3)).astype(np.float32)


def full_ranks(model: keras.Model, method: str) -> dict:
    return {name: max_rank(describe(model.get_layer(name)), method) for name in (*CONVS, "fc1", "logits")}


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def outputs_of(model: keras.Model, names, x: np.ndarray) -> list[np.ndarray]:
    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in names])
    result = probe(x, training=False)
    return [np.asarray(r) for r in (result if isinstance(result, list | tuple) else [result])]


@pytest.mark.parametrize("method", ["svd", "spatial_svd", "tucker2"])
def test_full_rank_reproduces_every_layer_and_the_model(method):
    model = small_model()
    x = images()
    factored = factorize(model, method, rank=full_ranks(model, method))
    plan = make_plan(model, method, rank=full_ranks(model, method))
    last_of = {name: chain[-1] for name, chain in replaced_layer_names(plan, model).items()}
    reference = outputs_of(model, list(last_of), x)
    rebuilt = outputs_of(factored, list(last_of.values()), x)
    for name, ref, got in zip(last_of, reference, rebuilt, strict=True):
        assert relative_error(got, ref) < 1e-5, name
    np.testing.assert_allclose(factored(x, training=False), model(x, training=False), rtol=1e-4, atol=1e-5)
    assert "conv_a" not in {layer.name for layer in factored.layers}


@pytest.mark.parametrize("method", ["svd", "spatial_svd", "tucker2", "cp"])
def test_reconstruction_error_falls_as_rank_rises(method):
    model = small_model()
    x = images()
    reference = outputs_of(model, ["conv_b"], x)[0]
    if method == "tucker2":
        ranks = [(1, 2), (3, 5), (6, 9), (8, 12)]
    elif method == "cp":
        ranks = [1, 4, 16, 72]
    else:
        limit = max_rank(describe(model.get_layer("conv_b")), method)
        ranks = [1, 3, limit // 2, limit]
    errors = []
    for rank in ranks:
        factored = factorize(model, method, rank={"conv_b": rank}, cp_iterations=200)
        last = replaced_layer_names(make_plan(model, method, rank={"conv_b": rank}), model)["conv_b"][-1]
        errors.append(relative_error(outputs_of(factored, [last], x)[0], reference))
    assert all(later < earlier for earlier, later in itertools.pairwise(errors)), errors
    assert errors[-1] < 1e-3, errors


def test_rebuilt_graph_keeps_the_rest_identical_and_never_mutates_the_input():
    model = small_model()
    x = images()
    before_weights = [w.copy() for w in model.get_weights()]
    before_output = np.asarray(model(x, training=False))
    factored = factorize(model, "tucker2", rank={"conv_b": (2, 3)})
    for layer in model.layers:
        if layer.name == "conv_b" or not layer.weights:
            continue
        for old, new in zip(layer.get_weights(), factored.get_layer(layer.name).get_weights(), strict=True):
            np.testing.assert_array_equal(old, new)
    np.testing.assert_array_equal(outputs_of(factored, ["conv_a"], x)[0], outputs_of(model, ["conv_a"], x)[0])
    for old, new in zip(before_weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    np.testing.assert_array_equal(model(x, training=False), before_output)
    assert [layer.name for layer in model.layers].count("conv_b") == 1
    assert not set(map(id, model.weights)) & set(map(id, factored.weights))


def test_sequential_models_are_rebuilt_as_functional():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6, 6, 4)), keras.layers.Conv2D(6, 3, name="c"), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    factored = factorize(model, "spatial_svd", rank={"c": max_rank(describe(model.get_layer("c")), "spatial_svd")})
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 4)).astype(np.float32)
    np.testing.assert_allclose(factored(x), model(x), rtol=1e-4, atol=1e-5)


def test_energy_rank_and_evbmf_recover_known_ranks():
    assert energy_rank(np.array([3.0, 2.0, 1.0, 0.0]), 0.9) == 2  # (9 + 4) / 14 = 0.93
    assert energy_rank(np.array([3.0, 2.0, 1.0, 0.0]), 0.95) == 3
    rng = np.random.default_rng(0)
    low_rank = rng.normal(size=(40, 4)) @ rng.normal(size=(4, 90))
    assert evbmf_rank(low_rank + 0.05 * rng.normal(size=low_rank.shape)) == 4
    assert evbmf_rank(rng.normal(size=(40, 90))) == 0
    with pytest.raises(TfcompressError, match="energy must be in"):
        energy_rank(np.ones(3), 0.0)


def test_vbmf_plan_finds_the_tucker_ranks_of_a_low_rank_kernel():
    model = small_model()
    rng = np.random.default_rng(0)
    core = rng.normal(size=(3, 3, 3, 4))
    kernel = np.einsum("ijab,ca,nb->ijcn", core, rng.normal(size=(8, 3)), rng.normal(size=(12, 4)))
    model.get_layer("conv_b").kernel.assign(kernel + 0.01 * rng.normal(size=kernel.shape))
    plan = make_plan(model, "tucker2", rank="vbmf", layers=["conv_b"])
    assert plan.ranks == {"conv_b": (3, 4)}
    energy_plan = make_plan(model, "tucker2", energy=0.99999)
    assert energy_plan.ranks["conv_b"] == (3, 4)


def test_greedy_search_meets_mac_and_parameter_targets():
    model = small_model()
    x = images(8)
    reference = np.asarray(model(x, training=False))

    def closeness(candidate: keras.Model) -> float:
        return -relative_error(np.asarray(candidate(x, training=False)), reference)

    result = search_ranks(model, "tucker2", Target("macs", 0.5), closeness, verbose=0)
    factored = apply_plan(model, result.plan)
    assert model_macs(factored) <= 0.5 * model_macs(model)
    assert model_macs(factored) == pytest.approx(result.expected_cost)
    assert result.baseline_score == 0.0
    # The chosen plan is the best-scoring one of those meeting the budget at its threshold.
    for name, rank in result.plan.ranks.items():
        chosen = next(row for row in result.table[name] if row.rank == rank)
        assert chosen.score >= result.threshold
    small = factorize(model, "spatial_svd", target=("params", 0.7))
    assert small.count_params() <= 0.7 * model.count_params()
    with pytest.raises(TfcompressError, match=r"cannot be reached.*closest reachable is 0\.\d+"):
        search_ranks(model, "svd", Target("macs", 0.01), verbose=0)


def test_conversion_runs_without_custom_ops_and_matches_keras():
    from tfcompress.convert import to_tflite
    from tfcompress.evaluate import TFLiteClassifier
    from tfcompress.runtime import custom_op_names

    model = small_model()
    x = images(3)
    factored = factorize(model, "cp", rank={"conv_b": 6, "conv_c": 5, "fc1": 3}, cp_iterations=30)
    content = to_tflite(factored)
    assert custom_op_names(content) == []
    classifier = TFLiteClassifier(model_content=content)
    np.testing.assert_allclose(classifier.predict(x), factored.predict(x, verbose=0), rtol=1e-4, atol=1e-4)
    calibration = np.random.default_rng(2).uniform(-2, 2, (8, 12, 12, 3)).astype(np.float32)
    int8 = to_tflite(factorize(model, "tucker2", rank={"conv_b": (4, 6)}), int8=True, calibration=calibration)
    assert custom_op_names(int8) == [] and len(int8) > 0


def test_factorized_model_saves_and_loads(tmp_path):
    model = small_model()
    factored = factorize(model, "cp", rank=4, layers=["conv_b"], cp_iterations=20)
    factored.save(tmp_path / "f.keras")
    loaded = keras.models.load_model(tmp_path / "f.keras")
    np.testing.assert_allclose(loaded(images()), factored(images()), rtol=1e-5, atol=1e-6)


def test_bad_ranks_and_unsupported_layers_give_clear_errors():
    model = small_model()
    with pytest.raises(TfcompressError, match="'conv_b': rank must be positive"):
        factorize(model, "svd", rank={"conv_b": 0})
    with pytest.raises(TfcompressError, match=r"'conv_b': rank 500 is larger than spatial_svd allows here \(at most"):
        factorize(model, "spatial_svd", rank={"conv_b": 500})
    with pytest.raises(TfcompressError, match="Tucker-2 output rank 13 is larger than its 12 channels"):
        factorize(model, "tucker2", rank={"conv_b": (2, 13)})
    with pytest.raises(TfcompressError, match="unknown factorization method 'qr'"):
        factorize(model, "qr", rank=2)
    with pytest.raises(UnsupportedLayerError, match="'bn_b' is a BatchNormalization"):
        factorize(model, "svd", rank=2, layers=["bn_b"])
    with pytest.raises(TfcompressError, match="no layer named 'nope'"):
        factorize(model, "svd", rank=2, layers=["nope"])
    with pytest.raises(TfcompressError, match="exactly one of"):
        factorize(model, "svd", rank=2, target=("macs", 0.5))
    with pytest.raises(TfcompressError, match=r"target ratio must be in \(0, 1\)"):
        Target("macs", 1.5)
    # With every layer considered, those a rank does not fit are kept with a reason.
    plan = make_plan(model, "svd", rank=6)
    assert "conv_b" in plan.ranks
    assert any(r.layer == "logits" and r.reason.startswith("Dense: rank 6 is larger") for r in plan.skipped)

    inputs = keras.Input((8, 8, 4))
    grouped = keras.Model(inputs, keras.layers.Conv2D(4, 3, groups=2, name="grouped")(inputs))
    with pytest.raises(UnsupportedLayerError, match="'grouped' is a grouped conv"):
        factorize(grouped, "tucker2", rank=2, layers=["grouped"])
    with pytest.raises(TfcompressError, match=r"no layer would get cheaper.*grouped conv"):
        factorize(grouped, "tucker2", rank=2)


def test_finetune_step_under_mirrored_strategy(image_folder, tmp_path):
    from tfcompress.models import build_model

    model = build_model("resnet8", num_classes=3, image_size=24, width=8)
    factored = factorize(model, "tucker2", rank=(4, 4), layers=["stage2_block1_conv2", "stage3_block1_conv2"])
    before = [w.copy() for w in factored.get_weights()]
    tuned = finetune(factored, tmp_path / "tuned.keras", image_folder, epochs=1, batch_size=4, devices=2, verbose=0)
    assert (tmp_path / "tuned.keras").is_file()
    changed = [not np.array_equal(a, b) for a, b in zip(before, tuned.get_weights(), strict=True)]
    assert any(changed)
    for a, b in zip(before, factored.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    loaded = keras.models.load_model(tmp_path / "tuned.keras")
    x = np.random.default_rng(0).uniform(0, 255, (2, 24, 24, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x), tuned(x), rtol=1e-4, atol=1e-4)


def test_cli_factorize_meets_a_mac_target_and_reports_errors_in_one_line(image_folder, tmp_path, capsys):
    from tfcompress.cli import main
    from tfcompress.models import build_model

    model = build_model("resnet8", num_classes=3, image_size=24, width=8)
    source = tmp_path / "in.keras"
    model.save(source)
    out = tmp_path / "out.keras"
    common = ["factorize", str(source), "--data", str(image_folder), "--method", "tucker2", "--epochs", "0"]
    layers = "stage2_block1_conv2,stage3_block1_conv1,stage3_block1_conv2"
    search = ["--target-macs", "0.8", "--layers", layers, "--eval-images", "3", "--rank-multiple", "1"]
    assert main([*common, *search, "-o", str(out)]) == 0
    loaded = keras.models.load_model(out)
    assert model_macs(loaded) <= 0.8 * model_macs(model)
    assert "stage1_block1_conv1" in {layer.name for layer in loaded.layers}
    assert "MACs" in capsys.readouterr().out
    status = main([*common, "--rank", "0", "-o", str(tmp_path / "bad.keras")])
    error = capsys.readouterr().err.strip()
    assert status == 2
    assert error.startswith("tfcompress factorize: error:") and "rank must be positive" in error
    assert "\n" not in error


def split_cp_reference(x: np.ndarray, kernels: list[np.ndarray], strides: tuple[int, int], padding: str) -> np.ndarray:
    """CP's four factors applied one after the other, strides split as (s_h, 1) then (1, s_w).

    Regular convolutions with diagonal kernels stand in for the depthwise factors: TensorFlow's
    CPU kernels run unequal strides for those.
    """
    import tensorflow as tf

    first, vertical, horizontal, last = kernels
    rank = first.shape[-1]

    def diagonal(kernel):  # (kh, kw, R, 1) depthwise -> (kh, kw, R, R) regular
        return kernel * np.eye(rank, dtype=np.float32)[None, None]

    y = tf.nn.conv2d(x, first, 1, "VALID")
    y = tf.nn.conv2d(y, diagonal(vertical), (1, strides[0], 1, 1), padding.upper())
    y = tf.nn.conv2d(y, diagonal(horizontal), (1, 1, strides[1], 1), padding.upper())
    return np.asarray(tf.nn.conv2d(y, last, 1, "VALID"))


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("size", [12, 13])
def test_strided_cp_merges_its_depthwise_factors_into_the_split_composition(padding, size):
    from tfcompress.lowrank.decompose import cp

    keras.utils.set_random_seed(4)
    inputs = keras.Input((size, size, 5))
    outputs = keras.layers.Conv2D(7, 3, strides=2, padding=padding, use_bias=False, name="conv")(inputs)
    model = keras.Model(inputs, outputs)
    factored = factorize(model, "cp", rank={"conv": 6}, cp_iterations=20)
    names = [layer.name for layer in factored.layers[1:]]
    assert names == ["conv_cp_in", "conv_cp_vh", "conv_cp_out"]
    merged = factored.get_layer("conv_cp_vh")
    assert merged.kernel_size == (3, 3) and merged.strides == (2, 2)
    x = np.random.default_rng(5).normal(size=(2, size, size, 5)).astype(np.float32)
    kernels = cp(model.get_layer("conv").kernel.numpy(), 6, 20, 0)
    reference = split_cp_reference(x, kernels, (2, 2), padding)
    np.testing.assert_allclose(factored(x), reference, rtol=1e-4, atol=1e-5)


def test_strided_cp_runs_on_tensorflows_own_cpu_kernels(tmp_path):
    import subprocess
    import sys

    script = """
import os
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
import tensorflow  # before tfcompress: nothing can switch oneDNN back on
import keras, numpy as np
from tfcompress.lowrank import factorize
from tfcompress.lowrank.decompose import cp
inputs = keras.Input((9, 9, 16))
model = keras.Model(inputs, keras.layers.Conv2D(24, 3, strides=2, padding="same", use_bias=False)(inputs))
factored = factorize(model, "cp", rank=8, cp_iterations=20)
first, vertical, horizontal, last = cp(model.layers[1].kernel.numpy(), 8, 20, 0)
# The kernel the four factors stand for: K[i, j, c, n] = sum_r first[c, r] v[i, r] h[j, r] last[r, n].
kernel = np.einsum("cr,ir,jr,rn->ijcn", first[0, 0], vertical[:, 0, :, 0], horizontal[0, :, :, 0], last[0, 0])
x = np.random.default_rng(0).normal(size=(2, 9, 9, 16)).astype(np.float32)
reference = tensorflow.nn.conv2d(x, kernel, 2, "SAME").numpy()
error = np.abs(factored(x).numpy() - reference).max() / np.abs(reference).max()
print(f"relative error {error:.2e}")
assert error < 1e-5, error
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "relative error" in result.stdout
