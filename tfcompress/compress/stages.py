"""The stages of a recipe: each takes a Keras model and returns a new, compressed one.

Every stage finetunes by distillation from the model the user gave (Hinton et al. 2015: soft
targets at temperature T, weighted with the labels), shows Keras progress bars, keeps
resumable state in its own folder (an interrupted finetune resumes at its last epoch), and
never modifies the model it is given. The int8 stage is not here: it is a setting of the
conversion (:mod:`tfcompress.compress.pipeline`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras

from tfcompress.compress.recipes import Stage
from tfcompress.skipped import skipped_layers


@dataclass
class StageContext:
    """What every stage may use besides its options.

    Attributes:
        data_dir: the image folder (class per folder; train / val splits are read).
        teacher: the input model: the soft-target teacher of every finetune.
        work: this stage's own folder (resumable finetune state).
        devices: ``MirroredStrategy`` devices (see :func:`tfcompress.distribute.get_strategy`).
        limit: images per split (quick runs, tests).
        seed: random seed.
        verbose: Keras verbosity.
    """

    data_dir: Path | None
    teacher: keras.Model
    work: Path
    devices: int | Sequence[str] | None = None
    limit: int | None = None
    seed: int = 0
    verbose: int | str = "auto"


@dataclass
class StageResult:
    """A stage's new model, a one-line account of what it did, and the layers it left alone (and why)."""

    model: keras.Model
    summary: str
    skipped: list[str] = field(default_factory=list)


def chosen_finetune(model: keras.Model, stage: Stage, context: StageContext):
    """The stage's ``(optimizer, learning rate, note)``: as its options say, or probed on ``model`` where "auto".

    ``learning_rate = "auto"``: the no-harm probe of :mod:`tfcompress.compress.finetune_choice` over the
    candidates of the stage's ``optimizer`` (all of them for ``"auto"``); its result is kept in the stage's
    folder, so a resumed run does not probe again. A fixed learning rate with ``optimizer = "auto"`` is SGD's.
    """
    import json

    from tfcompress.compress.finetune_choice import CANDIDATES, FinetuneChoice, choose_finetune
    from tfcompress.fileio import write_text_atomic

    optimizer, rate = str(stage.options.get("optimizer", "sgd")), str(stage.option("learning_rate"))
    if rate != "auto":
        return ("sgd" if optimizer == "auto" else optimizer), float(rate), ""
    candidates = tuple(c for c in CANDIDATES if optimizer in ("auto", c[0]))
    record = context.work / "finetune_choice.json"
    if record.is_file():
        choice = FinetuneChoice(**json.loads(record.read_text()))
    else:
        choice = choose_finetune(
            model, context.teacher, context.data_dir, stage.option("batchnorm") == "freeze", candidates,
            limit=context.limit, seed=context.seed,
        )  # fmt: skip
        write_text_atomic(record, json.dumps(choice.__dict__), force=True)
    print(f"  {choice.describe()}", flush=True)
    return choice.optimizer, choice.learning_rate, "; " + choice.describe()


def _finetune_config(stage: Stage, context: StageContext, optimizer: str, learning_rate: float):
    from tfcompress.pruning.finetune import FinetuneConfig

    return FinetuneConfig(
        epochs=int(stage.option("epochs")),
        learning_rate=learning_rate,
        optimizer=optimizer,
        seed=context.seed,
        freeze_batchnorm=stage.option("batchnorm") == "freeze",
    )


def _finetune_options(
    stage: Stage, context: StageContext, optimizer: str = "sgd", learning_rate: float | None = None
) -> dict:
    rate = float(stage.option("learning_rate")) if learning_rate is None else learning_rate
    return {
        "config": _finetune_config(stage, context, optimizer, rate),
        "teacher": context.teacher,
        "devices": context.devices,
        "backup_dir": context.work / "backup",
        "limit": context.limit,
        "verbose": context.verbose,
    }


#: Layers no weight-level method touches, by design: not worth a line in the report.
NORMALIZATION_KINDS = ("BatchNormalization", "LayerNormalization", "Normalization", "GroupNormalization")


