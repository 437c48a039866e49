"""benchmarks/compat.py on a small slice of the matrix: methods and conversions on keras.applications models."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("benchmark_compat", ROOT / "benchmarks/compat.py")
compat = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = compat  # its dataclasses look their module up
_spec.loader.exec_module(compat)

SIZE = 32


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return compat.random_images(4, SIZE)


def test_mobilenet_v3_small_slims_and_converts(images):
    """Hard-swish, squeeze-excitation and Rescaling: the slimmed model's float file follows Keras."""
    model = compat.with_measured_statistics(compat.MODELS["MobileNetV3Small"](SIZE), images)
    cell = compat.run_cell(model, images, "slim 0.5")
    assert cell.status == "ok", (cell.reason, cell.error)
    assert cell.error <= compat.FLOAT_TOLERANCE


def test_efficientnet_b0_pq_and_slim_no_longer_fail(images):
    """The issue's two failures: block2b_se_expand (C_in*kh*kw = 6) under PQ, block1a_project_conv under slim."""
    model = compat.with_measured_statistics(compat.MODELS["EfficientNetB0"](SIZE), images)
    pq = compat.run_cell(model, images, "pq")
    assert pq.status == "ok", (pq.reason, pq.error)
    skipped = {record["layer"]: record["reason"] for record in pq.skipped}
    assert "block2b_se_expand" not in skipped  # quantized with d = 3
    assert skipped["stem_conv"] == "Conv2D: the first layer stays float"
    assert skipped["block1a_dwconv"].startswith("DepthwiseConv2D: ")
    # As built (every gamma 1, ties broken by position), half of the channels would empty the first block.
    with pytest.warns(UserWarning, match="slimming capped"):
        thin, skipped = compat.slimming(compat.MODELS["EfficientNetB0"](SIZE), images)
    assert thin.get_layer("block1a_project_conv").filters >= 1
    assert any(r.layer == "block1a_project_conv" and "share capped" in r.reason for r in skipped)


def test_matrix_markdown_lists_skips_and_failures():
    cells = {
        "pq": compat.Cell("ok", 1e-6, [{"layer": "dw", "reason": "DepthwiseConv2D: no"}] * 2),
        "int8": compat.Cell("MISMATCH", 0.9),
        "slim 0.5": compat.Cell("unsupported", reason="no BatchNormalization"),
    }
    results = {"image_size": SIZE, "seconds": 1.0, "matrix": {"Tiny": {k: vars(c) for k, c in cells.items()}}}
    text = compat.markdown(results)
    assert "| Tiny | ok, 2 skipped | **MISMATCH** (0.9) | unsupported |" in text
    assert "DepthwiseConv2D: no (2): `dw`, `dw`" in text
    assert "- **Tiny / slim 0.5**: unsupported: no BatchNormalization" in text
