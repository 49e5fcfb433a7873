"""The training loop, on accelerate: one process on a laptop CPU to many GPUs, same code.

Reads top to bottom: check the config, load data (distilling: with the teacher's scores) and model,
prepare, resume if a checkpoint exists, then step -- forward over each group, loss, backward, clip,
update -- with periodic logging, dev evaluation (keep-best, early stopping) and atomic checkpoints;
finally (finish.py) save the reranker, its config, metrics and model card."""

from __future__ import annotations

import gc
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from accelerate.logging import get_logger

from rerankforge.core.errors import ConfigError
from rerankforge.core.hardware import resolve_precision, use_cpu_threads
from rerankforge.data_prep.training_files import read_training_rows

from .checkpoints import (BEST, TrainState, latest_checkpoint, prune_checkpoints, read_checkpoint, resume,
                          save_best, save_checkpoint)
from .config import TrainConfig, check_model_fields, to_dict
from .finish import finish_run
from .groups import (Collator, LengthGroupedBatches, TokenizedGroups, build_groups, check_enough_queries,
                     drop_labelled, split_dev)
from .losses import compute_loss
from .schedule import Schedule, TimeBudget
from .teachers.teacher import attach_teacher_scores, check_teacher, resolve_teacher
from .tracking import wandb_settings

logger = get_logger(__name__)  # logs from the main process only; the command line decides where it goes (-q, -v)


def train(config: TrainConfig, chosen_on_dev: dict | None = None) -> dict:
    """Train, save the reranker into `config.output_dir`, and return the final metrics (`rerankforge train` runs
    it through train/dev_choices.py, which may choose the learning rate on dev first: `chosen_on_dev` says what and
    why, for metrics.json and the card)."""
    run = prepare(config)  # 1-3: the input checked, the model, data, optimizer and schedule, resumed if possible
    accelerator, main, state, dev, reranker = run.accelerator, run.main, run.state, run.dev, run.reranker
    model, optimizer, scheduler, loader, sampler = run.model, run.optimizer, run.scheduler, run.loader, run.sampler
    schedule, budget, total_steps, output_dir = run.schedule, run.budget, run.total_steps, run.output_dir

    # 4. The loop.
    progress = _progress(total_steps, state.step, disable=not main)
    window = {"pairs": 0, "tokens": 0, "started": time.perf_counter()}  # the loss window is the state's
    model.train()
    stop = state.step >= min(total_steps, schedule.updates) or (budget is not None and budget.exhausted(state.seconds))
    dev_scores = None  # of the latest dev evaluation
    clock = time.perf_counter()  # the updates' time, for the budget: state.seconds grows by it
    period = 60.0 * config.eval_minutes if config.eval_minutes else None  # dev evaluations by the clock
    next_eval = period * (math.floor(state.seconds / period) + 1) if period else math.inf
    # the step of the latest dev evaluation: a run resumed from a checkpoint saved after it has it in its history
    # (evaluating again would add the same row twice)
    evaluated = max((h["step"] for h in state.history if "dev/nDCG@10" in h), default=-1)
    while not stop:
        sampler.epoch = state.epoch
        batches = accelerator.skip_first_batches(loader, state.batch_in_epoch) if state.batch_in_epoch else loader
        for batch in batches:
            loss = _update(accelerator, model, optimizer, scheduler, batch, config)
            _count(state, window, loss, batch)
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            progress.update(1)
            state.seconds += time.perf_counter() - clock
            if budget is not None:  # re-plan at the speed so far (the schedule's plan is saved with the scheduler)
                state.seconds = _agreed(accelerator, state.seconds)
                schedule.plan(budget.planned_updates(state.step, state.seconds))
                progress.total = schedule.updates

            if state.step % config.log_steps == 0 or state.step == total_steps:
                _log_window(accelerator, window, state, scheduler, progress)
            paused = time.perf_counter()  # evaluation and checkpoints don't count against throughput
            if (config.eval_steps and state.step % config.eval_steps == 0) or state.seconds >= next_eval:
                stop_now, dev_scores = _evaluate(accelerator, dev, reranker, state, config, output_dir)
                stop, evaluated = stop_now or stop, state.step
                if period:
                    next_eval = period * (math.floor(state.seconds / period) + 1)
            if config.save_steps and state.step % config.save_steps == 0:
                save_checkpoint(accelerator, output_dir, state)
            window["started"] += time.perf_counter() - paused
            clock = time.perf_counter()
            if state.step >= schedule.updates or stop or (budget is not None and budget.exhausted(state.seconds)):
                if budget is not None and config.save_steps and state.step % config.save_steps:
                    save_checkpoint(accelerator, output_dir, state)  # a rerun with more minutes goes on from here
                stop = True
                break
        else:
            state.epoch += 1
            state.batch_in_epoch = 0
    progress.close()

    # 5. Final evaluation, then the output folder (finish.py): best (or last) weights, what is fitted on dev, card.
    if evaluated != state.step:
        _, dev_scores = _evaluate(accelerator, dev, reranker, state, config, output_dir)
    accelerator.wait_for_everyone()
    metrics = {}
    if main:
        metrics = {**_final_metrics(state, config, run.updates_per_epoch, run.labels),
                   "stopped_by": _stopped_by(state, config, budget, schedule, total_steps),
                   "precision": run.precision.name,  # what `mixed_precision` resolved to on this machine
                   **({"chosen_on_dev": chosen_on_dev} if chosen_on_dev else {})}
        finish_run(config, state, accelerator.unwrap_model(model), run.tokenizer, dev, reranker, dev_scores, metrics)
    # Drop the prepared (DDP) model before end_training destroys the process group. Were its gradient reducer the
    # group's last holder, freeing it (under the GIL: PyTorch's Reducer binding) would join gloo's worker threads,
    # one of which may still be releasing the last collective's tensors and so waiting for the GIL: a process
    # that never exits (seen in ~1 of 10 two-process CPU runs, always on the rank with nothing left to do).
    model = optimizer = scheduler = loader = batches = reranker = None  # noqa: F841
    run.release()
    accelerator.free_memory()
    gc.collect()  # the wrapper sits in reference cycles; collect it now, while the group is still registered
    accelerator.end_training()
    return metrics


