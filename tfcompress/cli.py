"""The ``tfcompress`` command: one subcommand per stage, each a thin call of the Python API.

Each provider module in :data:`COMMAND_PROVIDERS` has ``add_commands(subparsers)``, which
adds its subcommands and sets ``handler`` (a function of the parsed arguments) on each.
Providers import nothing heavy at module level (TensorFlow and Keras are imported by the
handlers), so ``--help`` starts at once. Every subcommand's ``--help`` shows the defaults.
A :class:`tfcompress.errors.TfcompressError` is printed as one line and exits with 2.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import sys
from collections.abc import Sequence

from tfcompress import __version__
from tfcompress.errors import TfcompressError

COMMAND_PROVIDERS = (
    "tfcompress.commands.core",
    "tfcompress.commands.compress",
    "tfcompress.commands.pq",
    "tfcompress.commands.distill",
    "tfcompress.commands.summary",
    "tfcompress.commands.lowrank",
    "tfcompress.commands.pruning",
)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after every option's help, also an option without help text.

    Left out where it would say nothing: on-off flags (``store_true`` / ``store_false``),
    options without a default (``None``), and options whose help already states the default.
    """

    @staticmethod
    def shows_default(action: argparse.Action) -> bool:
        """Whether ``action``'s help gets its default appended."""
        flag = isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction)
        unset = action.default is None or action.default is argparse.SUPPRESS
        return bool(action.option_strings) and not flag and not unset and "(default" not in (action.help or "")

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and self.shows_default(action):
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        return super()._get_help_string(action) if self.shows_default(action) else action.help or ""


class CommandParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose help shows the defaults (:class:`DefaultsHelpFormatter`)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every provider's subcommands."""
    parser = CommandParser(prog="tfcompress", description="Compress Keras 3 models and ship them as TFLite.")
    parser.add_argument("--version", action="version", version=f"tfcompress {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for provider in COMMAND_PROVIDERS:
        importlib.import_module(provider).add_commands(subparsers)
    return parser


def show_warning_in_our_voice(command: str):
    """A ``warnings.showwarning`` that prints the kit's own warnings as ``tfcompress CMD: warning: ...`` on one line.

    Warnings raised inside ``tfcompress`` are messages to the user, not source locations: no path, no code
    line. Other libraries' warnings keep Python's format.
    """
    import warnings

    default = warnings.showwarning
    package = os.path.dirname(os.path.abspath(__file__))

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if not os.path.abspath(filename).startswith(package):
            default(message, category, filename, lineno, file, line)
            return
        print(f"tfcompress {command}: warning: {' '.join(str(message).split())}", file=file or sys.stderr, flush=True)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    previous_show = warnings.showwarning
    warnings.showwarning = show_warning_in_our_voice(args.command)
    args.command_line = ["tfcompress", *(sys.argv[1:] if argv is None else argv)]  # recorded in model cards
    try:
        if hasattr(args, "check_options"):  # a mistake is reported before any cluster is joined
            args.check_options(args)
        if hasattr(args, "workers"):  # before the handler runs any TensorFlow op
            from tfcompress.commands.core import start_workers

            start_workers(args)
        args.handler(args)
    except TfcompressError as error:
        print(f"tfcompress {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tfcompress {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous_show
    return 0


if __name__ == "__main__":
    sys.exit(main())
