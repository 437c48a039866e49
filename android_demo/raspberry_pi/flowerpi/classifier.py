"""A ``.tflite`` image classifier on ai-edge-litert or tflite-runtime, with the tfcompress op library.

Input: one RGB ``uint8`` image of the model's input size. It is fed as float32 raw pixels
(0..255: the tfcompress models rescale inside the graph), or quantized with the input
tensor's parameters when the model takes ``uint8``/``int8``::

    q = clip(round(x / scale + zero_point), qmin, qmax)

and a quantized output is dequantized with ``(q - zero_point) * scale``.

When the model uses custom ops whose names start with ``Tfc``, the op library is loaded
as an external delegate (``load_delegate``) that claims those nodes; XNNPACK keeps every
builtin op. The library is looked for at ``--ops-library``, else ``$TFCOMPRESS_OPS_LIBRARY``,
else ``lib/libtfcompress_ops.so`` beside the app, else the repository's
``tfcompress/_native/libtfcompress_ops.so``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from flowerpi.delegation import delegated_nodes
from flowerpi.errors import AppError
from flowerpi.tflite_file import custom_op_names

RUNTIMES = ("ai_edge_litert", "tflite_runtime")
#: The oldest release of each runtime the app supports: the models the kit writes use no builtin op
#: version newer than tflite-runtime 2.14 registers (``tfcompress.convert.op_versions``), and
#: ai-edge-litert 2.3 is the first release the app was checked on.
MINIMUM_VERSIONS = {"ai_edge_litert": (2, 3), "tflite_runtime": (2, 14)}
OPS_LIBRARY_NAME = "libtfcompress_ops.so"
OPS_LIBRARY_ENV_VAR = "TFCOMPRESS_OPS_LIBRARY"
CUSTOM_OP_PREFIX = "Tfc"
_APP_DIR = Path(__file__).resolve().parent.parent


def runtime_module(name: str | None = None):
    """The ``interpreter`` module of the first installed runtime (or of ``name``).

    Raises:
        AppError: no runtime (or not the one asked for) is installed.
    """
    for candidate in [name] if name else RUNTIMES:
        try:
            if candidate == "ai_edge_litert":
                from ai_edge_litert import interpreter
            elif candidate == "tflite_runtime":
                from tflite_runtime import interpreter
            else:
                raise AppError(f"unknown runtime {candidate!r}; use one of {', '.join(RUNTIMES)}")
        except ImportError:
            continue
        check_version(candidate, _package_version(candidate))
        return interpreter
    wanted = name or " or ".join(RUNTIMES)
    raise AppError(f"no TFLite runtime: {wanted} is not installed (pip install ai-edge-litert)")


def _package_version(name: str) -> str:
    from importlib import import_module

    return str(getattr(import_module(name), "__version__", "0"))


def check_version(runtime: str, version: str) -> None:
    """Refuse a runtime older than :data:`MINIMUM_VERSIONS` (it may lack op versions the models use).

    Raises:
        AppError: naming the runtime, its version and the oldest one supported.
    """
    numbers = tuple(int(part) for part in [*version.split("."), "0", "0"][:2] if part.isdigit())
    minimum = MINIMUM_VERSIONS[runtime]
    if len(numbers) == 2 and numbers < minimum:
        package = runtime.replace("_", "-")
        wanted = ".".join(map(str, minimum))
        raise AppError(
            f"{package} {version} is too old: the app needs {package} >= {wanted} (pip install -U {package})"
        )


def find_ops_library(explicit: str | None = None) -> Path:
    """Where the op library is, or why it is not there.

    Raises:
        AppError: the path given (argument or environment variable) is not a file, or no
            default location holds the library.
    """
    given = explicit or os.environ.get(OPS_LIBRARY_ENV_VAR)
    if given:
        path = Path(given)
        if not path.is_file():
            how = "--ops-library" if explicit else f"${OPS_LIBRARY_ENV_VAR}"
            raise AppError(f"op library {path} (from {how}) does not exist")
        return path
    candidates = [
        _APP_DIR / "lib" / OPS_LIBRARY_NAME,
        _APP_DIR.parent.parent / "tfcompress" / "_native" / OPS_LIBRARY_NAME,
    ]
    for path in candidates:
        if path.is_file():
            return path
    raise AppError(f"op library {OPS_LIBRARY_NAME} not found in {', '.join(str(c.parent) for c in candidates)}")


class Classifier:
    """Batch-1 classification with a ``.tflite`` model.

    Args:
        model_path: the ``.tflite`` file.
        threads: threads for the builtin ops (XNNPACK) and for the custom-op kernels.
        runtime: ``"ai_edge_litert"`` or ``"tflite_runtime"``; by default the first installed.
        ops_library: path of ``libtfcompress_ops.so`` (see :func:`find_ops_library`).
        xnnpack: run the builtin ops with XNNPACK (the default delegate); ``False``: with
            TFLite's own kernels (slower; to tell a kernel problem from a model problem).

    Raises:
        AppError: a missing or corrupt model, no runtime, or a model that needs the op
            library when it cannot be found or loaded.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        threads: int = 1,
        runtime: str | None = None,
        ops_library: str | os.PathLike | None = None,
        xnnpack: bool = True,
    ):
        path = Path(model_path)
        if not path.is_file():
            raise AppError(f"model file {path} does not exist")
        content = path.read_bytes()
        ours = sorted({op for op in custom_op_names(content, str(path)) if op.startswith(CUSTOM_OP_PREFIX)})
        module = runtime_module(runtime)
        self.runtime = module.__name__.split(".")[0]
        self.custom_ops = ours
        self.ops_library = None
        delegates = []
        if ours:
            try:
                self.ops_library = find_ops_library(str(ops_library) if ops_library else None)
            except AppError as error:
                raise AppError(f"{path.name} uses the tfcompress custom ops {', '.join(ours)}, but {error}") from None
            try:
                delegates.append(module.load_delegate(str(self.ops_library), {"num_threads": str(threads)}))
            except (ValueError, OSError) as error:
                raise AppError(f"op library {self.ops_library} could not be loaded: {error}") from None
        resolver = module.OpResolverType.AUTO if xnnpack else module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self.interpreter = module.Interpreter(
                model_content=content,
                num_threads=threads,
                experimental_delegates=delegates or None,
                experimental_op_resolver_type=resolver,
            )
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            message = " ".join(str(error).split())
            raise AppError(f"{path} could not be loaded: {message}") from None
        #: (nodes the delegates took, nodes of the model): XNNPACK's share of the builtin ops
        self.delegated = delegated_nodes(self.interpreter)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        shape = self.input["shape"]
        if len(shape) != 4 or shape[3] != 3:
            raise AppError(f"{path}: expected an image input [1, H, W, 3], got {list(shape)}")
        self.image_size = (int(shape[2]), int(shape[1]))  # (width, height), Pillow's order

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """One ``uint8`` image (H, W, 3) as the model's input tensor (1, H, W, 3)."""
        batch = image[None].astype(np.float32)
        dtype = self.input["dtype"]
        if dtype == np.float32:
            return batch
        scale, zero_point = self.input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(batch / scale + zero_point), info.min, info.max).astype(dtype)

    def scores(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """Class scores of one image and the time of the interpreter call in milliseconds.

        The model's outputs are taken as logits and turned into probabilities with a
        softmax, unless they already are probabilities (non-negative, summing to 1).
        """
        prepared = self.prepare(image)
        start = time.perf_counter()
        self.interpreter.set_tensor(self.input["index"], prepared)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"])[0]
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        out = out.astype(np.float64)
        if self.output["dtype"] != np.float32:
            scale, zero_point = self.output["quantization"]
            out = (out - zero_point) * scale
        if out.min() >= 0 and abs(out.sum() - 1.0) < 1e-3:
            return out, elapsed_ms
        shifted = np.exp(out - out.max())
        return shifted / shifted.sum(), elapsed_ms
