"""Choosing a ``tf.distribute`` strategy from a device request.

``devices`` may be ``None`` (default strategy, one device), an integer ``N`` (the first
N GPUs, or with no GPU the CPU split into N logical devices, which is how the tests run
``MirroredStrategy`` on a laptop), a list of device names such as
``["/cpu:0", "/cpu:1"]``, or :class:`Workers`: several machines (or processes) training
one model under ``MultiWorkerMirroredStrategy``, each on all its local devices.

With :class:`Workers`, every worker runs the same program; the global batch is split across
them (each worker's ``tf.data`` pipeline keeps its own part of every batch: auto-sharding by
``DATA``, set by :func:`tfcompress.data.make_dataset`), gradients are summed over all of
them, and only the chief (worker 0) writes output files (:func:`is_chief`). Resumable state
goes to one folder per worker (:func:`worker_backup_dir`), so no disk has to be shared.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tfcompress.errors import TfcompressError


@dataclass(frozen=True)
class Workers:
    """A multi-worker cluster: every worker's ``host:port`` and the index of this process's worker.

    Every worker is given the same ``addresses``, in the same order; worker 0 is the chief.
    """

    addresses: tuple[str, ...]
    index: int

    def __post_init__(self) -> None:
        if not self.addresses:
            raise TfcompressError("--workers needs at least one host:port")
        for address in self.addresses:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                raise TfcompressError(f"a worker is host:port, got {address!r}")
        if not 0 <= self.index < len(self.addresses):
            raise TfcompressError(
                f"--worker-index must be in [0, {len(self.addresses) - 1}] for {len(self.addresses)} workers, "
                f"got {self.index}"
            )

    @classmethod
    def parse(cls, addresses: str, index: int) -> Workers:
        """From ``"host:port,host:port"`` and this worker's index."""
        return cls(tuple(a.strip() for a in addresses.split(",") if a.strip()), index)

    @classmethod
    def from_tf_config(cls, text: str) -> Workers:
        """From a ``TF_CONFIG`` value whose cluster has one ``worker`` job (this task one of them).

        Raises:
            TfcompressError: not JSON, or another cluster layout (a ``chief``, ``ps`` or ``evaluator`` job).
        """
        try:
            config = json.loads(text)
            cluster, task = config["cluster"], config["task"]
            if set(cluster) != {"worker"} or task["type"] != "worker":
                raise ValueError("only a cluster of 'worker' tasks is supported")
            return cls(tuple(cluster["worker"]), int(task["index"]))
        except (ValueError, KeyError, TypeError) as error:
            raise TfcompressError(f"cannot use TF_CONFIG={text!r}: {error}") from error

    def tf_config(self) -> str:
        """This worker's ``TF_CONFIG`` value."""
        return json.dumps(
            {"cluster": {"worker": list(self.addresses)}, "task": {"type": "worker", "index": self.index}}
        )


DeviceRequest = int | Sequence[str] | Workers | None


def requested_workers(
    addresses: str | None, index: int | None, environ: Mapping[str, str] = os.environ
) -> Workers | None:
    """The cluster named by ``--workers``/``--worker-index``, else by ``TF_CONFIG``, else ``None``.

    Raises:
        TfcompressError: only one of the two options, or a bad address, index or ``TF_CONFIG``.
    """
    if (addresses is None) != (index is None):
        raise TfcompressError("--workers and --worker-index go together")
    if addresses is not None:
        return Workers.parse(addresses, index)
    if environ.get("TF_CONFIG"):
        return Workers.from_tf_config(environ["TF_CONFIG"])
    return None


def is_chief(devices: DeviceRequest) -> bool:
    """Whether this process writes the outputs: always, except on a worker other than worker 0."""
    return not isinstance(devices, Workers) or devices.index == 0


def worker_backup_dir(backup_dir: str | os.PathLike | None, devices: DeviceRequest) -> Path | None:
    """This process's ``BackupAndRestore`` folder: ``backup_dir/worker-I`` for worker ``I``, else ``backup_dir``.

    The workers' states are equal at every epoch end (the training is synchronous), so each
    keeps its own copy: workers on one machine do not overwrite each other's files, and
    workers on several machines need no shared disk.
    """
    if backup_dir is None:
        return None
    if isinstance(devices, Workers):
        return Path(backup_dir) / f"worker-{devices.index}"
    return Path(backup_dir)


def split_cpu(count: int) -> None:
    """Split the physical CPU into ``count`` logical devices.

    Must run before TensorFlow initialises its devices; later calls are ignored when the
    split already has ``count`` devices.

    Raises:
        TfcompressError: TensorFlow is already initialised with a different split.
    """
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as error:
        raise TfcompressError(f"cannot split the CPU into {count} devices after TensorFlow started: {error}") from error


_STRATEGIES: dict[tuple[str, ...], object] = {}


def _short_name(device: str) -> str:
    """``/job:localhost/replica:0/task:0/device:CPU:0`` and ``/cpu:0`` both become ``cpu:0``."""
    return device.rsplit("device:", 1)[-1].lstrip("/").lower()


