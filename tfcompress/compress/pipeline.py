"""``tfcompress compress``: a recipe's stages, conversion and measurement in one resumable run.

For ``compress(IN.keras, OUT.tflite, recipe)``:

1. every stage of the recipe runs on the previous stage's model, finetuning by distillation
   from IN (:mod:`tfcompress.compress.stages`); each finished stage is saved under the work
   folder, keyed by the input file's hash and the options of every stage up to it, so running
   the same command again resumes at the first unfinished stage (and an interrupted finetune
   at its last epoch), and changing a later stage's options reuses the earlier stages;
2. the result is converted (int8 when the recipe ends with ``int8``; pruned kernels as TFLite
   sparse tensors; PQ and shared layers as our custom ops) and written as OUT.tflite and
   OUT.keras;
3. IN (as a float ``.tflite``) and OUT are measured side by side: top-1 on the test split
   through the runtime, bytes, batch-1 latency at 1 and 2 threads in interleaved rounds; the
   card OUT.md and the JSON record what was done and measured.

Outputs are written atomically and never replace an existing file without ``force``; IN is
never modified.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras

from tfcompress.compress.recipes import Recipe, Stage
from tfcompress.compress.stages import StageContext, run_stage
from tfcompress.errors import TfcompressError


@dataclass
class StageRecord:
    """What one stage did: its description, one-line summary, layers left alone, wall seconds, reuse."""

    method: str
    description: str
    summary: str
    skipped: list[str]
    seconds: float
    reused: bool = False


@dataclass
class CompressResult:
    """A finished run: the output files, what each stage did, and (when measured) the measurements."""

    recipe: Recipe
    output: Path
    keras_path: Path
    stages: list[StageRecord]
    tflite_bytes: int
    measurements: dict = field(default_factory=dict)
    seconds: float = 0.0
    command: str = ""
    #: test top-1 points the output may lose before the card warns and ``tfcompress compress`` fails
    max_loss: float = 10.0
    #: the kit's warnings during the run (also printed as they came), for the card
    warnings: list[str] = field(default_factory=list)

    @property
    def lost_too_much(self) -> str | None:
        """Why the output is not fit to ship (it lost more than ``max_loss`` points of test top-1), else ``None``."""
        from tfcompress.compress.card import drop_warning

        return drop_warning(self, self.max_loss)

    def to_dict(self) -> dict:
        return {
            "lost_too_much": self.lost_too_much,
            "warnings": self.warnings,
            "recipe": self.recipe.to_dict(),
            "output": str(self.output),
            "keras": str(self.keras_path),
            "command": self.command,
            "tflite_bytes": self.tflite_bytes,
            "seconds": round(self.seconds, 1),
            "stages": [record.__dict__ for record in self.stages],
            "measurements": {label: m.to_dict() for label, m in self.measurements.items()},
        }


def file_sha256(path: str | os.PathLike) -> str:
    """The hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stage_key(input_sha: str, recipe: Recipe, index: int, data_dir, limit: int | None, seed: int) -> str:
    """A short hash naming the state after stage ``index``: same input, data and stages so far, same key."""
    parts = {
        "input": input_sha,
        "data": str(Path(data_dir).resolve()) if data_dir is not None else None,
        "limit": limit,
        "seed": seed,
        "stages": recipe.to_dict()["stages"][: index + 1],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:10]


def recipe_key(recipe: Recipe) -> str:
    """A short hash of the whole recipe (names the converted file in the work folder)."""
    return hashlib.sha256(json.dumps(recipe.to_dict(), sort_keys=True).encode()).hexdigest()[:10]


def default_work_dir(output: str | os.PathLike) -> Path:
    """``OUT.work`` beside ``OUT.tflite``."""
    output = Path(output)
    return output.with_name(output.stem + ".work")


def check_classes(model: keras.Model, data_dir) -> None:
    """Refuse a model whose class count differs from the data folder's.

    Raises:
        TfcompressError: the model's last dimension is not the number of class folders.
    """
    from tfcompress.data import list_split, resolve_data_dir

    classes = len(list_split(resolve_data_dir(data_dir), "train")[2])
    outputs = model.outputs[0].shape[-1]
    if outputs != classes:
        raise TfcompressError(
            f"the model has {outputs} outputs but {resolve_data_dir(data_dir)} has {classes} class folders; "
            "compress needs the data the model was trained on"
        )


