#!/usr/bin/env python3
"""`make pi-check`: the Pi app on aarch64 (qemu-user emulation) against the same app on x86.

Steps:
  1. make_aarch64_root.sh builds (once) an arm64 Debian Python 3.11 and the aarch64 wheels
     of the app's requirements under build/pi-aarch64/.
  2. On the emulated aarch64 Python: the machine name, and the kernels the cross-built op
     library offers and picks (NEON expected).
  3. For every model: the app (``--json``) on the same flowers5 test images, on x86 with the
     x86 op library, and under ``qemu-aarch64-static`` with
     ``QEMU_CPU=cortex-a72`` (a Raspberry Pi 4's core) with the aarch64 Python and op library
     on each runtime the app supports: ai-edge-litert (its default, DEST/site) and
     tflite-runtime 2.14 (its fallback, DEST/site-tflite-runtime), each compared with the same
     runtime on x86 (tflite-runtime in build/x86-tflite-runtime). ai-edge-litert needs the
     Pi 4 ``/proc/cpuinfo`` that make_aarch64_root.sh puts in the emulated root (without it,
     it crashes creating any interpreter: see that script).
  4. Each model runs on each side with XNNPACK (the default) and with TFLite's own kernels
     for the builtin ops (``--no-xnnpack``); ``--kernels`` picks one. Float and custom-op
     models must give the same top-3 classes in the same order for every image, scores within
     --tolerance (they come out identical to 1e-6). int8 models do not: their int8 arithmetic
     rounds differently on x86 and ARM with either kernel set, so their scores must agree
     within --int8-tolerance and a top-1 may differ only on a near tie (the x86 run's first two
     classes within 0.1). Exit status 1 otherwise.

Everything run and printed goes to build/pi-check/record.md (and record.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent.parent
REPO = APP_DIR.parent.parent
CLASSIFY = APP_DIR / "classify.py"
FLOWERS = (REPO / "../shared/datasets/flowers5").resolve()
KERNEL_MODES = {"builtin": ("TFLite builtin", ["--no-xnnpack"]), "xnnpack": ("XNNPACK", [])}
#: The runtimes the Pi app supports, each with the folder of its aarch64 packages under --root.
ARM_RUNTIMES = {"ai_edge_litert": "site", "tflite_runtime": "site-tflite-runtime"}
#: The emulated CPU: a Raspberry Pi 4's Cortex-A72.
QEMU_CPU = "cortex-a72"
KERNEL_PROBE = (
    "import ctypes, platform, sys; lib = ctypes.CDLL(sys.argv[1]); "
    "lib.tfc_kernels.restype = lib.tfc_default_kernel.restype = lib.tfc_op_names.restype = ctypes.c_char_p; "
    "print(f'machine={platform.machine()} kernels={lib.tfc_kernels().decode()} "
    "default={lib.tfc_default_kernel().decode()} ops={lib.tfc_op_names().decode()}')"
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="the .tflite files (default: every models/*.tflite)")
    parser.add_argument("--images", type=int, default=10, help="flowers5 test images, spread over test.txt")
    parser.add_argument("--data", default=str(FLOWERS), help="the flowers5 folder")
    parser.add_argument("--root", default=str(REPO / "build/pi-aarch64"), help="the aarch64 Python and wheels")
    parser.add_argument("--ops-library-aarch64", default=str(REPO / "build/native-aarch64/libtfcompress_ops.so"))
    parser.add_argument("--ops-library-x86", default=str(REPO / "tfcompress/_native/libtfcompress_ops.so"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--kernels", choices=("both", "builtin", "xnnpack"), default="both", help="which builtin-op kernels to run"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-3,
        help="largest softmax score difference accepted for float / custom-op models",
    )
    parser.add_argument(
        "--int8-tolerance",
        type=float,
        default=0.05,
        help="largest softmax score difference accepted for int8 models (rounding differs per CPU)",
    )
    parser.add_argument("--out", default=str(REPO / "build/pi-check"))
    return parser.parse_args()


def fail(message: str) -> None:
    print(f"pi-check: error: {message}", file=sys.stderr)
    sys.exit(2)


def run(command: list[str], env: dict, log: list, check: bool = True) -> subprocess.CompletedProcess:
    print("$ " + " ".join(command), flush=True)
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - start
    log.append(
        {
            "command": command,
            "rc": result.returncode,
            "seconds": round(seconds, 1),
            "stdout": result.stdout,
            "stderr": result.stderr,
        }
    )
    print(result.stdout, end="", flush=True)
    if result.returncode != 0 and check:
        print(result.stderr, file=sys.stderr)
        fail(f"command failed with status {result.returncode}: {' '.join(command)}")
    return result


def predictions(stdout: str) -> dict[str, list[dict]]:
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return {row["source"]: row["top"] for row in rows if "source" in row}


def delegated(stdout: str) -> str:
    """The ``delegated_nodes`` (taken/total) of the app's JSON summary line."""
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith('{"summary"')]
    return rows[-1]["summary"].get("delegated_nodes", "?") if rows else "?"


