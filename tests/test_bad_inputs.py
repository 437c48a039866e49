"""Hostile and broken inputs (benchmarks/bad_inputs.py): each ends in one line on stderr and exit 2.

Every row of the README's table is a case here, run in-process through ``tfcompress.cli.main``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tfcompress.cli import main
from tfcompress.data import load_image

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("benchmark_bad_inputs", ROOT / "benchmarks/bad_inputs.py")
bad_inputs = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bad_inputs  # dataclasses look their module up
_spec.loader.exec_module(bad_inputs)

CASES = bad_inputs.cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_gives_one_line_in_the_users_terms(case, tmp_path, monkeypatch, capsys):
    argv, env = bad_inputs.prepare(case, tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    status = main(argv)
    out, err = capsys.readouterr()
    assert status == case.status, err
    if case.status == 2:
        assert err.count("\n") == 1 and err.startswith(f"tfcompress {argv[0]}: error: "), err
        assert case.expect in err
        assert "Traceback" not in err
    else:
        assert case.expect in out
    assert not (tmp_path / bad_inputs.LAMBDA_MARKER).exists()


def test_mixed_image_folder_counts_the_broken_files(tmp_path):
    case = next(c for c in CASES if c.name.startswith("images of every mode"))
    argv, _ = bad_inputs.prepare(case, tmp_path)
    assert main(argv) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["images"] == 30 and result["skipped_images"] == 5


def test_the_lambda_would_write_its_file_outside_safe_mode(tmp_path):
    """The control of the Lambda row: the file's code does run when safe mode is off."""
    import keras

    path = bad_inputs.lambda_model(tmp_path)
    keras.models.load_model(path, safe_mode=False)(np.zeros((1, 4), np.float32))
    assert (tmp_path / bad_inputs.LAMBDA_MARKER).read_text() == "ran"


@pytest.mark.parametrize("name", ["grey16.png", "grey.png", "rgba.png", "cmyk.jpg", "palette.gif"])
def test_every_image_mode_loads_as_rgb(tmp_path, name):
    path = tmp_path / name
    bad_inputs.MIXED_IMAGES[name](path)
    image = load_image(path, 32)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert 40 < image.mean() < 215  # random pixels: mid-grey on average, not clipped to white or black
