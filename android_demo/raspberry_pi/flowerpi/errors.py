"""The one error type the app prints as a single line (exit status 2) instead of a traceback."""


class AppError(Exception):
    """A user's mistake or a missing piece: a missing model, a corrupt model, no op library, ..."""
