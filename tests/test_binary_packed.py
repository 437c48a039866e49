"""Bit-packed activations: the kernels' packed input / output against the reference kernel,
and ``bitpack_activations`` on converted models against Keras."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from tflite_run import run_batch

from tfcompress import native, runtime
from tfcompress.binary import BinaryConv2D
from tfcompress.binary.bitpacked import bitpack_activations
from tfcompress.binary.zoo import binary_resnet
from tfcompress.convert import to_tflite

OPTIMIZED = [name for name in native.kernels() if name != "reference"]

# in_c, out_c, kernel, stride, dilation, padding, pad_value, batch: channel counts that are
# not multiples of 32 / 64, stride 2, dilation, both paddings and pad values, batch > 1.
CASES = [
    (33, 17, 3, 1, 1, "SAME", 0, 2),
    (65, 70, 3, 2, 1, "SAME", 1, 1),
    (100, 64, 3, 1, 2, "VALID", 0, 2),
    (1, 8, 1, 1, 1, "VALID", 0, 1),
    (64, 96, 5, 2, 1, "SAME", 0, 1),
    (31, 40, 3, 1, 2, "SAME", 1, 3),
    # 200 output channels: sign bits of whole 64-channel groups and a 8-channel tail; 256 inputs
    # take more steps than the AVX2 byte counters hold.
    (256, 200, 3, 1, 1, "SAME", 0, 2),
    (130, 136, 3, 2, 1, "SAME", 1, 1),
]


def _case_data(case, seed: int):
    in_c, out_c, k, stride, dilation, padding, pad_value, batch = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 9, 11, in_c)).astype(np.float32)
    x[0, 0, 0, 0] = 0.0  # sign(0) = +1
    weights = native.pack_signs(rng.standard_normal((out_c, k, k, in_c)))
    multiplier = rng.uniform(0.1, 1.0, out_c).astype(np.float32)
    bias = rng.standard_normal(out_c).astype(np.float32)
    options = {"strides": stride, "dilation_rate": dilation, "padding": padding, "pad_value": pad_value}
    return x, weights, multiplier, bias, options


def _with_garbage_high_bits(packed: np.ndarray, channels: int) -> np.ndarray:
    """Set the unused high bits of the last word: a packed input's kernels must ignore them."""
    if channels % 32 == 0:
        return packed
    dirty = packed.copy()
    dirty[..., -1] |= np.int32(np.uint32(0xFFFFFFFF << (channels % 32) & 0xFFFFFFFF).view(np.int32))
    return dirty


def _assert_bits_match(got: np.ndarray, reference_float: np.ndarray) -> None:
    """Packed bits equal the reference output's signs, except where it is within 1e-4 of 0."""
    channels = reference_float.shape[-1]
    got_signs = native.unpack_signs(got, channels)
    want_signs = native.unpack_signs(native.pack_signs(reference_float), channels)
    settled = np.abs(reference_float) > 1e-4
    np.testing.assert_array_equal(got_signs[settled], want_signs[settled])
    # the unused high bits of a packed output are 0
    if channels % 32:
        assert not np.any(got[..., -1].view(np.uint32) >> np.uint32(channels % 32))


@pytest.mark.parametrize("kernel", OPTIMIZED)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_packed_input_and_output_match_reference(kernel, case):
    x, weights, multiplier, bias, options = _case_data(case, seed=CASES.index(case))
    in_c = x.shape[-1]
    reference = native.binary_conv2d(x, weights, multiplier, bias, kernel="reference", activation="RELU", **options)
    # The reference's own packed route (unpack, convolve, pack) agrees with the float one.
    ref_packed = native.binary_conv2d(
        native.pack_signs(x), weights, multiplier, bias, kernel="reference", activation="RELU",
        in_channels=in_c, packed_input=True, packed_output=True, **options,
    )  # fmt: skip
    np.testing.assert_array_equal(ref_packed, native.pack_signs(reference))
    bits = _with_garbage_high_bits(native.pack_signs(x), in_c)
    for threads in (1, 2):
        run = {"kernel": kernel, "threads": threads, "activation": "RELU", "in_channels": in_c, **options}
        packed_in = native.binary_conv2d(bits, weights, multiplier, bias, packed_input=True, **run)
        np.testing.assert_allclose(packed_in, reference, rtol=1e-5, atol=1e-5)
        packed_out = native.binary_conv2d(x, weights, multiplier, bias, packed_output=True, **run)
        _assert_bits_match(packed_out, reference)
        packed_both = native.binary_conv2d(
            bits, weights, multiplier, bias, packed_input=True, packed_output=True, **run
        )
        np.testing.assert_array_equal(packed_both, packed_out)


