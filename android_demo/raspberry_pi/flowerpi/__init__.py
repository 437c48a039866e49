"""flowerpi: classify flowers on a Raspberry Pi with a tfcompress ``.tflite`` model.

Runs on ai-edge-litert (or tflite-runtime), NumPy and Pillow only: no TensorFlow, no
tfcompress. Models that use the tfcompress custom ops get the op library
(``libtfcompress_ops.so``, cross-built for aarch64) loaded as a delegate.

    python3 classify.py --model flowers_effnet_lite0_int8.tflite photos/
"""

__version__ = "0.1.0"
