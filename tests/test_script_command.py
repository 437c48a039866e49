"""scripts/script_command.py: model cards record the command that makes the model again."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from script_command import invoked_command


def test_recorded_command_keeps_every_argument_but_force_and_quotes_spaces():
    command = invoked_command(
        "scripts/make_flowers_lowrank.py", ["--epochs", "3", "--force", "--work", "a b", "--card-only"]
    )
    assert command == "nice -n 5 .venv/bin/python scripts/make_flowers_lowrank.py --epochs 3 --work 'a b'"
    assert shlex.split(command)[5:] == ["--epochs", "3", "--work", "a b"]
