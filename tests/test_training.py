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
