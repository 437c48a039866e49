"""`make models`: rebuild every shipped flower model, in dependency order, with the recorded recipes.

    nice -n 5 .venv/bin/python scripts/rebuild_models.py [--dry-run] [--force] [--only STEP ...]

The steps (:data:`STEPS`) and their order: the float teacher; its float and int8 ``.tflite``;
then, from the teacher, PQ, pruning, Network Slimming (then Deep Compression from the slimmed
model), low-rank and the two students; the binary network (distilled from the teacher) and its
``.tflite``. Each step runs an existing script of ``scripts/`` with the arguments of the
``scripts/NAME.py ...`` command(s) its model card records (``models/<model>.md``, read now,
so a re-made card is followed; the binary ``.tflite`` step runs ``tfcompress convert``), or the
``tfcompress compress ...`` command of a card that ``compress`` wrote.

- Resumable: a step whose model files (``.keras`` / ``.tflite``) all exist is done and
  skipped; an interrupted step's script resumes from its own state under ``models/.work/``
  when run again.
- Never overwrites without ``--force``: a step to run that would replace an existing model
  file stops the rebuild before anything runs. ``--force`` runs every (selected) step and
  passes ``--force`` to the scripts. The scripts that write their own card are given
  ``--force`` to replace it (the model files having been checked first). A from-scratch
  rebuild also needs the scripts' state folders under ``models/.work/`` moved away.
- ``--dry-run`` prints the plan (each step: run / done / refused, its commands) and runs nothing.

Exit status: 0 done, 1 a step failed, 2 a card without its command or a refused overwrite.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from model_cards import compress_commands, read_card, script_commands

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Step:
    """One rebuild step: a script, the cards recording its arguments, the model files it makes."""

    name: str
    outputs: tuple[str, ...]  # model files under models/
    needs: tuple[str, ...] = ()  # steps whose outputs it reads
    script: str | None = None  # scripts/<script>, arguments from the cards
    cards: tuple[str, ...] = ()  # models/<card>.md
    fixed: tuple[str, ...] = ()  # without a script: `python -m ...` arguments
    writes_card: bool = False  # the script writes (and refuses to replace) its card
    compress: bool = False  # made by the `tfcompress compress ...` command its card records


STEPS: tuple[Step, ...] = (
    Step("float", ("flowers_float.keras",), (), "train_flowers_float.py", ("flowers_float",)),
    Step(
        "float_tflite",
        ("flowers_float.tflite", "flowers_int8.tflite"),
        ("float",),
        "export_flowers_float.py",
        ("flowers_float", "flowers_int8"),
    ),
    Step(
        "pq",
        ("flowers_pq.keras", "flowers_pq.tflite"),
        ("float",),
        cards=("flowers_pq",),
        writes_card=True,
        compress=True,
    ),
    Step(
        "pruned",
        ("flowers_pruned.keras", "flowers_pruned.tflite"),
        ("float",),
        cards=("flowers_pruned",),
        writes_card=True,
        compress=True,
    ),
    Step(
        "slim",
        ("flowers_slim.keras", "flowers_slim.tflite"),
        ("float",),
        cards=("flowers_slim",),
        writes_card=True,
        compress=True,
    ),
    Step(  # recipe models/flowers_dc.toml
        "dc",
        ("flowers_dc.keras", "flowers_dc.tflite"),
        ("slim",),
        cards=("flowers_dc",),
        writes_card=True,
        compress=True,
    ),
    Step(
        "lowrank",
        ("flowers_lowrank.keras", "flowers_lowrank.tflite"),
        ("float",),
        cards=("flowers_lowrank",),
        writes_card=True,
        compress=True,
    ),
    Step(
        "slim_pq",
        ("flowers_slim_pq.keras", "flowers_slim_pq.tflite"),
        ("float",),
        cards=("flowers_slim_pq",),
        writes_card=True,
        compress=True,
    ),
    Step(
        "slim_dc",
        ("flowers_slim_dc.keras", "flowers_slim_dc.tflite"),
        ("float",),
        cards=("flowers_slim_dc",),
        writes_card=True,
        compress=True,
    ),
    Step(
        "effnet_lite0",
        ("flowers_effnet_lite0.keras",),
        fixed=(
            *("-m", "tfcompress.cli", "train", "--model", "efficientnet_lite0", "--pretrained", "--image-size", "128"),
            *("--epochs", "6", "--warmup-epochs", "0", "--learning-rate", "1e-4", "--precision", "mixed_bfloat16"),
            *("--backup-dir", "models/.work/effnet_ft6_backup", "-o", "models/flowers_effnet_lite0.keras"),
        ),
    ),
    Step(
        "effnet_lite0_tflite",
        ("flowers_effnet_lite0.tflite",),
        ("effnet_lite0",),
        fixed=(
            *("-m", "tfcompress.cli", "convert", "models/flowers_effnet_lite0.keras"),
            *("-o", "models/flowers_effnet_lite0.tflite"),
        ),
    ),
    Step(  # also writes flowers_effnet_lite0_int8.keras, a copy of the input (not shipped)
        "effnet_lite0_int8",
        ("flowers_effnet_lite0_int8.tflite",),
        ("effnet_lite0",),
        cards=("flowers_effnet_lite0_int8",),
        writes_card=True,
        compress=True,
    ),
    Step(
        "effnet_lite0_pq",
        ("flowers_effnet_lite0_pq.keras", "flowers_effnet_lite0_pq.tflite"),
        ("effnet_lite0",),
        cards=("flowers_effnet_lite0_pq",),
        writes_card=True,
        compress=True,
    ),
    Step(  # Real-to-Binary: two stages of 80 epochs distilled from the float model (models/flowers_binary.md)
        "binary",
        ("flowers_binary.keras",),
        ("float",),
        fixed=(
            *("-m", "tfcompress.cli", "distill", "--teacher", "models/flowers_float.keras", "--student"),
            *("binary_resnet18", "--width", "32", "--real-to-binary", "--optimizer", "adam", "--learning-rate"),
            *("2e-3", "--weight-decay", "1e-5", "--epochs", "80", "--backup-dir", "models/.work/r2b"),
            *("-o", "models/flowers_binary.keras"),
        ),
    ),
    Step(
        "binary_tflite",
        ("flowers_binary.tflite",),
        ("binary",),
        fixed=(
            *("-m", "tfcompress.cli", "convert", "models/flowers_binary.keras", "--int8-weights"),
            *("-o", "models/flowers_binary.tflite"),
        ),
    ),
    Step(
        "students",
        ("flowers_student.keras", "flowers_student.tflite", "flowers_student_kd.keras", "flowers_student_kd.tflite"),
        ("float",),
        "train_flowers_students.py",
        ("flowers_student", "flowers_student_kd"),
    ),
)


@dataclass
class Planned:
    """A step with its decision: ``run``, ``done`` (skipped) or ``refused``, and its commands."""

    step: Step
    action: str
    commands: list[list[str]]
    notes: list[str]


class PlanError(Exception):
    """A card is missing or records no command for its step's script."""


