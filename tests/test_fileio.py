"""tfcompress.fileio: atomic writes, refusing to overwrite, resumable model stages."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfcompress.errors import TfcompressError
from tfcompress.fileio import cached_model, output_paths, write_text_atomic


def test_output_paths_refuse_an_existing_file(tmp_path):
    (tmp_path / "m.tflite").write_text("keep")
    with pytest.raises(TfcompressError, match="already exists"):
        output_paths(tmp_path, "m", (".keras", ".tflite"))
    paths = output_paths(tmp_path, "m", (".keras", ".tflite"), force=True)
    assert paths == {".keras": tmp_path / "m.keras", ".tflite": tmp_path / "m.tflite"}


def test_written_files_have_the_usual_mode(tmp_path):
    path = write_text_atomic(tmp_path / "a.txt", "x")
    assert path.stat().st_mode & 0o044  # readable by others, unlike mkstemp's 0600


def test_cached_model_makes_once_then_loads(tmp_path):
    calls = []

    def make():
        calls.append(1)
        inputs = keras.Input((3,))
        return keras.Model(inputs, keras.layers.Dense(2)(inputs))

    first = cached_model(tmp_path / "stage.keras", make)
    second = cached_model(tmp_path / "stage.keras", make)
    assert len(calls) == 1
    x = np.ones((1, 3), np.float32)
    np.testing.assert_allclose(second.predict(x, verbose=0), first.predict(x, verbose=0))
