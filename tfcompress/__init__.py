"""tfcompress: compress Keras 3 models and ship them as TFLite files."""

__version__ = "0.1.0"
