"""What the command line says to hostile and broken inputs: one line on stderr and exit 2.

    python benchmarks/bad_inputs.py        # writes benchmarks/results/bad_inputs.md

Each case builds its input in a temporary folder (cut and garbage model files, a ``.keras``
holding a ``Lambda`` layer that would write a file, a missing or foreign op library, image
folders with no images or with every image mode) and runs ``tfcompress`` on it in a
subprocess. The table gives the exit status and the line ``tfcompress`` printed ($TMP: the
case's temporary folder); "other lines" counts the rest of stderr, none of it ours: TensorFlow's
start-up log when the command imports Keras, LiteRT's "Created TensorFlow Lite XNNPACK
delegate" when ``eval`` has built its interpreter, Python's warnings for skipped images.
``tests/test_bad_inputs.py`` runs every case in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
RESULTS = ROOT / "benchmarks" / "results" / "bad_inputs.md"
CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")
LAMBDA_MARKER = "lambda_ran.txt"


@dataclass
class Case:
    """One hostile input: ``make(folder)`` builds it and returns the ``tfcompress`` arguments."""

    name: str
    make: Callable[[Path], list[str]]
    expect: str  # a fragment of the line tfcompress prints (stdout when it succeeds)
    status: int = 2
    env: dict[str, str] = field(default_factory=dict)


def _cut(source: Path, size: int, target: Path) -> Path:
    target.write_bytes(source.read_bytes()[:size])
    return target


def _eval(model: Path, *extra: str, limit: int = 4) -> list[str]:
    return ["eval", str(model), "--limit", str(limit), "--runs", "1", *extra]


def _convert(model: Path) -> list[str]:
    return ["convert", str(model), "-o", str(model.with_suffix(".tflite"))]


def lambda_model(folder: Path) -> Path:
    """A ``.keras`` file whose ``Lambda`` layer writes ``folder/lambda_ran.txt`` when it runs."""
    import keras

    marker = folder / LAMBDA_MARKER
    # The path is a constant of the lambda's code, so the saved bytecode carries it.
    function = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), x)[1]")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Lambda(function)(inputs)))
    path = folder / "lambda.keras"
    model.save(path)
    marker.unlink(missing_ok=True)  # saving may have traced the layer
    return path


def _renamed_op(folder: Path) -> Path:
    """flowers_pq.tflite with its TfcPQDense op renamed TfcPQDnsV2 (an op of a later version; same length)."""
    content = (MODELS / "flowers_pq.tflite").read_bytes()
    assert content.count(b"TfcPQDense\x00") == 1  # the operator code's name, NUL-terminated
    path = folder / "newer_op.tflite"
    path.write_bytes(content.replace(b"TfcPQDense\x00", b"TfcPQDnsV2\x00"))
    return path


def _image_folder(folder: Path, files: dict[str, Callable[[Path], None]]) -> Path:
    """A flowers5-like folder: each class gets every file of ``files``; ``test.txt`` lists them all."""
    root = folder / "images"
    entries = []
    for name in CLASSES:
        (root / name).mkdir(parents=True)
        for file_name, write in files.items():
            write(root / name / file_name)
            entries.append(f"{name}/{file_name}")
    (root / "test.txt").write_text("\n".join(entries) + "\n")
    return root


def _pillow(mode: str, size: tuple[int, int], fmt: str, **save: object) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        from PIL import Image

        rng = np.random.default_rng(len(str(path)))
        if mode == "I;16":
            image = Image.fromarray(rng.integers(0, 65536, size[::-1]).astype(np.uint16))
        elif mode == "P":
            image = Image.fromarray(rng.integers(0, 255, (*size[::-1], 3)).astype(np.uint8)).convert("P")
        else:
            bands = len(Image.new(mode, (1, 1)).getbands())
            image = Image.fromarray(rng.integers(0, 255, (*size[::-1], bands)).astype(np.uint8).squeeze(), mode=mode)
        image.save(path, fmt, **save)

    return write


MIXED_IMAGES = {
    "grey.png": _pillow("L", (120, 80), "PNG"),
    "rgba.png": _pillow("RGBA", (96, 96), "PNG"),
    "cmyk.jpg": _pillow("CMYK", (64, 200), "JPEG"),
    "grey16.png": _pillow("I;16", (100, 100), "PNG"),
    "palette.gif": _pillow("P", (50, 70), "GIF", transparency=0),
    "rgb_large.jpg": _pillow("RGB", (640, 480), "JPEG"),
    "broken.jpg": lambda path: path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg"),
}


def cases() -> list[Case]:
    """Every hostile input of the table, in its order."""
    pq = MODELS / "flowers_pq.tflite"
    return [
        Case(
            "`.tflite` cut at 1,000,000 bytes",
            lambda d: _eval(_cut(MODELS / "flowers_int8.tflite", 1_000_000, d / "cut.tflite")),
            "not a complete .tflite file: 1,000,000 of at least",
        ),
        Case(
            "`.tflite` of 0 bytes", lambda d: _eval(_cut(pq, 0, d / "empty.tflite")), "is not a .tflite file (0 bytes"
        ),
        Case(
            "`.tflite` that is a text file",
            lambda d: _eval(_write(d / "notes.tflite", b"hello, not a model\n")),
            "without the TFLite flatbuffer identifier",
        ),
        Case(
            "`.tflite` header followed by garbage",
            lambda d: _eval(_write(d / "garbage.tflite", pq.read_bytes()[:8] + bytes(range(256)) * 40)),
            "is not a valid .tflite file",
        ),
        Case(
            "`.keras` cut at 100,000 bytes",
            lambda d: _convert(_cut(MODELS / "flowers_float.keras", 100_000, d / "cut.keras")),
            "is not a complete .keras file: 100,000 bytes",
        ),
        Case(
            "`.keras` that is a text file",
            lambda d: _convert(_write(d / "notes.keras", b"hello, not a model\n")),
            "is not a .keras file: a .keras file is a zip archive",
        ),
        Case(
            "`.keras` holding a `Lambda` that writes a file",
            lambda d: _convert(lambda_model(d)),
            "holds a Lambda layer, whose Python code would run on loading; it is refused",
        ),
        Case(
            "op library missing (`TFCOMPRESS_OPS_LIBRARY` at no file), PQ model",
            lambda _: _eval(pq),
            "(TfcPQDecode, TfcPQDense) but libtfcompress_ops.so is not built (TFCOMPRESS_OPS_LIBRARY=",
            env={"TFCOMPRESS_OPS_LIBRARY": "/nonexistent/libtfcompress_ops.so"},
        ),
        Case(
            "op library that is not a shared library",
            lambda d: _eval(pq),
            "cannot be loaded",
            env={"TFCOMPRESS_OPS_LIBRARY": "{folder}/libtfcompress_ops.so"},
        ),
        Case(
            "model with an op this library's version lacks (`TfcPQDnsV2`)",
            lambda d: _eval(_renamed_op(d)),
            "uses TfcPQDnsV2, which the op library",
        ),
        Case(
            "image folder whose class folders hold no image",
            lambda d: _eval(
                MODELS / "flowers_int8.tflite",
                "--data",
                str(_image_folder(d, {"readme.txt": lambda p: p.write_text("x")})),
            ),
            "holds no images",
        ),
        Case(
            "image folder with no class folder",
            lambda d: _eval(MODELS / "flowers_int8.tflite", "--data", str(_mkdir(d / "nothing"))),
            "is empty: expected one sub-folder of images per class",
        ),
        Case(
            "images of every mode and size (grey, RGBA, CMYK, 16-bit, palette, 640x480) + 1 broken file per class",
            lambda d: _eval(
                MODELS / "flowers_int8.tflite",
                "--data",
                str(_image_folder(d, MIXED_IMAGES)),
                "--json",
                str(d / "eval.json"),
                limit=35,
            ),
            "on 30 test images",
            status=0,
        ),
    ]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def prepare(case: Case, folder: Path) -> tuple[list[str], dict[str, str]]:
    """The case's arguments and environment, its input built in ``folder``."""
    env = {key: value.format(folder=folder) for key, value in case.env.items()}
    if "{folder}" in case.env.get("TFCOMPRESS_OPS_LIBRARY", ""):
        Path(env["TFCOMPRESS_OPS_LIBRARY"]).write_bytes(b"\x7fELF but not really")
    return case.make(folder), env


