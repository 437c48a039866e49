#!/usr/bin/env python3
"""Classify flowers on a Raspberry Pi: ``python3 classify.py --model MODEL.tflite IMAGES_OR_FOLDERS``.

A thin launcher for :mod:`flowerpi.app` that works from any directory (no install needed).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from flowerpi.app import main

if __name__ == "__main__":
    sys.exit(main())
