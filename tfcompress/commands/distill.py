"""The ``distill`` subcommand: train a zoo student from a teacher with Hinton soft targets."""

from __future__ import annotations

import argparse

from tfcompress.commands.core import _devices, add_data_argument, add_output_arguments


def _attention_pair(value: str) -> tuple[str, str]:
    teacher, _, student = value.partition(":")
    return teacher, student or teacher


def _distill(args: argparse.Namespace) -> None:
    from pathlib import Path

    from tfcompress.distill import DistillConfig, distill

    config = DistillConfig(
        model=args.student,
        width=args.width,
        image_size=args.image_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        mixup=args.mixup,
        label_smoothing=args.label_smoothing,
        temperature=args.temperature,
        alpha=args.alpha,
    )
    student = None
    if args.student.endswith(".keras"):
        from tfcompress.convert import load_keras_model

        student = load_keras_model(args.student)
        config.model = Path(args.student).stem
    distill(
        args.output,
        args.teacher,
        args.data,
        config,
        student=student,
        attention_pairs=args.attention or None,
        devices=args.devices,
        backup_dir=args.backup_dir,
        force=args.force,
        limit=args.limit,
    )
    print(f"wrote {args.output}")


def add_commands(subparsers) -> None:
    """Add ``distill``."""
    parser = subparsers.add_parser("distill", help="train a student from a teacher (Hinton soft targets)")
    parser.add_argument("--teacher", required=True, metavar="T.keras", help="the trained teacher")
    parser.add_argument(
        "--student", default="mobilenet_v2", help="zoo model (mobilenet_v2, resnet8, ...) or a .keras student"
    )
    parser.add_argument("--width", type=float, default=0.35, help="width multiplier (MobileNetV2) or base width")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--label-smoothing", type=float, default=0.1, help="label smoothing of the cross-entropy (0: none)"
    )
    parser.add_argument(
        "--mixup", type=float, default=0.0, help="mixup Beta(a, a) parameter a; 0 turns mixup off (Zhang et al. 2018)"
    )
    parser.add_argument("--temperature", type=float, default=4.0, help="softmax temperature T of the soft targets")
    parser.add_argument(
        "--alpha", type=float, default=0.1, help="weight of the label loss; 1 - alpha weighs the soft targets"
    )
    parser.add_argument(
        "--attention",
        type=_attention_pair,
        action="append",
        metavar="TEACHER_LAYER[:STUDENT_LAYER]",
        help="add an attention-transfer term between two layers of equal spatial size (repeatable)",
    )
    parser.add_argument("--devices", type=_devices, help="N devices (MirroredStrategy) or a list like /cpu:0,/cpu:1")
    parser.add_argument("--backup-dir", help="keep resumable state here (resume by running the same command again)")
    parser.add_argument("--limit", type=int, help="use only this many images per split (quick runs)")
    add_data_argument(parser)
    add_output_arguments(parser, ".keras")
    parser.set_defaults(handler=_distill)
