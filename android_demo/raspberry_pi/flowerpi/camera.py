"""Frames from the Raspberry Pi camera through picamera2 (Debian package ``python3-picamera2``)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PIL import Image

from flowerpi.errors import AppError
from flowerpi.images import to_model_input

CAPTURE_SIZE = (640, 480)


def camera_frames(size: tuple[int, int], frames: int) -> Iterator[tuple[str, np.ndarray]]:
    """``("frame N", image)`` for ``frames`` camera frames (0: until interrupted).

    The whole sensor view is captured at 640x480 and resized bilinearly to the model's
    input, like a file. picamera2's ``"RGB888"`` format stores pixels as B, G, R (libcamera's
    naming), so the channels are reversed to RGB.

    Raises:
        AppError: picamera2 is not installed, or no camera is attached.
    """
    try:
        from picamera2 import Picamera2
    except ImportError:
        raise AppError(
            "--camera needs picamera2: sudo apt install python3-picamera2 "
            "(and create the venv with --system-site-packages)"
        ) from None
    try:
        camera = Picamera2()
    except (IndexError, RuntimeError) as error:
        raise AppError(f"no camera found: {error}") from None
    camera.configure(camera.create_preview_configuration(main={"size": CAPTURE_SIZE, "format": "RGB888"}))
    camera.start()
    try:
        index = 0
        while frames == 0 or index < frames:
            bgr = camera.capture_array("main")
            rgb = np.ascontiguousarray(bgr[..., 2::-1])
            yield f"frame {index}", to_model_input(Image.fromarray(rgb), size)
            index += 1
    finally:
        camera.stop()
        camera.close()
