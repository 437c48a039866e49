"""Real-to-Binary two-stage distillation, the Adam recipe option and int8-weight conversion of binary nets."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import tfcompress.binary  # noqa: F401  (registers binary_resnet18)
from tfcompress.binary.real_to_binary import STAGE1_FILE, binary_student, real_to_binary, real_weights_student
from tfcompress.distill import DistillConfig
from tfcompress.errors import TfcompressError
from tfcompress.models import build_model
from tfcompress.training import TrainConfig, make_optimizer

# teacher resnet8 at 24 px: stage outputs 12, 6, 3; binary student (stride-2 stem + pool): 6, 3, 2, 1
PAIRS = [("stage2_block1_out", "stage1_block2_unit2_add"), ("stage3_block1_out", "stage2_block2_unit2_add")]


def _config(**overrides) -> DistillConfig:
    settings = {"model": "binary_resnet18", "width": 4, "image_size": 24, "epochs": 1, "batch_size": 4}
    settings.update(optimizer="adam", learning_rate=2e-3, weight_decay=1e-5, **overrides)
    return DistillConfig(**settings)


def _quantizers(model: keras.Model) -> set:
    return {layer.kernel_quantizer.name if layer.kernel_quantizer else None for layer in _binary_layers(model)}


def _binary_layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if type(layer).__name__ == "BinaryConv2D"]


def test_stage_students_share_variables_and_differ_only_in_the_kernel_quantizer():
    student = build_model("binary_resnet18", num_classes=3, image_size=24, width=4)
    before = _binary_layers(student)[0].kernel.numpy().copy()
    real = real_weights_student(student)
    assert _quantizers(student) == {"magnitude_aware_sign"} and _quantizers(real) == {None}
    assert {layer.input_quantizer.name for layer in _binary_layers(real)} == {"approx_sign"}  # activations stay binary
    assert all(layer.kernel_constraint is None for layer in _binary_layers(real))
    for mine, theirs in zip(real.get_weights(), student.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    images = np.random.default_rng(0).uniform(0, 255, (2, 24, 24, 3)).astype(np.float32)
    assert not np.allclose(real.predict(images, verbose=0), student.predict(images, verbose=0))  # real kernels differ
    for layer in _binary_layers(real):  # stage 1 trains: its weights move away from the template's
        layer.kernel.assign(layer.kernel * 0.5 + 0.01)
    binary = binary_student(student, real)
    assert _quantizers(binary) == {"magnitude_aware_sign"}
    for mine, theirs in zip(binary.get_weights(), real.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(_binary_layers(student)[0].kernel.numpy(), before)  # the template is not modified


def test_a_model_without_binary_layers_is_refused():
    with pytest.raises(TfcompressError, match="no BinaryConv2D or BinaryDense layer"):
        real_weights_student(build_model("resnet8", num_classes=3, image_size=24, width=4))


def test_two_stages_write_a_binary_student_and_resume_after_stage_one(tmp_path, image_folder, capsys):
    teacher = build_model("resnet8", num_classes=3, image_size=24, width=4)
    output, work = tmp_path / "binary.keras", tmp_path / "work"
    student = real_to_binary(output, teacher, image_folder, _config(), attention_pairs=PAIRS, backup_dir=work)
    assert "stage 1 of 2" in capsys.readouterr().out
    from tfcompress.convert import load_keras_model

    assert _quantizers(load_keras_model(output)) == {"magnitude_aware_sign"} == _quantizers(student)
    assert _quantizers(load_keras_model(work / STAGE1_FILE)) == {None}
    stamp = (work / STAGE1_FILE).stat().st_mtime_ns
    real_to_binary(output, teacher, image_folder, _config(), attention_pairs=PAIRS, backup_dir=work, force=True)
    assert "stage 1 (binary activations, real weights): done" in capsys.readouterr().out
    assert (work / STAGE1_FILE).stat().st_mtime_ns == stamp  # stage 1 is not trained again
    with pytest.raises(TfcompressError, match="already exists"):
        real_to_binary(output, teacher, image_folder, _config(), backup_dir=work)


def test_two_stages_under_mirrored_strategy(tmp_path, image_folder):
    teacher = build_model("resnet8", num_classes=3, image_size=24, width=4)
    student = real_to_binary(tmp_path / "b.keras", teacher, image_folder, _config(), devices=2, verbose=0)
    assert _quantizers(student) == {"magnitude_aware_sign"}
    assert student.output_shape == (None, 3)


def test_cli_real_to_binary(tmp_path, image_folder):
    from tfcompress.cli import main

    teacher = tmp_path / "teacher.keras"
    build_model("resnet8", num_classes=3, image_size=24, width=4).save(teacher)
    output = tmp_path / "binary.keras"
    args = ["distill", "--teacher", str(teacher), "--student", "binary_resnet18", "--width", "4", "--real-to-binary"]
    args += ["--image-size", "24", "--epochs", "1", "--batch-size", "4", "--optimizer", "adam"]
    args += ["--attention", "stage2_block1_out:stage1_block2_unit2_add", "--data", str(image_folder), "-o", str(output)]
    assert main(args) == 0
    from tfcompress.convert import load_keras_model

    assert _quantizers(load_keras_model(output)) == {"magnitude_aware_sign"}
    assert main([*args[:-2], "--student", "resnet8", "-o", str(tmp_path / "plain.keras")]) == 2  # not binary


def test_adam_option_builds_adamw_and_an_unknown_optimizer_is_refused():
    sgd = make_optimizer(TrainConfig(), 10)
    adam = make_optimizer(TrainConfig(optimizer="adam", weight_decay=0.0), 10)
    assert isinstance(sgd, keras.optimizers.SGD) and isinstance(adam, keras.optimizers.AdamW)
    assert adam.weight_decay == 0.0
    with pytest.raises(TfcompressError, match="unknown optimizer 'lamb'"):
        make_optimizer(TrainConfig(optimizer="lamb"), 10)


def test_int8_weights_shrink_the_float_parts_of_a_binary_net_and_keep_its_outputs(tmp_path):
    from tfcompress.convert import convert, to_tflite
    from tfcompress.evaluate import TFLiteClassifier

    keras.utils.set_random_seed(0)
    model = build_model("binary_resnet18", num_classes=3, image_size=32, width=16)
    images = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    rng = np.random.default_rng(2)
    for layer in model.layers:  # trained-looking BN statistics, so no layer is a no-op
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.5, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape))
    float_file, int8_file = to_tflite(model), to_tflite(model, int8_weights=True)
    assert b"TfcBinaryConv2D" in int8_file  # the binary convs stay custom ops
    float_outputs = TFLiteClassifier(model_content=float_file).predict(images)
    int8_outputs = TFLiteClassifier(model_content=int8_file).predict(images)
    np.testing.assert_allclose(float_outputs, model.predict(images, verbose=0), atol=1e-4)
    scale = float(np.max(np.abs(float_outputs)))
    assert float(np.max(np.abs(int8_outputs - float_outputs))) < 0.1 * scale
    projections = sum(layer.kernel.numpy().size for layer in model.layers if layer.name.endswith("_proj"))
    assert len(float_file) - len(int8_file) > 2.5 * projections  # the 1x1 shortcuts' weights: 4 bytes -> 1
    with pytest.raises(TfcompressError, match="choose one of int8"):
        convert(model, tmp_path / "x.tflite", int8=True, int8_weights=True)


def test_auto_attention_pairs_each_resolution_of_the_binary_body_with_the_teachers_stage_end():
    from tfcompress.binary.real_to_binary import spatial_attention_pairs

    teacher = build_model("resnet18", num_classes=5, image_size=96, width=8)
    student = build_model("binary_resnet18", num_classes=5, image_size=96, width=8)
    assert spatial_attention_pairs(teacher, student) == [
        ("stage2_block2_out", "stage1_block2_unit2_add"),  # 24 x 24: the student's stem pools to it
        ("stage3_block2_out", "stage2_block2_unit2_add"),
        ("stage4_block2_out", "stage3_block2_unit2_add"),  # 6 x 6; the student's 3 x 3 stage has no partner
    ]
    assert spatial_attention_pairs(teacher, build_model("resnet8", num_classes=5, image_size=96, width=8)) == []


def test_binary_width_auto_is_the_stem_of_the_model():
    from tfcompress.compress.stages import binary_width

    assert binary_width(build_model("resnet8", num_classes=3, image_size=24, width=12), "auto") == 12
    assert binary_width(build_model("resnet8", num_classes=3, image_size=24, width=12), "48") == 48
    with pytest.raises(TfcompressError, match=r"option binary\.width must be auto or a channel count, got 'wide'"):
        binary_width(build_model("resnet8", num_classes=3, image_size=24, width=12), "wide")
