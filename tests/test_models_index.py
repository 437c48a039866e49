"""models/README.md: the card reader (scripts/model_cards.py) and the index (scripts/models_index.py)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from model_cards import card_figures, script_commands  # noqa: E402
from models_index import build_index, main  # noqa: E402

ROW_PER_MODEL = """
| file | top-1 (flowers5 test.txt, 650 images) | bytes | latency 1 thread (median / p90) | latency 2 threads |
|---|---:|---:|---:|---:|
| `flowers_x.keras` (Keras) | 70.00% | 9,999 | 30.14 / 35.15 ms | - |
| `flowers_x.tflite` (ai-edge-litert) | 65.23% | 1,244,088 | 0.59 / 0.69 ms | 1.02 / 1.44 ms |
| `flowers_float.tflite` (same run) | 73.85% | 11,191,492 | 5.77 / 9.82 ms | 7.05 / 10.06 ms |
"""

COLUMN_PER_MODEL = """
| | float (`flowers_float.tflite`) | slim (`flowers_x.tflite`) |
|---|---|---|
| top-1 on flowers5 test.txt (runtime) | 73.85% | 16.92% |
| .tflite bytes | 11,191,492 | 2,369,268 |
| .tflite bytes after gzip -9 | 10,356,653 | 2,493,626 |
| latency 1 thread (median ms) | 85.94 | 10.71 (8.03x) |
| latency 2 threads (median ms) | 5.81 | 9.86 (0.59x) |
"""

BULLETS = """
- top-1 on flowers5 test.txt through the runtime: 66.62% (650 images)
- bytes: 317,400
- latency, batch 1, median: 0.495 ms at 1 thread, 0.317 ms at 2 threads
- top-1 agreement with the teacher: 72.0%
"""


def test_figures_from_each_card_layout():
    expected = {"top1": 65.23, "bytes": 1244088, "latency_1t": 0.59, "latency_2t": 1.02}
    assert card_figures(ROW_PER_MODEL, "flowers_x.tflite") == expected
    expected = {"top1": 16.92, "bytes": 2369268, "latency_1t": 10.71, "latency_2t": 9.86}
    assert card_figures(COLUMN_PER_MODEL, "flowers_x.tflite") == expected
    expected = {"top1": 66.62, "bytes": 317400, "latency_1t": 0.495, "latency_2t": 0.317}
    assert card_figures(BULLETS, "flowers_x.tflite") == expected
    bare = "| model | top-1 | bytes |\n|---|---|---|\n| flowers_x | 73.38% | 447,200 |\n"
    assert card_figures(bare, "flowers_x.tflite") == {"top1": 73.38, "bytes": 447200}
    assert card_figures(ROW_PER_MODEL, "flowers_y.tflite") == {}


def test_commands_keep_arguments_and_drop_force_and_shell_tails():
    card = (
        "Made by `nice -n 5 .venv/bin/python scripts/a.py --epochs 3 --force` (5 min), after `scripts/b.py`.\n"
        "    nohup python scripts/a.py --width 48 \\\n        > log 2>&1 &\n"
        "```\npython scripts/a.py --epochs 3\n```\n"
    )
    assert script_commands(card, "a.py") == [["--epochs", "3"], ["--width", "48"]]
    assert script_commands(card, "b.py") == [[]]
    assert script_commands(card, "c.py") == []


def test_index_of_the_shipped_models_lists_every_tflite_with_its_file_size():
    text, _ = build_index(REPO / "models")
    for path in (REPO / "models").glob("*.tflite"):
        row = next(line for line in text.splitlines() if line.startswith(f"| [`{path.name}`]"))
        assert f"| {path.stat().st_size:,} |" in row
    assert "| TfcBinaryConv2D |" in text


def test_index_reports_card_gaps_and_checks_staleness(tmp_path, capsys):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(REPO / "models/flowers_student.tflite", models / "flowers_x.tflite")
    size = (models / "flowers_x.tflite").stat().st_size
    (models / "flowers_x.md").write_text("- top-1 on test.txt: 50.00%\n- bytes: 12\n- latency: 1.5 ms at 1 thread\n")
    text, warnings = build_index(models)
    assert warnings == [
        "flowers_x.md does not state latency_2t for flowers_x.tflite",
        f"flowers_x.md gives 12 bytes, flowers_x.tflite has {size:,}",
    ]
    assert f"| 50.00% | {size:,} | 1.5 ms | not stated | card | no rebuild step |" in text
    assert main(["--models-dir", str(models), "--check"]) == 1
    assert main(["--models-dir", str(models)]) == 0
    assert main(["--models-dir", str(models), "--check"]) == 0
    assert (models / "README.md").read_text() == text
    assert "does not state latency_2t" in capsys.readouterr().err
