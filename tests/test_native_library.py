"""The native op library: how it is built, what it exports, and that it loads and runs in
every installed TFLite runtime as an external delegate."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest

from tfcompress import native, runtime
from tfcompress.binary import BinaryConv2D, BinaryDense
from tfcompress.convert import to_tflite
from tfcompress.errors import TfcompressError

CONVERTERS = Path(__file__).resolve().parent.parent / "converters"


@pytest.fixture(scope="module")
def library_path() -> str:
    path = runtime.ops_library_path()
    assert path is not None, "libtfcompress_ops.so is not built (pip install -e . builds it)"
    return path


def test_exports_delegate_entry_points_and_kernel_api(library_path):
    lib = native.library()
    for symbol in ("tflite_plugin_create_delegate", "tflite_plugin_destroy_delegate", "tfc_binary_conv2d"):
        assert hasattr(lib, symbol)
    assert {"TfcBinaryConv2D", "TfcBinaryDense"} <= set(native.op_names())
    kernels = native.kernels()
    assert kernels[0] == "reference" and "scalar" in kernels
    assert native.default_kernel() in kernels[1:]


def test_links_no_tflite_library(library_path):
    nm = shutil.which("nm")
    assert nm is not None, "binutils (nm) is needed to inspect the library"
    undefined = subprocess.run([nm, "-D", "--undefined-only", library_path], capture_output=True, text=True, check=True)
    assert "TfLite" not in undefined.stdout  # only TfLiteContext's function pointers are used
    needed = subprocess.run(["ldd", library_path], capture_output=True, text=True).stdout
    assert "tensorflow" not in needed and "litert" not in needed.lower()


def test_pack_signs_layout():
    values = np.array([[-1.0, 0.0, 2.0] + [1.0] * 30 + [-0.5]])  # 34 channels -> 2 words
    packed = native.pack_signs(values)
    assert packed.dtype == np.int32 and packed.shape == (1, 2)
    assert packed[0, 0] == 0b1  # bit 0: -1.0; 0.0 counts as +1
    assert packed[0, 1] == 0b10  # channel 33 is bit 1 of word 1
    np.testing.assert_array_equal(native.unpack_signs(packed, 34), np.where(values >= 0, 1.0, -1.0))


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((10, 10, 40))
    x = BinaryConv2D(24, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign", kernel_quantizer="ste_sign")(
        inputs
    )
    x = keras.layers.Flatten()(x)
    outputs = BinaryDense(10, input_quantizer="ste_sign", kernel_quantizer="ste_sign")(x)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).standard_normal((1, 10, 10, 40)).astype(np.float32)
    return to_tflite(model), x, keras.ops.convert_to_numpy(model(x))


def _load_delegate(runtime_name: str):
    """(Interpreter class, load_delegate) of one runtime, imported the way its users do."""
    if runtime_name == "ai_edge_litert":
        from ai_edge_litert import interpreter as module
    elif runtime_name == "tflite_runtime":
        from tflite_runtime import interpreter as module
    else:
        import tensorflow as tf

        return tf.lite.Interpreter, tf.lite.experimental.load_delegate
    return module.Interpreter, module.load_delegate


@pytest.mark.parametrize("runtime_name", runtime.available_runtimes())
@pytest.mark.parametrize("threads", ["1", "2"])
def test_plain_load_delegate_in_each_runtime(library_path, small_model, runtime_name, threads):
    model_bytes, x, expected = small_model
    interpreter_class, load_delegate = _load_delegate(runtime_name)
    delegate = load_delegate(library_path, {"num_threads": threads})
    interpreter = interpreter_class(model_content=model_bytes, experimental_delegates=[delegate])
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_array_equal(got, expected)  # integer dot products of signs: exact


def test_runtime_interpreter_loads_library_automatically(small_model):
    model_bytes, x, expected = small_model
    interpreter = runtime.Interpreter(model_content=model_bytes, num_threads=2, runtime="ai_edge_litert")
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    np.testing.assert_array_equal(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]), expected)


def test_without_library_the_custom_ops_are_unresolved(small_model):
    from ai_edge_litert.interpreter import Interpreter

    model_bytes, _, _ = small_model
    with pytest.raises(RuntimeError, match="TfcBinaryConv2D"):
        Interpreter(model_content=model_bytes).allocate_tensors()


@pytest.mark.parametrize("options", [{"num_threads": "zero"}, {"num_threads": "0"}, {"colour": "red"}])
def test_bad_delegate_options_are_refused(library_path, options):
    from ai_edge_litert.interpreter import load_delegate

    with pytest.raises(ValueError):
        load_delegate(library_path, options)


def test_missing_library_is_a_clear_error(small_model, monkeypatch, tmp_path):
    monkeypatch.setenv(runtime.OPS_LIBRARY_ENV_VAR, str(tmp_path / "nowhere.so"))
    with pytest.raises(TfcompressError, match="TfcBinaryConv2D"):
        runtime.Interpreter(model_content=small_model[0])


def test_build_without_headers_fails_with_instructions(tmp_path):
    cmake = shutil.which("cmake")
    assert cmake is not None, "cmake is a build requirement (pyproject.toml)"
    env = {
        key: value for key, value in os.environ.items() if key not in ("TFLITE_INCLUDE_DIR", "FLATBUFFERS_INCLUDE_DIR")
    }
    result = subprocess.run(
        [
            cmake,
            "-S",
            str(CONVERTERS),
            "-B",
            str(tmp_path / "build"),
            "-DTFCOMPRESS_FETCH_HEADERS=OFF",
            f"-DTFCOMPRESS_HEADERS_DIR={tmp_path / 'none'}",
            f"-DCMAKE_FIND_ROOT_PATH={tmp_path / 'none'}",
            "-DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode != 0
    assert "fetch_tflite_headers.sh" in result.stderr and "TFLITE_INCLUDE_DIR" in result.stderr