def load_teacher(teacher_path: str | os.PathLike | None, input_sha: str) -> tuple[keras.Model | None, str]:
    """The teacher named by ``teacher_path`` (``None``: the input model) and the hash that keys the stages.

    The stages' state depends on the teacher too, so its hash joins the input's.
    """
    if teacher_path is None:
        return None, input_sha
    from tfcompress.convert import load_keras_model

    teacher = load_keras_model(teacher_path)
    return teacher, hashlib.sha256(f"{input_sha}:{file_sha256(teacher_path)}".encode()).hexdigest()


#: Stages whose finetune trains only codebooks or centroids: ``batchnorm = "auto"`` freezes BatchNorm
#: in them when the model's statistics were not learned on the data. Stages that retrain every
#: weight (prune, slim, lowrank) re-adapt to statistics re-estimated on the data and keep BatchNorm
#: in training mode: on the fine-tuned EfficientNet-Lite0 (statistics mismatch 0.47), frozen against
#: updated gave PQ (block size small) 65.85% against 39.38% on flowers5 test, but prune 46.92%
#: against 57.23% and slim 50.31% against 66.77% (``--set X.batchnorm=freeze`` / ``update``;
#: the updated runs are benchmarks/results/compress_flowers5_effnet_lite0.md's). At 50% sparsity the
#: order reverses: frozen (AdamW 1e-4) -1.38 points on test, updated -12.00 (SGD 0.01) and -24.00
#: (AdamW 1e-4) (benchmarks/results/finetune_factors_flowers_effnet_lite0_prune50.md): which one a
#: pruning stage needs depends on how much it prunes, so ``auto`` keeps updating there for now.
FREEZE_WHEN_FOREIGN = ("pq", "share")


def resolve_batchnorm(stage: Stage, model: keras.Model, data_dir, limit: int | None) -> tuple[Stage, str]:
    """``stage`` with ``batchnorm = "auto"`` resolved for ``model`` (the stage's input), and a note for its summary.

    ``freeze`` for a stage of :data:`FREEZE_WHEN_FOREIGN` when
    :func:`tfcompress.batchnorm.statistics_mismatch` of ``model`` on 512 training images is above
    :data:`tfcompress.batchnorm.MISMATCH_LIMIT` (statistics not learned on these data), else ``update``.
    """
    from tfcompress.batchnorm import MISMATCH_LIMIT, statistics_mismatch
    from tfcompress.data import load_split

    mode = stage.options.get("batchnorm")
    if mode is None:
        return stage, ""
    if mode != "auto":
        return stage, f"; BatchNorm {'frozen' if mode == 'freeze' else 'updated'} (batchnorm={mode})"
    if stage.method not in FREEZE_WHEN_FOREIGN:
        return Stage(stage.method, {**stage.options, "batchnorm": "update"}), ""
    size = int(model.inputs[0].shape[1])
    images = load_split(data_dir, "train", size, limit=512 if limit is None else min(512, limit)).images
    mismatch = statistics_mismatch(model, images)
    frozen = mismatch > MISMATCH_LIMIT
    resolved = Stage(stage.method, {**stage.options, "batchnorm": "freeze" if frozen else "update"})
    verdict = "not learned on these data: frozen" if frozen else "learned on these data: updated"
    return resolved, f"; BatchNorm statistics {verdict} (mismatch {mismatch:.2f}, limit {MISMATCH_LIMIT})"


def unfreeze(model: keras.Model) -> list[str]:
    """Make the frozen layers with weights trainable (not BatchNorm: each stage's ``batchnorm`` decides); their names.

    A backbone frozen for transfer learning (``base.trainable = False``) must still be retrained where a
    method changes its weights: a pruned or shared kernel that cannot move cannot recover. Changes
    ``model`` (the pipeline's own copy, loaded from the file) in place.
    """
    frozen = [
        layer
        for layer in model.layers
        if layer.weights and not layer.trainable and not isinstance(layer, keras.layers.BatchNormalization)
    ]
    for layer in frozen:
        layer.trainable = True
    if frozen:
        print(f"made {len(frozen)} frozen layer(s) trainable for the finetunes ({frozen[0].name}, ...)", flush=True)
    return [layer.name for layer in frozen]


