"""Magnitude pruning for any Keras 3 model (Sequential, Functional, subclassed), without wrappers.

:func:`prune` returns a NEW model whose prunable kernels each carry a :class:`PruningMask`
as their variable ``constraint``. The mask is a non-trainable ``keras.Variable``; Keras'
optimizers apply a variable's constraint after every update, so ``w <- w * mask`` holds
through training (also under ``MirroredStrategy``) without wrapping a layer. The
:class:`PruningCallback` recomputes the masks on the schedule's update steps from ``|w|``
(Zhu & Gupta 2017). :func:`strip` returns plain Keras layers with the zeros baked in.

>>> pruned = prune(model, PolynomialDecay(0.0, 0.8, end_step=500, frequency=50))  # doctest: +SKIP
>>> pruned.compile(...); pruned.fit(data, callbacks=[PruningCallback()])  # doctest: +SKIP
>>> plain = strip(pruned)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import keras
import numpy as np
from keras.src.models.functional import Functional

from tfcompress.errors import TfcompressError, UnsupportedLayerError
from tfcompress.pruning.masks import Granularity, check_granularity, compute_mask, global_layer_sparsities, n_m_misfit
from tfcompress.pruning.schedules import PruningSchedule
from tfcompress.skipped import SkippedLayer, attach_skipped, has_kernel, skipped_layers

# Layer kinds whose kernel attribute is pruned. Conv covers Conv1D/2D/3D and transposed convs.
PRUNABLE_KERNELS: tuple[tuple[type, str], ...] = (
    (keras.layers.DepthwiseConv2D, "kernel"),
    (keras.layers.Dense, "kernel"),
    (keras.layers.EinsumDense, "kernel"),
)


def _kernel_attribute(layer: keras.layers.Layer) -> str | None:
    from keras.src.layers.convolutional.base_conv import BaseConv

    for cls, attribute in PRUNABLE_KERNELS:
        if isinstance(layer, cls):
            return attribute
    if isinstance(layer, BaseConv) and not isinstance(layer, keras.layers.SeparableConv2D):
        return "kernel"
    return None


@dataclass
class LayerReport:
    """One layer's fate: ``pruned`` or not, and why not."""

    name: str
    kind: str
    pruned: bool
    reason: str = ""


def _leaf_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if not isinstance(layer, keras.Model)
    ]


def plan(model: keras.Model, granularity: Granularity = "weight", exclude: Iterable[str] = ()) -> list[LayerReport]:
    """Which layers :func:`prune` would prune, and why each other layer is left alone."""
    granularity = check_granularity(granularity)
    excluded = set(exclude)
    reports = []
    for layer in _leaf_layers(model):
        kind = type(layer).__name__
        attribute = _kernel_attribute(layer)
        if layer.name in excluded:
            reason = "excluded"
        elif attribute is None:
            reason = "no weights" if not layer.weights else "not a supported kind (only Conv, Dense kernels)"
        elif isinstance(granularity, tuple) and isinstance(layer, keras.layers.DepthwiseConv2D):
            reason = "depthwise kernels have no input dimension for N:M"
        elif isinstance(granularity, tuple):
            reason = n_m_misfit(tuple(getattr(layer, attribute).shape), *granularity) or ""
        else:
            reason = ""
        reports.append(LayerReport(layer.name, kind, not reason, reason))
    if not any(r.pruned for r in reports):
        left = "; ".join(f"{r.name} ({r.kind}: {r.reason})" for r in reports if r.reason != "no weights")
        raise UnsupportedLayerError(f"model {model.name!r} has no prunable layer (Conv or Dense kernels): {left}")
    return reports


@keras.saving.register_keras_serializable(package="tfcompress")
class PruningMask(keras.constraints.Constraint):
    """``w -> w * mask``: the constraint that keeps a pruned kernel's zeros through training.

    Args:
        mask: the non-trainable mask variable (same shape as the kernel).
        schedule: the :class:`PruningSchedule` that sets its sparsity.
        granularity: ``"weight"``, ``"channel"`` or ``(n, m)``.
    """

    def __init__(
        self, mask: keras.Variable, schedule: PruningSchedule, granularity: Granularity, allocation: str = "layer"
    ):
        self.mask = mask
        self.schedule = schedule
        self.granularity = granularity
        self.allocation = allocation

    def __call__(self, w):
        return w * keras.ops.cast(self.mask, w.dtype)

    def update(self, kernel: keras.Variable, step: int, target: float | None = None) -> float:
        """Recompute the mask from ``|kernel|``, zero the kernel; return the sparsity.

        The sparsity is ``target`` when given (this layer's share of a global threshold),
        else ``schedule.target(step)``.
        """
        weights = keras.ops.convert_to_numpy(kernel)
        target = self.schedule.target(step) if target is None else target
        mask = compute_mask(weights, target, self.granularity)
        self.mask.assign(mask)
        kernel.assign(weights * mask)
        return 1.0 - float(mask.mean())

    def get_config(self) -> dict:
        return {}  # masks live in the variables; a saved model is stripped first (see strip)


