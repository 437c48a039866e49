"""Mutation test of whole ``.tflite`` files through ``tfcompress.runtime.Interpreter``, counting crashes.

    python benchmarks/fuzz_tflite.py --mutants 400     # writes benchmarks/results/fuzz_tflite.md

Mutants of the shipped ``flowers_pq``, ``flowers_dc`` and ``flowers_binary`` files, four kinds:
``options`` (a custom op's flexbuffer options: bit flips, random bytes, cut, extended, an integer
option set to an extreme value), ``buffer`` (a constant input of one of our ops: bit flips, cut,
extended, random), ``shape`` (a dim of one of our ops' tensors set to 0, -1, 1, 2^31-1, ..., or a
dim added / dropped) and ``bytes`` (raw bit flips anywhere in the file). Each is loaded,
allocated and invoked on random input in a worker process; a worker that dies (a signal, an
exit status other than 0) is a crash, one that takes over ``--timeout`` seconds a hang, and
either way the next mutant gets a fresh worker. ``tests/test_fuzz_tflite.py`` runs a few dozen.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEED_MODELS = ("flowers_pq", "flowers_dc", "flowers_binary")
KINDS = ("options", "buffer", "shape", "bytes")
OUTCOMES = ("ran", "clear error", "crash", "hang")
EXTREME_INTS = (0, -1, 1, 2**31 - 1, -(2**31), 2**24 + 1, 65536)
RESULTS = ROOT / "benchmarks" / "results" / "fuzz_tflite.md"


@dataclass
class Mutant:
    """One mutated file and how it was made."""

    model: str
    kind: str
    how: str
    content: bytes


def _flip(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        i = int(rng.integers(len(out)))
        out[i] ^= 1 << int(rng.integers(8))
    return bytes(out)


def _mutate_bytes(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """A byte string mutated one of five ways (named in the first element)."""
    how = str(rng.choice(["bit flips", "random bytes", "cut", "extended", "emptied"]))
    if how == "bit flips" and data:
        return how, _flip(data, rng)
    if how == "cut" and data:
        return how, data[: int(rng.integers(len(data)))]
    if how == "extended":
        return how, data + rng.bytes(int(rng.integers(1, 64)))
    if how == "emptied":
        return how, b""
    return "random bytes", rng.bytes(max(len(data), 1))


def pack(model) -> bytes:
    """A ``schema_py_generated.ModelT`` as ``.tflite`` bytes."""
    from flatbuffers import Builder

    builder = Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def ours(model) -> list:
    """The operators of our custom ops (``Tfc*``) in the first subgraph."""
    codes = model.operatorCodes
    return [op for op in model.subgraphs[0].operators if (codes[op.opcodeIndex].customCode or b"").startswith(b"Tfc")]


def _extreme_option(options: bytes, rng: np.random.Generator) -> tuple[str, bytes] | None:
    from flatbuffers import flexbuffers

    values = flexbuffers.Loads(options)
    keys = [k for k, v in values.items() if isinstance(v, int)]
    if not keys:
        return None
    key = str(rng.choice(keys))
    values[key] = int(rng.choice(EXTREME_INTS))
    return f"{key}={values[key]}", bytes(flexbuffers.Dumps(values))


def mutate(model_name: str, content: bytes, kind: str, rng: np.random.Generator) -> Mutant:
    """One mutant of ``content`` of the given kind."""
    if kind == "bytes":
        return Mutant(model_name, kind, "bit flips", _flip(content, rng))
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(content, 0)
    op = ours(model)[int(rng.integers(len(ours(model))))]
    graph = model.subgraphs[0]
    if kind == "options":
        options = bytes(op.customOptions)
        extreme = _extreme_option(options, rng) if rng.random() < 0.3 else None
        how, new = extreme or _mutate_bytes(options, rng)
        op.customOptions = list(new)
    elif kind == "buffer":
        constants = [i for i in op.inputs if model.buffers[graph.tensors[i].buffer].data is not None]
        buffer = model.buffers[graph.tensors[int(rng.choice(constants))].buffer]
        how, new = _mutate_bytes(bytes(buffer.data), rng)
        buffer.data = np.frombuffer(new, dtype=np.uint8) if new else None
    else:
        tensor = graph.tensors[int(rng.choice([*op.inputs, *op.outputs]))]
        shape = [int(d) for d in tensor.shape] if tensor.shape is not None else []
        choice = rng.integers(3)
        if choice == 0 and shape:
            axis = int(rng.integers(len(shape)))
            shape[axis] = int(rng.choice(EXTREME_INTS))
            how = f"dim {axis} = {shape[axis]}"
        elif choice == 1 and shape:
            shape, how = shape[:-1], "last dim dropped"
        else:
            shape, how = [*shape, int(rng.choice([1, 2, 7]))], "dim added"
        tensor.shape = np.asarray(shape, dtype=np.int32)
        tensor.shapeSignature = None
    return Mutant(model_name, kind, how, pack(model))


def mutants(count: int, seed: int = 0) -> list[Mutant]:
    """``count`` mutants, the seed models and the kinds taken in turn."""
    rng = np.random.default_rng(seed)
    sources = {name: (ROOT / "models" / f"{name}.tflite").read_bytes() for name in SEED_MODELS}
    return [
        mutate(SEED_MODELS[i % len(SEED_MODELS)], sources[SEED_MODELS[i % len(SEED_MODELS)]], KINDS[i // 3 % 4], rng)
        for i in range(count)
    ]


def worker() -> None:
    """Load, allocate and invoke each model path read from stdin; print one JSON line per model."""
    from tfcompress.runtime import Interpreter

    rng = np.random.default_rng(0)
    for line in sys.stdin:
        try:
            interpreter = Interpreter(line.strip(), num_threads=1)
            for detail in interpreter.get_input_details():
                dtype = detail["dtype"]
                values = (
                    rng.integers(0, 255, detail["shape"])
                    if np.issubdtype(dtype, np.integer)
                    else rng.random(detail["shape"])
                )
                interpreter.set_tensor(detail["index"], values.astype(dtype))
            interpreter.invoke()
            result = {"outcome": "ran", "message": ""}
        except Exception as error:  # every Python exception is a clear error, not a crash
            result = {
                "outcome": "clear error",
                "message": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:200],
            }
        print(json.dumps(result), flush=True)


@dataclass
class Outcome:
    """What one mutant gave."""

    mutant: Mutant
    outcome: str
    message: str


class Workers:
    """A worker process that is replaced after a crash or hang."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.process: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, __file__, "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )

    def run(self, path: Path) -> tuple[str, str]:
        """(outcome, message) of the model at ``path``."""
        if self.process is None or self.process.poll() is not None:
            self.process = self._start()
        self.process.stdin.write(f"{path}\n")
        self.process.stdin.flush()
        reply: list[str] = []
        reader = _Reader(self.process, reply)
        reader.start()
        reader.join(self.timeout)
        if reply and reply[0]:
            result = json.loads(reply[0])
            return result["outcome"], result["message"]
        if reader.is_alive():
            self.process.kill()
            self.process.wait()
            self.process = None
            return "hang", f"no answer in {self.timeout:.0f} s"
        status = self.process.wait()
        self.process = None
        return "crash", f"worker died, exit status {status}"

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait()


