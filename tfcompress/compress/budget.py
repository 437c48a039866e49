"""Budget mode: the smallest (or fastest) recipe whose file meets a size, speed and accuracy budget.

The search has two phases, so that only candidates that can meet the budget are trained:

1. **Probe** every candidate (a recipe and its settings) in order of expected cost: build its
   structure without any finetuning (slimming, pruning, factorization, sharing and PQ fix
   the file's size and the network's shape before training; training only moves values),
   convert it, and measure the file's bytes and its batch-1 latency against the input model
   in the same interleaved rounds. A candidate over the byte budget or under the speed-up
   budget is out: training cannot fix it.
2. **Train** the remaining candidates in order of the objective (bytes when a byte budget is
   given or no speed budget is, else latency), each with its full recipe (finetunes distilled
   from the input model), and score it on the validation split. The first that stays within
   ``max_drop`` points of the input model's validation top-1, with its trained file still
   within the size and speed budget, is the answer: every candidate after it is larger (or
   slower), so the search stops.

When nothing meets the budget, the search says so and names the candidate that came closest
(the smallest accuracy drop among those within size and speed; else the nearest in bytes or
speed). NNCF and Intel Neural Compressor tune to an accuracy criterion within one method
family; this search goes across methods and their compositions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

#: The default candidates, cheapest first: (recipe, settings). No training for int8; one
#: training stage next; two stages last.
DEFAULT_CANDIDATES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("int8", ()),
    ("slim+int8", ("slim.ratio=0.3",)),
    ("slim+int8", ()),
    ("pruned+int8", ()),
    ("lowrank+int8", ()),
    ("pq", ()),
    ("dc", ()),
    ("pq", ("pq.block_size=large",)),
    ("slim+pq", ()),
    ("slim+dc", ()),
    ("slim+dc", ("share.conv_bits=4",)),
    ("slim+pq", ("pq.block_size=large",)),
)


@dataclass
class Budget:
    """The limits: bytes of the file, speed-up over the input at 1 thread, top-1 drop in points (val)."""

    target_bytes: int | None = None
    target_speedup: float | None = None
    max_drop: float = 1.0

    @property
    def objective(self) -> str:
        """``"bytes"`` (smallest file) unless only a speed-up is asked for (``"latency"``)."""
        return "latency" if self.target_speedup is not None and self.target_bytes is None else "bytes"

    def describe(self) -> str:
        parts = []
        if self.target_bytes is not None:
            parts.append(f"<= {self.target_bytes:,} bytes")
        if self.target_speedup is not None:
            parts.append(f">= {self.target_speedup:g}x faster at 1 thread")
        parts.append(f"<= {self.max_drop:g} points of val top-1 lost")
        return ", ".join(parts)


@dataclass
class Candidate:
    """One candidate and what the search learnt of it.

    ``status``: ``not probed``, ``too big``, ``too slow``, ``failed`` (the probe or training
    raised a user error: ``note`` says which), ``not trained`` (the search stopped before it),
    ``too inaccurate``, ``meets budget``.
    """

    name: str
    recipe: str
    settings: tuple[str, ...] = ()
    probe_bytes: int | None = None
    probe_latency_ms: float | None = None
    bytes: int | None = None
    latency_ms: float | None = None
    val_top1: float | None = None
    drop: float | None = None
    minutes: float | None = None
    status: str = "not probed"
    note: str = ""

    def to_dict(self) -> dict:
        data = asdict(self)
        data["settings"] = list(self.settings)
        return data


@dataclass
class Measured:
    """What a probe or a training reports: bytes, latency at 1 thread (ms), val top-1 (None for a probe)."""

    bytes: int
    latency_ms: float
    val_top1: float | None = None
    minutes: float = 0.0


@dataclass
class SearchResult:
    """The candidates in the order tried, the chosen one (or ``None``), and the input's figures."""

    budget: Budget
    candidates: list[Candidate]
    baseline: Measured
    chosen: Candidate | None = None
    closest: Candidate | None = None
    log: list[str] = field(default_factory=list)

    def speedup(self, candidate: Candidate) -> float | None:
        latency = candidate.latency_ms if candidate.latency_ms is not None else candidate.probe_latency_ms
        return None if latency is None else self.baseline.latency_ms / latency

    def verdict(self) -> str:
        """One line: what was chosen, or that nothing met the budget and what came closest."""
        if self.chosen is not None:
            c = self.chosen
            return (
                f"chosen: {c.name}: {c.bytes:,} bytes ({self.baseline.bytes / c.bytes:.1f}x smaller), "
                f"{self.speedup(c):.2f}x faster at 1 thread, val top-1 {100 * c.val_top1:.2f}% "
                f"({-c.drop:+.2f} points); budget {self.budget.describe()}"
            )
        closest = f"; closest: {self.closest.name} ({self.closest.status}: {self.closest.note})" if self.closest else ""
        return f"no candidate met the budget ({self.budget.describe()}){closest}"


