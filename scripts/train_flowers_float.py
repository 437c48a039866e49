"""Rebuild models/flowers_float.keras: the float ResNet-18 (width 32, 128 px) flowers teacher.

Same as ``tfcompress train --model resnet18 --width 32 --image-size 128 --epochs 115 --mixup 0.2
--label-smoothing 0 --precision mixed_bfloat16 --backup-dir models/.work/float_backup
-o models/flowers_float.keras``. Resumes after an interruption from the backup folder (run the
same command again). About two hours on 2 CPU cores with AVX512-BF16.

No label smoothing: mixup already softens the targets, and a teacher trained without label
smoothing transfers more through distillation (Müller et al. 2019, "When does label smoothing
help?").
"""

import argparse

from tfcompress.training import TrainConfig, train

RECIPE = TrainConfig(
    model="resnet18",
    width=32,
    image_size=128,
    epochs=115,
    mixup=0.2,
    label_smoothing=0.0,
    precision="mixed_bfloat16",
)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="models/flowers_float.keras")
    parser.add_argument("--backup-dir", default="models/.work/float_backup")
    parser.add_argument("--force", action="store_true", help="overwrite the output if it exists")
    args = parser.parse_args()
    train(args.output, config=RECIPE, backup_dir=args.backup_dir, force=args.force, verbose=2)
