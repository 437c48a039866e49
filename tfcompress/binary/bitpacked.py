"""Bit-packed activations between binary convolutions in a converted ``.tflite``.

``TfcBinaryConv2D`` only looks at the signs of its input (bit = ``not x >= 0``), so a float
activation whose every reader is a binary conv can travel as its signs, 32 channels per
int32 word (Larq Compute Engine's "bitpacked activations"): the producing op writes

    bits[..., j] bit b = not (y[..., 32 j + b] >= 0)

instead of ``y`` (32x less memory traffic) and the consumers skip their own binarization.
The results are bit-identical: the producer computes ``y`` exactly as for a float output and
packs it with the comparison the consumer would apply.

:func:`bitpack_activations` rewrites a ``.tflite`` accordingly. A tensor is packed only when
it is produced by a ``TfcBinaryConv2D`` and read by nothing but ``TfcBinaryConv2D`` ops (as
their input 0) and is not a graph output; anything else reading it (a float residual add
of a Bi-Real block, a pooling, a dense layer) keeps it float. ``packed_input`` /
``packed_output`` also pack the graph's input and output when they touch only binary convs,
so a single layer can be timed with packed activations on both sides (how LCE compares its
binary convs with int8 convs).
"""

from __future__ import annotations

import numpy as np

CONV_OP = b"TfcBinaryConv2D"


def _load(model_bytes: bytes):
    from ai_edge_litert import schema_py_generated as schema

    return schema, schema.ModelT.InitFromPackedBuf(model_bytes, 0)


def _save(model) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _pack_tensor(schema, tensor, channels: int) -> None:
    """Make ``tensor`` (float ``[..., channels]``) an int32 ``[..., ceil(channels / 32)]`` tensor."""
    words = -(-channels // 32)
    tensor.type = schema.TensorType.INT32
    tensor.shape = np.asarray([*list(tensor.shape)[:-1], words], dtype=np.int32)
    if tensor.shapeSignature is not None and len(tensor.shapeSignature) > 0:
        tensor.shapeSignature = np.asarray([*list(tensor.shapeSignature)[:-1], words], dtype=np.int32)
    tensor.quantization = None


def bitpack_activations(model_bytes: bytes, *, packed_input: bool = False, packed_output: bool = False) -> bytes:
    """Carry the activations between binary convolutions bit-packed (see the module docstring).

    Args:
        model_bytes: a ``.tflite`` with ``TfcBinaryConv2D`` ops (e.g. from ``to_tflite``).
        packed_input: also pack graph inputs read only by binary convs (the caller then feeds
            :func:`tfcompress.native.pack_signs` of the float input).
        packed_output: also pack graph outputs written by a binary conv (the caller gets the
            signs, ``pack_signs`` of the float output).

    Returns:
        The rewritten ``.tflite`` (unchanged when nothing qualifies).
    """
    schema, model = _load(model_bytes)
    changed = False
    for graph in model.subgraphs:
        conv_ops = [op for op in graph.operators if model.operatorCodes[op.opcodeIndex].customCode == CONV_OP]
        if not conv_ops:
            continue
        producers = {int(op.outputs[0]): op for op in conv_ops}
        readers: dict[int, list[tuple[object, int]]] = {}
        for op in graph.operators:
            for slot, index in enumerate(op.inputs if op.inputs is not None else []):
                readers.setdefault(int(index), []).append((op, slot))
        graph_inputs = {int(i) for i in graph.inputs}
        graph_outputs = {int(i) for i in graph.outputs}
        candidates = set(producers) | (graph_inputs if packed_input else set())
        for index in sorted(candidates):
            uses = readers.get(index, [])
            only_binary = bool(uses) and all(op in conv_ops and slot == 0 for op, slot in uses)
            if index in graph_outputs:
                if not packed_output or index not in producers or uses:
                    continue
            elif not only_binary:
                continue
            tensor = graph.tensors[index]
            if tensor.type != schema.TensorType.FLOAT32 or tensor.shape is None or len(tensor.shape) != 4:
                continue
            _pack_tensor(schema, tensor, int(tensor.shape[-1]))
            changed = True
    return _save(model) if changed else model_bytes
