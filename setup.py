"""Build hook: compiles the native op library from ``converters/`` with CMake.

``pip install .`` and ``pip install -e .`` both run it; the library lands at
``tfcompress/_native/libtfcompress_ops.so`` (inside the wheel, or in the source tree for an
editable install), where :func:`tfcompress.runtime.ops_library_path` finds it. The package
metadata stays in ``setup.cfg``.

Needs a C++17 compiler (``apt-get install g++``) and CMake (``pip`` installs it as a build
requirement). The TFLite headers come from ``$TFLITE_INCLUDE_DIR`` or are downloaded from
Debian by ``converters/fetch_tflite_headers.sh``; see ``converters/README.md``.
``TFCOMPRESS_NATIVE_BUILD_TYPE`` (default ``Release``) and ``CMAKE_ARGS`` pass through.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
NATIVE_NAME = "tfcompress._native.libtfcompress_ops"
LIBRARY_FILE = "libtfcompress_ops.so"


class CMakeExtension(Extension):
    """A shared library built by CMake from ``source_dir`` (no Python sources of its own)."""

    def __init__(self, name: str, source_dir: Path):
        super().__init__(name, sources=[])
        self.source_dir = source_dir


def _cmake() -> str:
    found = shutil.which("cmake")
    if found:
        return found
    try:
        import cmake  # the PyPI package, a build requirement in pyproject.toml

        return str(Path(cmake.CMAKE_BIN_DIR) / "cmake")
    except ImportError as error:
        raise SystemExit(
            "tfcompress native build: CMake not found; pip install cmake or apt-get install cmake"
        ) from error


class BuildNativeOps(build_ext):
    """``build_ext`` that runs CMake for :class:`CMakeExtension` and keeps the plain ``.so`` name."""

    def get_ext_filename(self, fullname: str) -> str:
        # Called with the dotted name and (from get_ext_fullpath) with its last part alone.
        if fullname == NATIVE_NAME:
            return os.path.join(*fullname.split(".")[:-1], LIBRARY_FILE)
        if fullname == NATIVE_NAME.rsplit(".", 1)[1]:
            return LIBRARY_FILE
        return super().get_ext_filename(fullname)

    def copy_extensions_to_source(self) -> None:
        # Editable installs copy the library into the source tree; its folder is not tracked.
        (ROOT / "tfcompress" / "_native").mkdir(parents=True, exist_ok=True)
        super().copy_extensions_to_source()

    def build_extension(self, ext: Extension) -> None:
        if not isinstance(ext, CMakeExtension):
            super().build_extension(ext)
            return
        if shutil.which(os.environ.get("CXX", "c++")) is None and shutil.which("g++") is None:
            raise SystemExit("tfcompress native build: no C++ compiler found; apt-get install g++ (Debian/Ubuntu)")
        build_dir = Path(self.build_temp).resolve() / "native"
        cmake = _cmake()
        configure = [
            cmake,
            "-S",
            str(ext.source_dir),
            "-B",
            str(build_dir),
            f"-DCMAKE_BUILD_TYPE={os.environ.get('TFCOMPRESS_NATIVE_BUILD_TYPE', 'Release')}",
            f"-DTFCOMPRESS_HEADERS_DIR={ROOT / 'build' / 'tflite-headers'}",
            *shlex.split(os.environ.get("CMAKE_ARGS", "")),
        ]
        try:
            subprocess.run(configure, check=True)
            subprocess.run([cmake, "--build", str(build_dir), "--parallel", str(os.cpu_count() or 1)], check=True)
        except subprocess.CalledProcessError as error:
            raise SystemExit(
                f"tfcompress native build failed ({error}); the message above says why. "
                "See converters/README.md (TFLite headers: converters/fetch_tflite_headers.sh or TFLITE_INCLUDE_DIR)."
            ) from error
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(build_dir / LIBRARY_FILE, target)


setup(
    ext_modules=[CMakeExtension(NATIVE_NAME, ROOT / "converters")],
    cmdclass={"build_ext": BuildNativeOps},
)
