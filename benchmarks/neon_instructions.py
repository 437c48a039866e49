"""NEON figures without a device: guest instructions per inference on an emulated Raspberry Pi 4.

    .venv/bin/python benchmarks/neon_instructions.py [--models flowers_float flowers_int8 ...]
        [--ops] [--runs 8] [--warmup 3] [--repeat] [--kernels both|xnnpack|builtin]

Each model runs in ai-edge-litert (1 thread; the aarch64 op library as a delegate for the custom
ops, as the Pi app loads it) on a fixed random input under ``qemu-aarch64`` with
``QEMU_CPU=cortex-a72``, the aarch64 Python of ``make pi-check`` and a qemu TCG plugin of ours
(``benchmarks/qemu_plugin/count_instructions.c``) that counts every guest instruction executed.
Instructions per inference = (count after ``warmup + runs`` inferences - count after ``warmup``) /
``runs``: loading, the first runs (XNNPACK packs weights lazily) and Python's own start-up cancel
out. A count is repeatable (the same binary, model and input give the same figure whatever the
host's load: checked by ``--repeat``) and moves when a kernel
changes; it is not a time: an instruction of a NEON multiply-accumulate and of a scalar add
count the same, and memory stalls are not seen. ``--ops`` adds single-op models (a 3x3
convolution of a 28x28x64 input to 64 channels: float, int8, binary ``TfcBinaryConv2D``, and a
1x1 product-quantized ``TfcPQDense``-backed convolution) to give op-level figures.

Needs (installed by ``.ci/run`` or by hand): ``qemu-user`` (the dynamic ``qemu-aarch64``, which
loads plugins; Debian's ``qemu-user-static`` does not), ``g++-aarch64-linux-gnu`` (the op
library, ``make native-aarch64``), and the plugin API header ``qemu-plugin.h``, taken from
Debian's qemu source package (downloaded here with apt-get into ``build/qemu-plugin``).
Writes ``benchmarks/results/neon_instructions.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build/qemu-plugin"
AARCH64_ROOT = ROOT / "build/pi-aarch64"
ARM_LIBRARY = ROOT / "build/native-aarch64/libtfcompress_ops.so"
PLUGIN_SOURCE = ROOT / "benchmarks/qemu_plugin/count_instructions.c"
QEMU_CPU = "cortex-a72"

#: Runs in the emulated Python: the model on one fixed random input, ``count`` inferences (the op library's
#: delegate when the model has tfcompress ops, as the Pi app loads it; any input shape, for single-op files).
RUNNER = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from ai_edge_litert import interpreter as litert
from flowerpi.delegation import delegated_nodes
from flowerpi.tflite_file import custom_op_names
content = open(sys.argv[2], "rb").read()
delegates = [litert.load_delegate(sys.argv[3], {"num_threads": "1"})] if custom_op_names(content, "m") else []
kinds = litert.OpResolverType
resolver = kinds.AUTO if sys.argv[4] == "xnnpack" else kinds.BUILTIN_WITHOUT_DEFAULT_DELEGATES
interpreter = litert.Interpreter(model_content=content, num_threads=1, experimental_delegates=delegates or None,
                                 experimental_op_resolver_type=resolver)
interpreter.allocate_tensors()
given = interpreter.get_input_details()[0]
info = np.iinfo(given["dtype"]) if np.issubdtype(given["dtype"], np.integer) else None
rng = np.random.default_rng(0)
x = (rng.integers(info.min, info.max + 1, given["shape"]) if info else rng.uniform(0, 255, given["shape"]))
x = x.astype(given["dtype"])
for _ in range(int(sys.argv[5])):
    interpreter.set_tensor(given["index"], x)
    interpreter.invoke()
taken, nodes = delegated_nodes(interpreter)
print(f"{taken}/{nodes}")
"""


