"""Subcommands of the binary networks: ``summary``."""

from __future__ import annotations

import argparse
import json


def _summary(args: argparse.Namespace) -> None:
    import tfcompress.binary  # noqa: F401  (registers the binary layers before loading)
    from tfcompress.binary.summary import summary
    from tfcompress.convert import load_keras_model

    result = summary(load_keras_model(args.model))
    if args.json:
        from tfcompress.fileio import write_text_atomic

        write_text_atomic(args.json, json.dumps(result.as_dict(), indent=1), force=args.force)
        print(f"wrote {args.json}")


def add_commands(subparsers) -> None:
    """Add ``summary``."""
    summary = subparsers.add_parser(
        "summary", help="per-layer bits, parameter memory, MACs and binarized MAC share of a .keras model"
    )
    summary.add_argument("model", metavar="MODEL.keras")
    summary.add_argument("--json", metavar="OUT.json", help="also write the summary as JSON")
    summary.add_argument("--force", action="store_true", help="overwrite the JSON file if it exists")
    summary.set_defaults(handler=_summary)
