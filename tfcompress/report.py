"""Tables and plots from ``tfcompress eval --json`` results: accuracy against size and latency."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tfcompress.compress.pareto import pareto_front
from tfcompress.errors import TfcompressError
from tfcompress.fileio import atomic_output, write_text_atomic

REQUIRED_KEYS = ("accuracy", "size_bytes", "latency_ms_median", "latency_ms_p90", "threads", "images")


def load_results(paths: list[str | os.PathLike]) -> list[dict]:
    """Read result JSON files; each must hold :data:`REQUIRED_KEYS`.

    Raises:
        TfcompressError: a file is missing, not JSON, or lacks a key.
    """
    results = []
    for path in map(Path, paths):
        if not path.is_file():
            raise TfcompressError(f"result file {path} does not exist")
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise TfcompressError(f"{path} is not valid JSON: {error}") from error
        missing = [key for key in REQUIRED_KEYS if key not in result]
        if missing:
            raise TfcompressError(f"{path} lacks {', '.join(missing)}; expected the output of tfcompress eval --json")
        result.setdefault("model", path.stem)
        results.append(result)
    if not results:
        raise TfcompressError("no result files given")
    return results


def markdown_table(results: list[dict]) -> str:
    """A markdown table: model, top-1, bytes, latency median/p90, threads, images."""
    lines = [
        "| model | top-1 | bytes | latency median (ms) | latency p90 (ms) | threads | images |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {Path(r['model']).name} | {100 * r['accuracy']:.2f}% | {r['size_bytes']:,} | "
            f"{r['latency_ms_median']:.2f} | {r['latency_ms_p90']:.2f} | {r['threads']} | {r['images']} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: list[dict], output: str | os.PathLike, force: bool = False) -> Path:
    """Save a PNG with two panels: top-1 against size (log scale) and against latency, Pareto fronts drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (by_size, by_latency) = plt.subplots(1, 2, figsize=(11, 4.5))
    for r in results:
        label = Path(r["model"]).name
        accuracy = 100 * r["accuracy"]
        by_size.scatter(r["size_bytes"] / 1024, accuracy)
        by_size.annotate(
            label, (r["size_bytes"] / 1024, accuracy), textcoords="offset points", xytext=(4, 4), fontsize=8
        )
        by_latency.scatter(r["latency_ms_median"], accuracy)
        by_latency.annotate(
            label, (r["latency_ms_median"], accuracy), textcoords="offset points", xytext=(4, 4), fontsize=8
        )
    for axis, cost in ((by_size, lambda r: r["size_bytes"] / 1024), (by_latency, lambda r: r["latency_ms_median"])):
        front = pareto_front([(cost(r), 100 * r["accuracy"]) for r in results])
        if len(front) > 1:  # the models no other beats on both axes
            axis.step(*zip(*front, strict=True), where="post", color="grey", alpha=0.5, label="Pareto front")
            axis.legend(fontsize=8, loc="lower right")
    by_size.set_xscale("log")
    by_size.set_xlabel("file size (KiB, log scale)")
    by_latency.set_xlabel(f"latency per image, median (ms, {results[0]['threads']} thread(s))")
    for axis in (by_size, by_latency):
        axis.margins(x=0.2, y=0.15)  # room for the labels
        axis.set_ylabel("top-1 accuracy (%)")
        axis.grid(True, alpha=0.3)
    figure.suptitle("accuracy against size and latency")
    figure.tight_layout()
    with atomic_output(output, force) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)
    return Path(output)


def report(
    result_paths: list[str | os.PathLike], output_dir: str | os.PathLike, force: bool = False
) -> tuple[Path, Path]:
    """Write ``report.md`` and ``accuracy.png`` into ``output_dir``; return their paths."""
    results = load_results(result_paths)
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    figure = plot(results, directory / "accuracy.png", force)
    text = (
        "# tfcompress report\n\n" + markdown_table(results) + f"\n![accuracy against size and latency]({figure.name})\n"
    )
    table = write_text_atomic(directory / "report.md", text, force)
    return table, figure
