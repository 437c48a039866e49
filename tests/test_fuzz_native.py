"""The libFuzzer targets (converters/fuzz/): built with clang, the crashes they found stay fixed.

Builds build/fuzz (skipped where clang++ is not installed; .ci/run installs it), replays every
saved crash input of converters/fuzz/regressions/ under AddressSanitizer and
UndefinedBehaviorSanitizer, and runs each target briefly from its seeds (the shipped models'
nodes). The long runs are `make fuzz`.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("fuzz_run", ROOT / "converters/fuzz/run.py")
fuzz_run = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = fuzz_run  # dataclasses look their module up
_spec.loader.exec_module(fuzz_run)
REGRESSION_TARGETS = sorted(p.name for p in fuzz_run.REGRESSIONS.iterdir() if p.is_dir())
pytestmark = pytest.mark.skipif(shutil.which("clang++") is None, reason="clang++ not installed (apt-get install clang)")


@pytest.fixture(scope="module")
def built() -> None:
    fuzz_run.build(jobs=2)
    fuzz_run.write_seeds(fuzz_run.BUILD / "seeds")


def test_every_target_has_seeds_from_the_shipped_models(built):
    for target in fuzz_run.TARGETS:
        assert any((fuzz_run.BUILD / "seeds" / target).glob("seed-*")), target


def test_the_crashes_found_have_regression_inputs():
    assert REGRESSION_TARGETS == [
        "fuzz_binary_conv2d",
        "fuzz_binary_dense",
        "fuzz_options",
        "fuzz_pq_dense",
        "fuzz_sparse_decode",
    ]


@pytest.mark.parametrize("target", REGRESSION_TARGETS)
def test_saved_crash_inputs_run_clean(built, target):
    assert fuzz_run.replay_regressions(target) == []


@pytest.mark.parametrize("target", fuzz_run.TARGETS)
def test_a_short_run_finds_no_crash(built, target):
    result = fuzz_run.fuzz(target, seconds=2)
    assert not result.crashed, (fuzz_run.BUILD / f"{target}.log").read_text()[-3000:]
    assert result.executions > 0 and result.coverage > 0
