"""The ``prune``, ``slim`` and ``share`` subcommands: pruning, Network Slimming, Deep Compression weight sharing."""

from __future__ import annotations

import argparse

from tfcompress.commands.core import (
    add_data_argument,
    add_device_arguments,
    add_output_arguments,
    report_written,
    teacher_option,
)
from tfcompress.errors import TfcompressError


def _granularity(value: str) -> str | tuple[int, int]:
    if value in ("weight", "channel"):
        return value
    parts = value.split(":")
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    raise argparse.ArgumentTypeError(f'granularity is "weight", "channel" or N:M like 2:4, got {value!r}')


def _finetune_config(args: argparse.Namespace):
    from tfcompress.pruning.finetune import FinetuneConfig

    return FinetuneConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        temperature=args.temperature,
        alpha=args.alpha,
    )


def _teacher(args: argparse.Namespace, model):
    """The soft-target teacher: ``--teacher`` when given, else a copy of the input model with ``--distill``."""
    if not args.distill and args.teacher is None:
        return None
    try:
        import tfcompress.distill  # noqa: F401
    except ImportError as error:
        raise TfcompressError("--distill needs tfcompress.distill, which is not installed") from error
    if args.teacher is not None:
        return teacher_option(args)
    from tfcompress.pruning import copy_model

    return copy_model(model)


def _finetune_options(args: argparse.Namespace, model) -> dict:
    """The finetuning keyword arguments every subcommand here passes on (config, teacher, devices, ...)."""
    return {
        "config": _finetune_config(args),
        "teacher": _teacher(args, model),
        "devices": args.devices,
        "backup_dir": args.backup_dir,
        "limit": args.limit,
    }


def _save(model, args: argparse.Namespace, message: str) -> None:
    """Write ``model`` to ``--output`` (on worker 0 only) and print ``message``."""
    from tfcompress.distribute import is_chief
    from tfcompress.fileio import atomic_output

    if is_chief(args.devices):
        with atomic_output(args.output, args.force) as tmp:
            model.save(tmp)
    report_written(args, message)


def _prune(args: argparse.Namespace) -> None:
    from tfcompress.convert import load_keras_model
    from tfcompress.fileio import check_output_path
    from tfcompress.pruning import plan, sparsity
    from tfcompress.pruning.pipeline import prune_and_finetune
    from tfcompress.pruning.schedules import check_sparsity

    check_sparsity(args.sparsity)
    check_output_path(args.output, args.force)
    model = load_keras_model(args.model)
    exclude = args.exclude.split(",") if args.exclude else ()
    skipped = [r for r in plan(model, args.granularity, exclude) if not r.pruned and r.reason != "no weights"]
    if skipped:
        print("left dense: " + ", ".join(f"{r.name} ({r.kind}: {r.reason})" for r in skipped))
    pruned = prune_and_finetune(
        model,
        args.data,
        args.sparsity,
        schedule=args.schedule,
        granularity=args.granularity,
        exclude=exclude,
        allocation=args.allocation,
        **_finetune_options(args, model),
    )
    _save(
        pruned, args, f"wrote {args.output} (sparsity of the pruned kernels {sparsity(pruned, only_pruned=False):.1%})"
    )


def _slim(args: argparse.Namespace) -> None:
    from tfcompress.convert import load_keras_model
    from tfcompress.fileio import check_output_path
    from tfcompress.lowrank.cost import model_macs
    from tfcompress.pruning.pipeline import slim_and_finetune

    if not 0.0 <= args.ratio < 1.0:
        raise TfcompressError(f"--ratio must be in [0, 1), got {args.ratio}")
    check_output_path(args.output, args.force)
    model = load_keras_model(args.model)
    thin, report = slim_and_finetune(
        model,
        args.data,
        args.ratio,
        l1=args.l1,
        penalty_epochs=args.penalty_epochs,
        **_finetune_options(args, model),
    )
    _save(
        thin,
        args,
        f"wrote {args.output}: removed {report.removed_channels} of {report.total_channels} BatchNorm channels "
        f"(|gamma| threshold {report.threshold:.3g}); params {report.params_before:,} -> {thin.count_params():,}, "
        f"MACs {model_macs(model):,} -> {model_macs(thin):,}",
    )