def candidate_name(recipe: str, settings: Sequence[str]) -> str:
    """``recipe`` or ``recipe[setting,...]``."""
    return recipe + (f"[{','.join(settings)}]" if settings else "")


def _fits_structure(candidate: Candidate, budget: Budget, baseline: Measured, bytes_: int, latency: float) -> str:
    """``""`` when a file of ``bytes_`` and ``latency`` is within the size and speed budget, else the status."""
    if budget.target_bytes is not None and bytes_ > budget.target_bytes:
        candidate.note = f"{bytes_:,} bytes > {budget.target_bytes:,}"
        return "too big"
    if budget.target_speedup is not None and baseline.latency_ms / latency < budget.target_speedup:
        candidate.note = f"{baseline.latency_ms / latency:.2f}x faster < {budget.target_speedup:g}x"
        return "too slow"
    return ""


def _closest(candidates: list[Candidate], budget: Budget, baseline: Measured) -> Candidate | None:
    trained = [c for c in candidates if c.status == "too inaccurate"]
    if trained:
        return min(trained, key=lambda c: c.drop)
    probed = [c for c in candidates if c.status in ("too big", "too slow")]
    if not probed:
        return None
    if budget.objective == "bytes" and budget.target_bytes is not None:
        return min(probed, key=lambda c: c.probe_bytes)
    return min(probed, key=lambda c: c.probe_latency_ms)


def attempt(step, candidate: Candidate, label: str, error_types: tuple, say: Callable[[str], None]) -> Measured | None:
    """``step(recipe, settings)``; on one of ``error_types`` the candidate is marked ``failed`` and None returned."""
    try:
        return step(candidate.recipe, candidate.settings)
    except error_types as error:
        candidate.status, candidate.note = "failed", str(error)
        say(f"{label} {candidate.name}: failed: {error}")
        return None