def is_quantized(model: Path) -> bool:
    """Whether a builtin op of the model computes on int8/uint8 tensors (read with ai-edge-litert's schema).

    Custom ops are left out: the tfcompress ops take integer codes / indices but give float
    weights to the builtin float kernels, so those models are held to the float tolerance.
    """
    from ai_edge_litert import schema_py_generated as schema

    parsed = schema.ModelT.InitFromPackedBuf(model.read_bytes(), 0)
    integer = {schema.TensorType.INT8, schema.TensorType.UINT8}
    for graph in parsed.subgraphs:
        for op in graph.operators:
            code = parsed.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.CUSTOM:
                continue
            if any(graph.tensors[i].type in integer for i in op.inputs if i >= 0):
                return True
    return False


def custom_ops(model: Path) -> list[str]:
    """The custom operators ``model`` needs (read with the app's own flatbuffer reader)."""
    sys.path.insert(0, str(APP_DIR))
    from flowerpi.tflite_file import custom_op_names

    return custom_op_names(model.read_bytes(), str(model))


def probed_ops(probe: str) -> set[str]:
    """The op names of the library probe's ``ops=A,B,...`` field."""
    field = next((word for word in probe.split() if word.startswith("ops=")), "ops=")
    return set(filter(None, field[4:].split(",")))


def flipped(x86: dict, arm: dict) -> list[str]:
    """Images whose top-1 class differs between the runs."""
    return [k for k in x86.keys() & arm.keys() if x86[k][0]["index"] != arm[k][0]["index"]]


def near_tie(top: list[dict], margin: float = 0.1) -> bool:
    """Whether the first two classes are within ``margin`` of each other."""
    return len(top) > 1 and top[0]["score"] - top[1]["score"] < margin


def near_ties(x86: dict, arm: dict) -> list[str]:
    """Images whose x86 top-2 are a near tie, with both runs' first two classes and scores."""

    def two(top: list[dict]) -> str:
        return " / ".join(f"{t['label']} {t['score']:.3f}" for t in top[:2])

    return [f"{k}: x86 {two(x86[k])}, aarch64 {two(arm[k])}" for k in x86 if k in arm and near_tie(x86[k])]


def compare(x86: dict, arm: dict) -> tuple[bool, float, list[str]]:
    problems, worst = [], 0.0
    if list(x86) != list(arm):
        problems.append("the two runs classified different images")
    for source in x86.keys() & arm.keys():
        a, b = x86[source], arm[source]
        if [t["index"] for t in a] != [t["index"] for t in b]:
            problems.append(f"{source}: x86 {[t['label'] for t in a]} vs aarch64 {[t['label'] for t in b]}")
        worst = max([worst] + [abs(s["score"] - t["score"]) for s, t in zip(a, b, strict=False)])
    return not problems, worst, problems