def step_commands(step: Step, root: Path, python: str, force: bool) -> list[list[str]]:
    """The command lines of ``step``, arguments from its cards (``--force`` added when ``force``)."""
    if step.compress:
        card = read_card(root / "models", step.cards[0])
        found = compress_commands(card) if card is not None else []
        if not found:
            raise PlanError(f"models/{step.cards[0]}.md records no `tfcompress compress ...` command")
        return [[python, "-m", "tfcompress.cli", "compress", *args, *(["--force"] if force else [])] for args in found]
    if step.script is None:
        return [[python, *step.fixed, *(["--force"] if force else [])]]
    found: list[list[str]] = []
    for card_name in step.cards:
        card = read_card(root / "models", card_name)
        if card is None:
            raise PlanError(f"models/{card_name}.md is missing: it records how to run scripts/{step.script}")
        for args in script_commands(card, step.script):
            if args not in found:
                found.append(args)
    if not found:
        cards = ", ".join(f"models/{c}.md" for c in step.cards)
        raise PlanError(f"{cards} record(s) no `scripts/{step.script} ...` command")
    extra = ["--force"] if force else []
    return [[python, f"scripts/{step.script}", *args, *extra] for args in found]


def select(only: list[str] | None) -> list[Step]:
    """The steps to consider, in dependency order (``only``: these names)."""
    names = [s.name for s in STEPS]
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise PlanError(f"unknown step(s) {', '.join(unknown)}; the steps are {', '.join(names)}")
    return [s for s in STEPS if not only or s.name in only]


