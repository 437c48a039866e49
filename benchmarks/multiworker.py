"""Multi-worker training on this machine: throughput of two workers against one, and recovery from a killed worker.

    .venv/bin/python benchmarks/multiworker.py [--data DIR] [--steps 30] [--limit 512]

Throughput: ``--steps`` training steps of a ResNet-8 (width 16, 64 px, global batch 32) on the
first ``--limit`` training images, in one process (default strategy) and in two worker
processes on localhost (``MultiWorkerMirroredStrategy``, 16 images per worker and step);
images per second over the steps after the first (tracing), per run. Recovery: ``tfcompress
train`` on two workers with ``--backup-dir``, worker 1 killed (SIGKILL) as soon as it has backed up
epoch 1 of 3, then both restarted with the same command: epochs run in all, epochs repeated,
the seconds of work lost. Writes ``benchmarks/results/multiworker.{json,md}``.

``python benchmarks/multiworker.py steps DATA STEPS (--devices N | --workers A,B --worker-index I)``
is one process of a run (used by the benchmark and by ``tests/test_multiworker.py``): it prints
one JSON line with the loss after every step and the images per second.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def free_addresses(count: int) -> str:
    """``localhost:PORT,...`` with ``count`` ports free at the time of the call."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    addresses = ",".join(f"localhost:{sock.getsockname()[1]}" for sock in sockets)
    for sock in sockets:
        sock.close()
    return addresses


def run_steps(
    data: Path, steps: int, devices: str, workers: str | None = None, index: int | None = None, **model
) -> dict:
    """One process of a run (see the module docstring); returns its ``losses`` and ``images_per_s``."""
    from tfcompress.distribute import Workers, get_strategy

    request = Workers.parse(workers, index) if workers else int(devices)
    strategy = get_strategy(request)  # first: a worker joins its cluster before TensorFlow runs anything
    import keras

    from tfcompress.data import load_split
    from tfcompress.models import build_model
    from tfcompress.training import TrainConfig, compile_for_training, one_hot_dataset

    size, batch = model.get("image_size", 24), model.get("batch_size", 8)
    keras.utils.set_random_seed(0)
    images = load_split(data, "train", size, model.get("limit"))
    dataset = one_hot_dataset(images, batch, training=False, seed=0).take(steps)  # the same batches on every run
    with strategy.scope():
        net = build_model("resnet8", len(images.class_names), size, width=model.get("width", 4))
        compile_for_training(net, TrainConfig(epochs=1, warmup_epochs=0, learning_rate=0.05), steps)
    losses: list[float] = []
    times: list[float] = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            losses.append(float(logs["loss"]))
            times.append(time.perf_counter())

    net.fit(dataset, epochs=1, callbacks=[Record()], verbose=0)
    return {"losses": losses, "images_per_s": batch * (len(times) - 1) / (times[-1] - times[0])}


def steps_command(data: Path, steps: int, *options: str, **model) -> list[str]:
    """The command line of one :func:`run_steps` process (``options``: ``--devices N`` or the worker options)."""
    settings = [f"--{name.replace('_', '-')}={value}" for name, value in model.items()]
    return [sys.executable, str(Path(__file__).resolve()), "steps", str(data), str(steps), *settings, *options]


def run_processes(commands: list[list[str]], timeout: float = 300) -> list[dict]:
    """Run ``commands`` at once (nice 5) and return each one's JSON result line.

    Raises:
        RuntimeError: a process failed (its output is in the message).
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    procs = [
        subprocess.Popen(["nice", "-n", "5", *c], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        for c in commands
    ]
    outputs = [p.communicate(timeout=timeout)[0] for p in procs]
    for proc, output in zip(procs, outputs, strict=True):
        if proc.returncode != 0:
            raise RuntimeError(f"exit {proc.returncode}:\n{output[-3000:]}")
    return [json.loads(output.strip().splitlines()[-1]) for output in outputs]


def two_worker_commands(data: Path, steps: int, **model) -> list[list[str]]:
    """The two worker processes of a :func:`run_steps` run on localhost."""
    addresses = free_addresses(2)
    return [steps_command(data, steps, f"--workers={addresses}", f"--worker-index={i}", **model) for i in range(2)]


@dataclass
class Recovery:
    """What a run with worker 1 killed and every worker restarted did."""

    epochs: int  # asked for
    backed_up: int  # epochs finished and backed up when worker 1 was killed
    survivor_exit: int  # worker 0's exit status once its peer was gone
    survivor_seconds: float  # how long worker 0 took to notice
    resumed_epochs: int  # epochs the restarted run trained
    lost_seconds: float  # work done after the last backup, thrown away
    restart_codes: tuple[int, ...]


def train_command(data: Path, output: Path, backup: Path, addresses: str, index: int, epochs: int) -> list[str]:
    """``tfcompress train`` of a tiny ResNet-8 as worker ``index`` of ``addresses``."""
    return [
        *("nice", "-n", "5", sys.executable, "-m", "tfcompress.cli", "train", "--model", "resnet8", "--width", "4"),
        *("--image-size", "24", "--epochs", str(epochs), "--batch-size", "4", "--keep", "last", "--data", str(data)),
        *("-o", str(output), "--backup-dir", str(backup), "--workers", addresses, "--worker-index", str(index)),
    ]


def _readable_weights(path: Path) -> bool:
    """Whether ``path`` is a complete HDF5 weights file (it opens and lists its groups)."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            list(file.keys())
        return True
    except (OSError, KeyError):
        return False


