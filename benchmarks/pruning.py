"""Pruning figures: our shipped pruned / Deep Compression / slim files against the float file and tfmot.

    nice -n 5 .venv/bin/python benchmarks/pruning.py [--rounds 15] [--runs 20]

For each ``.tflite`` (float, ``flowers_pruned``, ``flowers_dc``, ``flowers_slim``, and tfmot's
80% pruned file): bytes, bytes after ``gzip -9``, top-1 on flowers5 ``test.txt`` through
:func:`tfcompress.runtime.Interpreter`, and batch-1 latency at 1 and 2 threads, plus parameters
and MACs of the Keras models. Latency: all interpreters live at once and are timed in
``--rounds`` interleaved rounds of ``--runs`` invokes each
(:func:`tfcompress.latency.interleaved_latency`); a row gives the median of its round medians,
so a drift in the shared machine's load touches every model alike.

tfmot (0.8.1) needs Keras 2: it runs in a throwaway venv (``build/tfmot_venv``, made on first use:
tf-keras and tensorflow-model-optimization over this project's site-packages), started as a subprocess of
this script with ``--tfmot-worker``. There the same ResNet-18 is rebuilt with tf_keras, the
float weights copied in, ``prune_low_magnitude`` with ``ConstantSparsity(0.8, frequency=1)``
applied (per Conv2D/Dense layer: tfmot rejects the whole model because of its Rescaling layer)
for one step at learning rate 0 (one-shot magnitude pruning, no finetune: CPU was
scarce), ``strip_pruning``, and converted with the default converter settings.

Writes ``benchmarks/results/pruning.json`` and ``benchmarks/results/pruning.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TFMOT_PYTHON = ROOT / "build/tfmot_venv/bin/python"
WORK = ROOT / "models/.work/pruning/bench"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default=str(ROOT / "models/flowers_float.keras"))
    parser.add_argument("--rounds", type=int, default=15, help="interleaved latency rounds")
    parser.add_argument("--runs", type=int, default=20, help="timed invokes per model, thread count and round")
    parser.add_argument("--results", default=str(ROOT / "benchmarks/results"))
    parser.add_argument("--tfmot-worker", nargs=2, metavar=("WEIGHTS.npz", "OUT.tflite"), help=argparse.SUPPRESS)
    return parser.parse_args()


# --- tfmot worker (runs in build/tfmot_venv with tf_keras) ------------------------------


def tfmot_worker(weights_path: str, output: str) -> None:
    """Rebuild the ResNet with tf_keras, one-shot prune 80% with tfmot, strip, convert."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import numpy as np
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras

    sys.modules["keras"] = tf_keras  # the zoo's builder, written against the Keras API, builds a tf_keras model
    sys.modules["keras.layers"] = tf_keras.layers
    from tfcompress.models.resnet import resnet

    saved = np.load(weights_path)
    model = resnet("resnet18", num_classes=int(saved["num_classes"]), image_size=int(saved["image_size"]), width=32)
    for layer in model.layers:
        count = len(layer.get_weights())
        if count:
            layer.set_weights([saved[f"{layer.name}/{i}"] for i in range(count)])
    schedule = tfmot.sparsity.keras.ConstantSparsity(0.8, begin_step=0, frequency=1)

    # tfmot refuses the whole model (its Rescaling layer is not in its registry): wrap the layers it supports
    def wrap(layer):
        if isinstance(layer, tf_keras.layers.Conv2D | tf_keras.layers.Dense):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    pruned = tf_keras.models.clone_model(model, clone_function=wrap)
    pruned.compile(tf_keras.optimizers.SGD(0.0), tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    size = int(saved["image_size"])
    images = np.zeros((2, size, size, 3), np.float32)
    pruned.fit(images, np.zeros(2), batch_size=2, epochs=1, verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])  # fmt: skip
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    kernels = [w for layer in stripped.layers for w in layer.get_weights()[:1] if w.ndim > 1]
    sparsity = float(sum((k == 0).sum() for k in kernels) / sum(k.size for k in kernels))
    converter = tf.lite.TFLiteConverter.from_keras_model(stripped)
    Path(output).write_bytes(converter.convert())
    print(json.dumps({"tfmot_sparsity": sparsity}))


