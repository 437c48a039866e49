"""Float vs int8 flowers model: top-1 on flowers5 test.txt, bytes, batch-1 latency at 1 and 2 threads.

Runs every model through the same runtime in one process, side by side::

    python benchmarks/spine.py            # writes benchmarks/results/spine.{json,md} and spine.png

The models are the shipped ones (rebuild them with scripts/train_flowers_float.py and
scripts/export_flowers_float.py).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfcompress.evaluate import evaluate
from tfcompress.report import markdown_table, plot

MODELS = ("models/flowers_float.keras", "models/flowers_float.tflite", "models/flowers_int8.tflite")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="flowers5 folder (default: ../shared/datasets/flowers5)")
    parser.add_argument("--runs", type=int, default=200, help="timed batch-1 runs per model and thread count")
    parser.add_argument("--output", default="benchmarks/results", help="folder for spine.json / spine.md / spine.png")
    args = parser.parse_args()
    results = []
    for threads in (1, 2):
        for model in MODELS:
            if model.endswith(".keras") and threads == 2:
                continue  # TensorFlow's thread count is fixed once it starts; Keras is measured once
            result = evaluate(model, args.data, "test", threads=threads, runs=args.runs, warmup=20)
            print(
                f"{model} threads={threads}: top-1 {result.accuracy:.4f}, {result.size_bytes:,} B, "
                f"{result.latency_ms_median:.3f} ms (p90 {result.latency_ms_p90:.3f})",
                flush=True,
            )
            results.append(asdict(result))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "spine.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "spine.md").write_text("# Float vs int8 flowers model (flowers5 test.txt)\n\n" + markdown_table(results))
    plot([r for r in results if r["threads"] == 1], out / "spine.png", force=True)
    print(markdown_table(results))


if __name__ == "__main__":
    main()
