"""The command line a model script was run with, as its model card records it."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

# Options that change what is (re)written, not what is made.
NOT_RECORDED = ("--force", "--card-only")


def invoked_command(script: str | Path, argv: list[str] | None = None) -> str:
    """``nice -n 5 .venv/bin/python scripts/NAME.py ARGS`` with the arguments actually given.

    Args:
        script: the script's path, written relative to the repository root.
        argv: the arguments (default ``sys.argv[1:]``); ``--force`` and ``--card-only`` are left out
            so that the recorded command makes the same model again.
    """
    argv = sys.argv[1:] if argv is None else argv
    kept = [arg for arg in argv if arg not in NOT_RECORDED]
    return " ".join(["nice -n 5 .venv/bin/python", str(script), *(shlex.quote(arg) for arg in kept)])
