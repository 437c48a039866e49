"""PQ custom ops: packing, the native kernels against the reference and Keras, and the .tflite end to end.

Needs ``libtfcompress_ops.so`` built with the PQ ops (``converters/src/ops/pq_*``).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from tflite_run import run_batch

from tfcompress.convert import to_tflite
from tfcompress.errors import TfcompressError
from tfcompress.pq import PQConv2D, PQDense
from tfcompress.pq.layout import decode
from tfcompress.pq.lowering import lookup_table_pays
from tfcompress.pq.native import dense_variants, pq_decode, pq_dense
from tfcompress.pq.packing import pack_codes, unpack_codes
from tfcompress.runtime import Interpreter, custom_op_names


def _half(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float16).astype(np.float32)


def _assign(layer, codebook: np.ndarray, codes: np.ndarray, bias: np.ndarray) -> None:
    layer.codebook.assign(codebook)
    layer.codes.assign(codes)
    if layer.bias is not None:
        layer.bias.assign(bias)


@pytest.mark.parametrize("k", [2, 5, 16, 200, 256, 300, 2048])
def test_codes_pack_to_ceil_log2_k_bits_and_back(k):
    codes = np.random.default_rng(k).integers(0, k, (7, 13))
    packed = pack_codes(codes, k)
    bits = max(1, int(np.ceil(np.log2(k))))
    assert packed.dtype == np.uint8 and packed.size == -(-codes.size * bits // 8)
    np.testing.assert_array_equal(unpack_codes(packed, k, codes.size), codes.ravel())


@pytest.mark.parametrize(
    ("k", "d", "cin", "cout", "rows", "activation"),
    [(16, 4, 36, 70, 3, "NONE"), (300, 4, 20, 129, 2, "RELU"), (256, 8, 64, 200, 1, "RELU6"), (8, 3, 9, 5, 4, "NONE")],
)
def test_dense_kernels_match_reference_and_keras(k, d, cin, cout, rows, activation):
    rng = np.random.default_rng(cin)
    codes = rng.integers(0, k, (cin // d, cout)).astype(np.int32)
    codebook = _half(rng.standard_normal((k, d)))
    bias = rng.standard_normal(cout).astype(np.float32)
    x = rng.standard_normal((rows, cin)).astype(np.float32)
    layer = PQDense(cout, block_size=d, n_centroids=k, activation=activation.lower() if activation != "NONE" else None)
    layer.build((None, cin))
    _assign(layer, codebook, codes, bias)
    expected = keras.ops.convert_to_numpy(layer(x))
    reference, _ = pq_dense(x, codes, codebook, bias, "reference", activation)
    np.testing.assert_allclose(reference, expected, rtol=1e-5, atol=1e-4)
    for variant in dense_variants():
        for threads in (1, 2):
            output, _ = pq_dense(x, codes, codebook, bias, variant, activation, threads=threads)
            np.testing.assert_allclose(output, reference, rtol=1e-5, atol=1e-4, err_msg=variant)


@pytest.mark.parametrize("k", [256, 2048])
def test_large_dense_layer_splits_across_threads(k):
    """Threads split the blocks and add their partial sums; the activation comes after the sum."""
    rng = np.random.default_rng(0)
    codes = rng.integers(0, k, (1024 // 4, 1000)).astype(np.int32)  # 1000 outputs: not a multiple of 64
    codebook = _half(rng.standard_normal((k, 4)))
    bias = rng.standard_normal(1000).astype(np.float32)
    x = rng.standard_normal((2, 1024)).astype(np.float32)
    expected = np.maximum(x @ decode(codebook, codes, (1024, 1000)) + bias, 0.0)
    for variant in dense_variants():
        for threads in (2, 3):
            output, _ = pq_dense(x, codes, codebook, bias, variant, "RELU", threads=threads)
            np.testing.assert_allclose(output, expected, rtol=1e-4, atol=1e-3, err_msg=f"{variant}, {threads} threads")


def test_decode_matches_the_layout():
    rng = np.random.default_rng(1)
    for shape, d, k in (((3, 3, 5, 7), 9, 16), ((3, 3, 6, 4), 18, 300), ((1, 1, 12, 9), 4, 8), ((2, 3, 2, 3), 3, 4)):
        codes = rng.integers(0, k, (int(np.prod(shape[:3])) // d, shape[3]))
        codebook = _half(rng.standard_normal((k, d)))
        expected = np.transpose(decode(codebook, codes, shape), (3, 0, 1, 2))
        np.testing.assert_array_equal(pq_decode(codes, codebook, shape), expected)


def test_kernel_errors_are_reported():
    codes = np.zeros((2, 3), np.int32)
    with pytest.raises(TfcompressError, match="unknown or unsupported"):
        pq_dense(np.zeros((1, 8), np.float32), codes, np.zeros((4, 4), np.float32), variant="nope")


def _pq_model(seed: int = 0) -> keras.Model:
    rng = np.random.default_rng(seed)
    inputs = keras.Input((11, 9, 6))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = PQConv2D(10, 3, block_size=18, n_centroids=32, strides=2, padding="same", activation="relu", name="c1")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = PQConv2D(12, 1, block_size=5, n_centroids=8, use_bias=False, name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = PQDense(7, block_size=4, n_centroids=300, activation="relu", name="d1")(x)
    outputs = PQDense(3, block_size=7, n_centroids=2, activation="tanh", name="d2")(x)
    model = keras.Model(inputs, outputs)
    for layer in model.layers:
        if isinstance(layer, PQConv2D | PQDense):
            codebook = _half(rng.standard_normal(layer.codebook.shape) * 0.5)
            codes = rng.integers(0, layer.n_centroids, layer.codes.shape).astype(np.int32)
            bias = rng.standard_normal(layer.codes.shape[-1]).astype(np.float32) * 0.1
            _assign(layer, codebook, codes, bias)
    bn = model.get_layer("bn")
    bn.set_weights([w + rng.uniform(0.1, 0.5, w.shape).astype(np.float32) for w in bn.get_weights()])
    return model


def test_tflite_runs_the_pq_ops_like_keras():
    model = _pq_model()
    content = to_tflite(model)
    assert sorted(set(custom_op_names(content))) == ["TfcPQDecode", "TfcPQDense"]
    x = np.random.default_rng(2).standard_normal((3, 11, 9, 6)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    for threads in (1, 2):
        interpreter = Interpreter(model_content=content, num_threads=threads)
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, x.shape)  # batch > 1
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        np.testing.assert_allclose(output, expected, rtol=1e-4, atol=1e-4)


def test_tflite_holds_packed_codes_and_half_codebooks_only():
    from ai_edge_litert import schema_py_generated as schema

    model = _pq_model()
    flat = schema.ModelT.InitFromPackedBuf(to_tflite(model), 0)
    graph = flat.subgraphs[0]
    sizes = {}
    for tensor in graph.tensors:
        data = flat.buffers[tensor.buffer].data
        if data is not None and len(data):
            sizes[tensor.name.decode()] = (tensor.type, len(data))
    # c1: 8*9/18 = 4 blocks x 10 outputs at 5 bits -> 25 bytes; codebook 32 x 18 float16.
    assert (3, 25) in sizes.values()  # uint8 packed codes
    assert (1, 32 * 18 * 2) in sizes.values()  # float16 codebook
    # No float32 constant as large as a decoded kernel of c1 (10 x 3 x 3 x 8 floats).
    assert not [name for name, (kind, size) in sizes.items() if kind == 0 and size >= 10 * 72 * 4]


@pytest.mark.parametrize(
    ("size", "d", "k", "lookup"),
    [(4096, 8, 256, True), (4096, 4, 2048, False), (4096, 4, 256, False), (1024, 8, 256, False), (64, 4, 300, True)],
)
def test_lookup_table_only_where_it_pays(size, d, k, lookup):
    """The measured settings of ``benchmarks/pq.py dense``: the table where it beat float, small layers too."""
    assert lookup_table_pays(size, size, d, k) is lookup


def test_dense_where_the_table_does_not_pay_is_decoded_and_matches_keras():
    rng = np.random.default_rng(5)
    inputs = keras.Input((1024,))
    layer = PQDense(1024, block_size=4, n_centroids=2048, activation="relu")
    model = keras.Model(inputs, layer(inputs))
    codes = rng.integers(0, 2048, layer.codes.shape).astype(np.int32)
    _assign(layer, _half(rng.standard_normal((2048, 4))), codes, rng.standard_normal(1024).astype(np.float32))
    content = to_tflite(model)
    assert custom_op_names(content) == ["TfcPQDecode"]
    assert len(content) < 1024 * 1024  # codes and codebook only: the file holds no float kernel
    x = rng.standard_normal((3, 1024)).astype(np.float32)
    np.testing.assert_allclose(run_batch(content, x), model.predict(x, verbose=0), rtol=1e-4, atol=1e-3)
