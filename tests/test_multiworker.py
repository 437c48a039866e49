"""Multi-worker training (MultiWorkerMirroredStrategy): two worker processes on localhost.

The runs are the processes of ``benchmarks/multiworker.py`` (one ``steps`` process per worker,
``tfcompress train --workers ...`` for the recovery), on a tiny ResNet-8.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image_folder

from tfcompress.distribute import Workers, is_chief, requested_workers, worker_backup_dir
from tfcompress.errors import TfcompressError

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("benchmark_multiworker", ROOT / "benchmarks/multiworker.py")
multiworker = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # registered: it has dataclasses
_spec.loader.exec_module(multiworker)


def test_workers_from_options_or_tf_config():
    workers = requested_workers("a:1, b:2", 1, environ={})
    assert workers == Workers(("a:1", "b:2"), 1)
    assert requested_workers(None, None, environ={"TF_CONFIG": workers.tf_config()}) == workers
    assert requested_workers(None, None, environ={}) is None
    assert not is_chief(workers) and is_chief(Workers(("a:1", "b:2"), 0)) and is_chief(2)
    assert worker_backup_dir("bk", workers) == Path("bk/worker-1")
    assert worker_backup_dir("bk", None) == Path("bk")
    with pytest.raises(TfcompressError, match="go together"):
        requested_workers("a:1", None, environ={})
    with pytest.raises(TfcompressError, match="worker-index must be in"):
        Workers.parse("a:1,b:2", 2)
    with pytest.raises(TfcompressError, match="host:port"):
        Workers.parse("a,b:2", 0)
    chief = json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "chief", "index": 0}})
    with pytest.raises(TfcompressError, match="only a cluster of 'worker' tasks"):
        Workers.from_tf_config(chief)


def test_two_workers_match_one_worker_on_the_same_global_batch(tmp_path):
    """Two workers x 1 replica against one process x 2 replicas: same batches, same split, same BatchNorm groups."""
    data = make_image_folder(tmp_path / "data", classes=3, per_class=14)
    steps = 5
    one = [multiworker.steps_command(data, steps, "--devices=2")]
    results = multiworker.run_processes(one + multiworker.two_worker_commands(data, steps), timeout=120)
    single, worker0, worker1 = (np.array(r["losses"]) for r in results)
    assert len(single) == steps and np.all(np.isfinite(single))
    np.testing.assert_allclose(worker0, worker1, rtol=1e-6)  # every worker reports the global loss
    np.testing.assert_allclose(worker0, single, rtol=1e-3)
    assert single[-1] < single[0]  # and it trains


def test_killed_worker_resumes_from_the_last_epoch(tmp_path):
    from tfcompress.convert import load_keras_model

    data = make_image_folder(tmp_path / "data", classes=3, per_class=40)
    recovery = multiworker.kill_and_resume(data, tmp_path, epochs=3)
    print(recovery)
    assert recovery.backed_up == 1
    assert recovery.survivor_exit != 0  # TensorFlow aborts the survivor's collectives: it must be restarted too
    assert recovery.restart_codes == (0, 0)
    assert recovery.resumed_epochs == 2  # epochs 2 and 3: nothing finished is repeated, nothing is skipped
    model = load_keras_model(tmp_path / "model.keras")
    assert model.outputs[0].shape[-1] == 3
    assert not (tmp_path / "backup" / "worker-0").exists()  # a finished run removes its backup