def run_stages(
    model: keras.Model,
    recipe: Recipe,
    work: Path,
    input_sha: str,
    data_dir=None,
    teacher: keras.Model | None = None,
    devices=None,
    limit: int | None = None,
    seed: int = 0,
    verbose: int | str = "auto",
) -> tuple[keras.Model, list[StageRecord]]:
    """Run the recipe's training stages on ``model``, saving (and reusing) each finished stage under ``work``."""
    from tfcompress.convert import load_keras_model
    from tfcompress.fileio import atomic_output, write_text_atomic
    from tfcompress.nested import inline_submodels, submodels
    from tfcompress.skipped import grouped, split_message

    stages = recipe.training_stages
    if stages and submodels(model):  # a backbone used as one layer: every method must see its layers
        names = ", ".join(repr(sub.name) for sub in submodels(model))
        model = inline_submodels(model)
        print(f"inlined the nested model(s) {names}: {len(model.layers)} layers in one graph", flush=True)
    if stages:
        unfreeze(model)
    ran: list[Stage] = []  # the stages as they run: batchnorm = "auto" resolved for the model each one gets
    records = []
    for index, given in enumerate(stages):
        stage, note = resolve_batchnorm(given, model, data_dir, limit)
        ran.append(stage)
        key = stage_key(input_sha, Recipe(recipe.name, tuple(ran)), index, data_dir, limit, seed)
        folder = work / f"{index + 1}-{stage.method}-{key}"
        checkpoint, record_file = folder / "model.keras", folder / "stage.json"
        header = f"[stage {index + 1}/{len(stages)}] {given.describe()}"
        if checkpoint.is_file() and record_file.is_file():
            record = StageRecord(**{**json.loads(record_file.read_text()), "reused": True})
            model = load_keras_model(checkpoint)
            print(f"{header}: done in an earlier run, reused ({folder})", flush=True)
        else:
            print(f"{header} ...", flush=True)
            start = time.perf_counter()
            context = StageContext(data_dir, teacher or model, folder, devices, limit, seed, verbose)
            result = run_stage(model, stage, context)
            model = result.model
            record = StageRecord(
                stage.method, given.describe(), result.summary + note, result.skipped, time.perf_counter() - start
            )
            with atomic_output(checkpoint, force=True) as tmp:
                model.save(tmp)
            write_text_atomic(record_file, json.dumps(record.__dict__, indent=1), force=True)
        print(f"{header}: {record.summary}", flush=True)
        for line in grouped(map(split_message, record.skipped)):
            print(f"  left as they are: {line}", flush=True)
        records.append(record)
    return model, records


def convert_result(model: keras.Model, recipe: Recipe, data_dir=None, limit: int | None = None) -> bytes:
    """The ``.tflite`` bytes of ``model``: int8 when the recipe ends with ``int8``, sparse tensors when pruned,
    int8 weights for the float layers of a binary student."""
    from tfcompress.convert import to_tflite

    calibration = None
    if recipe.int8:
        from tfcompress.data import load_split

        count = int(recipe.option("int8", "calibration_images"))
        count = count if limit is None else min(count, limit)
        size = int(model.inputs[0].shape[1])
        calibration = load_split(data_dir, "train", size, limit=count).images
    binary = any(stage.method == "binary" for stage in recipe.stages)  # its float parts: int8 weights
    return to_tflite(model, int8=recipe.int8, calibration=calibration, sparse=None, int8_weights=binary)