def make_plan(root: Path, python: str, force: bool, only: list[str] | None = None) -> list[Planned]:
    """Decide each step: forced steps run; complete ones are done; incomplete ones run unless they overwrite."""
    plan: list[Planned] = []
    running: set[str] = set()
    for step in select(only):
        present = [o for o in step.outputs if (root / "models" / o).exists()]
        notes = []
        if force:
            action = "run"
        elif len(present) == len(step.outputs):
            action = "done"
            stale = [n for n in step.needs if n in running]
            if stale:
                notes.append(f"made from the previous {', '.join(stale)}: rebuild with --force (FORCE=1)")
        elif present:
            action = "refused"
            notes.append(f"would overwrite {', '.join('models/' + p for p in present)}: pass --force (FORCE=1)")
        else:
            action = "run"
        card_only = action == "run" and step.writes_card and not force
        if card_only:
            notes.append("--force only to replace its card: " + ", ".join(f"models/{c}.md" for c in step.cards))
        if action == "run":
            running.add(step.name)
        plan.append(Planned(step, action, step_commands(step, root, python, force or card_only), notes))
    return plan


def describe(plan: list[Planned]) -> str:
    """The plan as text: one block per step."""
    lines = []
    for item in plan:
        step = item.step
        needs = f" (needs {', '.join(step.needs)})" if step.needs else ""
        lines.append(f"[{item.action}] {step.name}{needs} -> {', '.join('models/' + o for o in step.outputs)}")
        lines += [f"    $ {' '.join(command)}" for command in item.commands]
        lines += [f"    note: {note}" for note in item.notes]
    return "\n".join(lines)


def execute(plan: list[Planned], root: Path) -> int:
    """Run the planned commands in order; stop at the first failure. Returns the exit status."""
    for item in plan:
        if item.action != "run":
            continue
        for command in item.commands:
            print(f"rebuild_models: [{item.step.name}] $ {' '.join(command)}", flush=True)
            start = time.perf_counter()
            result = subprocess.run(command, cwd=root)
            minutes = (time.perf_counter() - start) / 60
            if result.returncode != 0:
                print(
                    f"rebuild_models: step {item.step.name} failed (exit {result.returncode}, {minutes:.1f} min); "
                    "run again to resume",
                    file=sys.stderr,
                )
                return 1
            print(f"rebuild_models: [{item.step.name}] done in {minutes:.1f} min", flush=True)
        missing = [o for o in item.step.outputs if not (root / "models" / o).exists()]
        if missing:
            print(f"rebuild_models: step {item.step.name} did not write {', '.join(missing)}", file=sys.stderr)
            return 1
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    parser.add_argument("--force", action="store_true", help="rebuild the selected steps, replacing their files")
    parser.add_argument("--only", nargs="+", metavar="STEP", help=f"steps: {', '.join(s.name for s in STEPS)}")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (models/ and scripts/ in it)")
    parser.add_argument("--python", default=sys.executable, help="the Python that runs the scripts")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = args.root.resolve()
    try:
        plan = make_plan(root, args.python, args.force, args.only)
    except PlanError as error:
        print(f"rebuild_models: error: {error}", file=sys.stderr)
        return 2
    print(describe(plan), flush=True)
    refused = [item.step.name for item in plan if item.action == "refused"]
    if refused:
        print(f"rebuild_models: refusing to overwrite (steps {', '.join(refused)}); nothing run", file=sys.stderr)
        return 2
    if args.dry_run:
        return 0
    status = execute(plan, root)
    if status == 0:
        print(f"rebuild_models: {sum(item.action == 'run' for item in plan)} step(s) run, the rest up to date")
    return status


if __name__ == "__main__":
    sys.exit(main())
