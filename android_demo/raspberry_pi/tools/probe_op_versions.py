#!/usr/bin/env python3
"""The highest version of every builtin op a TFLite runtime registers, probed in that runtime.

    RUNTIME_PYTHON -m ... (run by `make runtime-op-versions`, or:)
    python3 probe_op_versions.py --schema-dir DIR [--runtime tflite_runtime] -o table.json

A runtime looks up a kernel for every entry of a model's ``operator_codes`` when it builds
the interpreter, used by a node or not, and fails with "Didn't find op for builtin opcode
'X' version 'V'" when it has none. So a tiny valid model with one extra, unused operator
code (op X, version V) loads exactly when the runtime registers X at version V. For each
builtin op, versions 1, 2, ... are tried until one is refused; the table maps the op's name
to the highest version that loaded (ops the runtime lacks at version 1 are left out).

Runs with only the runtime, numpy and the ``flatbuffers`` package: the TFLite schema reader
(``schema_py_generated.py``, as ai-edge-litert ships it) is imported from ``--schema-dir``.
"""

from __future__ import annotations

import argparse
import json
import sys

MAX_VERSION = 30


def tiny_model(schema) -> object:
    """A float ``ADD`` of two [1] inputs, as the schema's object API (``ModelT``)."""
    tensors = []
    for index in range(3):
        tensor = schema.TensorT()
        tensor.shape = [1]
        tensor.type = schema.TensorType.FLOAT32
        tensor.buffer = 0
        tensor.name = f"t{index}".encode()
        tensors.append(tensor)
    operator = schema.OperatorT()
    operator.opcodeIndex = 0
    operator.inputs, operator.outputs = [0, 1], [2]
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.inputs, subgraph.outputs, subgraph.operators = tensors, [0, 1], [2], [operator]
    add = schema.OperatorCodeT()
    add.builtinCode = add.deprecatedBuiltinCode = schema.BuiltinOperator.ADD
    add.version = 1
    model = schema.ModelT()
    model.version = 3
    model.operatorCodes = [add]
    model.subgraphs = [subgraph]
    model.buffers = [schema.BufferT()]
    return model


def with_extra_code(schema, model, code: int, version: int) -> bytes:
    """The model's bytes with one more, unused operator code ``(code, version)``."""
    import flatbuffers

    extra = schema.OperatorCodeT()
    extra.builtinCode = code
    extra.deprecatedBuiltinCode = min(code, 127)  # the int8 field: 127 means "see builtin_code"
    extra.version = version
    model.operatorCodes = [*model.operatorCodes[:1], extra]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def loads(interpreter_module, content: bytes) -> bool:
    try:
        interpreter_module.Interpreter(model_content=content).allocate_tensors()
    except (ValueError, RuntimeError):
        return False
    return True


def probe(schema, interpreter_module) -> dict[str, int]:
    """``{op name: highest version that loads}`` for every builtin op the runtime has at version 1."""
    model = tiny_model(schema)
    if not loads(interpreter_module, with_extra_code(schema, model, schema.BuiltinOperator.ADD, 1)):
        raise SystemExit("probe_op_versions: the probe model does not load in this runtime")
    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    table = {}
    for code in sorted(names):
        highest = 0
        for version in range(1, MAX_VERSION + 1):
            if not loads(interpreter_module, with_extra_code(schema, model, code, version)):
                break
            highest = version
        if highest:
            table[names[code]] = highest
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema-dir", required=True, help="folder holding schema_py_generated.py")
    parser.add_argument("--runtime", default="tflite_runtime", choices=("tflite_runtime", "ai_edge_litert"))
    parser.add_argument("-o", "--output", required=True, help="the JSON table to write")
    args = parser.parse_args()
    sys.path.insert(0, args.schema_dir)
    import schema_py_generated as schema

    if args.runtime == "tflite_runtime":
        import tflite_runtime
        from tflite_runtime import interpreter
    else:
        import ai_edge_litert as tflite_runtime
        from ai_edge_litert import interpreter
    version = getattr(tflite_runtime, "__version__", "unknown")
    table = probe(schema, interpreter)
    document = {"runtime": args.runtime.replace("_", "-"), "version": version, "max_builtin_versions": table}
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=1, sort_keys=True)
        handle.write("\n")
    print(f"{args.runtime} {version}: {len(table)} builtin ops -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
