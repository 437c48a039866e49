"""Distillation loss terms: Hinton soft targets, attention transfer, and feature matching.

Every term is a ``keras.distillation.DistillationLoss`` (so :class:`keras.distillation.Distiller`
applies it between the teacher's and the student's outputs or named layers) backed by a
pure function on tensors that a custom training loop can call directly.

All terms average over the local batch and are divided by the number of replicas in sync,
like Keras's own losses, so that the gradients summed across replicas by
``tf.distribute.MirroredStrategy`` equal the single-device ones.
"""

from __future__ import annotations

import keras
from keras import ops


def per_replica(value):
    """Scale a batch-mean loss by ``1 / num_replicas_in_sync`` (a no-op on one device).

    ``MirroredStrategy`` sums the replicas' gradients; a loss averaged over the local batch
    must be divided by the replica count for the sum to be the global-batch mean.
    """
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return value if replicas == 1 else value * (1.0 / replicas)


def soft_target_loss(teacher_logits, student_logits, temperature: float = 4.0):
    """Hinton's soft-target loss (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network").

    ``T^2 * mean_batch KL(softmax(z_t / T) || softmax(z_s / T))`` with
    ``KL(p || q) = sum_k p_k (log p_k - log q_k)``, computed from log-softmax (no clipping).
    The ``T^2`` keeps the gradient magnitude of the soft term independent of ``T``: the
    gradient with respect to a student logit is ``T * (q_k - p_k)``, about ``(z_s - z_t) / N``
    at high temperature.
    """
    log_p = ops.log_softmax(ops.divide(teacher_logits, temperature), axis=-1)
    log_q = ops.log_softmax(ops.divide(student_logits, temperature), axis=-1)
    kl = ops.sum(ops.exp(log_p) * (log_p - log_q), axis=-1)
    return ops.mean(kl) * (temperature**2)


def attention_map(features, power: int = 2):
    """Spatial attention map of Zagoruyko & Komodakis (2017), "Paying More Attention to Attention".

    ``Q = vec(mean_c |A_c|^p)``, L2-normalised per example: shape (batch, H*W). The mean over
    channels (rather than their sum) only changes the scale, which the normalisation removes,
    so teacher and student layers may have different channel counts.
    """
    energy = ops.mean(ops.power(ops.abs(features), power), axis=-1)
    flat = ops.reshape(energy, (ops.shape(energy)[0], -1))
    return flat / (ops.sqrt(ops.sum(ops.square(flat), axis=-1, keepdims=True)) + 1e-12)


def attention_transfer_loss(teacher_features, student_features, power: int = 2):
    """Attention-transfer term: ``mean_{batch, positions} (Q_s - Q_t)^2`` of the normalised maps.

    This is the authors' released formulation (``(at(x) - at(y)).pow(2).mean()``), used with a
    weight ``beta`` of about 1000 divided by 2; feature maps must have the same H x W.
    """
    diff = attention_map(student_features, power) - attention_map(teacher_features, power)
    return ops.mean(ops.square(diff))


def feature_matching_loss(teacher_features, student_features):
    """Normalised feature regression (a hint, Romero et al. 2015, "FitNets", without a regressor).

    ``mean_i ||F_s,i - F_t,i||^2 / (||F_t,i||^2 + eps)`` over the examples ``i`` of the batch:
    each example's squared error relative to the energy of the teacher's feature, so that
    layers of very different scales weigh alike when many layers are matched at once (the
    layer-wise recovery mode). Shapes must be equal.
    """
    batch = ops.shape(teacher_features)[0]
    error = ops.sum(ops.reshape(ops.square(student_features - teacher_features), (batch, -1)), axis=-1)
    energy = ops.sum(ops.reshape(ops.square(teacher_features), (batch, -1)), axis=-1)
    return ops.mean(error / (energy + 1e-8))


@keras.saving.register_keras_serializable(package="tfcompress")
class SoftTargets(keras.distillation.LogitsDistillation):
    """Hinton soft targets on the final logits: :func:`soft_target_loss`, replica-scaled.

    Same arguments as ``keras.distillation.LogitsDistillation`` (``temperature``); the loss is
    always the ``T^2``-scaled KL divergence, computed exactly from log-softmax. (Keras 3.15's
    ``LogitsDistillation()`` with its default ``loss="kl_divergence"`` gets the *function*
    ``kl_divergence``, misses its ``isinstance(..., KLDivergence)`` branch and applies KL to the
    raw scaled logits, without softmax or ``T^2``; this class does not depend on that branch.)

    Example:
        >>> term = SoftTargets(temperature=4.0)
        >>> float(term.compute_loss(keras.ops.ones((2, 3)), keras.ops.ones((2, 3))))
        0.0
    """

    def __init__(self, temperature: float = 4.0):
        super().__init__(temperature=temperature, loss=keras.losses.KLDivergence())

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        return per_replica(soft_target_loss(teacher_outputs, student_outputs, self.temperature))

    def get_config(self):
        return {"temperature": self.temperature}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _LayerTerm(keras.distillation.FeatureDistillation):
    """A feature term between one teacher layer and one student layer, by name."""

    def __init__(self, teacher_layer_name: str, student_layer_name: str | None = None):
        super().__init__(
            loss="mse",
            teacher_layer_name=teacher_layer_name,
            student_layer_name=student_layer_name or teacher_layer_name,
        )

    def validate_outputs(self, teacher_outputs, student_outputs):
        keras.tree.assert_same_structure(teacher_outputs, student_outputs)

    def get_config(self):
        return {"teacher_layer_name": self.teacher_layer_name, "student_layer_name": self.student_layer_name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="tfcompress")
class AttentionTransfer(_LayerTerm):
    """Attention transfer between two named layers (:func:`attention_transfer_loss`).

    The layers need the same spatial size; channel counts may differ.

    Args:
        teacher_layer_name: layer of the teacher whose output is matched.
        student_layer_name: layer of the student (default: the same name).
        power: exponent ``p`` of the attention map (2 in the paper).
    """

    def __init__(self, teacher_layer_name: str, student_layer_name: str | None = None, power: int = 2):
        super().__init__(teacher_layer_name, student_layer_name)
        self.power = power

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        return per_replica(attention_transfer_loss(teacher_outputs, student_outputs, self.power))

    def get_config(self):
        return {**super().get_config(), "power": self.power}


@keras.saving.register_keras_serializable(package="tfcompress")
class FeatureMatching(_LayerTerm):
    """Normalised regression of a student layer's output onto the teacher's (:func:`feature_matching_loss`).

    The two outputs must have the same shape: the layer-wise mode, where a compressed
    student keeps the teacher's architecture.
    """

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        return per_replica(feature_matching_loss(teacher_outputs, student_outputs))
