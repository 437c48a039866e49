"""The Raspberry Pi app (android_demo/raspberry_pi) on x86, run as a subprocess like a user would.

Its predictions are checked against tfcompress's own runtime path (``tfcompress.evaluate``
and ``tfcompress.data.load_image``) on the same images, for a float, an int8 and a binary
(custom-op) model; bad input must give one clear line on stderr and a non-zero status.
Every run also checks that the app never imported TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import make_image_folder

from tfcompress import runtime
from tfcompress.convert import to_tflite
from tfcompress.data import load_image, load_split
from tfcompress.evaluate import TFLiteClassifier, evaluate

APP_DIR = Path(__file__).resolve().parent.parent / "android_demo" / "raspberry_pi"
IMAGE_SIZE = 32
CLASSES = 3

# Runs the app's main() and fails with status 3 when TensorFlow got imported on the way.
_RUNNER = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); from flowerpi.app import main; status = main(sys.argv[1:]); "
    "sys.exit(3 if 'tensorflow' in sys.modules else status)"
)


def run_app(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, **(env or {})}
    command = [sys.executable, "-c", _RUNNER, str(APP_DIR), *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=120)
    assert result.returncode != 3, "the Pi app imported TensorFlow"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def json_rows(stdout: str) -> tuple[dict[str, list[dict]], dict]:
    rows = [json.loads(line) for line in stdout.splitlines()]
    summary = next(row["summary"] for row in rows if "summary" in row)
    return {row["source"]: row["top"] for row in rows if "source" in row}, summary


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("flowerpi: error:")]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, Path]:
    """A tiny 3-class data folder, its labels, and a float, an int8 and a binary .tflite model."""
    from tfcompress.binary import BinaryConv2D, BinaryDense
    from tfcompress.models import build_model

    root = tmp_path_factory.mktemp("pi_app")
    data = make_image_folder(root / "data", classes=CLASSES, per_class=4, size=24)
    models = root / "models"
    models.mkdir()
    (models / "labels.txt").write_text("".join(f"class{c}\n" for c in range(CLASSES)))
    keras.utils.set_random_seed(0)
    model = build_model("resnet8", num_classes=CLASSES, image_size=IMAGE_SIZE, width=8)
    calibration = load_split(data, None, IMAGE_SIZE).images.astype(np.float32)
    (models / "float.tflite").write_bytes(to_tflite(model))
    (models / "int8.tflite").write_bytes(to_tflite(model, int8=True, calibration=calibration))

    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same")(x)
    x = BinaryConv2D(32, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign", kernel_quantizer="ste_sign")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = BinaryDense(CLASSES, input_quantizer="ste_sign", kernel_quantizer="ste_sign")(x)
    (models / "binary.tflite").write_bytes(to_tflite(keras.Model(inputs, x)))
    return {"data": data, "models": models}


def reference_scores(model: Path, files: list[str]) -> np.ndarray:
    """Softmax of tfcompress's TFLiteClassifier outputs on tfcompress.data.load_image images."""
    classifier = TFLiteClassifier(model, threads=1)
    images = np.stack([load_image(f, IMAGE_SIZE) for f in files])
    return softmax(classifier.predict(images))


@pytest.mark.parametrize("kind", ["float", "int8"])
def test_folder_and_files_match_tfcompress_runtime(workspace, kind):
    model = workspace["models"] / f"{kind}.tflite"
    folder = run_app("--model", model, "--json", "--threads", "2", workspace["data"])
    assert folder.returncode == 0, folder.stderr
    by_source, summary = json_rows(folder.stdout)
    files = sorted(by_source)
    assert len(files) == CLASSES * 4 and summary["classified"] == CLASSES * 4 and summary["skipped"] == 0
    expected = reference_scores(model, files)
    for source, scores in zip(files, expected, strict=True):
        top = by_source[source]
        assert [t["index"] for t in top] == list(np.argsort(-scores, kind="stable")[:3])
        assert top[0]["label"] == f"class{int(np.argmax(scores))}"
        np.testing.assert_allclose([t["score"] for t in top], np.sort(scores)[::-1][:3], atol=2e-6)
    # The same images given as files come out identical to the folder run.
    picked = files[::5]
    as_files = run_app("--model", model, "--json", "--threads", "1", *picked)
    assert as_files.returncode == 0, as_files.stderr
    file_rows, _ = json_rows(as_files.stdout)
    assert {k: [t["index"] for t in v] for k, v in file_rows.items()} == {
        k: [t["index"] for t in by_source[k]] for k in picked
    }


