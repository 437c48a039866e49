"""Every ``tfcompress compress`` recipe and the budget searches, as a user runs them: one table and plot.

    nice -n 5 .venv/bin/python benchmarks/compress.py                  # flowers5, the shipped float model
    nice -n 5 .venv/bin/python benchmarks/compress.py --dataset digits --epochs 2

Each recipe is one ``tfcompress compress IN --recipe R`` command run in a subprocess (its
output in ``--logs``), all sharing one work folder, so a stage that two recipes share (the
slimming of ``slim``, ``slim+pq``, ``slim+dc`` and ``slim+int8``) is trained once; then the
budget searches (``--target-bytes 400000 --max-drop 1``, ``--target-speedup 3 --max-drop 1``),
which reuse the recipes' stages where their settings match. Resumable: a recipe whose JSON
exists is read, not rerun (``--force`` reruns all).

Writes ``benchmarks/results/compress_<dataset>[_epochs<N>].md`` (+ ``.json`` and ``.png``): per recipe the
command, minutes of compute (all its stages, shared ones included), bytes, top-1 on the test
split through the runtime against the input model, and batch-1 latency at 1 and 2 threads
(median of interleaved rounds with the input model, so ratios compare like with like).

``--dataset digits`` is a second image folder that is not flowers5 and that no recipe was tuned
on: scikit-learn's bundled copy of the UCI optical handwritten digits (1,797 8x8 greyscale
images, 10 classes; shipped inside the ``scikit-learn`` package, no download), written as
32x32 RGB PNGs with a fixed 70/15/15 split; its model is a ResNet-8 (width 16) trained with
``tfcompress train`` by this script.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
RECIPES = ("int8", "pq", "pruned", "dc", "slim", "lowrank", "slim+dc", "slim+pq", "slim+int8", "lowrank+int8",
           "pruned+int8", "binary")  # fmt: skip
BUDGETS = {"bytes400k": ["--target-bytes", "400000", "--max-drop", "1.0"],
           "speedup3": ["--target-speedup", "3", "--max-drop", "1.0"]}  # fmt: skip


def make_digits_folder(root: Path, size: int = 32) -> Path:
    """scikit-learn's 8x8 digits as ``size`` x ``size`` RGB PNGs in class folders, with a fixed 70/15/15 split."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    if (root / "test.txt").is_file():
        return root
    digits = load_digits()
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    order = np.random.default_rng(0).permutation(len(digits.images))
    for rank, index in enumerate(order):
        label = int(digits.target[index])
        pixels = (digits.images[index] * (255.0 / 16.0)).astype(np.uint8)
        image = Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR).convert("RGB")
        name = f"digit{label}/{index:04d}.png"
        (root / f"digit{label}").mkdir(parents=True, exist_ok=True)
        image.save(root / name)
        split = "train" if rank < 0.7 * len(order) else ("val" if rank < 0.85 * len(order) else "test")
        lines[split].append(name)
    for split, names in lines.items():
        (root / f"{split}.txt").write_text("\n".join(sorted(names)) + "\n")
    return root


def run_logged(command: list[str], log: Path) -> float:
    """Run ``command`` with its output in ``log``; return wall minutes; exit with its status on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"$ {shlex.join(command)}  (log: {log})", flush=True)
    start = time.perf_counter()
    with open(log, "w") as handle:
        status = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    minutes = (time.perf_counter() - start) / 60
    if status not in (0, 2):
        raise SystemExit(f"{shlex.join(command)} failed with status {status}; see {log}")
    return minutes


def recipe_row(recipe: str, result: dict) -> dict:
    """One row of the table from a ``compress --json`` result."""
    base, out = result["measurements"]["input"], result["measurements"]["output"]
    return {
        "recipe": recipe,
        "command": result["command"].replace(f"{ROOT}/", ""),
        "minutes": round(sum(stage["seconds"] for stage in result["stages"]) / 60, 1),
        "bytes": out["bytes"],
        "input_bytes": base["bytes"],
        "top1": out["top1"]["test"],
        "input_top1": base["top1"]["test"],
        "latency_1t": out["latency_ms"]["1"],
        "latency_2t": out["latency_ms"]["2"],
        "input_latency_1t": base["latency_ms"]["1"],
        "input_latency_2t": base["latency_ms"]["2"],
        "custom_ops": "share" in [s["method"] for s in result["stages"]] or "pq" in recipe,
    }


def remeasure(rows: list[dict], files: Path, model: Path, data: list[str], rounds: int) -> None:
    """Time the input and every recipe's file again in one interleaved run (the recipes ran under other loads)."""
    from tfcompress.compress.measure import interleaved_latencies
    from tfcompress.compress.pipeline import file_sha256, input_tflite
    from tfcompress.convert import load_keras_model
    from tfcompress.data import load_split

    keras_model = load_keras_model(model)
    paths = {"input": input_tflite(keras_model, files, file_sha256(model))}
    paths.update({r["recipe"]: files / f"{r['recipe'].replace('+', '_')}.tflite" for r in rows})
    image = load_split(data[1] if data else None, "test", int(keras_model.inputs[0].shape[1]), limit=1).images[0]
    print(f"timing {len(paths)} files in {rounds} interleaved rounds at 1 and 2 threads ...", flush=True)
    medians = interleaved_latencies(paths, image, (1, 2), rounds, 20)
    for r in rows:
        for threads in (1, 2):
            r[f"latency_{threads}t"] = medians[threads][r["recipe"]]
            r[f"input_latency_{threads}t"] = medians[threads]["input"]
        r["timing"] = "remeasured together"


