"""Weight decoders (``TfcPQDecode``, ``TfcSparseDecode``) become constants that XNNPACK takes.

The claiming delegate decodes each kernel once, when it is applied, into a read-only constant
tensor; XNNPACK, applied after it at the first ``allocate_tensors``, then sees static filters and
delegates the ``CONV_2D`` / ``FULLY_CONNECTED`` nodes that read them. Checked here through node
inspection (every conv's filter is an input of a delegate node: XNNPACK's partition, never our
decoders, whose inputs are codes and codebooks), against Keras, with XNNPACK switched off (the
builtin kernels read the same constants) and in ``tf.lite``. The file holds no float kernel.
Needs ``libtfcompress_ops.so``.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfcompress.convert import to_tflite
from tfcompress.pq import PQConv2D, PQDense
from tfcompress.pruning import ConstantSparsity, SharedConv2D, SharedDense, deep_compress, prune, strip
from tfcompress.runtime import Interpreter, ops_library_path

WEIGHT_OPS = ("CONV_2D", "FULLY_CONNECTED")


def _pq_model() -> keras.Model:
    """Odd channel counts, stride 2, both paddings, BN between PQ convs, a PQ dense head."""
    rng = np.random.default_rng(0)
    inputs = keras.Input((13, 11, 5))
    x = keras.layers.Conv2D(7, 3, padding="same", name="stem")(inputs)
    x = PQConv2D(9, 3, block_size=9, n_centroids=16, strides=2, padding="same", activation="relu", name="c1")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = PQConv2D(11, 3, block_size=27, n_centroids=32, padding="valid", use_bias=False, name="c2")(x)
    x = PQConv2D(13, 1, block_size=11, n_centroids=8, strides=2, padding="valid", name="c3")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = PQDense(5, block_size=13, n_centroids=4, name="head")(x)
    model = keras.Model(inputs, outputs)
    for layer in model.layers:
        if isinstance(layer, PQConv2D | PQDense):
            layer.codebook.assign(rng.standard_normal(layer.codebook.shape).astype(np.float16).astype(np.float32))
            layer.codes.assign(rng.integers(0, layer.n_centroids, layer.codes.shape).astype(np.int32))
            if layer.bias is not None:
                layer.bias.assign(rng.standard_normal(layer.bias.shape).astype(np.float32) * 0.1)
    bn = model.get_layer("bn")
    bn.set_weights([w + rng.uniform(0.1, 0.5, w.shape).astype(np.float32) for w in bn.get_weights()])
    return model


def _dc_model(gap_bits: int = 4) -> keras.Model:
    """A 70%-pruned model; ``gap_bits=0`` stores every kernel in dense mode (no position stream)."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((9, 7, 3))
    x = keras.layers.Conv2D(13, 3, padding="same", activation="relu", name="conv_a")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Conv2D(21, 3, strides=2, padding="valid", name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(6, name="logits")(x)
    pruned = strip(prune(keras.Model(inputs, outputs), ConstantSparsity(0.7)))
    return deep_compress(pruned, conv_bits=5, dense_bits=4, gap_bits=gap_bits)


def _model(kind: str) -> keras.Model:
    return {"pq": _pq_model, "dc": _dc_model, "dc-dense": lambda: _dc_model(gap_bits=0)}[kind]()


def _decoded_kernels(model: keras.Model) -> list[np.ndarray]:
    """Every decoded kernel in TFLite's layout (OHWI for convs, [C_out, C_in] for dense)."""
    kernels = []
    for layer in model.layers:
        if isinstance(layer, PQConv2D):
            kernels.append(np.transpose(keras.ops.convert_to_numpy(layer.decoded_kernel()), (3, 0, 1, 2)))
        elif isinstance(layer, SharedConv2D):
            kernels.append(np.transpose(keras.ops.convert_to_numpy(layer.kernel), (3, 0, 1, 2)))
        elif isinstance(layer, SharedDense):
            kernels.append(keras.ops.convert_to_numpy(layer.kernel).T)
    return kernels


def _run(interpreter, x: np.ndarray) -> np.ndarray:
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, x.shape)  # batch > 1: prepared again after the decoding
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _weight_inputs(interpreter) -> tuple[list[int], set[int]]:
    """Filter tensors of the conv / dense nodes, and the tensors some delegate node consumes."""
    ops = interpreter._get_ops_details()
    filters = [int(op["inputs"][1]) for op in ops if op["op_name"] in WEIGHT_OPS]
    delegated = {int(t) for op in ops if op["op_name"] == "DELEGATE" for t in op["inputs"]}
    return filters, delegated


def _assert_filters_are_the_decoded_kernels(interpreter, model: keras.Model, filters: list[int]) -> None:
    stored = [interpreter.get_tensor(index) for index in filters]
    for kernel in _decoded_kernels(model):
        assert any(s.shape == kernel.shape and np.array_equal(s, kernel) for s in stored), kernel.shape


def _assert_float_weights_absent(content: bytes, model: keras.Model) -> None:
    from ai_edge_litert import schema_py_generated as schema

    flat = schema.ModelT.InitFromPackedBuf(content, 0)
    float_bytes = [
        len(flat.buffers[t.buffer].data)
        for t in flat.subgraphs[0].tensors
        if t.type == 0 and flat.buffers[t.buffer].data is not None
    ]
    kernel_bytes = {4 * kernel.size for kernel in _decoded_kernels(model)}
    assert len(kernel_bytes) >= 3 and not kernel_bytes & set(float_bytes)


