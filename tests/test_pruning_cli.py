"""``tfcompress prune`` / ``tfcompress slim``: end to end on a tiny folder, and one-line errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfcompress.cli import main
from tfcompress.models import build_model


def _tiny_model(path) -> None:
    keras.utils.set_random_seed(0)
    build_model("resnet8", num_classes=3, image_size=24, width=4).save(path)


def test_prune_command_finetunes_to_the_target_and_writes_plain_keras(image_folder, tmp_path, capsys):
    source, output = tmp_path / "in.keras", tmp_path / "out.keras"
    _tiny_model(source)
    status = main(
        ["prune", str(source), "--data", str(image_folder), "--sparsity", "0.6", "--epochs", "2",
         "--batch-size", "4", "--exclude", "stem_conv", "-o", str(output)]
    )  # fmt: skip
    assert status == 0
    printed = capsys.readouterr().out
    assert "left dense: stem_conv" in printed and "stem_bn (BatchNormalization" in printed
    pruned = keras.models.load_model(output)
    kernel = keras.ops.convert_to_numpy(pruned.get_layer("stage2_block1_conv2").kernel)
    assert np.mean(kernel == 0) == np.float64(round(0.6 * kernel.size) / kernel.size)
    assert np.all(keras.ops.convert_to_numpy(pruned.get_layer("stem_conv").kernel) != 0)


def test_bad_options_print_one_line_errors(image_folder, tmp_path, capsys):
    source = tmp_path / "in.keras"
    _tiny_model(source)
    out = str(tmp_path / "o.keras")
    assert main(["prune", str(source), "--sparsity", "1.0", "-o", out]) == 2
    assert "sparsity must be in [0, 1)" in capsys.readouterr().err
    assert main(["prune", str(source), "--sparsity", "0.5", "--granularity", "2:5", "-o", out]) == 2
    assert "does not divide its input dimension" in capsys.readouterr().err
    assert main(["slim", str(source), "--data", str(image_folder), "--ratio", "1.5", "-o", out]) == 2
    assert "--ratio must be in [0, 1)" in capsys.readouterr().err
    bad_alpha = ["prune", str(source), "--data", str(image_folder), "--sparsity", "0.5", "--distill", "--alpha", "1.5"]
    assert main([*bad_alpha, "-o", out]) == 2
    assert "alpha (the hard-loss weight) must be in [0, 1], got 1.5" in capsys.readouterr().err


def test_distilled_prune_finetune_runs_with_a_backup_folder(image_folder, tmp_path):
    from tfcompress.pruning.finetune import FinetuneConfig
    from tfcompress.pruning.pipeline import prune_and_finetune

    keras.utils.set_random_seed(0)
    model = build_model("resnet8", num_classes=3, image_size=24, width=4)
    config = FinetuneConfig(epochs=1, batch_size=4)
    backup = tmp_path / "backup"
    pruned = prune_and_finetune(model, image_folder, 0.5, config=config, teacher=model, backup_dir=backup, verbose=0)
    kernel = keras.ops.convert_to_numpy(pruned.get_layer("stage2_block1_conv2").kernel)
    assert np.mean(kernel == 0) == np.float64(round(0.5 * kernel.size) / kernel.size)


def test_share_command_finetunes_centroids_and_converts_to_a_coded_file(image_folder, tmp_path, capsys):
    from tflite_run import run_batch

    from tfcompress.convert import to_tflite
    from tfcompress.pruning.layers import shared_layers

    source, pruned_path, output = tmp_path / "in.keras", tmp_path / "pruned.keras", tmp_path / "shared.keras"
    _tiny_model(source)
    assert main(["prune", str(source), "--data", str(image_folder), "--sparsity", "0.6", "--epochs", "0",
                 "-o", str(pruned_path)]) == 0  # fmt: skip
    status = main(
        ["share", str(pruned_path), "--data", str(image_folder), "--conv-bits", "4", "--dense-bits", "3",
         "--epochs", "1", "--batch-size", "4", "--distill", "--alpha", "0", "--temperature", "2", "-o", str(output)]
    )  # fmt: skip
    assert status == 0
    assert "centroids finetuned 1 epoch(s)" in capsys.readouterr().out
    shared = keras.models.load_model(output)
    for layer in shared_layers(shared):
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        assert len(np.unique(kernel[kernel != 0])) <= 2**layer.weight_bits - 1
    x = np.random.default_rng(0).uniform(0, 255, (2, 24, 24, 3)).astype(np.float32)
    np.testing.assert_allclose(run_batch(to_tflite(shared), x), keras.ops.convert_to_numpy(shared(x)), atol=1e-4)
    assert main(["share", str(pruned_path), "--conv-bits", "9", "-o", str(tmp_path / "bad.keras")]) == 2
    assert "must be in [1, 8]" in capsys.readouterr().err
    dense_path = tmp_path / "dense_mode.keras"
    assert main(["share", str(pruned_path), "--gap-bits", "0", "--epochs", "0", "-o", str(dense_path)]) == 0
    assert {layer.gap_bits for layer in shared_layers(keras.models.load_model(dense_path))} == {0}
    with pytest.raises(SystemExit):  # argparse: not a choice
        main(["share", str(pruned_path), "--gap-bits", "9", "-o", str(tmp_path / "bad.keras")])


def test_teacher_option_distils_from_the_given_model_not_the_input(tmp_path):
    import argparse

    from tfcompress.commands.lowrank import _teacher as factorize_teacher
    from tfcompress.commands.pruning import _teacher as pruning_teacher

    teacher_path = tmp_path / "teacher.keras"
    _tiny_model(teacher_path)
    keras.utils.set_random_seed(1)
    student = build_model("resnet8", num_classes=3, image_size=24, width=4)
    expected = keras.models.load_model(teacher_path).get_weights()
    for pick in (pruning_teacher, factorize_teacher):
        chosen = pick(argparse.Namespace(distill=False, teacher=str(teacher_path)), student)
        assert all(np.array_equal(a, b) for a, b in zip(chosen.get_weights(), expected, strict=True))
        assert pick(argparse.Namespace(distill=False, teacher=None), student) is None
        from_input = pick(argparse.Namespace(distill=True, teacher=None), student)
        assert all(np.array_equal(a, b) for a, b in zip(from_input.get_weights(), student.get_weights(), strict=True))
