"""Rebuild models/flowers_float.keras: the float ResNet-18 (width 32, 96 px) flowers teacher.

Same as ``tfcompress train --model resnet18 --width 32 --image-size 96 --epochs 80
--backup-dir models/.work/float_backup -o models/flowers_float.keras``. Resumes after an
interruption from the backup folder. About an hour on 2 CPU cores.
"""

import sys

from tfcompress.training import TrainConfig, train

if __name__ == "__main__":
    force = "--force" in sys.argv
    train(
        "models/flowers_float.keras",
        config=TrainConfig(model="resnet18", width=32, image_size=96, epochs=80),
        backup_dir="models/.work/float_backup",
        force=force,
        verbose=2,
    )
