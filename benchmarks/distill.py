"""Distillation benchmark on flowers5: student from scratch vs distilled student vs teacher.

Measures, through the ``.tflite`` runtime (:mod:`tfcompress.evaluate`), the top-1 on
``test.txt``, the file bytes and the batch-1 latency (median of repeated runs at 1 and 2
threads) of the students trained by ``scripts/train_flowers_students.py`` (two seeds each)
and of their teacher; plus, from the same ``.tflite`` logits, how closely each student
follows the teacher (top-1 agreement and mean ``KL(p_teacher || p_student)`` at T = 1).
Writes ``benchmarks/results/distill.json`` and ``distill.md``; with ``--cards`` also the
cards of the shipped students (``models/flowers_student{,_kd}.md``).

    .venv/bin/python benchmarks/distill.py [--teacher models/flowers_float.keras] [--cards] --force
    .venv/bin/python benchmarks/distill.py --width 8 --force   # the narrower student -> distill_w8.{json,md}
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from train_flowers_students import (  # noqa: E402
    ALPHA,
    EPOCHS,
    SEEDS,
    SHIPPED,
    STUDENT,
    TEACHER_PRECISION,
    TEMPERATURE,
    student_settings,
    work_dir,
)

from tfcompress.convert import convert  # noqa: E402
from tfcompress.data import load_split  # noqa: E402
from tfcompress.evaluate import TFLiteClassifier, evaluate  # noqa: E402
from tfcompress.fileio import write_text_atomic  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
LATENCY_RUNS = int(os.environ.get("DISTILL_LATENCY_RUNS", "200"))


def why_no_gain(result: dict) -> list[str]:
    """The measured figures that bear on a missed +2-point goal (printed when it is missed)."""
    teacher = 100 * result["teacher"]["top1"]
    scratch = 100 * result["summary"]["scratch_top1_mean"]
    lines = [
        "What bears on the gain (the README's distillation section weighs it with the other students and teachers):",
        "",
        f"- The teacher ({teacher:.2f}% test) is {teacher - scratch:.1f} points above the scratch students "
        f"({student_name(result_student(result))}).",
        "- The distilled students do follow the teacher (agreement and KL columns): the loss does its job.",
        *headroom_lines(result),
    ]
    by_split = result["teacher"].get("soft_targets_by_split")
    if by_split:
        train, test = by_split["train"], by_split["test"]
        lines.append(
            f"- The students learn from the training images, where the teacher is right on "
            f"{100 * train['top1']:.1f}% and gives the true class {train['T=1']['mean_true_class_probability']:.2f} "
            f"on average (test: {100 * test['top1']:.1f}%, {test['T=1']['mean_true_class_probability']:.2f}): there "
            "its soft targets are close to the labels the scratch students already have."
        )
    lines += gain_by_transfer_gap(result)
    lines.append("- One test image is 0.15 points; compare the seed-to-seed spread below with the gain sought.")
    return lines


def gain_by_transfer_gap(result: dict) -> list[str]:
    """Per mixup strength with scratch and distilled runs: the teacher-target gap and the gain it bought."""
    gaps = result["teacher"].get("transfer_set_gaps", {})
    pairs = [(result_student(result)["mixup"], "scratch", "distilled")]
    pairs += [
        (float(tag[3:]), f"scratch {tag}", kind)
        for kind, tag in zip(result["ablations"], map(mixup_tag, result["ablations"]), strict=True)
        if kind == f"distilled {tag}"
    ]
    parts = []
    for mixup, scratch, distilled in pairs:
        gap = gaps.get(f"mixup {mixup:g}")
        seeds = {row["seed"] for row in result.get(distilled, [])} & {row["seed"] for row in result.get(scratch, [])}
        if gap is None or not seeds:
            continue
        gain = _mean([r for r in result[distilled] if r["seed"] in seeds], "top1") - _mean(
            [r for r in result[scratch] if r["seed"] in seeds], "top1"
        )
        parts.append(
            f"mixup {mixup:g}: total variation {gap['mean_total_variation']:.3f}, gain {100 * gain:+.2f} points "
            f"({len(seeds)} seed{'s' if len(seeds) > 1 else ''})"
        )
    if len(parts) < 2:
        return []
    return [
        "- Teacher-target gap on the training batches and the distillation gain over scratch runs of the same "
        "mixup: " + "; ".join(parts) + "."
    ]


def headroom_lines(result: dict) -> list[str]:
    """The teacher's headroom over the scratch students, and how much of it the distilled students took."""
    scratch = [row["headroom"] for row in result["scratch"] if "headroom" in row]
    distilled = [row["headroom"] for row in result["distilled"] if "headroom" in row]
    if not scratch or not distilled:
        return []
    images = result["scratch"][0]["test_images"]

    def mean(rows: list[dict], key: str) -> float:
        return statistics.mean(row[key] for row in rows)

    right, wrong = mean(scratch, "teacher_right_student_wrong"), mean(scratch, "teacher_wrong_student_right")
    return [
        f"- Headroom: on {images} test images the teacher is right where a scratch student is wrong on {right:.1f} "
        f"images and wrong where it is right on {wrong:.1f} (means over seeds): a student that copied the teacher "
        f"exactly would gain {100 * (right - wrong) / images:.1f} points, and that only by copying its mistakes too. "
        f"The distilled students: {mean(distilled, 'teacher_right_student_wrong'):.1f} and "
        f"{mean(distilled, 'teacher_wrong_student_right'):.1f}; both students and teacher are wrong on "
        f"{mean(scratch, 'both_wrong'):.1f} (scratch) / {mean(distilled, 'both_wrong'):.1f} (distilled) images.",
    ]


