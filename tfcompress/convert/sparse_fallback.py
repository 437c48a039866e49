"""Sparse int8 files that the XNNPACK delegate takes: store dense just the weights it refuses sparse.

TFLite stores a sparse constant weight tensor in its compressed format and rebuilds it at load
time with a ``DENSIFY`` op. XNNPACK (the default delegate of every stock runtime) takes such a
``DENSIFY``-fed kernel for float convolutions, but not for an int8 ``FULLY_CONNECTED``: the
interpreter then fails with "failed to delegate FULLY_CONNECTED node #41 ... failed to prepare"
(measured on ResNet-8, ResNet-14 and MobileNetV2 pruned to 80%, ai-edge-litert 2.3).

:func:`delegable_sparse` loads the file, and for every node the delegate names in such an
error stores the weights its ``DENSIFY`` ops would rebuild as plain constant tensors (the data
read from the ``DENSIFY`` output after one run with TFLite's own kernels, so it is exactly what
the op computes), drops those ``DENSIFY`` ops, and tries again. Every other weight stays sparse.
"""

from __future__ import annotations

import re

import numpy as np

#: The node the XNNPACK delegate could not take, in the interpreter's error message.
REFUSED_NODE = re.compile(r"failed to delegate (\w+) node #(\d+)")


def refused_node(message: str) -> tuple[str, int] | None:
    """``(op name, node index)`` of a "failed to delegate OP node #N" error, else ``None``."""
    match = REFUSED_NODE.search(message)
    return (match.group(1), int(match.group(2))) if match else None


def _densified_values(content: bytes, tensors: list[int]) -> dict[int, np.ndarray]:
    """The values the ``DENSIFY`` ops write into ``tensors``, computed by TFLite's builtin kernels."""
    from tfcompress.runtime import _first_runtime

    module = _first_runtime(None)
    interpreter = module.Interpreter(
        model_content=content,
        experimental_op_resolver_type=module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        experimental_preserve_all_tensors=True,
    )
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    interpreter.invoke()
    return {index: np.array(interpreter.get_tensor(index)) for index in tensors}


def densify_node_weights(content: bytes, node: int) -> bytes:
    """``content`` with the ``DENSIFY``-fed inputs of operator ``node`` (main graph) stored dense.

    Raises:
        ValueError: no input of that operator comes from a ``DENSIFY`` op.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(content, 0)
    graph = model.subgraphs[0]
    densify = schema.BuiltinOperator.DENSIFY
    producers = {
        output: op
        for op in graph.operators
        if max(
            model.operatorCodes[op.opcodeIndex].builtinCode, model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode
        )
        == densify
        for output in op.outputs
    }
    targets = [tensor for tensor in graph.operators[node].inputs if tensor in producers]
    if not targets:
        raise ValueError(f"no input of node {node} is rebuilt by a DENSIFY op")
    values = _densified_values(content, targets)
    for tensor_index in targets:
        op = producers[tensor_index]
        sparse_tensor = graph.tensors[op.inputs[0]]
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(values[tensor_index].tobytes(), np.uint8)
        model.buffers.append(buffer)
        graph.tensors[tensor_index].buffer = len(model.buffers) - 1
        model.buffers[sparse_tensor.buffer] = schema.BufferT()  # the compressed copy is no longer read
        graph.operators.remove(op)
    builder = flatbuffers.Builder(len(content) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def delegable_sparse(content: bytes, load, max_rounds: int = 64) -> tuple[bytes, list[str]]:
    """``content`` with the weights the delegate refuses sparse stored dense, and which nodes those were.

    Args:
        content: the sparse ``.tflite`` bytes.
        load: loads bytes into an interpreter, raising the runtime's error when it cannot.
        max_rounds: at most this many nodes are densified.

    Raises:
        The runtime's error when a failure names no node whose weights could be densified.
    """
    densified: list[str] = []
    for _ in range(max_rounds):
        try:
            load(content)
        except (RuntimeError, ValueError) as error:
            named = refused_node(str(error))
            if named is None:
                raise
            try:
                content = densify_node_weights(content, named[1])
            except ValueError:
                raise error from None
            densified.append(f"{named[0]} node {named[1]}")
            continue
        return content, densified
    raise RuntimeError(f"the delegate still refused the file after densifying {max_rounds} nodes")
