"""tfcompress.data: folders, split lists, bad files, and the tf.data pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from tfcompress.data import list_split, load_split, make_dataset, resolve_data_dir
from tfcompress.errors import DataError


def test_load_split_reads_the_listed_images(image_folder):
    data = load_split(image_folder, "train", 16)
    assert data.images.shape == (12, 16, 16, 3)
    assert data.images.dtype == np.uint8
    assert data.class_names == ["class0", "class1", "class2"]
    assert sorted(set(data.labels.tolist())) == [0, 1, 2]
    # Class c was drawn around grey level 60 * c: the decoded pixels keep that order.
    means = [data.images[data.labels == c].mean() for c in range(3)]
    assert means[0] < means[1] < means[2]


def test_corrupt_image_is_skipped_warned_and_counted(image_folder):
    (image_folder / "class1" / "img0.png").write_bytes(b"not a png at all")
    with pytest.warns(UserWarning, match="unreadable image"):
        data = load_split(image_folder, "train", 16)
    assert data.skipped == ["class1/img0.png"]
    assert len(data) == 11


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_split(tmp_path / "nope", "train", 16)


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="is empty"):
        load_split(tmp_path, "train", 16)


def test_class_folder_without_images_is_a_clear_error(image_folder):
    (image_folder / "class3").mkdir()
    (image_folder / "class3" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="class3 holds no images"):
        load_split(image_folder, "train", 16)


def test_unknown_split_is_rejected(image_folder):
    with pytest.raises(DataError, match="unknown split"):
        list_split(image_folder, "holdout")


def test_hash_split_without_lists_is_disjoint_and_complete(image_folder):
    for split in ("train", "val", "test"):
        (image_folder / f"{split}.txt").unlink()
    parts = {}
    for split in ("train", "val", "test"):
        try:
            parts[split] = set(list_split(image_folder, split)[0])
        except DataError:  # a split of 18 images may come out empty
            parts[split] = set()
    every = set(list_split(image_folder, None)[0])
    assert parts["train"] | parts["val"] | parts["test"] == every
    assert not (parts["train"] & parts["val"]) and not (parts["train"] & parts["test"])
    assert parts["train"] == set(list_split(image_folder, "train")[0])  # the same on every call


def test_data_location_from_environment(image_folder, monkeypatch):
    monkeypatch.setenv("TFCOMPRESS_DATA", str(image_folder))
    assert resolve_data_dir(None) == image_folder
    assert resolve_data_dir(image_folder / "..") != image_folder  # an explicit folder wins


def test_limit_keeps_every_class(flowers_dir):
    data = load_split(flowers_dir, "test", 32, limit=20)
    assert len(data) == 20
    assert len(set(data.labels.tolist())) == 5


def test_training_dataset_is_augmented_and_shaped(image_folder):
    data = load_split(image_folder, "train", 16)
    plain = next(iter(make_dataset(data, 4, training=False)))[0].numpy()
    augmented = next(iter(make_dataset(data, 4, training=True, seed=1)))[0].numpy()
    assert plain.shape == augmented.shape == (4, 16, 16, 3)
    assert plain.dtype == np.float32
    np.testing.assert_array_equal(plain, data.images[:4].astype(np.float32))
    assert augmented.min() >= 0.0 and augmented.max() <= 255.0
    assert not np.allclose(augmented, plain)


def test_files_that_no_split_lists_are_counted_in_a_warning(image_folder):
    from tfcompress.data import list_split

    (image_folder / "class1" / "stray.jpg").write_bytes(b"not an image, and in no list")
    with pytest.warns(UserWarning, match=r"1 file\(s\) in the class folders of .* in no split list .*class1/stray"):
        entries, _, _ = list_split(image_folder, "train")
    assert "class1/stray.jpg" not in entries