def _pruning_skips(model: keras.Model) -> list[str]:
    from tfcompress.pruning import plan

    return [
        f"{r.name} ({r.kind}: {r.reason})"
        for r in plan(model)
        if not r.pruned and r.reason != "no weights" and r.kind not in NORMALIZATION_KINDS
    ]


def _as_messages(records) -> list[str]:
    """Skip records of a method (strings or ``(layer, reason)`` pairs) as ``layer: reason`` lines."""
    return [record if isinstance(record, str) else ": ".join(map(str, record)) for record in records or ()]


def run_slim(model: keras.Model, stage: Stage, context: StageContext) -> StageResult:
    """Network Slimming (Liu et al. 2017): L1 on BatchNorm gamma, one global threshold, rebuild, finetune."""
    from tfcompress.lowrank.cost import model_macs
    from tfcompress.pruning.pipeline import slim_and_finetune

    optimizer, rate, note = chosen_finetune(model, stage, context)
    thin, report = slim_and_finetune(
        model,
        context.data_dir,
        float(stage.option("ratio")),
        l1=float(stage.option("l1")),
        penalty_epochs=int(stage.option("penalty_epochs")),
        **_finetune_options(stage, context, optimizer, rate),
    )
    summary = (
        f"removed {report.removed_channels} of {report.total_channels} BatchNorm channels "
        f"(|gamma| threshold {report.threshold:.3g}) after {stage.option('penalty_epochs')} penalty epoch(s); "
        f"params {model.count_params():,} -> {thin.count_params():,}, "
        f"MACs {model_macs(model):,} -> {model_macs(thin):,}; finetuned {stage.option('epochs')} epoch(s){note}"
    )
    return StageResult(thin, summary, _as_messages(getattr(report, "skipped", [])))


def run_lowrank(model: keras.Model, stage: Stage, context: StageContext) -> StageResult:
    """Low-rank factorization with ranks searched for ``target_macs`` of the MACs, then a distilled finetune.

    The searched plan is kept in the stage's folder: a resumed run goes straight on to the finetune.
    """
    from tfcompress.fileio import write_text_atomic
    from tfcompress.lowrank import Target, apply_plan, choose_plan, finetune, model_macs, top1_evaluator
    from tfcompress.lowrank.plan import Plan

    searched = context.work / "plan.json"
    if searched.is_file():
        plan = Plan.from_json(searched.read_text())
        print(f"  ranks from the search an earlier run kept ({searched})", flush=True)
    else:
        evaluate = None
        if int(stage.option("eval_images")) > 0:
            size = int(model.inputs[0].shape[1])
            evaluate = top1_evaluator(context.data_dir, size, int(stage.option("eval_images")))
        plan = choose_plan(
            model,
            str(stage.option("method")),
            target=Target("macs", float(stage.option("target_macs"))),
            evaluate=evaluate,
            rank_multiple=int(stage.option("rank_multiple")),
            verbose=1 if context.verbose else 0,
        )
        write_text_atomic(searched, plan.to_json(), force=True)
    factorized = apply_plan(model, plan, verbose=1 if context.verbose else 0)
    optimizer, rate, note = chosen_finetune(model, stage, context) if int(stage.option("epochs")) > 0 else ("", 0, "")
    if int(stage.option("epochs")) > 0:
        factorized = finetune(
            factorized,
            context.work / "finetuned.keras",
            context.data_dir,
            epochs=int(stage.option("epochs")),
            learning_rate=rate,
            optimizer=optimizer,
            teacher=context.teacher,
            devices=context.devices,
            backup_dir=context.work / "backup",
            force=True,
            limit=context.limit,
            seed=context.seed,
            verbose=context.verbose,
            freeze_batchnorm=stage.option("batchnorm") == "freeze",
        )
    summary = (
        f"{stage.option('method')} ranks for {stage.option('target_macs')} of the MACs: "
        f"{len(plan.layers)} layer(s) factored, MACs {model_macs(model):,} -> {model_macs(factorized):,}, "
        f"params {model.count_params():,} -> {factorized.count_params():,}; "
        f"finetuned {stage.option('epochs')} epoch(s){note}"
    )
    return StageResult(factorized, summary, _as_messages(plan.skipped))


