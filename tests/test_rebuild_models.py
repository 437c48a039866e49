"""`make models` (scripts/rebuild_models.py): the plan from the cards, order, resume, refusals.

Nothing is trained: the real repository is only planned (``--dry-run``), and the runs use a
temporary repository whose scripts record their arguments and write their outputs, refusing
to overwrite without ``--force`` like the real ones.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import rebuild_models  # noqa: E402
from rebuild_models import STEPS, main, make_plan  # noqa: E402

FAKE_SCRIPT = """
import json, sys
from pathlib import Path
name = Path(sys.argv[0]).name
root = Path(sys.argv[0]).resolve().parent.parent
with open(root / "log.txt", "a") as log:
    log.write(json.dumps([name, sys.argv[1:]]) + "\\n")
spec = json.loads((root / "outputs.json").read_text())[name]
if spec.get("fail"):
    sys.exit(5)
if spec["when"] and spec["when"] not in sys.argv:
    sys.exit(0)
files = [root / "models" / f for f in spec["files"]]
if any(f.exists() for f in files) and "--force" not in sys.argv:
    print("exists; pass --force", file=sys.stderr)
    sys.exit(3)
args = " ".join(a for a in sys.argv[1:] if a != "--force")
for f in files:  # a card is rewritten with the command, as the real scripts do
    f.write_text(f"Made by `python scripts/{name} {args}`\\n" if f.suffix == ".md" else "made")
