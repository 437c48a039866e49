"""``summary``: per-layer bits, memory and MACs of any compressed ``.keras`` model."""

from __future__ import annotations

import argparse
import json


def _summary(args: argparse.Namespace) -> None:
    from tfcompress.convert import load_keras_model
    from tfcompress.summary import summary

    result = summary(load_keras_model(args.model))
    if args.json:
        from tfcompress.fileio import write_text_atomic

        write_text_atomic(args.json, json.dumps(result.as_dict(), indent=1), force=args.force)
        print(f"wrote {args.json}")


def add_commands(subparsers) -> None:
    """Add ``summary``."""
    summary = subparsers.add_parser(
        "summary",
        help="per-layer bits, parameter memory and MACs of a .keras model, with binary, PQ, shared-weight and "
        "sparse kernels counted as the .tflite stores them",
    )
    summary.add_argument("model", metavar="MODEL.keras")
    summary.add_argument("--json", metavar="OUT.json", help="also write the summary as JSON")
    summary.add_argument("--force", action="store_true", help="overwrite the JSON file if it exists")
    summary.set_defaults(handler=_summary)