@dataclass
class PreparedRun:
    """What the loop works with, as `prepare` leaves it: accelerate-prepared model, optimizer, scheduler and
    loader; the training state (resumed or new); the dev split (main process only) and the schedule."""

    accelerator: object
    main: bool
    state: TrainState
    dev: object
    reranker: object  # scores the dev split with the model being trained
    model: object
    tokenizer: object
    optimizer: object
    scheduler: object
    loader: object
    sampler: LengthGroupedBatches
    schedule: Schedule
    budget: TimeBudget | None
    total_steps: int
    updates_per_epoch: int
    output_dir: Path
    precision: object
    labels: dict | None = None  # what extra_qrels changed in the training rows

    def release(self) -> None:
        """Drop the prepared (DDP) objects (see `train`'s end)."""
        self.model = self.optimizer = self.scheduler = self.loader = self.reranker = None


def prepare(config: TrainConfig) -> PreparedRun:
    """Steps 1-3 of a run: the input checked before a model loads, then model, data, optimizer and schedule on
    accelerate, resumed from the last complete checkpoint if there is one."""
    from accelerate.utils import set_seed
    from torch.optim.lr_scheduler import LambdaLR
    from torch.utils.data import DataLoader

    from rerankforge.reranker.packing import PairEncoder
    from rerankforge.reranker.scoring import Reranker

    from .dev.dev_eval import DevSet
    from .model import load_model

    # 1. Everything that can be wrong with the input is found before a model loads.
    model_folder, teacher_folder, dev_ids, groups, teacher_note, labels = check_inputs(config)
    output_dir = Path(config.output_dir)
    checkpoint = latest_checkpoint(output_dir)
    state = read_checkpoint(checkpoint) if checkpoint is not None else TrainState()

    accelerator, precision = _accelerator(config)
    main = accelerator.is_main_process
    set_seed(config.seed)
    dev = DevSet.build(config, dev_ids, show_progress=main) if dev_ids and main else None
    if teacher_folder is not None:  # the main process scores (or finds the cache), then the others read the cache
        if teacher_note:
            logger.warning(teacher_note)
        with accelerator.main_process_first():
            source = attach_teacher_scores(groups, config, teacher_folder, accelerator.device, precision.name,
                                           show_progress=main)
        logger.info(f"teacher {config.teacher}: scores of the {len(groups)} training groups {source}")

    # 2. Model, data, optimizer, schedule.
    model, tokenizer = load_model(config, model_folder)
    encoder = PairEncoder(tokenizer, config.max_length)
    dataset = TokenizedGroups(groups, encoder)
    sampler = LengthGroupedBatches(dataset.lengths, config.batch_size, config.seed, config.group_by_length)
    # Its own generator: starting an epoch's iterator must not draw from the global RNG, or a resumed
    # run's dropout would drift from an uninterrupted one.
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=Collator(encoder),
                        generator=torch.Generator().manual_seed(config.seed))
    optimizer = torch.optim.AdamW(_param_groups(model, config), lr=config.learning_rate)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    updates_per_epoch = math.ceil(len(loader) / config.gradient_accumulation_steps)
    total_steps = config.max_steps or math.ceil(config.num_epochs * updates_per_epoch)
    # With a time budget, total_steps is the most the run may take; the schedule is re-planned as it goes.
    budget = TimeBudget(config.max_minutes, total_steps) if config.max_minutes else None
    # The prepared scheduler steps once per process on each update (accelerate's AcceleratedScheduler, which
    # assumes batches grow with the processes; it does not step between accumulated batches): count in its
    # steps, so warmup and decay span the run on any number of processes.
    ticks = 1 if accelerator.split_batches else accelerator.num_processes
    schedule = Schedule(config.lr_scheduler, total_steps, config.warmup_ratio, ticks)
    scheduler = accelerator.prepare(LambdaLR(optimizer, schedule))
    logger.info(f"{len(groups)} training groups of {1 + config.num_negatives}; {accelerator.num_processes} "
                f"process(es) ({accelerator.distributed_type.value}), {len(loader)} batches of "
                f"{config.batch_size} groups per process per epoch; " +
                (f"{total_steps} optimizer steps" if budget is None else
                 f"{config.max_minutes:g} minutes of optimizer steps, {total_steps} at most"))

    # 3. Resume from the last complete checkpoint, if any (its training state was read in step 1).
    if checkpoint is not None:
        _resume(accelerator, checkpoint, output_dir, state, total_steps, schedule, budget)
    if config.report_to == "wandb":
        _init_wandb(accelerator, config)
    reranker = Reranker(accelerator.unwrap_model(model), tokenizer, config.max_length, config.eval_batch_size,
                        precision=precision.name)
    if dev is not None and state.step == 0:
        baseline = dev.first_stage()
        state.history.append({"step": 0, **{f"dev/first_stage_{k}": v for k, v in baseline.items()}})
        logger.info(f"dev ({len(dev.queries)} queries) first stage: {_fmt(baseline)}")

    return PreparedRun(accelerator, main, state, dev, reranker, model, tokenizer, optimizer, scheduler, loader,
                       sampler, schedule, budget, total_steps, updates_per_epoch, output_dir, precision, labels)


