"""``tfcompress compress``: recipes end to end on a tiny model, resuming, recipe parsing, one-line errors."""

from __future__ import annotations

import hashlib
import json

import keras
import numpy as np
import pytest

from tfcompress.cli import main
from tfcompress.compress.recipes import builtin_recipe, load_recipe, with_overrides
from tfcompress.errors import TfcompressError
from tfcompress.models import build_model

# Short settings so that every recipe runs in seconds: one finetuning epoch, one penalty epoch, a
# data-free rank search (to 40% of the MACs: a tiny model's layers are small); still the real stages.
QUICK = ["--epochs", "1", "--latency-rounds", "1"]
QUICK_SETTINGS = {
    "slim": ["slim.penalty_epochs=1"],
    "lowrank": ["lowrank.eval_images=0", "lowrank.target_macs=0.4"],
    "pq": ["pq.em_iterations=5"],
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny ResNet-8 for 3 classes at 24 px, its data folder, and a folder for outputs."""
    from conftest import make_image_folder

    root = tmp_path_factory.mktemp("compress")
    data = make_image_folder(root / "data")
    keras.utils.set_random_seed(0)
    build_model("resnet8", num_classes=3, image_size=24, width=4).save(root / "in.keras")
    return root, data


def run_compress(root, data, recipe: str, name: str, *extra: str) -> int:
    methods = [stage.method for stage in builtin_recipe(recipe).stages]
    sets = [arg for method in methods for setting in QUICK_SETTINGS.get(method, []) for arg in ("--set", setting)]
    args = ["compress", str(root / "in.keras"), "--data", str(data), "-o", str(root / f"{name}.tflite")]
    return main([*args, "--recipe", recipe, *QUICK, *sets, *extra])


RECIPES = ["int8", "pq", "pruned", "dc", "slim", "lowrank", "slim+dc", "slim+pq", "slim+int8", "lowrank+int8",
           "pruned+int8"]  # fmt: skip


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_writes_a_smaller_file_that_matches_its_keras_model(tiny, recipe):
    from tfcompress.convert import load_keras_model
    from tfcompress.data import load_split
    from tfcompress.evaluate import TFLiteClassifier

    root, data = tiny
    name = recipe.replace("+", "_")
    assert run_compress(root, data, recipe, name, "--json", str(root / f"{name}.json")) == 0
    tflite, card = root / f"{name}.tflite", (root / f"{name}.md").read_text()
    result = json.loads((root / f"{name}.json").read_text())
    base = result["measurements"]["input"]
    assert result["tflite_bytes"] == tflite.stat().st_size < base["bytes"]
    assert f"Made by: `tfcompress compress {root / 'in.keras'}" in card and f"--recipe {recipe}" in card
    assert "earlier run" not in card and "tfcompress ops:" in card and "XNNPACK (picked by the CPU" in card
    trained = [stage.method for stage in builtin_recipe(recipe).training_stages]
    assert [stage["method"] for stage in result["stages"]] == trained
    images = load_split(data, "test", 24).images
    expected = np.asarray(load_keras_model(root / f"{name}.keras")(images.astype(np.float32), training=False))
    got = TFLiteClassifier(tflite).predict(images)
    scale = np.abs(expected).max()
    # int8: 8-bit activations calibrated on 12 images of a random network; float: rounding only.
    tolerance = 0.25 * scale if recipe.endswith("int8") else 1e-3 * max(scale, 1.0)
    np.testing.assert_allclose(got, expected, atol=tolerance)
    if recipe in ("pruned", "pq"):  # random BN statistics: frozen for PQ's codebook finetune, updated by pruning
        bn = {layer.name: layer for layer in load_keras_model(root / "in.keras").layers if "bn" in layer.name}
        kept = [layer for layer in load_keras_model(root / f"{name}.keras").layers if layer.name in bn]
        assert kept and all(layer.trainable for layer in kept)
        same = [np.array_equal(layer.moving_variance.numpy(), bn[layer.name].moving_variance.numpy()) for layer in kept]
        if recipe == "pq":
            assert "BatchNorm statistics not learned on these data: frozen" in card and all(same)
            assert "## Warnings\n\n- left float: Conv2D: the first layer stays float (1 layer: " in card
        else:
            assert "BatchNorm" not in card and not any(same)


def test_the_binary_recipe_distills_a_binary_student_with_int8_weights_around_its_binary_convs(tiny):
    from tfcompress.binary.real_to_binary import STAGE1_FILE
    from tfcompress.convert import load_keras_model, to_tflite
    from tfcompress.data import load_split
    from tfcompress.evaluate import TFLiteClassifier

    root, data = tiny
    assert run_compress(root, data, "binary", "binary", "--set", "binary.width=8", "--json", str(root / "b.json")) == 0
    result = json.loads((root / "b.json").read_text())
    assert [stage["method"] for stage in result["stages"]] == ["binary"]
    summary = result["stages"][0]["summary"]
    assert "two stages of 1 epoch(s)" in summary and "stage2_block1_out->stage1_block2_unit2_add" in summary
    student = load_keras_model(root / "binary.keras")
    kernels = {layer.kernel_quantizer.name for layer in student.layers if type(layer).__name__ == "BinaryConv2D"}
    assert kernels == {"magnitude_aware_sign"} and student.output_shape == (None, 3)
    assert len(list(root.glob(f"binary.work/1-binary-*/{STAGE1_FILE}"))) == 1  # stage 1 kept for a resume
    tflite = (root / "binary.tflite").read_bytes()
    assert b"TfcBinaryConv2D" in tflite and len(tflite) < len(to_tflite(student))  # float parts: int8 weights
    images = load_split(data, "test", 24).images
    expected = np.asarray(student(images.astype(np.float32), training=False))
    np.testing.assert_allclose(TFLiteClassifier(model_content=tflite).predict(images), expected,
                               atol=0.15 * np.abs(expected).max())  # fmt: skip


def test_an_interrupted_run_resumes_to_the_same_file(tiny, monkeypatch, capsys):
    from tfcompress.compress import stages

    root, data = tiny

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    real_share = stages.RUNNERS["share"]
    monkeypatch.setitem(stages.RUNNERS, "share", interrupted)
    resumed = ["--work", str(root / "resume.work")]
    assert run_compress(root, data, "slim+dc", "resumed", *resumed) == 130
    assert not (root / "resumed.tflite").exists() and not (root / "resumed.keras").exists()
    monkeypatch.setitem(stages.RUNNERS, "share", real_share)
    capsys.readouterr()
    assert run_compress(root, data, "slim+dc", "resumed", *resumed) == 0
    printed = capsys.readouterr().out
    assert "[stage 1/3] slim(penalty_epochs=1, epochs=1): done in an earlier run, reused" in printed
    assert "[stage 2/3] prune(epochs=1): done in an earlier run, reused" in printed
    card = (root / "resumed.md").read_text()
    assert "reusing the stage(s) slim, prune an earlier run left in the work folder" in card
    assert run_compress(root, data, "slim+dc", "fresh", "--work", str(root / "fresh.work")) == 0

    def digest(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()

    assert digest(root / "resumed.tflite") == digest(root / "fresh.tflite")


def test_outputs_are_never_replaced_without_force(tiny, capsys):
    root, data = tiny
    (root / "taken.md").write_text("mine")
    assert run_compress(root, data, "int8", "taken") == 2
    assert "taken.md already exists; pass --force" in capsys.readouterr().err
    assert (root / "taken.md").read_text() == "mine" and not (root / "taken.tflite").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--recipe", "pq+int8"], "int8 cannot follow pq"),
        (["--recipe", "dc+int8"], "int8 cannot follow share"),
        (["--recipe", "binary+int8"], "int8 cannot follow binary"),
        (["--recipe", "slim+binary"], "binary trains a new binary student from the model; it is a recipe of its own"),
        (["--recipe", "binary", "--set", "binary.attention=some"], "option binary.attention must be auto or none"),
        (["--recipe", "binary", "--set", "binary.width=wide"], "option binary.width must be auto or a channel count"),
        (["--recipe", "zip"], "unknown recipe 'zip'"),
        (["--recipe", "pq", "--set", "pq.bits=3"], "stage 'pq' has no option 'bits'"),
        (["--recipe", "pq", "--set", "prune.sparsity=0.5"], "recipe 'pq' has no 'prune' stage"),
        (["--recipe", "pruned", "--set", "prune.sparsity=high"], "option prune.sparsity must be a float"),
        (["--recipe", "missing.toml"], "recipe file missing.toml does not exist"),
        ([], "give --recipe R"),
        (["--recipe", "pq", "--target-bytes", "1000"], "--recipe and a budget exclude each other"),
    ],
)
def test_user_mistakes_are_one_line_errors(tiny, args, message, capsys):
    root, data = tiny
    status = main(["compress", str(root / "in.keras"), "--data", str(data), "-o", str(root / "x.tflite"), *args])
    err = capsys.readouterr().err
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_model_for_other_classes_is_refused(tiny, tmp_path, capsys):
    from conftest import make_image_folder

    root, _ = tiny
    other = make_image_folder(tmp_path / "five", classes=5)
    assert main(["compress", str(root / "in.keras"), "--data", str(other), "-o", str(tmp_path / "o.tflite"),
                 "--recipe", "int8"]) == 2  # fmt: skip
    assert "the model has 3 outputs but" in capsys.readouterr().err


def test_toml_recipes_compose_stages_with_options(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        'name = "thin-pq"\n[[stage]]\nmethod = "slim"\nratio = 0.25\n[[stage]]\nmethod = "pq"\nblock_size = 9\n'
    )
    recipe = load_recipe(str(path))
    assert recipe.name == "thin-pq" and [s.method for s in recipe.stages] == ["slim", "pq"]
    assert recipe.option("slim", "ratio") == 0.25 and recipe.option("pq", "block_size") == "9"
    assert recipe.option("slim", "penalty_epochs") == 3  # the default where the file is silent
    path.write_text('[[stage]]\nmethod = "pq"\n[[stage]]\nmethod = "slim"\n')
    with pytest.raises(TfcompressError, match="pq must be the last stage"):
        load_recipe(str(path))
    path.write_text("[[stage]\n")
    with pytest.raises(TfcompressError, match="not valid TOML"):
        load_recipe(str(path))


def test_compositions_take_each_stage_once_and_overrides_reach_every_stage():
    recipe = builtin_recipe("slim+dc")
    assert [s.method for s in recipe.stages] == ["slim", "prune", "share"]
    assert [s.method for s in builtin_recipe("pruned+dc").stages] == ["prune", "share"]
    assert builtin_recipe("slim+int8").int8 and not recipe.int8
    changed = with_overrides(recipe, ["prune.sparsity=0.9", "share.conv_bits=4"], epochs=2)
    assert changed.option("prune", "sparsity") == 0.9 and changed.option("share", "conv_bits") == 4
    assert {s.option("epochs") for s in changed.stages} == {2}
    assert changed.stages[0].describe() == "slim(epochs=2)"


def test_list_recipes_and_help_show_the_defaults(capsys):
    assert main(["compress", "--list-recipes"]) == 0
    listed = capsys.readouterr().out
    assert "slim+dc" in listed and "sparsity=0.8" in listed and "conv_bits=5" in listed
    with pytest.raises(SystemExit):
        main(["compress", "--help"])
    shown = capsys.readouterr().out
    assert "(default: 1.0)" in shown and "(default: 7)" in shown


def test_pq_block_size_auto_halves_the_pointwise_blocks_of_depthwise_separable_networks():
    from tfcompress.compress.stages import pq_block_size
    from tfcompress.pq.quantize import block_size_for

    inputs = keras.Input((8, 8, 16))
    x = keras.layers.DepthwiseConv2D(3, padding="same")(inputs)
    pointwise = keras.layers.Conv2D(24, 1)
    separable = keras.Model(inputs, pointwise(x))
    plain = build_model("resnet8", num_classes=3, image_size=24, width=4)
    assert pq_block_size(separable, "auto") == "mobile" and pq_block_size(plain, "auto") == "small"
    assert pq_block_size(separable, "large") == "large"
    assert block_size_for(pointwise, "mobile") == 2 and block_size_for(pointwise, "small") == 4
    with pytest.raises(TfcompressError, match="use small, large, mobile or an integer"):
        block_size_for(pointwise, "tiny")


def test_an_output_that_lost_too_much_is_written_flagged_in_its_card_and_fails_the_command(tiny, capsys, monkeypatch):
    from tfcompress.compress import measure

    root, data = tiny
    real = measure.correct

    def output_always_wrong(path, images, labels):  # the output file (in the work folder) gets every image wrong
        hits = real(path, images, labels)
        return np.zeros_like(hits) if "output-" in str(path) else np.ones_like(hits)

    monkeypatch.setattr(measure, "correct", output_always_wrong)
    assert run_compress(root, data, "int8", "collapsed") == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "lost 100.00 points of test top-1 (0.00% against 100.00%" in error
    assert "pass --allow-drop" in error
    card = (root / "collapsed.md").read_text()
    assert card.splitlines()[2].startswith("**Warning: the compressed model lost 100.00 points")
    assert "-100.00 points (95% CI -100.0 to -100.0)" in card
    assert run_compress(root, data, "int8", "accepted", "--allow-drop") == 0
    assert run_compress(root, data, "int8", "lenient", "--max-loss", "100") == 0
    assert "Warning" not in (root / "lenient.md").read_text()


def test_the_card_gives_the_paired_interval_of_the_top1_change():
    from tfcompress.compress.card import top1_change
    from tfcompress.compress.measure import FileMeasurement

    base = FileMeasurement("in.tflite", 10, {"test": 0.875}, {"test": 8}, correct={"test": "11110111"})
    out = FileMeasurement("out.tflite", 5, {"test": 0.625}, {"test": 8}, correct={"test": "11100110"})
    # images 3 and 7 lost, none gained: -2/8 = -25 points, se = sqrt(2 - 4/8) / 8 = 15.3 points
    assert top1_change(base, out, "test") == "-25.00 points (95% CI -55.0 to +5.0)"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--recipe", "slimm"], "unknown recipe 'slimm'"),
        (["--recipe", "pq", "--set", "pq.block_size=huge"], "option pq.block_size must be one of auto, small"),
        (["--recipe", "pruned", "--set", "prune.allocation=even"], "option prune.allocation must be one of layer"),
        (["--recipe", "lowrank", "--set", "lowrank.method=qr"], "option lowrank.method must be one of svd"),
        (["--recipe", "pruned", "--set", "prune.sparsity=lots"], "option prune.sparsity must be a float"),
    ],
)
def test_a_bad_recipe_or_option_is_refused_before_tensorflow_loads_or_any_folder_is_made(tmp_path, options, message):
    import subprocess
    import sys

    runner = (
        "import sys; from tfcompress.cli import main; status = main(sys.argv[1:]); "
        "sys.exit(3 if 'tensorflow' in sys.modules or 'keras' in sys.modules else status)"
    )
    out = tmp_path / "out" / "small.tflite"
    command = [sys.executable, "-c", runner, "compress", str(tmp_path / "in.keras"), "-o", str(out), *options]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # no work folder, no output folder


def test_the_recipe_option_choices_are_the_methods_own():
    from tfcompress.compress.recipes import CHOICES
    from tfcompress.lowrank.methods import METHODS
    from tfcompress.pq.quantize import BLOCK_PRESETS
    from tfcompress.pruning.prune import ALLOCATIONS

    assert set(CHOICES[("pq", "block_size")]) == {"auto", *BLOCK_PRESETS}
    assert set(CHOICES[("lowrank", "method")]) == set(METHODS)
    assert set(CHOICES[("prune", "allocation")]) == set(ALLOCATIONS)


def test_the_pq_progress_bar_counts_the_recipes_epochs(tiny, capsys):
    root, data = tiny
    assert run_compress(root, data, "pq", "pq_epochs", "--epochs", "3") == 0
    printed = capsys.readouterr().out
    assert "Epoch 3/3" in printed and "Epoch 4/" not in printed
    card = (root / "pq_epochs.md").read_text()
    assert "codebooks finetuned 3 epoch(s)" in card


def test_a_resumed_lowrank_run_keeps_the_rank_search(tiny, monkeypatch, capsys):
    from tfcompress import lowrank

    root, data = tiny
    work = ["--work", str(root / "lowrank_resume.work")]

    def interrupted_finetune(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lowrank, "finetune", interrupted_finetune)
    assert run_compress(root, data, "lowrank", "lowrank_resume", *work) == 130
    assert len(list((root / "lowrank_resume.work").glob("1-lowrank-*/plan.json"))) == 1
    monkeypatch.undo()

    def no_second_search(*args, **kwargs):
        raise AssertionError("the rank search ran again")

    monkeypatch.setattr(lowrank, "choose_plan", no_second_search)
    capsys.readouterr()
    assert run_compress(root, data, "lowrank", "lowrank_resume", *work) == 0
    assert "ranks from the search an earlier run kept" in capsys.readouterr().out


def test_a_loss_too_few_images_cannot_confirm_does_not_fail_the_command():
    from types import SimpleNamespace

    from tfcompress.compress.card import drop_warning
    from tfcompress.compress.measure import FileMeasurement

    base = FileMeasurement("in.tflite", 10, {"test": 1 / 3}, {"test": 3}, correct={"test": "100"})
    out = FileMeasurement("out.tflite", 5, {"test": 0.0}, {"test": 3}, correct={"test": "000"})
    result = SimpleNamespace(measurements={"input": base, "output": out})
    assert drop_warning(result, 10.0) is None  # -33 points, 95% interval (-86.7, +20.0): noise
    many = "1" * 60 + "0" * 40
    base = FileMeasurement("in.tflite", 10, {"test": 0.6}, {"test": 100}, correct={"test": many})
    out = FileMeasurement("out.tflite", 5, {"test": 0.3}, {"test": 100}, correct={"test": "1" * 30 + "0" * 70})
    result = SimpleNamespace(measurements={"input": base, "output": out})
    assert drop_warning(result, 10.0).startswith("the compressed model lost 30.00 points of test top-1")


def test_learning_rate_auto_probes_the_model_says_so_in_the_card_and_keeps_the_choice(tiny, capsys):
    root, data = tiny
    auto = ["--set", "prune.learning_rate=auto", "--set", "prune.optimizer=auto", "--work", str(root / "auto.work")]
    assert run_compress(root, data, "pruned", "auto_lr", *auto) == 0
    assert "chosen by a no-harm probe" in (root / "auto_lr.md").read_text()
    (kept,) = (root / "auto.work").glob("1-prune-*/finetune_choice.json")
    choice = json.loads(kept.read_text())
    assert (choice["optimizer"], choice["learning_rate"]) in {
        ("sgd", 0.01),
        ("adam", 1e-4),
        ("sgd", 0.001),
        ("adam", 1e-5),
    }
    assert len(choice["tried"]) >= 1 and all(0.0 <= agreement <= 1.0 for _, _, agreement in choice["tried"])