def kill_and_resume(data: Path, work: Path, epochs: int = 3, timeout: float = 240) -> Recovery:
    """Train on two workers, SIGKILL worker 1 once epoch 1 is backed up, restart both; see :class:`Recovery`."""
    output, backup = work / "model.keras", work / "backup"
    addresses = free_addresses(2)  # the restart runs the very same commands
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

    def start(index: int, run: str) -> subprocess.Popen:
        with open(work / f"{run}-worker{index}.log", "w") as log:
            command = train_command(data, output, backup, addresses, index, epochs)
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    first = [start(0, "first"), start(1, "first")]
    marker = backup / "worker-1" / "training_metadata.json"
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if any(p.poll() is not None for p in first) or time.monotonic() > deadline:
            raise RuntimeError(f"the first run ended or stalled before a backup: {[p.poll() for p in first]}")
        time.sleep(0.02)
    weights = marker.with_name("latest.weights.h5")
    while not _readable_weights(weights):  # under load the weights may still be in flush after the metadata
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker 1's backup {weights} never became readable")
        time.sleep(0.02)
    backed_up_at = time.monotonic()
    first[1].send_signal(signal.SIGKILL)  # at once: a tiny epoch may end (and back up again) within a second
    killed_at = time.monotonic()
    first[1].wait()
    backed_up = json.loads(marker.read_text())["epoch"]  # read once the worker is dead: the count it left
    survivor_exit = first[0].wait(timeout=120)
    survivor_seconds = time.monotonic() - killed_at
    second = [start(0, "second"), start(1, "second")]
    codes = tuple(p.wait(timeout=timeout) for p in second)
    log = (work / "second-worker0.log").read_text(errors="replace")
    resumed = len(set(re.findall(rf"Epoch (\d+)/{epochs}\b", log)))
    return Recovery(epochs, backed_up, survivor_exit, survivor_seconds, resumed, killed_at - backed_up_at, codes)


def _table(throughput: dict, recovery: Recovery, args: argparse.Namespace) -> str:
    one, two = throughput["1 worker"], throughput["2 workers"]
    return "\n".join(
        [
            "# Multi-worker training on this machine",
            "",
            f"`benchmarks/multiworker.py --steps {args.steps} --limit {args.limit}` ({os.cpu_count()} CPU cores, "
            "shared with other jobs). ResNet-8 width 16, 64 px, global batch 32, "
            f"{args.steps} steps, images/s over the steps after the first.",
            "",
            "| run | images/s | relative |",
            "|---|---:|---:|",
            f"| 1 worker (default strategy) | {one:.1f} | 1.00 |",
            f"| 2 workers on localhost (MultiWorkerMirroredStrategy, RING over gRPC) | {two:.1f} | {two / one:.2f} |",
            "",
            "Recovery (`tfcompress train`, ResNet-8 width 4, 24 px, 3 epochs, two workers, `--backup-dir`): "
            f"worker 1 killed (SIGKILL) {recovery.lost_seconds:.1f} s after it backed up epoch {recovery.backed_up}; "
            f"worker 0 stopped by itself {recovery.survivor_seconds:.1f} s later (exit {recovery.survivor_exit}: "
            "collective ops aborted, TensorFlow asks for a restart); both restarted with the same command trained "
            f"{recovery.resumed_epochs} more epoch(s) (exit {recovery.restart_codes}): "
            f"{recovery.backed_up + recovery.resumed_epochs} epochs in all for {recovery.epochs} asked, "
            f"{recovery.backed_up + recovery.resumed_epochs - recovery.epochs} repeated; lost: the "
            f"{recovery.lost_seconds:.1f} s of epoch {recovery.backed_up + 1} run before the kill.",
            "",
        ]
    )


def main() -> None:
    """Parse the command line; run one process (``steps``) or the whole benchmark."""
    if len(sys.argv) > 1 and sys.argv[1] == "steps":
        parser = argparse.ArgumentParser()
        parser.add_argument("command")
        parser.add_argument("data", type=Path)
        parser.add_argument("steps", type=int)
        parser.add_argument("--devices", default="1")
        parser.add_argument("--workers")
        parser.add_argument("--worker-index", type=int)
        for name in ("width", "image-size", "batch-size", "limit"):
            parser.add_argument(f"--{name}", type=int)
        args = parser.parse_args()
        model = {k: v for k in ("width", "image_size", "batch_size", "limit") if (v := getattr(args, k)) is not None}
        print(json.dumps(run_steps(args.data, args.steps, args.devices, args.workers, args.worker_index, **model)))
        return
    import tempfile

    from tfcompress.data import resolve_data_dir
    from tfcompress.fileio import write_text_atomic

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="image folder (default: $TFCOMPRESS_DATA, then ../shared/datasets/flowers5)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--limit", type=int, default=512)
    args = parser.parse_args()
    data = resolve_data_dir(args.data)
    model = {"width": 16, "image_size": 64, "batch_size": 32, "limit": args.limit}
    (single,) = run_processes([steps_command(data, args.steps, **model)])
    pair = run_processes(two_worker_commands(data, args.steps, **model))
    throughput = {"1 worker": single["images_per_s"], "2 workers": pair[0]["images_per_s"]}
    print(throughput, flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        sys.path.insert(0, str(ROOT / "tests"))
        from conftest import make_image_folder

        folder = make_image_folder(Path(scratch) / "data", classes=3, per_class=40)
        recovery = kill_and_resume(folder, Path(scratch))
    print(recovery, flush=True)
    write_text_atomic(
        RESULTS / "multiworker.json",
        json.dumps({"throughput": throughput, "recovery": recovery.__dict__, "steps": args.steps}, indent=2) + "\n",
        force=True,
    )
    write_text_atomic(RESULTS / "multiworker.md", _table(throughput, recovery, args), force=True)
    print((RESULTS / "multiworker.md").read_text())


if __name__ == "__main__":
    main()