ALLOCATIONS = ("layer", "global")


def update_masks(kernels: list[tuple[keras.layers.Layer, keras.Variable, PruningMask]], step: int) -> None:
    """Recompute the masks of ``kernels`` for ``step``: per layer, or from one global threshold.

    Kernels with ``allocation == "global"`` that share a schedule are pruned together
    (:func:`tfcompress.pruning.masks.global_layer_sparsities`); the others each to the
    schedule's target.
    """
    groups: dict[int, list[tuple[keras.Variable, PruningMask]]] = {}
    for _, kernel, constraint in kernels:
        if constraint.allocation == "global":
            groups.setdefault(id(constraint.schedule), []).append((kernel, constraint))
        else:
            constraint.update(kernel, step)
    for members in groups.values():
        target = members[0][1].schedule.target(step)
        weights = [keras.ops.convert_to_numpy(kernel) for kernel, _ in members]
        for (kernel, constraint), share in zip(members, global_layer_sparsities(weights, target), strict=True):
            constraint.update(kernel, step, share)


def copy_model(model: keras.Model) -> keras.Model:
    """A new model with the same architecture and weights (variables created in the current scope).

    Functional and Sequential models go through ``keras.models.clone_model``; a subclassed
    model through ``from_config(get_config())`` and a build on its recorded input shape.

    Raises:
        TfcompressError: a subclassed model without ``get_config`` / a known input shape.
    """
    try:
        if isinstance(model, keras.Sequential | Functional):
            clone = keras.models.clone_model(model)
        else:
            clone = model.__class__.from_config(model.get_config())
            shapes = getattr(model, "_build_shapes_dict", None)
            if not shapes:
                raise TfcompressError("it was never built (call it once on an input first)")
            if len(shapes) != 1:
                raise TfcompressError(f"it was built with several inputs {sorted(shapes)}; one is supported")
            shape = next(iter(shapes.values()))
            clone(keras.ops.zeros([1 if d is None else d for d in shape]))  # creates the sub-layers' weights
    except TfcompressError as error:
        raise TfcompressError(f"cannot copy model {model.name!r}: {error}") from error
    except Exception as error:  # Keras raises several kinds for models it cannot rebuild
        raise TfcompressError(
            f"cannot copy model {model.name!r} (a subclassed model needs get_config/from_config): {error}"
        ) from error
    clone.set_weights(model.get_weights())
    return clone


def prune(
    model: keras.Model,
    schedule: PruningSchedule,
    granularity: Granularity = "weight",
    exclude: Iterable[str] = (),
    allocation: str = "layer",
) -> keras.Model:
    """A NEW model whose Conv/Dense kernels are pruned by magnitude on ``schedule``.

    Call it inside ``strategy.scope()`` to train under a distribution strategy. The masks
    start at ``schedule.target(0)``; train with :class:`PruningCallback`, then :func:`strip`.

    Args:
        model: any built Keras 3 model; it is not modified.
        schedule: :class:`ConstantSparsity` or :class:`PolynomialDecay`.
        granularity: ``"weight"`` (unstructured), ``(n, m)`` (keep n of every m input
            weights, e.g. ``(2, 4)``), or ``"channel"`` (whole output channels).
        exclude: names of layers to leave dense (e.g. the first conv).
        allocation: ``"layer"``: every kernel at the schedule's sparsity; ``"global"``: one
            magnitude threshold over all pruned kernels reaches the schedule's sparsity in
            total (unstructured only; each layer capped at 99%).

    Raises:
        UnsupportedLayerError: no layer can be pruned.
        TfcompressError: bad granularity or allocation.

    Layers with a kernel that are left dense (excluded, an unsupported kind, an N:M whose M
    does not divide their input dimension) are listed, with the reason, by
    :func:`tfcompress.skipped.skipped_layers` on the result (and in ``plan``).
    """
    if not isinstance(schedule, PruningSchedule):
        raise TfcompressError(f"schedule must be a PruningSchedule, got {type(schedule).__name__}")
    if allocation not in ALLOCATIONS:
        raise TfcompressError(f"allocation must be one of {', '.join(ALLOCATIONS)}, got {allocation!r}")
    if allocation == "global" and granularity != "weight":
        raise TfcompressError(f'global allocation needs granularity "weight", got {granularity!r}')
    reports = plan(model, granularity, exclude)
    granularity = check_granularity(granularity)
    clone = copy_model(model)
    clone_layers = _leaf_layers(clone)
    if len(clone_layers) != len(reports):
        raise TfcompressError(f"the copy of model {model.name!r} does not have the same layers as the model")
    for layer, report in zip(clone_layers, reports, strict=True):
        if not report.pruned:
            continue
        kernel = getattr(layer, _kernel_attribute(layer))
        mask = keras.Variable(
            np.ones(kernel.shape, np.float32), trainable=False, name=f"{layer.name}_prune_mask", dtype="float32"
        )
        kernel.constraint = PruningMask(mask, schedule, granularity, allocation)
    update_masks(pruned_kernels(clone), 0)
    clone.pruning_plan = reports
    left = [
        SkippedLayer.of(layer, report.reason)
        for layer, report in zip(clone_layers, reports, strict=True)
        if not report.pruned and has_kernel(layer)
    ]
    return attach_skipped(clone, left)


