"""How long training runs and how its learning rate moves: a fixed number of updates, or a time budget.

`Schedule` is the learning-rate factor of each update (warmup, then linear or cosine decay, or constant: the
formulas of transformers' get_scheduler). Its plan -- how many updates the run has -- may change while it runs,
and it lives in the scheduler's state_dict, so a resumed run goes on with the plan it had.

`TimeBudget` is `max_minutes`: the updates' wall time (dev evaluations and checkpoints not counted), summed
across resumptions in the training state. After every update it re-plans the run as the updates done plus as
many as the time left holds at the speed measured so far, so warmup and decay span the budget whatever the
machine; training stops after the update that reaches the budget, or at the planned end, whichever is first:
within one update of the budget. The configured updates (max_steps, else num_epochs) stay the upper bound."""

from __future__ import annotations

import math


class Schedule:
    """LambdaLR factor of scheduler tick `tick`. The prepared scheduler ticks `ticks` times per update (one per
    process: accelerate's AcceleratedScheduler), so plans are kept in ticks."""

    def __init__(self, kind: str, updates: int, warmup_ratio: float, ticks: int = 1):
        self.kind, self.warmup_ratio, self.ticks = kind, warmup_ratio, ticks
        self.total = self.warmup = 0
        self.plan(updates)

    def plan(self, updates: int) -> None:
        self.total = updates * self.ticks
        self.warmup = int(self.warmup_ratio * updates) * self.ticks

    @property
    def updates(self) -> int:
        return self.total // self.ticks

    def __call__(self, tick: int) -> float:
        if tick < self.warmup:
            return tick / max(1, self.warmup)
        if self.kind == "constant":
            return 1.0
        progress = (tick - self.warmup) / max(1, self.total - self.warmup)
        if self.kind == "cosine":
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
        return max(0.0, 1.0 - progress)


class TimeBudget:
    """`max_minutes` of updates, `cap` updates at most."""

    def __init__(self, minutes: float, cap: int):
        self.seconds, self.cap = minutes * 60.0, cap

    def exhausted(self, spent: float) -> bool:
        return spent >= self.seconds

    def planned_updates(self, done: int, spent: float) -> int:
        """The run's length at the speed so far: the updates done plus those the time left holds."""
        if done == 0 or spent <= 0:
            return self.cap
        per_update = spent / done
        return max(done, min(self.cap, done + int((self.seconds - spent) / per_update)))
