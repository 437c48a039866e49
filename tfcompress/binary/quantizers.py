"""Sign quantizers with straight-through gradients, and the latent-weight clip constraint.

Every quantizer's forward pass is ``sign(x)`` with ``sign(0) = +1`` (so the output is
always exactly ``-1`` or ``+1``, as the XOR+popcount kernels assume); they differ only in
the gradient they pass back to the latent float values:

==========================  =====================================================  ===========================
alias                       gradient ``d out / d x``                               paper
==========================  =====================================================  ===========================
``ste_sign``                ``1 if |x| <= clip_value else 0``                      Hubara/Courbariaux et al. 2016
``approx_sign``             ``2 - 2|x| if |x| <= 1 else 0``                        Liu et al. 2018 (Bi-Real Net)
``swish_sign``              ``b (2 - b x tanh(b x / 2)) / (1 + cosh(b x))``        Darabi et al. 2018 (BNN+)
``magnitude_aware_sign``    forward ``alpha * sign(W)``, ``alpha`` = mean |W| per  Rastegari et al. 2016
                            output channel; gradient ``alpha * ste``               (XNOR-Net)
==========================  =====================================================  ===========================

Each quantizer is a tiny pure function (``ste_sign(x, clip_value=1.0)``, ...) plus a thin
:class:`Quantizer` subclass registered under its alias, so layers accept either a string
or an object, and both save into ``.keras`` files::

    >>> from tfcompress.binary import quantizers
    >>> quantizers.get("ste_sign").name
    'ste_sign'
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcompress.errors import TfcompressError


def _sign(x: tf.Tensor) -> tf.Tensor:
    """``sign(x)`` with ``sign(0) = +1``: ``+1`` where ``x >= 0``, else ``-1``."""
    return tf.where(x >= 0, tf.ones_like(x), -tf.ones_like(x))


def ste_sign(x, clip_value: float = 1.0) -> tf.Tensor:
    """Sign with the straight-through estimator (Hubara, Courbariaux et al. 2016, "Binarized
    Neural Networks").

    Forward ``q(x) = sign(x)`` (``+1`` at 0); backward ``dq/dx = 1{|x| <= clip_value}``
    (the "hard tanh" STE). ``clip_value=0`` is not allowed; use a large value for an
    ungated STE.
    """

    @tf.custom_gradient
    def _ste_sign(x):
        def grad(dy):
            return dy * tf.cast(tf.abs(x) <= clip_value, dy.dtype)

        return _sign(x), grad

    return _ste_sign(tf.convert_to_tensor(x))


def approx_sign(x) -> tf.Tensor:
    """Sign with Bi-Real Net's piecewise-polynomial gradient (Liu et al. 2018, "Bi-Real Net").

    Forward ``q(x) = sign(x)``; backward is the derivative of the piecewise quadratic
    ``F(x) = -1 (x < -1), 2x + x^2 (-1 <= x < 0), 2x - x^2 (0 <= x < 1), 1 (x >= 1)``:
    ``dq/dx = 2 - 2|x|`` for ``|x| <= 1``, else 0.
    """

    @tf.custom_gradient
    def _approx_sign(x):
        def grad(dy):
            abs_x = tf.abs(x)
            return dy * tf.where(abs_x <= 1.0, 2.0 - 2.0 * abs_x, tf.zeros_like(x))

        return _sign(x), grad

    return _approx_sign(tf.convert_to_tensor(x))


def swish_sign(x, beta: float = 5.0) -> tf.Tensor:
    """Sign with the SignSwish gradient (Darabi et al. 2018, "BNN+: Improved Binary Network Training").

    Forward ``q(x) = sign(x)``; backward is the derivative of
    ``SS_b(x) = 2 sigmoid(b x) (1 + b x (1 - sigmoid(b x))) - 1``:
    ``dq/dx = b (2 - b x tanh(b x / 2)) / (1 + cosh(b x))``; ``beta`` (b) sets the width.
    """

    @tf.custom_gradient
    def _swish_sign(x):
        def grad(dy):
            bx = beta * x
            return dy * beta * (2.0 - bx * tf.tanh(bx / 2.0)) / (1.0 + tf.cosh(bx))

        return _sign(x), grad

    return _swish_sign(tf.convert_to_tensor(x))


def magnitude_aware_sign(x, clip_value: float = 1.0) -> tf.Tensor:
    """XNOR-Net's scaled sign for kernels (Rastegari et al. 2016, "XNOR-Net").

    Forward ``q(W) = alpha * sign(W)`` with ``alpha_c = mean(|W[..., c]|)`` over every axis
    but the last (one scale per output channel, the L2-optimal scale for a binary ``W``).
    Backward: ``alpha`` is treated as a constant and the sign uses the STE of
    :func:`ste_sign`, so ``dq/dW = alpha * 1{|W| <= clip_value}``.
    """
    x = tf.convert_to_tensor(x)
    alpha = tf.stop_gradient(tf.reduce_mean(tf.abs(x), axis=list(range(len(x.shape) - 1))))
    return alpha * ste_sign(x, clip_value=clip_value)


@keras.saving.register_keras_serializable(package="tfcompress")
class Quantizer:
    """Base of the quantizer objects: a callable with a ``name`` (its alias) and a config."""

    name: str = ""

    def __call__(self, x) -> tf.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> Quantizer:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not value > 0:
        raise TfcompressError(f"{name} must be positive, got {value}")
    return value


@keras.saving.register_keras_serializable(package="tfcompress")
class SteSign(Quantizer):
    """``ste_sign``: sign with a straight-through gradient gated at ``|x| <= clip_value``."""

    name = "ste_sign"

    def __init__(self, clip_value: float = 1.0):
        self.clip_value = _positive("clip_value", clip_value)

    def __call__(self, x) -> tf.Tensor:
        return ste_sign(x, clip_value=self.clip_value)

    def get_config(self) -> dict:
        return {"clip_value": self.clip_value}


@keras.saving.register_keras_serializable(package="tfcompress")
class ApproxSign(Quantizer):
    """``approx_sign``: sign with Bi-Real Net's ``2 - 2|x|`` gradient."""

    name = "approx_sign"

    def __call__(self, x) -> tf.Tensor:
        return approx_sign(x)


@keras.saving.register_keras_serializable(package="tfcompress")
class SwishSign(Quantizer):
    """``swish_sign``: sign with BNN+'s SignSwish gradient of width ``beta``."""

    name = "swish_sign"

    def __init__(self, beta: float = 5.0):
        self.beta = _positive("beta", beta)

    def __call__(self, x) -> tf.Tensor:
        return swish_sign(x, beta=self.beta)

    def get_config(self) -> dict:
        return {"beta": self.beta}


@keras.saving.register_keras_serializable(package="tfcompress")
class MagnitudeAwareSign(Quantizer):
    """``magnitude_aware_sign``: XNOR-Net's ``mean|W| * sign(W)`` per output channel (kernels)."""

    name = "magnitude_aware_sign"

    def __init__(self, clip_value: float = 1.0):
        self.clip_value = _positive("clip_value", clip_value)

    def __call__(self, x) -> tf.Tensor:
        return magnitude_aware_sign(x, clip_value=self.clip_value)

    def get_config(self) -> dict:
        return {"clip_value": self.clip_value}


@keras.saving.register_keras_serializable(package="tfcompress")
class WeightClip(keras.constraints.Constraint):
    """Clip latent weights to ``[-clip_value, clip_value]`` after each update (alias ``weight_clip``).

    Latent weights far outside the STE's gate receive no gradient and could never flip
    sign again; clipping keeps them where training can still move them (Hubara et al. 2016).
    """

    def __init__(self, clip_value: float = 1.0):
        self.clip_value = _positive("clip_value", clip_value)

    def __call__(self, w):
        return keras.ops.clip(w, -self.clip_value, self.clip_value)

    def get_config(self) -> dict:
        return {"clip_value": self.clip_value}


QUANTIZERS: dict[str, type[Quantizer]] = {cls.name: cls for cls in (SteSign, ApproxSign, SwishSign, MagnitudeAwareSign)}
CONSTRAINTS: dict[str, type[keras.constraints.Constraint]] = {"weight_clip": WeightClip}


def get(identifier) -> Quantizer | None:
    """Resolve a quantizer from ``None``, an alias (``"ste_sign"``, ...), a config dict or an object.

    Like ``keras.activations.get``; a serialized quantizer (the dict ``keras.saving``
    writes, or ``{"class_name": alias, "config": {...}}``) is rebuilt.

    Raises:
        TfcompressError: an unknown alias or an object that is not a quantizer.
    """
    if identifier is None or isinstance(identifier, Quantizer):
        return identifier
    if isinstance(identifier, str):
        if identifier not in QUANTIZERS:
            raise TfcompressError(f"unknown quantizer {identifier!r}; available: {', '.join(sorted(QUANTIZERS))}")
        return QUANTIZERS[identifier]()
    if isinstance(identifier, dict):
        class_name = identifier.get("class_name")
        if class_name in QUANTIZERS:
            return QUANTIZERS[class_name](**identifier.get("config", {}))
        quantizer = keras.saving.deserialize_keras_object(identifier)
        if isinstance(quantizer, Quantizer):
            return quantizer
    raise TfcompressError(f"not a quantizer: {identifier!r}; use one of {', '.join(sorted(QUANTIZERS))} or None")


def serialize(quantizer: Quantizer | None) -> dict | None:
    """The ``.keras`` config of ``quantizer`` (``None`` stays ``None``); inverse of :func:`get`."""
    return None if quantizer is None else keras.saving.serialize_keras_object(quantizer)


def get_constraint(identifier):
    """Like ``keras.constraints.get``, also knowing the alias ``"weight_clip"``."""
    if isinstance(identifier, str) and identifier in CONSTRAINTS:
        return CONSTRAINTS[identifier]()
    try:
        return keras.constraints.get(identifier)
    except ValueError as error:
        raise TfcompressError(f"unknown kernel constraint {identifier!r}: {error}") from error
