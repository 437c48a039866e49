"""Training a zoo model on an image folder: the recipe behind the shipped flower models.

Recipe (from-scratch, small data): SGD with Nesterov momentum 0.9, linear warm-up then
cosine decay of the learning rate (Loshchilov & Hutter 2017, "SGDR"), decoupled weight
decay on conv/dense kernels only, label smoothing 0.1 (Szegedy et al. 2016), random-resized
crops, flips and colour jitter (:func:`tfcompress.data.augment_batch`), optionally mixup and/or
CutMix. The weights with the best validation accuracy are kept (or the last ones, ``keep="last"``).
``precision="mixed_bfloat16"`` computes in bfloat16 with float32 weights (Micikevicius et al. 2018,
"Mixed Precision Training"; 1.4x faster on CPUs with AVX512-BF16, ``benchmarks/precision.py``);
the saved model is float32 either way.
Training resumes from ``backup_dir`` after an interruption, and runs under
``tf.distribute.MirroredStrategy`` when several devices are given, or
``MultiWorkerMirroredStrategy`` on several machines (:class:`tfcompress.distribute.Workers`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras

from tfcompress.data import ImageSet, load_split, make_dataset
from tfcompress.distribute import DeviceRequest, get_strategy, is_chief, worker_backup_dir
from tfcompress.errors import TfcompressError
from tfcompress.fileio import atomic_output, check_output_path
from tfcompress.models import PRETRAINED_MODELS, build_model


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train`; the defaults are the flowers recipe."""

    model: str = "resnet18"
    image_size: int = 96
    width: int = 32
    epochs: int = 80
    batch_size: int = 64
    learning_rate: float = 0.1
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup_epochs: int = 3
    mixup: float = 0.0
    cutmix: float = 0.0
    seed: int = 0
    precision: str = "float32"
    keep: str = "best"
    pretrained: bool = False
    optimizer: str = "sgd"
    #: ``"cosine"`` (warm-up, then cosine decay to 0) or ``"constant"`` (``learning_rate`` throughout: probes)
    schedule: str = "cosine"


KEEP_CHOICES = ("best", "last")


OPTIMIZERS = ("sgd", "adam")  # SGD + Nesterov; AdamW (Adam with decoupled weight decay)


PRECISIONS = ("float32", "mixed_bfloat16")


@contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Build layers under the Keras dtype policy ``name`` (``float32`` or ``mixed_bfloat16``), then restore.

    Raises:
        TfcompressError: ``name`` is not one of :data:`PRECISIONS`.
    """
    if name not in PRECISIONS:
        raise TfcompressError(f"unknown precision {name!r}; available: {', '.join(PRECISIONS)}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def with_precision(model: keras.Model, name: str) -> keras.Model:
    """A copy of the functional ``model`` computing under the dtype policy ``name``, same weights.

    The layers that produce the model's outputs stay ``float32`` (logits in full precision, as
    mixed-precision training recommends). Used to run a teacher in bfloat16 while it only
    infers (:class:`tfcompress.distill.DistillConfig` ``teacher_precision``).

    Raises:
        TfcompressError: ``name`` is not one of :data:`PRECISIONS`.
    """
    if name not in PRECISIONS:
        raise TfcompressError(f"unknown precision {name!r}; available: {', '.join(PRECISIONS)}")
    output_layers = {tensor._keras_history.operation.name for tensor in model.outputs}

    def recast(layer: keras.layers.Layer) -> keras.layers.Layer:
        policy = "float32" if layer.name in output_layers else name
        return layer.__class__.from_config({**layer.get_config(), "dtype": policy})

    copy = keras.models.clone_model(model, clone_function=recast)
    copy.set_weights(model.get_weights())
    return copy


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """SGD + Nesterov, or AdamW (Loshchilov & Hutter 2019; ``optimizer="adam"``, and always when fine-tuning
    pretrained weights), with warm-up and cosine decay; no weight decay on BN and biases.

    Raises:
        TfcompressError: an optimizer not in :data:`OPTIMIZERS`.
    """
    warmup = config.warmup_epochs * steps_per_epoch
    total = max(config.epochs * steps_per_epoch - warmup, 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate / 10 if warmup else config.learning_rate,
        decay_steps=total,
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
    )
    if config.schedule == "constant":
        schedule = config.learning_rate
    if config.optimizer not in OPTIMIZERS:
        raise TfcompressError(f"unknown optimizer {config.optimizer!r}; available: {', '.join(OPTIMIZERS)}")
    # SGD diverges from frozen-BN ImageNet weights (README) and stalls binary nets; Adam scales each step
    if config.pretrained or config.optimizer == "adam":
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    else:
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer


def compile_for_training(model: keras.Model, config: TrainConfig, steps_per_epoch: int) -> None:
    """Compile ``model`` with the recipe's optimizer and a label-smoothed cross-entropy on logits."""
    model.compile(
        optimizer=make_optimizer(config, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )


def beta_sample(alpha: float):
    """One draw of ``Beta(a, a)`` as ``G1 / (G1 + G2)`` with ``G1, G2 ~ Gamma(a)`` (a scalar tensor)."""
    import tensorflow as tf

    first = tf.random.gamma([], alpha)
    second = tf.random.gamma([], alpha)
    return first / (first + second)


def mixup_batch(images, labels, alpha: float):
    """Mixup (Zhang et al. 2018): ``x = l x_i + (1 - l) x_j``, ``y = l y_i + (1 - l) y_j``, ``l ~ Beta(a, a)``.

    One ``l`` per batch; ``j`` is a random permutation of the batch.
    """
    import tensorflow as tf

    weight = beta_sample(alpha)
    order = tf.random.shuffle(tf.range(tf.shape(images)[0]))
    images = weight * images + (1.0 - weight) * tf.gather(images, order)
    labels = weight * labels + (1.0 - weight) * tf.gather(labels, order)
    return images, labels


def cutmix_batch(images, labels, alpha: float):
    """CutMix (Yun et al. 2019): paste a box of ``x_j`` into ``x_i``; ``y = l y_i + (1 - l) y_j``.

    ``l ~ Beta(a, a)`` sets the box's target area ``(1 - l) H W``; the box is centred uniformly
    at random and clipped to the image, and ``l`` is then recomputed as ``1 - box area / (H W)``
    so that the labels match the pixels. One box per batch; ``j`` is a random permutation of the batch.
    """
    import tensorflow as tf

    weight = beta_sample(alpha)
    height = tf.shape(images)[1]
    width = tf.shape(images)[2]
    side = tf.sqrt(1.0 - weight)
    box_h = tf.cast(tf.round(side * tf.cast(height, tf.float32)), tf.int32)
    box_w = tf.cast(tf.round(side * tf.cast(width, tf.float32)), tf.int32)
    centre_y = tf.random.uniform([], 0, height, dtype=tf.int32)
    centre_x = tf.random.uniform([], 0, width, dtype=tf.int32)
    top, bottom = tf.maximum(centre_y - box_h // 2, 0), tf.minimum(centre_y + (box_h + 1) // 2, height)
    left, right = tf.maximum(centre_x - box_w // 2, 0), tf.minimum(centre_x + (box_w + 1) // 2, width)
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    mask = tf.cast(inside, images.dtype)[None, :, :, None]
    order = tf.random.shuffle(tf.range(tf.shape(images)[0]))
    images = (1.0 - mask) * images + mask * tf.gather(images, order)
    weight = 1.0 - tf.reduce_mean(mask)
    labels = weight * labels + (1.0 - weight) * tf.gather(labels, order)
    return images, labels


def mix_batch(images, labels, mixup: float = 0.0, cutmix: float = 0.0):
    """Mixup and/or CutMix on one batch: with both on, each batch gets one of them at random (p = 1/2)."""
    import tensorflow as tf

    if mixup > 0 and cutmix > 0:
        return tf.cond(
            tf.random.uniform([]) < 0.5,
            lambda: mixup_batch(images, labels, mixup),
            lambda: cutmix_batch(images, labels, cutmix),
        )
    if mixup > 0:
        return mixup_batch(images, labels, mixup)
    if cutmix > 0:
        return cutmix_batch(images, labels, cutmix)
    return images, labels


def one_hot_dataset(
    image_set: ImageSet, batch_size: int, training: bool, seed: int, mixup: float = 0.0, cutmix: float = 0.0
):
    """Batches of (images, one-hot labels); training batches are augmented and optionally mixed (mixup/CutMix)."""
    import tensorflow as tf

    classes = len(image_set.class_names)
    dataset = make_dataset(image_set, batch_size, training=training, seed=seed)
    dataset = dataset.map(lambda x, y: (x, tf.one_hot(y, classes)))
    if training and (mixup > 0 or cutmix > 0):
        dataset = dataset.map(lambda x, y: mix_batch(x, y, mixup, cutmix))
    return dataset


class ValidationAccuracy(keras.callbacks.Callback):
    """Adds ``val_accuracy`` to the epoch logs, computed outside any distribution strategy.

    Keras 3 under ``MirroredStrategy`` fails on a final validation batch that does not split
    evenly across replicas; running the forward pass in the cross-replica context on the
    whole validation set avoids that and drops no image. Place it before callbacks that
    read ``val_accuracy`` (e.g. ``ModelCheckpoint``).
    """

    def __init__(self, images, labels, batch_size: int = 64):
        super().__init__()
        self.images = images
        self.labels = labels
        self.batch_size = batch_size
        self._forward = None

    def accuracy(self) -> float:
        import numpy as np
        import tensorflow as tf

        if self._forward is None:
            self._forward = tf.function(lambda x: self.model(x, training=False))
        correct = 0
        for start in range(0, len(self.labels), self.batch_size):
            batch = tf.constant(self.images[start : start + self.batch_size], tf.float32)
            predicted = np.argmax(self._forward(batch).numpy(), axis=1)
            correct += int(np.sum(predicted == self.labels[start : start + self.batch_size]))
        return correct / len(self.labels)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = self.accuracy()
        if logs is not None:
            logs["val_accuracy"] = value


def train(
    output: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    config: TrainConfig | None = None,
    devices: DeviceRequest = None,
    backup_dir: str | os.PathLike | None = None,
    force: bool = False,
    limit: int | None = None,
    init_from: str | os.PathLike | None = None,
    verbose: int | str = "auto",
) -> keras.Model:
    """Train ``config.model`` on ``data_dir`` and save the best-validation model to ``output``.

    Args:
        output: the ``.keras`` file to write (atomically; refused if it exists unless ``force``).
        data_dir: the data folder (see :func:`tfcompress.data.resolve_data_dir`).
        config: the recipe; :class:`TrainConfig` defaults when ``None``.
        devices: see :func:`tfcompress.distribute.get_strategy`; with
            :class:`tfcompress.distribute.Workers` only worker 0 writes ``output``.
        backup_dir: where to keep the state that lets an interrupted run resume
            (``keras.callbacks.BackupAndRestore``; one sub-folder per worker, see
            :func:`tfcompress.distribute.worker_backup_dir`); ``None`` for no resuming.
        force: overwrite ``output`` if it exists.
        limit: use only the first ``limit`` images of each split (quick runs, tests).
        init_from: a ``.keras`` model of the same architecture whose weights start the run
            (a second cosine cycle, i.e. a warm restart as in SGDR).
        verbose: Keras verbosity (progress bars by default).

    Returns:
        The trained model with the best validation weights.
    """
    config = config or TrainConfig()
    if config.pretrained and config.model not in PRETRAINED_MODELS:
        raise TfcompressError(
            f"--pretrained needs a model with pretrained weights ({', '.join(PRETRAINED_MODELS)}), got {config.model!r}"
        )
    if config.model in PRETRAINED_MODELS:  # fixed architecture: no width, optionally ImageNet weights
        options = {"weights": "imagenet" if config.pretrained else None}
    else:
        options = {"width": config.width}
    strategy = get_strategy(devices)
    if is_chief(devices):
        check_output_path(output, force)
    keras.utils.set_random_seed(config.seed)
    train_set = load_split(data_dir, "train", config.image_size, limit)
    val_set = load_split(data_dir, "val", config.image_size, limit)
    batch_size = min(config.batch_size, len(train_set))
    steps_per_epoch = len(train_set) // batch_size

    def build() -> keras.Model:
        return build_model(
            config.model, num_classes=len(train_set.class_names), image_size=config.image_size, **options
        )

    with strategy.scope(), dtype_policy(config.precision):
        model = build()
        if init_from is not None:
            from tfcompress.convert import load_keras_model

            model.set_weights(load_keras_model(init_from).get_weights())
        elif config.pretrained:
            prepare_fine_tuning(model, train_set, batch_size)
        compile_for_training(model, config, steps_per_epoch)
    train_data = one_hot_dataset(train_set, batch_size, True, config.seed, config.mixup, config.cutmix)
    backup_dir = worker_backup_dir(backup_dir, devices)
    fit_keeping_best(model, train_data, val_set, config.epochs, batch_size, backup_dir, verbose, config.keep)
    if config.precision != "float32":  # ship float32: the same weights in a float32-policy model
        with dtype_policy("float32"):
            trained, model = model, build()
        model.set_weights(trained.get_weights())
    if is_chief(devices):
        save_for_inference(model, output, force)
    return model


def prepare_fine_tuning(model: keras.Model, train_set: ImageSet, batch_size: int = 64) -> keras.Model:
    """Ready a pretrained ``model`` for fine-tuning: BN statistics frozen, classifier from a linear probe.

    LP-FT (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features and Underperform
    Out-of-Distribution"): the classifier (layer ``logits``, fed by the pooled features of layer
    ``pool``) starts as a logistic regression fitted on the frozen features of the unaugmented
    training images, so that the first fine-tuning steps do not push a random head's large
    gradients into the backbone. Every ``BatchNormalization`` layer is made non-trainable, which in
    Keras also runs it in inference mode: its ImageNet statistics stay fixed (a few thousand
    images give noisy batch statistics). The ImageNet features alone (the linear probe) reach
    71-74% on flowers5 test (README).
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from tfcompress.batchnorm import freeze_statistics

    freeze_statistics(model)
    pooled = keras.Model(model.input, model.get_layer("pool").output)
    features = pooled.predict(train_set.images, batch_size=batch_size, verbose=0).astype("float64")
    scaler = StandardScaler().fit(features)
    probe = LogisticRegression(C=0.1, max_iter=2000).fit(scaler.transform(features), train_set.labels)
    weights = probe.coef_.T / scaler.scale_[:, None]  # the standardization folded into the kernel
    bias = probe.intercept_ - scaler.mean_ @ weights
    if weights.shape[1] == 1:  # two classes: scikit-learn fits one logit; the model has two
        halves = np.array([[-0.5, 0.5]])
        weights, bias = weights @ halves, bias @ halves
    model.get_layer("logits").set_weights([weights.astype("float32"), bias.astype("float32")])
    return model


def fit_keeping_best(
    model: keras.Model,
    train_data,
    val_set: ImageSet,
    epochs: int,
    batch_size: int,
    backup_dir: str | os.PathLike | None = None,
    verbose: int | str = "auto",
    keep: str = "best",
) -> keras.Model:
    """Fit ``model`` on ``train_data``, then restore the weights of the epoch with the best validation top-1.

    Validation accuracy comes from :class:`ValidationAccuracy`; ``backup_dir`` keeps the state
    that lets an interrupted run resume (``keras.callbacks.BackupAndRestore``). ``keep="last"``
    keeps the final weights instead (the end of the cosine schedule; validation is still reported).

    Raises:
        TfcompressError: ``keep`` is not one of :data:`KEEP_CHOICES`.
    """
    if keep not in KEEP_CHOICES:
        raise TfcompressError(f"keep must be one of {', '.join(KEEP_CHOICES)}, got {keep!r}")
    with tempfile.TemporaryDirectory() as scratch:
        best_path = Path(scratch) / "best.weights.h5"
        callbacks: list[keras.callbacks.Callback] = [
            ValidationAccuracy(val_set.images, val_set.labels, batch_size),
            keras.callbacks.ModelCheckpoint(
                best_path, monitor="val_accuracy", mode="max", save_best_only=True, save_weights_only=True
            ),
        ]
        if backup_dir is not None:
            callbacks.append(keras.callbacks.BackupAndRestore(str(backup_dir)))
        model.fit(train_data, epochs=epochs, callbacks=callbacks, verbose=verbose, shuffle=False)
        if backup_dir is not None:
            remove_empty_worker_parent(Path(backup_dir))
        if keep == "best" and best_path.exists():  # absent only when a resumed run had no epoch left
            model.load_weights(best_path)
    return model


def remove_empty_worker_parent(backup_dir: Path) -> None:
    """After a finished run (``BackupAndRestore`` removed its folder), remove ``OUT.backup`` once no worker uses it."""
    if backup_dir.name.startswith("worker-") and not backup_dir.exists():
        with contextlib.suppress(OSError):  # not empty: another worker still trains
            backup_dir.parent.rmdir()  # the last worker to finish removes it


def save_for_inference(model: keras.Model, output: str | os.PathLike, force: bool = False) -> Path:
    """Save ``model``'s architecture and weights as ``.keras`` without optimizer state (half the bytes)."""
    plain = model.__class__.from_config(model.get_config())  # uncompiled: no optimizer state
    plain.set_weights(model.get_weights())
    with atomic_output(output, force) as tmp:
        plain.save(tmp)
    return Path(output)