def markdown(dataset: str, rows: list[dict], budgets: dict, environment: str) -> str:
    """The results page."""
    lines = [
        f"# `tfcompress compress` on {dataset}",
        "",
        f"Written by `python benchmarks/compress.py {' '.join(sys.argv[1:])}` ({environment}). Top-1 on the test "
        "split through the TFLite runtime; latency is batch 1, the median of rounds interleaved with the input model's "
        "float file; with `--remeasure-rounds` (default) all files were timed again together, in one interleaved run, "
        "after the recipes ran; minutes count every stage of the recipe "
        "(stages shared with an earlier recipe were trained once).",
        "",
        "| recipe | bytes | x smaller | top-1 | change (points) | ms, 1 thread | x faster | ms, 2 threads "
        "| x faster | minutes | command |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    if rows:
        base = rows[0]
        lines.append(
            f"| input (float) | {base['input_bytes']:,} | 1.0 | {100 * base['input_top1']:.2f}% | - | "
            f"{base['input_latency_1t']:.3f} | 1.00 | {base['input_latency_2t']:.3f} | 1.00 | - | - |"
        )
    for r in rows:
        lines.append(
            f"| `{r['recipe']}` | {r['bytes']:,} | {r['input_bytes'] / r['bytes']:.1f} | {100 * r['top1']:.2f}% | "
            f"{100 * (r['top1'] - r['input_top1']):+.2f} | {r['latency_1t']:.3f} | "
            f"{r['input_latency_1t'] / r['latency_1t']:.2f} | {r['latency_2t']:.3f} | "
            f"{r['input_latency_2t'] / r['latency_2t']:.2f} | {r['minutes']} | `{r['command']}` |"
        )
    for name, budget in budgets.items():
        lines += ["", f"## Budget search `{name}`", "", f"`{budget['command']}`", "", budget["verdict"]]
        if budget.get("result"):
            r = budget["result"]
            lines.append(
                f"\nOn the test split: {r['bytes']:,} bytes ({r['input_bytes'] / r['bytes']:.1f}x smaller), top-1 "
                f"{100 * r['top1']:.2f}% ({100 * (r['top1'] - r['input_top1']):+.2f} points), "
                f"{r['input_latency_1t'] / r['latency_1t']:.2f}x faster at 1 thread. Candidates: `{budget['table']}`."
            )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """Top-1 against bytes and against latency at 1 thread (:func:`tfcompress.report.plot`)."""
    from tfcompress.report import plot as report_plot

    points = [{"model": "input (float)", "accuracy": rows[0]["input_top1"], "size_bytes": rows[0]["input_bytes"],
               "latency_ms_median": rows[0]["input_latency_1t"], "threads": 1}]  # fmt: skip
    points += [{"model": r["recipe"], "accuracy": r["top1"], "size_bytes": r["bytes"],
                "latency_ms_median": r["latency_1t"], "threads": 1} for r in rows]  # fmt: skip
    report_plot(points, path, force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("flowers5", "digits"), default="flowers5")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated recipes to run")
    parser.add_argument("--budgets", default=",".join(BUDGETS), help=f"budget searches to run ({', '.join(BUDGETS)})")
    parser.add_argument("--epochs", type=int, help="finetuning epochs of every stage (default: each stage's own)")
    parser.add_argument(
        "--model",
        type=Path,
        help="flowers5 input model (default: models/flowers_float.keras; another one names the results after it)",
    )
    parser.add_argument("--work", type=Path, help="shared work folder (default: models/.work/compress[_DATASET])")
    parser.add_argument("--force", action="store_true", help="rerun recipes whose results exist")
    parser.add_argument(
        "--remeasure-rounds",
        type=int,
        default=15,
        help="time every recipe's file and the input again in one interleaved run of this many rounds (0: keep "
        "each recipe's own timing, taken under whatever load its run had)",
    )
    args = parser.parse_args()

    from tfcompress.machine import this_cpu

    suffix = "" if args.dataset == "flowers5" else f"_{args.dataset}"
    if args.model is not None:
        if args.dataset != "flowers5":
            parser.error("--model applies to --dataset flowers5 (digits trains its own model)")
        suffix += "_" + args.model.stem.removeprefix("flowers_")
    suffix += f"_epochs{args.epochs}" if args.epochs is not None else ""
    work = args.work or ROOT / f"models/.work/compress{suffix}"
    files, logs = work / "out", work / "logs"
    files.mkdir(parents=True, exist_ok=True)
    tfcompress = str(Path(sys.executable).with_name("tfcompress"))
    data: list[str] = []
    model = args.model.resolve() if args.model else ROOT / "models/flowers_float.keras"
    if args.dataset == "digits":
        folder = make_digits_folder(work / "digits")
        data = ["--data", str(folder)]
        model = work / "digits_resnet8.keras"
        if not model.is_file():
            run_logged([tfcompress, "train", "--model", "resnet8", "--width", "16", "--image-size", "32", "--epochs",
                        "30", *data, "-o", str(model)], logs / "train.log")  # fmt: skip
    epochs = ["--epochs", str(args.epochs)] if args.epochs is not None else []
    stem_name = f"compress_{args.dataset}" + suffix.removeprefix(f"_{args.dataset}")
    common = [*data, "--work", str(work), *epochs]
    rows = []
    for recipe in [r for r in args.recipes.split(",") if r]:
        name = recipe.replace("+", "_")
        result_file = files / f"{name}.json"
        if args.force or not result_file.is_file():
            out = files / f"{name}.tflite"
            run_logged([tfcompress, "compress", str(model), "--recipe", recipe, "-o", str(out), *common, "--json",
                        str(result_file), "--force"], logs / f"{name}.log")  # fmt: skip
        rows.append(recipe_row(recipe, json.loads(result_file.read_text())))
    budgets = {}
    for name in [b for b in args.budgets.split(",") if b]:
        out, result_file = files / f"budget_{name}.tflite", files / f"budget_{name}.json"
        report_file = out.with_name(out.stem + ".budget.json")
        command = [tfcompress, "compress", str(model), "-o", str(out), *BUDGETS[name], *common, "--json",
                   str(result_file), "--force"]  # fmt: skip
        if args.force or not report_file.is_file():
            run_logged(command, logs / f"budget_{name}.log")
        report = json.loads(report_file.read_text())
        table = RESULTS / f"{stem_name}_budget_{name}.md"  # the search's table and plot, kept with the results
        for suffix in ("md", "png"):
            shutil.copyfile(out.with_name(f"{out.stem}.budget.{suffix}"), table.with_suffix(f".{suffix}"))
        shown = shlex.join(["tfcompress", *command[1:]]).replace(f"{ROOT}/", "")
        budgets[name] = {"command": shown, "verdict": report["verdict"], "table": str(table.relative_to(ROOT)),
                         "report": report}  # fmt: skip
        if report["chosen"] and result_file.is_file():
            budgets[name]["result"] = recipe_row(report["chosen"], json.loads(result_file.read_text()))
    if args.remeasure_rounds and rows:
        remeasure(rows, files, model, data, args.remeasure_rounds)
    environment = f"{time.strftime('%Y-%m-%d')}, {this_cpu()}, {os.cpu_count()} CPUs"
    stem = RESULTS / stem_name
    (stem.with_suffix(".json")).write_text(json.dumps({"rows": rows, "budgets": budgets, "environment": environment},
                                                      indent=1))  # fmt: skip
    stem.with_suffix(".md").write_text(markdown(f"{args.dataset} (input: {model.name})", rows, budgets, environment))
    if rows:
        plot(rows, stem.with_suffix(".png"))
    print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
