"""Seed corpora for the libFuzzer targets, taken from the shipped models' custom-op nodes.

Each node of ``models/flowers_{pq,dc,binary}.tflite`` that one of our ops runs is written in
the input format of ``fuzz_op.cc`` (its options, tensor types, shapes and constant payloads),
its options alone for ``fuzz_options`` and its Huffman streams for ``fuzz_huffman``. The shipped
models hold no ``TfcBinaryDense``; its seeds are the binary convs' first taps as a dense layer.
The file is read with ai-edge-litert's generated schema reader (``schema_py_generated``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SEED_MODELS = ("flowers_pq", "flowers_dc", "flowers_binary")
# fuzz target -> the op its fuzz_op build runs (fuzz.cmake)
OP_TARGETS = {
    "TfcBinaryConv2D": "fuzz_binary_conv2d",
    "TfcBinaryDense": "fuzz_binary_dense",
    "TfcPQDecode": "fuzz_pq_decode",
    "TfcPQDense": "fuzz_pq_dense",
    "TfcSparseDecode": "fuzz_sparse_decode",
}
MAX_SEED_BYTES = 16384
MAX_SEEDS_PER_TARGET = 8
# TFLite schema TensorType -> TfLiteType (tensorflow/lite/core/c/c_api_types.h)
_TFLITE_TYPE = {0: 1, 1: 10, 2: 2, 3: 3, 4: 4, 9: 9}  # FLOAT32, FLOAT16, INT32, UINT8, INT64, INT8


@dataclass
class Tensor:
    """One tensor of a node: its TfLiteType, shape and constant bytes (``None``: not a constant)."""

    tflite_type: int
    shape: list[int]
    data: bytes | None


def encode_node(options: bytes, inputs: list[Tensor], outputs: list[Tensor]) -> bytes:
    """A node in ``fuzz_op.cc``'s input format (see its header comment)."""
    out = struct.pack("<H", len(options)) + options + struct.pack("<BB", len(inputs), len(outputs))
    for tensor in [*inputs, *outputs]:
        flags = 1 if tensor.data is not None else 0
        out += struct.pack("<BBB", tensor.tflite_type, flags, len(tensor.shape))
        out += struct.pack(f"<{len(tensor.shape)}i", *tensor.shape)
        if tensor.data is not None:
            out += struct.pack("<I", len(tensor.data)) + tensor.data
    return out


def encode_huffman(options: dict, streams: list[bytes]) -> bytes | None:
    """A ``TfcSparseDecode`` node in ``fuzz_huffman.cc``'s input format, or ``None`` if it does not fit."""
    gaps, indices, gap_lengths, index_lengths = streams[:4]
    elements = int(np.prod([options[f"dim{d}"] for d in range(options["rank"])]))
    if elements >= 1 << 20 or options["entries"] >= 1 << 20 or len(gaps) >= 1 << 16:
        return None
    head = struct.pack("<BB", options["gap_bits"], options["weight_bits"] - 1)
    head += elements.to_bytes(3, "little") + options["entries"].to_bytes(3, "little")
    return head + gap_lengths + index_lengths + struct.pack("<H", len(gaps)) + gaps + indices


def _nodes(path: Path):
    """(op name, options bytes, input tensors, output tensors) of each custom op node of ours."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    graph = model.subgraphs[0]

    def tensor(index: int) -> Tensor:
        t = graph.tensors[index]
        data = model.buffers[t.buffer].data
        shape = [] if t.shape is None else [int(d) for d in t.shape]
        return Tensor(_TFLITE_TYPE.get(t.type, 0), shape, None if data is None or not len(data) else bytes(data))

    for op in graph.operators:
        name = (model.operatorCodes[op.opcodeIndex].customCode or b"").decode()
        if name in OP_TARGETS:
            options = bytes(op.customOptions) if op.customOptions is not None else b""
            yield name, options, [tensor(i) for i in op.inputs], [tensor(i) for i in op.outputs]


def _dense_from_conv(options: bytes, inputs: list[Tensor]) -> bytes:
    """A ``TfcBinaryDense`` node made of a binary conv's first tap, multiplier and bias."""
    from flatbuffers import flexbuffers

    conv = flexbuffers.Loads(options)
    in_c = int(conv["in_channels"])
    out_c, _, _, words = inputs[1].shape
    taps = np.frombuffer(inputs[1].data, dtype=np.int32).reshape(out_c, -1, words)
    dense_options = bytes(flexbuffers.Dumps({"activation": conv.get("activation", "NONE"), "in_channels": in_c}))
    weights = Tensor(2, [out_c, words], taps[:, 0, :].tobytes())
    return encode_node(dense_options, [Tensor(1, [1, in_c], None), weights, *inputs[2:]], [Tensor(1, [1, out_c], None)])


def seeds(models_dir: Path = ROOT / "models") -> dict[str, list[bytes]]:
    """Seed inputs per fuzz target, smallest first, at most :data:`MAX_SEEDS_PER_TARGET` each."""
    from flatbuffers import flexbuffers

    found: dict[str, set[bytes]] = {name: set() for name in [*OP_TARGETS.values(), "fuzz_options", "fuzz_huffman"]}
    for model in SEED_MODELS:
        for name, options, inputs, outputs in _nodes(models_dir / f"{model}.tflite"):
            found["fuzz_options"].add(options)
            found[OP_TARGETS[name]].add(encode_node(options, inputs, outputs))
            if name == "TfcBinaryConv2D":
                found["fuzz_binary_dense"].add(_dense_from_conv(options, inputs))
            if name == "TfcSparseDecode":
                huffman = encode_huffman(flexbuffers.Loads(options), [t.data or b"" for t in inputs])
                if huffman is not None:
                    found["fuzz_huffman"].add(huffman)
    return {
        target: sorted((s for s in items if len(s) <= MAX_SEED_BYTES), key=lambda s: (len(s), s))[:MAX_SEEDS_PER_TARGET]
        for target, items in found.items()
    }


def write_seeds(directory: Path, models_dir: Path = ROOT / "models") -> dict[str, int]:
    """Write the seeds into ``directory/<target>/seed-<n>`` (replacing old ones); seeds per target."""
    counts = {}
    for target, items in seeds(models_dir).items():
        folder = directory / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        for n, item in enumerate(items):
            (folder / f"seed-{n}").write_bytes(item)
        counts[target] = len(items)
    return counts
