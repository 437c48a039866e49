"""tfcompress: compress Keras 3 models and ship them as TFLite files."""

__version__ = "0.1.0"

from tfcompress.runtime import ops_library_path  # light: imports no TensorFlow

__all__ = ["__version__", "ops_library_path"]
