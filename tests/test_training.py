"""tfcompress.training: the recipe trains, keeps the best weights, resumes, and mirrors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfcompress.errors import TfcompressError
from tfcompress.training import TrainConfig, train

TINY = TrainConfig(model="resnet8", image_size=16, width=4, epochs=2, batch_size=4, warmup_epochs=1)


def test_train_under_mirrored_strategy_writes_a_loadable_model(image_folder, tmp_path):
    output = tmp_path / "tiny.keras"
    model = train(output, image_folder, TINY, devices=2, verbose=0)
    loaded = keras.models.load_model(output)
    x = np.random.default_rng(0).uniform(0, 255, (3, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_train_updates_the_weights(image_folder, tmp_path):
    keras.utils.set_random_seed(TINY.seed)
    from tfcompress.models import build_model

    initial = build_model("resnet8", num_classes=3, image_size=16, width=4).get_weights()
    trained = train(tmp_path / "m.keras", image_folder, TINY, verbose=0).get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(initial, trained, strict=True))


def test_mixed_bfloat16_training_saves_a_float32_model_and_restores_the_policy(image_folder, tmp_path):
    from dataclasses import replace

    output = tmp_path / "bf16.keras"
    model = train(output, image_folder, replace(TINY, precision="mixed_bfloat16"), verbose=0)
    assert keras.config.dtype_policy().name == "float32"
    loaded = keras.models.load_model(output)
    assert {layer.dtype_policy.name for layer in loaded.layers} == {"float32"}
    x = np.random.default_rng(0).uniform(0, 255, (3, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    with pytest.raises(TfcompressError, match="unknown precision 'float8'"):
        train(tmp_path / "x.keras", image_folder, replace(TINY, precision="float8"), verbose=0)


def test_with_precision_copies_weights_and_keeps_float32_logits():
    from tfcompress.models import build_model
    from tfcompress.training import with_precision

    keras.utils.set_random_seed(0)
    model = build_model("resnet8", num_classes=3, image_size=16, width=8)
    half = with_precision(model, "mixed_bfloat16")
    assert half.layers[-1].compute_dtype == "float32"
    assert half.get_layer("stem_conv").compute_dtype == "bfloat16"
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}  # the input is not changed
    x = np.random.default_rng(1).uniform(0, 255, (8, 16, 16, 3)).astype(np.float32)
    full, low = model.predict(x, verbose=0), half.predict(x, verbose=0)
    assert low.dtype == np.float32
    np.testing.assert_allclose(low, full, atol=0.05 * np.abs(full).max() + 1e-3)


def test_train_refuses_to_overwrite_without_force(image_folder, tmp_path):
    output = tmp_path / "exists.keras"
    output.write_text("precious")
    with pytest.raises(TfcompressError, match="already exists"):
        train(output, image_folder, TINY, verbose=0)
    assert output.read_text() == "precious"


def test_interrupted_training_resumes_from_backup(image_folder, tmp_path):
    backup = tmp_path / "backup"

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    import tfcompress.training as training

    original_fit = keras.Model.fit

    def interrupted_fit(self, *args, callbacks=None, **kwargs):
        return original_fit(self, *args, callbacks=[*callbacks, StopAfterFirstEpoch()], **kwargs)

    keras.Model.fit = interrupted_fit
    try:
        with pytest.raises(KeyboardInterrupt):
            training.train(tmp_path / "a.keras", image_folder, TINY, backup_dir=backup, verbose=0)
    finally:
        keras.Model.fit = original_fit
    assert any(backup.iterdir()), "no resumable state was kept"
    seen_epochs = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen_epochs.append(epoch)

    def recording_fit(self, *args, callbacks=None, **kwargs):
        return original_fit(self, *args, callbacks=[*callbacks, Record()], **kwargs)

    keras.Model.fit = recording_fit
    try:
        training.train(tmp_path / "a.keras", image_folder, TINY, backup_dir=backup, verbose=0)
    finally:
        keras.Model.fit = original_fit
    assert seen_epochs == [1], f"resumed run should start at epoch 1, ran {seen_epochs}"


def test_mixup_mixes_images_and_labels_with_the_same_weight():
    from tfcompress.training import mixup_batch

    class_values = np.array([10.0, 100.0, 200.0], np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    images = np.ones((6, 4, 4, 3), np.float32) * (labels @ class_values)[:, None, None, None]  # constant per class
    keras.utils.set_random_seed(3)
    mixed_images, mixed_labels = (np.asarray(t) for t in mixup_batch(images, labels, 0.4))
    np.testing.assert_allclose(mixed_labels.sum(axis=1), 1.0, rtol=1e-6)
    # Each mixed image is the label-weighted blend of the class images it came from.
    np.testing.assert_allclose(mixed_images[:, 0, 0, 0], mixed_labels @ class_values, rtol=1e-5)
    assert not np.allclose(mixed_labels, labels)


def test_cutmix_pastes_one_box_and_labels_follow_its_area():
    from tfcompress.training import cutmix_batch

    class_values = np.array([10.0, 100.0, 200.0], np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    images = np.ones((6, 12, 10, 3), np.float32) * (labels @ class_values)[:, None, None, None]
    mixed_any = False
    for seed in range(6):
        keras.utils.set_random_seed(seed)
        mixed_images, mixed_labels = (np.asarray(t) for t in cutmix_batch(images, labels, 1.0))
        np.testing.assert_allclose(mixed_labels.sum(axis=1), 1.0, rtol=1e-6)
        # The label weights are the pixel fractions of each source image.
        np.testing.assert_allclose(mixed_images.mean(axis=(1, 2, 3)), mixed_labels @ class_values, rtol=1e-5)
        changed = np.any(mixed_images != images, axis=(0, 3))  # pixels pasted in at least one image
        if changed.any():
            mixed_any = True
            rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
            assert changed[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all(), "pasted region not a box"
    assert mixed_any


def test_mix_batch_without_mixing_is_the_identity_and_with_both_keeps_labels_consistent():
    from tfcompress.training import mix_batch

    class_values = np.array([10.0, 100.0, 200.0], np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    images = np.ones((6, 8, 8, 3), np.float32) * (labels @ class_values)[:, None, None, None]
    same_images, same_labels = mix_batch(images, labels)
    np.testing.assert_array_equal(np.asarray(same_images), images)
    np.testing.assert_array_equal(np.asarray(same_labels), labels)
    for seed in range(4):
        keras.utils.set_random_seed(seed)
        mixed_images, mixed_labels = (np.asarray(t) for t in mix_batch(images, labels, mixup=0.4, cutmix=1.0))
        np.testing.assert_allclose(mixed_images.mean(axis=(1, 2, 3)), mixed_labels @ class_values, rtol=1e-5)


@pytest.mark.parametrize(("keep", "kept_epoch"), [("best", 0), ("last", 1)])
def test_keep_chooses_the_best_validation_epoch_or_the_last(monkeypatch, image_folder, tmp_path, keep, kept_epoch):
    from dataclasses import replace

    from tfcompress import training

    scores = iter([0.9, 0.1])  # the first epoch validates best
    snapshots = []

    def scripted_accuracy(self) -> float:
        snapshots.append(self.model.get_weights())
        return next(scores)

    monkeypatch.setattr(training.ValidationAccuracy, "accuracy", scripted_accuracy)
    model = train(tmp_path / "m.keras", image_folder, replace(TINY, keep=keep), verbose=0)
    assert len(snapshots) == 2
    for kept, expected in zip(model.get_weights(), snapshots[kept_epoch], strict=True):
        np.testing.assert_array_equal(kept, expected)
    assert any(not np.array_equal(a, b) for a, b in zip(snapshots[0], snapshots[1], strict=True))


def test_unknown_keep_is_refused(image_folder, tmp_path):
    from dataclasses import replace

    with pytest.raises(TfcompressError, match="keep must be one of best, last, got 'middle'"):
        train(tmp_path / "m.keras", image_folder, replace(TINY, keep="middle"), verbose=0)
