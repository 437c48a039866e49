"""The binary custom ops: every kernel against the reference, the reference against the Keras
layers, the .tflite ops against Keras, and bad options failing in Prepare with a message."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from flatbuffers import flexbuffers
from tflite_run import run_batch

from tfcompress import native, runtime
from tfcompress.binary import BinaryConv2D, BinaryDense
from tfcompress.convert import to_tflite

# (batch, height, width, in_channels, out_channels, kernel, strides, dilation, padding, pad_value)
CONV_CASES = [
    (1, 7, 7, 64, 64, 3, 1, 1, "SAME", 0),
    (2, 9, 7, 70, 13, 3, 1, 1, "SAME", 1),
    (1, 8, 8, 33, 40, 3, 2, 1, "SAME", 0),
    (3, 9, 10, 130, 17, 3, 2, 1, "SAME", 1),
    (1, 10, 9, 5, 9, 3, 1, 2, "VALID", 0),
    (2, 11, 11, 96, 24, 3, 1, 2, "SAME", 1),
    (1, 6, 6, 128, 72, 1, 1, 1, "VALID", 0),
    (1, 8, 7, 31, 8, (2, 3), (2, 1), 1, "SAME", 0),
    (1, 5, 5, 200, 136, 5, 1, 1, "SAME", 1),
    # Rows wider than the kernels' pixel blocks (4 + 2 + 1 remainders), 100 channels, batch 2.
    (2, 13, 19, 100, 24, 3, 1, 1, "SAME", 0),
    (2, 13, 19, 100, 24, 3, 1, 1, "SAME", 1),
    # 256 channels: 72 nibble-plane steps, more than the AVX2 byte counters hold (63).
    (2, 9, 21, 256, 16, 3, 2, 1, "SAME", 0),
    (1, 12, 11, 64, 72, 3, 2, 1, "SAME", 1),
]


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _random_case(case, seed: int):
    batch, height, width, cin, cout, kernel, _, _, _, _ = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, height, width, cin)).astype(np.float32)
    x[0, 0, 0, : min(cin, 7)] = 0.0  # sign(0) = +1
    kh, kw = _pair(kernel)
    weights = rng.standard_normal((cout, kh, kw, cin)).astype(np.float32)
    return x, weights, rng


def _conv_options(case) -> dict:
    _, _, _, cin, _, _, strides, dilation, padding, pad_value = case
    return {
        "in_channels": cin,
        "strides": _pair(strides),
        "dilation_rate": _pair(dilation),
        "padding": padding,
        "pad_value": pad_value,
    }


def _signs(values: np.ndarray) -> np.ndarray:
    return np.where(values >= 0, 1.0, -1.0).astype(np.float32)


def _numpy_conv(x, weights, strides, dilation, padding, pad_value) -> np.ndarray:
    """Independent check of the reference: an explicit padded correlation in numpy."""
    xs = _signs(x)
    _, kh, kw, _ = weights.shape
    batch, height, width, _ = x.shape
    (sh, sw), (dh, dw) = strides, dilation
    if padding == "SAME":
        out_h, out_w = -(-height // sh), -(-width // sw)
        pad_h = max((out_h - 1) * sh + (kh - 1) * dh + 1 - height, 0)
        pad_w = max((out_w - 1) * sw + (kw - 1) * dw + 1 - width, 0)
        pads = ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0))
        xs = np.pad(xs, pads, constant_values=float(pad_value))
    else:
        out_h = (height - (kh - 1) * dh - 1) // sh + 1
        out_w = (width - (kw - 1) * dw - 1) // sw + 1
    ws = _signs(weights)
    out = np.zeros((batch, out_h, out_w, weights.shape[0]), np.float32)
    for ky in range(kh):
        for kx in range(kw):
            patch = xs[:, ky * dh : ky * dh + (out_h - 1) * sh + 1 : sh, kx * dw : kx * dw + (out_w - 1) * sw + 1 : sw]
            out += patch @ ws[:, ky, kx, :].T
    return out


@pytest.mark.parametrize("case", CONV_CASES)
def test_reference_matches_numpy_definition(case):
    x, weights, _ = _random_case(case, seed=1)
    options = _conv_options(case)
    ref = native.binary_conv2d(x, native.pack_signs(weights), kernel="reference", **options)
    expected = _numpy_conv(x, weights, options["strides"], options["dilation_rate"], case[8], case[9])
    np.testing.assert_array_equal(ref, expected)


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("threads", [1, 2])
def test_every_kernel_matches_reference(case, threads):
    x, weights, rng = _random_case(case, seed=2)
    packed = native.pack_signs(weights)
    options = _conv_options(case)
    integer = native.binary_conv2d(x, packed, kernel="reference", **options)
    multiplier = rng.uniform(0.1, 2.0, case[4]).astype(np.float32)
    bias = rng.standard_normal(case[4]).astype(np.float32)
    transformed = native.binary_conv2d(x, packed, multiplier, bias, kernel="reference", activation="RELU", **options)
    for kernel in native.kernels()[1:]:
        got = native.binary_conv2d(x, packed, kernel=kernel, threads=threads, **options)
        np.testing.assert_array_equal(got, integer, err_msg=f"kernel {kernel}")  # the popcount result: exact
        got = native.binary_conv2d(
            x, packed, multiplier, bias, kernel=kernel, threads=threads, activation="RELU", **options
        )
        np.testing.assert_allclose(got, transformed, rtol=1e-6, atol=1e-4, err_msg=f"kernel {kernel}")


def test_relu6_and_padding_bits_ignored():
    x, weights, _ = _random_case(CONV_CASES[2], seed=3)
    packed = native.pack_signs(weights)
    dirty = packed.copy()
    dirty[..., -1] |= np.int32(-(1 << 1))  # set the unused high bits of the last word (33 channels)
    options = _conv_options(CONV_CASES[2])
    multiplier = np.full(weights.shape[0], 0.5, np.float32)
    ref = native.binary_conv2d(x, packed, multiplier, kernel="reference", activation="RELU6", **options)
    assert ref.max() == 6.0 and ref.min() == 0.0
    for kernel in native.kernels()[1:]:
        got = native.binary_conv2d(x, dirty, multiplier, kernel=kernel, activation="RELU6", **options)
        np.testing.assert_allclose(got, ref, atol=1e-5)


def _keras_conv(case, kernel_quantizer: str, activation=None, use_bias=False) -> BinaryConv2D:
    _, height, width, cin, cout, kernel, strides, dilation, padding, pad_value = case
    layer = BinaryConv2D(
        cout,
        kernel,
        strides=strides,
        dilation_rate=dilation,
        padding=padding.lower(),
        pad_values=float(pad_value),
        input_quantizer="ste_sign",
        kernel_quantizer=kernel_quantizer,
        activation=activation,
        use_bias=use_bias,
        bias_initializer="random_normal",
    )
    layer.build((None, height, width, cin))
    return layer


@pytest.mark.parametrize("case", CONV_CASES)
def test_reference_matches_keras_layer(case):
    x, _, _ = _random_case(case, seed=4)
    layer = _keras_conv(case, "ste_sign")
    kernel = keras.ops.convert_to_numpy(layer.kernel)  # [K_h, K_w, C_in, C_out]
    packed = native.pack_signs(np.transpose(kernel, (3, 0, 1, 2)))
    ref = native.binary_conv2d(x, packed, kernel="reference", **_conv_options(case))
    np.testing.assert_array_equal(ref, keras.ops.convert_to_numpy(layer(x)))  # integer: bit-exact

    scaled = _keras_conv(case, "magnitude_aware_sign", activation="relu", use_bias=True)
    kernel = keras.ops.convert_to_numpy(scaled.kernel)
    alpha = np.abs(kernel).mean(axis=(0, 1, 2)).astype(np.float32)
    bias = keras.ops.convert_to_numpy(scaled.bias)
    ref = native.binary_conv2d(
        x,
        native.pack_signs(np.transpose(kernel, (3, 0, 1, 2))),
        alpha,
        bias,
        kernel="auto",
        activation="RELU",
        **_conv_options(case),
    )
    np.testing.assert_allclose(ref, keras.ops.convert_to_numpy(scaled(x)), rtol=1e-5, atol=1e-4)


def _run_tflite(model_bytes: bytes, x: np.ndarray, threads: int = 1) -> np.ndarray:
    interpreter = runtime.Interpreter(model_content=model_bytes, num_threads=threads, runtime="ai_edge_litert")
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _tiny_binary_model() -> keras.Model:
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(40, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = BinaryConv2D(
        40, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign", kernel_quantizer="magnitude_aware_sign"
    )(x)
    shortcut = x
    x = BinaryConv2D(40, 3, padding="same", input_quantizer="approx_sign", kernel_quantizer="ste_sign")(x)
    x = keras.layers.Add()([x, shortcut])
    x = BinaryConv2D(
        70, 3, strides=2, padding="same", activation="relu", input_quantizer="ste_sign", kernel_quantizer="ste_sign"
    )(x)
    x = BinaryConv2D(
        24,
        3,
        dilation_rate=2,
        padding="valid",
        activation="gelu",
        input_quantizer="swish_sign",
        kernel_quantizer="magnitude_aware_sign",
    )(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = BinaryDense(33, activation="relu6", input_quantizer="ste_sign", kernel_quantizer="magnitude_aware_sign")(x)
    x = BinaryDense(5, input_quantizer="ste_sign", kernel_quantizer="ste_sign")(x)
    return keras.Model(inputs, x)


@pytest.fixture(scope="module")
def tiny_model_and_tflite():
    keras.utils.set_random_seed(5)
    model = _tiny_binary_model()
    for layer in model.layers:  # non-trivial batch-norm statistics and biases
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.random.default_rng(0).standard_normal(40).astype(np.float32) * 0.1)
    return model, to_tflite(model)


def _op_names(model_bytes: bytes) -> list[str]:
    """The custom_name of every CUSTOM operator of the main graph, in order."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    codes = [code.customCode for code in model.operatorCodes]
    return [codes[op.opcodeIndex].decode() for op in model.subgraphs[0].operators if codes[op.opcodeIndex]]


