"""The processes one command runs as: one, or several started by a launcher (`accelerate launch`, torchrun), which
share its heavy loops -- corpus encoding and pair scoring -- and gather the results.

    accelerate launch --config_file configs/accelerate/cpu_2proc.yaml -m rerankforge mine --data scifact ...
    accelerate launch --num_processes 4 -m rerankforge eval ...          # 4 GPUs: one process each

Commands that all the processes run whole (`add_command(..., shares_work=True)`: mine, retrieve, index, eval,
score-teacher, calibrate) run inside `sharing()`; training has accelerate's own. A loop worth sharing takes `share(items)` (every `count`-th item from the
process's own rank: lists sorted by cost are split evenly) and `gather`s the parts back into the items' order, so
each process holds the same full result and the code after it reads as if one process ran. Only the first process
(`is_main`) writes outputs and speaks; the others are quiet (console.py) and write only their own shards of a
shared cache (embeddings.py). Without a launcher everything is one process and nothing here touches
torch.distributed.

The process group is accelerate's `PartialState` (gloo on CPUs, NCCL on GPUs; each process on its own GPU), with a
long timeout: a process that finished its share early waits for the slowest at the gather."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator, Sequence, TypeVar

from .errors import OperationError

T = TypeVar("T")

WAIT = timedelta(hours=12)
"""How long a process waits for the others at a gather or barrier (torch's default, 30 min, is shorter than one
process's share of encoding a large corpus on a CPU)."""


@dataclass(frozen=True)
class Processes:
    rank: int
    """This process's place among them (0: the main process)."""
    count: int
    """How many processes run the command."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, items: Sequence[T]) -> list[T]:
        """This process's part of `items`: every `count`-th one from `rank` on."""
        return list(items[self.rank::self.count])

    def gather(self, part: list[T]) -> list[T]:
        """Every process's `share`, back in the order of the items they were shared from (on every process)."""
        if self.count == 1:
            return list(part)
        parts = self._all(part)
        merged: list[T] = []
        for index in range(max(map(len, parts), default=0)):
            merged.extend(p[index] for p in parts if index < len(p))
        return merged

    def gather_dict(self, part: dict, keys: Sequence) -> dict:
        """Every process's dict, merged, with `keys`' order (the keys that were shared)."""
        if self.count == 1:
            return dict(part)
        merged = {}
        for other in self._all(part):
            merged.update(other)
        return {key: merged[key] for key in keys if key in merged}

    def barrier(self) -> None:
        """Wait until every process reaches this line."""
        if self.count > 1:
            import torch.distributed as dist

            dist.barrier()

    def _all(self, value) -> list:
        import torch.distributed as dist

        values = [None] * self.count
        dist.all_gather_object(values, value)
        return values


def launched_rank() -> int:
    """This process's rank as the launcher set it (0 when none did), read without starting the process group."""
    rank = os.environ.get("RANK", "0")
    return int(rank) if rank.isdigit() else 0


def launched_count() -> int:
    """How many processes the launcher started (1 when none did)."""
    world = os.environ.get("WORLD_SIZE", "1")
    return int(world) if world.isdigit() and int(world) >= 1 else 1


ONE = Processes(0, 1)
_team: Processes = ONE


def processes() -> Processes:
    """The processes sharing the work of this command: every launched one inside `sharing()`, else this one alone
    (training's first process building its dev set, say, while the others train: nothing waits for them)."""
    return _team


@contextlib.contextmanager
def sharing() -> Iterator[Processes]:
    """Within the block, `processes()` is every process the launcher started: a command all of them run whole,
    start to end, shares its loops. The first entry under a launcher joins the process group (accelerate's
    PartialState, which also puts each process on its own GPU)."""
    global _team
    if launched_count() == 1:
        yield ONE
        return
    import torch
    from accelerate import PartialState

    # CPU processes (gloo) where the launcher asked for them or there is no GPU; else one GPU each (NCCL)
    cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") or not torch.cuda.is_available()
    state = PartialState(cpu=cpu, timeout=WAIT)
    if state.num_processes != launched_count():
        raise OperationError(f"the launcher started {launched_count()} processes (WORLD_SIZE) but accelerate joined "
                             f"{state.num_processes}; expected `accelerate launch` or torchrun to set RANK, "
                             f"WORLD_SIZE, MASTER_ADDR and MASTER_PORT for every process")
    before, _team = _team, Processes(state.process_index, state.num_processes)
    try:
        yield _team
    finally:
        _team = before