def apt_source_header() -> Path:
    """``qemu-plugin.h`` from Debian's qemu source package (bookworm), downloaded once into :data:`BUILD`."""
    header = BUILD / "include/qemu-plugin.h"
    if header.is_file():
        return header
    state = BUILD / "apt"
    (state / "lists/partial").mkdir(parents=True, exist_ok=True)
    (state / "cache/archives/partial").mkdir(parents=True, exist_ok=True)
    (state / "sources.list").write_text("deb-src http://deb.debian.org/debian bookworm main\n")
    options = [f"-oDir::Etc::sourcelist={state / 'sources.list'}", "-oDir::Etc::sourceparts=-",
               f"-oDir::State::Lists={state / 'lists'}", f"-oDir::Cache={state / 'cache'}"]  # fmt: skip
    subprocess.run(["apt-get", "-q", *options, "update"], check=True, capture_output=True)
    download = BUILD / "source"
    download.mkdir(exist_ok=True)
    subprocess.run(["apt-get", "-q", *options, "source", "--download-only", "qemu"], check=True, cwd=download,
                   capture_output=True)  # fmt: skip
    tarball = next(download.glob("qemu_*.orig.tar.xz"))
    with tarfile.open(tarball) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("include/qemu/qemu-plugin.h"))
        header.parent.mkdir(parents=True, exist_ok=True)
        header.write_bytes(archive.extractfile(member).read())
    return header


def build_plugin() -> Path:
    """The instruction-count plugin, compiled for this host."""
    plugin = BUILD / "libcount_instructions.so"
    header = apt_source_header()
    if not plugin.is_file() or plugin.stat().st_mtime < PLUGIN_SOURCE.stat().st_mtime:
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-I", str(header.parent),
                        "-o", str(plugin), str(PLUGIN_SOURCE)], check=True)  # fmt: skip
    return plugin


