"""Read the model cards (``models/*.md``): the commands that made a model and its measured figures.

The cards are written by the scripts in ``scripts/`` and by hand, in a few layouts; this module
reads what they have in common, at run time, so the rebuild plan (``rebuild_models.py``) and the
index (``models_index.py``) follow the cards as they are re-made:

- commands: every ``scripts/NAME.py ARGS`` in a code span, a code block or an indented line;
  the arguments end at the closing backtick, the line end or a shell redirection;
- figures of one model file (``flowers_x.tflite``): top-1, bytes, latency at 1 and 2 threads,
  from a table with one row per model (the row naming the file, the column headed ``top-1``,
  ``bytes``, ``1 thread``, ``2 threads``), a table with one column per model (the column
  headed with the file, the row named ``top-1`` ...), or ``- top-1 ...: 66.62%`` style bullets.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

FIELDS = ("top1", "bytes", "latency_1t", "latency_2t")
SHELL_STOP = (">", "<", "|", "&", ";", "2>", "(")
_COMMAND = re.compile(r"scripts/(?P<script>[\w.-]+\.py)(?P<args>[^`\n]*)")
_COMPRESS = re.compile(r"`tfcompress compress(?P<args>[^`\n]*)`")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_BYTES = re.compile(r"\d{1,3}(?:,\d{3})+|\d+")
_MS = re.compile(r"(\d+(?:\.\d+)?)\s*(?:/\s*\d+(?:\.\d+)?\s*)?(?:ms)?")


def _arguments(text: str) -> list[str]:
    """Shell words of a recorded command line up to a redirection, ``--force`` left out."""
    args = []
    for token in shlex.split(text.replace("\\", " "), posix=True):
        if token.startswith(SHELL_STOP):
            break
        if token != "--force":
            args.append(token)
    return args


def script_commands(card: str, script: str) -> list[list[str]]:
    """The argument lists of every ``scripts/<script>`` command in ``card``, in order, without repeats.

    ``--force`` is dropped: whether to overwrite is the caller's decision, not the recipe's.
    """
    found: list[list[str]] = []
    for match in _COMMAND.finditer(card):
        args = _arguments(match.group("args"))
        if match.group("script") == script and args not in found:
            found.append(args)
    return found


def compress_commands(card: str) -> list[list[str]]:
    """The argument lists of the ```tfcompress compress ...``` commands in ``card`` (``--force`` dropped)."""
    found: list[list[str]] = []
    for match in _COMPRESS.finditer(card):
        args = _arguments(match.group("args"))
        if args not in found:
            found.append(args)
    return found


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _tables(card: str) -> list[list[list[str]]]:
    """Markdown tables as lists of rows of cells (the ``|---|`` separator row left out)."""
    tables, rows = [], []
    for line in [*card.splitlines(), ""]:
        if line.lstrip().startswith("|"):
            cells = _cells(line)
            if not all(re.fullmatch(r":?-+:?", c) for c in cells if c):
                rows.append(cells)
        elif rows:
            tables.append(rows)
            rows = []
    return tables


def _field_of(label: str) -> str | None:
    """Which figure a header or row label names, if any."""
    text = label.lower()
    if "top-1" in text and "agreement" not in text:
        return "top1"
    if "gzip" in text:
        return None
    if "bytes" in text:
        return "bytes"
    if "2 thread" in text:
        return "latency_2t"
    if "1 thread" in text:
        return "latency_1t"
    return None


def _names(cell: str, model_file: str) -> bool:
    """Whether a cell names ``model_file`` (``flowers_pq.tflite``; a bare ``flowers_pq`` counts too)."""
    stem = model_file.rsplit(".", 1)[0]
    return model_file in cell or re.fullmatch(rf"`?{re.escape(stem)}`?", cell.strip()) is not None


def _value(field: str, cell: str) -> float | None:
    if field == "top1":
        match = _PERCENT.search(cell)
        return float(match.group(1)) if match else None
    if field == "bytes":
        match = _BYTES.search(cell)
        return float(match.group(0).replace(",", "")) if match else None
    match = _MS.match(cell.strip())
    return float(match.group(1)) if match and match.group(1) else None


def _from_tables(card: str, model_file: str) -> dict[str, float]:
    figures: dict[str, float] = {}
    for table in _tables(card):
        header, body = table[0], table[1:]
        rows = [row for row in body if row and _names(row[0], model_file)]
        for row in rows[:1]:  # one row per model
            for label, cell in zip(header, row, strict=False):
                field = _field_of(label)
                if field and field not in figures and (value := _value(field, cell)) is not None:
                    figures[field] = value
        columns = [i for i, label in enumerate(header) if i and _names(label, model_file)]
        for column in columns[:1]:  # one column per model
            for row in body:
                field = _field_of(row[0]) if row else None
                value = _value(field, row[column]) if field and field not in figures and column < len(row) else None
                if value is not None:
                    figures[field] = value
    return figures


def _from_bullets(card: str) -> dict[str, float]:
    """``- top-1 ...: 66.62%``, ``- bytes: 317,400``, ``- latency ...: 0.495 ms at 1 thread, 0.317 ms at 2 threads``."""
    figures: dict[str, float] = {}
    for line in card.splitlines():
        text = line.strip()
        if not text.startswith("- ") or ":" not in text:
            continue
        label, rest = text[2:].split(":", 1)
        field = _field_of(label)
        if field in ("top1", "bytes") and (value := _value(field, rest)) is not None:
            figures.setdefault(field, value)
        for ms, threads in re.findall(r"(\d+(?:\.\d+)?)\s*ms at (\d) thread", rest):
            figures.setdefault(f"latency_{threads}t", float(ms))
    return figures


def card_figures(card: str, model_file: str) -> dict[str, float]:
    """The figures a card gives for ``model_file``: a subset of :data:`FIELDS` (top-1 in percent)."""
    figures = _from_tables(card, model_file)
    for field, value in _from_bullets(card).items():
        figures.setdefault(field, value)
    return figures


def read_card(models_dir: Path, model: str) -> str | None:
    """The text of ``models_dir/<model>.md``, or None when there is no card."""
    path = Path(models_dir) / f"{model}.md"
    return path.read_text(encoding="utf-8") if path.is_file() else None