def result_student(result: dict) -> dict:
    """The student settings a result was measured with (results saved before the field: the benchmark's)."""
    return result.get("student", STUDENT)


def student_name(student: dict) -> str:
    return f"{student['model']} width {student['width']}"


def results_stem(width: int) -> str:
    """``distill`` for the benchmark's student, ``distill_w<width>`` for another width."""
    return "distill" if width == STUDENT["width"] else f"distill_w{width}"


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def tflite_for(keras_path: Path, work: Path) -> Path:
    """The ``.tflite`` of a ``.keras`` file in the work folder, converted once (again when the ``.keras`` is newer)."""
    if not keras_path.is_file():
        raise SystemExit(f"error: {keras_path} not found (a teacher or student .keras the benchmark needs)")
    target = ROOT / work / f"{keras_path.stem}.tflite"
    if not target.exists() or target.stat().st_mtime < keras_path.stat().st_mtime:
        convert(keras_path, target, force=True)
    return target


@functools.cache
def test_images(data_dir: str | None, size: int) -> np.ndarray:
    """The test split at ``size`` px (teacher and students may take different sizes)."""
    return load_split(data_dir, "test", size).images


@functools.cache
def test_labels(data_dir: str | None) -> np.ndarray:
    return load_split(data_dir, "test", 32).labels


def soft_target_stats(logits: np.ndarray, labels: np.ndarray) -> dict:
    """What a teacher's soft targets carry on a set of images.

    Top-1; per temperature T the mean max probability, mean entropy (nats) and mean probability of the
    true class of ``softmax(z / T)``; and the mean entropy of the wrong classes' probabilities renormalised
    to sum to one (``log(K - 1)`` when they are all equal: nothing to learn about which wrong class is
    closer, what label smoothing is known to erase, Mueller, Kornblith & Hinton 2019).
    """
    stats = {"top1": float(np.mean(logits.argmax(1) == labels))}
    for t in (1.0, TEMPERATURE):
        p = _softmax(logits / t)
        stats[f"T={t:g}"] = {
            "mean_max_probability": float(p.max(axis=1).mean()),
            "mean_entropy_nats": float(-(p * np.log(p)).sum(1).mean()),
            "mean_true_class_probability": float(p[np.arange(len(labels)), labels].mean()),
        }
    p = _softmax(logits)
    wrong = np.ones_like(p, dtype=bool)
    wrong[np.arange(len(labels)), labels] = False
    others = p[wrong].reshape(len(labels), -1)
    others = others / others.sum(1, keepdims=True)
    stats["wrong_class_entropy_nats"] = float(-(others * np.log(others)).sum(1).mean())
    return stats


