"""``--help``: every default shown, and no TensorFlow or Keras imported to print it."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from tfcompress.cli import build_parser


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_option_with_a_default_shows_it(command):
    parser = _subcommands()[command]
    text = " ".join(parser.format_help().split())  # argparse wraps lines
    for action in parser._actions:
        if not action.option_strings or action.default in (None, argparse.SUPPRESS):
            continue
        if action.nargs == 0:  # on-off flags: "(default: False)" would be noise
            assert f"{action.option_strings[-1]} (default: {action.default})" not in text
        elif "(default" not in (action.help or ""):  # else the help states it in words
            assert f"(default: {action.default})" in text, f"{command} {action.option_strings[-1]}"


def test_factorize_help_lists_every_method():
    from tfcompress.lowrank import METHODS

    text = _subcommands()["factorize"].format_help()
    assert all(method in text for method in METHODS)


def test_help_imports_neither_tensorflow_nor_keras():
    script = (
        "import json, sys\n"
        "from tfcompress.cli import main\n"
        f"for argv in [['--help']] + [[name, '--help'] for name in {sorted(_subcommands())!r}]:\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(json.dumps(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(result.stdout.splitlines()[-1]) == []
    top = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tfcompress.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "usage: tfcompress" in top.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in top.stderr.splitlines()}
    assert not imported & {"tensorflow", "keras", "numpy"}
