"""Safe output files: refuse to overwrite without ``force``, write atomically.

Every file the kit writes goes through :func:`atomic_output`: the content is written to
a temporary file in the destination folder and renamed over the target only once it is
complete, so an interrupted run never leaves a half-written model behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tfcompress.errors import TfcompressError


def check_output_path(path: str | os.PathLike, force: bool = False) -> Path:
    """Return ``path`` as a :class:`Path` after checking it may be written.

    Raises:
        TfcompressError: the file exists and ``force`` is false, or it is a folder.
    """
    target = Path(path)
    if target.is_dir():
        raise TfcompressError(f"output path {target} is a folder, expected a file name")
    if target.exists() and not force:
        raise TfcompressError(f"{target} already exists; pass --force (force=True) to overwrite it")
    return target


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary file keeps the target's suffix (Keras checks ``.keras``). On an
    exception the temporary file is removed and the target is left untouched.
    """
    target = check_output_path(path, force)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes, force: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; see :func:`atomic_output`."""
    with atomic_output(path, force) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str, force: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_output`."""
    return write_bytes_atomic(path, text.encode("utf-8"), force)


def output_paths(directory: str | os.PathLike, name: str, suffixes: tuple[str, ...], force: bool = False) -> dict:
    """``{suffix: directory/name+suffix}`` after checking each may be written (see :func:`check_output_path`)."""
    return {suffix: check_output_path(Path(directory) / f"{name}{suffix}", force) for suffix in suffixes}


def cached_model(path: str | os.PathLike, make):
    """The Keras model an earlier run saved at ``path``; else ``make()``, saved there atomically.

    Lets a long, multi-stage script resume at the first stage whose result is missing.
    """
    import keras

    from tfcompress.plugins import load_methods

    path = Path(path)
    if path.is_file():
        load_methods()
        return keras.models.load_model(path, compile=False)
    model = make()
    with atomic_output(path, force=True) as tmp:
        model.save(tmp)
    return model
