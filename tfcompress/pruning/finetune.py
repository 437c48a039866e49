"""Finetuning after pruning or slimming: the flowers recipe at a low learning rate, optionally distilled.

The model is built inside the strategy scope by a ``make_model`` function (so that pruning
masks become mirrored variables), trained with SGD + Nesterov and cosine decay from
``learning_rate`` (no warm-up), label smoothing 0.1, and, with a ``teacher``, the soft
targets of Hinton et al. (2015) through :func:`tfcompress.distill.build_distiller`
(``T^2 * KL(softmax(t/T) || softmax(s/T))`` weighted ``1 - alpha``). The final weights are
kept: a pruning schedule only reaches its target late in the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras

from tfcompress.batchnorm import FROZEN_LEARNING_RATE_SCALE, freeze_statistics, unfreeze_statistics
from tfcompress.data import list_split, load_split, resolve_data_dir
from tfcompress.distribute import DeviceRequest, get_strategy, worker_backup_dir
from tfcompress.training import TrainConfig, ValidationAccuracy, make_optimizer, one_hot_dataset


@dataclass
class FinetuneConfig:
    """Settings of :func:`finetune`."""

    epochs: int = 6
    batch_size: int = 64
    learning_rate: float = 0.01
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    temperature: float = 4.0
    alpha: float = 0.5
    seed: int = 0
    #: BatchNorm in inference mode, AdamW at ``learning_rate`` x
    #: :data:`tfcompress.batchnorm.FROZEN_LEARNING_RATE_SCALE` (see :mod:`tfcompress.batchnorm`).
    freeze_batchnorm: bool = False
    #: ``"sgd"`` (SGD + Nesterov) or ``"adam"`` (AdamW at ``learning_rate`` as given).
    optimizer: str = "sgd"
    #: at most this many steps per epoch (``None``: the whole training split)
    steps_per_epoch: int | None = None
    #: ``learning_rate`` throughout instead of the cosine decay (the no-harm probe)
    constant_learning_rate: bool = False
    #: measure val top-1 after every epoch
    validate: bool = True


def steps_per_epoch(data_dir, batch_size: int, limit: int | None = None) -> tuple[int, int]:
    """``(steps per epoch, batch size)`` of the training split (batch capped at the split size)."""
    count = len(list_split(resolve_data_dir(data_dir), "train")[0])
    count = min(count, limit) if limit is not None else count
    batch = min(batch_size, count)
    return count // batch, batch


def finetune(
    make_model: Callable[[], keras.Model],
    data_dir: str | os.PathLike | None,
    image_size: int,
    config: FinetuneConfig | None = None,
    callbacks: Sequence[Callable[[keras.Model], keras.callbacks.Callback]] = (),
    teacher: keras.Model | None = None,
    devices: DeviceRequest = None,
    backup_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    verbose: int | str = "auto",
) -> keras.Model:
    """Build ``make_model()`` in the strategy scope and train it on the ``train`` split.

    Args:
        make_model: returns the model to train (e.g. ``lambda: prune(model, schedule)``).
        data_dir, image_size, limit: the data (see :func:`tfcompress.data.load_split`).
        config: :class:`FinetuneConfig`.
        callbacks: functions of the trained model returning callbacks (e.g.
            ``lambda m: PruningCallback(model=m)``), called after the model is built.
        teacher: distil from this model's logits when given.
        devices: see :func:`tfcompress.distribute.get_strategy`.
        backup_dir: resumable state (``keras.callbacks.BackupAndRestore``; one sub-folder per
            worker, :func:`tfcompress.distribute.worker_backup_dir`).

    Returns:
        The trained model (still carrying its pruning constraints, if any).
    """
    config = config or FinetuneConfig()
    strategy = get_strategy(devices)
    keras.utils.set_random_seed(config.seed)
    train_set = load_split(data_dir, "train", image_size, limit)
    val_set = load_split(data_dir, "val", image_size, limit)
    batch_size = min(config.batch_size, len(train_set))
    steps = min(len(train_set) // batch_size, config.steps_per_epoch or len(train_set))
    frozen = config.freeze_batchnorm
    scaled = frozen and config.optimizer == "sgd"  # an SGD step size made an AdamW one
    recipe = TrainConfig(
        epochs=config.epochs,
        batch_size=batch_size,
        learning_rate=config.learning_rate * (FROZEN_LEARNING_RATE_SCALE if scaled else 1.0),
        pretrained=frozen,
        weight_decay=config.weight_decay,
        label_smoothing=config.label_smoothing,
        warmup_epochs=0,
        seed=config.seed,
        optimizer=config.optimizer,
        schedule="constant" if config.constant_learning_rate else "cosine",
    )
    loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing)
    with strategy.scope():
        model = make_model()
        if frozen:
            freeze_statistics(model)
        trainer = model
        if teacher is not None:
            from tfcompress.distill import build_distiller

            trainer = build_distiller(teacher, model, config.temperature, config.alpha, copy=False)
            trainer(keras.ops.zeros((1, image_size, image_size, 3)))  # built: BackupAndRestore needs it
        trainer.compile(
            optimizer=make_optimizer(recipe, steps),
            loss=loss,
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        )
    data = one_hot_dataset(train_set, batch_size, True, config.seed)
    validation = ValidationAccuracy(val_set.images, val_set.labels, batch_size)
    all_callbacks: list[keras.callbacks.Callback] = []
    backup_dir = worker_backup_dir(backup_dir, devices)
    if backup_dir is not None:  # first: it restores weights and the step before the masks are recomputed
        all_callbacks.append(keras.callbacks.BackupAndRestore(str(backup_dir)))
    all_callbacks += [make(model) for make in callbacks]
    if config.validate:
        all_callbacks.append(_ValidationOf(model, validation))
    trainer.fit(
        data,
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch and steps,
        callbacks=all_callbacks,
        verbose=verbose,
        shuffle=False,
    )
    return unfreeze_statistics(model) if frozen else model


class _ValidationOf(keras.callbacks.Callback):
    """``val_accuracy`` of ``model`` (the student when ``fit`` runs a distiller)."""

    def __init__(self, model: keras.Model, validation: ValidationAccuracy):
        super().__init__()
        self.target = model
        self.validation = validation

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.validation.set_model(self.target)
        value = self.validation.accuracy()
        if logs is not None:
            logs["val_accuracy"] = value
        print(f" - val_accuracy: {value:.4f}", flush=True)