def ensure_tfmot_venv() -> Path:
    """Create ``build/tfmot_venv`` when missing: this project's packages plus tf-keras and tfmot.

    The venv sees this project's site-packages through a ``.pth`` file, so only the Keras 2
    pieces are installed there (tf-keras pinned to the installed TensorFlow's minor version).
    """
    if TFMOT_PYTHON.is_file():
        return TFMOT_PYTHON
    import site

    import tensorflow as tf

    venv = TFMOT_PYTHON.parent.parent
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    (site_dir,) = (venv / "lib").glob("python*/site-packages")
    (site_dir / "tfcompress_base.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    minor = ".".join(tf.__version__.split(".")[:2])
    subprocess.run(
        [str(TFMOT_PYTHON), "-m", "pip", "install", "-q", f"tf-keras~={minor}.0", "tensorflow-model-optimization"],
        check=True,
    )
    return TFMOT_PYTHON


def run_tfmot(teacher) -> tuple[Path, dict]:
    """Save the float weights by layer name and run :func:`tfmot_worker` in the tfmot venv."""
    import numpy as np

    ensure_tfmot_venv()
    WORK.mkdir(parents=True, exist_ok=True)
    weights = WORK / "float_weights.npz"
    arrays = {f"{layer.name}/{i}": w for layer in teacher.layers for i, w in enumerate(layer.get_weights())}
    np.savez(weights, num_classes=teacher.outputs[0].shape[-1], image_size=teacher.inputs[0].shape[1], **arrays)
    output = WORK / "flowers_tfmot_pruned.tflite"
    done = subprocess.run(
        [str(TFMOT_PYTHON), __file__, "--tfmot-worker", str(weights), str(output)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_USE_LEGACY_KERAS": "1"},
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"tfmot worker failed:\n{done.stderr[-3000:]}")
    return output, json.loads(done.stdout.strip().splitlines()[-1])


# --- measurements ---------------------------------------------------------------------


def measure(files: dict[str, Path], rounds: int, runs: int) -> dict[str, dict]:
    """Bytes, gzip bytes, top-1 on test.txt, and interleaved batch-1 latency at 1 and 2 threads, per file."""
    import numpy as np

    from tfcompress.evaluate import TFLiteClassifier, evaluate
    from tfcompress.latency import interleaved_latency
    from tfcompress.pruning.export import gzip_size

    rows, classifiers, inputs = {}, {}, {}
    for name, path in files.items():
        result = evaluate(path, None, "test", threads=1, runs=1, warmup=0)  # accuracy; latency below
        rows[name] = {
            "file": str(path.relative_to(ROOT)),
            "bytes": path.stat().st_size,
            "gzip_bytes": gzip_size(path.read_bytes()),
            "top1": result.accuracy,
            "images": result.images,
        }
        print(name, rows[name], flush=True)
        for threads in (1, 2):
            classifier = TFLiteClassifier(path, threads)
            size = int(classifier.input["shape"][1])
            classifiers[(name, threads)] = classifier
            inputs[(name, threads)] = classifier.prepare(np.random.default_rng(0).uniform(0, 255, (size, size, 3)))
    latency = interleaved_latency(
        {key: (lambda c=c, x=inputs[key]: c.run(x)) for key, c in classifiers.items()},
        rounds,
        runs,
        progress=lambda done, total: print(f"latency round {done}/{total}", flush=True),
    )
    for (name, threads), figures in latency.items():
        rows[name][f"latency_ms_{threads}t"] = figures.ms_median
    return rows


def markdown(rows: dict[str, dict], counts: dict[str, dict], tfmot_info: dict, image_size: int) -> str:
    float_row = rows["float"]
    lines = [
        f"# Pruning on the flowers ResNet-18 (width 32, {image_size} px)",
        "",
        "Reproduce: `nice -n 5 .venv/bin/python benchmarks/pruning.py` after scripts/make_flowers_*.py.",
        "Top-1 on flowers5 test.txt through the TFLite runtime; latency is batch 1, all models timed in interleaved",
        "rounds (median of the round medians), on a 2-core machine shared with other jobs (compare rows, not",
        "absolute numbers).",
        "",
        "| model | bytes | x smaller | gzip -9 bytes | top-1 | ms 1 thread | ms 2 threads | params (nonzero) | MACs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        count = counts.get(name, {})
        params = f"{count['params']:,} ({count['nonzero_params']:,})" if count else "-"
        macs = f"{count['macs']:,}" if count else "-"
        lines.append(
            f"| {name} | {row['bytes']:,} | {float_row['bytes'] / row['bytes']:.1f} | {row['gzip_bytes']:,} | "
            f"{100 * row['top1']:.2f}% | {row['latency_ms_1t']:.2f} | {row['latency_ms_2t']:.2f} | {params} | {macs} |"
        )
    lines += [
        "",
        f"tfmot row: `prune_low_magnitude` + `ConstantSparsity(0.8)` one-shot (sparsity reached "
        f"{100 * tfmot_info.get('tfmot_sparsity', float('nan')):.1f}%), `strip_pruning`, default converter: the file",
        "keeps every zero as a float32, so it is as large as the dense one until gzipped. Its top-1 is without a",
        "finetune (ours: see each model card), so only its sizes and latency are comparable.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    if args.tfmot_worker:
        tfmot_worker(*args.tfmot_worker)
        return
    import keras

    from tfcompress.convert import load_keras_model
    from tfcompress.fileio import write_text_atomic
    from tfcompress.pruning.measure import model_counts

    teacher = load_keras_model(args.teacher)
    float_path = ROOT / "models/flowers_float.tflite"
    if not float_path.is_file():
        float_path = ROOT / "models/.work/pruning/flowers_float.tflite"
    tfmot_path, tfmot_info = run_tfmot(teacher)
    files = {
        "float": float_path,
        "tfmot 80% (stripped)": tfmot_path,
        "ours 80% (EXPERIMENTAL_SPARSITY)": ROOT / "models/flowers_pruned.tflite",
        "ours Deep Compression": ROOT / "models/flowers_dc.tflite",
        "ours slim": ROOT / "models/flowers_slim.tflite",
    }
    rows = measure({name: path for name, path in files.items() if path.is_file()}, args.rounds, args.runs)
    counts = {"float": model_counts(teacher)}
    for name, stem in (("ours 80% (EXPERIMENTAL_SPARSITY)", "flowers_pruned"), ("ours Deep Compression", "flowers_dc"),
                       ("ours slim", "flowers_slim")):  # fmt: skip
        keras_path = ROOT / f"models/{stem}.keras"
        if keras_path.is_file():
            counts[name] = model_counts(keras.models.load_model(keras_path, compile=False))
    results = Path(args.results)
    summary = {"rows": rows, "counts": counts, "tfmot": tfmot_info, "rounds": args.rounds, "runs": args.runs}
    write_text_atomic(results / "pruning.json", json.dumps(summary, indent=2) + "\n", force=True)
    write_text_atomic(
        results / "pruning.md", markdown(rows, counts, tfmot_info, int(teacher.inputs[0].shape[1])), force=True
    )
    print(markdown(rows, counts, tfmot_info, int(teacher.inputs[0].shape[1])))


if __name__ == "__main__":
    main()