def teacher_soft_targets(tflite: Path, data_dir: str | None) -> dict:
    """:func:`soft_target_stats` of a teacher on the training images (what its students learn from) and on test."""
    classifier = TFLiteClassifier(tflite, threads=2)
    size = int(classifier.input["shape"][1])
    stats = {}
    for split in ("train", "test"):
        images = load_split(data_dir, split, size)
        stats[split] = soft_target_stats(classifier.predict(images.images), images.labels)
    return stats


def target_gap(teacher_probabilities: np.ndarray, targets: np.ndarray) -> dict:
    """How far the teacher's soft targets are from the training targets a scratch student gets.

    Mean total variation ``TV = 1/2 sum_k |p_k - y_k|`` between the teacher's ``p`` (T = 1) and the
    (mixed) label ``y``, in [0, 1]; 0 when distillation would teach nothing beyond the labels. Also the
    share of images whose top teacher class is the target's top class.
    """
    tv = 0.5 * np.abs(teacher_probabilities - targets).sum(axis=1)
    agree = teacher_probabilities.argmax(1) == targets.argmax(1)
    return {"mean_total_variation": float(tv.mean()), "top_class_agreement": float(agree.mean())}


def transfer_set_gaps(tflite: Path, data_dir: str | None, mixups: tuple[float, ...], seed: int = 0) -> dict:
    """:func:`target_gap` on the students' own training batches (augmented, mixed with each strength).

    The batches come from the training pipeline itself (:func:`tfcompress.training.one_hot_dataset`, one
    epoch, batch 64), so these are the images and targets a student of that mixup strength learns from.
    """
    from tfcompress.training import one_hot_dataset

    classifier = TFLiteClassifier(tflite, threads=2)
    size = int(classifier.input["shape"][1])
    train = load_split(data_dir, "train", size)
    gaps = {}
    for mixup in mixups:
        teacher, targets = [], []
        for images, labels in one_hot_dataset(train, 64, True, seed, mixup):
            teacher.append(_softmax(classifier.predict(images.numpy())))
            targets.append(labels.numpy())
        gaps[f"mixup {mixup:g}"] = target_gap(np.concatenate(teacher), np.concatenate(targets))
    return gaps


def transfer_gap_lines(result: dict) -> list[str]:
    """The :func:`transfer_set_gaps` table (results saved with it only)."""
    gaps = result["teacher"].get("transfer_set_gaps")
    if not gaps:
        return []
    lines = [
        "",
        "How far the teacher's soft targets (T = 1) are from the targets a scratch student trains on, on one epoch "
        "of the students' own training batches (augmented, then mixed; `transfer_set_gaps`): mean total "
        "variation, 0 when the teacher would teach nothing beyond the labels:",
        "",
        "| training batches | mean total variation | teacher's top class = target's |",
        "|---|---|---|",
    ]
    for name, gap in gaps.items():
        lines.append(f"| {name} | {gap['mean_total_variation']:.3f} | {100 * gap['top_class_agreement']:.1f}% |")
    return lines


def headroom(teacher_logits: np.ndarray, logits: np.ndarray, labels: np.ndarray) -> dict:
    """What imitating the teacher could change: test images it gets right where the student is wrong, and back.

    ``teacher_right_student_wrong - teacher_wrong_student_right`` is the top-1 gain (in images) of a student
    that copied the teacher's every decision; no distillation loss can transfer more than the first count.
    """
    teacher_right = teacher_logits.argmax(1) == labels
    student_right = logits.argmax(1) == labels
    return {
        "teacher_right_student_wrong": int(np.sum(teacher_right & ~student_right)),
        "teacher_wrong_student_right": int(np.sum(~teacher_right & student_right)),
        "both_wrong": int(np.sum(~teacher_right & ~student_right)),
    }


