"""The compression methods that register Keras layers, zoo models and lowering rules.

Importing a method's package registers its layers with Keras (so a ``.keras`` file that holds
them loads), its zoo models with :mod:`tfcompress.models`, and its lowering rules with
:mod:`tfcompress.convert`. :func:`load_methods` imports them all; loading, building and
converting call it, so a user never has to import a method just to read its files.
"""

from __future__ import annotations

import importlib

METHOD_PACKAGES = ("tfcompress.binary", "tfcompress.pq", "tfcompress.pruning")


def load_methods() -> None:
    """Import every package of :data:`METHOD_PACKAGES` (cheap after the first call)."""
    for package in METHOD_PACKAGES:
        importlib.import_module(package)
