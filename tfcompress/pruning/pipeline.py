"""The end-to-end recipes behind ``tfcompress prune`` and ``tfcompress slim``.

- :func:`prune_and_finetune`: masks on a schedule that reaches ``sparsity`` at 60% of the
  run (about ten mask updates), finetune, :func:`~tfcompress.pruning.strip`.
- :func:`slim_and_finetune`: sparsity training with the L1 penalty on BatchNorm gamma (3
  epochs by default), :func:`~tfcompress.pruning.slim.slim` with one global threshold,
  finetune. It warns when the |gamma| it thresholds barely differ (:func:`gamma_spread` below
  :data:`MIN_GAMMA_SPREAD`): the cut then removes channels almost at random.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import keras
import numpy as np

from tfcompress.pruning.finetune import FinetuneConfig, finetune, steps_per_epoch
from tfcompress.pruning.masks import Granularity
from tfcompress.pruning.prune import PruningCallback, copy_model, prune, strip
from tfcompress.pruning.schedules import ConstantSparsity, PolynomialDecay, PruningSchedule, check_sparsity
from tfcompress.pruning.slim import SlimReport, add_gamma_penalty, bn_gammas, slim

SCHEDULES = ("polynomial", "constant")
MIN_GAMMA_SPREAD = 0.1


def gamma_spread(model: keras.Model) -> float:
    """How far apart the BatchNorm ``|gamma|`` are: ``(p90 - p10) / median`` (0.0 without BatchNorm).

    About 1 or more after the sparsity phase has pushed the unimportant channels toward 0;
    near 0 when the gammas sit where they started (all 1.0 at initialization).
    """
    gammas = bn_gammas(model)
    if gammas.size == 0:
        return 0.0
    p10, median, p90 = np.percentile(gammas, [10, 50, 90])
    return float((p90 - p10) / median) if median > 0 else float("inf")


def default_schedule(kind: str, sparsity: float, total_steps: int, reach_at: float = 0.6) -> PruningSchedule:
    """A schedule reaching ``sparsity`` at ``reach_at`` of ``total_steps``, with ~10 mask updates.

    Raises:
        TfcompressError: an unknown kind or a sparsity outside ``[0, 1)``.
    """
    from tfcompress.errors import TfcompressError

    check_sparsity(sparsity)
    end = max(1, int(total_steps * reach_at))
    frequency = max(1, end // 10)
    if kind == "polynomial":
        return PolynomialDecay(0.0, sparsity, begin_step=0, end_step=end, frequency=frequency)
    if kind == "constant":
        return ConstantSparsity(sparsity, begin_step=0, frequency=frequency)
    raise TfcompressError(f"unknown schedule {kind!r}; use one of {', '.join(SCHEDULES)}")


def _backup(backup_dir: str | os.PathLike | None, phase: str) -> Path | None:
    return None if backup_dir is None else Path(backup_dir) / phase


def prune_and_finetune(
    model: keras.Model,
    data_dir: str | os.PathLike | None,
    sparsity: float,
    schedule: str | PruningSchedule = "polynomial",
    granularity: Granularity = "weight",
    config: FinetuneConfig | None = None,
    teacher: keras.Model | None = None,
    exclude: Iterable[str] = (),
    devices: int | Sequence[str] | None = None,
    backup_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    verbose: int | str = "auto",
    allocation: str = "layer",
) -> keras.Model:
    """Prune ``model`` on a schedule while finetuning; return the stripped (plain Keras) model.

    With ``config.epochs == 0`` the model is pruned in one shot to ``sparsity`` (no data read).
    ``allocation`` is ``"layer"`` (every kernel at ``sparsity``) or ``"global"`` (one
    threshold over all kernels; see :func:`tfcompress.pruning.prune`).
    """
    config = config or FinetuneConfig()
    if config.epochs == 0:
        return strip(prune(model, ConstantSparsity(sparsity, frequency=1), granularity, exclude, allocation))
    image_size = int(model.inputs[0].shape[1])
    if isinstance(schedule, str):
        steps, _ = steps_per_epoch(data_dir, config.batch_size, limit)
        schedule = default_schedule(schedule, sparsity, steps * config.epochs)
    exclude = tuple(exclude)
    trained = finetune(
        lambda: prune(model, schedule, granularity, exclude, allocation),
        data_dir,
        image_size,
        config,
        callbacks=[lambda m: PruningCallback(model=m)],
        teacher=teacher,
        devices=devices,
        backup_dir=_backup(backup_dir, "prune"),
        limit=limit,
        verbose=verbose,
    )
    return strip(trained)


def slim_and_finetune(
    model: keras.Model,
    data_dir: str | os.PathLike | None,
    ratio: float,
    l1: float = 1e-4,
    penalty_epochs: int = 3,
    config: FinetuneConfig | None = None,
    teacher: keras.Model | None = None,
    devices: int | Sequence[str] | None = None,
    backup_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    verbose: int | str = "auto",
) -> tuple[keras.Model, SlimReport]:
    """Network Slimming: ``penalty_epochs`` of L1-on-gamma training, slim to ``ratio``, finetune.

    Warns (``UserWarning``) when :func:`gamma_spread` of the model being slimmed is below
    :data:`MIN_GAMMA_SPREAD`.
    """
    config = config or FinetuneConfig()
    image_size = int(model.inputs[0].shape[1])
    if penalty_epochs > 0:
        # The sparsity phase trains the gammas, so BatchNorm runs in training mode there.
        penalty_config = FinetuneConfig(**{**config.__dict__, "epochs": penalty_epochs, "freeze_batchnorm": False})
        model = finetune(
            lambda: add_gamma_penalty(model, l1),
            data_dir,
            image_size,
            penalty_config,
            teacher=teacher,
            devices=devices,
            backup_dir=_backup(backup_dir, "penalty"),
            limit=limit,
            verbose=verbose,
        )
    spread = gamma_spread(model)
    if spread < MIN_GAMMA_SPREAD:
        warnings.warn(
            f"the BatchNorm |gamma| barely differ (their 10th to 90th percentile span {spread:.1%} of the median, "
            f"after {penalty_epochs} penalty epoch(s)): the threshold removes channels almost at random; "
            "train the sparsity phase longer or stronger (tfcompress compress: --set slim.penalty_epochs=N, "
            "--set slim.l1=X; tfcompress slim: --penalty-epochs, --l1)",
            stacklevel=2,
        )
    thin, report = slim(model, ratio, return_report=True)
    if config.epochs > 0:
        thin = finetune(
            lambda: copy_model(thin),
            data_dir,
            image_size,
            config,
            teacher=teacher,
            devices=devices,
            backup_dir=_backup(backup_dir, "finetune"),
            limit=limit,
            verbose=verbose,
        )
    return thin, report