def measure(tflite: Path, data_dir, teacher_logits: np.ndarray | None) -> dict:
    """Top-1, bytes, latency at 1 and 2 threads; agreement and KL with the teacher when given."""
    one = evaluate(tflite, data_dir, "test", threads=1, runs=LATENCY_RUNS, warmup=20)
    two = evaluate(tflite, data_dir, "test", threads=2, runs=LATENCY_RUNS, warmup=20)
    classifier = TFLiteClassifier(tflite, threads=1)
    logits = classifier.predict(test_images(data_dir, int(classifier.input["shape"][1])))
    row = {
        "tflite": str(tflite.relative_to(ROOT)),
        "top1": one.accuracy,
        "test_images": one.images,
        "bytes": one.size_bytes,
        "latency_ms_1_thread": one.latency_ms_median,
        "latency_ms_2_threads": two.latency_ms_median,
        "logits": logits,
    }
    if teacher_logits is not None:
        p, q = _softmax(teacher_logits), _softmax(logits)
        row["agreement_with_teacher"] = float(np.mean(p.argmax(1) == q.argmax(1)))
        row["kl_to_teacher"] = float(np.mean(np.sum(p * (np.log(p + 1e-12) - np.log(q + 1e-12)), axis=1)))
        row["headroom"] = headroom(teacher_logits, logits, test_labels(data_dir))
    return row


def other_teacher(work: Path, prefix: str, benchmark_teacher: str) -> str | None:
    """The teacher an ablation's runs were distilled from (their ``.teacher`` file), if not the benchmark's."""
    for seed in SEEDS:
        record = ROOT / work / f"{prefix}_s{seed}.teacher"
        if record.exists():
            source = record.read_text().strip()
            return None if Path(source) == Path(benchmark_teacher) else source
    return None


def ablation_kinds(work: Path) -> list[tuple[str, str]]:
    """``(kind, run prefix)`` of the ablation runs in a work folder: scratch runs with another recipe
    (``scratch_<what>_s<seed>.keras``, kind ``scratch <what>``) then distilled runs with other settings or
    teachers (``kd_<what>_s<seed>.keras``, kind ``distilled <what>``)."""
    kinds = []
    for run, kind in (("scratch", "scratch"), ("kd", "distilled")):
        prefixes = sorted({path.name.rsplit("_s", 1)[0] for path in work.glob(f"{run}_*_s*.keras")})
        kinds += [(f"{kind} {prefix[len(run) + 1 :]}", prefix) for prefix in prefixes]
    return kinds


def mixup_tag(kind: str) -> str | None:
    """The ``mix<m>`` part of an ablation's name (``distilled mix1`` -> ``mix1``), if any."""
    parts = [part for part in kind.split(" ", 1)[-1].split("_") if re.fullmatch(r"mix\d+(\.\d+)?", part)]
    return parts[0] if parts else None


def ablation_mixups(kinds: list[str]) -> list[float]:
    """The other mixup strengths the ablations were trained with, sorted, each once."""
    return sorted({float(part[3:]) for part in map(mixup_tag, kinds) if part} - {STUDENT["mixup"]})


def baseline_kind(kind: str, result: dict) -> str:
    """The scratch runs an ablation is compared with: a distilled ablation with another mixup strength
    (``mix<m>`` in its name) against the scratch runs with that strength when measured, else ``scratch``."""
    mixup = mixup_tag(kind)
    if kind.startswith("distilled ") and mixup and f"scratch {mixup}" in result:
        return f"scratch {mixup}"
    return "scratch"


def _mean(rows: list[dict], key: str) -> float:
    return float(statistics.mean(r[key] for r in rows))


def teacher_figures(source: str, work: Path, data_dir: str | None) -> dict:
    """Test top-1 and soft-target figures of a teacher other than the benchmark's."""
    by_split = teacher_soft_targets(tflite_for(ROOT / source, work), data_dir)
    return {"source": source, "top1": by_split["test"]["top1"], "soft_targets_by_split": by_split}


