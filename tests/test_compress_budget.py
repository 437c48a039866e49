"""Budget mode: the search over stubbed measurements, its table and plot, and one real run on a tiny model."""

from __future__ import annotations

import json

import pytest

from tfcompress.compress.budget import Budget, Measured, markdown_table, search
from tfcompress.compress.pareto import pareto_front, plot_search
from tfcompress.errors import TfcompressError

BASE = Measured(bytes=10_000, latency_ms=10.0, val_top1=0.80)
# recipe -> (probe bytes, probe latency ms, val top-1 after training)
STUB = {
    "int8": (3_000, 8.0, 0.80),
    "pq": (1_000, 10.0, 0.795),
    "dc": (500, 9.0, 0.795),
    "slim+dc": (300, 4.0, 0.77),
    "slim+int8": (1_400, 2.5, 0.792),
}


class Stub:
    """Probe and train functions over :data:`STUB` that record what was asked of them."""

    def __init__(self, failing: str | None = None):
        self.probed: list[str] = []
        self.trained: list[str] = []
        self.failing = failing

    def probe(self, recipe: str, settings: tuple[str, ...]) -> Measured:
        self.probed.append(recipe)
        if recipe == self.failing:
            raise TfcompressError("layer x cannot be quantized")
        size, latency, _ = STUB[recipe]
        return Measured(size, latency)

    def train(self, recipe: str, settings: tuple[str, ...]) -> Measured:
        self.trained.append(recipe)
        size, latency, top1 = STUB[recipe]
        return Measured(size, latency, top1, minutes=1.0)


def run(budget: Budget, stub: Stub | None = None, explore: bool = False):
    stub = stub or Stub()
    candidates = [(name, ()) for name in STUB]
    result = search(candidates, budget, BASE, stub.probe, stub.train, explore, (TfcompressError,), log=lambda _: None)
    return result, stub


def test_the_smallest_candidate_within_budget_is_chosen_and_the_search_stops():
    result, stub = run(Budget(target_bytes=1_500, max_drop=1.0))
    assert stub.probed == list(STUB)  # every structure is measured, cheapest first
    assert stub.trained == ["slim+dc", "dc"]  # smallest first; slim+dc loses 3 points; dc meets: stop
    assert result.chosen.name == "dc"
    status = {c.name: c.status for c in result.candidates}
    assert status == {"int8": "too big", "pq": "not trained", "dc": "meets budget", "slim+dc": "too inaccurate",
                      "slim+int8": "not trained"}  # fmt: skip
    assert "chosen: dc: 500 bytes (20.0x smaller)" in result.verdict()


def test_a_speed_budget_orders_by_latency():
    result, stub = run(Budget(target_speedup=2.0, max_drop=1.0))
    assert stub.trained == ["slim+int8"]  # 4x faster and within a point; slim+dc, 2.5x, comes after it
    assert result.chosen.name == "slim+int8"
    assert {c.name for c in result.candidates if c.status == "too slow"} == {"int8", "pq", "dc"}


def test_when_nothing_meets_the_budget_the_closest_is_named():
    result, stub = run(Budget(target_bytes=400, max_drop=1.0))
    assert result.chosen is None and stub.trained == ["slim+dc"]
    assert result.closest.name == "slim+dc"
    assert result.verdict().startswith("no candidate met the budget (<= 400 bytes")
    assert "closest: slim+dc (too inaccurate: 3.00 points lost > 1)" in result.verdict()
    result, _ = run(Budget(target_bytes=100, max_drop=1.0))
    assert result.closest.name == "slim+dc" and result.closest.status == "too big"


def test_a_failing_candidate_is_reported_and_the_search_goes_on():
    result, _ = run(Budget(target_bytes=1_500), Stub(failing="dc"))
    failed = next(c for c in result.candidates if c.name == "dc")
    assert failed.status == "failed" and "cannot be quantized" in failed.note
    assert result.chosen.name == "pq"  # the next smallest within a point, after slim+dc


def test_explore_trains_every_feasible_candidate_and_still_picks_the_best(tmp_path):
    result, stub = run(Budget(target_bytes=5_000, max_drop=1.0), explore=True)
    assert sorted(stub.trained) == sorted(STUB)
    assert result.chosen.name == "dc"
    table = markdown_table(result)
    assert "| `dc` | 500 | 1.11 | 500 | 1.11 | 79.50 | -0.50 | 1.0 | meets budget **chosen** |" in table
    png = plot_search(result, tmp_path / "pareto.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pareto_front_keeps_only_undominated_points():
    points = [(300, 77.0), (500, 79.5), (1000, 79.5), (1400, 79.2), (3000, 80.0)]
    assert pareto_front(points) == [(300, 77.0), (500, 79.5), (3000, 80.0)]


def test_budget_mode_end_to_end_on_a_tiny_model(tmp_path, capsys):
    import keras
    from conftest import make_image_folder

    from tfcompress.cli import main
    from tfcompress.models import build_model

    data = make_image_folder(tmp_path / "data")
    keras.utils.set_random_seed(0)
    build_model("resnet8", num_classes=3, image_size=24, width=4).save(tmp_path / "in.keras")
    out = tmp_path / "small.tflite"
    args = [
        "compress",
        str(tmp_path / "in.keras"),
        "--data",
        str(data),
        "-o",
        str(out),
        "--candidates",
        "int8,pq",
        "--target-bytes",
        "20000",
        "--max-drop",
        "100",
        "--epochs",
        "1",
        "--latency-rounds",
        "1",
        "--work",
        str(tmp_path / "work"),
    ]  # fmt: skip  (one work folder: the second search reuses the probes)
    assert main(args) == 0
    report = json.loads((tmp_path / "small.budget.json").read_text())
    assert [c["name"] for c in report["candidates"]] == ["int8", "pq"]
    probes = {c["name"]: c["probe_bytes"] for c in report["candidates"]}
    assert probes["pq"] < probes["int8"] < 20_000  # so PQ is trained first, meets the budget, and the search stops
    assert report["chosen"] == "pq"
    assert [c["status"] for c in report["candidates"]] == ["not trained", "meets budget"]
    assert out.stat().st_size <= 20_000 and (tmp_path / "small.md").is_file()
    assert (tmp_path / "small.budget.png").is_file() and "**chosen**" in (tmp_path / "small.budget.md").read_text()
    capsys.readouterr()
    impossible = [*args[:5], str(tmp_path / "none.tflite"), *args[6:]]
    impossible[impossible.index("20000")] = "1000"
    assert main(impossible) == 2
    err = capsys.readouterr().err
    assert "no candidate met the budget (<= 1,000 bytes" in err and "closest: pq (too big" in err
    assert not (tmp_path / "none.tflite").exists()


@pytest.mark.parametrize("value", ["0", "-5", "x"])
def test_bad_budgets_are_usage_errors(value, capsys):
    from tfcompress.cli import main

    with pytest.raises(SystemExit):
        main(["compress", "in.keras", "-o", "o.tflite", "--target-bytes", value])
    assert "--target-bytes: expected an integer >= 1" in capsys.readouterr().err