def test_no_xnnpack_runs_tflite_builtin_kernels(workspace):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    model = workspace["models"] / "int8.tflite"
    result = run_app("--model", model, "--json", "--no-xnnpack", workspace["data"] / "class0")
    assert result.returncode == 0, result.stderr
    by_source, summary = json_rows(result.stdout)
    with_xnnpack = json_rows(run_app("--model", model, "--json", workspace["data"] / "class0").stdout)[1]
    taken, nodes = map(int, with_xnnpack["delegated_nodes"].split("/"))
    assert summary["delegated_nodes"] == f"0/{nodes}" and 0 < taken <= nodes  # XNNPACK takes the int8 graph
    interpreter = Interpreter(
        model_path=str(model), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    interpreter.allocate_tensors()
    given, taken = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert given["dtype"] == np.uint8
    scale, zero_point = given["quantization"]
    for source, top in sorted(by_source.items()):
        image = load_image(source, IMAGE_SIZE)[None].astype(np.float32)
        interpreter.set_tensor(given["index"], np.clip(np.round(image / scale + zero_point), 0, 255).astype(np.uint8))
        interpreter.invoke()
        expected = softmax(interpreter.get_tensor(taken["index"])[0].astype(np.float64))
        assert [t["index"] for t in top] == list(np.argsort(-expected, kind="stable")[:3])
        np.testing.assert_allclose([t["score"] for t in top], np.sort(expected)[::-1][:3], atol=2e-6)


def test_list_accuracy_equals_evaluate(workspace):
    model = workspace["models"] / "float.tflite"
    result = run_app("--model", model, "--list", workspace["data"] / "test.txt")
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    expected = evaluate(model, data_dir=workspace["data"], split="test", runs=1, warmup=0)
    assert f"classified {expected.images} image(s), skipped 0" in last
    assert f"= {expected.accuracy:.4f} (folder names as truth)" in last


def test_corrupt_image_is_skipped_warned_and_counted(workspace, tmp_path):
    data = shutil.copytree(workspace["data"], tmp_path / "data")
    (data / "class1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    result = run_app("--model", workspace["models"] / "float.tflite", "--top", "2", data)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("flowerpi: warning:")]
    assert len(warnings) == 2
    assert "skipping unreadable image" in warnings[0] and "broken.png" in warnings[0]
    assert "skipped 1 unreadable image(s) of 13" in warnings[1]
    image_lines = [line for line in result.stdout.splitlines() if " ms  class" in line]
    assert len(image_lines) == 12 and all(line.split(" ms  ")[1].count("class") == 2 for line in image_lines)
    assert "classified 12 image(s), skipped 1" in result.stdout


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda w, t: ["--model", t / "missing.tflite", w["data"]], "model file .*missing.tflite does not exist"),
        (lambda w, t: ["--model", w["models"] / "float.tflite", t / "nope"], "image or folder .*nope does not exist"),
        (lambda w, t: ["--model", w["models"] / "float.tflite", t], "folder .* holds no images"),
        (lambda w, t: ["--model", w["models"] / "float.tflite", "--threads", "0", w["data"]], "--threads must be"),
        (lambda w, t: ["--model", w["models"] / "float.tflite", "--camera"], "--camera needs picamera2"),
    ],
    ids=["missing-model", "missing-image", "empty-folder", "bad-threads", "no-picamera2"],
)
def test_user_mistakes_give_one_clear_line(workspace, tmp_path, make_args, message):
    import re

    result = run_app(*make_args(workspace, tmp_path))
    assert result.returncode == 2
    errors = error_lines(result)
    assert len(errors) == 1 and re.search(message, errors[0]), result.stderr


_FAKE_PICAMERA2 = """
import numpy as np
from PIL import Image

class Picamera2:
    def __init__(self):
        self.size = None

    def create_preview_configuration(self, main):
        assert main["format"] == "RGB888"
        return main

    def configure(self, config):
        self.size = config["size"]

    def start(self):
        pass

    def capture_array(self, stream):
        rgb = Image.open(FRAME).convert("RGB").resize(self.size, Image.Resampling.NEAREST)
        return np.ascontiguousarray(np.asarray(rgb)[..., ::-1])  # libcamera's RGB888 is B, G, R in memory

    def stop(self):
        pass

    def close(self):
        pass
"""


