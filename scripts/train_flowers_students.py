"""Train the flowers students of the distillation benchmark, and ship the seed-0 pair.

Four runs of the same student (ResNet-8, width 16, 96 px) with the same recipe, epochs and
augmentation (:mod:`tfcompress.training`; 60 epochs, mixup 0.2: a distilled student gets the
teacher's soft targets for the very mixed image it sees): two from scratch (seeds 0 and 1) and two
distilled from the float teacher ``models/flowers_float.keras`` (seeds 0 and 1,
temperature 4, hard-loss weight alpha 0.1,
:func:`tfcompress.distill.distill`; a teacher of another input size would see the batch at its
own size and the student the same batch resized, :func:`tfcompress.distill.fit.resized_input`). Each run
writes ``models/.work/distill/<run>.keras`` and is skipped when that file exists; an
interrupted run resumes from ``models/.work/distill/<run>_backup``. Run it again to resume.

    nice -n 5 .venv/bin/python scripts/train_flowers_students.py --runs scratch
    nice -n 5 .venv/bin/python scripts/train_flowers_students.py --runs kd [--teacher T.keras]
    .venv/bin/python scripts/train_flowers_students.py --ship   # seed 0 -> models/flowers_student{,_kd}.*

Ablations (measured by ``benchmarks/distill.py``, never shipped): ``--width 8`` trains the same
student narrower, in ``models/.work/distill/w8``; ``--teacher T.keras``, ``--temperature`` or
``--alpha`` give distilled runs named by what differs (``kd_<teacher stem>_T<T>_a<alpha>_s<seed>``);
``--mixup A`` trains both kinds with another mixup strength (``scratch_mix<A>_s<seed>``,
``kd_mix<A>_s<seed>``): with strong mixup the teacher's targets on the mixed images differ from the
mixed labels, the "consistent, patient teacher" of Beyer et al. 2022.

The student was picked by measured training throughput on the shared 2-core machine
(batch 64, 96 px, busy cores): ResNet-8 w16 0.18 s/step, MobileNetV2 x0.35 0.42 s/step,
ResNet-8 w32 0.51 s/step; a teacher forward pass costs another 0.28 s/step.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

WORK = Path("models/.work/distill")
TEACHER = Path("models/flowers_float.keras")
STUDENT = {"model": "resnet8", "width": 16, "image_size": 96, "mixup": 0.2}
EPOCHS = 60
TEMPERATURE = 4.0
ALPHA = 0.1
SEEDS = (0, 1)
TEACHER_PRECISION = "float32"  # as the shipped students were made (bfloat16 pays only on CPUs with AVX512-BF16)
SHIPPED = {"scratch_s0": "flowers_student", "kd_s0": "flowers_student_kd"}


def student_settings(width: int = STUDENT["width"], mixup: float = STUDENT["mixup"]) -> dict:
    """The student of the benchmark, at another width or mixup strength when given (same model and image size)."""
    return {**STUDENT, "width": width, "mixup": mixup}


def mixup_part(mixup: float) -> list[str]:
    """``["mix<m>"]`` in a run name when the mixup strength differs from the benchmark's, else nothing."""
    return [] if mixup == STUDENT["mixup"] else [f"mix{mixup:g}"]


def scratch_run_name(seed: int, mixup: float = STUDENT["mixup"]) -> str:
    """``scratch_s<seed>`` for the benchmark's recipe, ``scratch_mix<m>_s<seed>`` for another mixup strength."""
    return "_".join(["scratch", *mixup_part(mixup), f"s{seed}"])


def work_dir(width: int = STUDENT["width"]) -> Path:
    """Where the runs of a student width live: ``WORK`` for the benchmark's width, ``WORK/w<width>`` otherwise."""
    return WORK if width == STUDENT["width"] else WORK / f"w{width}"


def run_scratch(seed: int, width: int = STUDENT["width"], mixup: float = STUDENT["mixup"]) -> None:
    """One from-scratch student: exactly ``tfcompress train`` with the student's settings."""
    from tfcompress.training import TrainConfig, train

    work = work_dir(width)
    name = scratch_run_name(seed, mixup)
    output = work / f"{name}.keras"
    if output.exists():
        print(f"{output} exists, skipping")
        return
    config = TrainConfig(**student_settings(width, mixup), epochs=EPOCHS, seed=seed)
    train(output, config=config, backup_dir=work / f"{name}_backup", verbose=2)


