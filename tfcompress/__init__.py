"""tfcompress: compress Keras 3 models and ship them as TFLite files."""

import os

__version__ = "0.1.0"

# TensorFlow's own CPU kernels reject a depthwise convolution with unequal strides (the
# kh x 1 / 1 x kw factors of a strided conv under CP factorization); its oneDNN kernels run
# it, but TensorFlow turns oneDNN on by default only on CPUs with AVX512-VNNI/BF16 or AMX.
# Takes effect when tfcompress is imported before TensorFlow (the CLI always does); a user
# who set the variable keeps their choice.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from tfcompress.runtime import ops_library_path  # light: imports no TensorFlow

__all__ = ["__version__", "ops_library_path"]