def soft_target_table(result: dict) -> list[str]:
    """The teachers' soft targets on the training images and on test (results saved with them only)."""
    teachers = [(result["teacher"]["source"], result["teacher"])]
    teachers += [(t["source"], t) for t in result.get("ablation_teachers", {}).values()]
    teachers += [(t["source"], t) for t in result.get("other_teachers", [])]
    teachers = [(source, t["soft_targets_by_split"]) for source, t in teachers if "soft_targets_by_split" in t]
    if not teachers:
        return []
    lines = [
        "",
        "What the teachers' soft targets carry (`soft_target_stats`; wrong-class entropy: of the wrong "
        f"classes' renormalised probabilities at T = 1, {np.log(4):.3f} nats when all equal):",
        "",
        "| teacher | images | top-1 | max probability, T=1 | p(true class), T=1 | entropy, T=1 | "
        f"entropy, T={TEMPERATURE:g} | wrong-class entropy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for source, by_split in teachers:
        for split, stats in by_split.items():
            one, soft = stats["T=1"], stats[f"T={TEMPERATURE:g}"]
            lines.append(
                f"| `{source}` | {split} | {100 * stats['top1']:.2f}% | {one['mean_max_probability']:.3f} | "
                f"{one['mean_true_class_probability']:.3f} | {one['mean_entropy_nats']:.3f} | "
                f"{soft['mean_entropy_nats']:.3f} | {stats['wrong_class_entropy_nats']:.3f} |"
            )
    return lines


def markdown(result: dict) -> str:
    student = result_student(result)
    lines = [
        "# Distillation on flowers5 (test.txt, through the .tflite runtime)",
        "",
        f"Student: {student_name(student)} at {student['image_size']} px, {EPOCHS} epochs, "
        f"mixup {student['mixup']}, same recipe and augmentation for both; "
        f"distilled with T = {TEMPERATURE}, alpha (label weight) = {ALPHA}. "
        f"Teacher: `{result['teacher']['source']}`.",
        "",
        "| model | seed | top-1 | bytes | ms, 1 thread | ms, 2 threads | agrees with teacher | KL to teacher |",
        "|---|---|---|---|---|---|---|---|",
    ]
    teacher = result["teacher"]
    lines.append(
        f"| teacher | - | {100 * teacher['top1']:.2f}% | {teacher['bytes']:,} | {teacher['latency_ms_1_thread']:.3f} | "
        f"{teacher['latency_ms_2_threads']:.3f} | - | - |"
    )
    for kind in ("scratch", "distilled", *result["ablations"]):
        for row in result[kind]:
            lines.append(
                f"| {kind} | {row['seed']} | {100 * row['top1']:.2f}% | {row['bytes']:,} | "
                f"{row['latency_ms_1_thread']:.3f} | {row['latency_ms_2_threads']:.3f} | "
                f"{100 * row['agreement_with_teacher']:.1f}% | {row['kl_to_teacher']:.3f} |"
            )
    summary = result["summary"]
    lines += [
        "",
        f"Mean top-1 over seeds: scratch {100 * summary['scratch_top1_mean']:.2f}%, distilled "
        f"{100 * summary['distilled_top1_mean']:.2f}%, gain **{100 * summary['gain_points']:+.2f} points** "
        f"(goal >= +2: {'met' if summary['goal_met'] else 'not met'}); teacher {100 * teacher['top1']:.2f}%.",
        "",
    ]
    for kind in result["ablations"]:
        if not result[kind]:
            continue
        seeds = [row["seed"] for row in result[kind]]
        mean = _mean(result[kind], "top1")
        comparisons = []
        for baseline in dict.fromkeys((baseline_kind(kind, result), "scratch")):
            same_seeds = [row for row in result.get(baseline, []) if row["seed"] in seeds]
            if same_seeds and baseline != kind:
                comparisons.append(f"{100 * (mean - _mean(same_seeds, 'top1')):+.2f} points against {baseline}")
        other = result.get("ablation_teachers", {}).get(kind)
        taught_by = f" Its teacher: `{other['source']}`, {100 * other['top1']:.2f}% test." if other else ""
        lines += [
            f"Ablation {kind}, seed(s) {', '.join(map(str, seeds))}: mean top-1 {100 * mean:.2f}% "
            f"({'; '.join(comparisons)}; same seed(s)).{taught_by}",
            "",
        ]
    soft = teacher["soft_targets"]
    lines += [
        "",
        "Teacher's soft targets on test (5 classes, uniform entropy 1.609 nats): "
        + ", ".join(
            f"{key}: max probability {v['mean_max_probability']:.2f}, entropy {v['mean_entropy_nats']:.2f}"
            for key, v in soft.items()
        )
        + ".",
    ]
    lines += soft_target_table(result)
    lines += transfer_gap_lines(result)
    if not summary["goal_met"]:
        lines += ["", *why_no_gain(result)]
    spreads = [
        f"{kind} {100 * (max(row['top1'] for row in result[kind]) - min(row['top1'] for row in result[kind])):.2f} "
        "points"
        if len(result[kind]) > 1
        else f"{kind}: one seed, no spread"
        for kind in ("scratch", "distilled")
    ]
    lines += ["", f"Seed-to-seed spread of top-1: {', '.join(spreads)}."]
    lines += [
        "",
        f"Latency: median of {LATENCY_RUNS} batch-1 runs after 20 warm-up runs, {result['machine']}.",
        "",
    ]
    return "\n".join(lines)


def card(name: str, run: str, row: dict, command: str) -> str:
    kind = "distilled from models/flowers_float.keras" if run.startswith("kd") else "trained from scratch"
    return "\n".join(
        [
            f"# {name}",
            "",
            f"Flowers5 student, {STUDENT['model']} width {STUDENT['width']} at {STUDENT['image_size']} px "
            f"(RGB 0..255 in, 5 logits out), {kind}; float32 `.tflite`, builtin ops only.",
            "",
            "## How it was made",
            "",
            "```",
            "nice -n 5 .venv/bin/python scripts/train_flowers_students.py --runs scratch --seeds 0",
            "nice -n 5 .venv/bin/python scripts/train_flowers_students.py --runs kd --seeds 0",
            ".venv/bin/python scripts/train_flowers_students.py --runs none --ship",
            "```",
            "",
            f"Equivalent CLI: `{command}`.",
            f"Recipe: {EPOCHS} epochs, batch 64, SGD Nesterov 0.9, lr 0.1 with 3 warm-up epochs and cosine decay, "
            "weight decay 5e-4, label smoothing 0.1, random-resized crop + flip + colour jitter, "
            f"mixup {STUDENT['mixup']}, best validation weights kept, seed 0."
            + (f" Soft targets at T = {TEMPERATURE}, label weight alpha = {ALPHA}." if run.startswith("kd") else ""),
            "",
            "## Measured (`.venv/bin/python benchmarks/distill.py --cards --force`)",
            "",
            f"- top-1 on flowers5 test.txt through the runtime: {100 * row['top1']:.2f}% ({row['test_images']} images)",
            f"- bytes: {row['bytes']:,}",
            f"- latency, batch 1, median: {row['latency_ms_1_thread']:.3f} ms at 1 thread, "
            f"{row['latency_ms_2_threads']:.3f} ms at 2 threads",
            f"- top-1 agreement with the teacher: {100 * row['agreement_with_teacher']:.1f}%",
            "",
            "Scratch vs distilled over two seeds: `benchmarks/results/distill.md`.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="models/flowers_float.keras", help="the teacher .keras used by the runs")
    parser.add_argument("--data", help="data folder (default: flowers5)")
    parser.add_argument("--cards", action="store_true", help="also write the cards of the shipped students")
    parser.add_argument(
        "--other-teachers",
        nargs="+",
        default=[],
        help="more teacher .keras files for the soft-target table (e.g. one whose students are still training)",
    )
    parser.add_argument("--width", type=int, default=STUDENT["width"], help="student width of the runs measured")
    parser.add_argument("--force", action="store_true", help="overwrite result files")
    parser.add_argument("--markdown-only", action="store_true", help="re-render the .md from the saved .json")
    args = parser.parse_args()
    missing = [path for path in (args.teacher, *args.other_teachers) if not (ROOT / path).is_file()]
    if missing and not args.markdown_only:
        parser.error(f"teacher file not found: {', '.join(missing)}")
    stem, work = results_stem(args.width), work_dir(args.width)
    if args.markdown_only:
        saved = json.loads((RESULTS / f"{stem}.json").read_text())
        write_text_atomic(RESULTS / f"{stem}.md", markdown(saved), args.force)
        print(markdown(saved))
        return
    import platform

    import tensorflow as tf

    teacher_path = ROOT / args.teacher
    teacher = measure(tflite_for(teacher_path, work), args.data, None)
    teacher["source"] = args.teacher
    result = {
        "machine": f"{platform.machine()} {tf.config.threading.get_intra_op_parallelism_threads() or 'default'} "
        f"intra-op threads, shared 2-core CPU",
        "student": student_settings(args.width),
        "teacher": teacher,
        "scratch": [],
        "distilled": [],
    }
    # Ablations: runs with other settings or teachers (``scratch_run_name``, ``distilled_run_name``).
    kinds = [("scratch", "scratch"), ("distilled", "kd"), *ablation_kinds(ROOT / work)]
    result["ablations"] = [kind for kind, _ in kinds[2:]]
    result["ablation_teachers"] = {}
    for kind, prefix in kinds[2:]:
        if not prefix.startswith("kd_"):
            continue
        other = other_teacher(work, prefix, args.teacher)
        if other is not None:
            result["ablation_teachers"][kind] = teacher_figures(other, work, args.data)
    result["other_teachers"] = []
    for source in args.other_teachers:
        if source in {t["source"] for t in result["ablation_teachers"].values()}:
            continue
        result["other_teachers"].append(teacher_figures(source, work, args.data))
    for kind, prefix in kinds:
        result.setdefault(kind, [])
        for seed in SEEDS:
            keras_path = ROOT / work / f"{prefix}_s{seed}.keras"
            if not keras_path.exists():
                print(f"missing {keras_path}; run scripts/train_flowers_students.py first")
                continue
            row = measure(tflite_for(keras_path, work), args.data, teacher["logits"])
            row["seed"] = seed
            result[kind].append(row)
            print(f"{kind} seed {seed}: top-1 {100 * row['top1']:.2f}%")
    if result["scratch"] and result["distilled"]:
        gain = _mean(result["distilled"], "top1") - _mean(result["scratch"], "top1")
        result["summary"] = {
            "scratch_top1_mean": _mean(result["scratch"], "top1"),
            "distilled_top1_mean": _mean(result["distilled"], "top1"),
            "gain_points": gain,
            "goal_met": gain >= 0.02,
        }
    teacher_logits = teacher["logits"]
    teacher["soft_targets_by_split"] = teacher_soft_targets(tflite_for(teacher_path, work), args.data)
    mixups = (0.0, STUDENT["mixup"], *ablation_mixups(result["ablations"]))
    teacher["transfer_set_gaps"] = transfer_set_gaps(tflite_for(teacher_path, work), args.data, mixups)
    teacher["soft_targets"] = {
        f"T={t:g}": {
            "mean_max_probability": float(_softmax(teacher_logits / t).max(axis=1).mean()),
            "mean_entropy_nats": float(
                -(_softmax(teacher_logits / t) * np.log(_softmax(teacher_logits / t))).sum(1).mean()
            ),
        }
        for t in (1.0, 2.0, TEMPERATURE)
    }
    for row in [teacher, *(row for kind, _ in kinds for row in result[kind])]:
        row.pop("logits")
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text_atomic(RESULTS / f"{stem}.json", json.dumps(result, indent=2) + "\n", args.force)
    if "summary" in result:
        write_text_atomic(RESULTS / f"{stem}.md", markdown(result), args.force)
        print(markdown(result))
    if args.cards:
        commands = {
            "scratch_s0": f"tfcompress train --model resnet8 --width 16 --image-size {STUDENT['image_size']} --epochs "
            f"{EPOCHS} --mixup {STUDENT['mixup']} --seed 0 -o flowers_student.keras",
            "kd_s0": "tfcompress distill --teacher models/flowers_float.keras --student resnet8 --width 16 "
            f"--image-size {STUDENT['image_size']} --epochs {EPOCHS} --mixup {STUDENT['mixup']} "
            f"--temperature {TEMPERATURE} --alpha {ALPHA} --teacher-precision {TEACHER_PRECISION} --seed 0 "
            "-o flowers_student_kd.keras",
        }
        for run, name in SHIPPED.items():
            shipped = ROOT / "models" / f"{name}.tflite"
            row = measure(shipped, args.data, teacher_logits)
            row.pop("logits")
            write_text_atomic(ROOT / "models" / f"{name}.md", card(name, run, row, commands[run]), args.force)
            print(f"wrote models/{name}.md")


if __name__ == "__main__":
    main()
