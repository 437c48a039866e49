"""``eval`` refuses a model whose outputs are not one per class folder of the data."""

from __future__ import annotations

import keras
import pytest

from tfcompress.cli import main
from tfcompress.convert import convert
from tfcompress.models import build_model


@pytest.mark.parametrize("suffix", [".keras", ".tflite"])
def test_class_count_mismatch_is_a_one_line_error(tmp_path, image_folder, suffix, capsys):
    keras.utils.set_random_seed(0)
    model = build_model("resnet8", num_classes=5, image_size=24, width=4)
    path = tmp_path / f"five{suffix}"
    if suffix == ".keras":
        model.save(path)
    else:
        convert(model, path)
    code = main(["eval", str(path), "--data", str(image_folder), "--runs", "1"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    # one error line (in-process, a warning about TensorFlow's threads, set up by earlier tests, may precede it)
    assert [line for line in lines if ": error:" in line] == [lines[-1]]
    assert lines[-1] == f"tfcompress eval: error: model has 5 classes, {image_folder} has 3 class folders"
    assert all(line.startswith("tfcompress eval: ") for line in lines)
