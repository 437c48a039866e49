"""`make pi-check`'s judging helpers (android_demo/raspberry_pi/tools/pi_check.py), on the shipped models.

The emulated run itself needs qemu-user and an arm64 root (minutes): it is `make pi-check`,
not a test.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "android_demo/raspberry_pi/tools"))

import pi_check  # noqa: E402

MODELS = REPO / "models"


def test_only_models_whose_builtin_ops_compute_in_int8_count_as_quantized():
    assert pi_check.is_quantized(MODELS / "flowers_int8.tflite")
    assert not pi_check.is_quantized(MODELS / "flowers_float.tflite")
    # integer codes / indices feeding our decode ops only: float arithmetic, strict tolerance
    assert not pi_check.is_quantized(MODELS / "flowers_pq.tflite")
    assert not pi_check.is_quantized(MODELS / "flowers_dc.tflite")


def test_custom_ops_of_the_shipped_models_and_the_library_probe():
    assert pi_check.custom_ops(MODELS / "flowers_pq.tflite") == ["TfcPQDecode", "TfcPQDense"]
    assert pi_check.custom_ops(MODELS / "flowers_binary.tflite") == ["TfcBinaryConv2D"]
    assert pi_check.custom_ops(MODELS / "flowers_int8.tflite") == []
    probe = "machine=aarch64 kernels=reference,neon,scalar default=neon ops=TfcBinaryConv2D,TfcPQDense"
    assert pi_check.probed_ops(probe) == {"TfcBinaryConv2D", "TfcPQDense"}
    assert pi_check.probed_ops("machine=aarch64") == set()


def test_near_ties_and_flips():
    def top(*pairs):
        return [{"index": i, "label": f"class{i}", "score": score} for i, score in pairs]

    x86 = {"a": top((0, 0.50), (1, 0.45)), "b": top((2, 0.9))}
    arm = {"a": top((1, 0.48), (0, 0.47)), "b": top((2, 0.9))}
    assert pi_check.flipped(x86, arm) == ["a"]
    assert pi_check.near_tie(x86["a"])
    assert not pi_check.near_tie(top((0, 0.8), (1, 0.1)))
    same, worst, problems = pi_check.compare(x86, arm)
    assert not same and abs(worst - 0.02) < 1e-9  # score differences rank by rank
    assert problems == ["a: x86 ['class0', 'class1'] vs aarch64 ['class1', 'class0']"]
    assert pi_check.near_ties(x86, arm) == ["a: x86 class0 0.500 / class1 0.450, aarch64 class1 0.480 / class0 0.470"]