def _share(args: argparse.Namespace) -> None:
    from tfcompress.convert import load_keras_model
    from tfcompress.fileio import check_output_path
    from tfcompress.pruning.layers import deep_compress
    from tfcompress.pruning.trained_quantization import finetune_centroids

    check_output_path(args.output, args.force)
    model = load_keras_model(args.model)
    gap_bits = None if args.gap_bits == "auto" else int(args.gap_bits)
    shared = deep_compress(model, conv_bits=args.conv_bits, dense_bits=args.dense_bits, gap_bits=gap_bits)
    if args.epochs > 0:
        shared = finetune_centroids(shared, args.data, **_finetune_options(args, model))
    _save(
        shared,
        args,
        f"wrote {args.output}: {args.conv_bits}-bit convolutions, {args.dense_bits}-bit dense layers"
        + (f", centroids finetuned {args.epochs} epoch(s)" if args.epochs > 0 else "")
        + "; `tfcompress convert` stores them Huffman-coded",
    )


def _common(parser: argparse.ArgumentParser, epochs: int) -> None:
    parser.add_argument("model", metavar="IN.keras")
    add_data_argument(parser)
    parser.add_argument("--epochs", type=int, default=epochs, help="finetuning epochs")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=0.01, help="initial finetuning rate (cosine decay)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--distill", action="store_true", help="distil from the input model while finetuning")
    parser.add_argument(
        "--teacher",
        metavar="T.keras",
        help="distil from this model instead of the input one (implies --distill; e.g. the float model "
        "when IN.keras is already compressed and is being finetuned further)",
    )
    parser.add_argument("--temperature", type=float, default=4.0, help="soft-target temperature T with --distill")
    parser.add_argument(
        "--alpha", type=float, default=0.5, help="label-loss weight with --distill; 1 - alpha weighs the soft targets"
    )
    add_device_arguments(parser)
    parser.add_argument("--backup-dir", help="keep resumable state here (resume by running the same command again)")
    parser.add_argument("--limit", type=int, help="use only this many images per split (quick runs)")
    add_output_arguments(parser, ".keras")


def add_commands(subparsers) -> None:
    """Add ``prune``, ``slim`` and ``share``."""
    prune = subparsers.add_parser("prune", help="magnitude / N:M / channel pruning on a schedule, then finetune")
    prune.add_argument("--sparsity", type=float, required=True, help="target fraction of zero weights, in [0, 1)")
    prune.add_argument("--schedule", choices=["polynomial", "constant"], default="polynomial")
    prune.add_argument(
        "--allocation",
        choices=["layer", "global"],
        default="layer",
        help="layer: every kernel at --sparsity; global: one magnitude threshold over all kernels",
    )
    prune.add_argument(
        "--granularity", type=_granularity, default="weight", help='"weight" (default), "channel" or N:M like 2:4'
    )
    prune.add_argument("--exclude", help="comma-separated layer names to keep dense")
    _common(prune, epochs=6)
    prune.set_defaults(handler=_prune)

    slim = subparsers.add_parser("slim", help="Network Slimming: remove BatchNorm channels, rebuild thinner, finetune")
    slim.add_argument("--ratio", type=float, required=True, help="fraction of BatchNorm channels to remove, [0, 1)")
    slim.add_argument("--l1", type=float, default=1e-4, help="L1 penalty on BatchNorm gamma in the sparsity phase")
    slim.add_argument(
        "--penalty-epochs",
        type=int,
        default=3,
        help="epochs of sparsity training (L1 on gamma) before slimming; 0 slims by the gammas as they are",
    )
    _common(slim, epochs=6)
    slim.set_defaults(handler=_slim)

    share = subparsers.add_parser(
        "share", help="Deep Compression: k-means weight sharing of a pruned model, then finetune the centroids"
    )
    share.add_argument("--conv-bits", type=int, default=8, help="shared-value index bits of convolutions (1-8)")
    share.add_argument("--dense-bits", type=int, default=5, help="shared-value index bits of dense layers (1-8)")
    share.add_argument(
        "--gap-bits",
        choices=["auto", *map(str, range(9))],
        default="auto",
        help="bits of a relative sparse position before Huffman coding; 0: dense mode (no position stream); "
        "auto (default): the smallest file per kernel",
    )
    _common(share, epochs=2)
    share.set_defaults(handler=_share)
