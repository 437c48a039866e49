"""Mutated .tflite files through the runtime (benchmarks/fuzz_tflite.py): no crash, no hang.

A few dozen mutants of the shipped custom-op models, plus files that reproduce what the native
fuzzers found (converters/fuzz/regressions/; the options key read past the end needs AddressSanitizer
to show, so only tests/test_fuzz_native.py replays it), each through the real runtime in a worker
process: a clear error, never a dead process.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("benchmark_fuzz_tflite", ROOT / "benchmarks/fuzz_tflite.py")
fuzz_tflite = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = fuzz_tflite  # dataclasses look their module up
_spec.loader.exec_module(fuzz_tflite)


def test_three_dozen_mutants_give_no_crash_and_no_hang():
    outcomes = fuzz_tflite.run_mutants(fuzz_tflite.mutants(36, seed=1), timeout=120)
    counts = Counter(o.outcome for o in outcomes)
    bad = [(o.mutant.model, o.mutant.kind, o.mutant.how, o.message) for o in outcomes if o.outcome in ("crash", "hang")]
    assert not bad
    assert counts["clear error"] >= 12  # most mutants of our ops' options, buffers and shapes are refused
    assert {o.mutant.kind for o in outcomes} == set(fuzz_tflite.KINDS)


def _edited(model_name: str, change) -> fuzz_tflite.Mutant:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf((ROOT / "models" / f"{model_name}.tflite").read_bytes(), 0)
    change(model, fuzz_tflite.ours(model))
    return fuzz_tflite.Mutant(model_name, "regression", change.__name__, fuzz_tflite.pack(model))


def huge_kernel(model, ops) -> None:
    """fuzz_sparse_decode's out-of-memory: a few stream bytes declaring a 2^30-element (4 GiB) kernel."""
    from flatbuffers import flexbuffers

    options = flexbuffers.Loads(bytes(ops[0].customOptions))
    options.update(rank=2, dim0=1 << 20, dim1=1 << 10)
    ops[0].customOptions = list(flexbuffers.Dumps(options))


def output_absent(model, ops) -> None:
    """The op fuzzers' crash: an output index of -1 (an absent tensor) read as tensors[-1]."""
    ops[-1].outputs = [-1, *ops[-1].outputs[1:]]  # flowers_pq: its last op is the TfcPQDense


@pytest.mark.parametrize(
    ("model_name", "change", "message"),
    [
        ("flowers_dc", huge_kernel, "kernel is too large"),
        ("flowers_pq", output_absent, "TfcPQDense: output must be float32"),
        ("flowers_binary", output_absent, "TfcBinaryConv2D: output must be float32"),
    ],
    ids=["sparse-huge-kernel", "pq-output-absent", "binary-output-absent"],
)
def test_what_the_native_fuzzers_found_is_a_clear_error(model_name, change, message):
    [outcome] = fuzz_tflite.run_mutants([_edited(model_name, change)], timeout=120)
    assert outcome.outcome == "clear error", outcome.message
    assert message in outcome.message
