"""Rebuild models/flowers_float.keras: the float ResNet-18 (width 32, 96 px) flowers teacher.

    python scripts/train_flowers_float.py [--recipe NAME] [-o OUT.keras] [--force]

``shipped`` (default) made the shipped teacher; it is the same as ``tfcompress train --model
resnet18 --width 32 --image-size 96 --epochs 80 --backup-dir models/.work/float_backup -o
models/flowers_float.keras``: about an hour on 2 CPU cores. Resumes after an interruption from
the backup folder (run the same command again).

``128px-mixup`` is the longer recipe tried in session 3 and not shipped (``tfcompress train
--model resnet18 --width 32 --image-size 128 --epochs 115 --mixup 0.2 --label-smoothing 0
--precision mixed_bfloat16``; two hours): its best-validation weights (79.7% val, epoch 55)
scored 70.77% on test.txt and its last weights 74.77% (76.3% val), against 73.85% for the
shipped teacher, for (128/96)^2 = 1.78x its MACs. See the README (issue 2).

``cutmix-100`` (session 6): the shipped architecture and input size, 100 epochs, each batch mixed
by mixup 0.2 or CutMix 1.0, the last weights kept (``tfcompress train ... --epochs 100 --mixup 0.2
--cutmix 1.0 --keep last``); about two hours on 2 cores (70 s per epoch). Its last weights scored
73.69% on test.txt (79.71% val) against 73.85% for the shipped teacher: not shipped.

``no-smoothing-30`` (session 7): a teacher for the distillation ablation, the shipped recipe without
label smoothing (Mueller, Kornblith & Hinton 2019: a teacher trained with label smoothing passes less
to its student) and with 30 epochs (``tfcompress train --model resnet18 --width 32 --image-size 96
--epochs 30 --label-smoothing 0``); about 35 minutes on 2 cores.
"""

import argparse

from tfcompress.training import TrainConfig, train

RECIPES = {
    "shipped": TrainConfig(model="resnet18", width=32, image_size=96, epochs=80),
    "128px-mixup": TrainConfig(
        model="resnet18",
        width=32,
        image_size=128,
        epochs=115,
        mixup=0.2,
        label_smoothing=0.0,
        precision="mixed_bfloat16",
    ),
    "cutmix-100": TrainConfig(
        model="resnet18", width=32, image_size=96, epochs=100, mixup=0.2, cutmix=1.0, keep="last"
    ),
    "no-smoothing-30": TrainConfig(model="resnet18", width=32, image_size=96, epochs=30, label_smoothing=0.0),
}
RECIPE = RECIPES["shipped"]

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="shipped")
    parser.add_argument("-o", "--output", default="models/flowers_float.keras")
    parser.add_argument("--backup-dir", default="models/.work/float_backup")
    parser.add_argument("--force", action="store_true", help="overwrite the output if it exists")
    args = parser.parse_args()
    train(args.output, config=RECIPES[args.recipe], backup_dir=args.backup_dir, force=args.force, verbose=2)
