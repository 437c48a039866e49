"""tfcompress.binary.summary against hand counts on a tiny model, and the ``summary`` command."""

from __future__ import annotations

import json

import keras
import pytest

from tfcompress.binary import BinaryConv2D, BinaryDense, summary
from tfcompress.binary.zoo import binary_resnet
from tfcompress.cli import main
from tfcompress.errors import UnsupportedLayerError


def tiny_model() -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = BinaryConv2D(
        8, 3, strides=2, padding="same", pad_values=1.0, use_bias=False, name="bconv",
        input_quantizer="ste_sign", kernel_quantizer="magnitude_aware_sign",
    )(x)  # fmt: skip
    x = BinaryConv2D(8, 1, kernel_quantizer="ste_sign", name="kernel_only")(x)  # float inputs, bias
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = BinaryDense(2, name="head")(x)  # no quantizers: a float dense
    return keras.Model(inputs, outputs, name="tiny")


# Hand counts (bytes: binary kernels 1/8 byte per weight, everything else 4 bytes):
# stem   3*3*3*4 = 108 float params (432 B); MACs 8*8 * 4 * 27          = 6912
# bn     4 * 4   = 16 float params (64 B)
# bconv  3*3*4*8 = 288 binary (36 B);       MACs 4*4 * 8 * 36, binary  = 4608
# kernel_only 1*1*8*8 = 64 binary (8 B) + 8 bias (32 B); MACs 4*4*8*8 = 1024, float inputs
# head   8*2 + 2 = 18 float (72 B);         MACs 8*2                   = 16
EXPECTED = {
    "stem": (32, 32, 108, 0, 432.0, 6912, 0),
    "bn": (None, None, 16, 0, 64.0, 0, 0),
    "bconv": (1, 1, 288, 288, 36.0, 4608, 4608),
    "kernel_only": (32, 1, 72, 64, 40.0, 1024, 0),
    "pool": (None, None, 0, 0, 0.0, 0, 0),
    "head": (32, 32, 18, 0, 72.0, 16, 0),
}


def test_summary_matches_hand_counts():
    lines = []
    result = summary(tiny_model(), print_fn=lines.append)
    rows = {
        layer.name: (
            layer.input_bits,
            layer.kernel_bits,
            layer.params,
            layer.binary_params,
            layer.memory_bytes,
            layer.macs,
            layer.binary_macs,
        )
        for layer in result.layers
    }
    assert rows == EXPECTED
    assert result.params == 502
    assert result.binary_params == 352
    assert result.memory_bytes == 644.0
    assert result.float_memory_bytes == 2008.0
    assert result.compression_ratio == pytest.approx(2008 / 644)
    assert result.macs == 12560
    assert result.binary_macs == 4608
    assert result.binarized_fraction == pytest.approx(4608 / 12560)
    table = lines[0]
    assert "bconv" in table and "100%" in table and "12,560" in table and "36.7%" in table


def test_summary_walks_nested_models_and_refuses_unbuilt_ones():
    inner = tiny_model()
    outer = keras.Sequential([keras.Input((8, 8, 3)), inner, keras.layers.Softmax()])
    assert summary(outer, print_fn=None).macs == 12560
    with pytest.raises(UnsupportedLayerError, match="not built"):
        summary(keras.Sequential([BinaryDense(2)]), print_fn=None)


def test_zoo_model_is_mostly_binary():
    result = summary(binary_resnet(num_classes=5, image_size=32, width=8), print_fn=None)
    assert result.binarized_fraction > 0.5
    assert result.compression_ratio > 1.0
    binary_rows = [layer for layer in result.layers if layer.kind == "BinaryConv2D"]
    assert len(binary_rows) == 16 and all(layer.binarized_fraction == 1.0 for layer in binary_rows)


def test_summary_command_prints_table_and_writes_json(tmp_path, capsys):
    path = tmp_path / "tiny.keras"
    tiny_model().save(path)
    out_json = tmp_path / "summary.json"
    assert main(["summary", str(path), "--json", str(out_json)]) == 0
    assert "Parameter memory" in capsys.readouterr().out
    data = json.loads(out_json.read_text())
    assert data["binary_macs"] == 4608 and data["memory_bytes"] == 644.0
    assert main(["summary", str(tmp_path / "missing.keras")]) == 2
    assert "does not exist" in capsys.readouterr().err