@contextlib.contextmanager
def recording_warnings(messages: list[str]):
    """Append the message of every warning raised inside ``tfcompress`` to ``messages``, still showing it."""
    previous = warnings.showwarning
    package = str(Path(__file__).resolve().parent.parent)

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if str(Path(filename).resolve()).startswith(package):
            messages.append(" ".join(str(message).split()))
        previous(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield messages
    finally:
        warnings.showwarning = previous


def input_tflite(model: keras.Model, work: Path, input_sha: str) -> Path:
    """The input model as a float ``.tflite`` (the baseline), cached in ``work``."""
    from tfcompress.convert import to_tflite
    from tfcompress.fileio import write_bytes_atomic

    path = work / f"input-{input_sha[:10]}.tflite"
    if not path.is_file():
        write_bytes_atomic(path, to_tflite(model, sparse=False), force=True)
    return path


def compress(
    input_path: str | os.PathLike,
    output: str | os.PathLike,
    recipe: Recipe,
    data_dir: str | os.PathLike | None = None,
    work: str | os.PathLike | None = None,
    force: bool = False,
    devices: int | Sequence[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
    verbose: int | str = "auto",
    measure: bool = True,
    latency_rounds: int = 7,
    json_path: str | os.PathLike | None = None,
    command: str = "",
    teacher_path: str | os.PathLike | None = None,
    max_loss: float = 10.0,
) -> CompressResult:
    """Compress ``input_path`` with ``recipe`` into ``output`` (.tflite) and its ``.keras`` and ``.md`` siblings.

    Args:
        input_path: the trained ``.keras`` model (not modified).
        output: the ``.tflite`` to write; ``OUT.keras`` and ``OUT.md`` are written beside it.
        recipe: see :mod:`tfcompress.compress.recipes`.
        data_dir: the image folder the model was trained on (its train / val / test splits).
        work: the resumable state (default ``OUT.work`` beside the output).
        force: replace existing outputs.
        devices: ``MirroredStrategy`` devices for the finetunes, or
            :class:`tfcompress.distribute.Workers`: every worker runs the same command and
            trains the stages with the others; only worker 0 measures and writes the outputs
            (the others keep their stage checkpoints in ``work/worker-I``).
        limit: images per split (quick runs).
        seed: random seed of every stage.
        verbose: Keras verbosity.
        measure: measure IN and OUT (top-1 on test, latency at 1 and 2 threads) for the card.
        latency_rounds: interleaved latency rounds (10 calls each).
        json_path: also write the result as JSON here.
        command: the command line, recorded in the card.
        teacher_path: distil from this model instead of IN (e.g. the float model when IN is
            already compressed).
        max_loss: test top-1 points the output may lose; beyond it the card opens with a warning
            and :attr:`CompressResult.lost_too_much` says why (the command exits non-zero on it).

    Raises:
        TfcompressError: an existing output without ``force``, a model/data class mismatch, a
            bad recipe, or any user error of the stages.
    """
    from tfcompress.compress.card import write_card
    from tfcompress.convert import load_keras_model
    from tfcompress.distribute import is_chief
    from tfcompress.fileio import atomic_output, check_output_path, write_bytes_atomic, write_text_atomic

    start = time.perf_counter()
    output = Path(output)
    if output.suffix != ".tflite":
        raise TfcompressError(f"the output must be a .tflite file name, got {output}")
    keras_path, card_path = output.with_suffix(".keras"), output.with_suffix(".md")
    chief = is_chief(devices)
    if chief:
        for path in (output, keras_path, card_path, *([json_path] if json_path else [])):
            check_output_path(path, force)
    model = load_keras_model(input_path)
    check_classes(model, data_dir)
    input_sha = file_sha256(input_path)
    teacher, state_sha = load_teacher(teacher_path, input_sha)
    work = Path(work) if work is not None else default_work_dir(output)
    if not chief:  # its own stage checkpoints: workers on one machine must not write over each other
        work = work / f"worker-{devices.index}"
    work.mkdir(parents=True, exist_ok=True)
    raised: list[str] = []
    with recording_warnings(raised):
        compressed, records = run_stages(
            model, recipe, work, state_sha, data_dir, teacher, devices, limit, seed, verbose
        )
        print("converting ...", flush=True)
        data = convert_result(compressed, recipe, data_dir, limit)
    staged = write_bytes_atomic(work / f"output-{recipe_key(recipe)}.tflite", data, force=True)
    result = CompressResult(recipe, output, keras_path, records, len(data), command=command, max_loss=max_loss)
    result.warnings = list(dict.fromkeys(raised))
    if not chief:  # the training was the cluster's; measuring and writing the outputs is worker 0's
        result.seconds = time.perf_counter() - start
        return result
    if measure:
        from tfcompress.compress.measure import measure_files

        print("measuring the input and the output (top-1 on test, latency at 1 and 2 threads) ...", flush=True)
        baseline = input_tflite(model, work, input_sha)
        result.measurements = measure_files(
            {"input": baseline, "output": staged}, data_dir, ("test",), (1, 2), latency_rounds, limit=limit
        )
        result.measurements["output"].path = str(output)
    result.seconds = time.perf_counter() - start
    # The outputs last, each atomically: an interruption before here leaves none of them behind.
    with atomic_output(keras_path, force) as tmp:
        compressed.save(tmp)
    write_bytes_atomic(output, data, force)
    write_card(result, card_path, input_path, force)
    if json_path:
        write_text_atomic(json_path, json.dumps(result.to_dict(), indent=1), force)
    return result
