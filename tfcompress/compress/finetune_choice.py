"""The finetune a stage runs, chosen from the model it is given: the largest step that does the model no harm.

A compression stage finetunes by distillation from the input model. The step a network
tolerates depends on how it was trained: a ResNet trained from scratch with SGD keeps its
accuracy under SGD at lr 0.01, while an ImageNet-pretrained EfficientNet-Lite0 fine-tuned with
AdamW at 1e-4 loses it within an epoch (flowers5, 50% sparsity: SGD 0.01 -12.0 points on
test, AdamW 1e-4 within a point; ``benchmarks/finetune_factors.py``). One fixed default cannot
serve both.

The probe ("do no harm"): for each candidate ``(optimizer, learning rate)`` of
:data:`CANDIDATES`, largest step first, a copy of the *uncompressed* model takes ``steps``
finetuning steps exactly as the stage would (distillation from the input model, the stage's
BatchNorm mode, augmented training batches), and is compared with the input model on
``probe_images`` held-out validation images in inference mode. The first candidate whose
predictions still agree with the input model's on at least :data:`MIN_AGREEMENT` of the images
is chosen: a finetune that moves an intact model's predictions cannot help a compressed one
recover them. When none passes, the smallest step is taken and the note says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import keras
import numpy as np

#: ``(optimizer, learning rate)``, largest step first: SGD + Nesterov at the stages' default, AdamW at the
#: step ``tfcompress train --pretrained`` fine-tunes with, then each ten times smaller.
CANDIDATES: tuple[tuple[str, float], ...] = (("sgd", 0.01), ("adam", 1e-4), ("sgd", 0.001), ("adam", 1e-5))

#: The share of held-out images whose top-1 must not change after the probe's steps.
MIN_AGREEMENT = 0.9


@dataclass
class FinetuneChoice:
    """The chosen optimizer and learning rate, and what the probe measured for each candidate tried."""

    optimizer: str
    learning_rate: float
    tried: list[tuple[str, float, float]] = field(default_factory=list)  # (optimizer, lr, agreement)
    passed: bool = True

    def describe(self) -> str:
        """One line for the stage summary and the card."""
        trials = ", ".join(f"{opt} {lr:g}: {100 * agree:.1f}%" for opt, lr, agree in self.tried)
        verdict = (
            f"the largest step that kept >= {100 * MIN_AGREEMENT:.0f}%"
            if self.passed
            else f"no candidate kept {100 * MIN_AGREEMENT:.0f}%; the smallest step"
        )
        return (
            f"finetune {self.optimizer} lr {self.learning_rate:g}, chosen by a no-harm probe ({verdict} of the "
            f"input model's held-out predictions after the probe's steps: {trials})"
        )


def _agreement(model: keras.Model, images: np.ndarray, reference: np.ndarray) -> float:
    predictions = model.predict(images, batch_size=64, verbose=0).argmax(axis=1)
    return float(np.mean(predictions == reference))


def probe_candidate(
    model: keras.Model,
    teacher: keras.Model,
    data_dir: str | os.PathLike | None,
    optimizer: str,
    learning_rate: float,
    freeze_batchnorm: bool,
    steps: int,
    probe_images: np.ndarray,
    reference: np.ndarray,
    limit: int | None = None,
    seed: int = 0,
) -> float:
    """Agreement with ``reference`` on ``probe_images`` after ``steps`` finetuning steps of a copy of ``model``."""
    from tfcompress.pruning.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(
        epochs=1,
        learning_rate=learning_rate,
        optimizer=optimizer,
        freeze_batchnorm=freeze_batchnorm,
        seed=seed,
        steps_per_epoch=steps,
        constant_learning_rate=True,
        validate=False,
    )

    def copy() -> keras.Model:
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        return clone

    trained = finetune(copy, data_dir, int(model.inputs[0].shape[1]), config, teacher=teacher, limit=limit, verbose=0)
    return _agreement(trained, probe_images, reference)


def choose_finetune(
    model: keras.Model,
    teacher: keras.Model,
    data_dir: str | os.PathLike | None,
    freeze_batchnorm: bool = False,
    candidates: tuple[tuple[str, float], ...] = CANDIDATES,
    steps: int = 25,
    probe_count: int = 256,
    limit: int | None = None,
    seed: int = 0,
) -> FinetuneChoice:
    """The first candidate (largest step first) that keeps ``model``'s held-out predictions (see the module).

    Deterministic for a ``seed``: the same batches, augmentation and initial state for every candidate.
    """
    from tfcompress.data import load_split

    count = probe_count if limit is None else min(probe_count, limit)
    held_out = load_split(data_dir, "val", int(model.inputs[0].shape[1]), limit=count).images
    reference = model.predict(held_out, batch_size=64, verbose=0).argmax(axis=1)
    tried = []
    for optimizer, learning_rate in candidates:
        keras.utils.set_random_seed(seed)
        agreement = probe_candidate(
            model, teacher, data_dir, optimizer, learning_rate, freeze_batchnorm, steps, held_out, reference,
            limit, seed,
        )  # fmt: skip
        tried.append((optimizer, learning_rate, agreement))
        if agreement >= MIN_AGREEMENT:
            return FinetuneChoice(optimizer, learning_rate, tried)
    optimizer, learning_rate = candidates[-1]
    return FinetuneChoice(optimizer, learning_rate, tried, passed=False)
