"""Pruning schedules: the target sparsity at each training step, and when masks are updated.

Two schedules, with tfmot's arguments (``begin_step``, ``end_step``, ``frequency``):

- :class:`ConstantSparsity`: ``s_t = s`` from ``begin_step`` on.
- :class:`PolynomialDecay` (Zhu & Gupta 2017, "To prune, or not to prune"):
  ``s_t = s_f + (s_i - s_f) * (1 - (t - t_0) / (t_end - t_0)) ** power`` for
  ``t_0 <= t <= t_end``, ``s_f`` after ``t_end``.

Masks change only on update steps: ``t_0 <= t <= t_end`` and ``(t - t_0) % frequency == 0``
(``t_end`` itself is always an update step, so the final target is reached exactly there).
Unlike tfmot, a run too short to reach the target is reported (:meth:`PruningSchedule.check_run`)
instead of silently staying at a lower sparsity.
"""

from __future__ import annotations

import warnings

from tfcompress.errors import TfcompressError


class ScheduleWarning(UserWarning):
    """A training run that ends before the schedule reaches its target sparsity."""


def check_sparsity(value: float, name: str = "sparsity") -> float:
    """Return ``value`` as a float after checking ``0 <= value < 1``.

    Raises:
        TfcompressError: outside ``[0, 1)`` (a sparsity of 1 would remove every weight).
    """
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise TfcompressError(f"{name} must be in [0, 1), got {value}")
    return value


class PruningSchedule:
    """Base class: ``target(step)`` (the sparsity in force) and ``is_update_step(step)``."""

    def __init__(self, begin_step: int = 0, end_step: int = -1, frequency: int = 100):
        if begin_step < 0:
            raise TfcompressError(f"begin_step must be >= 0, got {begin_step}")
        if end_step != -1 and end_step < begin_step:
            raise TfcompressError(f"end_step ({end_step}) must be >= begin_step ({begin_step}) or -1 (no end)")
        if frequency < 1:
            raise TfcompressError(f"frequency must be >= 1, got {frequency}")
        self.begin_step = int(begin_step)
        self.end_step = int(end_step)
        self.frequency = int(frequency)

    @property
    def final_sparsity(self) -> float:
        raise NotImplementedError

    def _sparsity(self, step: int) -> float:
        raise NotImplementedError

    def is_update_step(self, step: int) -> bool:
        """Whether masks are recomputed at ``step``."""
        if step < self.begin_step or (self.end_step != -1 and step > self.end_step):
            return False
        return step == self.end_step or (step - self.begin_step) % self.frequency == 0

    def last_update_step(self, step: int) -> int | None:
        """The latest update step ``<= step`` (``None`` before ``begin_step``)."""
        if step < self.begin_step:
            return None
        if self.end_step != -1 and step >= self.end_step:
            return self.end_step
        return self.begin_step + (step - self.begin_step) // self.frequency * self.frequency

    def target(self, step: int) -> float:
        """The sparsity the masks hold at ``step``: the schedule at the last update step."""
        last = self.last_update_step(step)
        return 0.0 if last is None else self._sparsity(last)

    def check_run(self, total_steps: int) -> float:
        """The sparsity a run of ``total_steps`` steps (0 .. total_steps-1) ends at; warns if short of the target."""
        reached = self.target(max(total_steps - 1, 0))
        if reached < self.final_sparsity - 1e-6:
            warnings.warn(
                f"the run has {total_steps} steps but the schedule reaches {self.final_sparsity:.0%} sparsity "
                f"only at step {self.end_step if self.end_step != -1 else self.begin_step} "
                f"(begin_step={self.begin_step}, end_step={self.end_step}, frequency={self.frequency}); "
                f"it will end at {reached:.1%}. Lower end_step/frequency or train longer.",
                ScheduleWarning,
                stacklevel=2,
            )
        return reached

    def get_config(self) -> dict:
        return {"begin_step": self.begin_step, "end_step": self.end_step, "frequency": self.frequency}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class ConstantSparsity(PruningSchedule):
    """``s_t = target_sparsity`` on every update step from ``begin_step`` (to ``end_step``, -1: forever).

    Example:
        >>> ConstantSparsity(0.5, begin_step=10, frequency=5).target(12)
        0.5
    """

    def __init__(self, target_sparsity: float, begin_step: int = 0, end_step: int = -1, frequency: int = 100):
        super().__init__(begin_step, end_step, frequency)
        self.target_sparsity = check_sparsity(target_sparsity, "target_sparsity")

    @property
    def final_sparsity(self) -> float:
        return self.target_sparsity

    def _sparsity(self, step: int) -> float:
        return self.target_sparsity

    def check_run(self, total_steps: int) -> float:
        if total_steps <= self.begin_step:
            return super().check_run(total_steps)
        return self.target_sparsity

    def get_config(self) -> dict:
        return {"target_sparsity": self.target_sparsity, **super().get_config()}


class PolynomialDecay(PruningSchedule):
    """Gradual pruning (Zhu & Gupta 2017): sparsity grows from ``initial`` to ``final`` over ``[begin, end]``.

    ``s_t = s_f + (s_i - s_f) * (1 - (t - t_0) / (t_end - t_0)) ** power``

    Example:
        >>> schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=100, frequency=10)
        >>> schedule.target(100), round(schedule.target(50), 3)
        (0.8, 0.7)
    """

    def __init__(
        self,
        initial_sparsity: float,
        final_sparsity: float,
        begin_step: int = 0,
        end_step: int = 1000,
        power: float = 3.0,
        frequency: int = 100,
    ):
        if end_step == -1:
            raise TfcompressError("PolynomialDecay needs an end_step (the step where final_sparsity is reached)")
        super().__init__(begin_step, end_step, frequency)
        self.initial_sparsity = check_sparsity(initial_sparsity, "initial_sparsity")
        self._final = check_sparsity(final_sparsity, "final_sparsity")
        if self._final < self.initial_sparsity:
            raise TfcompressError(
                f"final_sparsity ({self._final}) must be >= initial_sparsity ({self.initial_sparsity})"
            )
        self.power = float(power)

    @property
    def final_sparsity(self) -> float:
        return self._final

    def _sparsity(self, step: int) -> float:
        span = self.end_step - self.begin_step
        if span == 0:
            return self._final
        progress = min(max((step - self.begin_step) / span, 0.0), 1.0)
        return self._final + (self.initial_sparsity - self._final) * (1.0 - progress) ** self.power

    def get_config(self) -> dict:
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self._final,
            "power": self.power,
            **super().get_config(),
        }