def _accelerator(config: TrainConfig):
    """accelerate's Accelerator for this machine (CPU ranks, the precision `mixed_precision` resolves to here),
    and that precision."""
    from accelerate import Accelerator, PartialState
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()  # an earlier run in this process (a notebook, a benchmark) may differ in precision
    cpu = _cpu_ranks()
    device = PartialState(cpu=cpu).device
    if config.mixed_precision == "fp16" and device.type == "cpu":  # accelerate would train in fp32, silently
        raise ConfigError("mixed_precision: fp16 trains on GPUs only (accelerate has no fp16 autocast on the CPU); "
                          "expected auto, no or bf16 here")
    precision = resolve_precision(config.mixed_precision, device)
    accelerator = Accelerator(cpu=cpu, gradient_accumulation_steps=config.gradient_accumulation_steps,
                              mixed_precision=precision.accelerate, log_with="wandb" if config.report_to == "wandb"
                              else None, project_dir=str(Path(config.output_dir)))
    logger.info(f"precision: {precision}")
    _use_the_cpu_cores(accelerator)
    return accelerator, precision


def _resume(accelerator, checkpoint: Path, output_dir: Path, state: TrainState, total_steps: int, schedule: Schedule,
            budget: TimeBudget | None) -> None:
    resume(accelerator, checkpoint, output_dir)
    if accelerator.is_main_process:  # a run killed while it removed older checkpoints left some of one behind
        prune_checkpoints(checkpoint)
    logger.info(f"resumed from {checkpoint} (step {state.step}/{total_steps})")
    if budget is not None:  # the budget may have changed since: plan the rest at the speed so far
        schedule.plan(budget.planned_updates(state.step, state.seconds))


