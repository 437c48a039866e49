"""Building a ``keras.distillation.Distiller`` from a teacher, a student and the terms wanted.

The loss a :func:`build_distiller` model minimises is Keras's::

    L = alpha * L_hard(y, z_s) + (1 - alpha) * sum_i w_i * L_i(teacher, student)

with ``L_hard`` the loss given to ``compile`` (cross-entropy on the labels) and the ``L_i``:

- Hinton soft targets on the logits, ``T^2 KL(softmax(z_t/T) || softmax(z_s/T))``, weight
  ``soft_weight`` (:class:`tfcompress.distill.losses.SoftTargets`);
- attention transfer between named layers (Zagoruyko & Komodakis 2017), weight
  ``attention_weight`` for each pair (``beta / 2`` in the paper's notation, about 500);
- feature matching between named layers of equal shape (a FitNets hint without regressor,
  the layer-wise mode), ``feature_weight`` divided by the number of pairs, so the feature
  part is their mean.

So ``alpha = 1`` is pure supervised training (the teacher is not even run) and
``alpha = 0`` pure distillation (labels are ignored). Teacher and student are copied
(inside the current ``tf.distribute`` scope): the caller's models are never changed.
"""

from __future__ import annotations

import threading

import keras

from tfcompress.distill.losses import AttentionTransfer, FeatureMatching, SoftTargets
from tfcompress.distill.pairs import LayerPairs, check_pairs
from tfcompress.errors import TfcompressError


def copy_model(model: keras.Model) -> keras.Model:
    """A new model with the same architecture and weights, with its variables created in the
    current distribution scope (``keras.models.clone_model`` + ``set_weights``).

    Raises:
        TfcompressError: the model cannot be cloned (a subclassed model without ``get_config``).
    """
    try:
        clone = keras.models.clone_model(model)
    except Exception as error:  # clone_model raises several kinds for unclonable models
        raise TfcompressError(f"cannot copy model {model.name!r} for distillation: {error}") from error
    clone.set_weights(model.get_weights())
    return clone


class SingleForwardDistiller(keras.distillation.Distiller):
    """``keras.distillation.Distiller`` that runs the student once per step when feature terms are used.

    Keras's Distiller calls the student for the prediction and then its feature extractor,
    a second forward pass (twice the BatchNorm updates and different dropout masks). Here
    the extractor produces both; the features are kept per thread, since
    ``MirroredStrategy`` traces each replica in its own thread.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._step_features = threading.local()

    def call(self, inputs, training=None, **kwargs):
        if self._student_feature_extractor is None:
            return self.student(inputs, training=training, **kwargs)
        features = self._student_feature_extractor(inputs, training=training)
        self._step_features.value = features
        return features["final_output"]

    def _extract_all_student_features(self, x, y_pred):
        if self._student_feature_extractor is None:
            return {"final_output": y_pred}
        return self._step_features.value


def build_distiller(
    teacher: keras.Model,
    student: keras.Model,
    temperature: float = 4.0,
    alpha: float = 0.1,
    soft_weight: float = 1.0,
    attention_pairs: LayerPairs | None = None,
    attention_weight: float = 500.0,
    feature_pairs: LayerPairs | None = None,
    feature_weight: float = 1.0,
    copy: bool = True,
) -> keras.distillation.Distiller:
    """A Distiller (not compiled) for ``student`` learning from ``teacher``.

    Args:
        teacher: the trained model (frozen; run in inference mode).
        student: the model to train; same input and output shapes as the teacher.
        temperature: softmax temperature ``T`` of the soft targets (> 0).
        alpha: weight of the hard (label) loss in [0, 1]; ``1 - alpha`` weighs the
            distillation terms. Same meaning as Keras's ``student_loss_weight``.
        soft_weight: weight of the soft-target term among the distillation terms (0: none).
        attention_pairs: ``[(teacher_layer, student_layer), ...]`` for attention transfer.
        attention_weight: weight of each attention pair.
        feature_pairs: pairs of equal-shape layers for feature matching.
        feature_weight: total weight of the feature terms (shared equally by the pairs).
        copy: copy the student first (in the current strategy scope); with ``False`` the student
            passed in is trained in place. The teacher is always copied: the distiller makes it
            non-trainable, and the caller's model must not change.

    Returns:
        The distiller; the trained student is ``distiller.student``.

    Raises:
        TfcompressError: a bad temperature or alpha, no distillation term with
            ``alpha < 1``, incompatible models, or a wrong layer name or shape.
    """
    if not 0.0 <= alpha <= 1.0:
        raise TfcompressError(f"alpha (the hard-loss weight) must be in [0, 1], got {alpha}")
    if temperature <= 0:
        raise TfcompressError(f"temperature must be positive, got {temperature}")
    attention = check_pairs(teacher, student, attention_pairs, match="spatial")
    features = check_pairs(teacher, student, feature_pairs, match="shape")
    terms, weights = [], []
    if soft_weight > 0:
        terms.append(SoftTargets(temperature=float(temperature)))
        weights.append(float(soft_weight))
    for teacher_name, student_name in attention:
        terms.append(AttentionTransfer(teacher_name, student_name))
        weights.append(float(attention_weight))
    for teacher_name, student_name in features:
        terms.append(FeatureMatching(teacher_name, student_name))
        weights.append(float(feature_weight) / len(features))
    if not terms:
        if alpha < 1.0:
            raise TfcompressError("no distillation term: give soft_weight > 0, attention_pairs or feature_pairs")
        terms, weights = [SoftTargets(temperature=float(temperature))], [0.0]
    # Keras' Distiller makes its teacher non-trainable: always a copy, so that the caller's model stays as it
    # was (a model later cloned from it would otherwise not train at all).
    teacher = copy_model(teacher)
    if copy:
        student = copy_model(student)
    try:
        return SingleForwardDistiller(
            teacher=teacher,
            student=student,
            distillation_losses=terms,
            distillation_loss_weights=weights,
            student_loss_weight=float(alpha),
        )
    except ValueError as error:
        raise TfcompressError(f"teacher and student do not fit together: {str(error).splitlines()[0]}") from error