def search(
    candidates: Sequence[tuple[str, Sequence[str]]],
    budget: Budget,
    baseline: Measured,
    probe: Callable[[str, tuple[str, ...]], Measured],
    train: Callable[[str, tuple[str, ...]], Measured],
    explore: bool = False,
    error_types: tuple[type[BaseException], ...] = (),
    log: Callable[[str], None] = print,
) -> SearchResult:
    """Find the best candidate within ``budget`` (see the module docstring).

    Args:
        candidates: ``(recipe, settings)`` pairs in order of expected cost.
        budget: the limits.
        baseline: the input model's bytes, latency and val top-1.
        probe: measures a candidate's structure without training (``val_top1`` unused).
        train: trains a candidate with its full recipe and measures it on val.
        explore: train every candidate within size and speed (a full Pareto front) instead of
            stopping at the first that meets the budget; the chosen one is still the best.
        error_types: exceptions of a candidate that mark it ``failed`` instead of ending the search.
        log: where progress lines go.
    """
    result = SearchResult(budget, [Candidate(candidate_name(r, s), r, tuple(s)) for r, s in candidates], baseline)

    def say(line: str) -> None:
        result.log.append(line)
        log(line)

    say(f"budget: {budget.describe()}; input: {baseline.bytes:,} bytes, {baseline.latency_ms:.2f} ms, "
        f"val top-1 {100 * baseline.val_top1:.2f}%")  # fmt: skip
    feasible = []
    for number, candidate in enumerate(result.candidates, 1):
        measured = attempt(probe, candidate, "probe", error_types, say)
        if measured is None:
            continue
        candidate.probe_bytes, candidate.probe_latency_ms = measured.bytes, measured.latency_ms
        candidate.status = _fits_structure(candidate, budget, baseline, measured.bytes, measured.latency_ms)
        verdict = f": {candidate.status}" if candidate.status else ""
        speed = baseline.latency_ms / measured.latency_ms
        label = f"probe {number}/{len(result.candidates)} {candidate.name}"
        say(f"{label}: {measured.bytes:,} bytes, {speed:.2f}x faster{verdict}")
        if not candidate.status:
            candidate.status = "not trained"
            feasible.append(candidate)
    key = (lambda c: c.probe_bytes) if budget.objective == "bytes" else (lambda c: c.probe_latency_ms)
    for candidate in sorted(feasible, key=key):
        if result.chosen is not None and not explore:
            break
        say(f"training {candidate.name} ...")
        measured = attempt(train, candidate, "training", error_types, say)
        if measured is None:
            continue
        candidate.bytes, candidate.latency_ms, candidate.minutes = measured.bytes, measured.latency_ms, measured.minutes
        candidate.val_top1 = measured.val_top1
        candidate.drop = 100 * (baseline.val_top1 - measured.val_top1)
        candidate.status = _fits_structure(candidate, budget, baseline, measured.bytes, measured.latency_ms)
        if not candidate.status:
            if candidate.drop <= budget.max_drop:
                candidate.status = "meets budget"
                if result.chosen is None or key_of(candidate, budget) < key_of(result.chosen, budget):
                    result.chosen = candidate
            else:
                candidate.status = "too inaccurate"
                candidate.note = f"{candidate.drop:.2f} points lost > {budget.max_drop:g}"
        say(f"trained {candidate.name}: val top-1 {100 * measured.val_top1:.2f}% ({-candidate.drop:+.2f} points), "
            f"{measured.bytes:,} bytes: {candidate.status}")  # fmt: skip
    if result.chosen is None:
        result.closest = _closest(result.candidates, budget, baseline)
    say(result.verdict())
    return result


def key_of(candidate: Candidate, budget: Budget) -> float:
    """The objective's value of a trained candidate (bytes, or latency in ms)."""
    return candidate.bytes if budget.objective == "bytes" else candidate.latency_ms


def markdown_table(result: SearchResult) -> str:
    """The candidates in the order probed, with what was measured and their status."""
    base = result.baseline
    lines = [
        f"Budget: {result.budget.describe()}. Input: {base.bytes:,} bytes, {base.latency_ms:.2f} ms at 1 thread, "
        f"val top-1 {100 * base.val_top1:.2f}%.",
        "",
        "| candidate | bytes (probe) | speed-up (probe) | bytes | speed-up | val top-1 | change (points) "
        "| train min | status |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]

    def number(value, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    for c in result.candidates:
        probe_speed = None if c.probe_latency_ms is None else base.latency_ms / c.probe_latency_ms
        speed = None if c.latency_ms is None else base.latency_ms / c.latency_ms
        top1 = None if c.val_top1 is None else 100 * c.val_top1
        change = None if c.drop is None else -c.drop
        status = c.status + (f" ({c.note})" if c.note else "") + (" **chosen**" if c is result.chosen else "")
        lines.append(
            f"| `{c.name}` | {number(c.probe_bytes, ',')} | {number(probe_speed, '.2f')} | {number(c.bytes, ',')} "
            f"| {number(speed, '.2f')} | {number(top1, '.2f')} | {number(change, '+.2f')} "
            f"| {number(c.minutes, '.1f')} | {status} |"
        )
    return "\n".join(lines) + "\n\n" + result.verdict() + "\n"
