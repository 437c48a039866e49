"""Multi-worker training (MultiWorkerMirroredStrategy): two worker processes on localhost.

The runs are the processes of ``benchmarks/multiworker.py`` (one ``steps`` process per worker,
``tfcompress train --workers ...`` for the recovery), on a tiny ResNet-8.
"""

from __future__ import annotations

import importlib.util
import json
import re
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
    assert 1 <= recovery.backed_up < 3
    assert recovery.survivor_exit != 0  # TensorFlow aborts the survivor's collectives: it must be restarted too
    assert recovery.restart_codes == (0, 0)
    assert recovery.backed_up + recovery.resumed_epochs == 3  # nothing finished is repeated, nothing is skipped
    model = load_keras_model(tmp_path / "model.keras")
    assert model.outputs[0].shape[-1] == 3
    assert not (tmp_path / "backup" / "worker-0").exists()  # a finished run removes its backup


def _tfcompress(*args: str) -> list[str]:
    return [sys.executable, "-m", "tfcompress.cli", *args]


def _run_together(commands: list[list[str]], timeout: float = 300) -> list[str]:
    """Run ``commands`` at once; return their outputs (each must exit 0)."""
    import os
    import subprocess

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    pipe = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True, "env": env}
    procs = [subprocess.Popen(command, **pipe) for command in commands]
    outputs = [p.communicate(timeout=timeout)[0] for p in procs]
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output[-3000:]
    return outputs


def _trainable(path: Path) -> list[np.ndarray]:
    from tfcompress.convert import load_keras_model

    return [np.asarray(w) for w in load_keras_model(path).trainable_weights]


def _worker_options(addresses: str, index: int) -> list[str]:
    return ["--workers", addresses, "--worker-index", str(index)]


@pytest.fixture(scope="module")
def teacher_and_data(tmp_path_factory):
    import keras

    from tfcompress.models import build_model

    root = tmp_path_factory.mktemp("multiworker")
    data = make_image_folder(root / "data", classes=3, per_class=14)
    keras.utils.set_random_seed(0)
    build_model("resnet8", num_classes=3, image_size=24, width=4).save(root / "teacher.keras")
    return root, data


def _epoch_losses(output: str) -> list[str]:
    """The loss at the end of each epoch of a Keras progress log (how many lines an epoch prints is timing)."""
    epochs = re.split(r"^Epoch \d+/\d+$", output, flags=re.M)[1:]
    return [re.findall(r" - loss: ([0-9.]+)", epoch)[-1] for epoch in epochs]


def test_distill_on_two_workers_writes_one_student(teacher_and_data, tmp_path):
    """Both workers report the same (global) losses every epoch; worker 0 alone writes the student."""
    root, data = teacher_and_data
    addresses = multiworker.free_addresses(2)
    command = ["distill", "--teacher", str(root / "teacher.keras"), "--student", "resnet8", "--width", "4",
               "--image-size", "24", "--epochs", "2", "--batch-size", "8", "--data", str(data),
               "-o", str(tmp_path / "student.keras")]  # fmt: skip
    outputs = _run_together([_tfcompress(*command, *_worker_options(addresses, i)) for i in (0, 1)])
    losses = [_epoch_losses(output) for output in outputs]
    assert len(losses[0]) == 2 and losses[0] == losses[1]
    assert "worker 1 done; worker 0 writes" in outputs[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student.keras"]  # and no backup left behind
    assert _trainable(tmp_path / "student.keras")[-1].shape == (3,)


def test_compress_on_two_workers_trains_every_stage_together_and_worker_0_writes(teacher_and_data, tmp_path):
    """slim -> prune -> share, each finetune on two workers: the workers' stage results are equal, one set of files."""
    root, data = teacher_and_data
    addresses = multiworker.free_addresses(2)
    output, work = tmp_path / "small.tflite", tmp_path / "work"
    command = ["compress", str(root / "teacher.keras"), "--recipe", "slim+dc", "--data", str(data),
               "-o", str(output), "--work", str(work), "--epochs", "1", "--set", "slim.penalty_epochs=1",
               "--latency-rounds", "1"]  # fmt: skip
    outputs = _run_together([_tfcompress(*command, *_worker_options(addresses, i)) for i in (0, 1)])
    assert f"wrote {output}" in outputs[0] and f"worker 0 writes {output}" in outputs[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.keras", "small.md", "small.tflite", "work"]
    stages = sorted(p.name for p in work.iterdir() if p.name[0].isdigit())
    assert [name.split("-")[1] for name in stages] == ["slim", "prune", "share"]
    assert sorted(p.name for p in (work / "worker-1").iterdir() if p.name[0].isdigit()) == stages
    for stage in stages:  # synchronous training: the same weights on both workers after every stage
        chief, other = _trainable(work / stage / "model.keras"), _trainable(work / "worker-1" / stage / "model.keras")
        for got, expected in zip(other, chief, strict=True):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    from tfcompress.evaluate import TFLiteClassifier

    assert TFLiteClassifier(output).predict(np.zeros((1, 24, 24, 3), np.float32)).shape == (1, 3)


def test_a_budget_search_refuses_workers(teacher_and_data, capsys):
    from tfcompress.cli import main

    root, data = teacher_and_data
    args = ["compress", str(root / "teacher.keras"), "--data", str(data), "-o", str(root / "b.tflite"),
            "--target-bytes", "1000", "--max-drop", "1", "--workers", "localhost:1,localhost:2",
            "--worker-index", "1"]  # fmt: skip
    assert main(args) == 2
    assert "use --workers with --recipe" in capsys.readouterr().err
