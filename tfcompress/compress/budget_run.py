"""``tfcompress compress --target-bytes / --target-speedup / --max-drop``: the budget search on a real model.

Wires :func:`tfcompress.compress.budget.search` to the pipeline: a probe builds a candidate's
structure with every finetune off (:data:`PROBE_OPTIONS`), a training runs its full recipe;
both convert and time the file against the input model in the same interleaved rounds, and a
training scores it on the validation split. Every stage is saved under the work folder, so the
final run of the chosen recipe (written to OUT with its card, measured on the test split)
reuses the search's training, and an interrupted search resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tfcompress.compress.budget import Budget, Measured, SearchResult, markdown_table, search
from tfcompress.compress.recipes import Recipe, load_recipe, make_stage, with_overrides
from tfcompress.errors import TfcompressError
from tfcompress.machine import kernel_paths, this_cpu

#: What a probe turns off: every finetune and every data-driven search (structure only).
PROBE_OPTIONS: dict[str, dict[str, object]] = {
    "slim": {"penalty_epochs": 0, "epochs": 0},
    "lowrank": {"eval_images": 0, "epochs": 0},
    "prune": {"epochs": 0},
    "share": {"epochs": 0},
    "pq": {"epochs": 0, "em_iterations": 10},
}


def probe_recipe(recipe: Recipe) -> Recipe:
    """``recipe`` with :data:`PROBE_OPTIONS` applied (same structure, no training)."""
    stages = tuple(make_stage(s.method, {**s.options, **PROBE_OPTIONS.get(s.method, {})}) for s in recipe.stages)
    return Recipe(f"{recipe.name} (probe)", stages)


@dataclass
class BudgetPaths:
    """The search's own outputs beside OUT: ``OUT.budget.md``, ``.json`` and ``.png``."""

    table: Path
    json: Path
    plot: Path

    @classmethod
    def beside(cls, output: str | os.PathLike) -> BudgetPaths:
        stem = Path(output).with_suffix("")
        return cls(*(stem.with_name(stem.name + f".budget.{ext}") for ext in ("md", "json", "png")))


def compress_within_budget(
    input_path: str | os.PathLike,
    output: str | os.PathLike,
    budget: Budget,
    candidates: Sequence[tuple[str, Sequence[str]]],
    data_dir: str | os.PathLike | None = None,
    work: str | os.PathLike | None = None,
    epochs: int | None = None,
    force: bool = False,
    devices=None,
    limit: int | None = None,
    seed: int = 0,
    verbose: int | str = "auto",
    explore: bool = False,
    latency_rounds: int = 5,
    json_path: str | os.PathLike | None = None,
    command: str = "",
    teacher_path: str | os.PathLike | None = None,
) -> tuple[SearchResult, BudgetPaths]:
    """Search ``candidates`` for the best within ``budget``; write OUT (the chosen one) and the search report.

    Returns the search result and the paths of its table, JSON and plot. When nothing meets
    the budget, OUT is not written (the report still is) and the verdict says so.
    """
    from tfcompress.compress.measure import top1
    from tfcompress.compress.pareto import plot_search
    from tfcompress.compress.pipeline import (
        check_classes,
        compress,
        convert_result,
        default_work_dir,
        file_sha256,
        input_tflite,
        load_teacher,
        recipe_key,
        run_stages,
    )
    from tfcompress.convert import load_keras_model
    from tfcompress.data import load_split
    from tfcompress.evaluate import TFLiteClassifier
    from tfcompress.fileio import check_output_path, write_bytes_atomic, write_text_atomic
    from tfcompress.latency import interleaved_latency

    paths = BudgetPaths.beside(output)
    for path in (output, paths.table, paths.json, paths.plot):
        check_output_path(path, force)
    recipes = {(r, tuple(s)): with_overrides(load_recipe(r), s, epochs) for r, s in candidates}  # checked up front
    model = load_keras_model(input_path)
    check_classes(model, data_dir)
    input_sha = file_sha256(input_path)
    teacher, state_sha = load_teacher(teacher_path, input_sha)
    work = Path(work) if work is not None else default_work_dir(output)
    work.mkdir(parents=True, exist_ok=True)
    baseline_path = input_tflite(model, work, input_sha)
    val = load_split(data_dir, "val", int(model.inputs[0].shape[1]), limit)
    baseline_classifier = TFLiteClassifier(baseline_path)
    sample = baseline_classifier.prepare(val.images[0])

    def latency_against_baseline(path: Path) -> tuple[float, float]:
        candidate = TFLiteClassifier(path)
        x = candidate.prepare(val.images[0])
        timed = interleaved_latency(
            {"base": lambda: baseline_classifier.run(sample), "candidate": lambda: candidate.run(x)},
            latency_rounds,
            10,
        )
        return timed["base"].ms_median, timed["candidate"].ms_median

    baseline = Measured(
        baseline_path.stat().st_size,
        latency_against_baseline(baseline_path)[0],
        top1(baseline_path, val.images, val.labels),
    )

    def build(recipe: Recipe) -> tuple[Path, float, float]:
        start = time.perf_counter()
        built, _ = run_stages(model, recipe, work, state_sha, data_dir, teacher, devices, limit, seed, verbose)
        path = work / f"candidate-{recipe_key(recipe)}.tflite"
        if not path.is_file():
            write_bytes_atomic(path, convert_result(built, recipe, data_dir, limit), force=True)
        base_ms, ms = latency_against_baseline(path)
        return path, ms * baseline.latency_ms / base_ms, (time.perf_counter() - start) / 60

    def probe(recipe: str, settings: tuple[str, ...]) -> Measured:
        path, ms, _ = build(probe_recipe(recipes[(recipe, settings)]))
        return Measured(path.stat().st_size, ms)

    def train(recipe: str, settings: tuple[str, ...]) -> Measured:
        path, ms, minutes = build(recipes[(recipe, settings)])
        return Measured(path.stat().st_size, ms, top1(path, val.images, val.labels), minutes)

    result = search(candidates, budget, baseline, probe, train, explore, (TfcompressError,))
    table = f"# Budget search for `{Path(input_path).name}`\n\n" + (f"Command: `{command}`\n\n" if command else "")
    table += (
        f"Latencies (the speed-ups) measured here: {os.cpu_count()} CPU cores of {this_cpu()}; {kernel_paths()}.\n\n"
    )
    write_text_atomic(paths.table, table + markdown_table(result), force)
    report = {
        "budget": budget.__dict__,
        "baseline": baseline.__dict__,
        "candidates": [c.to_dict() for c in result.candidates],
        "chosen": result.chosen.name if result.chosen else None,
        "closest": result.closest.name if result.closest else None,
        "verdict": result.verdict(),
    }
    write_text_atomic(paths.json, json.dumps(report, indent=1), force)
    plot_search(result, paths.plot, force)
    if result.chosen is not None:
        chosen = recipes[(result.chosen.recipe, result.chosen.settings)]
        compress(input_path, output, chosen, data_dir, work, force, devices, limit, seed, verbose,
                 json_path=json_path, command=command, teacher_path=teacher_path)  # fmt: skip
    return result, paths
