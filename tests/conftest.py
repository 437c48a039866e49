"""Test set-up: two logical CPU devices (for MirroredStrategy tests) and a tiny data folder.

The CPU split has to happen before TensorFlow initialises its devices, so it is done here,
at collection time, before any test imports TensorFlow.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfcompress.distribute import split_cpu

split_cpu(2)

FLOWERS = (Path(__file__).resolve().parent.parent / "../shared/datasets/flowers5").resolve()


@pytest.fixture(scope="session")
def flowers_dir() -> Path:
    """The real flowers5 folder (present beside every checkout and in CI)."""
    assert FLOWERS.is_dir(), f"flowers5 not found at {FLOWERS}"
    return FLOWERS


def make_image_folder(root: Path, classes: int = 3, per_class: int = 6, size: int = 24, seed: int = 0) -> Path:
    """Write a small class-per-folder data set of random-colour PNGs with a fixed split."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            base = np.full((size, size, 3), 60 * c, dtype=np.uint8)
            pixels = np.clip(base + rng.integers(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
            name = f"class{c}/img{i}.png"
            Image.fromarray(pixels).save(root / name)
            split = "train" if i < per_class - 2 else ("val" if i == per_class - 2 else "test")
            lines[split].append(name)
    for split, names in lines.items():
        (root / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


@pytest.fixture()
def image_folder(tmp_path: Path) -> Path:
    """A tiny 3-class data folder with train/val/test lists, made fresh for each test."""
    return make_image_folder(tmp_path / "data")