def test_whole_binary_model_keras_vs_tflite(tiny_model_and_tflite):
    model, model_bytes = tiny_model_and_tflite
    names = _op_names(model_bytes)
    assert names.count("TfcBinaryConv2D") == 4 and names.count("TfcBinaryDense") == 2
    x = np.random.default_rng(6).uniform(0, 255, (1, 12, 12, 3)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(model(x))
    for threads in (1, 2):
        np.testing.assert_allclose(_run_tflite(model_bytes, x, threads), expected, rtol=1e-4, atol=1e-3)


def test_lowered_tensorflow_graph_matches_keras(tiny_model_and_tflite):
    """The composite functions' own bodies (run where no converter fuses them) compute the same."""
    from tfcompress.convert import lowered

    model, _ = tiny_model_and_tflite
    x = np.random.default_rng(11).uniform(0, 255, (2, 12, 12, 3)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(model(x))
    with lowered(model) as layers:
        got = keras.ops.convert_to_numpy(model(x))
    assert len(layers) == 6
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_packed_weights_are_32x_smaller(tiny_model_and_tflite):
    from ai_edge_litert import schema_py_generated as schema

    _, model_bytes = tiny_model_and_tflite
    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    graph = model.subgraphs[0]
    conv_ops = [op for op in graph.operators if model.operatorCodes[op.opcodeIndex].customCode == b"TfcBinaryConv2D"]
    weights = graph.tensors[conv_ops[1].inputs[1]]
    assert list(weights.shape) == [40, 3, 3, 2] and weights.type == schema.TensorType.INT32
    assert len(model.buffers[weights.buffer].data) == 40 * 3 * 3 * 2 * 4  # 40*3*3*40 floats would be 57600 B
    options = flexbuffers.Loads(bytes(conv_ops[0].customOptions))
    assert options["padding"] == "SAME" and options["pad_value"] == 1 and options["in_channels"] == 40


@pytest.mark.parametrize("batch", [1, 3])
def test_dense_op_matches_keras_with_batch(batch):
    keras.utils.set_random_seed(7)
    inputs = keras.Input((100,))
    outputs = BinaryDense(
        67, input_quantizer="ste_sign", kernel_quantizer="magnitude_aware_sign", bias_initializer="random_normal"
    )(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(batch).standard_normal((batch, 100)).astype(np.float32)
    got = run_batch(to_tflite(model), x)
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(model(x)), rtol=1e-5, atol=1e-4)


def test_non_binary_layer_keeps_float_graph():
    inputs = keras.Input((6, 6, 4))
    outputs = BinaryConv2D(3, 3, kernel_quantizer="ste_sign")(inputs)  # float inputs: not an XNOR op
    model_bytes = to_tflite(keras.Model(inputs, outputs))
    assert runtime.custom_op_names(model_bytes) == []


_FORCED_KERNEL_SCRIPT = """
import sys
import numpy as np
from tfcompress import native, runtime

model, x_path = sys.argv[1], sys.argv[2]
x = np.load(x_path)
interpreter = runtime.Interpreter(model, runtime="ai_edge_litert")
interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
interpreter.invoke()
np.save(x_path, interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
print(native.default_kernel())
"""


@pytest.mark.parametrize("kernel", native.kernels()[1:])
def test_forced_kernel_runs_the_op(kernel, tmp_path):
    """``TFCOMPRESS_KERNEL`` picks the kernel the ops use (an AVX2-only CPU gets ``avx2``: the same
    path as forcing it here), and the op gives the reference's result with it."""
    keras.utils.set_random_seed(12)
    inputs = keras.Input((11, 13, 70))
    layer = BinaryConv2D(24, 3, padding="same", input_quantizer="ste_sign", kernel_quantizer="ste_sign")
    model_path = tmp_path / "conv.tflite"
    model_path.write_bytes(to_tflite(keras.Model(inputs, layer(inputs))))
    x = np.random.default_rng(13).standard_normal((1, 11, 13, 70)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "TFCOMPRESS_KERNEL": kernel}
    done = subprocess.run(
        [sys.executable, "-c", _FORCED_KERNEL_SCRIPT, str(model_path), str(tmp_path / "x.npy")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split()[-1] == kernel
    packed = native.pack_signs(np.transpose(keras.ops.convert_to_numpy(layer.kernel), (3, 0, 1, 2)))
    expected = native.binary_conv2d(x, packed, kernel="reference", padding="SAME")
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), expected)


# --- bad options and tensors: an error from Prepare, never a crash ----------------------


@pytest.fixture(scope="module")
def one_conv_tflite() -> bytes:
    keras.utils.set_random_seed(8)
    inputs = keras.Input((6, 6, 40))
    outputs = BinaryConv2D(8, 3, padding="same", input_quantizer="ste_sign", kernel_quantizer="ste_sign")(inputs)
    return to_tflite(keras.Model(inputs, outputs))


def _edit_conv_op(model_bytes: bytes, edit) -> bytes:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    graph = model.subgraphs[0]
    (op,) = [op for op in graph.operators if model.operatorCodes[op.opcodeIndex].customCode == b"TfcBinaryConv2D"]
    edit(model, graph, op)
    builder = flatbuffers.Builder(len(model_bytes) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _set_option(key, value):
    def edit(model, graph, op):
        options = flexbuffers.Loads(bytes(op.customOptions))
        options[key] = value
        op.customOptions = list(flexbuffers.Dumps(options))

    return edit


def _widen_weights(model, graph, op):
    tensor = graph.tensors[op.inputs[1]]
    tensor.shape = [*tensor.shape[:-1], tensor.shape[-1] + 1]
    model.buffers[tensor.buffer].data = np.zeros(int(np.prod(tensor.shape)), np.int32).view(np.uint8)


def _garbage_options(model, graph, op):
    op.customOptions = [0xFF, 0x13, 0x07]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set_option("padding", "REFLECT"), "unknown padding 'REFLECT'"),
        (_set_option("in_channels", 48), "input has 40 channels, in_channels is 48"),
        (_widen_weights, "packed weights have 3 words per tap"),
        (_set_option("stride_height", 0), "strides must be >= 1"),
        (_set_option("activation", "TANH"), "unknown activation 'TANH'"),
        (_set_option("pad_value", 2), "pad_value must be 0 or 1"),
        (_garbage_options, "not a valid flexbuffer"),
    ],
)
def test_bad_options_fail_in_prepare(one_conv_tflite, edit, message, capfd):
    broken = _edit_conv_op(one_conv_tflite, edit)
    with pytest.raises(Exception) as raised:  # the runtimes raise RuntimeError or ValueError
        interpreter = runtime.Interpreter(model_content=broken, runtime="ai_edge_litert")
        interpreter.invoke()
    reported = str(raised.value) + capfd.readouterr().err
    assert message in reported


def test_conv_op_with_batch_resized(one_conv_tflite):
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(one_conv_tflite, 0)
    graph = model.subgraphs[0]
    (op,) = [op for op in graph.operators if model.operatorCodes[op.opcodeIndex].customCode == b"TfcBinaryConv2D"]
    packed = np.frombuffer(bytes(model.buffers[graph.tensors[op.inputs[1]].buffer].data), "<i4").reshape(8, 3, 3, 2)
    x = np.random.default_rng(10).standard_normal((3, 6, 6, 40)).astype(np.float32)
    expected = native.binary_conv2d(x, packed, kernel="reference", padding="SAME")
    np.testing.assert_array_equal(run_batch(one_conv_tflite, x), expected)


def test_good_file_still_runs_after_rewrite(one_conv_tflite):
    same = _edit_conv_op(one_conv_tflite, lambda model, graph, op: None)
    x = np.random.default_rng(9).standard_normal((1, 6, 6, 40)).astype(np.float32)
    np.testing.assert_array_equal(_run_tflite(same, x), _run_tflite(one_conv_tflite, x))
