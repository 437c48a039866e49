"""A short finetune of a factorized model, plain or distilled from the model it came from.

Plain: the flowers recipe of :mod:`tfcompress.training` (SGD + Nesterov, cosine decay,
label smoothing, augmentation, best-validation weights, resumable) with a small learning
rate and no warm-up, since the factors start close to the trained weights (Kim et al.
2016 and Lebedev et al. 2015 both finetune the whole network briefly after
decomposing). Distilled: the same recipe with Hinton soft targets from the unfactorized
teacher, through :func:`tfcompress.distill.distill`.
"""

from __future__ import annotations

import os

import keras

from tfcompress.batchnorm import FROZEN_LEARNING_RATE_SCALE, freeze_statistics, unfreeze_statistics
from tfcompress.data import load_split, make_dataset
from tfcompress.distribute import DeviceRequest, get_strategy, is_chief, worker_backup_dir
from tfcompress.fileio import atomic_output, check_output_path
from tfcompress.training import TrainConfig, compile_for_training, fit_keeping_best


def _copy_in_scope(model: keras.Model) -> keras.Model:
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def finetune(
    model: keras.Model,
    output: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    epochs: int = 3,
    learning_rate: float = 0.01,
    batch_size: int = 64,
    teacher: keras.Model | None = None,
    devices: DeviceRequest = None,
    backup_dir: str | os.PathLike | None = None,
    force: bool = False,
    limit: int | None = None,
    seed: int = 0,
    verbose: int | str = "auto",
    freeze_batchnorm: bool = False,
    optimizer: str = "sgd",
) -> keras.Model:
    """Finetune a copy of ``model`` on ``data_dir``; save the best-validation weights to ``output``.

    Args:
        model: the factorized model (not modified).
        output: the ``.keras`` file to write (atomically; refused if it exists unless ``force``).
        data_dir: the data folder (see :func:`tfcompress.data.resolve_data_dir`).
        epochs: finetuning epochs (a few are enough to recover most of the accuracy).
        learning_rate: peak learning rate of the cosine schedule.
        batch_size: global batch size.
        teacher: distil from this model (usually the unfactorized one) when given.
        devices: see :func:`tfcompress.distribute.get_strategy`; with workers only worker 0 writes ``output``.
        backup_dir: resumable state (``keras.callbacks.BackupAndRestore``, one sub-folder per worker).
        force: overwrite ``output``.
        limit: use only this many images per split (quick runs, tests).
        seed: random seed.
        verbose: Keras verbosity.
        freeze_batchnorm: BatchNorm in inference mode, AdamW at ``learning_rate`` x
            :data:`tfcompress.batchnorm.FROZEN_LEARNING_RATE_SCALE` (:mod:`tfcompress.batchnorm`).
        optimizer: ``"sgd"`` or ``"adam"`` (AdamW at ``learning_rate`` as given, not scaled).

    Returns:
        The finetuned model.
    """
    if is_chief(devices):
        check_output_path(output, force)
    image_size = int(model.inputs[0].shape[1])
    config = TrainConfig(
        image_size=image_size,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate * (FROZEN_LEARNING_RATE_SCALE if freeze_batchnorm and optimizer == "sgd" else 1.0),
        warmup_epochs=0,
        seed=seed,
        pretrained=freeze_batchnorm,
        optimizer=optimizer,
    )
    if freeze_batchnorm:  # the copies made below keep the layers' trainable flags
        model = freeze_statistics(_copy_in_scope(model))
    if teacher is not None:
        from tfcompress.distill import DistillConfig, distill

        distill_config = DistillConfig(**{**config.__dict__, "model": "given", "width": 1.0})
        return unfreeze_statistics(
            distill(
                output,
                teacher,
                data_dir,
                config=distill_config,
                student=model,
                devices=devices,
                backup_dir=backup_dir,
                force=force,
                limit=limit,
                verbose=verbose,
            )
        )
    import tensorflow as tf

    strategy = get_strategy(devices)
    keras.utils.set_random_seed(seed)
    train_set = load_split(data_dir, "train", image_size, limit)
    val_set = load_split(data_dir, "val", image_size, limit)
    classes = len(train_set.class_names)
    batch_size = min(batch_size, len(train_set))
    steps_per_epoch = max(len(train_set) // batch_size, 1)
    with strategy.scope():
        student = _copy_in_scope(model)
        compile_for_training(student, config, steps_per_epoch)
    train_data = make_dataset(train_set, batch_size, training=True, seed=seed).map(
        lambda x, y: (x, tf.one_hot(y, classes))
    )
    fit_keeping_best(student, train_data, val_set, epochs, batch_size, worker_backup_dir(backup_dir, devices), verbose)
    student = unfreeze_statistics(student)
    if is_chief(devices):
        with atomic_output(output, force) as tmp:
            student.save(tmp)
    return student
