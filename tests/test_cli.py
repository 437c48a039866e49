"""The command line: user mistakes end in one line on stderr and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tfcompress.cli import main


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tfcompress.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def assert_one_line_error(result: subprocess.CompletedProcess, pattern: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("tfcompress")]
    assert len(errors) == 1 and pattern in errors[0], result.stderr


def test_missing_data_folder(tmp_path):
    result = run_cli("eval", "whatever.tflite", "--data", str(tmp_path / "nope"))
    assert_one_line_error(result, "does not exist")


def test_unknown_model_name(tmp_path, image_folder):
    result = run_cli("train", "--model", "resnet99", "--data", str(image_folder), "-o", str(tmp_path / "m.keras"))
    assert_one_line_error(result, "unknown model 'resnet99'")


def test_existing_output_needs_force(tmp_path):
    existing = tmp_path / "out.tflite"
    existing.write_text("keep me")
    source = tmp_path / "in.keras"
    source.write_text("irrelevant")
    result = run_cli("convert", str(source), "-o", str(existing))
    assert_one_line_error(result, "already exists; pass --force")
    assert existing.read_text() == "keep me"


def test_corrupt_keras_file(tmp_path):
    corrupt = tmp_path / "broken.keras"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    result = run_cli("convert", str(corrupt), "-o", str(tmp_path / "out.tflite"))
    assert_one_line_error(result, "broken.keras is not a complete .keras file: 21 bytes of a zip archive")


def test_corrupt_tflite_in_eval(tmp_path, image_folder):
    corrupt = tmp_path / "broken.tflite"
    corrupt.write_bytes(b"\x00" * 64)
    result = run_cli("eval", str(corrupt), "--data", str(image_folder))
    assert_one_line_error(result, "broken.tflite")


def test_train_convert_eval_report_end_to_end(tmp_path, image_folder, capsys):
    model = tmp_path / "m.keras"
    common = ["--data", str(image_folder)]
    argv = ["train", "--model", "resnet8", "--width", "4", "--image-size", "16", "--epochs", "1", "--batch-size", "4"]
    argv += ["--mixup", "0.2", "--cutmix", "1.0", "--keep", "last"]
    assert main([*argv, *common, "-o", str(model)]) == 0
    assert (
        main(
            ["convert", str(model), "--int8", "--calibration-data", str(image_folder), "-o", str(tmp_path / "m.tflite")]
        )
        == 0
    )
    assert main(["eval", str(tmp_path / "m.tflite"), *common, "--runs", "2", "--json", str(tmp_path / "r.json")]) == 0
    assert main(["report", str(tmp_path / "r.json"), "-o", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "top-1" in out and "| m.tflite |" in out
    assert (tmp_path / "report" / "accuracy.png").is_file()


@pytest.mark.parametrize("command", ["train", "convert", "eval", "report"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: tfcompress" in capsys.readouterr().out


def test_non_positive_counts_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "m.tflite", "--threads", "0"])
    assert exit_info.value.code == 2
    assert "--threads: expected an integer >= 1, got '0'" in capsys.readouterr().err


@pytest.mark.parametrize(("option", "value"), [("--mixup", "-0.2"), ("--cutmix", "nan"), ("--cutmix", "lots")])
def test_negative_or_non_numeric_mixing_strengths_are_usage_errors(option, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", option, value, "-o", "m.keras"])
    assert exit_info.value.code == 2
    assert f"{option}: expected a number >= 0, got {value!r}" in capsys.readouterr().err


def test_the_kits_warnings_are_one_line_in_the_tools_voice(tmp_path, image_folder):
    from tfcompress.convert import to_tflite
    from tfcompress.models import build_model

    model = tmp_path / "m.tflite"
    model.write_bytes(to_tflite(build_model("resnet8", num_classes=3, image_size=16, width=4)))
    (image_folder / "class0" / "img4.png").write_bytes(b"not a png")  # listed in val.txt
    result = run_cli("eval", str(model), "--data", str(image_folder), "--split", "val", "--runs", "1")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line.lower()]
    assert warnings and all(line.startswith("tfcompress eval: warning: ") for line in warnings), result.stderr
    assert any("skipping unreadable image" in line and "img4.png" in line for line in warnings)
    assert "UserWarning" not in result.stderr and ".py:" not in result.stderr
