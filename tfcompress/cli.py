"""The ``tfcompress`` command: one subcommand per stage, each a thin call of the Python API.

Each provider module in :data:`COMMAND_PROVIDERS` has ``add_commands(subparsers)``, which
adds its subcommands and sets ``handler`` (a function of the parsed arguments) on each.
A :class:`tfcompress.errors.TfcompressError` is printed as one line and exits with 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from tfcompress import __version__
from tfcompress.errors import TfcompressError

COMMAND_PROVIDERS = (
    "tfcompress.commands.core",
    "tfcompress.commands.pq",
    "tfcompress.commands.distill",
    "tfcompress.commands.binary",
    "tfcompress.commands.lowrank",
    "tfcompress.commands.pruning",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every provider's subcommands."""
    parser = argparse.ArgumentParser(prog="tfcompress", description="Compress Keras 3 models and ship them as TFLite.")
    parser.add_argument("--version", action="version", version=f"tfcompress {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for provider in COMMAND_PROVIDERS:
        importlib.import_module(provider).add_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except TfcompressError as error:
        print(f"tfcompress {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tfcompress {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
