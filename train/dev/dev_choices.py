"""Choices made on the dev split rather than fixed: the learning rate, by short trials from the same start, and on
small data how long to train, by dev evaluations with keep-best and early stopping.

`train_choosing_on_dev(config)` is what `rerankforge train` runs: it plans the choices, runs the learning-rate
trials (each a short `train` into OUTPUT_DIR/lr-search/, its dev figure kept in trials.json so a rerun skips
finished trials), then the run itself with the chosen rate. What was chosen, among what, and on which dev
evidence goes into metrics.json (`chosen_on_dev`) and the model card."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from rerankforge.core.files import atomic_write_text

from ..publish.card import rates_text
from ..config import TrainConfig
from ..groups import labels_line

logger = logging.getLogger(__name__)


def _log(message: str) -> None:
    """Logged by the main process only (this runs before and between the runs' accelerate states)."""
    if int(os.environ.get("RANK", "0")) == 0:
        logger.info(message)

SEARCH_DIR = "lr-search"
SMALL_DATA_FACTORS = (0.5, 1.0, 2.0)  # around the recipe's rate: halving and doubling span what usually matters
SMALL_DATA_EVALUATIONS = 10  # dev evaluations over a small-data run
SMALL_DATA_PATIENCE = 3


@dataclass
class DevChoices:
    """What the run decides on dev, and why (for the log, metrics.json and the card)."""
    train_queries: int
    run_steps: int
    learning_rates: list[float] = field(default_factory=list)  # candidates; empty: the configured rate is kept
    search_steps: int = 0
    small_data: bool = False
    notes: list[str] = field(default_factory=list)


def train_choosing_on_dev(config: TrainConfig) -> dict:
    """Train as configured, with the learning rate (and on small data the number of updates) chosen on dev."""
    from ..loop import train

    config, plan = plan_dev_choices(config)
    for note in plan.notes:
        _log(note)
    chosen = None
    if plan.learning_rates:
        config, chosen = _search_learning_rate(config, plan)
    metrics = train(config, chosen_on_dev=_record(plan, chosen, config))
    shutil.rmtree(Path(config.output_dir) / SEARCH_DIR, ignore_errors=True)
    return metrics


def plan_dev_choices(config: TrainConfig) -> tuple[TrainConfig, DevChoices]:
    """The config the run will use and what it will choose on dev. Checks the input as the run does (nothing
    starts on a bad one) and counts the training queries and the updates the run will have."""
    from ..loop import check_inputs

    inputs = check_inputs(config)
    dev_ids, groups = inputs.dev_ids, inputs.groups
    queries = len({group.query_id for group in groups})
    steps = run_steps(config, len(groups))
    plan = DevChoices(train_queries=queries, run_steps=steps)
    if inputs.labels is not None:
        plan.notes.append(labels_line(inputs.labels))
    has_dev = bool(dev_ids)
    plan.small_data = has_dev and queries < config.small_data_queries
    if config.learning_rate_search is not None:
        if not has_dev:
            from rerankforge.core.errors import ConfigError

            raise ConfigError("learning_rate_search chooses on the dev split; expected dev_queries > 0, got none")
        plan.learning_rates = sorted(set(config.learning_rate_search))
    elif plan.small_data:
        plan.learning_rates = [config.learning_rate * f for f in SMALL_DATA_FACTORS]
    if len(plan.learning_rates) == 1:
        config = dataclasses.replace(config, learning_rate=plan.learning_rates[0])
        plan.learning_rates = []
    if plan.learning_rates:
        plan.search_steps = config.search_steps or max(1, steps // 3)
        trial = (f"{config.max_minutes / 3:g} minutes (at most {plan.search_steps} updates)" if config.max_minutes
                 else f"{plan.search_steps} updates")
        plan.notes.append(f"learning rate: chosen on dev among {rates_text(plan.learning_rates)} by trials of {trial} "
                          f"each, before the run")
    if plan.small_data:
        every = max(1, steps // SMALL_DATA_EVALUATIONS)
        changes = {}
        if config.max_minutes:  # how many updates the minutes hold is not known yet: evaluate by the clock
            changes.update(eval_steps=0, eval_minutes=config.eval_minutes or config.max_minutes / SMALL_DATA_EVALUATIONS)
        elif config.eval_steps == 0 or config.eval_steps > every:
            changes["eval_steps"] = every
        if config.early_stopping_patience is None:
            changes["early_stopping_patience"] = SMALL_DATA_PATIENCE
        config = dataclasses.replace(config, **changes)
        plan.notes.insert(0, (
            f"small data: {queries} training queries (< small_data_queries={config.small_data_queries}), so the "
            f"choices that matter are made on the {len(dev_ids)} dev queries: dev evaluation every "
            f"{_cadence(config, steps)}, "
            f"{'keeping the best' if config.keep_best else 'keeping the last (keep_best: false)'}, early stopping "
            f"after {config.early_stopping_patience} without gain (set small_data_queries: 0 to keep the "
            f"configured values)"))
    return config, plan


def _cadence(config: TrainConfig, steps: int) -> str:
    if config.eval_minutes:
        return f"{config.eval_minutes:g} minutes of the {config.max_minutes:g}-minute budget"
    return f"{config.eval_steps} of {steps} updates"


def run_steps(config: TrainConfig, groups: int) -> int:
    """Optimizer updates of the run: max_steps, else epochs x batches per process (as the loop counts them)."""
    if config.max_steps:
        return config.max_steps
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    batches = math.ceil(math.ceil(groups / config.batch_size) / processes)
    return max(1, math.ceil(config.num_epochs * math.ceil(batches / config.gradient_accumulation_steps)))


def _search_learning_rate(config: TrainConfig, plan: DevChoices) -> tuple[TrainConfig, dict]:
    """Train each candidate for `plan.search_steps` updates and keep the rate with the best dev nDCG@10 (ties:
    the smaller rate). Every process runs every trial; the main process, which holds the dev split, decides."""
    from ..loop import train

    folder = Path(config.output_dir) / SEARCH_DIR
    record = folder / "trials.json"
    done = json.loads(record.read_text()) if record.is_file() else []
    results = {}
    for lr in plan.learning_rates:
        earlier = next((t for t in done if t["learning_rate"] == lr and t["steps"] == plan.search_steps), None)
        if earlier is not None:
            results[lr] = earlier["dev_nDCG@10"]
            _log(f"learning rate {lr:g}: dev nDCG@10 {earlier['dev_nDCG@10']:.4f} (an earlier trial)")
            continue
        trial_dir = folder / f"lr-{lr:g}"
        shutil.rmtree(trial_dir, ignore_errors=True)  # an interrupted trial starts over
        metrics = train(_trial_config(config, lr, plan.search_steps, trial_dir))
        if metrics:  # the main process
            results[lr] = metrics["dev_reranked"]["nDCG@10"]
            done.append({"learning_rate": lr, "steps": plan.search_steps, "dev_nDCG@10": results[lr]})
            atomic_write_text(record, json.dumps(done, indent=2) + "\n")
            shutil.rmtree(trial_dir, ignore_errors=True)
            _log(f"learning rate {lr:g}: dev nDCG@10 {results[lr]:.4f} after {plan.search_steps} updates")
    best = min(results, key=lambda lr: (-results[lr], lr)) if results else None
    best = _from_main_process(best)
    _log(f"learning rate chosen on dev: {best:g} (candidates {rates_text(plan.learning_rates)})")
    chosen = {"learning_rate": best, "dev_nDCG@10": {f"{lr:g}": round(v, 4) for lr, v in results.items()}}
    return _at_rate(config, best), chosen


def _trial_config(config: TrainConfig, lr: float, steps: int, folder: Path) -> TrainConfig:
    """A short run at `lr`: same data, model and seed; evaluated once on dev at its end; nothing published."""
    return dataclasses.replace(
        _at_rate(config, lr), max_steps=steps, max_minutes=config.max_minutes and config.max_minutes / 3,
        eval_steps=0, eval_minutes=None, save_steps=0,
        keep_best=False, early_stopping_patience=None, fit_combination=False, calibrate=False, push_to_hub=False,
        report_to="none", learning_rate_search=None, output_dir=str(folder))


def _at_rate(config: TrainConfig, lr: float) -> TrainConfig:
    """`config` at learning rate `lr`, the scoring head's own rate (where set) scaled with it."""
    head = config.head_learning_rate and config.head_learning_rate * lr / config.learning_rate
    return dataclasses.replace(config, learning_rate=lr, head_learning_rate=head)


def _from_main_process(value):
    """`value` as the main process has it, on every process (only the main process scores dev)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _record(plan: DevChoices, chosen: dict | None, config: TrainConfig) -> dict:
    record = {"train_queries": plan.train_queries, "small_data": plan.small_data}
    if chosen is not None:
        record["learning_rate"] = {**chosen, "candidates": plan.learning_rates, "trial_steps": plan.search_steps}
    if plan.small_data:
        record["updates"] = {"eval_steps": config.eval_steps, "keep_best": config.keep_best,
                             "early_stopping_patience": config.early_stopping_patience, "max_steps": plan.run_steps}
    return record
