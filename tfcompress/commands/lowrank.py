"""The ``factorize`` subcommand: low-rank factorization with a rank rule or a target, then a finetune."""

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


def _rank(value: str) -> int | tuple[int, int]:
    parts = [p for p in value.split(",") if p.strip()]
    try:
        numbers = [int(p) for p in parts]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"a rank is an integer or a pair like 16,32, got {value!r}") from error
    if len(numbers) == 1:
        return numbers[0]
    if len(numbers) == 2:
        return numbers[0], numbers[1]
    raise argparse.ArgumentTypeError(f"a rank is an integer or a pair like 16,32, got {value!r}")


def _rule(args: argparse.Namespace) -> dict:
    targets = [(m, r) for m, r in (("macs", args.target_macs), ("params", args.target_params)) if r is not None]
    if args.target_latency is not None:
        targets.append(("latency", args.target_latency))
    if args.vbmf:
        return {"rank": "vbmf"}
    if args.rank is not None:
        return {"rank": args.rank}
    if args.energy is not None:
        return {"energy": args.energy}
    if targets:
        from tfcompress.lowrank import Target

        return {"target": Target(*targets[0])}
    raise TfcompressError(
        "give a rank rule: --rank, --energy, --vbmf, --target-macs, --target-params or --target-latency"
    )


def _teacher(args: argparse.Namespace, model):
    """The finetune's soft-target teacher: ``--teacher`` when given, the input model with ``--distill``, else none."""
    if args.teacher is not None:
        return teacher_option(args)
    return model if args.distill else None


def _factorize(args: argparse.Namespace) -> None:
    from tfcompress.convert import load_keras_model
    from tfcompress.distribute import is_chief
    from tfcompress.fileio import atomic_output, check_output_path
    from tfcompress.lowrank import apply_plan, choose_plan, finetune, model_macs, top1_evaluator

    check_output_path(args.output, args.force)
    model = load_keras_model(args.model)
    rule = _rule(args)
    evaluate = None
    if "target" in rule and args.eval_images > 0:
        evaluate = top1_evaluator(args.data, int(model.inputs[0].shape[1]), args.eval_images)
    plan = choose_plan(
        model,
        args.method,
        **rule,
        evaluate=evaluate,
        layers=args.layers.split(",") if args.layers else None,
        tucker_iterations=args.tucker_iterations,
        cp_iterations=args.cp_iterations,
        rank_multiple=args.rank_multiple,
        threads=args.threads,
        verbose=1,
    )
    print(plan.summary())
    factorized = apply_plan(model, plan, verbose=1)
    before, after = model_macs(model), model_macs(factorized)
    print(
        f"MACs {before:,} -> {after:,} ({after / before:.3f}); "
        f"params {model.count_params():,} -> {factorized.count_params():,} "
        f"({factorized.count_params() / model.count_params():.3f})"
    )
    if args.epochs > 0:
        finetune(
            factorized,
            args.output,
            args.data,
            epochs=args.epochs,
            learning_rate=args.learning_rate,
            batch_size=args.batch_size,
            teacher=_teacher(args, model),
            devices=args.devices,
            backup_dir=args.backup_dir,
            force=args.force,
            limit=args.limit,
        )
    elif is_chief(args.devices):
        with atomic_output(args.output, args.force) as tmp:
            factorized.save(tmp)
    report_written(args, f"wrote {args.output}")


def add_commands(subparsers) -> None:
    """Add ``factorize`` (without importing Keras: ``--method`` is checked by the library)."""
    parser = subparsers.add_parser("factorize", help="low-rank factorization (SVD, spatial SVD, Tucker-2, CP)")
    parser.add_argument("model", metavar="IN.keras")
    parser.add_argument(
        "--method", default="tucker2", help="how kxk convs are factored: svd, spatial_svd, tucker2 or cp"
    )
    rule = parser.add_mutually_exclusive_group()
    rule.add_argument("--rank", type=_rank, help="one rank for every layer (Tucker-2: R or R_IN,R_OUT)")
    rule.add_argument("--energy", type=float, help="keep this fraction of each layer's spectral energy")
    rule.add_argument("--vbmf", action="store_true", help="ranks by EVBMF (Kim et al. 2016)")
    rule.add_argument("--target-macs", type=float, metavar="RATIO", help="keep this fraction of the MACs")
    rule.add_argument("--target-params", type=float, metavar="RATIO", help="keep this fraction of the parameters")
    rule.add_argument(
        "--target-latency", type=float, metavar="RATIO", help="keep this fraction of the TFLite latency (measured)"
    )
    parser.add_argument("--layers", help="comma-separated layer names to consider (default: all Dense/Conv2D)")
    parser.add_argument(
        "--eval-images", type=int, default=200, help="validation images scoring each candidate (0: data-free proxy)"
    )
    parser.add_argument("--rank-multiple", type=int, default=8, help="round searched ranks up to this multiple")
    parser.add_argument("--threads", type=int, default=1, help="TFLite threads for --target-latency")
    parser.add_argument("--tucker-iterations", type=int, default=0, help="HOOI sweeps after the HOSVD init")
    parser.add_argument("--cp-iterations", type=int, default=100, help="CP-ALS iterations")
    parser.add_argument("--epochs", type=int, default=3, help="finetuning epochs (0: no finetune)")
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--distill", action="store_true", help="finetune with soft targets from the input model")
    parser.add_argument("--teacher", metavar="T.keras", help="distil from this model instead (implies --distill)")
    add_device_arguments(parser)
    parser.add_argument("--backup-dir", help="keep resumable finetune state here")
    parser.add_argument("--limit", type=int, help="use only this many images per split (quick runs)")
    add_data_argument(parser)
    add_output_arguments(parser, ".keras")
    parser.set_defaults(handler=_factorize)
