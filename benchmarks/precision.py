"""float32 vs mixed_bfloat16: training throughput and teacher forward time on this CPU.

    .venv/bin/python benchmarks/precision.py [--repeats 3] [--steps 5]

The flowers teacher (ResNet-18 w32), batch 64 of random pixels: images per second of a training
step (SGD, cross-entropy) at 96 and 128 px, and seconds per forward pass (inference, as a
distillation teacher runs) at 128 px, for each precision. The two precisions are interleaved
``--repeats`` times in one process and the median is reported. Writes
``benchmarks/results/precision.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from tfcompress.fileio import write_text_atomic
from tfcompress.models import build_model
from tfcompress.training import PRECISIONS, dtype_policy

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 64


def _setup(precision: str, size: int):
    """A compiled teacher under ``precision``, a training step and a forward function, warmed up."""
    with dtype_policy(precision):
        model = build_model("resnet18", 5, size, width=32)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="categorical_crossentropy")
    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (BATCH, size, size, 3)).astype(np.float32))
    y = tf.constant(np.eye(5, dtype=np.float32)[np.arange(BATCH) % 5])
    forward = tf.function(lambda v: model(v, training=False))
    model.train_on_batch(x, y)
    forward(x)
    return lambda: model.train_on_batch(x, y), lambda: forward(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per repeat")
    args = parser.parse_args()
    cases = {(p, s): _setup(p, s) for s in (96, 128) for p in PRECISIONS}
    train_s: dict = {key: [] for key in cases}
    forward_s: dict = {key: [] for key in cases if key[1] == 128}
    for _ in range(args.repeats):
        for key, (train_step, forward) in cases.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                train_step()
            train_s[key].append((time.perf_counter() - start) / args.steps)
            if key in forward_s:
                start = time.perf_counter()
                for _ in range(args.steps):
                    forward()
                forward_s[key].append((time.perf_counter() - start) / args.steps)
    rows = [
        {
            "precision": p,
            "image_size": s,
            "train_images_per_s": BATCH / statistics.median(train_s[(p, s)]),
            "forward_s_per_batch": statistics.median(forward_s[(p, s)]) if (p, s) in forward_s else None,
        }
        for (p, s) in cases
    ]
    lines = [
        "# float32 vs mixed_bfloat16 on this CPU (ResNet-18 w32, batch 64)",
        "",
        f"`python benchmarks/precision.py --repeats {args.repeats} --steps {args.steps}`; median of interleaved "
        f"repeats; load average after: {[round(v, 2) for v in os.getloadavg()]}.",
        "",
        "| precision | px | training images/s | forward s/batch |",
        "|---|---:|---:|---:|",
    ]
    for row in rows:
        forward = f"{row['forward_s_per_batch']:.3f}" if row["forward_s_per_batch"] else "-"
        lines.append(f"| {row['precision']} | {row['image_size']} | {row['train_images_per_s']:.1f} | {forward} |")
    RESULTS.mkdir(exist_ok=True)
    write_text_atomic(RESULTS / "precision.json", json.dumps(rows, indent=1) + "\n", force=True)
    write_text_atomic(RESULTS / "precision.md", "\n".join(lines) + "\n", force=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
