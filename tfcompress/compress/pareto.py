"""The Pareto plot of a budget search: validation top-1 against bytes and against latency."""

from __future__ import annotations

import os
from pathlib import Path


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points not dominated by another (lower cost and higher accuracy), by increasing cost.

    ``points`` are ``(cost, accuracy)``; a point is dominated when another has cost <= and
    accuracy >= with one of them strict.
    """
    front: list[tuple[float, float]] = []
    for cost, accuracy in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or accuracy > front[-1][1]:
            front.append((cost, accuracy))
    return front


def plot_search(result, output: str | os.PathLike, force: bool = False) -> Path:
    """Save a PNG: val top-1 against file bytes (log) and against latency at 1 thread, front drawn, choice circled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tfcompress.fileio import atomic_output

    trained = [c for c in result.candidates if c.val_top1 is not None]
    base = result.baseline
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for axis, cost_of, base_cost, label in (
        (axes[0], lambda c: c.bytes / 1024, base.bytes / 1024, "file size (KiB, log scale)"),
        (axes[1], lambda c: c.latency_ms, base.latency_ms, "latency per image, 1 thread, median (ms)"),
    ):
        points = [(cost_of(c), 100 * c.val_top1) for c in trained]
        axis.scatter([p[0] for p in points], [p[1] for p in points], color="tab:blue", zorder=3)
        for c, (x, y) in zip(trained, points, strict=True):
            axis.annotate(c.name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
            if c is result.chosen:
                axis.scatter([x], [y], s=160, facecolors="none", edgecolors="tab:red", zorder=4, label="chosen")
        front = pareto_front(points)
        if len(front) > 1:
            axis.step([p[0] for p in front], [p[1] for p in front], where="post", color="tab:blue", alpha=0.4)
        axis.scatter([base_cost], [100 * base.val_top1], marker="*", s=140, color="black", label="input", zorder=3)
        axis.axhline(100 * base.val_top1 - result.budget.max_drop, color="grey", linestyle=":", label="max drop")
        axis.set_xlabel(label)
        axis.set_ylabel("val top-1 (%)")
        axis.grid(True, alpha=0.3)
        axis.margins(x=0.15, y=0.15)
        axis.legend(fontsize=8, loc="lower right")
    axes[0].set_xscale("log")
    if result.budget.target_bytes is not None:
        axes[0].axvline(result.budget.target_bytes / 1024, color="tab:red", linestyle="--", alpha=0.5)
    figure.suptitle(f"budget search: {result.budget.describe()}", fontsize=10)
    figure.tight_layout()
    with atomic_output(output, force) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)
    return Path(output)
