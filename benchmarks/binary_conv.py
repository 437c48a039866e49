"""Binary conv / dense ops vs XNNPACK float and int8 on the same layers, side by side.

    nice -n 5 .venv/bin/python benchmarks/binary_conv.py [--rounds 15] [--kernel avx2] [--force]

For each layer (batch 1): our ``TfcBinaryConv2D`` / ``TfcBinaryDense`` (float in, float out:
binarization, XOR + popcount and the output transform all counted), the same layer as a
float ``Conv2D`` / ``Dense`` and as full-integer int8, each converted with
:func:`tfcompress.convert.to_tflite` and run by :func:`tfcompress.runtime.Interpreter`
(ai-edge-litert; XNNPACK runs the float and int8 ops). ``int8`` is the file as
``to_tflite`` makes it (uint8 input quantized in the graph, float output dequantized);
``int8 op only`` is the same conversion with int8 input and output, i.e. the conv alone,
the stricter baseline. ``ours, packed in`` and ``ours, packed in/out`` are our conv with the
activations bit-packed (:func:`tfcompress.binary.bitpacked.bitpack_activations`): int32 sign
bits in, float or sign bits out, as between two binary convs; these are the fair match of
``int8 op only`` (quantized in, quantized out), the way Larq Compute Engine compares its
binary convs with int8 convs (conv rows only; dense has no packed form). Every model is
timed at 1 and 2 threads; the models of one layer
are interleaved round by round so they share the machine's noise; each round times
``--per-round`` single invokes of each model, and the figure is the median of all those
single-invoke times (ms), which a preempted invoke does not move.

The convs use one padding (``pad_values=1.0``) but for the 56x56x64 layer, measured with both.
``--kernel avx2`` forces our kernel set (``$TFCOMPRESS_KERNEL``), e.g. AVX2 on an AVX-512 CPU.

Floor: the layer's binary MACs (``out_h * out_w * C_out * K_h * K_w * C_in``) / 512 times the
kernel set's arithmetic cycles per 512 bits of XNOR-popcount (:data:`FLOOR_CYCLES_PER_512`),
at the core clock measured by a chain of dependent adds (``tfc_clock_ghz``); ``% of floor`` =
floor / our median (batch 1, 1 thread; bit-packing and the output transform count against us).

Writes ``benchmarks/results/binary_conv.json`` and ``binary_conv.md``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from tfcompress import native, runtime
from tfcompress.binary import BinaryConv2D, BinaryDense
from tfcompress.binary.bitpacked import bitpack_activations
from tfcompress.convert import to_tflite
from tfcompress.fileio import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results"
# name, input shape (without batch), filters/units, kernel, stride, pad value
LAYERS = [
    ("conv 56x56x64 -> 64, 3x3 same", (56, 56, 64), 64, 3, 1, 1.0),
    ("conv 56x56x64 -> 64, 3x3 same, zero padding", (56, 56, 64), 64, 3, 1, 0.0),
    ("conv 28x28x128 -> 128, 3x3 same", (28, 28, 128), 128, 3, 1, 1.0),
    ("conv 14x14x256 -> 256, 3x3 same", (14, 14, 256), 256, 3, 1, 1.0),
    ("conv 14x14x256 -> 256, 3x3 same stride 2", (14, 14, 256), 256, 3, 2, 1.0),
    ("dense 1024 -> 1024", (1024,), 1024, None, None, None),
]
# Arithmetic cycles per 512 bits of XNOR-popcount (see the kernel files and kernel_mca.py):
# avx2: 4 x (VPXOR + VPSHUFB + VPADDB) on 4 vector ALU pipes (AMD Zen 3); neon: 4 x (EOR +
# CNT + ADD) on 2 ASIMD pipes (Cortex-A72 / A76). None derived for avx512 (VPOPCNTQ's
# throughput differs between Zen 4, Zen 5 and Intel): no floor column for it.
FLOOR_CYCLES_PER_512 = {"avx2": 3.0, "neon": 6.0}
BINARY_ARGS = {"input_quantizer": "ste_sign", "kernel_quantizer": "magnitude_aware_sign"}
PACKED_IN = "ours, packed in"
PACKED_IN_OUT = "ours, packed in/out"
INT8_OP = "XNNPACK int8 op only"
LABELS = ["ours (binary)", PACKED_IN, PACKED_IN_OUT, "XNNPACK float", "XNNPACK int8", INT8_OP]


def _models(shape, units, kernel, stride, pad_value) -> dict[str, keras.Model]:
    inputs = keras.Input(shape)
    if kernel is None:
        binary = BinaryDense(units, **BINARY_ARGS)(inputs)
        plain = keras.layers.Dense(units)(inputs)
    else:
        binary = BinaryConv2D(units, kernel, strides=stride, padding="same", pad_values=pad_value, **BINARY_ARGS)(
            inputs
        )
        plain = keras.layers.Conv2D(units, kernel, strides=stride, padding="same")(inputs)
    return {"binary": keras.Model(inputs, binary), "plain": keras.Model(inputs, plain)}


def _int8_op_only(model: keras.Model, calibration: np.ndarray) -> bytes:
    """Full-integer int8 like ``to_tflite(int8=True)``, but int8 in and out: the quantized op alone."""
    import tempfile

    import tensorflow as tf

    from tfcompress.convert.converter import _export_saved_model, _representative

    with tempfile.TemporaryDirectory() as saved_model:
        _export_saved_model(model, saved_model)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        return converter.convert()


def _files(shape, units, kernel, stride, pad_value, rng) -> dict[str, bytes]:
    models = _models(shape, units, kernel, stride, pad_value)
    calibration = rng.standard_normal((16, *shape)).astype(np.float32)
    binary = to_tflite(models["binary"])
    files = {"ours (binary)": binary}
    if kernel is not None:
        files[PACKED_IN] = bitpack_activations(binary, packed_input=True)
        files[PACKED_IN_OUT] = bitpack_activations(binary, packed_input=True, packed_output=True)
    files["XNNPACK float"] = to_tflite(models["plain"])
    files["XNNPACK int8"] = to_tflite(models["plain"], int8=True, calibration=calibration)
    files[INT8_OP] = _int8_op_only(models["plain"], calibration)
    return files


def _interpreter(content: bytes, threads: int, rng):
    interpreter = runtime.Interpreter(model_content=content, num_threads=threads, runtime="ai_edge_litert")
    detail = interpreter.get_input_details()[0]
    if detail["dtype"] == np.float32:
        value = rng.standard_normal(detail["shape"]).astype(np.float32)
    else:
        info = np.iinfo(detail["dtype"])
        value = rng.integers(info.min, info.max, detail["shape"]).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return interpreter


def _invoke_ms(interpreter, invokes: int) -> list[float]:
    """Wall time of each of ``invokes`` single invokes, in ms."""
    times = []
    for _ in range(invokes):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def clock_ghz() -> float:
    """The core clock (GHz) from a chain of dependent adds in the op library (0 if unknown)."""
    function = native.library().tfc_clock_ghz
    function.restype, function.argtypes = ctypes.c_double, [ctypes.c_int]
    return float(function(200))


def floor_ms(shape, units, kernel, stride, kernel_set: str, ghz: float) -> float | None:
    """The arithmetic floor of a 'same' conv layer in ms (None: dense, or no floor for the kernel set)."""
    cycles = FLOOR_CYCLES_PER_512.get(kernel_set)
    if kernel is None or cycles is None or ghz <= 0:
        return None
    height, width, channels = shape
    out_pixels = -(-height // stride) * -(-width // stride)
    bit_macs = out_pixels * units * kernel * kernel * channels
    return bit_macs / 512 * cycles / (ghz * 1e6)


def measure(rounds: int, per_round: int) -> dict:
    load_at_start = list(os.getloadavg())
    kernel_set = native.default_kernel()
    ghz = clock_ghz()
    rng = np.random.default_rng(0)
    rows = []
    progress = keras.utils.Progbar(len(LAYERS) * 2, unit_name="layer x threads")
    for name, shape, units, kernel, stride, pad_value in LAYERS:
        files = _files(shape, units, kernel, stride, pad_value, rng)
        floor = floor_ms(shape, units, kernel, stride, kernel_set, ghz)
        for threads in (1, 2):
            interpreters = {label: _interpreter(content, threads, rng) for label, content in files.items()}
            for interpreter in interpreters.values():  # warm up caches and thread pools
                _invoke_ms(interpreter, 3)
            times: dict[str, list[float]] = {label: [] for label in interpreters}
            for _ in range(rounds):
                for label, interpreter in interpreters.items():
                    times[label].extend(_invoke_ms(interpreter, per_round))
            medians = {label: float(np.median(values)) for label, values in times.items()}
            fastest = {label: float(np.min(values)) for label, values in times.items()}
            ours = medians["ours (binary)"]
            packed = medians.get(PACKED_IN)
            rows.append(
                {
                    "layer": name,
                    "threads": threads,
                    "median_ms": medians,
                    "min_ms": fastest,
                    "invokes": {label: len(values) for label, values in times.items()},
                    "bytes": {label: len(content) for label, content in files.items()},
                    "speedup_vs_float": medians["XNNPACK float"] / ours,
                    "speedup_vs_int8": medians["XNNPACK int8"] / ours,
                    "speedup_vs_int8_op_only": medians[INT8_OP] / ours,
                    "packed_in_speedup_vs_int8_op_only": None if packed is None else medians[INT8_OP] / packed,
                    "speedup_vs_float_fastest": fastest["XNNPACK float"] / fastest["ours (binary)"],
                    "speedup_vs_int8_fastest": fastest["XNNPACK int8"] / fastest["ours (binary)"],
                    "floor_ms": floor,
                    "percent_of_floor": None if floor is None else 100 * floor / ours,
                    "percent_of_floor_fastest": None if floor is None else 100 * floor / fastest["ours (binary)"],
                }
            )
            progress.add(1)
    return {
        "rows": rows,
        "kernel": kernel_set,
        "clock_ghz": ghz,
        "floor_cycles_per_512_bits": FLOOR_CYCLES_PER_512.get(kernel_set),
        "cpu": _cpu_name(),
        "machine": platform.machine(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": list(os.getloadavg()),
        "rounds": rounds,
        "invokes_per_round": per_round,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _ms(row: dict, label: str) -> str:
    value = row["median_ms"].get(label)
    return "-" if value is None else f"{value:.3f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def _floor(row: dict) -> str:
    """The floor and % of floor cells (median and fastest invoke; percentages at 1 thread only)."""
    if row["floor_ms"] is None:
        return "- | - | - |"
    if row["threads"] != 1:
        return f"{row['floor_ms']:.3f} | - | - |"
    return f"{row['floor_ms']:.3f} | {row['percent_of_floor']:.0f}% | {row['percent_of_floor_fastest']:.0f}% |"


def _floor_note(result: dict) -> str:
    if result["floor_cycles_per_512_bits"] is None:
        return f"Floor: none derived for `{result['kernel']}` (measured clock {result['clock_ghz']:.2f} GHz)."
    return (
        f"Floor: binary MACs / 512 x {result['floor_cycles_per_512_bits']} cycles per 512 bits "
        f"(the `{result['kernel']}` arithmetic: `FLOOR_CYCLES_PER_512`) at the measured clock, "
        f"{result['clock_ghz']:.2f} GHz; "
        "`% of floor` = floor / `ours (binary)` at 1 thread (packing and output transform included in ours; "
        "the fastest invoke is the least disturbed by the other processes on the machine)."
    )


def to_markdown(result: dict) -> str:
    labels = [label for label in LABELS if any(label in row["median_ms"] for row in result["rows"])]
    load = ", ".join(f"{v:.1f}" for v in result["load_average_at_start"])
    lines = [
        "# Binary conv / dense vs XNNPACK float and int8 (batch 1, median ms per invoke)",
        "",
        f"CPU: {result['cpu']} ({result['machine']}, {os.cpu_count()} cores); our kernel: `{result['kernel']}`; "
        f"median of {result['rounds']} interleaved rounds x {result['invokes_per_round']} single invokes per model; "
        f"load average (1, 5, 15 min) at the start {load}, at the end "
        f"{', '.join(f'{v:.1f}' for v in result['load_average_at_end'])} "
        "(a shared, busy machine: compare within a row, not across runs; the last two columns compare "
        "each model's fastest single invoke, the least disturbed by other processes).",
        "",
        "`ours (binary)`: float in, float out (binarization and output transform inside the op); "
        "`ours, packed in`: int32 sign bits in, float out; `ours, packed in/out`: sign bits in and out "
        "(between two binary convs); `XNNPACK int8`: uint8 in / float out as `to_tflite` makes it; "
        "`int8 op only`: int8 in, int8 out. `packed in vs int8 op only` is the Larq-style comparison.",
        "",
        _floor_note(result),
        "",
        "| layer | threads | " + " | ".join(labels) + " | vs float | vs int8 | vs int8 op only "
        "| packed in vs int8 op only | vs float, fastest invokes | vs int8, fastest invokes "
        "| floor (ms) | % of floor | % of floor, fastest invoke |",
        "|---|---|" + "---|" * len(labels) + "---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        cells = " | ".join(_ms(row, label) for label in labels)
        lines.append(
            f"| {row['layer']} | {row['threads']} | {cells} | {_ratio(row['speedup_vs_float'])} | "
            f"{_ratio(row['speedup_vs_int8'])} | {_ratio(row['speedup_vs_int8_op_only'])} | "
            f"{_ratio(row['packed_in_speedup_vs_int8_op_only'])} | "
            f"{_ratio(row['speedup_vs_float_fastest'])} | {_ratio(row['speedup_vs_int8_fastest'])} | "
            f"{_floor(row)}"
        )
    lines += ["", "File bytes (one layer per file):", "", "| layer | " + " | ".join(labels) + " |"]
    lines.append("|---|" + "---|" * len(labels))
    for row in result["rows"]:
        if row["threads"] == 1:
            lines.append(
                f"| {row['layer']} | " + " | ".join(str(row["bytes"].get(label, "-")) for label in labels) + " |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="interleaved timing rounds per layer and thread count")
    parser.add_argument("--per-round", type=int, default=10, help="single invokes timed per model and round")
    parser.add_argument("--output", default=str(RESULTS / "binary_conv"), help="path without suffix for .json / .md")
    parser.add_argument("--force", action="store_true", help="overwrite earlier results")
    parser.add_argument("--kernel", help="force our kernel set (avx512, avx2, neon, scalar: $TFCOMPRESS_KERNEL)")
    args = parser.parse_args()
    if args.kernel:
        os.environ["TFCOMPRESS_KERNEL"] = args.kernel
        if native.default_kernel() != args.kernel:
            raise SystemExit(
                f"binary_conv: kernel {args.kernel!r} is not available here ({', '.join(native.kernels())})"
            )
    result = measure(args.rounds, args.per_round)
    write_text_atomic(f"{args.output}.json", json.dumps(result, indent=2) + "\n", args.force)
    write_text_atomic(f"{args.output}.md", to_markdown(result), args.force)
    print(to_markdown(result))


if __name__ == "__main__":
    main()