class CheckedInputs(NamedTuple):
    """What `check_inputs` found: the model and teacher folders, the dev query ids, the training groups, a note on
    the teacher, and what `extra_qrels` changed in the training rows (None without it)."""

    model_folder: str
    teacher_folder: str | None
    dev_ids: list[str]
    groups: list
    teacher_note: str | None
    labels: dict | None


def check_inputs(config: TrainConfig) -> CheckedInputs:
    """Everything that can be wrong with the input, found before a model loads (`CheckedInputs`). The dev split is
    drawn from the file's rows as they are, so `extra_qrels` never changes which queries are dev."""
    from rerankforge.core.models import resolve_model

    model_folder = resolve_model(config.model)
    check_model_fields(config, model_folder)
    teacher_folder = resolve_teacher(config.teacher) if config.teacher else None
    if config.report_to == "wandb":
        _require_wandb()
    rows, dev_ids = split_dev(read_training_rows(config.train_file), config.dev_queries, config.seed,
                             config.dev_query_ids)
    labels = None
    if config.extra_qrels:
        rows, labels = drop_labelled(rows, config)
    check_enough_queries(rows, dev_ids, config)
    groups = build_groups(rows, config)
    teacher_note = check_teacher(config, teacher_folder, dev_ids) if teacher_folder else None
    return CheckedInputs(model_folder, teacher_folder, dev_ids, groups, teacher_note, labels)


def _use_the_cpu_cores(accelerator) -> None:
    """Training on the CPU, share the usable cores among the processes, whichever way the run was started
    (`accelerate launch` without `--cpu` sets OMP_NUM_THREADS=1, which would leave cores idle); see
    data_prep/hardware.py. RERANKFORGE_CPU_THREADS=N chooses the number per process."""
    if accelerator.device.type == "cpu":
        logger.info(f"using {use_cpu_threads(accelerator.num_processes)}")


def _cpu_ranks() -> bool:
    """A multi-process launch (`accelerate launch --multi_gpu` or configs/accelerate/cpu_2proc.yaml) on a
    machine without GPUs: make the processes gloo CPU ranks; otherwise accelerate sees one process each."""
    no_gpu = not torch.cuda.is_available() and not (hasattr(torch, "xpu") and torch.xpu.is_available())
    return no_gpu and int(os.environ.get("WORLD_SIZE", "1")) > 1


