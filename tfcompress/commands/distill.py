"""The ``distill`` subcommand: train a zoo student from a teacher with Hinton soft targets."""

from __future__ import annotations

import argparse

from tfcompress.commands.core import (
    add_data_argument,
    add_device_arguments,
    add_output_arguments,
    add_recipe_arguments,
    recipe_options,
    report_written,
)


def _attention_pair(value: str) -> tuple[str, str]:
    teacher, _, student = value.partition(":")
    return teacher, student or teacher


def _distill(args: argparse.Namespace) -> None:
    from pathlib import Path

    from tfcompress.distill import DistillConfig, distill

    config = DistillConfig(
        model=args.student,
        width=args.width,
        temperature=args.temperature,
        alpha=args.alpha,
        teacher_precision=args.teacher_precision,
        **recipe_options(args),
    )
    student = None
    if args.student.endswith(".keras"):
        from tfcompress.convert import load_keras_model

        student = load_keras_model(args.student)
        config.model = Path(args.student).stem
    train, attention = distill, args.attention or None
    if args.real_to_binary:
        from tfcompress.binary.real_to_binary import real_to_binary as train

        attention = args.attention or "auto"
    train(
        args.output,
        args.teacher,
        args.data,
        config,
        student=student,
        attention_pairs=attention,
        devices=args.devices,
        backup_dir=args.backup_dir,
        force=args.force,
        limit=args.limit,
    )
    report_written(args, f"wrote {args.output}")


def add_commands(subparsers) -> None:
    """Add ``distill``."""
    parser = subparsers.add_parser("distill", help="train a student from a teacher (Hinton soft targets)")
    parser.add_argument("--teacher", required=True, metavar="T.keras", help="the trained teacher")
    parser.add_argument(
        "--student", default="mobilenet_v2", help="zoo model (mobilenet_v2, resnet8, ...) or a .keras student"
    )
    parser.add_argument(
        "--width",
        type=float,
        default=0.35,
        help="width multiplier (MobileNetV2) or base width (efficientnet_lite0 has a fixed width)",
    )
    add_recipe_arguments(parser)
    parser.add_argument("--temperature", type=float, default=4.0, help="softmax temperature T of the soft targets")
    parser.add_argument(
        "--alpha", type=float, default=0.1, help="weight of the label loss; 1 - alpha weighs the soft targets"
    )
    parser.add_argument(
        "--teacher-precision",
        choices=("float32", "mixed_bfloat16"),
        default="float32",
        help="mixed_bfloat16: run the teacher in bfloat16 (faster on CPUs with AVX512-BF16; logits stay float32)",
    )
    parser.add_argument(
        "--attention",
        type=_attention_pair,
        action="append",
        metavar="TEACHER_LAYER[:STUDENT_LAYER]",
        help="add an attention-transfer term between two layers of equal spatial size (repeatable)",
    )
    parser.add_argument(
        "--real-to-binary",
        action="store_true",
        help="binary student: train in two stages of --epochs each, binary activations with real weights, then "
        "binary weights from there (Martinez et al. 2020); without --attention, attention maps are matched at every "
        "resolution the two share; stage 1's model is kept in --backup-dir",
    )
    add_device_arguments(parser)
    parser.add_argument("--backup-dir", help="keep resumable state here (resume by running the same command again)")
    parser.add_argument("--limit", type=int, help="use only this many images per split (quick runs)")
    add_data_argument(parser)
    add_output_arguments(parser, ".keras")
    parser.set_defaults(handler=_distill)
