"""Rebuild models/flowers_float.tflite and models/flowers_int8.tflite from models/flowers_float.keras.

Same as::

    tfcompress convert models/flowers_float.keras -o models/flowers_float.tflite
    tfcompress convert models/flowers_float.keras --int8 -o models/flowers_int8.tflite

(int8 calibrated on 200 flowers5 training images). Pass --force to replace existing files.
"""

import sys

from tfcompress.convert import convert

if __name__ == "__main__":
    force = "--force" in sys.argv
    for int8, name in ((False, "flowers_float"), (True, "flowers_int8")):
        path = convert("models/flowers_float.keras", f"models/{name}.tflite", int8=int8, force=force)
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