def count(qemu: str, plugin: Path, model: Path, kernels: str, inferences: int) -> tuple[int, str]:
    """Guest instructions of the whole emulated run, and the delegated nodes it reported."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "count.txt"
        env = {**os.environ, "PYTHONPATH": str(AARCH64_ROOT / "site"), "QEMU_CPU": QEMU_CPU,
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}  # fmt: skip
        python = [qemu, "-plugin", f"{plugin},out={out}", "-L", str(AARCH64_ROOT / "root"),
                  str(AARCH64_ROOT / "root/usr/bin/python3.11")]  # fmt: skip
        app = str(ROOT / "android_demo/raspberry_pi")
        command = [*python, "-c", RUNNER, app, str(model), str(ARM_LIBRARY), kernels, str(inferences)]
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"neon_instructions: {model.name} failed under emulation: {result.stderr[-500:]}")
        return int(out.read_text()), result.stdout.strip().splitlines()[-1]


def op_models(folder: Path) -> list[Path]:
    """Single-op ``.tflite`` files: float, int8 and binary 3x3 convolutions, and a PQ 1x1 convolution."""
    import keras
    import numpy as np

    from tfcompress.binary import BinaryConv2D
    from tfcompress.convert import to_tflite
    from tfcompress.pq import PQConv2D

    keras.utils.set_random_seed(0)
    shape, images = (28, 28, 64), np.random.default_rng(0).uniform(0, 255, (16, 28, 28, 64)).astype("float32")

    def single(layer) -> keras.Model:
        inputs = keras.Input(shape)
        return keras.Model(inputs, layer(inputs))

    conv = single(keras.layers.Conv2D(64, 3, padding="same"))
    files = {
        "op_conv3x3_float": to_tflite(conv),
        "op_conv3x3_int8": to_tflite(conv, int8=True, calibration=images),
        "op_conv3x3_binary": to_tflite(
            single(BinaryConv2D(64, 3, padding="same", input_quantizer="ste_sign", kernel_quantizer="ste_sign"))
        ),
        "op_conv1x1_pq": to_tflite(single(PQConv2D(64, 1, block_size=4, n_centroids=256))),
        "op_conv1x1_float": to_tflite(single(keras.layers.Conv2D(64, 1))),
    }
    paths = []
    for name, content in files.items():
        path = folder / f"{name}.tflite"
        path.write_bytes(content)
        paths.append(path)
    return paths


def markdown(result: dict) -> str:
    lines = [
        "# Instructions per inference on an emulated Raspberry Pi 4 (qemu-user, Cortex-A72)",
        "",
        f"Written by `{result['command']}` ({result['date']}). {result['how']}",
        "",
        "| file | builtin-op kernels | nodes delegated | instructions per inference (M) | again (M) | vs float file |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in result["rows"]:
        ratio = f"{row['vs_float']:.2f}x fewer" if row.get("vs_float") else "-"
        again = ", ".join(f"{value / 1e6:,.2f}" for value in row.get("repeated", [])) or "-"
        lines.append(
            f"| `{row['file']}` | {row['kernels']} | {row['delegated']} | {row['instructions'] / 1e6:,.2f} | {again} "
            f"| {ratio} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="model stems under models/ (default: every models/*.tflite)")
    parser.add_argument("--ops", action="store_true", help="also single-op models (op-level figures)")
    parser.add_argument("--runs", type=int, default=8, help="inferences counted after the warm-up (default: 8)")
    parser.add_argument("--warmup", type=int, default=3, help="inferences before the counted ones (default: 3)")
    parser.add_argument("--repeat", action="store_true", help="measure every count twice (a repeatability check)")
    parser.add_argument("--kernels", choices=("both", "xnnpack", "builtin"), default="both")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/neon_instructions")
    args = parser.parse_args()
    qemu = shutil.which("qemu-aarch64")
    if qemu is None:
        parser.error("qemu-aarch64 not found (apt-get install qemu-user: the static build loads no plugins)")
    if not ARM_LIBRARY.is_file():
        parser.error(f"{ARM_LIBRARY} not found: make native-aarch64")
    subprocess.run(["sh", str(ROOT / "android_demo/raspberry_pi/tools/make_aarch64_root.sh"), str(AARCH64_ROOT)],
                   check=True, capture_output=True, env={**os.environ, "HOST_PYTHON": sys.executable})  # fmt: skip
    plugin = build_plugin()
    models = [ROOT / f"models/{name}.tflite" for name in args.models] if args.models else sorted(
        (ROOT / "models").glob("*.tflite"))  # fmt: skip
    scratch = Path(tempfile.mkdtemp())
    if args.ops:
        models += op_models(scratch)
    kernel_modes = ["xnnpack", "builtin"] if args.kernels == "both" else [args.kernels]
    rows = []
    for model in models:
        for kernels in kernel_modes:
            measured = []
            for _ in range(2 if args.repeat else 1):
                first, delegated = count(qemu, plugin, model, kernels, args.warmup)
                more, _ = count(qemu, plugin, model, kernels, args.warmup + args.runs)
                measured.append(round((more - first) / args.runs))
            rows.append({"file": model.name, "kernels": kernels, "delegated": delegated, "instructions": measured[0],
                         "repeated": measured[1:]})  # fmt: skip
            print(f"{model.name} ({kernels}): {rows[-1]['instructions'] / 1e6:,.2f} M instructions per inference, "
                  f"delegated {delegated}", flush=True)  # fmt: skip
    floats = {(r["kernels"], r["file"]): r["instructions"] for r in rows}
    for row in rows:
        reference = {"flowers_effnet_lite0": "flowers_effnet_lite0.tflite", "op_conv3x3": "op_conv3x3_float.tflite",
                     "op_conv1x1": "op_conv1x1_float.tflite"}  # fmt: skip
        base = next((f for prefix, f in reference.items() if row["file"].startswith(prefix)), "flowers_float.tflite")
        if row["file"] != base and (row["kernels"], base) in floats:
            row["vs_float"] = floats[(row["kernels"], base)] / row["instructions"]
    shutil.rmtree(scratch)
    result = {
        "command": "python benchmarks/neon_instructions.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "qemu_cpu": QEMU_CPU,
        "how": (
            f"`QEMU_CPU={QEMU_CPU}`, ai-edge-litert (aarch64 wheel), 1 thread, the aarch64 op library (NEON kernels); "
            f"(instructions after {args.warmup + args.runs} inferences - after {args.warmup}) / {args.runs}, "
            "counted by "
            "`benchmarks/qemu_plugin/count_instructions.c`. 'vs float file': the float file of the same network "
            "and kernels (`flowers_float` for the ResNets, `flowers_effnet_lite0` for the EfficientNets, the "
            "float op for the single-op files)."
        ),
        "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    args.output.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
