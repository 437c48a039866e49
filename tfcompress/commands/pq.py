"""``tfcompress pq``: product quantization ("And the Bit Goes Down") of a ``.keras`` model."""

from __future__ import annotations

import argparse

from tfcompress.commands.core import _devices, add_data_argument, add_output_arguments, teacher_option


def _block_sizes(value: str) -> str | int:
    return int(value) if value.isdigit() else value


def _pq(args: argparse.Namespace) -> None:
    from tfcompress.convert import load_keras_model
    from tfcompress.data import load_split
    from tfcompress.distribute import get_strategy
    from tfcompress.fileio import atomic_output, check_output_path
    from tfcompress.pq import ProductQuantizer, size_report
    from tfcompress.skipped import describe_skipped

    check_output_path(args.output, args.force)
    strategy = get_strategy(args.devices)
    with strategy.scope():
        model = load_keras_model(args.model)
        teacher = teacher_option(args)
    size = model.inputs[0].shape[1]
    images = load_split(args.data, "train", size, limit=args.calibration_images).images
    quantizer = ProductQuantizer(
        model,
        images,
        teacher=teacher,
        block_sizes=args.block_size,
        n_centroids=args.centroids,
        n_centroids_dense=args.centroids_dense,
        skip=args.skip,
        quantize_first_layer=args.first_layer,
        activation_aware=not args.plain_kmeans,
        em_iterations=args.em_iterations,
        layer_steps=args.layer_steps,
        global_steps=args.global_steps,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        augment=not args.no_augment,
        strategy=strategy,
        seed=args.seed,
    )
    student = quantizer.run()
    with atomic_output(args.output, args.force) as tmp:
        student.save(tmp)
    report = size_report(student)
    print(report.markdown())
    em_seconds = sum(r.em_seconds for r in quantizer.records)
    print(f"EM time {em_seconds:.2f} s over {len(quantizer.records)} layers")
    if quantizer.skipped:
        print(describe_skipped(quantizer.skipped, "left float: "))
    print(f"wrote {args.output} ({report.compressed_bytes:,.0f} bytes by the paper's count, {report.compression:.1f}x)")


def add_commands(subparsers) -> None:
    """Add ``pq``."""
    pq = subparsers.add_parser("pq", help="product-quantize conv/dense kernels (And the Bit Goes Down)")
    pq.add_argument("model", metavar="IN.keras")
    add_data_argument(pq)
    pq.add_argument("--teacher", metavar="TEACHER.keras", help="distil from this model (default: IN.keras)")
    pq.add_argument(
        "--block-size",
        type=_block_sizes,
        default="small",
        help="small (3x3: d=9, 1x1/dense: 4), large (3x3: 18, 1x1: 8, dense: 4), or one integer",
    )
    pq.add_argument("--centroids", type=int, default=256, help="k for conv layers (capped at subvectors/4)")
    pq.add_argument("--centroids-dense", type=int, default=2048, help="k for dense layers (capped likewise)")
    pq.add_argument("--skip", nargs="*", default=[], metavar="LAYER", help="layer names to leave float")
    pq.add_argument("--first-layer", action="store_true", help="also quantize the first conv/dense layer")
    pq.add_argument("--plain-kmeans", action="store_true", help="ignore activations (plain k-means, for comparison)")
    pq.add_argument("--em-iterations", type=int, default=30)
    pq.add_argument("--calibration-images", type=int, default=512, help="training images used (no labels needed)")
    pq.add_argument("--layer-steps", type=int, default=100, help="codebook finetune steps after each layer")
    pq.add_argument("--global-steps", type=int, default=400, help="final finetune steps of all codebooks")
    pq.add_argument("--learning-rate", type=float, default=1e-4)
    pq.add_argument("--batch-size", type=int, default=32)
    pq.add_argument("--no-augment", action="store_true", help="finetune on the images without augmentation")
    pq.add_argument("--seed", type=int, default=0)
    pq.add_argument("--devices", type=_devices, help="N devices (MirroredStrategy) or a list like /cpu:0,/cpu:1")
    add_output_arguments(pq, ".keras")
    pq.set_defaults(handler=_pq)