def distilled_run_name(
    seed: int,
    temperature: float = TEMPERATURE,
    alpha: float = ALPHA,
    teacher: Path = TEACHER,
    mixup: float = STUDENT["mixup"],
) -> str:
    """``kd_s<seed>`` for the benchmark's settings; an ablation names what differs.

    ``kd_T<T>_a<alpha>_s<seed>`` for other soft-target settings, ``kd_<teacher stem>_s<seed>`` for
    another teacher, ``kd_mix<m>_s<seed>`` for another mixup strength (parts in that order when
    several differ).
    """
    parts = ["kd"]
    if Path(teacher) != TEACHER:
        parts.append(Path(teacher).stem)
    if (temperature, alpha) != (TEMPERATURE, ALPHA):
        parts.append(f"T{temperature:g}_a{alpha:g}")
    return "_".join([*parts, *mixup_part(mixup), f"s{seed}"])


def run_distilled(
    seed: int,
    teacher: Path,
    temperature: float = TEMPERATURE,
    alpha: float = ALPHA,
    width: int = STUDENT["width"],
    mixup: float = STUDENT["mixup"],
) -> None:
    """One distilled student: the same recipe plus Hinton soft targets from the teacher."""
    from tfcompress.distill import DistillConfig, distill

    work = work_dir(width)
    name = distilled_run_name(seed, temperature, alpha, teacher, mixup)
    output = work / f"{name}.keras"
    if output.exists():
        print(f"{output} exists, skipping")
        return
    (work / f"{name}.teacher").write_text(f"{teacher}\n")
    config = DistillConfig(
        **student_settings(width, mixup),
        epochs=EPOCHS,
        seed=seed,
        temperature=temperature,
        alpha=alpha,
        teacher_precision=TEACHER_PRECISION,
    )
    distill(output, teacher, config=config, backup_dir=work / f"{name}_backup", verbose=2)


def ship(force: bool) -> None:
    """Copy the seed-0 students to ``models/`` as ``.keras`` and convert them to ``.tflite``."""
    from tfcompress.convert import convert
    from tfcompress.fileio import check_output_path

    for run, name in SHIPPED.items():
        source = WORK / f"{run}.keras"
        keras_target = check_output_path(Path("models") / f"{name}.keras", force)
        shutil.copyfile(source, keras_target)
        path = convert(keras_target, Path("models") / f"{name}.tflite", force=force)
        print(f"wrote {keras_target} and {path} ({path.stat().st_size:,} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", choices=["scratch", "kd", "all", "none"], default="all")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--teacher", type=Path, default=TEACHER, help="teacher of the distilled runs")
    parser.add_argument("--temperature", type=float, default=TEMPERATURE, help="of the distilled runs (ablation)")
    parser.add_argument("--alpha", type=float, default=ALPHA, help="label weight of the distilled runs (ablation)")
    parser.add_argument(
        "--width", type=int, default=STUDENT["width"], help="student width (runs of another width go to WORK/w<width>)"
    )
    parser.add_argument(
        "--mixup",
        type=float,
        default=STUDENT["mixup"],
        help="mixup Beta(a, a) strength of both kinds of runs (ablation; runs named *_mix<a>_*)",
    )
    parser.add_argument("--ship", action="store_true", help="copy + convert the seed-0 students into models/")
    parser.add_argument("--force", action="store_true", help="overwrite shipped files")
    args = parser.parse_args()
    if args.ship and (args.width, args.mixup) != (STUDENT["width"], STUDENT["mixup"]):
        parser.error(f"--ship ships the benchmark's students (width {STUDENT['width']}, mixup {STUDENT['mixup']:g})")
    if args.mixup < 0:
        parser.error(f"--mixup must be >= 0, got {args.mixup:g}")
    work_dir(args.width).mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        if args.runs in ("scratch", "all"):
            run_scratch(seed, args.width, args.mixup)
    for seed in args.seeds:
        if args.runs in ("kd", "all"):
            run_distilled(seed, args.teacher, args.temperature, args.alpha, args.width, args.mixup)
    if args.ship:
        ship(args.force)


if __name__ == "__main__":
    main()
