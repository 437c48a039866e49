"""Tests of tfcompress.distill: loss values, alpha/temperature, layer lookup, fitting, MirroredStrategy, CLI."""

from __future__ import annotations

import functools
import importlib.util
import math
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tfcompress.distill import (
    DistillConfig,
    attention_map,
    attention_transfer_loss,
    build_distiller,
    check_pairs,
    feature_matching_loss,
    finetune_layerwise,
    matching_layer_pairs,
    soft_target_loss,
)
from tfcompress.distribute import get_strategy
from tfcompress.errors import TfcompressError


@functools.cache
def load_distill_benchmark():
    """``benchmarks/distill.py`` as a module (a script, not part of the package), loaded once."""
    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("benchmark_distill", root / "benchmarks" / "distill.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    return benchmark


def _np_kl(teacher_logits, student_logits, temperature):
    def softmax(z):
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    p = softmax(np.asarray(teacher_logits, np.float64) / temperature)
    q = softmax(np.asarray(student_logits, np.float64) / temperature)
    return float(np.mean(np.sum(p * np.log(p / q), axis=-1)))


def _tiny_convnet(seed: int, size: int = 8, channels: int = 4, classes: int = 3, name: str = "net") -> keras.Model:
    """Conv -> ReLU -> Conv -> GAP -> Dense logits; no BatchNorm or dropout, so replicas agree exactly."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(channels, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(channels, 3, padding="same", name="conv2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


# ---- loss values against hand-computed ones ----


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_soft_target_loss_hand_computed(temperature):
    # Teacher logits T*[ln 3, 0] give p = [3/4, 1/4] at every T; zero student logits give q = [1/2, 1/2].
    teacher = np.array([[temperature * math.log(3.0), 0.0]], np.float32)
    student = np.zeros((1, 2), np.float32)
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # 0.130812...
    value = float(soft_target_loss(teacher, student, temperature))
    assert value == pytest.approx(temperature**2 * kl, rel=1e-5)


def test_soft_target_loss_matches_reference_on_a_batch():
    rng = np.random.default_rng(0)
    teacher = rng.normal(0, 3, (5, 4)).astype(np.float32)
    student = rng.normal(0, 3, (5, 4)).astype(np.float32)
    for temperature in (1.0, 3.0):
        expected = temperature**2 * _np_kl(teacher, student, temperature)
        assert float(soft_target_loss(teacher, student, temperature)) == pytest.approx(expected, rel=1e-5)
        # Keras's own LogitsDistillation (T^2-scaled, clipped KL) agrees on moderate logits when given a
        # KLDivergence instance (its default string "kl_divergence" resolves to a function that skips the
        # softmax and the T^2 in Keras 3.15.1, which is why SoftTargets computes the term itself).
        keras_term = keras.distillation.LogitsDistillation(temperature=temperature, loss=keras.losses.KLDivergence())
        assert float(keras_term.compute_loss(teacher, student)) == pytest.approx(expected, rel=1e-4)
    assert float(soft_target_loss(teacher, teacher, 2.0)) == pytest.approx(0.0, abs=1e-6)


def test_attention_map_and_loss_hand_computed():
    # Two positions, two channels: energies mean_c a^2 = [(9+16)/2, 0] -> normalised map [1, 0].
    features = np.array([[[[3.0, 4.0]], [[0.0, 0.0]]]], np.float32)  # (1, 2, 1, 2)
    np.testing.assert_allclose(np.asarray(attention_map(features)), [[1.0, 0.0]], atol=1e-6)
    other = np.array([[[[1.0]], [[1.0]]]], np.float32)  # map [1/sqrt2, 1/sqrt2]
    expected = ((1 - 1 / math.sqrt(2)) ** 2 + (0 - 1 / math.sqrt(2)) ** 2) / 2
    assert float(attention_transfer_loss(features, other)) == pytest.approx(expected, rel=1e-5)
    # Channel counts may differ and scale does not matter: a scaled copy has zero loss.
    assert float(attention_transfer_loss(features, 7.0 * features)) == pytest.approx(0.0, abs=1e-7)


def test_feature_matching_loss_hand_computed():
    teacher = np.array([[3.0, 4.0], [1.0, 0.0]], np.float32)
    student = np.array([[3.0, 3.0], [0.0, 0.0]], np.float32)
    # Example 1: error 1, energy 25 -> 0.04; example 2: error 1, energy 1 -> 1; mean 0.52.
    assert float(feature_matching_loss(teacher, student)) == pytest.approx(0.52, rel=1e-5)


# ---- temperature and alpha as documented: L = alpha * CE + (1 - alpha) * T^2 KL ----


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_alpha_mixes_hard_and_soft_loss(alpha):
    teacher, student = _tiny_convnet(1, name="teacher"), _tiny_convnet(2, name="student")
    temperature = 3.0
    distiller = build_distiller(teacher, student, temperature=temperature, alpha=alpha)
    distiller.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).uniform(0, 1, (6, 8, 8, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    y_pred = distiller(x, training=False)
    total = float(distiller.compute_loss(x=x, y=y, y_pred=y_pred))
    student_logits = student.predict(x, verbose=0)
    teacher_logits = teacher.predict(x, verbose=0)
    shifted = student_logits - student_logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    hard = -float(np.mean(log_probs[np.arange(6), y]))
    soft = temperature**2 * _np_kl(teacher_logits, student_logits, temperature)
    assert total == pytest.approx(alpha * hard + (1 - alpha) * soft, rel=1e-4, abs=1e-7)


def test_bad_alpha_and_temperature_are_refused():
    teacher, student = _tiny_convnet(1), _tiny_convnet(2)
    with pytest.raises(TfcompressError, match="alpha"):
        build_distiller(teacher, student, alpha=1.5)
    with pytest.raises(TfcompressError, match="temperature"):
        build_distiller(teacher, student, temperature=0.0)


# ---- layer lookup ----


def test_wrong_layer_name_fails_clearly():
    teacher, student = _tiny_convnet(1), _tiny_convnet(2)
    with pytest.raises(TfcompressError, match=r"student model .* no layer named 'conv3'; did you mean conv2, conv1\?"):
        build_distiller(teacher, student, feature_pairs=[("conv1", "conv3")])
    with pytest.raises(TfcompressError, match=r"teacher model .* no layer named 'nope'"):
        build_distiller(teacher, student, attention_pairs=["nope"])


def test_shape_mismatch_fails_clearly():
    teacher, student = _tiny_convnet(1, channels=8), _tiny_convnet(2, channels=4)
    with pytest.raises(TfcompressError, match=r"teacher output \(8, 8, 8\) and student output \(8, 8, 4\) differ"):
        build_distiller(teacher, student, feature_pairs=["conv2"])
    # Attention transfer accepts different channel counts, but not a flat or smaller map.
    build_distiller(teacher, student, attention_pairs=["conv2"])
    with pytest.raises(TfcompressError, match="needs 4-D feature maps"):
        check_pairs(teacher, student, [("conv2", "pool")], match="spatial")


def test_matching_layer_pairs_skips_changed_shapes_and_outputs():
    teacher, student = _tiny_convnet(1, channels=8), _tiny_convnet(2, channels=8)
    assert matching_layer_pairs(teacher, student) == [("conv1", "conv1"), ("conv2", "conv2")]
    thinner = _tiny_convnet(3, channels=4)
    assert matching_layer_pairs(teacher, thinner) == []


# ---- fitting ----


def test_layerwise_finetune_lowers_kl_and_keeps_inputs():
    teacher, student = _tiny_convnet(1, name="teacher"), _tiny_convnet(2, name="student")
    before_weights = [w.copy() for w in student.get_weights()]
    x = np.random.default_rng(1).uniform(0, 1, (64, 8, 8, 3)).astype(np.float32)
    kl_before = _np_kl(teacher.predict(x, verbose=0), student.predict(x, verbose=0), 1.0)
    tuned = finetune_layerwise(student, teacher, x, epochs=15, batch_size=16, learning_rate=0.02)
    kl_after = _np_kl(teacher.predict(x, verbose=0), tuned.predict(x, verbose=0), 1.0)
    assert kl_after < 0.3 * kl_before
    # The inputs are untouched: the student's weights and the teacher's trainability.
    for before, now in zip(before_weights, student.get_weights(), strict=True):
        np.testing.assert_array_equal(before, now)
    assert teacher.trainable and student.trainable
    assert tuned is not student


def test_layerwise_finetune_trains_only_the_named_layers():
    teacher, student = _tiny_convnet(1), _tiny_convnet(2)
    x = np.random.default_rng(2).uniform(0, 1, (16, 8, 8, 3)).astype(np.float32)
    tuned = finetune_layerwise(student, teacher, x, epochs=1, batch_size=8, trainable_layers=["conv2"])
    changed = {
        layer.name
        for layer, new in zip(student.layers, tuned.layers, strict=True)
        if any(not np.array_equal(a, b) for a, b in zip(layer.get_weights(), new.get_weights(), strict=True))
    }
    assert changed == {"conv2"}
    with pytest.raises(TfcompressError, match="no layer named 'conv9'"):
        finetune_layerwise(student, teacher, x, trainable_layers=["conv9"])
    with pytest.raises(TfcompressError, match="no labels"):
        finetune_layerwise(student, teacher, x, alpha=0.5)


def test_distilled_step_under_mirrored_strategy_matches_one_device():
    """One SGD step of hard + soft + attention + feature terms: 2 replicas == 1 device."""
    import tensorflow as tf

    x = np.random.default_rng(3).uniform(0, 1, (8, 8, 8, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    # One MirroredStrategy per test process: several instances collide on collective keys
    # (tensorflow/tensorflow#62790, "Shape mismatch in the collective instance").
    mirrored = get_strategy(2)
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    results = []
    for strategy in (tf.distribute.get_strategy(), mirrored):
        teacher, student = _tiny_convnet(1, name="teacher"), _tiny_convnet(2, name="student")
        with strategy.scope():
            distiller = build_distiller(
                teacher, student, temperature=2.0, alpha=0.3, attention_pairs=["relu1"], feature_pairs=["conv2"]
            )
            distiller.compile(
                optimizer=keras.optimizers.SGD(0.5), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            )
        history = distiller.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), epochs=1, verbose=0)
        results.append((history.history["loss"][0], distiller.student.get_weights()))
    (loss_one, weights_one), (loss_two, weights_two) = results
    assert loss_two == pytest.approx(loss_one, rel=1e-4)
    moved = max(float(np.abs(a - b).max()) for a, b in zip(weights_one, _tiny_convnet(2).get_weights(), strict=True))
    assert moved > 1e-3
    for a, b in zip(weights_one, weights_two, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# ---- the fit helper and the CLI ----


def test_cli_distills_a_student_and_refuses_to_overwrite(tmp_path, image_folder, capsys):
    from tfcompress.cli import main
    from tfcompress.convert import load_keras_model
    from tfcompress.models import build_model

    teacher_path = tmp_path / "teacher.keras"
    build_model("resnet8", num_classes=3, image_size=24, width=4).save(teacher_path)
    output = tmp_path / "student.keras"
    args = [
        "distill",
        "--teacher",
        str(teacher_path),
        "--student",
        "resnet8",
        "--width",
        "4",
        "--image-size",
        "24",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--mixup",
        "0.2",
        "--label-smoothing",
        "0",
        "--teacher-precision",
        "mixed_bfloat16",
        "--data",
        str(image_folder),
        "-o",
        str(output),
    ]
    assert main(args) == 0
    student = load_keras_model(output)
    assert student.name == "resnet8" and student.output_shape == (None, 3)
    stamp = output.stat().st_mtime_ns
    assert main(args) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert output.stat().st_mtime_ns == stamp


def test_an_efficientnet_lite0_student_needs_no_width(tmp_path, image_folder):
    """The fixed-width zoo model is a student too: the default --width (0.35) is not passed to it."""
    from tfcompress.cli import main
    from tfcompress.convert import load_keras_model
    from tfcompress.models import build_model

    teacher_path = tmp_path / "teacher.keras"
    build_model("resnet8", num_classes=3, image_size=24, width=4).save(teacher_path)
    output = tmp_path / "student.keras"
    args = ["distill", "--teacher", str(teacher_path), "--student", "efficientnet_lite0", "--image-size", "32"]
    args += ["--epochs", "1", "--batch-size", "4", "--data", str(image_folder), "-o", str(output)]
    assert main(args) == 0
    student = load_keras_model(output)
    assert student.name == "efficientnet_lite0" and student.input_shape == (None, 32, 32, 3)
    assert student.output_shape == (None, 3)


def test_distill_refuses_a_teacher_with_other_classes(tmp_path, image_folder):
    from tfcompress.distill import distill
    from tfcompress.models import build_model

    teacher = build_model("resnet8", num_classes=5, image_size=24, width=4)
    config = DistillConfig(model="resnet8", width=4, image_size=24, epochs=1, batch_size=4)
    with pytest.raises(TfcompressError, match="5 outputs but the data have 3 classes"):
        distill(tmp_path / "s.keras", teacher, image_folder, config)


def test_a_student_smaller_than_its_teacher_sees_the_teachers_batch_resized(tmp_path, image_folder):
    from tfcompress.distill import DistillConfig, distill
    from tfcompress.distill.fit import resized_input
    from tfcompress.models import build_model

    keras.utils.set_random_seed(0)
    teacher = build_model("resnet8", num_classes=3, image_size=32, width=4)
    config = DistillConfig(model="resnet8", width=4, image_size=24, epochs=1, batch_size=4, warmup_epochs=0)
    student = distill(tmp_path / "s.keras", teacher, image_folder, config, verbose=0)
    saved = keras.models.load_model(tmp_path / "s.keras")
    assert saved.inputs[0].shape[1:] == (24, 24, 3) and saved.name == "resnet8"
    x = np.random.default_rng(0).uniform(0, 255, (2, 24, 24, 3)).astype(np.float32)
    np.testing.assert_allclose(saved.predict(x, verbose=0), student.predict(x, verbose=0), atol=1e-5)
    shell = resized_input(saved, 32)
    big = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    small = keras.ops.convert_to_numpy(keras.layers.Resizing(24, 24)(big))
    np.testing.assert_allclose(shell.predict(big, verbose=0), saved.predict(small, verbose=0), atol=1e-4)
    assert resized_input(saved, 24) is saved
    with pytest.raises(TfcompressError, match="one input size"):
        distill(tmp_path / "a.keras", teacher, image_folder, config, attention_pairs=[("stem_conv", "stem_conv")])


def test_distill_benchmark_headroom_counts_what_imitating_the_teacher_could_change():
    benchmark = load_distill_benchmark()
    labels = np.array([0, 1, 2, 0, 1])
    teacher = np.eye(3)[[0, 1, 1, 0, 2]] * 5.0  # right on images 0, 1, 3
    student = np.eye(3)[[0, 0, 2, 1, 2]] * 5.0  # right on images 0, 2
    assert benchmark.headroom(teacher, student, labels) == {
        "teacher_right_student_wrong": 2,  # images 1 and 3
        "teacher_wrong_student_right": 1,  # image 2
        "both_wrong": 1,  # image 4
    }


def test_distill_benchmark_keeps_other_student_widths_apart():
    benchmark = load_distill_benchmark()
    width = benchmark.STUDENT["width"]
    assert benchmark.work_dir(width) == Path("models/.work/distill")
    assert benchmark.work_dir(8) == Path("models/.work/distill/w8")
    assert (benchmark.results_stem(width), benchmark.results_stem(8)) == ("distill", "distill_w8")
    assert benchmark.student_settings(8) == {**benchmark.STUDENT, "width": 8}
    # a result saved before the student field was recorded reads as the benchmark's student
    assert benchmark.result_student({}) == benchmark.STUDENT
    assert benchmark.student_name(benchmark.result_student({"student": {"model": "resnet8", "width": 8}})) == (
        "resnet8 width 8"
    )


def test_distill_benchmark_names_ablations_by_what_differs_and_finds_their_teacher(tmp_path):
    benchmark = load_distill_benchmark()
    students = sys.modules["train_flowers_students"]
    teacher = students.TEACHER
    assert students.distilled_run_name(0) == "kd_s0"
    assert students.distilled_run_name(1, temperature=1.0) == "kd_T1_a0.1_s1"
    assert students.distilled_run_name(0, teacher=Path("models/.work/float_nols30.keras")) == "kd_float_nols30_s0"
    assert students.distilled_run_name(0, 2.0, 0.5, Path("x/t.keras")) == "kd_t_T2_a0.5_s0"
    # an ablation's teacher is read from the .teacher file its runs leave
    (tmp_path / "kd_other_s1.teacher").write_text("models/.work/other.keras\n")
    (tmp_path / "kd_T1_a0.1_s0.teacher").write_text(f"{teacher}\n")
    assert benchmark.other_teacher(tmp_path, "kd_other", str(teacher)) == "models/.work/other.keras"
    assert benchmark.other_teacher(tmp_path, "kd_T1_a0.1", str(teacher)) is None
    assert benchmark.other_teacher(tmp_path, "kd_missing", str(teacher)) is None


def test_distill_benchmark_compares_a_mixup_ablation_with_scratch_runs_of_the_same_mixup(tmp_path):
    benchmark = load_distill_benchmark()
    students = sys.modules["train_flowers_students"]
    assert students.scratch_run_name(0) == "scratch_s0"
    assert students.scratch_run_name(1, mixup=1.0) == "scratch_mix1_s1"
    assert students.distilled_run_name(0, mixup=1.0) == "kd_mix1_s0"
    assert students.distilled_run_name(1, 2.0, 0.5, Path("x/t.keras"), 0.5) == "kd_t_T2_a0.5_mix0.5_s1"
    assert students.student_settings(mixup=1.0)["mixup"] == 1.0
    for name in ("scratch_s0", "scratch_mix1_s0", "scratch_mix1_s1", "kd_s0", "kd_mix1_s0", "kd_T1_a0.1_s0"):
        (tmp_path / f"{name}.keras").write_bytes(b"")
    (tmp_path / "scratch_mix1_s0_backup").mkdir()
    assert benchmark.ablation_kinds(tmp_path) == [
        ("scratch mix1", "scratch_mix1"),
        ("distilled T1_a0.1", "kd_T1_a0.1"),
        ("distilled mix1", "kd_mix1"),
    ]
    rows = {"scratch": [{"seed": 0, "top1": 0.70}], "scratch mix1": [{"seed": 0, "top1": 0.66}]}
    assert benchmark.baseline_kind("distilled mix1", rows) == "scratch mix1"
    assert benchmark.baseline_kind("distilled T1_a0.1", rows) == "scratch"
    assert benchmark.baseline_kind("distilled mix0.5", rows) == "scratch"  # no scratch run with that mixup
    assert benchmark.baseline_kind("scratch mix1", rows) == "scratch"
    assert benchmark.mixup_tag("distilled float_mixed_T2_a0.5_mix0.5") == "mix0.5"
    assert benchmark.mixup_tag("distilled float_nols30") is None
    assert benchmark.ablation_mixups(["scratch mix1", "distilled mix1", "distilled T1_a0.1", "distilled mix0.5"]) == [
        0.5,
        1.0,
    ]
    gaps = {"mixup 0.2": {"mean_total_variation": 0.26}, "mixup 1": {"mean_total_variation": 0.33}}
    result = {
        "student": students.student_settings(),
        "teacher": {"transfer_set_gaps": gaps},
        "ablations": ["scratch mix1", "distilled mix1"],
        "scratch": [{"seed": 0, "top1": 0.68}, {"seed": 1, "top1": 0.70}],
        "distilled": [{"seed": 0, "top1": 0.70}, {"seed": 1, "top1": 0.69}],
        "scratch mix1": [{"seed": 0, "top1": 0.66}, {"seed": 1, "top1": 0.67}],
        "distilled mix1": [{"seed": 0, "top1": 0.69}],  # seed 1 still training: compared on seed 0 only
    }
    (line,) = benchmark.gain_by_transfer_gap(result)
    assert "mixup 0.2: total variation 0.260, gain +0.50 points (2 seeds)" in line
    assert "mixup 1: total variation 0.330, gain +3.00 points (1 seed)" in line
    assert benchmark.gain_by_transfer_gap({**result, "ablations": []}) == []  # nothing to compare with


def test_distill_benchmark_names_a_missing_teacher_in_one_line(tmp_path):
    benchmark = load_distill_benchmark()
    with pytest.raises(SystemExit, match=r"error: .*missing_teacher\.keras not found"):
        benchmark.tflite_for(tmp_path / "missing_teacher.keras", tmp_path)


def test_distill_benchmark_target_gap_hand_computed():
    benchmark = load_distill_benchmark()
    teacher = np.array([[0.7, 0.2, 0.1], [0.5, 0.4, 0.1]])
    targets = np.array([[1.0, 0.0, 0.0], [0.25, 0.75, 0.0]])  # one-hot; a mixed label, lambda 0.25
    # TV: 1/2 (0.3 + 0.2 + 0.1) = 0.3 and 1/2 (0.25 + 0.35 + 0.1) = 0.35; top classes agree on the first only
    gap = benchmark.target_gap(teacher, targets)
    assert gap["mean_total_variation"] == pytest.approx(0.325)
    assert gap["top_class_agreement"] == pytest.approx(0.5)
    assert benchmark.target_gap(targets, targets)["mean_total_variation"] == 0.0


def test_distill_benchmark_soft_target_stats_hand_computed():
    benchmark = load_distill_benchmark()
    # image 0: right, wrong classes equal; image 1: wrong, its wrong classes unequal
    logits = np.log(np.array([[0.7, 0.1, 0.1, 0.1], [0.2, 0.5, 0.2, 0.1]]))
    labels = np.array([0, 0])
    stats = benchmark.soft_target_stats(logits, labels)
    assert stats["top1"] == 0.5
    one = stats["T=1"]
    assert math.isclose(one["mean_max_probability"], (0.7 + 0.5) / 2)
    assert math.isclose(one["mean_true_class_probability"], (0.7 + 0.2) / 2)
    entropy = [-(p * np.log(p)).sum() for p in (np.array([0.7, 0.1, 0.1, 0.1]), np.array([0.2, 0.5, 0.2, 0.1]))]
    assert math.isclose(one["mean_entropy_nats"], np.mean(entropy))
    wrong = [math.log(3), -(np.array([0.625, 0.25, 0.125]) * np.log([0.625, 0.25, 0.125])).sum()]
    assert math.isclose(stats["wrong_class_entropy_nats"], np.mean(wrong))
    # at the benchmark's temperature the targets are flatter
    assert stats[f"T={benchmark.TEMPERATURE:g}"]["mean_entropy_nats"] > one["mean_entropy_nats"]


def test_a_finetune_leaves_its_teacher_trainable_so_a_model_cloned_from_it_trains(tmp_path):
    """Keras' Distiller freezes its teacher: the teacher given must stay as it was (a regression: the
    input model, made non-trainable by its first distilled finetune, gave clones that never trained)."""
    from conftest import make_image_folder

    from tfcompress.models import build_model
    from tfcompress.pruning.finetune import FinetuneConfig, finetune

    data = make_image_folder(tmp_path / "data")
    keras.utils.set_random_seed(0)
    model = build_model("resnet8", num_classes=3, image_size=24, width=4)
    before = [w.copy() for w in model.get_weights()]

    def clone() -> keras.Model:
        copy = keras.models.clone_model(model)
        copy.set_weights(before)
        return copy

    for _ in range(2):
        trained = finetune(clone, data, 24, FinetuneConfig(epochs=1, batch_size=4), teacher=model, verbose=0)
        assert model.trainable and all(layer.trainable for layer in model.layers)
        kernels = [layer.name for layer in model.layers if hasattr(layer, "kernel")]
        moved = [
            not np.array_equal(trained.get_layer(name).kernel.numpy(), model.get_layer(name).kernel.numpy())
            for name in kernels
        ]
        assert kernels and all(moved)
