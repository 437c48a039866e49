"""Image files and folders in, RGB ``uint8`` arrays of the model's input size out.

Decoding is the one tfcompress trains and evaluates with (``tfcompress.data.load_image``):
Pillow opens the file, converts it to RGB, and resizes it with bilinear filtering to the
model's input size when it differs. No crop, no normalisation: the models take raw pixels.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from flowerpi.errors import AppError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})
UNREADABLE = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)


def to_model_input(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """An RGB ``uint8`` array of ``size`` (width, height), resized bilinearly when needed."""
    image = image.convert("RGB")
    if image.size != size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def load_image(path: str | os.PathLike, size: tuple[int, int]) -> np.ndarray:
    """Decode one image file for the model.

    Raises:
        OSError, UnidentifiedImageError, ValueError: the file is not a readable image.
    """
    with Image.open(path) as image:
        return to_model_input(image, size)


def _folder_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _listed_images(list_file: Path) -> list[Path]:
    entries = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
    return [list_file.parent / entry for entry in entries]


def collect_images(paths: Iterable[str | os.PathLike], list_file: str | os.PathLike | None = None) -> list[Path]:
    """The image files to classify, in order.

    Args:
        paths: image files, and folders (searched recursively for image files, sorted).
        list_file: a text file of image paths relative to its folder, one a line (the
            ``test.txt`` of a tfcompress data folder).

    Raises:
        AppError: a path or the list file does not exist, a folder holds no image, or
            nothing was given.
    """
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            images = _folder_images(path)
            if not images:
                raise AppError(f"folder {path} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            found.extend(images)
        elif path.is_file():
            found.append(path)
        else:
            raise AppError(f"image or folder {path} does not exist")
    if list_file is not None:
        list_path = Path(list_file)
        if not list_path.is_file():
            raise AppError(f"image list {list_path} does not exist")
        found.extend(_listed_images(list_path))
    if not found:
        raise AppError("no images given: pass image files or folders, --list FILE, or --camera")
    return found


def read_images(files: Iterable[Path], size: tuple[int, int], on_skip) -> Iterator[tuple[str, np.ndarray]]:
    """``(name, image)`` for each readable file; ``on_skip(path, error)`` for each unreadable one."""
    for path in files:
        try:
            image = load_image(path, size)
        except UNREADABLE as error:
            on_skip(path, error)
            continue
        yield str(path), image
