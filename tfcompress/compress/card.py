"""The model card of a ``tfcompress compress`` run: the command, what each stage did, what was measured."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tfcompress.compress.recipes import RECIPE_DESCRIPTIONS
from tfcompress.skipped import grouped, split_message


def _ratio(before: float, after: float, better: str, worse: str) -> str:
    """``2.00x smaller`` when ``after`` is half of ``before``; ``1.25x larger`` the other way."""
    if not before or not after:
        return "-"
    return f"{before / after:.2f}x {better}" if after <= before else f"{after / before:.2f}x {worse}"


def cell(text: str) -> str:
    """``text`` safe inside a markdown table cell (``|`` escaped)."""
    return text.replace("|", "\\|")


def top1_change(base, out, split: str) -> str:
    """``-1.69 points (95% CI -2.9 to -0.5)``: the paired difference on the same images (:mod:`tfcompress.paired`)."""
    from tfcompress.paired import paired_difference

    if split not in out.correct or split not in base.correct:
        return f"{100 * (out.top1[split] - base.top1[split]):+.2f} points"
    pair = paired_difference(out.correct_on(split), base.correct_on(split))
    return f"{pair.points:+.2f} points (95% CI {pair.low:+.1f} to {pair.high:+.1f})"


def drop_warning(result, max_loss: float) -> str | None:
    """A one-line warning when the output lost more than ``max_loss`` points of test top-1, and the loss is
    real (the paired 95% interval of the change lies below zero), else ``None``."""
    from tfcompress.paired import paired_difference

    if not result.measurements or "test" not in result.measurements["output"].top1:
        return None
    base, out = result.measurements["input"], result.measurements["output"]
    lost = 100 * (base.top1["test"] - out.top1["test"])
    if lost <= max_loss:
        return None
    paired = "test" in out.correct and "test" in base.correct
    if paired and paired_difference(out.correct_on("test"), base.correct_on("test")).high >= 0:
        return None  # too few test images to tell the loss from noise
    return (
        f"the compressed model lost {lost:.2f} points of test top-1 ({100 * out.top1['test']:.2f}% against "
        f"{100 * base.top1['test']:.2f}%; change {top1_change(base, out, 'test')}), more than the {max_loss:g} "
        "points allowed"
    )


def measurement_table(result, input_path: str | os.PathLike) -> list[str]:
    """Markdown rows: input against output, top-1, bytes, latency at each thread count."""
    base, out = result.measurements["input"], result.measurements["output"]
    rows = [
        f"| | input (`{Path(input_path).name}` as a float .tflite) | output (`{Path(out.path).name}`) | change |",
        "|---|---:|---:|---:|",
    ]
    for split in out.top1:
        rows.append(
            f"| top-1 on {split} ({out.images[split]} images, runtime) | {100 * base.top1[split]:.2f}% | "
            f"{100 * out.top1[split]:.2f}% | {top1_change(base, out, split)} |"
        )
    size_change = _ratio(base.bytes, out.bytes, "smaller", "larger")
    rows.append(f"| .tflite bytes | {base.bytes:,} | {out.bytes:,} | {size_change} |")
    for threads in out.latency_ms:
        before, after = base.latency_ms[threads], out.latency_ms[threads]
        speed_change = _ratio(before, after, "faster", "slower")
        label = f"latency at {threads} thread{'s' if threads > 1 else ''}, median ms"
        rows.append(f"| {label} | {before:.2f} | {after:.2f} | {speed_change} |")
    return rows


def card_text(result, input_path: str | os.PathLike) -> str:
    """The card's markdown."""
    from tfcompress.machine import kernel_paths, this_cpu
    from tfcompress.runtime import custom_op_names

    recipe = result.recipe
    reused_stages = [record.method for record in result.stages if record.reused]
    reused = f", reusing the stage(s) {', '.join(reused_stages)} an earlier run left in the work folder" * bool(
        reused_stages
    )
    parts = [RECIPE_DESCRIPTIONS.get(part, "") for part in recipe.name.split("+")]
    ops = sorted(set(custom_op_names(Path(result.output).read_bytes()))) if Path(result.output).is_file() else []
    warning = result.lost_too_much
    lines = [
        f"# {Path(result.output).stem}",
        "",
        *([f"**Warning: {warning}.** It is written for inspection; do not ship it.", ""] if warning else []),
        f"`{Path(input_path).name}` compressed with the recipe **{recipe.name}**"
        + (f" ({'; '.join(p for p in parts if p)})" if any(parts) else "")
        + ".",
        "",
        f"Made by: `{result.command}`" if result.command else "Made by the Python API (tfcompress.compress).",
        f"(stages: {sum(r.seconds for r in result.stages) / 60:.1f} min of compute in all; this invocation "
        f"{result.seconds / 60:.1f} min{reused}; "
        f"{os.cpu_count()} CPU cores of {this_cpu()}, {time.strftime('%Y-%m-%d')}; {kernel_paths()}.)",
        "",
        "Custom ops: " + (", ".join(f"`{op}`" for op in ops) + " (need `libtfcompress_ops.so`)" if ops else "none"),
        "",
        "## Stages",
        "",
        "| # | stage | what it did | layers left as they are | minutes |",
        "|---:|---|---|---|---:|",
    ]
    for number, record in enumerate(result.stages, 1):
        skipped = cell("; ".join(grouped(map(split_message, record.skipped)))) if record.skipped else "-"
        reused = " (reused)" if record.reused else ""
        minutes = f"{record.seconds / 60:.1f}{reused}"
        lines.append(f"| {number} | `{record.description}` | {cell(record.summary)} | {skipped} | {minutes} |")
    if recipe.int8:
        lines.append(
            f"| {len(result.stages) + 1} | `int8` | full-integer post-training quantization by the TFLite converter "
            f"({recipe.option('int8', 'calibration_images')} calibration images) | - | - |"
        )
    if result.warnings:
        lines += ["", "## Warnings", "", *(f"- {message}" for message in result.warnings)]
    if result.measurements:
        lines += ["", "## Measured", "", *measurement_table(result, input_path), ""]
        lines.append(
            "Top-1 through the TFLite runtime; latency is batch 1, the median of interleaved rounds in which "
            "input and output were timed alike (same load)."
        )
    return "\n".join(lines) + "\n"


def write_card(result, path: str | os.PathLike, input_path: str | os.PathLike, force: bool = False) -> Path:
    """Write the card atomically."""
    from tfcompress.fileio import write_text_atomic

    return write_text_atomic(path, card_text(result, input_path), force)
