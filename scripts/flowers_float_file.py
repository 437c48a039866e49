"""The float ``.tflite`` of the flowers teacher, for the scripts that measure against it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def float_tflite(teacher, work: Path) -> Path:
    """``models/flowers_float.tflite`` when shipped, else ``teacher`` converted into ``work``'s parent."""
    shipped = ROOT / "models/flowers_float.tflite"
    if shipped.is_file():
        return shipped
    path = work.parent / "flowers_float.tflite"
    if not path.is_file():
        from tfcompress.convert import to_tflite
        from tfcompress.fileio import write_bytes_atomic

        write_bytes_atomic(path, to_tflite(teacher), force=True)
    return path
