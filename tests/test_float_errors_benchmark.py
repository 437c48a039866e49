"""benchmarks/float_errors.py: ensemble, shared errors, the most confident errors and their contact sheet."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
from PIL import Image

from tfcompress.data import ImageSet

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("benchmark_float_errors", ROOT / "benchmarks/float_errors.py")
float_errors = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(float_errors)


def test_ensemble_is_the_mean_of_the_members_probabilities():
    a = np.array([[0.9, 0.1], [0.2, 0.8]])
    b = np.array([[0.3, 0.7], [0.4, 0.6]])
    np.testing.assert_allclose(float_errors.ensemble_probabilities([a, b]), [[0.6, 0.4], [0.3, 0.7]])


def test_softmax_rows_sum_to_one_and_keep_the_order():
    p = float_errors.softmax(np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]]))
    np.testing.assert_allclose(p.sum(1), 1.0)
    np.testing.assert_allclose(p[0], np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum())
    assert p[1].argmax() == 0


def test_shared_errors_and_pairwise_agreement():
    labels = np.array([0, 1, 2, 0])
    first = np.array([0, 2, 1, 1])  # wrong on 1, 2, 3
    second = np.array([1, 2, 2, 1])  # wrong on 0, 1, 3
    third = np.array([0, 0, 1, 2])  # wrong on 1, 2, 3
    np.testing.assert_array_equal(
        float_errors.shared_errors([first, second, third], labels), [False, True, False, True]
    )
    assert float_errors.pairwise_agreement([first, second, third]) == [0.5, 0.5, 0.0]


def test_most_confident_errors_are_ordered_by_the_predicted_probability():
    labels = np.array([0, 0, 1, 1, 0])
    probabilities = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9], [0.05, 0.95]])
    # wrong: image 1 (0.7 on class 1), image 2 (0.6 on class 0), image 4 (0.95 on class 1)
    np.testing.assert_array_equal(float_errors.most_confident_errors(probabilities, labels, 5), [4, 1, 2])
    np.testing.assert_array_equal(float_errors.most_confident_errors(probabilities, labels, 2), [4, 1])


def test_contact_sheet_is_a_png_with_one_panel_per_error():
    rng = np.random.default_rng(0)
    images = ImageSet(
        images=rng.integers(0, 256, (3, 16, 16, 3)).astype(np.uint8),
        labels=np.array([0, 1, 0], np.int32),
        class_names=["daisy", "rose"],
        paths=["daisy/a.jpg", "rose/b.jpg", "daisy/c.jpg"],
    )
    probabilities = np.array([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6]])
    png = float_errors.contact_sheet(images, np.array([0, 1]), probabilities, columns=2)
    sheet = Image.open(io.BytesIO(png))
    assert sheet.format == "PNG"
    assert sheet.size == (2 * 2.0 * 80, 1 * 2.6 * 80)