def _param_groups(model, config: TrainConfig) -> list[dict]:
    """AdamW groups: no weight decay on biases and norm weights (the usual transformer recipe); the
    scoring head at `head_learning_rate` when set."""
    from .model import scoring_head_names

    head = set(scoring_head_names(model)) if config.head_learning_rate else set()
    groups: dict[tuple[bool, bool], list] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            key = (name in head, param.ndim < 2 or "norm" in name.lower())
            groups.setdefault(key, []).append(param)
    return [{"params": params, "weight_decay": 0.0 if no_decay else config.weight_decay,
             "lr": config.head_learning_rate if is_head else config.learning_rate}
            for (is_head, no_decay), params in groups.items()]


def _evaluate(accelerator, dev, reranker, state: TrainState, config: TrainConfig,
              output_dir: Path) -> tuple[bool, dict | None]:
    """Dev evaluation on the main process; keeps the best weights; returns whether to stop early, and the
    dev scores (None where this process has no dev set)."""
    stop, scores = False, None
    if dev is not None:
        scores = dev.score(reranker)
        metrics = dev.evaluate(scores)
        logs = {f"dev/{k}": v for k, v in metrics.items()}
        accelerator.log(logs, step=state.step)
        state.history.append({"step": state.step, **logs})
        first_stage = _dev_first_stage(state).get("dev/first_stage_nDCG@10")
        # Until a checkpoint beats the first stage on dev, none is kept as the best and early stopping waits: the
        # dev split has not shown that any checkpoint helps, and choosing among them (on a small dev split,
        # choosing noise) would stop or rewind the run for nothing; the planned run's end is kept instead.
        waiting = state.best_ndcg is None and first_stage is not None and metrics["nDCG@10"] <= first_stage
        improved = not waiting and (state.best_ndcg is None or metrics["nDCG@10"] > state.best_ndcg)
        note = f"  (not above the first stage's {first_stage:.4f})" if waiting else "  (best)" if improved else ""
        logger.info(f"\nstep {state.step}: dev {_fmt(metrics)}{note}")
        if improved:
            state.best_ndcg, state.best_step, state.evals_without_gain = metrics["nDCG@10"], state.step, 0
            if config.keep_best:
                save_best(reranker.model, output_dir / BEST)
        elif not waiting:
            state.evals_without_gain += 1
            patience = config.early_stopping_patience
            stop = patience is not None and state.evals_without_gain >= patience
            if stop:
                logger.info(f"early stopping: no dev gain in {patience} evaluations")
    flag = torch.tensor([1 if stop else 0], device=accelerator.device)
    return bool(accelerator.reduce(flag, reduction="sum").item()), scores  # every process stops together


def _dev_first_stage(state: TrainState) -> dict:
    """The history row of the dev first stage's figures (written before the first update), or {} without dev."""
    return next((h for h in state.history if "dev/first_stage_nDCG@10" in h), {})


def _update(accelerator, model, optimizer, scheduler, batch: dict, config: TrainConfig):
    """One batch forward and backward; on the last of `gradient_accumulation_steps` batches, clipped and applied.
    Returns the batch's loss."""
    with accelerator.accumulate(model):
        logits = model(**batch["inputs"]).logits.view(-1, batch["group_size"])
        loss = compute_loss(config, logits, batch["mask"], batch.get("teacher"))
        accelerator.backward(loss)
        if accelerator.sync_gradients:
            accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return loss


def _count(state: TrainState, window: dict, loss, batch: dict) -> None:
    """The batch done, its loss in the state's window and its pairs and tokens in the throughput window."""
    state.batch_in_epoch += 1
    state.window_loss += loss.item()
    state.window_batches += 1
    window["pairs"] += batch["inputs"]["input_ids"].shape[0]
    window["tokens"] += int(batch["inputs"]["attention_mask"].sum())


def _log_window(accelerator, window: dict, state: TrainState, scheduler, progress) -> None:
    logs = _window_logs(window, state, scheduler, accelerator.num_processes)
    progress.set_postfix(loss=f"{logs['train/loss']:.4f}", lr=f"{logs['train/lr']:.2e}",
                         pairs_s=f"{logs['train/pairs_per_s']:.1f}")
    accelerator.log(logs, step=state.step)
    state.history.append({"step": state.step, **logs})


