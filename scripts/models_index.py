"""Write models/README.md: the index of the shipped flower models, from the files, the benchmark and the cards.

    .venv/bin/python scripts/models_index.py [--check] [--models-dir models] [-o models/README.md]
        [--results benchmarks/results/models.json]

For every ``models/*.tflite``: the method, the custom ops it needs (read from the file), top-1
on flowers5 ``test.txt`` and latency at 1 and 2 threads, the file's bytes (measured now; a card
giving other bytes is reported), and the commands that make it (the rebuild step of
``rebuild_models.py``, arguments from the card). Top-1 and latencies come from the last run of
``benchmarks/models.py`` (``benchmarks/results/models.json``: every model timed in the same
interleaved rounds, so the rows compare) when its entry for the file records the file's current
bytes and sha256; otherwise (no entry, a stale entry, a figure the run did not measure) from the
model card (``<model>.md``), and the row says which. The cards and the JSON are read when this
runs, so a re-made card or a new benchmark run shows up the next time; ``make models`` runs it
after a rebuild, ``make models-index`` on its own. A figure found in neither is printed as a
warning and shown as "not stated". ``--check``: exit 1 when the index on disk is out of date.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "android_demo/raspberry_pi"))

from flowerpi.tflite_file import custom_op_names  # noqa: E402  (pure-Python flatbuffer reader)
from model_cards import FIELDS, card_figures, read_card  # noqa: E402
from rebuild_models import STEPS, PlanError, step_commands  # noqa: E402

METHODS = {
    "flowers_float": "float ResNet-18 (width 32), the teacher of the others",
    "flowers_int8": "full-integer post-training quantization of the teacher (TFLite converter)",
    "flowers_pq": "product quantization, And the Bit Goes Down (Stock et al. 2020)",
    "flowers_pruned": "unstructured magnitude pruning (Zhu & Gupta 2017), TFLite sparse tensors",
    "flowers_dc": "Deep Compression of the slimmed model: pruning + k-means sharing + Huffman (Han et al. 2016)",
    "flowers_slim": "Network Slimming channel pruning (Liu et al. 2017)",
    "flowers_lowrank": "Tucker-2 / SVD factorization, distilled finetune (tfcompress compress --recipe lowrank)",
    "flowers_binary": "binary ResNet-18 distilled in two stages (Real-to-Binary, Martinez et al. 2020)",
    "flowers_effnet_lite0": "EfficientNet-Lite0 from ImageNet weights, fine-tuned (LP-FT); not compressed",
    "flowers_effnet_lite0_int8": "`tfcompress compress --recipe int8` of EfficientNet-Lite0: the apps' default model",
    "flowers_effnet_lite0_pq": "`tfcompress compress --recipe pq` of EfficientNet-Lite0 (block size auto: d=2 for 1x1)",
    "flowers_slim_pq": "`tfcompress compress --recipe slim+pq`: Network Slimming, then product quantization",
    "flowers_slim_dc": "`tfcompress compress --recipe slim+dc`: Network Slimming, then Deep Compression (the "
    "`--target-bytes 400000 --max-drop 1` search's choice)",
    "flowers_student": "ResNet-8 (width 16) student trained from scratch",
    "flowers_student_kd": "ResNet-8 (width 16) student distilled from the teacher (Hinton et al. 2015)",
}


RESULTS = "benchmarks/results/models.json"
MEASURED = {"top1": "top-1", "latency_1t": "1 thread", "latency_2t": "2 threads"}


def load_benchmark(path: Path) -> tuple[dict | None, list[str]]:
    """The JSON written by ``benchmarks/models.py`` (``None`` when absent), and warnings."""
    if not path.is_file():
        return None, []
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(run.get("models"), dict):
            raise ValueError("no 'models' object")
    except (ValueError, AttributeError) as error:
        return None, [f"{path} is not a benchmarks/models.py result ({error}); using the cards"]
    return run, []


def benchmark_figures(run: dict | None, path: Path) -> tuple[dict[str, float], str | None]:
    """``path``'s top-1 (percent) and median latencies from the benchmark ``run``, and a warning.

    Nothing is taken from an entry whose recorded bytes or sha256 differ from the file's: it
    measured another build of the model.
    """
    entry = run["models"].get(path.name) if run else None
    if not isinstance(entry, dict):
        return {}, None
    content = path.read_bytes()
    if entry.get("bytes") != len(content) or entry.get("sha256") != hashlib.sha256(content).hexdigest():
        return {}, (
            f"{RESULTS} measured another {path.name} ({entry.get('bytes')} bytes, sha256 "
            f"{str(entry.get('sha256'))[:12]}...), not the file of {len(content)} bytes: using its card"
        )
    figures = {}
    if entry.get("top1") is not None:
        figures["top1"] = 100.0 * entry["top1"]
    for threads in (1, 2):
        latency = (entry.get("latency") or {}).get(str(threads))
        if latency:
            figures[f"latency_{threads}t"] = latency["ms_median"]
    return figures, None


def _figure(figures: dict, field: str, measured: bool = False) -> str:
    if field not in figures:
        return "not stated"
    value = figures[field]
    if field == "top1":
        return f"{value:.2f}%"
    return f"{value:.2f} ms" if measured else f"{value:g} ms"


def _source(measured: dict, stale: bool) -> str:
    """Which figures of a row come from the benchmark and which from the card."""
    if len(measured) == len(MEASURED):
        return "benchmark"
    card = "card (stale benchmark entry)" if stale else "card"
    if not measured:
        return card
    ours = ", ".join(MEASURED[f] for f in MEASURED if f in measured)
    theirs = ", ".join(MEASURED[f] for f in MEASURED if f not in measured)
    return f"benchmark: {ours}; {card}: {theirs}"


def _conditions(run: dict) -> str:
    """How the benchmark figures were measured, from the JSON."""
    return (
        f"Figures from the **benchmark**: `{RESULTS}`, written by `benchmarks/models.py` "
        f"(`{run.get('command', 'benchmarks/models.py')}`) on {run.get('date', '?')}, {run.get('cpu', '?')} "
        f"({run.get('cpus', '?')} CPUs), {run.get('runtime', '?')} {run.get('runtime_version', '')}: top-1 on "
        f"flowers5 `test.txt` at 1 thread; latency at batch 1, median of the round medians of "
        f"{run.get('rounds', '?')} interleaved rounds x {run.get('runs', '?')} calls of every model at each "
        f"thread count, so every model saw the same load (load average before / after: "
        f"{run.get('load_before', '?')} / {run.get('load_after', '?')}). Figures from a **card** were measured "
        "when that model was made, under whatever load the machine had then: compare them only within "
        "their card."
    )


def _made_by(model_file: str, models_dir: Path) -> str:
    """The rebuild step(s) of ``model_file`` (its ``.keras`` step first when another) and their commands."""
    keras_file = model_file.replace(".tflite", ".keras")
    steps = [s for s in STEPS if keras_file in s.outputs and model_file not in s.outputs]
    steps += [s for s in STEPS if model_file in s.outputs]
    if not steps:
        return "no rebuild step"
    parts = []
    for step in steps:
        try:
            commands = step_commands(step, models_dir.parent, "python", force=False)
        except PlanError as error:
            return f"step `{step.name}`: {error}"
        after = f" (after {', '.join(step.needs)})" if step.needs else ""
        parts.append(f"step `{step.name}`{after}: " + "; ".join(f"`{' '.join(c)}`" for c in commands))
    return "<br>".join(parts)


def build_index(models_dir: Path, results: Path | None = None) -> tuple[str, list[str]]:
    """The README text and the warnings (figures missing, bytes that disagree, stale benchmark entries).

    ``results``: the benchmark JSON (default ``MODELS_DIR/../benchmarks/results/models.json``).
    """
    run, warnings = load_benchmark(results or models_dir.parent / RESULTS)
    rows, used_benchmark = [], False
    for path in sorted(models_dir.glob("*.tflite")):
        card = read_card(models_dir, path.stem)
        figures = card_figures(card, path.name) if card else {}
        measured, stale = benchmark_figures(run, path)
        if stale:
            warnings.append(stale)
        if card is None:
            warnings.append(f"{path.name}: no card {path.stem}.md")
        missing = [f for f in FIELDS if f not in figures and f not in measured]
        if card is not None and missing:
            warnings.append(f"{path.stem}.md does not state {', '.join(missing)} for {path.name}")
        size = path.stat().st_size
        if "bytes" in figures and int(figures["bytes"]) != size:
            warnings.append(f"{path.stem}.md gives {int(figures['bytes']):,} bytes, {path.name} has {size:,}")
        ops = ", ".join(custom_op_names(path.read_bytes(), str(path))) or "-"
        shown = {f: _figure(measured, f, True) if f in measured else _figure(figures, f) for f in MEASURED}
        rows.append(
            f"| [`{path.name}`]({path.stem}.md) | {METHODS.get(path.stem, 'see the card')} | {ops} "
            f"| {shown['top1']} | {size:,} | {shown['latency_1t']} | {shown['latency_2t']} "
            f"| {_source(measured, stale is not None)} | {_made_by(path.name, models_dir)} |"
        )
        used_benchmark = used_benchmark or bool(measured)
    text = "\n".join(
        [
            "# The shipped flower models",
            "",
            "Generated by `scripts/models_index.py` (`make models-index`) from the `.tflite` files, the",
            f"last `benchmarks/models.py` run (`{RESULTS}`) and the model cards: do not edit by",
            "hand. Top-1 (flowers5 `test.txt`, 650 images, through the runtime) and latencies (batch 1,",
            "median, on the shared 2-core development machine) come from the benchmark run where it measured",
            "the file as it is now (same bytes and sha256), else from the model's card: `figures from` says",
            "which. Bytes are the files' sizes. Models with custom ops need `libtfcompress_ops.so` (loaded by",
            "`tfcompress.runtime`, or the apps in `android_demo/`). Labels: `labels.txt`.",
            "",
            *([_conditions(run), ""] if run and used_benchmark else []),
            "| file | method | custom ops | top-1 | bytes | latency 1 thread | latency 2 threads | figures from "
            "| made by |",
            "|---|---|---|---:|---:|---:|---:|---|---|",
            *rows,
            "",
            "## Rebuilding",
            "",
            "`make models` runs `scripts/rebuild_models.py`: every step above in dependency order (float",
            "teacher -> float/int8 `.tflite` -> PQ, pruned, slim -> DC, low-rank, binary, students), each",
            "with the command its card records. Done steps (model files present) are skipped; an interrupted",
            "step resumes from its state under `models/.work/`. It never overwrites a model file unless",
            "forced. `make models DRY_RUN=1` prints the plan; `make models FORCE=1 ONLY='pq dc'` rebuilds",
            "the named steps. Training takes hours on 2 CPU cores (see the cards).",
        ]
    )
    if warnings:
        text += "\n\nGaps found when this index was generated:\n\n" + "\n".join(f"- {w}" for w in warnings)
    return text + "\n", warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("-o", "--output", type=Path, help="default: MODELS_DIR/README.md")
    parser.add_argument("--results", type=Path, help=f"benchmark JSON (default: MODELS_DIR/../{RESULTS})")
    parser.add_argument("--check", action="store_true", help="exit 1 when the index on disk is out of date")
    args = parser.parse_args(argv)
    output = args.output or args.models_dir / "README.md"
    text, warnings = build_index(args.models_dir, args.results)
    for warning in warnings:
        print(f"models_index: warning: {warning}", file=sys.stderr)
    if args.check:
        current = output.read_text(encoding="utf-8") if output.is_file() else ""
        print(f"models_index: {output} is {'up to date' if current == text else 'out of date'}")
        return 0 if current == text else 1
    output.write_text(text, encoding="utf-8")
    print(f"models_index: wrote {output} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
