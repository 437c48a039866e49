"""Choosing a ``tf.distribute`` strategy from a device request.

``devices`` may be ``None`` (default strategy, one device), an integer ``N`` (the first
N GPUs, or with no GPU the CPU split into N logical devices, which is how the tests run
``MirroredStrategy`` on a laptop), or a list of device names such as
``["/cpu:0", "/cpu:1"]``.
"""

from __future__ import annotations

from collections.abc import Sequence

from tfcompress.errors import TfcompressError


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


def get_strategy(devices: int | Sequence[str] | None = None):
    """Return a ``MirroredStrategy`` over ``devices``, or the default strategy for one device.

    The same device set gives the same strategy object for the life of the process.

    Raises:
        TfcompressError: a bad device count or an unknown device name.
    """
    import tensorflow as tf

    if devices is None:
        return tf.distribute.get_strategy()
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