"""

CARDS = {
    "flowers_float": "Made by `python scripts/train_flowers_float.py` (= `tfcompress train`).\n"
    "`.tflite`: `python scripts/export_flowers_float.py` (= `tfcompress convert`).\n",
    "flowers_int8": "Made by `python scripts/export_flowers_float.py --force`.\n",
    "flowers_pq": "Made by: `tfcompress compress models/flowers_float.keras --recipe pq -o models/flowers_pq.tflite`\n",
    "flowers_pruned": "Made by: `tfcompress compress models/flowers_float.keras --recipe pruned -o "
    "models/flowers_pruned.tflite`\n",
    "flowers_dc": "Made by: `tfcompress compress models/flowers_slim.keras --recipe models/flowers_dc.toml -o "
    "models/flowers_dc.tflite`\n",
    "flowers_slim": "Made by: `tfcompress compress models/flowers_float.keras --recipe slim --set "
    "slim.penalty_epochs=4 -o models/flowers_slim.tflite`\n",
    "flowers_lowrank": "Made by: `tfcompress compress models/flowers_float.keras --recipe lowrank -o "
    "models/flowers_lowrank.tflite`\n",
    "flowers_slim_pq": "Made by: `tfcompress compress models/flowers_float.keras --recipe slim+pq -o "
    "models/flowers_slim_pq.tflite --force`\n",
    "flowers_slim_dc": "Made by: `tfcompress compress models/flowers_float.keras --recipe slim+dc -o "
    "models/flowers_slim_dc.tflite`\n",
    "flowers_effnet_lite0_pq": "Made by: `tfcompress compress models/flowers_effnet_lite0.keras --recipe pq -o "
    "models/flowers_effnet_lite0_pq.tflite`\n",
    "flowers_effnet_lite0_int8": "Made by: `tfcompress compress models/flowers_effnet_lite0.keras --recipe int8 -o "
    "models/flowers_effnet_lite0_int8.tflite`\n",
    "flowers_student": "```\npython scripts/train_flowers_students.py --runs scratch --seeds 0\n"
    "python scripts/train_flowers_students.py --runs kd --seeds 0\n"
    "python scripts/train_flowers_students.py --runs none --ship\n```\n",
    "flowers_student_kd": "```\npython scripts/train_flowers_students.py --runs kd --seeds 0\n"
    "python scripts/train_flowers_students.py --runs none --ship\n```\n",
}


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    """A repository with every card, fake scripts, and the binary and slim+pq models already made."""
    (tmp_path / "models").mkdir()
    (tmp_path / "scripts").mkdir()
    for card, text in CARDS.items():
        (tmp_path / "models" / f"{card}.md").write_text(text)
    outputs = {}
    for step in STEPS:
        if step.script is None:
            continue
        cards = [f"{c}.md" for c in step.cards] if step.writes_card else []
        when = "--ship" if step.name == "students" else None
        outputs[step.script] = {"files": [*step.outputs, *cards], "when": when}
        (tmp_path / "scripts" / step.script).write_text(FAKE_SCRIPT)
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    made = ("flowers_binary", "flowers_slim", "flowers_lowrank", "flowers_slim_pq", "flowers_slim_dc",
            "flowers_effnet_lite0", "flowers_effnet_lite0_int8", "flowers_pq", "flowers_pruned",
            "flowers_effnet_lite0_pq", "flowers_dc")  # fmt: skip
    for done in [f"{name}{suffix}" for name in made for suffix in (".keras", ".tflite")]:
        (tmp_path / "models" / done).write_text("made")
    return tmp_path


def calls(root: Path) -> list[tuple[str, list[str]]]:
    log = root / "log.txt"
    return [tuple(json.loads(line)) for line in log.read_text().splitlines()] if log.exists() else []


def test_fresh_rebuild_runs_every_missing_step_in_order_with_the_cards_arguments(fake_repo, capsys):
    assert main(["--root", str(fake_repo)]) == 0
    assert calls(fake_repo) == [
        ("train_flowers_float.py", []),
        ("export_flowers_float.py", []),
        ("train_flowers_students.py", ["--runs", "scratch", "--seeds", "0"]),
        ("train_flowers_students.py", ["--runs", "kd", "--seeds", "0"]),
        ("train_flowers_students.py", ["--runs", "none", "--ship"]),
    ]
    assert "[done] binary" in capsys.readouterr().out
    for step in STEPS:
        assert all((fake_repo / "models" / o).is_file() for o in step.outputs)


def test_a_second_run_is_a_no_op(fake_repo):
    assert main(["--root", str(fake_repo)]) == 0
    before = calls(fake_repo)
    assert main(["--root", str(fake_repo)]) == 0
    assert calls(fake_repo) == before


def test_refuses_to_overwrite_a_partial_step_before_running_anything(fake_repo, capsys):
    assert main(["--root", str(fake_repo)]) == 0
    (fake_repo / "log.txt").unlink()
    (fake_repo / "models/flowers_dc.tflite").unlink()
    (fake_repo / "models/flowers_float.keras").unlink()  # a step that could run comes first
    assert main(["--root", str(fake_repo)]) == 2
    captured = capsys.readouterr()
    assert "would overwrite models/flowers_dc.keras" in captured.out
    assert "refusing to overwrite" in captured.err
    assert calls(fake_repo) == []


def test_force_with_only_rebuilds_just_those_steps_and_passes_force(fake_repo):
    assert main(["--root", str(fake_repo)]) == 0
    (fake_repo / "log.txt").unlink()
    assert main(["--root", str(fake_repo), "--force", "--only", "students", "float_tflite"]) == 0
    assert calls(fake_repo) == [
        ("export_flowers_float.py", ["--force"]),
        ("train_flowers_students.py", ["--runs", "scratch", "--seeds", "0", "--force"]),
        ("train_flowers_students.py", ["--runs", "kd", "--seeds", "0", "--force"]),
        ("train_flowers_students.py", ["--runs", "none", "--ship", "--force"]),
    ]


def test_dry_run_prints_the_plan_and_runs_nothing(fake_repo, capsys):
    (fake_repo / "models/flowers_pq.keras").write_text("made")
    (fake_repo / "models/flowers_pq.tflite").write_text("made")
    assert main(["--root", str(fake_repo), "--dry-run", "--python", "PY"]) == 0
    out = capsys.readouterr().out
    assert calls(fake_repo) == []
    assert "[run] float -> models/flowers_float.keras\n    $ PY scripts/train_flowers_float.py\n" in out
    assert "[done] pq (needs float)" in out
    assert "made from the previous float" in out  # pq exists but its teacher is being re-made
    assert (
        "$ PY -m tfcompress.cli convert models/flowers_binary.keras --int8-weights -o models/flowers_binary.tflite"
        in out
    )


def test_a_failing_step_stops_the_rebuild(fake_repo, capsys):
    spec = json.loads((fake_repo / "outputs.json").read_text())
    spec["export_flowers_float.py"]["fail"] = True
    (fake_repo / "outputs.json").write_text(json.dumps(spec))
    assert main(["--root", str(fake_repo)]) == 1
    assert [name for name, _ in calls(fake_repo)][-1] == "export_flowers_float.py"
    assert "step float_tflite failed (exit 5" in capsys.readouterr().err


def test_missing_card_or_command_and_unknown_step_are_errors(fake_repo, capsys):
    (fake_repo / "models/flowers_float.md").write_text("# flowers_float\nno command here\n")
    assert main(["--root", str(fake_repo), "--dry-run"]) == 2
    assert "no `scripts/train_flowers_float.py ...` command" in capsys.readouterr().err
    (fake_repo / "models/flowers_float.md").unlink()
    assert main(["--root", str(fake_repo), "--dry-run"]) == 2
    assert "models/flowers_float.md is missing" in capsys.readouterr().err
    assert main(["--root", str(fake_repo), "--dry-run", "--only", "teacher"]) == 2
    assert "unknown step(s) teacher" in capsys.readouterr().err


def script_options(script: Path) -> set[str] | None:
    """The ``--options`` an argparse script defines; None when it reads ``sys.argv`` itself."""
    tree = ast.parse(script.read_text())
    options = {
        arg.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"
        for arg in node.args
        if isinstance(arg, ast.Constant) and str(arg.value).startswith("--")
    }
    return options or None


def test_the_real_cards_give_a_plan_the_real_scripts_accept(capsys):
    """Every shipped model has a step; every card command names options its script defines."""
    assert main(["--dry-run"]) == 0
    assert "[refused]" not in capsys.readouterr().out
    plan = make_plan(REPO, "python", force=True)
    made = {o for item in plan for o in item.step.outputs}
    assert {p.name for p in (REPO / "models").glob("*.tflite")} <= made
    for item in plan:
        for command in item.commands:
            if item.step.script is None:
                continue
            assert command[1] == f"scripts/{item.step.script}"
            options = script_options(REPO / command[1])
            used = {token for token in command[2:] if token.startswith("--")}
            assert used <= (options or {"--force"}), f"{command}: options the script does not define"


def test_steps_come_after_the_steps_they_need():
    names = [step.name for step in STEPS]
    for step in STEPS:
        assert all(names.index(need) < names.index(step.name) for need in step.needs)
    assert [step.name for step in rebuild_models.select(["dc", "float"])] == ["float", "dc"]


def test_a_compress_step_runs_the_command_its_card_records(fake_repo):
    for made in ("flowers_slim_pq.tflite", "flowers_slim_pq.keras"):
        (fake_repo / "models" / made).unlink()
    plan = {item.step.name: item for item in make_plan(fake_repo, "py", force=False)}
    assert plan["slim_pq"].action == "run"
    assert plan["slim_pq"].commands == [
        ["py", "-m", "tfcompress.cli", "compress", "models/flowers_float.keras", "--recipe", "slim+pq", "-o",
         "models/flowers_slim_pq.tflite", "--force"]  # --force only for its card, the model files checked first
    ]  # fmt: skip
    (fake_repo / "models" / "flowers_slim_pq.md").write_text("no command here\n")
    with pytest.raises(rebuild_models.PlanError, match="records no `tfcompress compress"):
        make_plan(fake_repo, "py", force=False)
