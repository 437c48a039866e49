"""The native ``TfcSparseDecode``: bit-exact against the Python decoder, and inside a converted .tflite."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from tfcompress.convert import to_tflite
from tfcompress.errors import TfcompressError
from tfcompress.pruning import ConstantSparsity, SharedConv2D, deep_compress, prune, strip
from tfcompress.pruning.deep_compression import decode_kernel, encode_kernel
from tfcompress.pruning.masks import magnitude_mask
from tfcompress.pruning.native import sparse_decode
from tfcompress.runtime import Interpreter, custom_op_names


@pytest.mark.parametrize(
    ("sparsity", "bits", "gap_bits"), [(0.9, 5, 3), (0.5, 8, 4), (0.99, 2, 2), (0.0, 5, 0), (0.3, 4, 0), (0.2, 6, None)]
)
def test_native_decoder_rebuilds_exactly_the_shared_weights(sparsity, bits, gap_bits):
    kernel = np.random.default_rng(bits).normal(size=(16, 3, 3, 24)).astype(np.float32)
    kernel *= magnitude_mask(kernel, sparsity)
    encoded = encode_kernel(kernel, bits, gap_bits)
    expected = decode_kernel(encoded)
    decoded = sparse_decode(encoded)
    assert decoded.tobytes() == expected.tobytes()
    assert ((decoded == 0) == (kernel == 0)).all()


def test_native_decoder_rejects_damaged_streams():
    kernel = np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32)
    kernel *= magnitude_mask(kernel, 0.5)
    encoded = encode_kernel(kernel, 4)
    short = dataclasses.replace(encoded, indices=dataclasses.replace(encoded.indices, data=encoded.indices.data[:2]))
    with pytest.raises(TfcompressError, match="ends in the middle"):
        sparse_decode(short)
    bad_lengths = encoded.gaps.lengths.copy()
    bad_lengths[:] = 1  # 16 codes of one bit: over-full
    with pytest.raises(TfcompressError, match="over-full"):
        sparse_decode(dataclasses.replace(encoded, gaps=dataclasses.replace(encoded.gaps, lengths=bad_lengths)))


def test_native_dense_mode_refuses_an_entry_count_other_than_the_kernel_size():
    kernel = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    encoded = encode_kernel(kernel, 4, gap_bits=0)
    short = dataclasses.replace(encoded, gaps=dataclasses.replace(encoded.gaps, count=kernel.size - 1))
    with pytest.raises(TfcompressError, match="one entry per element"):
        sparse_decode(short)
    with pytest.raises(TfcompressError, match=r"gap_bits must be in \[0, 8\]"):
        sparse_decode(dataclasses.replace(encoded, gap_bits=9))


def test_dense_mode_kernels_in_a_tflite_match_keras():
    """An unpruned model: every kernel is stored in dense mode (no position stream) and decodes exactly."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((9, 9, 5))
    x = keras.layers.Conv2D(13, 3, strides=2, padding="valid", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    compressed = deep_compress(keras.Model(inputs, outputs), conv_bits=4, dense_bits=4, gap_bits=0)
    data = to_tflite(compressed)
    interpreter = Interpreter(model_content=data, num_threads=2)
    images = np.random.default_rng(2).normal(size=(2, 9, 9, 5)).astype(np.float32)
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
    interpreter.invoke()
    result = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(result, compressed(images), rtol=1e-5, atol=1e-5)
    auto = to_tflite(deep_compress(keras.Model(inputs, outputs), conv_bits=4, dense_bits=4, gap_bits=4))
    assert len(data) < len(auto)  # gap streams of dense kernels cost bytes that dense mode saves


def test_deep_compressed_tflite_is_small_and_matches_keras():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_a")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4, name="logits")(x)
    model = keras.Model(inputs, outputs)
    pruned = strip(prune(model, ConstantSparsity(0.8)))
    compressed = deep_compress(pruned, conv_bits=5, dense_bits=4)
    assert isinstance(compressed.get_layer("conv_b"), SharedConv2D)
    kernel = keras.ops.convert_to_numpy(compressed.get_layer("conv_b").kernel)
    assert len(np.unique(kernel[kernel != 0])) <= 31 and np.mean(kernel == 0) == pytest.approx(0.8, abs=0.01)
    data = to_tflite(compressed)
    assert custom_op_names(data) == ["TfcSparseDecode"]
    dense_kernel_bytes = 4 * sum(int(np.prod(w.shape)) for w in model.weights if len(w.shape) > 1)
    assert len(data) < 0.5 * dense_kernel_bytes  # the whole file is smaller than the float kernels alone
    interpreter = Interpreter(model_content=data, num_threads=1)
    image = np.random.default_rng(1).uniform(0, 255, (1, 8, 8, 3)).astype(np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    result = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(result, compressed(image), rtol=1e-5, atol=1e-5)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(compressed))
    assert restored.get_layer("conv_b").weight_bits == 5