@pytest.fixture(scope="module", params=["pq", "dc", "dc-dense"])
def case(request):
    model = _model(request.param)
    content = to_tflite(model)
    x = np.random.default_rng(3).uniform(-1, 1, (3, *model.inputs[0].shape[1:])).astype(np.float32)
    return model, content, x, np.asarray(model.predict(x, verbose=0))


def test_file_holds_no_decoded_float_kernel(case):
    model, content, _, _ = case
    _assert_float_weights_absent(content, model)


@pytest.mark.parametrize("threads", [1, 2])
def test_xnnpack_takes_the_convs_on_decoded_constants(case, threads):
    model, content, x, expected = case
    interpreter = Interpreter(model_content=content, num_threads=threads)
    filters, delegated = _weight_inputs(interpreter)
    weight_layers = keras.layers.Conv2D | keras.layers.Dense | PQConv2D
    assert len(filters) == sum(isinstance(layer, weight_layers) for layer in model.layers)
    assert set(filters) <= delegated  # each conv / dense sits in an XNNPACK partition
    _assert_filters_are_the_decoded_kernels(interpreter, model, filters)
    np.testing.assert_allclose(_run(interpreter, x), expected, rtol=1e-4, atol=1e-4)


def test_builtin_kernels_run_on_the_constants_without_xnnpack(case):
    from ai_edge_litert.interpreter import Interpreter as LiteRT
    from ai_edge_litert.interpreter import OpResolverType, load_delegate

    model, content, x, expected = case
    interpreter = LiteRT(
        model_content=content,
        experimental_delegates=[load_delegate(ops_library_path())],
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    filters, delegated = _weight_inputs(interpreter)
    assert not set(filters) & delegated  # no XNNPACK: the builtin ops read the constants
    _assert_filters_are_the_decoded_kernels(interpreter, model, filters)
    np.testing.assert_allclose(_run(interpreter, x), expected, rtol=1e-4, atol=1e-4)


def test_tf_lite_takes_the_convs_too(case):
    _, content, x, expected = case
    interpreter = Interpreter(model_content=content, num_threads=2, runtime="tensorflow")
    filters, delegated = _weight_inputs(interpreter)
    assert set(filters) <= delegated
    np.testing.assert_allclose(_run(interpreter, x), expected, rtol=1e-4, atol=1e-4)


def test_one_delegate_serves_two_interpreters():
    """The decoded constants belong to the delegate: a second interpreter decodes its own."""
    from ai_edge_litert.interpreter import Interpreter as LiteRT
    from ai_edge_litert.interpreter import load_delegate

    model = _pq_model()
    content = to_tflite(model)
    x = np.random.default_rng(4).uniform(-1, 1, (1, *model.inputs[0].shape[1:])).astype(np.float32)
    delegate = load_delegate(ops_library_path())
    first = LiteRT(model_content=content, experimental_delegates=[delegate])
    second = LiteRT(model_content=content, experimental_delegates=[delegate])
    first.allocate_tensors()
    second.allocate_tensors()
    y_first = _run(first, x)
    del first
    np.testing.assert_array_equal(_run(second, x), y_first)


def _with_options(content: bytes, op_name: str, change) -> bytes:
    """``content`` with the custom options of the first ``op_name`` node passed through ``change``."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema
    from flatbuffers import flexbuffers

    flat = schema.ModelT.InitFromPackedBuf(content, 0)
    codes = [code.customCode for code in flat.operatorCodes]
    op = next(op for op in flat.subgraphs[0].operators if codes[op.opcodeIndex] == op_name.encode())
    op.customOptions = list(flexbuffers.Dumps(change(flexbuffers.Loads(bytes(op.customOptions)))))
    builder = flatbuffers.Builder(0)
    builder.Finish(flat.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.mark.parametrize(
    ("kind", "op_name", "change", "message"),
    [
        ("pq", "TfcPQDecode", lambda o: {**o, "block_size": 4}, "TfcPQDecode: block_size 4 does not divide"),
        ("pq", "TfcPQDecode", lambda o: {**o, "code_bits": 7}, "TfcPQDecode: code_bits 7 does not match"),
        ("dc", "TfcSparseDecode", lambda o: {**o, "entries": o["entries"] + 500}, "TfcSparseDecode: .*ends"),
        ("dc", "TfcSparseDecode", lambda o: {**o, "dim0": o["dim0"] + 1}, "TfcSparseDecode: .* shape .* is not"),
        ("dc-dense", "TfcSparseDecode", lambda o: {**o, "entries": o["entries"] + 5}, "TfcSparseDecode: .*one entry"),
        ("dc-dense", "TfcSparseDecode", lambda o: {**o, "gap_bits": 9}, r"TfcSparseDecode: .*gap_bits in \[0, 8\]"),
    ],
)
def test_bad_decoder_options_fail_when_the_delegate_is_applied(kind, op_name, change, message):
    content = to_tflite(_model(kind))
    with pytest.raises(RuntimeError, match=message):
        Interpreter(model_content=_with_options(content, op_name, change))
