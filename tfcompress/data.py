"""Image classification data: class-per-folder image directories with optional split lists.

A data folder holds one sub-folder per class (the layout
``keras.utils.image_dataset_from_directory`` reads). When it also holds ``train.txt``,
``val.txt`` and ``test.txt`` (paths relative to the folder, one per line, as in
``flowers5``), those fix the splits; otherwise a split is drawn from a hash of each
file's relative path (80% train, 10% val, 10% test), so it is the same on every run.

Images are decoded once with Pillow into a ``uint8`` array held in memory (unreadable
files are skipped with a warning and counted), and served through ``tf.data``. Pixel
values stay in [0, 255]: every model of the zoo rescales inside the graph, so a
``.tflite`` takes raw pixels.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from tfcompress.errors import DataError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})
SPLITS = ("train", "val", "test")
DATA_ENV_VAR = "TFCOMPRESS_DATA"
_HASH_SPLIT_FRACTIONS = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}
_FLOWERS_HINT = (
    "pass --data DIR (a folder with one sub-folder of images per class), set "
    f"{DATA_ENV_VAR}, or place flowers5 at ../shared/datasets/flowers5. TensorFlow's "
    "flower photos (https://storage.googleapis.com/download.tensorflow.org/example_images/"
    "flower_photos.tgz) have the right layout when you are online."
)


def default_data_candidates() -> list[Path]:
    """Folders tried, in order, when no ``--data`` is given and the variable is unset."""
    repo_root = Path(__file__).resolve().parent.parent
    candidates = [Path.cwd() / "../shared/datasets/flowers5", repo_root / "../shared/datasets/flowers5"]
    return [c.resolve() for c in candidates]


def resolve_data_dir(data: str | os.PathLike | None = None) -> Path:
    """Find the data folder: ``data``, else ``$TFCOMPRESS_DATA``, else ``../shared/datasets/flowers5``.

    Raises:
        DataError: no folder was given and none of the defaults exists, or the given
            folder does not exist.
    """
    if data is None:
        data = os.environ.get(DATA_ENV_VAR) or None
    if data is not None:
        path = Path(data).expanduser()
        if not path.is_dir():
            raise DataError(f"data folder {path} does not exist; {_FLOWERS_HINT}")
        return path
    for candidate in default_data_candidates():
        if candidate.is_dir():
            return candidate
    raise DataError(f"no data folder found; {_FLOWERS_HINT}")


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def discover_classes(data_dir: Path) -> list[str]:
    """Sorted class names: the sub-folders of ``data_dir``.

    Raises:
        DataError: the folder has no sub-folders, or a class folder holds no image.
    """
    class_dirs = sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"data folder {data_dir} is empty: expected one sub-folder of images per class")
    for class_dir in class_dirs:
        if not any(_is_image(p) for p in class_dir.iterdir()):
            raise DataError(
                f"class folder {class_dir} holds no images (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
    return [p.name for p in class_dirs]


def _hash_fraction(relative_path: str) -> float:
    digest = hashlib.sha1(relative_path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def unlisted_files(root: Path, class_names: list[str]) -> list[str]:
    """Files of the class folders that none of the split lists present in ``root`` names (sorted, relative)."""
    listed: set[str] = set()
    for name in SPLITS:
        list_file = root / f"{name}.txt"
        if list_file.is_file():
            listed.update(line.strip() for line in list_file.read_text().splitlines() if line.strip())
    files = (f"{name}/{p.name}" for name in class_names for p in (root / name).iterdir() if p.is_file())
    return sorted(entry for entry in files if entry not in listed and not Path(entry).name.startswith("."))


def list_split(data_dir: str | os.PathLike, split: str | None) -> tuple[list[str], list[int], list[str]]:
    """Relative image paths, their class indices, and the class names of one split.

    Args:
        data_dir: the data folder.
        split: ``"train"``, ``"val"``, ``"test"``, or ``None`` for every image.

    Raises:
        DataError: an unknown split, an empty split, or a list entry outside the classes.
    """
    root = Path(data_dir)
    if split is not None and split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    class_names = discover_classes(root)
    index = {name: i for i, name in enumerate(class_names)}
    list_file = root / f"{split}.txt" if split else None
    if list_file is not None and list_file.is_file():
        entries = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
        unused = unlisted_files(root, class_names)
        if unused:
            warnings.warn(
                f"{len(unused)} file(s) in the class folders of {root} are in no split list "
                f"({', '.join(f'{name}.txt' for name in SPLITS)}) and are not used, e.g. {unused[0]}",
                stacklevel=2,
            )
    else:
        entries = sorted(f"{name}/{p.name}" for name in class_names for p in (root / name).iterdir() if _is_image(p))
        if split is not None:
            low, high = _HASH_SPLIT_FRACTIONS[split]
            entries = [e for e in entries if low <= _hash_fraction(e) < high]
    labels = []
    for entry in entries:
        class_name = Path(entry).parts[0]
        if class_name not in index:
            raise DataError(f"{list_file}: entry {entry!r} is not inside a class folder of {root}")
        labels.append(index[class_name])
    if not entries:
        raise DataError(f"split {split!r} of {root} has no images")
    return entries, labels, class_names


@dataclass
class ImageSet:
    """Decoded images of one split, in memory.

    Attributes:
        images: ``uint8`` array of shape (N, size, size, 3).
        labels: ``int32`` class indices, shape (N,).
        class_names: names of the classes, index order.
        paths: relative paths of the images kept, in the order of ``images``.
        skipped: relative paths of the files that could not be decoded.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    paths: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB: grey, palette, CMYK, alpha dropped, 16-bit scaled to 8 bits.

    Pillow's own ``convert("RGB")`` clips 16-bit grey (modes ``I;16*`` and ``I``, as 16-bit PNGs
    open) at 255 instead of scaling it, so those are scaled here first.
    """
    if image.mode.startswith("I"):
        grey = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(np.round(grey / 257.0), 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # a palette with transparency goes through RGBA (Pillow warns otherwise)
    return image.convert("RGB")


def load_image(path: str | os.PathLike, image_size: int) -> np.ndarray:
    """Decode one image file to RGB ``uint8`` of shape (image_size, image_size, 3).

    Every mode Pillow reads is accepted (see :func:`_to_rgb`); any size is resized.

    Raises:
        OSError, UnidentifiedImageError, ValueError: the file is not a readable image.
    """
    with Image.open(path) as image:
        image = _to_rgb(image)
        if image.size != (image_size, image_size):
            image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


def load_split(
    data_dir: str | os.PathLike | None,
    split: str | None,
    image_size: int,
    limit: int | None = None,
) -> ImageSet:
    """Decode the images of one split into memory.

    Args:
        data_dir: the data folder (``None``: see :func:`resolve_data_dir`).
        split: ``"train"``, ``"val"``, ``"test"`` or ``None`` (all images).
        image_size: side of the square images returned.
        limit: keep only ``limit`` images of the split, a fixed hash-ordered sample that
            mixes the classes (for quick runs and tests).

    Files that cannot be decoded are skipped with a warning; they are listed in
    :attr:`ImageSet.skipped`.

    Raises:
        DataError: see :func:`list_split`; also when no image of the split can be read.
    """
    root = resolve_data_dir(data_dir)
    entries, labels, class_names = list_split(root, split)
    if limit is not None:
        # A hash order mixes the classes, so a small limit still sees all of them.
        keep = sorted(sorted(range(len(entries)), key=lambda i: _hash_fraction(entries[i]))[:limit])
        entries, labels = [entries[i] for i in keep], [labels[i] for i in keep]
    images, kept_labels, kept_paths, skipped = [], [], [], []
    for entry, label in zip(entries, labels, strict=True):
        try:
            images.append(load_image(root / entry, image_size))
        except (OSError, UnidentifiedImageError, ValueError) as error:
            warnings.warn(f"skipping unreadable image {root / entry}: {error}", stacklevel=2)
            skipped.append(entry)
            continue
        kept_labels.append(label)
        kept_paths.append(entry)
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable image(s) of {len(entries)} in {root}", stacklevel=2)
    if not images:
        raise DataError(f"no readable image in split {split!r} of {root}")
    return ImageSet(
        images=np.stack(images),
        labels=np.asarray(kept_labels, dtype=np.int32),
        class_names=class_names,
        paths=kept_paths,
        skipped=skipped,
    )


def augment_batch(images, seed=None):
    """Training augmentation on a float batch in [0, 255]: random-resized crop, flip, colour.

    Random-resized crop (Szegedy et al. 2015, "Going deeper with convolutions"): a box
    covering 25-100% of the image area with aspect ratio in [3/4, 4/3] is cropped and
    resized back to the input size; then a horizontal flip with probability 1/2 and a
    brightness/contrast/saturation jitter of up to 20%.

    With ``seed`` (a shape-[2] integer tensor) every draw is stateless, a function of the seed
    alone: the same batch gets the same augmentation in any process, on any worker, and in a
    resumed run (:func:`make_dataset` gives each batch its own seed).
    """
    import tensorflow as tf

    def uniform(shape, low: float, high: float, draw: int):
        if seed is None:
            return tf.random.uniform(shape, low, high)
        key = tf.random.experimental.stateless_fold_in(seed, draw)
        return tf.random.stateless_uniform(shape, key, low, high)

    batch = tf.shape(images)[0]
    size = tf.shape(images)[1:3]
    area = uniform([batch], 0.25, 1.0, 0)
    log_ratio = uniform([batch], np.log(3 / 4), np.log(4 / 3), 1)
    ratio = tf.exp(log_ratio)
    height = tf.minimum(tf.sqrt(area / ratio), 1.0)
    width = tf.minimum(tf.sqrt(area * ratio), 1.0)
    top = uniform([batch], 0.0, 1.0, 2) * (1.0 - height)
    left = uniform([batch], 0.0, 1.0, 3) * (1.0 - width)
    boxes = tf.stack([top, left, top + height, left + width], axis=1)
    images = tf.image.crop_and_resize(images, boxes, tf.range(batch), size)
    flip = uniform([batch, 1, 1, 1], 0.0, 1.0, 4) < 0.5
    images = tf.where(flip, tf.reverse(images, axis=[2]), images)
    brightness = uniform([batch, 1, 1, 1], 0.8, 1.2, 5)
    contrast = uniform([batch, 1, 1, 1], 0.8, 1.2, 6)
    saturation = uniform([batch, 1, 1, 1], 0.8, 1.2, 7)
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    images = (images - mean) * contrast + mean
    gray = tf.reduce_mean(images, axis=3, keepdims=True)
    images = (images - gray) * saturation + gray
    images = images * brightness
    return tf.clip_by_value(images, 0.0, 255.0)


def make_dataset(image_set: ImageSet, batch_size: int, training: bool = False, seed: int = 0):
    """A ``tf.data.Dataset`` of ``(float32 images in [0, 255], int32 labels)`` batches.

    With ``training`` the data are shuffled every epoch and augmented (:func:`augment_batch`,
    seeded per batch); otherwise they are served in order, unchanged. Under
    ``MultiWorkerMirroredStrategy`` each worker keeps its own part of every batch (auto-sharding
    by ``DATA``: the images are in memory, there are no files to split): the workers see the
    batches a single process would see, split between them.
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((image_set.images, image_set.labels))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)
    if training:
        dataset = dataset.shuffle(len(image_set), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=training)
    dataset = dataset.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE)
    if training:  # one stateless seed per batch, new every epoch, the same in every process
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip(dataset, seeds).map(
            lambda batch, key: (augment_batch(batch[0], key), batch[1]), num_parallel_calls=tf.data.AUTOTUNE
        )
    return dataset.prefetch(tf.data.AUTOTUNE)