def pruned_kernels(model: keras.Model) -> list[tuple[keras.layers.Layer, keras.Variable, PruningMask]]:
    """``(layer, kernel, mask constraint)`` of every kernel :func:`prune` masked."""
    found = []
    for layer in _leaf_layers(model):
        attribute = _kernel_attribute(layer)
        if attribute is None:
            continue
        kernel = getattr(layer, attribute)
        if isinstance(kernel.constraint, PruningMask):
            found.append((layer, kernel, kernel.constraint))
    return found


def sparsity(model: keras.Model, only_pruned: bool = True) -> float:
    """Fraction of exact zeros over the kernels of the pruned layers (or all Conv/Dense kernels)."""
    zeros = total = 0
    for layer in _leaf_layers(model):
        attribute = _kernel_attribute(layer)
        if attribute is None:
            continue
        kernel = getattr(layer, attribute)
        if only_pruned and not isinstance(kernel.constraint, PruningMask):
            continue
        values = keras.ops.convert_to_numpy(kernel)
        zeros += int(np.sum(values == 0))
        total += values.size
    return zeros / total if total else 0.0


def strip(model: keras.Model) -> keras.Model:
    """A NEW model of plain Keras layers with the masked weights (zeros baked in, no constraints).

    The :func:`~tfcompress.skipped.skipped_layers` records of ``model`` carry over.

    Raises:
        TfcompressError: the model cannot be copied (see :func:`copy_model`).
    """
    masked = {id(kernel): np.asarray(keras.ops.convert_to_numpy(kernel)) for _, kernel, _ in pruned_kernels(model)}
    for _, kernel, constraint in pruned_kernels(model):
        masked[id(kernel)] = masked[id(kernel)] * keras.ops.convert_to_numpy(constraint.mask)
    weights = [masked.get(id(v)) for v in model.weights]
    clone = copy_model(model)
    clone.set_weights(
        [w if w is not None else keras.ops.convert_to_numpy(v) for w, v in zip(weights, model.weights, strict=True)]
    )
    for variable in clone.weights:
        if isinstance(variable.constraint, PruningMask):
            variable.constraint = None
    return attach_skipped(clone, skipped_layers(model))


class PruningCallback(keras.callbacks.Callback):
    """Updates the masks on the schedule's update steps; logs ``sparsity`` each epoch.

    The step is the optimizer's ``iterations``, so a run resumed with ``BackupAndRestore``
    continues the schedule where it stopped. At the start of training the masks are set to
    the current step's target, and a run too short to reach the final sparsity warns.

    Args:
        model: the pruned model, when ``fit`` runs on another object (e.g. a
            ``keras.distillation.Distiller`` whose student is the pruned model).
        total_steps: steps of the run, for the reachability check (default: ``epochs *
            steps`` from ``fit``'s parameters).
    """

    def __init__(self, model: keras.Model | None = None, total_steps: int | None = None):
        super().__init__()
        self.pruned_model = model
        self.total_steps = total_steps

    def _target_model(self) -> keras.Model:
        return self.pruned_model if self.pruned_model is not None else self.model

    def _step(self) -> int:
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._kernels = pruned_kernels(self._target_model())
        if not self._kernels:
            raise TfcompressError(
                "PruningCallback: the model has no pruned kernel; call tfcompress.pruning.prune first"
            )
        step = self._step()
        total = self.total_steps
        if total is None and self.params and self.params.get("steps") and self.params.get("epochs"):
            total = self.params["steps"] * self.params["epochs"]
        if total is not None:
            schedules = {id(c.schedule): c.schedule for _, _, c in self._kernels}
            for schedule in schedules.values():
                schedule.check_run(int(total))
        update_masks(self._kernels, step)

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        step = self._step()
        update_masks([entry for entry in self._kernels if entry[2].schedule.is_update_step(step)], step)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["sparsity"] = sparsity(self._target_model())
