"""Errors that describe a user's mistake.

The command line prints a :class:`TfcompressError` as one line and exits non-zero; any
other exception is a bug and keeps its traceback.
"""


class TfcompressError(Exception):
    """A problem with the user's input (a path, an option, a file), not a bug."""


class DataError(TfcompressError):
    """A data folder that is missing, empty, or laid out wrongly."""


class ModelFileError(TfcompressError):
    """A model file that is missing, corrupt, or of an unknown kind."""


class UnsupportedLayerError(TfcompressError):
    """A layer that a transform or the converter cannot handle."""
