"""Measuring ``.tflite`` files side by side: top-1 through the runtime, bytes, and interleaved latency.

The input model and its compressed versions are timed in the same interleaved rounds
(:func:`tfcompress.latency.interleaved_latency`), at each thread count, so a speed-up is a
ratio of two medians taken under the same load.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class FileMeasurement:
    """One file: bytes, top-1 per split, median batch-1 latency (ms) per thread count."""

    path: str
    bytes: int
    top1: dict[str, float] = field(default_factory=dict)
    images: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[int, float] = field(default_factory=dict)
    #: per split, ``"0110..."``: whether each image (in the split's order) was classified right
    correct: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["latency_ms"] = {str(k): round(v, 4) for k, v in self.latency_ms.items()}
        return data

    def correct_on(self, split: str) -> np.ndarray:
        """Per-image correctness on ``split`` as booleans."""
        return np.frombuffer(self.correct[split].encode(), np.uint8) == ord("1")


def correct(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-image top-1 correctness of a ``.tflite`` on ``images`` (one invoke per image, as on a device)."""
    from tfcompress.evaluate import TFLiteClassifier

    return TFLiteClassifier(path, threads=2).predict(images).argmax(axis=1) == labels


def top1(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 of a ``.tflite`` on ``images``."""
    return float(np.mean(correct(path, images, labels)))


def measure_files(
    paths: Mapping[str, str | os.PathLike],
    data_dir: str | os.PathLike | None,
    splits: Sequence[str] = ("test",),
    threads: Sequence[int] = (1, 2),
    rounds: int = 7,
    runs: int = 10,
    limit: int | None = None,
) -> dict[str, FileMeasurement]:
    """Measure every file of ``paths`` (label -> ``.tflite``): top-1 on ``splits``, latency at ``threads``.

    All files must take the same input size. ``rounds`` x ``runs`` timed batch-1 calls per
    file and thread count, interleaved (see :mod:`tfcompress.latency`).
    """
    from tfcompress.data import load_split
    from tfcompress.evaluate import TFLiteClassifier

    results = {label: FileMeasurement(str(path), Path(path).stat().st_size) for label, path in paths.items()}
    first = TFLiteClassifier(next(iter(paths.values())))
    size = int(first.input["shape"][1])
    for split in splits:
        data = load_split(data_dir, split, size, limit)
        for label, path in paths.items():
            hits = correct(path, data.images, data.labels)
            results[label].top1[split] = float(np.mean(hits))
            results[label].correct[split] = "".join("1" if hit else "0" for hit in hits)
            results[label].images[split] = len(data)
        sample = data.images[0]
    for count, latencies in interleaved_latencies(paths, sample, threads, rounds, runs).items():
        for label, latency in latencies.items():
            results[label].latency_ms[count] = latency
    return results


def interleaved_latencies(
    paths: Mapping[str, str | os.PathLike],
    image: np.ndarray,
    threads: Sequence[int] = (1, 2),
    rounds: int = 7,
    runs: int = 10,
) -> dict[int, dict[str, float]]:
    """``{threads: {label: median ms}}``: batch-1 latency of every file on ``image``, all in the same rounds."""
    from tfcompress.evaluate import TFLiteClassifier
    from tfcompress.latency import interleaved_latency

    medians: dict[int, dict[str, float]] = {}
    for count in threads:
        classifiers = {label: TFLiteClassifier(path, threads=count) for label, path in paths.items()}
        prepared = {label: c.prepare(image) for label, c in classifiers.items()}
        latencies = interleaved_latency(
            {label: (lambda c=c, x=prepared[label]: c.run(x)) for label, c in classifiers.items()}, rounds, runs
        )
        medians[count] = {label: latency.ms_median for label, latency in latencies.items()}
    return medians
