"""Every kind of file the kit writes loads in the oldest runtime the apps support (tflite-runtime 2.14).

The op versions are read from each file's flatbuffer and held against the table probed in that
runtime (``tfcompress/convert/runtimes/``); the probe itself is checked by re-running it in the
installed ai-edge-litert against its committed table.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tfcompress.binary import BinaryConv2D, BinaryDense
from tfcompress.convert import to_tflite
from tfcompress.convert.op_versions import (
    OLDEST_RUNTIME,
    TABLES,
    NewerOp,
    builtin_op_versions,
    newer_ops,
    runtime_versions,
)
from tfcompress.pq import ProductQuantizer
from tfcompress.pruning import ConstantSparsity, deep_compress, prune, strip

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "android_demo/raspberry_pi"
SIZE = 16


def _float_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 127.5, -1)(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="stem")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6", name="dw")(x)
    x = keras.layers.Conv2D(64, 1, activation="relu", name="expand")(x)
    shortcut = keras.layers.Conv2D(64, 1, name="shortcut")(x)
    x = keras.layers.Add()([x, shortcut])
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(48, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="logits")(x))


def _binary_model() -> keras.Model:
    keras.utils.set_random_seed(1)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(32, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = BinaryConv2D(32, 3, padding="same", input_quantizer="ste_sign", kernel_quantizer="ste_sign")(x)
    x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(64, activation="relu")(x)  # over 1,024 weights: int8 weights (dynamic range)
    x = BinaryDense(40, input_quantizer="ste_sign", kernel_quantizer="ste_sign")(x)
    return keras.Model(inputs, keras.layers.Dense(5)(x))


def _images(count: int = 8) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (count, SIZE, SIZE, 3)).astype(np.float32)


def _files() -> dict[str, bytes]:
    """One file of each kind the kit writes."""
    model = _float_model()
    pq = ProductQuantizer(
        model, _images(), n_centroids=4, n_centroids_dense=4, layer_steps=0, global_steps=0, verbose=0
    ).run()
    pruned = strip(prune(model, ConstantSparsity(0.9, frequency=1)))
    return {
        "float": to_tflite(model),
        "int8": to_tflite(model, int8=True, calibration=_images()),
        "dynamic-range": to_tflite(model, int8_weights=True),
        "sparse": to_tflite(pruned, sparse=True),
        "sparse int8": to_tflite(pruned, int8=True, calibration=_images(), sparse=True),
        "pq": to_tflite(pq),
        "dc": to_tflite(deep_compress(pruned, conv_bits=4, dense_bits=4)),
        "binary": to_tflite(_binary_model(), int8_weights=True),
    }


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    with pytest.warns() as caught:  # converter warnings (PQ's layers left float, ...) are not the point
        converted = _files()
    assert not [w for w in caught if "newer runtime" in str(w.message)]
    return converted


def test_every_kind_of_file_uses_only_op_versions_the_oldest_runtime_has(files):
    supported = runtime_versions(OLDEST_RUNTIME)
    for kind, content in files.items():
        versions = builtin_op_versions(content)
        assert versions, kind
        assert newer_ops(content) == [], (kind, versions)
        assert all(version <= supported[op] for op, version in versions.items()), kind
    # the kinds really hold the ops whose newer versions broke the Pi: int8 and dynamic-range dense layers
    assert builtin_op_versions(files["dynamic-range"])["FULLY_CONNECTED"] > 1
    assert "DENSIFY" in builtin_op_versions(files["sparse"])


def test_every_shipped_model_loads_in_the_oldest_runtime():
    shipped = sorted((ROOT / "models").glob("*.tflite"))
    assert len(shipped) >= 10
    for path in shipped:
        assert newer_ops(path.read_bytes()) == [], path.name


def _with_version(content: bytes, op: str, version: int) -> bytes:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(content, 0)
    for code in model.operatorCodes:
        if max(code.builtinCode, code.deprecatedBuiltinCode) == getattr(schema.BuiltinOperator, op):
            code.version = version
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_a_newer_op_version_is_named_with_what_the_runtime_has(files):
    bumped = _with_version(files["float"], "FULLY_CONNECTED", 12)
    newer = newer_ops(bumped)
    assert newer == [NewerOp("FULLY_CONNECTED", 12, 10)]
    assert newer[0].describe() == "FULLY_CONNECTED v12 (it has up to v10)"
    assert newer_ops(bumped, "ai-edge-litert-2.3.0") == []  # the default runtime has it


def test_the_probe_reproduces_the_installed_runtimes_table(tmp_path):
    import ai_edge_litert

    committed = TABLES / f"ai-edge-litert-{ai_edge_litert.__version__}.json"
    if not committed.is_file():
        pytest.fail(f"no probed table for the installed ai-edge-litert {ai_edge_litert.__version__}: run the probe")
    schema_dir = Path(ai_edge_litert.__file__).parent
    shutil.copy(schema_dir / "schema_py_generated.py", tmp_path / "schema_py_generated.py")
    output = tmp_path / "table.json"
    subprocess.run(
        [sys.executable, str(APP / "tools/probe_op_versions.py"), "--schema-dir", str(tmp_path), "--runtime",
         "ai_edge_litert", "-o", str(output)],
        check=True, capture_output=True,
    )  # fmt: skip
    probed = json.loads(output.read_text())
    assert probed["max_builtin_versions"] == json.loads(committed.read_text())["max_builtin_versions"]
    assert probed["max_builtin_versions"]["FULLY_CONNECTED"] > runtime_versions(OLDEST_RUNTIME)["FULLY_CONNECTED"]


def test_the_app_refuses_a_runtime_older_than_it_supports():
    sys.path.insert(0, str(APP))
    from flowerpi.classifier import check_version
    from flowerpi.errors import AppError

    with pytest.raises(AppError, match=r"tflite-runtime 2\.13\.0 is too old: the app needs tflite-runtime >= 2\.14"):
        check_version("tflite_runtime", "2.13.0")
    with pytest.raises(AppError, match=r"ai-edge-litert 1\.4\.0 is too old"):
        check_version("ai_edge_litert", "1.4.0")
    check_version("tflite_runtime", "2.14.0")
    check_version("ai_edge_litert", "2.3.0")
