"""Knowledge distillation on top of ``keras.distillation``: soft targets, feature terms, layer-wise recovery.

>>> from tfcompress.distill import DistillConfig, distill, finetune_layerwise
>>> distill("student.keras", "models/flowers_float.keras", config=DistillConfig(epochs=20))  # doctest: +SKIP
>>> recovered = finetune_layerwise(compressed, teacher=original, data=images)  # doctest: +SKIP
"""

from tfcompress.distill.distiller import SingleForwardDistiller, build_distiller, copy_model
from tfcompress.distill.fit import DistillConfig, distill, finetune_layerwise, load_teacher
from tfcompress.distill.losses import (
    AttentionTransfer,
    FeatureMatching,
    SoftTargets,
    attention_map,
    attention_transfer_loss,
    feature_matching_loss,
    soft_target_loss,
)
from tfcompress.distill.pairs import check_pairs, matching_layer_pairs, normalize_pairs

__all__ = [
    "AttentionTransfer",
    "DistillConfig",
    "FeatureMatching",
    "SingleForwardDistiller",
    "SoftTargets",
    "attention_map",
    "attention_transfer_loss",
    "build_distiller",
    "check_pairs",
    "copy_model",
    "distill",
    "feature_matching_loss",
    "finetune_layerwise",
    "load_teacher",
    "matching_layer_pairs",
    "normalize_pairs",
    "soft_target_loss",
]
