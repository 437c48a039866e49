"""benchmarks/models.py (interleaved latency of every model, top-1, bytes) and its use by models_index.py.

Tiny models converted here stand in for the shipped ones; timings are checked for shape and
consistency only, never for speed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from tfcompress.convert import to_tflite
from tfcompress.data import load_split
from tfcompress.evaluate import TFLiteClassifier
from tfcompress.latency import interleaved_latency, round_order
from tfcompress.machine import describe_cpu
from tfcompress.paired import paired_difference

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from models_index import build_index  # noqa: E402

SPEC = importlib.util.spec_from_file_location("benchmark_models", REPO / "benchmarks/models.py")
benchmark = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(benchmark)

LABELS = ["class2", "class0", "class1"]  # not the folders' order: output i is LABELS[i]


def _tiny_tflite(seed: int, size: int = 16) -> bytes:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return to_tflite(keras.Model(inputs, keras.layers.Dense(3)(x)))


@pytest.fixture(scope="module")
def tiny_models() -> tuple[bytes, bytes]:
    """Two models of the same architecture (same bytes), different weights (different sha256)."""
    return _tiny_tflite(0), _tiny_tflite(1)


@pytest.fixture()
def models_dir(tmp_path, tiny_models) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "flowers_float.tflite").write_bytes(tiny_models[0])
    (folder / "flowers_b.tflite").write_bytes(tiny_models[1])
    (folder / "labels.txt").write_text("\n".join(LABELS) + "\n")
    return folder


def test_interleaved_rounds_time_every_variant_in_a_rotating_order():
    calls = []
    variants = {name: (lambda name=name: calls.append(name)) for name in "abcd"}
    variants["slow"] = lambda: (calls.append("slow"), time.sleep(0.002))
    result = interleaved_latency(variants, rounds=3, runs=2, warmup=1)
    assert set(result) == set(variants)
    assert all(calls.count(name) == 1 + 3 * 2 for name in variants)
    timed = calls[len(variants) :]  # after the warmup calls
    assert [timed[0], timed[10], timed[20]] == ["a", "b", "d"]  # rounds start at floor(0, 5/3, 10/3)
    assert round_order(list("abcde"), 2, 3) == list("deabc")
    for latency in result.values():
        assert len(latency.round_medians) == 3
        assert latency.ms_min <= latency.ms_median <= latency.ms_max and latency.ms_p90 >= latency.ms_min
    assert result["slow"].ms_median >= 2.0 > result["a"].ms_median
    with pytest.raises(ValueError, match="rounds and runs"):
        interleaved_latency(variants, rounds=0, runs=2)


def test_benchmark_measures_every_model_at_each_thread_count(tmp_path, models_dir, image_folder):
    out = tmp_path / "results"
    args = ["--models-dir", str(models_dir), "--data", str(image_folder), "--output", str(out)]
    benchmark.main([*args, "--rounds", "2", "--runs", "2", "--warmup", "1"])
    result = json.loads((out / "models.json").read_text())
    assert set(result["models"]) == {"flowers_b.tflite", "flowers_float.tflite"}
    assert result["threads"] == [1, 2] and len(result["load_before"]) == 3 and result["runtime_version"]
    data = load_split(image_folder, "test", 16)
    truth = np.array([LABELS.index(data.class_names[label]) for label in data.labels])
    for name, row in result["models"].items():
        content = (models_dir / name).read_bytes()
        assert (row["bytes"], row["sha256"]) == (len(content), hashlib.sha256(content).hexdigest())
        predicted = TFLiteClassifier(models_dir / name).predict(data.images).argmax(axis=1)
        assert row["top1"] == pytest.approx(np.mean(predicted == truth))
        assert row["images"] == len(data)
        assert set(row["latency"]) == {"1", "2"}
        for latency in row["latency"].values():
            assert len(latency["round_medians"]) == 2
            assert 0 < latency["ms_min"] <= latency["ms_median"] <= latency["ms_max"]
    table = (out / "models.md").read_text()
    assert "| `flowers_float.tflite` | - | 3/3 | 16 |" in table and "| 1.00x |" in table  # XNNPACK took every node
    assert all(row["input_size"] == 16 for row in result["models"].values())
    truth_hits = {}
    for name in result["models"]:
        predicted = TFLiteClassifier(models_dir / name).predict(data.images).argmax(axis=1)
        truth_hits[name] = predicted == truth
    expected = paired_difference(truth_hits["flowers_b.tflite"], truth_hits["flowers_float.tflite"])
    assert result["models"]["flowers_b.tflite"]["vs_float"] == pytest.approx(expected.to_dict())
    assert result["models"]["flowers_float.tflite"]["vs_float"]["points"] == 0.0
    assert f"| {expected.points:+.2f} [{expected.low:+.1f}, {expected.high:+.1f}] |" in table

    (models_dir / "flowers_c.tflite").write_bytes(_tiny_tflite(2, size=12))  # another input size
    benchmark.main([*args, "--rounds", "1", "--runs", "1", "--threads", "1", "--skip-accuracy"])
    table = (out / "models.md").read_text()
    assert "| - (input 12 px, float 16 px) |" in table  # no speed-up against a float of another size
    (models_dir / "flowers_c.tflite").unlink()

    benchmark.main(
        [*args, "--rounds", "1", "--runs", "1", "--models", "flowers_b", "--threads", "1", "--skip-accuracy"]
    )
    result = json.loads((out / "models.json").read_text())
    assert list(result["models"]) == ["flowers_b.tflite"] and result["accuracy"] is None
    assert "top1" not in result["models"]["flowers_b.tflite"]
    assert set(result["models"]["flowers_b.tflite"]["latency"]) == {"1"}
    with pytest.raises(SystemExit, match="flowers_c"):
        benchmark.main([*args, "--models", "flowers_c", "--skip-accuracy"])


def test_index_takes_figures_from_matching_entries_only(tmp_path, models_dir, tiny_models):
    results = tmp_path / "models.json"
    run = {"date": "2026-01-02 03:04 UTC", "rounds": 15, "runs": 20, "load_before": [1.5, 1, 1], "models": {}}
    for name in ("flowers_float.tflite", "flowers_b.tflite"):
        content = (models_dir / name).read_bytes()
        latency = {"1": {"ms_median": 1.234}, "2": {"ms_median": 0.987}}
        entry = {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest(), "top1": 0.5, "latency": latency}
        run["models"][name] = entry
    results.write_text(json.dumps(run))
    card = "- top-1 on test.txt: 40.00%\n- latency: 7.5 ms at 1 thread, 8.5 ms at 2 threads\n"
    (models_dir / "flowers_b.md").write_text(card)

    text, warnings = build_index(models_dir, results)
    row = next(line for line in text.splitlines() if line.startswith("| [`flowers_b.tflite`]"))
    assert f"| 50.00% | {len(tiny_models[1]):,} | 1.23 ms | 0.99 ms | benchmark |" in row
    assert "Figures from the **benchmark**" in text and "[1.5, 1, 1]" in text and "15 interleaved rounds" in text

    shutil.copy(models_dir / "flowers_float.tflite", models_dir / "flowers_b.tflite")  # same bytes, other sha256
    text, warnings = build_index(models_dir, results)
    row = next(line for line in text.splitlines() if line.startswith("| [`flowers_b.tflite`]"))
    assert "| 40.00% |" in row and "| 7.5 ms | 8.5 ms | card (stale benchmark entry) |" in row
    assert any(w.startswith("benchmarks/results/models.json measured another flowers_b.tflite") for w in warnings)

    run["models"]["flowers_b.tflite"] = {**run["models"]["flowers_float.tflite"], "top1": None}
    del run["models"]["flowers_b.tflite"]["latency"]["2"]
    run["models"]["flowers_float.tflite"]["bytes"] += 1  # another build of the float model
    results.write_text(json.dumps(run))
    text, warnings = build_index(models_dir, results)
    rows = {line.split("`")[1]: line for line in text.splitlines() if line.startswith("| [`")}
    assert "| 40.00% |" in rows["flowers_b.tflite"] and "| 1.23 ms | 8.5 ms |" in rows["flowers_b.tflite"]
    assert "| benchmark: 1 thread; card: top-1, 2 threads |" in rows["flowers_b.tflite"]
    assert "| card (stale benchmark entry) |" in rows["flowers_float.tflite"]
    assert "| not stated | not stated |" in rows["flowers_float.tflite"]  # it has no card


def test_index_without_a_benchmark_run_uses_the_cards(tmp_path, models_dir):
    text, warnings = build_index(models_dir, tmp_path / "missing.json")
    assert "**benchmark**" not in text and "| not stated | not stated | card |" in text
    (tmp_path / "broken.json").write_text("{")
    _, warnings = build_index(models_dir, tmp_path / "broken.json")
    assert "is not a benchmarks/models.py result" in warnings[0]


def test_the_cpu_description_names_the_simd_extensions_that_change_the_figures():
    avx2_only = "model name\t: AMD EPYC\nflags\t\t: fpu sse avx avx2 fma\n"
    assert describe_cpu(avx2_only) == "AMD EPYC [AVX2; no AVX-512]"
    rich = "model name\t: AMD EPYC 9R14\nflags\t\t: avx2 avx512f avx512_vnni avx512_bf16 avx512_vpopcntdq\n"
    assert describe_cpu(rich) == "AMD EPYC 9R14 [AVX2, AVX-512F, AVX512-VNNI, AVX512-BF16, AVX512-VPOPCNTDQ]"


def test_the_kernel_paths_say_which_xnnpack_isa_and_which_of_our_kernels_ran(monkeypatch):
    from tfcompress.machine import kernel_paths, xnnpack_paths

    avx2_only = "model name\t: AMD EPYC\nflags\t\t: fpu sse avx avx2 fma\n"
    assert xnnpack_paths(avx2_only).endswith("float AVX2+FMA3, int8 AVX2")
    vnni = "flags\t\t: avx2 avx512f avx512bw avx512_vnni\n"
    assert xnnpack_paths(vnni).endswith("float AVX-512F, int8 AVX512-VNNI")
    monkeypatch.setenv("TFCOMPRESS_KERNEL", "scalar")
    assert "(forced by TFCOMPRESS_KERNEL=scalar)" in kernel_paths()