def _window_logs(window: dict, state: TrainState, scheduler, processes: int) -> dict:
    seconds = max(time.perf_counter() - window["started"], 1e-9)
    logs = {"train/loss": state.window_loss / max(state.window_batches, 1), "train/lr": scheduler.get_last_lr()[0],
            "train/pairs_per_s": window["pairs"] * processes / seconds,
            "train/tokens_per_s": window["tokens"] * processes / seconds}
    window.update(pairs=0, tokens=0, started=time.perf_counter())
    state.window_loss, state.window_batches = 0.0, 0
    return logs


def _final_metrics(state: TrainState, config: TrainConfig, updates_per_epoch: int,
                   labels: dict | None = None) -> dict:
    """The run's figures for metrics.json (with what `extra_qrels` changed in the training rows, where given)."""
    dev_rows = [h for h in state.history if "dev/nDCG@10" in h]
    first = _dev_first_stage(state)
    train_rows = [h for h in state.history if "train/pairs_per_s" in h]
    kept = state.best_step if config.keep_best and state.best_step is not None else state.step
    return {
        "steps": state.step,
        "epochs": round(state.step / updates_per_epoch, 3),
        "train_minutes": round(state.seconds / 60, 3),  # the updates' wall time (what max_minutes counts)
        "best_step": kept,
        "dev_queries": config.dev_queries,
        "dev_first_stage": {k.split("first_stage_")[1]: v for k, v in first.items() if "first_stage" in k},
        "dev_reranked": {k[4:]: v for k, v in next((h for h in dev_rows if h["step"] == kept), dev_rows[-1]).items()
                         if k.startswith("dev/")} if dev_rows else {},
        "train_pairs_per_s_median": _median([h["train/pairs_per_s"] for h in train_rows]),
        "history": state.history,
        **({"extra_qrels": labels} if labels is not None else {}),
    }


def _agreed(accelerator, seconds: float) -> float:
    """The slowest process's time, on every process: they must plan the same run and stop at the same update."""
    if accelerator.num_processes == 1:
        return seconds
    value = torch.tensor([seconds], dtype=torch.float64, device=accelerator.device)
    return float(accelerator.reduce(value, reduction="max").item())


def _stopped_by(state: TrainState, config: TrainConfig, budget, schedule, total_steps: int) -> str:
    """Why the run ended where it did, in words (metrics.json, the card, the demo's output)."""
    minutes = state.seconds / 60
    if budget is not None and state.step < total_steps and (budget.exhausted(state.seconds) or
                                                          state.step >= schedule.updates):
        return (f"max_minutes: {state.step} updates in {minutes:.1f} of {config.max_minutes:g} minutes "
                f"(at most {total_steps})")
    if state.step < total_steps:
        return f"early stopping: {state.step} of {total_steps} updates in {minutes:.1f} minutes"
    what = "max_steps" if config.max_steps else f"num_epochs {config.num_epochs:g}"
    return f"{what}: {state.step} updates in {minutes:.1f} minutes"


def _median(values: list[float]) -> float | None:
    import statistics

    return statistics.median(values) if values else None


def _fmt(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())


def _progress(total: int, done: int, disable: bool):
    from rerankforge.core.progress import progress_bar

    return progress_bar(total=total, initial=done, desc="training", unit="step", disable=disable, dynamic_ncols=True)


def _require_wandb() -> None:
    try:
        import wandb  # noqa: F401
    except ImportError:
        from rerankforge.core.errors import ConfigError

        raise ConfigError("report_to: wandb needs the wandb package: pip install 'rerankforge[wandb]'") from None


def _init_wandb(accelerator, config: TrainConfig) -> None:
    settings = wandb_settings(config)
    Path(settings["init_kwargs"]["dir"]).mkdir(parents=True, exist_ok=True)
    accelerator.init_trackers(settings["project"], config=to_dict(config),
                              init_kwargs={"wandb": settings["init_kwargs"]})
