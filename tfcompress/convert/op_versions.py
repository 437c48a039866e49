"""Which TFLite runtimes can load a ``.tflite`` file: its builtin op versions against each runtime's.

A TFLite runtime registers each builtin op up to a highest version; a file with a newer
version of any op fails to load ("Didn't find op for builtin opcode 'FULLY_CONNECTED' version
'12'"). The apps support two runtimes: ai-edge-litert (the default, >= 2.3) and tflite-runtime
2.14 (the last release published for the Raspberry Pi, the Pi app's fallback):
:data:`OLDEST_RUNTIME` is the one every file the kit writes must load in.

Each runtime's table (``runtimes/<runtime>-<version>.json``) was probed in that runtime by
``android_demo/raspberry_pi/tools/probe_op_versions.py`` (``make runtime-op-versions``): a tiny
model with one extra, unused operator code loads exactly when the runtime registers that op
at that version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TABLES = Path(__file__).resolve().parent / "runtimes"

#: The oldest runtime the apps support; every file the kit writes must load in it.
OLDEST_RUNTIME = "tflite-runtime-2.14.0"


@dataclass(frozen=True)
class NewerOp:
    """A builtin op of a file at a version the runtime does not register."""

    op: str
    version: int
    supported: int  # the runtime's highest version (0: the runtime lacks the op)

    def describe(self) -> str:
        have = f"has up to v{self.supported}" if self.supported else "lacks it"
        return f"{self.op} v{self.version} (it {have})"


@cache
def runtime_versions(runtime: str = OLDEST_RUNTIME) -> dict[str, int]:
    """``{builtin op name: highest version}`` registered by ``runtime`` (a table of :data:`TABLES`)."""
    path = TABLES / f"{runtime}.json"
    return dict(json.loads(path.read_text(encoding="utf-8"))["max_builtin_versions"])


def builtin_op_versions(model_content: bytes) -> dict[str, int]:
    """``{builtin op name: highest version in the file}`` (custom ops are left out)."""
    from ai_edge_litert import schema_py_generated as schema

    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = schema.Model.GetRootAsModel(model_content, 0)
    versions: dict[str, int] = {}
    for index in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(index)
        if code.CustomCode():
            continue
        name = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        versions[name] = max(versions.get(name, 0), code.Version())
    return versions


def newer_ops(model_content: bytes, runtime: str = OLDEST_RUNTIME) -> list[NewerOp]:
    """The builtin ops of the file that ``runtime`` cannot load (empty: it loads them all)."""
    supported = runtime_versions(runtime)
    return [
        NewerOp(op, version, supported.get(op, 0))
        for op, version in sorted(builtin_op_versions(model_content).items())
        if version > supported.get(op, 0)
    ]


def runtime_name(runtime: str) -> str:
    """``tflite-runtime-2.14.0`` as ``tflite-runtime 2.14.0``."""
    package, _, version = runtime.rpartition("-")
    return f"{package} {version}"
