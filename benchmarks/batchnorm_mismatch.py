"""How far each model's BatchNorm statistics are from the data's (``tfcompress.batchnorm``).

    .venv/bin/python benchmarks/batchnorm_mismatch.py [MODEL.keras ...] [--images 512]

For each model: :func:`tfcompress.batchnorm.statistics_mismatch` on the first ``--images``
unaugmented flowers5 training images, and what ``batchnorm = "auto"`` of the pq and share stages
makes of it. Writes ``benchmarks/results/batchnorm_mismatch.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("flowers_float", "flowers_slim", "flowers_student_kd", "flowers_effnet_lite0")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path, default=[ROOT / f"models/{m}.keras" for m in MODELS])
    parser.add_argument("--images", type=int, default=512, help="training images measured (default: 512)")
    parser.add_argument("-o", type=Path, default=ROOT / "benchmarks/results/batchnorm_mismatch.md")
    args = parser.parse_args()
    missing = [str(path) for path in args.models if not path.is_file()]
    if missing:
        parser.error(f"no such model file: {', '.join(missing)}")
    from tfcompress.batchnorm import MISMATCH_LIMIT, statistics_mismatch
    from tfcompress.convert import load_keras_model
    from tfcompress.data import load_split
    from tfcompress.fileio import write_text_atomic

    rows = []
    for path in args.models:
        model = load_keras_model(path)
        images = load_split(None, "train", int(model.inputs[0].shape[1]), limit=args.images).images
        mismatch = statistics_mismatch(model, images)
        verdict = "frozen" if mismatch > MISMATCH_LIMIT else "updated"
        rows.append(f"| `{path.name}` | {mismatch:.3f} | {verdict} |")
        print(rows[-1], flush=True)
    text = (
        "# BatchNorm statistics against the data\n\n"
        f"Written by `python benchmarks/batchnorm_mismatch.py` ({args.images} flowers5 training images, "
        "unaugmented): the median over BatchNorm layers of the median |log(var / moving_var)| over channels; "
        f"above {MISMATCH_LIMIT} the pq and share stages of `tfcompress compress` keep BatchNorm frozen.\n\n"
        "| model | mismatch | pq / share stages |\n|---|---:|---|\n" + "\n".join(rows) + "\n"
    )
    write_text_atomic(args.o, text, force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
