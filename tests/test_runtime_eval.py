"""Runtime loading, evaluation figures computed from the model, and the report."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from tfcompress.convert import convert
from tfcompress.data import load_split
from tfcompress.errors import ModelFileError, TfcompressError
from tfcompress.evaluate import evaluate, save_result
from tfcompress.models import build_model
from tfcompress.report import load_results, markdown_table, report
from tfcompress.runtime import Interpreter, available_runtimes


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    keras.utils.set_random_seed(3)
    folder = tmp_path_factory.mktemp("models")
    model = build_model("resnet8", num_classes=5, image_size=32, width=4)
    keras_path = folder / "tiny.keras"
    model.save(keras_path)
    tflite_path = convert(model, folder / "tiny.tflite")
    return model, keras_path, tflite_path


def test_ai_edge_litert_is_the_first_runtime():
    assert available_runtimes()[0] == "ai_edge_litert"


def test_corrupt_tflite_is_a_clear_error(tmp_path, tiny_files):
    _, _, tflite_path = tiny_files
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(tflite_path.read_bytes()[:200])
    with pytest.raises(ModelFileError, match=r"corrupt\.tflite"):
        Interpreter(corrupt)
    with pytest.raises(ModelFileError, match="does not exist"):
        Interpreter(tmp_path / "missing.tflite")


def test_model_needing_our_ops_without_the_library_is_a_clear_error(monkeypatch, tiny_files):
    import tensorflow as tf

    from tfcompress.convert import register_lowering, to_tflite
    from tfcompress.convert.lowering import _RULES

    class Negate(keras.layers.Layer):
        def call(self, inputs):
            return -inputs

    def lower(layer, inputs):
        @tf.function(experimental_implements='name: "TfcTestNegate" attr { key: "tfl_fusable_op" value { b: true } }')
        def negate(x):
            return -x

        return negate(inputs)

    inputs = keras.Input((3,))
    register_lowering(Negate, lower)
    try:
        content = to_tflite(keras.Model(inputs, Negate()(inputs)))
    finally:
        del _RULES[Negate]
    monkeypatch.setenv("TFCOMPRESS_OPS_LIBRARY", "/nonexistent/libtfcompress_ops.so")
    with pytest.raises(TfcompressError, match=r"TfcTestNegate.*not built"):
        Interpreter(model_content=content)


def test_eval_accuracy_is_computed_from_the_model(flowers_dir, tiny_files):
    model, keras_path, tflite_path = tiny_files
    data = load_split(flowers_dir, "test", 32, limit=30)
    expected = float(np.mean(model.predict(data.images.astype(np.float32), verbose=0).argmax(1) == data.labels))
    for path in (tflite_path, keras_path):
        result = evaluate(path, flowers_dir, "test", threads=1, runs=3, warmup=1, limit=30)
        assert result.images == 30
        assert result.accuracy == pytest.approx(expected)
        assert result.size_bytes == path.stat().st_size
        assert 0 < result.latency_ms_median <= result.latency_ms_p90


def test_eval_json_and_report(tmp_path, flowers_dir, tiny_files):
    _, keras_path, tflite_path = tiny_files
    paths = []
    for path in (tflite_path, keras_path):
        result = evaluate(path, flowers_dir, "test", threads=2, runs=2, warmup=1, limit=10)
        paths.append(save_result(result, tmp_path / f"{path.suffix[1:]}.json"))
    keys = json.loads(paths[0].read_text())
    for key in ("accuracy", "size_bytes", "latency_ms_median", "latency_ms_p90", "threads", "images"):
        assert key in keys
    assert keys["threads"] == 2
    table, figure = report(paths, tmp_path / "report")
    text = table.read_text()
    assert "tiny.tflite" in text and "tiny.keras" in text and f"{keys['size_bytes']:,}" in text
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert markdown_table(load_results(paths)).count("\n") == 4


def test_report_rejects_a_result_without_the_keys(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"accuracy": 0.5}))
    with pytest.raises(TfcompressError, match="lacks size_bytes"):
        load_results([bad])


def test_eval_rejects_an_unknown_file_kind(tmp_path):
    other = tmp_path / "model.onnx"
    other.write_bytes(b"x")
    with pytest.raises(ModelFileError, match=r"expected a \.tflite or \.keras"):
        evaluate(other)
