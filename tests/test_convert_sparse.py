"""``convert`` writes what the model holds: sparse kernels in TFLite's sparse format, int8 where it can."""

from __future__ import annotations

import tempfile
import warnings

import keras
import numpy as np
import pytest

from tfcompress.binary import BinaryConv2D
from tfcompress.cli import main
from tfcompress.convert import SPARSE_THRESHOLD, int8_blockers, sparse_fraction, to_tflite
from tfcompress.errors import TfcompressError
from tfcompress.evaluate import TFLiteClassifier
from tfcompress.models import build_model
from tfcompress.pq import PQConv2D, PQDense
from tfcompress.pruning import ConstantSparsity, deep_compress, prune, strip


@pytest.fixture(scope="module")
def dense_model() -> keras.Model:
    keras.utils.set_random_seed(2)
    return build_model("resnet8", num_classes=4, image_size=24, width=16)


@pytest.fixture(scope="module")
def pruned_model(dense_model) -> keras.Model:
    """80% of every Conv/Dense kernel zeroed by magnitude, one shot."""
    return strip(prune(dense_model, ConstantSparsity(0.8, frequency=1)))


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(3).uniform(0, 255, (16, 24, 24, 3)).astype(np.float32)


def _pq_model() -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    x = PQConv2D(6, 3, block_size=9, n_centroids=4, padding="same", name="pq_conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = PQDense(3, block_size=2, n_centroids=2, name="pq_dense")(x)
    return keras.Model(inputs, outputs)


def test_sparse_fraction_counts_the_plain_kernels_together():
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)  # kernel 3*3*2*4 = 72 weights
    x = keras.layers.BatchNormalization(name="bn")(x)  # not a kernel: not counted
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(2, name="dense")(x)  # kernel 64*2 = 128 weights
    model = keras.Model(inputs, outputs)
    conv = np.ones((3, 3, 2, 4), np.float32)
    conv.reshape(-1)[:60] = 0.0
    dense = np.ones((64, 2), np.float32)
    dense.reshape(-1)[:40] = 0.0
    model.get_layer("conv").kernel.assign(conv)
    model.get_layer("dense").kernel.assign(dense)
    assert sparse_fraction(model) == pytest.approx((60 + 40) / (72 + 128))


def test_kernels_lowered_to_custom_ops_are_not_counted():
    model = _pq_model()
    model.get_layer("stem").kernel.assign(np.zeros((3, 3, 3, 4), np.float32))
    assert sparse_fraction(model) == 1.0  # the stem is the only plain kernel


def test_pruned_model_converts_smaller_and_matches_keras(dense_model, pruned_model, images):
    assert sparse_fraction(dense_model) < SPARSE_THRESHOLD <= sparse_fraction(pruned_model)
    sparse = to_tflite(pruned_model)
    assert len(sparse) < 0.5 * len(to_tflite(pruned_model, sparse=False))
    assert len(to_tflite(dense_model)) == len(to_tflite(dense_model, sparse=False))  # auto: a dense model stays dense
    np.testing.assert_allclose(
        TFLiteClassifier(model_content=sparse).predict(images),
        pruned_model.predict(images, verbose=0),
        rtol=1e-4,
        atol=1e-4,
    )


