"""Finetuning PQ codebooks by distillation from the uncompressed teacher.

Built on ``keras.distillation.Distiller`` with :class:`tfcompress.distill.SoftTargets`
(Hinton et al. 2015, "Distilling the Knowledge in a Neural Network"): the loss is
``T^2 * KL(softmax(t / T) || softmax(s / T))`` between teacher logits ``t`` and student
logits ``s``, scaled per replica under ``MirroredStrategy``; no labels are needed.
(``keras.distillation.LogitsDistillation()`` with its default string loss applies KL to
the raw logits in Keras 3.15, hence ``SoftTargets``.) Only the variables passed as ``trainable`` move (the
codebooks; Stock et al. 2020 finetune the centroids and keep codes fixed). With
``update_batchnorm`` the BatchNorm layers run in training mode, so their moving
statistics follow the quantized network, while their gamma and beta stay fixed.

Runs under whatever ``tf.distribute`` strategy is in scope (``model.fit`` distributes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import keras
import numpy as np

from tfcompress.distill.losses import SoftTargets


class _StudentModeDistiller(keras.distillation.Distiller):
    """A ``Distiller`` whose student runs in inference mode unless ``student_training``."""

    def __init__(self, *args, student_training: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.student_training = student_training

    def call(self, inputs, training=None, **kwargs):
        return self.student(inputs, training=bool(training) and self.student_training, **kwargs)


@contextlib.contextmanager
def only_trainable(model: keras.Model, variables: Sequence, update_batchnorm: bool) -> Iterator[None]:
    """Within the block, ``variables`` are the model's only trainable weights.

    Layers owning none of them are frozen (BatchNorm too, unless ``update_batchnorm``:
    then it stays in training mode with gamma/beta frozen). Every flag is restored on exit.
    """
    wanted = {id(v) for v in variables}
    layer_flags = []
    variable_flags = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        own = layer._trainable_variables + layer._non_trainable_variables
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        keep = any(id(v) in wanted for v in own) or (is_bn and update_batchnorm)
        layer_flags.append((layer, layer.trainable))
        layer.trainable = keep
        for variable in own:
            variable_flags.append((variable, variable.trainable))
            if variable.trainable and id(variable) not in wanted:
                variable.trainable = False
    try:
        yield
    finally:
        for variable, flag in variable_flags:
            variable.trainable = flag
        for layer, flag in layer_flags:
            layer.trainable = flag


def distillation_dataset(images: np.ndarray, batch_size: int, augment: bool, seed: int, replicas: int = 1):
    """An endless shuffled ``tf.data`` stream of input batches (no labels)."""
    import tensorflow as tf

    from tfcompress.data import augment_batch

    batch_size = max(replicas, min(batch_size, len(images)) // replicas * replicas)
    dataset = tf.data.Dataset.from_tensor_slices(images.astype(np.float32))
    dataset = dataset.shuffle(len(images), seed=seed).repeat().batch(batch_size, drop_remainder=True)
    if augment:
        dataset = dataset.map(augment_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def finetune_codebooks(
    student: keras.Model,
    teacher: keras.Model,
    images: np.ndarray,
    trainable: Sequence,
    steps: int,
    learning_rate: float = 1e-4,
    temperature: float = 1.0,
    batch_size: int = 32,
    update_batchnorm: bool = False,
    augment: bool = False,
    seed: int = 0,
    verbose: int | str = 0,
    steps_per_epoch: int | None = None,
) -> list[float]:
    """Distil ``teacher`` into ``student`` for ``steps`` batches, moving only ``trainable``.

    Call inside the strategy scope the models were built in. ``teacher`` is frozen by the
    distiller; pass a private copy. Returns the distillation loss of each epoch.

    Args:
        student: the partly or fully quantized model (changed in place).
        teacher: the uncompressed model.
        images: input samples (N, ...); no labels.
        trainable: the variables to optimize (codebooks).
        steps: optimizer steps (batches).
        learning_rate: Adam step size.
        temperature: softmax temperature of the KL term.
        batch_size: global batch size (split across replicas).
        update_batchnorm: run BatchNorm in training mode so its statistics are updated.
        augment: apply :func:`tfcompress.data.augment_batch` (image inputs in [0, 255]).
        verbose: Keras ``fit`` verbosity.
        steps_per_epoch: steps of one progress-bar epoch (a pass over ``images``: the unit the
            ``compress`` recipe counts in); default: epochs of 200 steps.
    """
    import tensorflow as tf

    if steps <= 0 or not trainable:
        return []
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    dataset = distillation_dataset(images, batch_size, augment, seed, replicas)
    with only_trainable(student, trainable, update_batchnorm):
        distiller = _StudentModeDistiller(
            teacher=teacher,
            student=student,
            distillation_losses=SoftTargets(temperature),
            student_loss_weight=0.0,
            student_training=update_batchnorm,
        )
        distiller.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="categorical_crossentropy")
        epochs = max(1, steps // (steps_per_epoch or 200))
        history = distiller.fit(
            dataset, epochs=epochs, steps_per_epoch=max(1, steps // epochs), verbose=verbose, shuffle=False
        )
    # The tracked loss is per replica (divided by the replica count for the gradient sum).
    return [replicas * float(v) for v in history.history.get("distillation_loss", [])]
