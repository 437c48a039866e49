"""File size of a Deep Compression model under each way of storing sparse positions.

    .venv/bin/python benchmarks/dc_gap_modes.py [--model models/flowers_dc.keras] [--modes auto 0 2 4 8]

Converts the same weight-shared model (its shared values and zeros are left as they are) with
every kernel's ``gap_bits`` set to each mode: ``auto`` (the smallest per kernel, the default),
``0`` (dense mode: no position stream, zeros coded as index 0) or a fixed gap width 1..8 (the
paper's relative indexing with filler zeros). Reports the ``.tflite`` bytes, the ratio to the
float file, and how many kernels each mode put in dense mode; every file is decoded through the
runtime on a random batch and checked against the Keras model. Writes
``benchmarks/results/dc_gap_modes.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"


def parse_mode(text: str) -> int | None:
    """``auto`` -> None, else the gap width 0..8."""
    return None if text == "auto" else int(text)


def convert_with_gap_bits(model_path: Path, gap_bits: int | None) -> tuple[bytes, int, int]:
    """``(tflite bytes, kernels in dense mode, kernels)`` with every shared layer's ``gap_bits`` set."""
    from tfcompress.convert import load_keras_model, to_tflite
    from tfcompress.pruning.layers import shared_layers
    from tfcompress.pruning.lowering import encoded_layer
    from tfcompress.runtime import Interpreter

    model = load_keras_model(model_path)  # a fresh copy per mode: the file on disk is never touched
    layers = shared_layers(model)
    for layer in layers:
        layer.gap_bits = gap_bits
    data = to_tflite(model)
    dense = sum(1 for layer in layers if encoded_layer(layer).gap_bits == 0)
    x = np.random.default_rng(0).uniform(0, 255, (2, *model.inputs[0].shape[1:])).astype(np.float32)
    interpreter = Interpreter(model_content=data, num_threads=2)
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, np.asarray(model(x)), rtol=1e-4, atol=1e-3)
    return data, dense, len(layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models/flowers_dc.keras")
    parser.add_argument("--float-tflite", type=Path, default=ROOT / "models/flowers_float.tflite")
    parser.add_argument("--modes", nargs="+", default=["auto", "0", "2", "4", "8"])
    args = parser.parse_args()
    from tfcompress.fileio import write_text_atomic

    float_bytes = args.float_tflite.stat().st_size
    rows = []
    for mode in args.modes:
        data, dense, kernels = convert_with_gap_bits(args.model, parse_mode(mode))
        rows.append({"gap_bits": mode, "bytes": len(data), "ratio": float_bytes / len(data), "dense_mode": dense})
        print(f"gap bits {mode}: {len(data):,} B ({float_bytes / len(data):.1f}x), {dense}/{kernels} dense", flush=True)
    lines = [
        "# Deep Compression: sparse positions stored per gap mode",
        "",
        f"Model `{args.model.relative_to(ROOT) if args.model.is_relative_to(ROOT) else args.model}` "
        f"({kernels} shared kernels), float file {float_bytes:,} B. Same shared weights in every row; each "
        "file decoded through the runtime and checked against Keras. "
        "`.venv/bin/python benchmarks/dc_gap_modes.py`.",
        "",
        "| gap bits | .tflite bytes | x smaller than float | kernels in dense mode |",
        "|---|---|---|---|",
        *[f"| {r['gap_bits']} | {r['bytes']:,} | {r['ratio']:.1f}x | {r['dense_mode']} |" for r in rows],
        "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text_atomic(RESULTS / "dc_gap_modes.json", json.dumps({"float_bytes": float_bytes, "rows": rows}), True)
    write_text_atomic(RESULTS / "dc_gap_modes.md", "\n".join(lines), True)


if __name__ == "__main__":
    main()