def test_packed_input_needs_in_channels():
    with pytest.raises(Exception, match="a packed input needs in_channels"):
        native.binary_conv2d(np.zeros((1, 4, 4, 1), np.int32), np.zeros((2, 3, 3, 1), np.int32), packed_input=True)


# --- bitpack_activations on converted models -------------------------------------------


def _binary(filters: int, **kwargs) -> BinaryConv2D:
    return BinaryConv2D(
        filters, 3, input_quantizer="ste_sign", kernel_quantizer="magnitude_aware_sign", padding="same", **kwargs
    )


def _chain_model() -> keras.Model:
    """Three binary convs reading each other directly (odd channels, stride 2, both paddings)."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((10, 9, 37))
    x = _binary(45, pad_values=1.0)(inputs)
    x = _binary(33, strides=2)(x)  # zero padding
    x = _binary(70, pad_values=1.0, dilation_rate=2)(x)
    return keras.Model(inputs, x)


def _int32_tensors(model_bytes: bytes) -> list[tuple[int, ...]]:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    graph = model.subgraphs[0]
    conv_outputs = {
        int(op.outputs[0])
        for op in graph.operators
        if model.operatorCodes[op.opcodeIndex].customCode == b"TfcBinaryConv2D"
    }
    return [tuple(graph.tensors[i].shape) for i in sorted(conv_outputs) if graph.tensors[i].type == 2]  # INT32


@pytest.fixture(scope="module")
def chain():
    model = _chain_model()
    return model, to_tflite(model, flatbuffer_passes=False)


def test_chain_carries_packed_activations_and_matches_keras(chain):
    model, float_bytes = chain
    packed_bytes = bitpack_activations(float_bytes)
    assert _int32_tensors(float_bytes) == []
    assert _int32_tensors(packed_bytes) == [(1, 10, 9, 2), (1, 5, 5, 2)]  # ceil(45/32), ceil(33/32) words
    x = np.random.default_rng(4).standard_normal((2, 10, 9, 37)).astype(np.float32)
    got = run_batch(packed_bytes, x)
    np.testing.assert_array_equal(got, run_batch(float_bytes, x))  # bit-identical to the float route
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(model(x)), rtol=1e-5, atol=1e-4)


def test_conversion_packs_the_activations_between_binary_convs_by_default(chain):
    model, _ = chain
    assert _int32_tensors(to_tflite(model)) == [(1, 10, 9, 2), (1, 5, 5, 2)]


def test_packed_graph_input_and_output_match_keras(chain):
    model, float_bytes = chain
    packed_bytes = bitpack_activations(float_bytes, packed_input=True, packed_output=True)
    x = np.random.default_rng(5).standard_normal((3, 10, 9, 37)).astype(np.float32)
    got = run_batch(packed_bytes, native.pack_signs(x))
    assert got.dtype == np.int32 and got.shape == (3, 5, 5, 3)
    _assert_bits_match(got, keras.ops.convert_to_numpy(model(x)))


def test_residual_reader_keeps_activation_float():
    """Bi-Real blocks add a float shortcut to each binary conv's output: nothing to pack there."""
    keras.utils.set_random_seed(6)
    model = binary_resnet(num_classes=3, image_size=32, width=8, stages=(1, 1))
    float_bytes = to_tflite(model)
    assert bitpack_activations(float_bytes) == float_bytes
    inputs = keras.Input((6, 6, 20))
    y = _binary(20, pad_values=1.0)(inputs)
    z = _binary(20, pad_values=1.0)(keras.layers.Add()([inputs, y]))
    residual = keras.Model(inputs, z)
    residual_bytes = to_tflite(residual)
    assert bitpack_activations(residual_bytes) == residual_bytes
    packed = bitpack_activations(residual_bytes, packed_output=True)
    x = np.random.default_rng(7).standard_normal((1, 6, 6, 20)).astype(np.float32)
    _assert_bits_match(run_batch(packed, x), keras.ops.convert_to_numpy(residual(x)))


def test_packed_input_with_wrong_words_fails_in_prepare(chain, capfd):
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    _, float_bytes = chain
    model = schema.ModelT.InitFromPackedBuf(bitpack_activations(float_bytes, packed_input=True), 0)
    graph = model.subgraphs[0]
    tensor = graph.tensors[graph.inputs[0]]
    tensor.shape = np.asarray([1, 10, 9, 3], np.int32)  # 37 channels need 2 words
    tensor.shapeSignature = None
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(Exception) as raised:
        runtime.Interpreter(model_content=bytes(builder.Output()), runtime="ai_edge_litert").invoke()
    assert "packed input has 3 words per pixel, 37 input channels need 2" in str(raised.value) + capfd.readouterr().err
