"""The command line: classify image files, folders or camera frames and print the top-k.

For each image it prints the top-k classes with their softmax scores and the latency of
the interpreter call; at the end, how many images were classified and skipped, the median
latency, and (when an image's folder is named after a class, as in a tfcompress data
folder) the top-1 accuracy. Mistakes print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from flowerpi import __version__
from flowerpi.classifier import RUNTIMES, Classifier
from flowerpi.errors import AppError
from flowerpi.images import collect_images, read_images

PROG = "flowerpi"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Classify flowers with a tfcompress .tflite model (no TensorFlow needed)."
    )
    parser.add_argument("inputs", nargs="*", help="image files and folders (searched recursively)")
    parser.add_argument("--model", required=True, help="the .tflite model")
    parser.add_argument("--labels", help="class names, one a line (default: labels.txt beside the model)")
    parser.add_argument("--list", dest="list_file", help="a file of image paths relative to its folder (test.txt)")
    parser.add_argument("--camera", action="store_true", help="classify picamera2 frames")
    parser.add_argument("--frames", type=int, default=0, help="camera frames to classify (0: until Ctrl-C)")
    parser.add_argument("--limit", type=int, help="classify only the first N images")
    parser.add_argument("--top", type=int, default=3, help="classes printed per image (default 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="interpreter threads")
    parser.add_argument("--runtime", choices=RUNTIMES, help="force a runtime (default: the first installed)")
    parser.add_argument("--ops-library", help="libtfcompress_ops.so (default: $TFCOMPRESS_OPS_LIBRARY, lib/)")
    parser.add_argument(
        "--no-xnnpack",
        dest="xnnpack",
        action="store_false",
        help="TFLite's own kernels for the builtin ops instead of XNNPACK",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object a line instead of text")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return parser


def load_labels(labels: str | None, model: str, classes: int) -> list[str]:
    """Class names from ``labels`` (or ``labels.txt`` beside the model); ``class N`` when there is none.

    Raises:
        AppError: a labels file given on the command line is missing, or the number of
            names differs from the model's outputs.
    """
    path = Path(labels) if labels else Path(model).with_name("labels.txt")
    if not path.is_file():
        if labels:
            raise AppError(f"labels file {path} does not exist")
        return [f"class {i}" for i in range(classes)]
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) != classes:
        raise AppError(f"labels file {path} has {len(names)} names but the model has {classes} outputs")
    return names


def _check_arguments(args: argparse.Namespace) -> None:
    if args.threads < 1:
        raise AppError(f"--threads must be at least 1, got {args.threads}")
    if args.top < 1:
        raise AppError(f"--top must be at least 1, got {args.top}")
    if args.limit is not None and args.limit < 1:
        raise AppError(f"--limit must be at least 1, got {args.limit}")
    if args.camera and (args.inputs or args.list_file):
        raise AppError("give either --camera or image files/folders, not both")


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)


def _frames(args: argparse.Namespace, files: list[Path], classifier: Classifier, skipped: list[str]):
    """``(name, image)`` pairs from the camera, or from ``files`` (unreadable ones go to ``skipped``)."""
    if args.camera:
        from flowerpi.camera import camera_frames

        return camera_frames(classifier.image_size, args.frames)

    def skip(path: Path, error: Exception) -> None:
        skipped.append(str(path))
        _warn(f"skipping unreadable image {path}: {' '.join(str(error).split())}")

    return read_images(files, classifier.image_size, skip)


def _print_prediction(name: str, latency_ms: float, best: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"source": name, "latency_ms": round(latency_ms, 3), "top": best}), flush=True)
    else:
        ranked = "  ".join(f"{b['label']} {b['score']:.3f}" for b in best)
        print(f"{name}  {latency_ms:7.1f} ms  {ranked}", flush=True)


def _print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"summary": summary}), flush=True)
        return
    line = f"classified {summary['classified']} image(s), skipped {summary['skipped']}; median latency "
    line += f"{summary['latency_ms_median']:.1f} ms at {summary['threads']} thread(s)"
    if "top1_of" in summary:
        correct, total = summary["top1_correct"], summary["top1_of"]
        line += f"; top-1 {correct}/{total} = {correct / total:.4f} (folder names as truth)"
    print(line, flush=True)


def run(args: argparse.Namespace) -> int:
    """Classify everything asked for; return the exit status."""
    _check_arguments(args)
    files = [] if args.camera else collect_images(args.inputs, args.list_file)[: args.limit]
    classifier = Classifier(
        args.model, threads=args.threads, runtime=args.runtime, ops_library=args.ops_library, xnnpack=args.xnnpack
    )
    classes = int(np.prod(classifier.output["shape"][1:]))
    labels = load_labels(args.labels, args.model, classes)
    skipped: list[str] = []
    frames = _frames(args, files, classifier, skipped)
    if not args.json:
        ops = f", ops library {classifier.ops_library}" if classifier.ops_library else ""
        taken, nodes = classifier.delegated
        print(
            f"{Path(args.model).name}: {classifier.runtime}, {args.threads} thread(s){ops}; "
            f"delegates took {taken} of {nodes} nodes",
            flush=True,
        )
    latencies, correct, with_truth = [], 0, 0
    try:
        for name, image in frames:
            scores, latency_ms = classifier.scores(image)
            order = np.argsort(-scores, kind="stable")[: min(args.top, classes)]
            latencies.append(latency_ms)
            truth = None if args.camera else Path(name).parent.name
            if truth in labels:
                with_truth += 1
                correct += labels[int(order[0])] == truth
            best = [{"label": labels[i], "index": int(i), "score": round(float(scores[i]), 6)} for i in order]
            _print_prediction(name, latency_ms, best, args.json)
    except KeyboardInterrupt:  # the normal end of an endless --camera run: still print the summary
        print(f"{PROG}: interrupted", file=sys.stderr)
    total = len(latencies) + len(skipped)
    if skipped:
        _warn(f"skipped {len(skipped)} unreadable image(s) of {total}")
    if not latencies:
        raise AppError(f"none of the {total} image(s) could be read")
    summary = {
        "classified": len(latencies),
        "skipped": len(skipped),
        "latency_ms_median": round(float(np.median(latencies)), 3),
        "threads": args.threads,
        "runtime": classifier.runtime,
        "delegated_nodes": f"{classifier.delegated[0]}/{classifier.delegated[1]}",
    }
    if with_truth:
        summary["top1_correct"], summary["top1_of"] = int(correct), with_truth
    _print_summary(summary, args.json)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run; a :class:`AppError` becomes one line on stderr and status 2."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except AppError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
