"""Subcommands of the ``tfcompress`` command line, grouped by the package they call."""