def x86_tflite_runtime(folder: Path) -> str:
    """An x86 Python with tflite-runtime 2.14 (and numpy<2, which it needs), made once in ``folder``."""
    python = folder / "bin/python"
    if not (folder / ".installed").is_file():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "tflite-runtime==2.14.0", "numpy<2", "pillow"],
                       check=True)  # fmt: skip
        (folder / ".installed").touch()
    return str(python)


def main() -> int:
    args = parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    qemu = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if qemu is None:
        fail("qemu-aarch64-static not found: apt-get install qemu-user-static")
    arm_library = Path(args.ops_library_aarch64)
    if not arm_library.is_file():
        fail(f"{arm_library} not found: run `make native-aarch64` (needs g++-aarch64-linux-gnu)")
    models = [Path(m) for m in args.models] if args.models else sorted((REPO / "models").glob("*.tflite"))
    if not models:
        fail("no models: pass --models or put .tflite files in models/")
    subprocess.run(
        ["sh", str(APP_DIR / "tools/make_aarch64_root.sh"), args.root],
        check=True,
        env={**os.environ, "HOST_PYTHON": sys.executable},
    )
    root = Path(args.root).resolve()
    arm_python = [qemu, "-L", str(root / "root"), str(root / "root/usr/bin/python3.11")]
    x86_env = {key: value for key, value in os.environ.items() if key != "TFCOMPRESS_OPS_LIBRARY"}
    arm_envs = {
        runtime: {**x86_env, "PYTHONPATH": str(root / site), "PYTHONDONTWRITEBYTECODE": "1", "QEMU_CPU": QEMU_CPU}
        for runtime, site in ARM_RUNTIMES.items()
    }
    arm_env = arm_envs["tflite_runtime"]
    # Each aarch64 run is compared with the same runtime and kernels on x86: tflite-runtime 2.14's XNNPACK
    # takes fewer ops (not the dynamic-range ones) than ai-edge-litert's, so their int8 arithmetic differs.
    x86_pythons = {
        "ai_edge_litert": sys.executable,
        "tflite_runtime": x86_tflite_runtime(REPO / "build/x86-tflite-runtime"),
    }

    entries = [line.strip() for line in (Path(args.data) / "test.txt").read_text().splitlines() if line.strip()]
    step = max(len(entries) // args.images, 1)
    chosen = entries[::step][: args.images]
    image_list = out / "images.txt"
    image_list.write_text("".join(f"{Path(args.data) / e}\n" for e in chosen))

    log: list[dict] = []
    probe = run([*arm_python, "-c", KERNEL_PROBE, str(arm_library)], arm_env, log).stdout.strip()
    offered = probed_ops(probe)
    needed = {model.name: custom_ops(model) for model in models}
    missing = {name: sorted(set(ops) - offered) for name, ops in needed.items() if set(ops) - offered}
    for name, ops in needed.items():
        print(f"{name}: custom ops {', '.join(ops) or 'none'}", flush=True)
    if missing:
        fail(f"the aarch64 op library lacks {missing}")
    results = []
    for model in models:
        quantized = is_quantized(model)
        for kernels, extra in [mode for name, mode in KERNEL_MODES.items() if args.kernels in ("both", name)]:
            common = ["--model", str(model), "--list", str(image_list), "--json", "--threads", str(args.threads)]
            common += ["--labels", str(REPO / "models/labels.txt"), *extra]
            for runtime, env in arm_envs.items():
                x86 = [x86_pythons[runtime], str(CLASSIFY), *common, "--runtime", runtime]
                x86_run = run([*x86, "--ops-library", args.ops_library_x86], x86_env, log)
                x86_pred = predictions(x86_run.stdout)
                arm = [*arm_python, str(CLASSIFY), *common, "--runtime", runtime, "--ops-library", str(arm_library)]
                arm_run = run(arm, env, log, check=False)
                arm_pred = predictions(arm_run.stdout)
                same, worst, problems = compare(x86_pred, arm_pred)
                if arm_run.returncode != 0:
                    problems.append(f"exit {arm_run.returncode}: {arm_run.stderr.strip()[-300:]}")
                    same = False
                if quantized:  # int8 arithmetic rounds differently on x86 and ARM: only near ties may flip
                    passed = (
                        not arm_run.returncode
                        and worst <= args.int8_tolerance
                        and all(near_tie(x86_pred[k]) for k in flipped(x86_pred, arm_pred))
                    )
                else:
                    passed = same and worst <= args.tolerance
                results.append(
                    {
                        "model": str(model),
                        "custom_ops": needed[model.name],
                        "runtime": runtime,
                        "kernels": kernels,
                        "quantized": quantized,
                        "images": len(x86_pred),
                        "delegated_x86": delegated(x86_run.stdout),
                        "delegated_aarch64": delegated(arm_run.stdout),
                        "same_top_k": same,
                        "same_top_1": sum(
                            k in arm_pred and x86_pred[k][0]["index"] == arm_pred[k][0]["index"] for k in x86_pred
                        ),
                        "max_score_difference": worst,
                        "passed": passed,
                        "problems": problems,
                        "near_ties": near_ties(x86_pred, arm_pred) if quantized else [],
                    }
                )
                verdict = "same predictions" if same else "DIFFERENT predictions"
                print(
                    f"== {model.name} ({runtime}, {kernels} kernels): {verdict} on {len(x86_pred)} images; "
                    f"max score difference {worst:.2e}; delegated nodes x86 {results[-1]['delegated_x86']}, "
                    f"aarch64 {results[-1]['delegated_aarch64']}",
                    flush=True,
                )
    ok = all(r["passed"] for r in results)
    record = {
        "ok": ok,
        "aarch64_probe": probe,
        "qemu_cpu": QEMU_CPU,
        "qemu": qemu,
        "results": results,
        "runs": log,
    }
    (out / "record.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        "# pi-check record",
        "",
        f"Result: {'PASS' if ok else 'FAIL'}",
        "",
        f"aarch64 probe: `{probe}`",
        "",
        f"Emulated CPU: `QEMU_CPU={QEMU_CPU}` (Raspberry Pi 4); x86 side: the same runtime as the aarch64 run. "
        "Delegated nodes: the nodes XNNPACK and the tfcompress op delegate took, of the model's nodes.",
        "",
    ]
    lines += [
        "| model | custom ops | int8 | aarch64 runtime | builtin-op kernels | images | same top-1 | "
        "same top-3 (order) | max score diff. | delegated x86 | delegated aarch64 | passed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {Path(r['model']).name} | {', '.join(r['custom_ops']) or '-'} | {r['quantized']} | {r['runtime']} "
        f"| {r['kernels']} | {r['images']} | {r['same_top_1']}/{r['images']} | {r['same_top_k']} "
        f"| {r['max_score_difference']:.2e} | {r['delegated_x86']} | {r['delegated_aarch64']} | {r['passed']} |"
        for r in results
    ]
    lines += ["", "Differences:"] + [
        f"- {Path(r['model']).name}, {r['runtime']}, {r['kernels']}: {p}" for r in results for p in r["problems"]
    ]
    lines += ["", "int8 near ties (x86 top-2 within 0.1; a top-1 may flip there):"] + [
        f"- {Path(r['model']).name}, {r['runtime']}, {r['kernels']}: {t}" for r in results for t in r["near_ties"]
    ]
    for entry in log:
        lines += [
            "",
            f"$ {' '.join(entry['command'])}   (exit {entry['rc']}, {entry['seconds']} s)",
            "```",
            entry["stdout"].rstrip(),
            "```",
        ]
    (out / "record.md").write_text("\n".join(lines) + "\n")
    print(f"pi-check: {'PASS' if ok else 'FAIL'}; record in {out / 'record.md'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