def test_sparse_int8_is_kept_when_it_runs_like_the_dense_int8_file(dense_model, images):
    # Dense layer left dense: XNNPACK takes DENSIFY-fed int8 convolutions.
    pruned = strip(prune(dense_model, ConstantSparsity(0.8, frequency=1), exclude=("logits",)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sparse = to_tflite(pruned, int8=True, calibration=images)
    assert not [w for w in caught if "sparse int8" in str(w.message)]
    dense = to_tflite(pruned, int8=True, calibration=images, sparse=False)
    assert len(sparse) < 0.8 * len(dense)
    np.testing.assert_allclose(
        TFLiteClassifier(model_content=sparse).predict(images),
        TFLiteClassifier(model_content=dense).predict(images),
        atol=1e-5,
    )


def _densify_count(content: bytes) -> int:
    from ai_edge_litert import schema_py_generated as schema

    from tfcompress.convert.op_versions import builtin_op_versions

    model = schema.ModelT.InitFromPackedBuf(content, 0)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    assert "DENSIFY" in builtin_op_versions(content)
    return sum(codes[op.opcodeIndex] == schema.BuiltinOperator.DENSIFY for op in model.subgraphs[0].operators)


def test_sparse_int8_keeps_dense_only_the_weights_xnnpack_refuses_sparse(pruned_model, images):
    from tfcompress.convert import converter
    from tfcompress.convert.sparse_fallback import delegable_sparse, refused_node

    dense = to_tflite(pruned_model, int8=True, calibration=images, sparse=False)
    with (
        tempfile.TemporaryDirectory() as saved
    ):  # the converter's raw sparse file: XNNPACK refuses its int8 FULLY_CONNECTED
        converter._export_saved_model(pruned_model, saved)
        raw = converter._convert_saved_model(saved, True, images, sparse=True)
    with pytest.raises(RuntimeError) as refused:
        TFLiteClassifier(model_content=raw)
    assert refused_node(str(refused.value))[0] == "FULLY_CONNECTED"
    fixed, densified = delegable_sparse(raw, lambda content: TFLiteClassifier(model_content=content))
    assert [name.split()[0] for name in densified] == ["FULLY_CONNECTED"]
    assert _densify_count(fixed) == _densify_count(raw) - 1  # just the dense layer's kernel left the sparse format
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        content = to_tflite(pruned_model, int8=True, calibration=images)
    assert not [w for w in caught if "sparse int8" in str(w.message)]
    assert content == fixed and len(content) < 0.8 * len(dense)
    np.testing.assert_allclose(
        TFLiteClassifier(model_content=content).predict(images),
        TFLiteClassifier(model_content=dense).predict(images),
        atol=1e-5,
    )


def test_a_refusal_that_names_no_densify_fed_node_is_raised():
    from tfcompress.convert.sparse_fallback import delegable_sparse, refused_node

    assert refused_node("failed to delegate FULLY_CONNECTED node #38Node number 40 failed") == ("FULLY_CONNECTED", 38)
    assert refused_node("something else") is None

    def load(content: bytes):
        raise RuntimeError("Encountered unresolved custom op: Foo.")

    with pytest.raises(RuntimeError, match="unresolved custom op"):
        delegable_sparse(b"", load)


def test_int8_blockers_name_every_layer_lowered_to_a_custom_op(pruned_model):
    assert int8_blockers(pruned_model) == []
    assert int8_blockers(_pq_model()) == [
        ("pq_conv", "PQConv2D -> TfcPQDecode"),
        ("pq_dense", "PQDense -> TfcPQDense"),
    ]
    shared = deep_compress(pruned_model, conv_bits=4, dense_bits=4)
    blockers = dict(int8_blockers(shared))
    assert blockers and set(blockers.values()) <= {"SharedConv2D -> TfcSparseDecode", "SharedDense -> TfcSparseDecode"}
    assert blockers["logits"] == "SharedDense -> TfcSparseDecode"
    binary = keras.Sequential([keras.Input((8, 8, 3)), BinaryConv2D(4, 3, name="bconv")])
    assert int8_blockers(binary) == [("bconv", "BinaryConv2D -> TfcBinaryConv2D")]


def test_int8_of_a_pq_model_is_a_one_line_error(tmp_path, image_folder, capsys):
    model = _pq_model()
    with pytest.raises(TfcompressError, match=r"pq_conv \(PQConv2D -> TfcPQDecode\), pq_dense"):
        to_tflite(model, int8=True, calibration=np.zeros((1, 8, 8, 3), np.float32))
    path = tmp_path / "pq.keras"
    model.save(path)
    out = tmp_path / "pq.tflite"
    code = main(["convert", str(path), "--int8", "--calibration-data", str(image_folder), "-o", str(out)])
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert "\n" not in error and "Traceback" not in error
    assert error.startswith("tfcompress convert: error: int8 conversion cannot take layers lowered to custom ops")
    assert "convert without --int8" in error
    assert not out.exists()
    assert main(["convert", str(path), "-o", str(out)]) == 0  # the float file converts


def test_no_sparse_flag_writes_the_dense_file(tmp_path, pruned_model, capsys):
    path = tmp_path / "pruned.keras"
    pruned_model.save(path)
    assert main(["convert", str(path), "-o", str(tmp_path / "auto.tflite")]) == 0
    assert main(["convert", str(path), "--no-sparse", "-o", str(tmp_path / "dense.tflite")]) == 0
    assert (tmp_path / "auto.tflite").stat().st_size < 0.5 * (tmp_path / "dense.tflite").stat().st_size