@dataclass
class Row:
    """What one case gave on the command line."""

    case: Case
    command: str
    status: int
    line: str
    other_lines: int
    traceback: bool
    lambda_ran: bool
    skipped_images: int | None


def run(case: Case) -> Row:
    """Run ``tfcompress`` on the case in a subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        argv, env = prepare(case, folder)
        done = subprocess.run(
            [sys.executable, "-m", "tfcompress.cli", *argv],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
            cwd=ROOT,
        )
        ours = [line for line in done.stderr.splitlines() if line.startswith("tfcompress ")]
        shown = ours or done.stdout.strip().splitlines()[-1:]
        json_file = folder / "eval.json"
        return Row(
            case=case,
            command=argv[0],
            status=done.returncode,
            line=shown[0].replace(str(folder), "$TMP") if shown else "",
            other_lines=len(done.stderr.splitlines()) - len(ours),
            traceback="Traceback" in done.stderr,
            lambda_ran=(folder / LAMBDA_MARKER).exists(),
            skipped_images=json.loads(json_file.read_text())["skipped_images"] if json_file.is_file() else None,
        )


def markdown(rows: list[Row]) -> str:
    """The table for ``benchmarks/results/bad_inputs.md`` and the README."""
    lines = [
        "| input | command | exit | what tfcompress says | other stderr lines |",
        "|---|---|---:|---|---:|",
    ]
    for row in rows:
        text = row.line.replace("|", "\\|")
        extra = []
        if row.traceback:
            extra.append("TRACEBACK")
        if row.case.name.startswith("`.keras` holding"):
            extra.append("the Lambda ran" if row.lambda_ran else "the Lambda never ran (no file written)")
        if row.skipped_images is not None:
            extra.append(f"`skipped_images`: {row.skipped_images}")
        note = f" ({'; '.join(extra)})" if extra else ""
        lines.append(f"| {row.case.name} | {row.command} | {row.status} | `` {text} ``{note} | {row.other_lines} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run every case and write the table."""
    rows = []
    for case in cases():
        row = run(case)
        print(f"{row.status}  {case.name}: {row.line}", flush=True)
        rows.append(row)
    header = (
        "# Hostile and broken inputs\n\nWritten by `benchmarks/bad_inputs.py`: each input run through the "
        "`tfcompress` command in a subprocess.\n\n"
    )
    RESULTS.write_text(header + markdown(rows))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