def test_camera_frames_through_picamera2(workspace, tmp_path):
    """A stand-in picamera2 serves BGR frames of one image; the app must see them as RGB."""
    from PIL import Image

    frame = sorted((workspace["data"] / "class2").glob("*.png"))[0]
    package = tmp_path / "fake" / "picamera2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"FRAME = {str(frame)!r}\n" + _FAKE_PICAMERA2)
    model = workspace["models"] / "float.tflite"
    result = run_app(
        "--model", model, "--camera", "--frames", "3", "--json", env={"PYTHONPATH": str(tmp_path / "fake")}
    )
    assert result.returncode == 0, result.stderr
    by_source, summary = json_rows(result.stdout)
    assert list(by_source) == ["frame 0", "frame 1", "frame 2"] and summary["classified"] == 3
    captured = Image.open(frame).convert("RGB").resize((640, 480), Image.Resampling.NEAREST)
    image = np.asarray(captured.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR))
    expected = softmax(TFLiteClassifier(model).predict(image[None]))[0]
    for top in by_source.values():
        assert top[0]["index"] == int(np.argmax(expected))
        np.testing.assert_allclose([t["score"] for t in top], np.sort(expected)[::-1][:3], atol=2e-6)


def test_corrupt_model_gives_one_clear_line(workspace, tmp_path):
    good = (workspace["models"] / "float.tflite").read_bytes()
    not_tflite = tmp_path / "text.tflite"
    not_tflite.write_text("hello, I am not a model\n" * 10)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(good[: len(good) // 3])
    for model, message in [(not_tflite, "is not a .tflite model"), (truncated, "truncated.tflite")]:
        result = run_app("--model", model, workspace["data"])
        errors = error_lines(result)
        assert result.returncode == 2 and len(errors) == 1 and message in errors[0], result.stderr


def test_model_with_custom_ops_needs_the_op_library(workspace, tmp_path):
    model = workspace["models"] / "binary.tflite"
    missing = tmp_path / "lib" / "libtfcompress_ops.so"
    result = run_app("--model", model, workspace["data"], env={"TFCOMPRESS_OPS_LIBRARY": str(missing)})
    errors = error_lines(result)
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert "uses the tfcompress custom ops TfcBinaryConv2D, TfcBinaryDense" in errors[0]
    assert f"op library {missing} (from $TFCOMPRESS_OPS_LIBRARY) does not exist" in errors[0]
    # With the library the app runs the custom ops and agrees with tfcompress's runtime.
    library = runtime.ops_library_path()
    assert library is not None, "libtfcompress_ops.so is not built (pip install -e .)"
    ok = run_app("--model", model, "--json", "--ops-library", library, workspace["data"] / "class2")
    assert ok.returncode == 0, ok.stderr
    by_source, _ = json_rows(ok.stdout)
    files = sorted(by_source)
    expected = reference_scores(model, files)
    for source, scores in zip(files, expected, strict=True):
        assert by_source[source][0]["index"] == int(np.argmax(scores))
        np.testing.assert_allclose(by_source[source][0]["score"], scores.max(), atol=2e-6)


def test_custom_op_reader_without_generated_schema(workspace):
    sys.path.insert(0, str(APP_DIR))
    try:
        from flowerpi.errors import AppError
        from flowerpi.tflite_file import custom_op_names, custom_op_names_minimal, custom_op_names_schema
    finally:
        sys.path.remove(str(APP_DIR))
    for name in ("binary", "float", "int8"):
        content = (workspace["models"] / f"{name}.tflite").read_bytes()
        assert custom_op_names_minimal(content) == custom_op_names_schema(content) == runtime.custom_op_names(content)
    binary = (workspace["models"] / "binary.tflite").read_bytes()
    assert sorted(custom_op_names_minimal(binary)) == ["TfcBinaryConv2D", "TfcBinaryDense"]
    with pytest.raises(AppError, match=r"not a \.tflite model"):
        custom_op_names(b"\x00" * 64)
    broken = b"\xff\xff\xff\x7f" + binary[4:]  # the root table offset now points far outside the file
    with pytest.raises(ValueError, match="outside"):
        custom_op_names_minimal(broken)
    with pytest.raises(AppError, match=r"corrupt \.tflite model"):
        custom_op_names(broken, "broken.tflite")