def run_prune(model: keras.Model, stage: Stage, context: StageContext) -> StageResult:
    """Magnitude pruning to ``sparsity`` on a polynomial schedule while finetuning (Zhu & Gupta 2017)."""
    from tfcompress.pruning import sparsity
    from tfcompress.pruning.finetune import FinetuneConfig
    from tfcompress.pruning.pipeline import prune_and_finetune

    target = float(stage.option("sparsity"))
    optimizer, rate, choice_note = chosen_finetune(model, stage, context)
    pruned = prune_and_finetune(
        model, context.data_dir, target, allocation=str(stage.option("allocation")),
        **_finetune_options(stage, context, optimizer, rate),
    )  # fmt: skip
    reached = sparsity(pruned, only_pruned=False)
    note = ""
    if reached < target - 0.01:  # a run too short for the schedule's mask updates: finish in one shot
        pruned = prune_and_finetune(pruned, None, target, allocation=str(stage.option("allocation")),
                                    config=FinetuneConfig(epochs=0))  # fmt: skip
        note = f" (the schedule ended at {reached:.1%} in so short a run; the rest pruned in one shot)"
    summary = (
        f"pruned to {sparsity(pruned, only_pruned=False):.1%} zeros in the conv/dense kernels "
        f"({stage.option('allocation')} magnitude threshold), finetuned {stage.option('epochs')} epoch(s){note}"
        f"{choice_note}"
    )
    return StageResult(pruned, summary, _pruning_skips(model))


def run_share(model: keras.Model, stage: Stage, context: StageContext) -> StageResult:
    """Deep Compression's weight sharing (per-layer k-means) and trained quantization of the centroids."""
    from tfcompress.pruning.layers import deep_compress
    from tfcompress.pruning.trained_quantization import finetune_centroids

    conv_bits, dense_bits = int(stage.option("conv_bits")), int(stage.option("dense_bits"))
    shared = deep_compress(model, conv_bits=conv_bits, dense_bits=dense_bits)
    left = _as_messages(skipped_layers(shared))  # what sharing left float (depthwise convs, ...)
    if int(stage.option("epochs")) > 0:
        shared = finetune_centroids(shared, context.data_dir, **_finetune_options(stage, context))
    summary = (
        f"k-means weight sharing, {conv_bits}-bit convolutions and {dense_bits}-bit dense layers, "
        f"centroids finetuned {stage.option('epochs')} epoch(s); Huffman-coded in the .tflite"
    )
    return StageResult(shared, summary, left)


