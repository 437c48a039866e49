"""Train models/flowers_binary.keras: the Bi-Real-style binary ResNet-18 on flowers5 (96 px).

Recipe for binary nets (Bi-Real Net, Liu et al. 2018; Larq's zoo): Adam (lr 2e-3) with a
one-epoch linear warm-up and cosine decay to 0, no weight decay on the latent weights
(they are clipped to [-1, 1] by ``weight_clip`` instead), label smoothing 0.1, the kit's
augmentation (:func:`tfcompress.data.augment_batch`). The weights with the best
validation accuracy are kept.

Resumable: run the same command again after an interruption; the state lives in
``--work`` (default models/.work/binary). The command (defaults: width 48, 15 epochs)::

    nice -n 5 nohup .venv/bin/python scripts/train_flowers_binary.py \\
        > models/.work/train_binary.log 2>&1 &

The shipped model came from this command, resumed twice with a shorter ``--epochs`` to
finish on the shared 2-core machine (epochs 1-4 under a 24-epoch cosine schedule, 5-6
under 20, 7-15 under 15; the schedule is a function of the step, so at each change the
learning rate stepped down to the shorter schedule's value). ``--limit N --epochs 1`` is a quick smoke run;
``--devices 2`` trains under ``MirroredStrategy`` (see :func:`tfcompress.distribute.get_strategy`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import keras

from tfcompress.binary.zoo import binary_resnet18
from tfcompress.data import load_split, make_dataset
from tfcompress.distribute import get_strategy
from tfcompress.fileio import atomic_output, check_output_path


def one_hot_batches(image_set, batch_size: int, training: bool, seed: int):
    """``(images, one-hot labels)`` batches, augmented when ``training``."""
    import tensorflow as tf

    classes = len(image_set.class_names)
    return make_dataset(image_set, batch_size, training=training, seed=seed).map(
        lambda x, y: (x, tf.one_hot(y, classes))
    )


def make_optimizer(learning_rate: float, epochs: int, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam with a one-epoch linear warm-up to ``learning_rate``, then cosine decay to 0; no weight decay."""
    warmup = steps_per_epoch
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate / 10,
        decay_steps=max(epochs * steps_per_epoch - warmup, 1),
        warmup_target=learning_rate,
        warmup_steps=warmup,
    )
    return keras.optimizers.Adam(schedule)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", default="models/flowers_binary.keras")
    parser.add_argument("--work", default="models/.work/binary", help="resumable state and best weights")
    parser.add_argument("--data", help="image folder (default: flowers5)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--width", type=int, default=48)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--devices", type=int, help="N devices for MirroredStrategy (default: one)")
    parser.add_argument("--limit", type=int, help="only this many images per split (smoke runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="overwrite the output")
    args = parser.parse_args()

    check_output_path(args.output, args.force)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    train_set = load_split(args.data, "train", args.image_size, args.limit)
    val_set = load_split(args.data, "val", args.image_size, args.limit)
    batch_size = min(args.batch_size, len(train_set))
    steps_per_epoch = len(train_set) // batch_size
    with get_strategy(args.devices).scope():
        model = binary_resnet18(num_classes=len(train_set.class_names), image_size=args.image_size, width=args.width)
        model.compile(
            optimizer=make_optimizer(args.learning_rate, args.epochs, steps_per_epoch),
            loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        )
    best, best_record = work / "best.weights.h5", work / "best.json"
    # After a resume, only a better epoch may replace the best weights kept so far.
    best_so_far = json.loads(best_record.read_text())["val_accuracy"] if best_record.exists() else None

    def record_best(epoch: int, logs: dict) -> None:
        nonlocal best_so_far
        if best_so_far is None or logs["val_accuracy"] > best_so_far:
            best_so_far = float(logs["val_accuracy"])
            best_record.write_text(json.dumps({"epoch": epoch + 1, "val_accuracy": best_so_far}))

    history = model.fit(
        one_hot_batches(train_set, batch_size, True, args.seed),
        validation_data=one_hot_batches(val_set, batch_size, False, args.seed),
        epochs=args.epochs,
        callbacks=[
            keras.callbacks.BackupAndRestore(str(work / "backup")),
            keras.callbacks.ModelCheckpoint(
                best,
                monitor="val_accuracy",
                mode="max",
                save_best_only=True,
                save_weights_only=True,
                initial_value_threshold=best_so_far,
            ),
            keras.callbacks.LambdaCallback(on_epoch_end=record_best),
        ],
        verbose=2,
    )
    model.load_weights(best)
    # Ship the weights without the optimizer state (Adam's moments would triple the file).
    shipped = binary_resnet18(num_classes=len(train_set.class_names), image_size=args.image_size, width=args.width)
    shipped.set_weights(model.get_weights())
    with atomic_output(args.output, args.force) as tmp:
        shipped.save(tmp)
    (work / "history.json").write_text(json.dumps(history.history, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