class _Reader(threading.Thread):
    """Reads one line of the worker's answer (a thread, so that a hang can be timed out)."""

    def __init__(self, process: subprocess.Popen, out: list[str]):
        super().__init__(daemon=True)
        self.process, self.out = process, out

    def run(self) -> None:
        self.out.append(self.process.stdout.readline())


def run_mutants(items: list[Mutant], timeout: float = 60.0) -> list[Outcome]:
    """Every mutant through the runtime in worker processes."""
    workers = Workers(timeout)
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, mutant in enumerate(items):
            path = Path(tmp) / f"mutant_{n}.tflite"
            path.write_bytes(mutant.content)
            outcome, message = workers.run(path)
            outcomes.append(Outcome(mutant, outcome, message))
    workers.close()
    return outcomes


def markdown(outcomes: list[Outcome]) -> str:
    """Counts per model and kind, and the distinct messages of the clear errors."""
    counts = Counter((o.mutant.model, o.mutant.kind, o.outcome) for o in outcomes)
    lines = [
        "# Mutated `.tflite` files through the runtime",
        "",
        f"Written by `benchmarks/fuzz_tflite.py`: {len(outcomes)} mutants, each loaded, allocated and invoked in",
        "`tfcompress.runtime.Interpreter` (ai-edge-litert with our op library) in a worker process.",
        "",
        "| model | mutation | " + " | ".join(OUTCOMES) + " |",
        "|---|---|" + "---:|" * len(OUTCOMES),
    ]
    for model in SEED_MODELS:
        for kind in KINDS:
            lines.append(f"| {model} | {kind} | " + " | ".join(str(counts[model, kind, o]) for o in OUTCOMES) + " |")
    totals = Counter(o.outcome for o in outcomes)
    lines.append("| all | | " + " | ".join(f"**{totals[o]}**" for o in OUTCOMES) + " |")
    messages = Counter(
        o.message.split(":")[0] + ": " + o.message.split(":", 1)[-1][:90]
        for o in outcomes
        if o.outcome == "clear error"
    )
    lines += ["", "Most frequent clear errors:", ""]
    lines += [f"- {n} x `{message.strip()}`" for message, n in messages.most_common(8)]
    bad = [o for o in outcomes if o.outcome in ("crash", "hang")]
    lines += ["", "Crashes and hangs:" if bad else "No crash, no hang.", ""]
    lines += [f"- {o.mutant.model} {o.mutant.kind} ({o.mutant.how}): {o.message}" for o in bad]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Make the mutants, run them, write the table; exit 1 when any crashed or hung."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mutants", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a mutant counts as a hang")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker()
        return 0
    outcomes = run_mutants(mutants(args.mutants, args.seed), args.timeout)
    table = markdown(outcomes)
    RESULTS.write_text(table)
    print(table)
    return 1 if any(o.outcome in ("crash", "hang") for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
