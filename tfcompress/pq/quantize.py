"""The bottom-up product-quantization driver of "And the Bit Goes Down" (Stock et al. 2020).

For each quantizable layer, from the input towards the output:

1. capture the layer's input activations from the *partly quantized* student (the
   layers below it already quantized), as the Gram matrix ``G`` of their blocks
   (:mod:`tfcompress.pq.activations`);
2. fit codebook and codes with the activation-aware EM (:mod:`tfcompress.pq.em`);
3. swap the float layer for a :class:`~tfcompress.pq.layers.PQConv2D` /
   :class:`~tfcompress.pq.layers.PQDense`, and finetune that layer's codebook by
   distillation from the uncompressed teacher (:mod:`tfcompress.pq.finetune`).

Then all codebooks are finetuned together with the BatchNorm statistics updated. The
first conv/dense layer, BatchNorm and biases stay float. Works on functional and
Sequential models; the input model is never modified (the student is built from a private
copy).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from tfcompress.errors import TfcompressError, UnsupportedLayerError
from tfcompress.fileio import atomic_output, write_text_atomic
from tfcompress.nested import inline_submodels
from tfcompress.pq.activations import conv_input_gram, dense_input_gram
from tfcompress.pq.em import activation_aware_kmeans, capped_centroids
from tfcompress.pq.finetune import finetune_codebooks
from tfcompress.pq.layers import PQConv2D, PQDense
from tfcompress.pq.layout import check_block_size, fitting_block_size, kernel_rows, kernel_to_subvectors
from tfcompress.skipped import SkippedLayer, attach_skipped, describe_skipped, has_kernel

#: The paper's block sizes: "small" (d = kernel area for kxk convs, 4 for 1x1 and dense)
#: and "large" (twice that for convs; dense stays 4). "mobile" halves d of the 1x1 convs, where a
#: depthwise-separable network keeps nearly all its weights (4 bits a weight at k = 256): on the
#: fine-tuned EfficientNet-Lite0 of flowers5, 75.08% top-1 at 5.3x against 65.85% at 7.5x with
#: "small" (teacher 76.77%; README, "The pretrained mobile network").
BLOCK_PRESETS = {
    "small": {"conv": 1, "pointwise": 4, "dense": 4},
    "large": {"conv": 2, "pointwise": 8, "dense": 4},
    "mobile": {"conv": 1, "pointwise": 2, "dense": 4},
}


@dataclass
class LayerRecord:
    """What happened to one layer: sizes, EM fit and timings (wall seconds; CPU seconds of all threads)."""

    name: str
    kind: str
    kernel_shape: tuple[int, ...]
    block_size: int
    n_centroids: int
    n_subvectors: int
    objective: float
    em_iterations: int
    empty_splits: int
    capture_seconds: float
    em_seconds: float
    em_cpu_seconds: float
    finetune_seconds: float
    finetune_loss: list[float] = field(default_factory=list)


def is_quantizable(layer: keras.layers.Layer) -> bool:
    """A plain ``Conv2D`` (channels last, one group) or ``Dense`` layer."""
    if type(layer) is keras.layers.Conv2D:
        return layer.groups == 1 and layer.data_format == "channels_last"
    return type(layer) is keras.layers.Dense


def block_size_for(layer: keras.layers.Layer, block_sizes: str | int | Mapping[str, int]) -> int | None:
    """The ``d`` of ``layer`` under a preset (``"small"``/``"large"``), one int, or a per-name mapping.

    An integer is taken as given. A preset's ``d`` is a ceiling: when it does not divide the
    layer's ``R = C_in * kh * kw`` the largest divisor of ``R`` below it is used
    (:func:`~tfcompress.pq.layout.fitting_block_size`), and ``None`` means none fits.

    Raises:
        TfcompressError: an unknown preset, or an integer that does not divide ``R``.
    """
    if isinstance(block_sizes, Mapping):
        block_sizes = block_sizes.get(layer.name, block_sizes.get("default", "small"))
    if isinstance(block_sizes, int | np.integer):
        check_block_size(layer.kernel.shape, int(block_sizes), layer.name)
        return int(block_sizes)
    if block_sizes not in BLOCK_PRESETS:
        raise TfcompressError(
            f"unknown block size preset {block_sizes!r}; use {', '.join(BLOCK_PRESETS)} or an integer"
        )
    preset = BLOCK_PRESETS[block_sizes]
    if isinstance(layer, keras.layers.Dense):
        ceiling = preset["dense"]
    else:
        kh, kw = layer.kernel_size
        ceiling = preset["pointwise"] if kh * kw == 1 else preset["conv"] * kh * kw
    return fitting_block_size(kernel_rows(layer.kernel.shape), ceiling)


def _private_copy(model: keras.Model) -> keras.Model:
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _assemble(base: keras.Model, replaced: Mapping[str, keras.layers.Layer]) -> keras.Model:
    """A model with ``base``'s graph: the ``replaced`` layers swapped in, fresh copies of the others.

    The swapped-in PQ layers are shared with earlier students (their codebooks carry
    over); every other layer is a new copy with ``base``'s weights, so each student has its
    own graph and ``student.get_layer(name).input`` is unambiguous.
    """

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if layer.name in replaced:
            return replaced[layer.name]
        return layer.__class__.from_config(layer.get_config())

    student = keras.models.clone_model(base, clone_function=clone)
    for layer in student.layers:
        if layer.name not in replaced and layer.weights:
            layer.set_weights(base.get_layer(layer.name).get_weights())
    return student


def _as_array(calibration_data, expected: tuple) -> np.ndarray:
    import tensorflow as tf

    if isinstance(calibration_data, tf.data.Dataset):
        parts = []
        for item in calibration_data:
            x = item[0] if isinstance(item, tuple | list) else item
            parts.append(np.asarray(x))
        if not parts:
            raise TfcompressError("calibration data set is empty")
        batched = parts[0].ndim == len(expected) + 1
        data = np.concatenate(parts) if batched else np.stack(parts)
    else:
        data = np.asarray(calibration_data)
    if data.ndim != len(expected) + 1 or tuple(data.shape[1:]) != expected:
        raise TfcompressError(
            f"calibration data has shape {tuple(data.shape)}; the model expects (N, {', '.join(map(str, expected))})"
        )
    if len(data) == 0:
        raise TfcompressError("calibration data is empty")
    return data.astype(np.float32)


class ProductQuantizer:
    """Bottom-up PQ of a Keras model; :func:`quantize` is the one-call form.

    Args: see :func:`quantize`. After :meth:`run`, :attr:`records` holds a
    :class:`LayerRecord` per quantized layer and :attr:`skipped` a
    :class:`~tfcompress.skipped.SkippedLayer` per layer with a kernel left float, with the
    reason (also attached to the returned model).
    """

    def __init__(
        self,
        model: keras.Model,
        calibration_data,
        teacher: keras.Model | None = None,
        block_sizes: str | int | Mapping[str, int] = "small",
        n_centroids: int = 256,
        n_centroids_dense: int = 2048,
        layers: Sequence[str] | None = None,
        skip: Sequence[str] = (),
        quantize_first_layer: bool = False,
        activation_aware: bool = True,
        em_iterations: int = 30,
        gram_samples: int = 128,
        layer_steps: int = 100,
        global_steps: int = 400,
        global_steps_per_epoch: int | None = None,
        learning_rate: float = 1e-4,
        global_learning_rate: float | None = None,
        temperature: float = 1.0,
        batch_size: int = 32,
        augment: bool = False,
        update_batchnorm: bool = True,
        strategy=None,
        checkpoint_dir: str | os.PathLike | None = None,
        seed: int = 0,
        verbose: int = 1,
    ):
        if not isinstance(model, keras.Model):
            raise TfcompressError(f"expected a keras.Model, got {type(model).__name__}")
        if len(model.inputs) != 1:
            raise TfcompressError(f"model {model.name} has {len(model.inputs)} inputs; one input is supported")
        self.teacher = teacher if teacher is not None else model
        model = self.model = inline_submodels(model)  # a nested backbone's layers, quantized like the others
        self.images = _as_array(calibration_data, tuple(model.inputs[0].shape[1:]))
        self.block_sizes = block_sizes
        self.n_centroids = n_centroids
        self.n_centroids_dense = n_centroids_dense
        self.layers = list(layers) if layers is not None else None
        self.skip = set(skip)
        self.quantize_first_layer = quantize_first_layer
        self.activation_aware = activation_aware
        self.em_iterations = em_iterations
        self.gram_samples = gram_samples
        self.layer_steps = layer_steps
        self.global_steps = global_steps
        self.global_steps_per_epoch = global_steps_per_epoch
        self.learning_rate = learning_rate
        self.global_learning_rate = global_learning_rate or learning_rate
        self.temperature = temperature
        self.batch_size = batch_size
        self.augment = augment
        self.update_batchnorm = update_batchnorm
        self.strategy = strategy
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.seed = seed
        self.verbose = verbose
        self.records: list[LayerRecord] = []
        self.skipped: list[SkippedLayer] = []
        self.block_size_of: dict[str, int] = {}

    def select_layers(self, model: keras.Model) -> list[keras.layers.Layer]:
        """The layers to quantize, bottom-up; every other layer with a kernel goes to :attr:`skipped`.

        A layer is left float, with its reason, when it is not a plain ``Conv2D`` / ``Dense``,
        is the first layer (unless ``quantize_first_layer``) or in ``skip``, when no block
        size of its preset divides its rows, or when it has fewer than 8 subvectors. The
        chosen block sizes go to :attr:`block_size_of`.

        Raises:
            UnsupportedLayerError: a layer named in ``layers`` cannot be quantized.
            TfcompressError: a layer named in ``layers`` or ``skip`` does not exist, or an
                integer block size does not divide a selected layer.
        """
        by_name = {layer.name: layer for layer in model.layers}
        for name in [*(self.layers or []), *self.skip]:
            if name not in by_name:
                raise TfcompressError(f"no layer named {name!r} in model {model.name}")
        self.skipped, self.block_size_of = [], {}
        if self.layers is not None:
            for name in self.layers:
                if not is_quantizable(by_name[name]):
                    raise UnsupportedLayerError(
                        f"layer {name!r} ({type(by_name[name]).__name__}) cannot be product-quantized; "
                        "only Conv2D (channels last, groups=1) and Dense are supported"
                    )
            chosen = [layer for layer in model.layers if layer.name in self.layers]
        else:
            candidates = [layer for layer in model.layers if is_quantizable(layer)]
            first = candidates[0].name if candidates and not self.quantize_first_layer else None
            chosen = []
            for layer in model.layers:
                if not has_kernel(layer):
                    continue
                if not is_quantizable(layer):
                    why = "only Conv2D (groups=1, channels last) and Dense are product-quantized"
                    self.skipped.append(SkippedLayer.of(layer, why))
                elif layer.name == first:
                    self.skipped.append(SkippedLayer.of(layer, "the first layer stays float"))
                elif layer.name in self.skip:
                    self.skipped.append(SkippedLayer.of(layer, "skipped on request"))
                else:
                    chosen.append(layer)
        fitted = []
        for layer in chosen:
            shape = tuple(layer.kernel.shape)
            size = block_size_for(layer, self.block_sizes)
            if size is None:
                why = f"no block size from 2 to the preset's divides C_in*kh*kw = {kernel_rows(shape)}"
                self.skipped.append(SkippedLayer.of(layer, why))
            elif kernel_rows(shape) // size * shape[-1] < 8:
                why = f"only {kernel_rows(shape) // size * shape[-1]} subvectors of {size}, too few to quantize"
                self.skipped.append(SkippedLayer.of(layer, why))
            else:
                self.block_size_of[layer.name] = size
                fitted.append(layer)
        if self.skipped:
            warnings.warn(describe_skipped(self.skipped, "left float: "), stacklevel=3)
        return fitted

    def _gram(self, student: keras.Model, layer: keras.layers.Layer, block_size: int) -> np.ndarray | None:
        if not self.activation_aware:
            return None
        capture = keras.Model(student.inputs, student.get_layer(layer.name).input)
        images = self.images[: self.gram_samples]
        gram = np.zeros((block_size, block_size))
        for start in range(0, len(images), self.batch_size):
            inputs = capture([images[start : start + self.batch_size]], training=False)
            if isinstance(layer, keras.layers.Conv2D):
                gram += conv_input_gram(inputs, layer, block_size)
            else:
                gram += dense_input_gram(inputs, block_size)
        return gram / len(images)

    def _pq_layer(self, layer: keras.layers.Layer, block_size: int, n_centroids: int) -> keras.layers.Layer:
        common = {
            "block_size": block_size,
            "n_centroids": n_centroids,
            "use_bias": layer.use_bias,
            "activation": layer.activation,
            "name": layer.name,
        }
        if isinstance(layer, keras.layers.Conv2D):
            pq = PQConv2D(
                layer.filters,
                layer.kernel_size,
                strides=layer.strides,
                padding=layer.padding,
                dilation_rate=layer.dilation_rate,
                **common,
            )
        else:
            pq = PQDense(layer.units, **common)
        pq.build(layer.input.shape)
        return pq

    def quantize_layer(self, student: keras.Model, layer: keras.layers.Layer) -> tuple[keras.layers.Layer, LayerRecord]:
        """EM-fit one float layer (chosen by :meth:`select_layers`) against inputs captured from ``student``."""
        block_size = self.block_size_of[layer.name]
        kernel = np.asarray(layer.kernel.numpy())
        start = time.perf_counter()
        gram = self._gram(student, layer, block_size)
        captured = time.perf_counter()
        cpu_start = time.process_time()
        subvectors = kernel_to_subvectors(kernel, block_size)
        flat = subvectors.reshape(-1, block_size)
        is_dense = isinstance(layer, keras.layers.Dense)
        wanted = self.n_centroids_dense if is_dense else self.n_centroids
        k = capped_centroids(wanted, len(flat), f"layer {layer.name!r}")
        fit = activation_aware_kmeans(flat, k, gram, n_iter=self.em_iterations, seed=self.seed)
        fitted = time.perf_counter()
        em_cpu = time.process_time() - cpu_start
        pq = self._pq_layer(layer, block_size, k)
        pq.codebook.assign(fit.codebook)
        pq.codes.assign(fit.codes.reshape(subvectors.shape[:2]))
        if layer.use_bias:
            pq.bias.assign(layer.bias.numpy())
        record = LayerRecord(
            name=layer.name,
            kind="dense" if is_dense else "conv",
            kernel_shape=tuple(kernel.shape),
            block_size=block_size,
            n_centroids=k,
            n_subvectors=len(flat),
            objective=fit.objective,
            em_iterations=fit.iterations,
            empty_splits=fit.empty_splits,
            capture_seconds=captured - start,
            em_seconds=fitted - captured,
            em_cpu_seconds=em_cpu,
            finetune_seconds=0.0,
        )
        return pq, record

    def _resume(self) -> dict[str, keras.layers.Layer]:
        """PQ layers (and records) saved by an interrupted run in ``checkpoint_dir``."""
        if self.checkpoint_dir is None or not (self.checkpoint_dir / "student.keras").is_file():
            return {}
        saved = keras.models.load_model(self.checkpoint_dir / "student.keras", compile=False)
        self.records = [
            LayerRecord(**{**r, "kernel_shape": tuple(r["kernel_shape"])})
            for r in json.loads((self.checkpoint_dir / "records.json").read_text())
        ]
        return {layer.name: layer for layer in saved.layers if isinstance(layer, PQConv2D | PQDense)}

    def _checkpoint(self, student: keras.Model) -> None:
        if self.checkpoint_dir is None:
            return
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        with atomic_output(self.checkpoint_dir / "student.keras", force=True) as tmp:
            student.save(tmp)
        records = json.dumps([asdict(r) for r in self.records], indent=1)
        write_text_atomic(self.checkpoint_dir / "records.json", records, force=True)

    def run(self) -> keras.Model:
        """Quantize; return the new model (the input model is left as it was).

        With ``checkpoint_dir``, the student is saved after each layer and a rerun resumes
        after the last saved layer. The codebooks are finally rounded to float16, the
        precision the ``.tflite`` stores, so the Keras model computes what the file does.
        """
        import tensorflow as tf

        strategy = self.strategy or tf.distribute.get_strategy()
        with strategy.scope():
            base = _private_copy(self.model)
            teacher = _private_copy(self.teacher)
            targets = self.select_layers(base)
            if not targets:
                left = describe_skipped(self.skipped, "; left float: ")
                raise TfcompressError(f"model {self.model.name} has no layer to product-quantize{left}")
            done = self._resume()
            replaced: dict[str, keras.layers.Layer] = {}
            student, current = base, True  # current: the student holds every layer of `replaced`
            progress = keras.utils.Progbar(len(targets), verbose=self.verbose, unit_name="layer")
            for index, layer in enumerate(targets, 1):
                if layer.name in done:
                    replaced[layer.name], current = done[layer.name], False
                    progress.update(index)
                    continue
                if not current and self.activation_aware:  # inputs come from the partly quantized student
                    student, current = _assemble(base, replaced), True
                pq, record = self.quantize_layer(student, layer)
                replaced[layer.name], current = pq, False
                self.records.append(record)
                if self.layer_steps > 0 or self.checkpoint_dir is not None:
                    student, current = _assemble(base, replaced), True
                    start = time.perf_counter()
                    record.finetune_loss = finetune_codebooks(
                        student,
                        teacher,
                        self.images,
                        [pq.codebook],
                        self.layer_steps,
                        learning_rate=self.learning_rate,
                        temperature=self.temperature,
                        batch_size=self.batch_size,
                        augment=self.augment,
                        seed=self.seed + index,
                    )
                    record.finetune_seconds = time.perf_counter() - start
                    self._checkpoint(student)
                progress.update(index, values=[("em_s", record.em_seconds)])
            student = _assemble(base, replaced)
            finetune_codebooks(
                student,
                teacher,
                self.images,
                [pq.codebook for pq in replaced.values()],
                self.global_steps,
                learning_rate=self.global_learning_rate,
                temperature=self.temperature,
                batch_size=self.batch_size,
                update_batchnorm=self.update_batchnorm,
                augment=self.augment,
                seed=self.seed,
                verbose=self.verbose and "auto",
                steps_per_epoch=self.global_steps_per_epoch,
            )
            final = keras.models.clone_model(student)
            final.set_weights(student.get_weights())
            for layer in final.layers:
                if isinstance(layer, PQConv2D | PQDense):
                    layer.codebook.assign(layer.codebook.numpy().astype(np.float16).astype(np.float32))
            return attach_skipped(final, self.skipped)


def quantize(
    model: keras.Model,
    calibration_data,
    teacher: keras.Model | None = None,
    block_sizes: str | int | Mapping[str, int] = "small",
    n_centroids: int = 256,
    **options,
) -> keras.Model:
    """Product-quantize ``model``'s conv and dense kernels; return a NEW model.

    Stock et al. 2020, "And the Bit Goes Down": bottom-up activation-aware EM per layer,
    per-layer codebook finetuning by distillation, then a global finetune of all codebooks
    with BatchNorm statistics updated.

    Args:
        model: a functional or Sequential Keras model with one input. Not modified.
        calibration_data: inputs (numpy ``(N, ...)`` or a ``tf.data.Dataset`` of inputs
            or ``(inputs, labels)``); no labels are needed.
        teacher: the model to distil from; the input model by default.
        block_sizes: ``"small"`` (3x3: d=9, 1x1 and dense: d=4), ``"mobile"`` (1x1: d=2), ``"large"`` (3x3: 18,
            1x1: 8, dense: 4), one integer for every layer, or ``{layer name: d,
            "default": preset}``. A preset's d is lowered to the largest divisor of a
            layer's rows that fits (a 1x1 conv with 6 input channels gets d=3); an integer
            must divide every layer it applies to.
        n_centroids: ``k`` for convs (capped at ``n_subvectors / 4`` with a warning).
        **options: see :class:`ProductQuantizer`: ``n_centroids_dense`` (2048),
            ``layers`` / ``skip`` (names), ``quantize_first_layer`` (False),
            ``activation_aware`` (True; False is plain k-means), ``em_iterations`` (30),
            ``gram_samples`` (128 inputs for ``G``), ``layer_steps`` (100),
            ``global_steps`` (400), ``global_steps_per_epoch`` (the progress bar's epoch; 200),
            ``learning_rate`` (1e-4, Adam), ``temperature`` (1),
            ``batch_size`` (32), ``augment``, ``update_batchnorm`` (True: BatchNorm in
            training mode during the global finetune; False for a model whose statistics
            were not learned on the data, :mod:`tfcompress.batchnorm`), ``strategy``, ``checkpoint_dir`` (resume
            after an interruption), ``seed``, ``verbose``.

    Layers that cannot be quantized (depthwise convs, a layer no block size fits, too few
    subvectors) are left float: ``skipped_layers(result)`` (:mod:`tfcompress.skipped`) lists
    them with the reason, and a warning names them.

    Raises:
        TfcompressError: calibration data of the wrong shape, an integer block size that
            does not divide a layer, an unknown layer name.
        UnsupportedLayerError: a layer asked for by name cannot be quantized.

    Example:
        >>> student = quantize(model, images, block_sizes="small", n_centroids=256)
    """
    return ProductQuantizer(model, calibration_data, teacher, block_sizes, n_centroids, **options).run()