def _multi_worker_strategy(workers: Workers):
    """``MultiWorkerMirroredStrategy`` for ``workers`` (one per process: TensorFlow allows one cluster).

    ``TF_CONFIG`` is set here, before the strategy starts this worker's server and configures
    the collective ops (RING on CPUs, NCCL between GPUs), which TensorFlow allows only before
    it has run any op.
    """
    import tensorflow as tf

    key = ("workers", *workers.addresses, str(workers.index))
    if key not in _STRATEGIES:
        if any(k[0] == "workers" for k in _STRATEGIES):
            raise TfcompressError("this process already joined another multi-worker cluster")
        previous = os.environ.get("TF_CONFIG")
        os.environ["TF_CONFIG"] = workers.tf_config()
        try:
            _STRATEGIES[key] = tf.distribute.MultiWorkerMirroredStrategy()
            _let_keras_fit_on_workers()
        except RuntimeError as error:
            if previous is None:  # this process did not join: leave its environment as it was
                os.environ.pop("TF_CONFIG", None)
            else:
                os.environ["TF_CONFIG"] = previous
            raise TfcompressError(
                "start the multi-worker strategy (tfcompress.distribute.get_strategy(Workers(...))) before "
                f"TensorFlow runs anything: {error}"
            ) from error
    return _STRATEGIES[key]


def get_strategy(devices: DeviceRequest = None):
    """Return a ``MirroredStrategy`` over ``devices``, ``MultiWorkerMirroredStrategy`` for :class:`Workers`,
    or the default strategy for one device.

    The same request gives the same strategy object for the life of the process. With
    :class:`Workers`, call this first (before loading data or models): TensorFlow configures
    the collective ops only before it has run any op.

    Raises:
        TfcompressError: a bad device count, an unknown device name, or workers asked for too late.
    """
    import tensorflow as tf

    if devices is None:
        return tf.distribute.get_strategy()
    if isinstance(devices, Workers):
        return _multi_worker_strategy(devices)
    if isinstance(devices, int):
        if devices < 1:
            raise TfcompressError(f"--devices must be at least 1, got {devices}")
        if devices == 1:
            return tf.distribute.get_strategy()
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            if len(gpus) < devices:
                raise TfcompressError(f"asked for {devices} devices but only {len(gpus)} GPU(s) are present")
            names = [f"/gpu:{i}" for i in range(devices)]
        else:
            split_cpu(devices)
            names = [f"/cpu:{i}" for i in range(devices)]
    else:
        names = list(devices)
    known = {_short_name(d.name) for d in tf.config.list_logical_devices()}
    for name in names:
        if _short_name(name) not in known:
            raise TfcompressError(f"unknown device {name!r}; available: {', '.join(sorted(known))}")
    key = tuple(_short_name(name) for name in names)
    if key not in _STRATEGIES:
        # One strategy per device set and process: a second MirroredStrategy over the same
        # devices breaks the first one's collectives ("Shape mismatch in the collective
        # instance", TensorFlow issue 62790).
        if len(names) == 1:
            _STRATEGIES[key] = tf.distribute.OneDeviceStrategy(names[0])
        else:
            _STRATEGIES[key] = tf.distribute.MirroredStrategy(names)
    return _STRATEGIES[key]


def _multi_worker(strategy) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._num_workers > 1


def _let_keras_fit_on_workers() -> None:
    """Make Keras 3's ``fit`` run under ``MultiWorkerMirroredStrategy`` (idempotent; nothing changes otherwise).

    Keras 3 (checked up to 3.15; TensorFlow issue 72388) fails there twice, both times by
    asking ``strategy.reduce`` for what ``MultiWorkerMirroredStrategy`` does not do:

    - ``fit`` starts by reducing its first batch, an ``(images, labels)`` tuple, only to learn
      the shapes that build the metrics, loss and optimizer (``ValueError: Attempt to convert a
      value (PerReplica...``). Here they are built from the dataset's ``element_spec`` (the
      same on every worker; no element is drawn).
    - each step averages the replicas' logs (scalars) over ``axis=0`` (``Invalid reduction
      dimension 0 for input with 0 dimensions``). Here they are averaged element-wise
      (``axis=None``): the same mean of each metric over every replica.
    """
    import keras
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_tfcompress_multi_worker", False):
        return
    reduce_per_replica = trainer.reduce_per_replica
    symbolic_build = trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_logs(values, strategy, reduction):
        if reduction in ("auto", "mean") and _multi_worker(strategy):
            return keras.tree.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), values)
        return reduce_per_replica(values, strategy, reduction)

    def build_from_spec(self, iterator=None, data_batch=None):
        if iterator is None or not _multi_worker(self.distribute_strategy):
            return symbolic_build(self, iterator=iterator, data_batch=data_batch)
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=iterator.data_adapter.get_tf_dataset().element_spec)

    trainer.reduce_per_replica = reduce_logs
    trainer.TensorFlowTrainer._maybe_symbolic_build = build_from_spec
    trainer._tfcompress_multi_worker = True