def pq_global_steps(epochs: int, images: int, batch_size: int = 32) -> int:
    """Codebook finetune steps of ``epochs`` passes over ``images`` calibration images."""
    return epochs * max(1, -(-images // batch_size))


def pq_block_size(model: keras.Model, option: str) -> str:
    """``option``, with ``"auto"`` as ``"mobile"`` for a model with depthwise convolutions, else ``"small"``.

    See :data:`tfcompress.pq.quantize.BLOCK_PRESETS`.
    """
    if option != "auto":
        return option
    separable = any(isinstance(layer, keras.layers.DepthwiseConv2D) for layer in model.layers)
    return "mobile" if separable else "small"


def run_pq(model: keras.Model, stage: Stage, context: StageContext) -> StageResult:
    """Product quantization (Stock et al. 2020): bottom-up activation-aware EM, distilled codebook finetune."""
    from tfcompress.data import load_split
    from tfcompress.distribute import get_strategy
    from tfcompress.pq import ProductQuantizer, size_report

    size = int(model.inputs[0].shape[1])
    images = int(stage.option("calibration_images"))
    limit = images if context.limit is None else min(images, context.limit)
    calibration = load_split(context.data_dir, "train", size, limit=limit).images
    block = pq_block_size(model, str(stage.option("block_size")))
    quantizer = ProductQuantizer(
        model,
        calibration,
        teacher=context.teacher,
        block_sizes=int(block) if block.isdigit() else block,
        n_centroids=int(stage.option("centroids")),
        n_centroids_dense=int(stage.option("centroids_dense")),
        em_iterations=int(stage.option("em_iterations")),
        layer_steps=int(stage.option("layer_steps")),
        global_steps=pq_global_steps(int(stage.option("epochs")), len(calibration)),
        global_steps_per_epoch=pq_global_steps(1, len(calibration)),  # the progress bar counts the recipe's epochs
        learning_rate=float(stage.option("learning_rate")),
        temperature=float(stage.option("temperature")),
        augment=True,
        update_batchnorm=stage.option("batchnorm") != "freeze",
        strategy=get_strategy(context.devices),
        checkpoint_dir=context.work / "layers",
        seed=context.seed,
        verbose=1 if context.verbose else 0,
    )
    student = quantizer.run()
    report = size_report(student)
    summary = (
        f"{len(quantizer.records)} layer(s) product-quantized (block size {block}, k <= {stage.option('centroids')}), "
        f"{report.compression:.1f}x by the paper's count; codebooks finetuned {stage.option('epochs')} epoch(s) "
        f"of {len(calibration)} images"
    )
    return StageResult(student, summary, _as_messages(getattr(quantizer, "skipped", [])))


def binary_width(model: keras.Model, option: str) -> int:
    """The binary student's base width: ``option`` as a channel count, or for ``"auto"`` the filters of the
    first ``Conv2D`` of ``model`` (as wide as its stem; 32 when it has none).

    Raises:
        TfcompressError: ``option`` is neither ``"auto"`` nor a positive integer.
    """
    from tfcompress.errors import TfcompressError

    if option == "auto":
        convs = (layer for layer in model.layers if type(layer) is keras.layers.Conv2D)
        first = next(convs, None)
        return int(first.filters) if first is not None else 32
    if not option.isdigit() or int(option) == 0:
        raise TfcompressError(f"option binary.width must be auto or a channel count, got {option!r}")
    return int(option)


def run_binary(model: keras.Model, stage: Stage, context: StageContext) -> StageResult:
    """A binary student distilled from ``context.teacher`` in two stages (Real-to-Binary, Martinez et al. 2020).

    The student is the zoo's ``student`` at ``width`` (:func:`binary_width`) and at the input size of ``model``;
    ``attention = "auto"`` pairs every resolution the teacher and the binary body share
    (:func:`tfcompress.binary.real_to_binary.spatial_attention_pairs`), ``"none"`` uses soft targets only.
    """
    from tfcompress.binary.real_to_binary import real_to_binary, spatial_attention_pairs
    from tfcompress.distill import DistillConfig
    from tfcompress.models import build_model

    size, classes = int(model.inputs[0].shape[1]), int(model.outputs[0].shape[-1])
    width = binary_width(model, str(stage.option("width")))
    student = build_model(str(stage.option("student")), num_classes=classes, image_size=size, width=width)
    pairs = spatial_attention_pairs(context.teacher, student) if stage.option("attention") == "auto" else []
    config = DistillConfig(
        model=student.name,
        image_size=size,
        epochs=int(stage.option("epochs")),
        learning_rate=float(stage.option("learning_rate")),
        weight_decay=float(stage.option("weight_decay")),
        optimizer="adam",
        temperature=float(stage.option("temperature")),
        alpha=float(stage.option("alpha")),
        seed=context.seed,
    )
    trained = real_to_binary(
        context.work / "binary.keras", context.teacher, context.data_dir, config, student=student,
        attention_pairs=pairs or None, devices=context.devices, backup_dir=context.work, force=True,
        limit=context.limit, verbose=context.verbose,
    )  # fmt: skip
    matched = ", ".join(f"{t}->{s}" for t, s in pairs) or "none"
    summary = (
        f"{student.name} (width {width}) distilled in two stages of {config.epochs} epoch(s) "
        f"(real weights, then binary); attention matched: {matched}"
    )
    return StageResult(trained, summary)


#: The runner of each stage method (``int8`` is a conversion setting, not a runner).
RUNNERS: dict[str, Callable[[keras.Model, Stage, StageContext], StageResult]] = {
    "slim": run_slim,
    "lowrank": run_lowrank,
    "prune": run_prune,
    "share": run_share,
    "pq": run_pq,
    "binary": run_binary,
}


def run_stage(model: keras.Model, stage: Stage, context: StageContext) -> StageResult:
    """Run ``stage`` on ``model`` with the random seed set (reruns give the same stage)."""
    keras.utils.set_random_seed(context.seed)
    os.makedirs(context.work, exist_ok=True)
    return RUNNERS[stage.method](model, stage, context)
