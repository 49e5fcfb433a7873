"""The training configuration: one typed dataclass whose fields document themselves.

A YAML file supplies values; the command line overrides any field (`--max_steps 20`, `--lora true`,
`--lora_target_modules query value`). Everything is checked here, before any model loads: unknown
keys (with the nearest valid key suggested), wrong types, files that don't exist, LoRA target modules
the model doesn't have."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rerankforge.core.config_files import load_typed_config
from rerankforge.core.errors import ConfigError
from rerankforge.core.outputs import check_output_folder

from .losses import DISTILLATION_LOSSES, LOSS_NAMES


@dataclass
class TrainConfig:
    """Fine-tune a cross-encoder reranker on mined (query, positive, negatives) groups."""

    # --- data
    train_file: str = field(default="", metadata={
        "help": "Mined training data: a .jsonl or .parquet from `rerankforge mine` (n-tuple format: query, "
                "positive, negatives, and first-stage scores positive_score, negative_scores for distillation); or "
                "sentence-transformers' layouts -- mine_hard_negatives' n-tuple (query, positive, negative_1..n), "
                "triplet (query, positive, negative) or labeled-pair (query, document, label) -- as a .jsonl, "
                ".parquet or .csv file, a `datasets` save_to_disk folder, or hf:NAME[:CONFIG] (its train split). "
                "Rows without query ids are named by their query's text, and dev queries found in `data` by it."})
    data: str = field(default="scifact", metadata={
        "help": "The BEIR folder or dataset name the training file was mined from; its corpus and the held-out "
                "dev queries give the in-loop evaluation."})
    split: str = field(default="train", metadata={"help": "Qrels split of `data` that the training file covers."})
    extra_qrels: str | None = field(default=None, metadata={
        "help": "Labels file (BEIR qrels layout, e.g. what `rerankforge inspect` writes; a plain qrels .tsv works "
                "too) with labels of `data`'s queries and documents, the latest label of a pair winning: in every "
                "training row, negatives labelled relevant (> 0) for the row's query are removed, and rows whose "
                "positive is labelled 0 are dropped (both counted in the log and metrics.json). The dev split's "
                "qrels get the labels too (which queries are dev does not change; `rerankforge eval` of the dev "
                "split does not read them). Labelled documents do not become new positives here: mine again with "
                "`rerankforge mine --extra_qrels` for that."})
    dev_queries: int = field(default=100, metadata={
        "help": "Train queries held out as the dev split (never trained on); 0 disables dev evaluation. The "
                "test split is never used in training."})
    dev_query_ids: list[str] | None = field(default=None, metadata={
        "help": "A fixed dev split: these query ids of the training file are held out, instead of `dev_queries` "
                "drawn at random (a team's own dev set; or the same dev across training files of different "
                "sizes). Every id must be in the file; dev_queries must then equal their number."})
    dev_depth: int = field(default=50, metadata={"help": "First-stage candidates reranked per dev query."})
    min_train_queries: int = field(default=10, metadata={
        "help": "Refuse to train on fewer judged queries than this (after the dev split is held out): a reranker "
                "fitted to a handful of queries ranks worse than the first stage it reranks. 0: train anyway "
                "(a smoke test)."})
    first_stage: Literal["hybrid", "dense", "bm25"] = field(default="hybrid", metadata={
        "help": "First stage of the dev split: its top-`dev_depth` are the dev candidates, and its signals (dense "
                "and/or BM25 scores) are what the served ranking combines with the reranker's (hybrid: both, "
                "candidates by reciprocal rank fusion)."})
    first_stage_model: str = field(default="sentence-transformers/all-MiniLM-L6-v2", metadata={
        "help": "Bi-encoder of the dense first stage (dense and hybrid)."})
    num_negatives: int = field(default=7, metadata={
        "help": "Negatives per group (1 positive + this many). Examples with fewer mined negatives are filled "
                "with negatives of other queries."})
    max_length: int = field(default=256, metadata={"help": "Max tokens of a (query, document) pair."})

    # --- model
    model: str = field(default="sentence-transformers/all-MiniLM-L6-v2", metadata={
        "help": "Starting point: a local folder or Hub id of any encoder (bi-encoder, plain LM checkpoint or an "
                "existing reranker); a fresh single-logit scoring head is added when it has none."})
    lora: bool = field(default=False, metadata={"help": "Train LoRA adapters (peft) instead of all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch."})
    lora_target_modules: list[str] = field(default_factory=lambda: ["query", "key", "value", "dense"], metadata={
        "help": "Names (last path component) of the linear layers that get adapters; the scoring head is "
                "always trained in full."})
    student_layers: int | None = field(default=None, metadata={
        "help": "Keep only the first L transformer layers of `model` (weights and scoring head copied, the rest "
                "dropped): a smaller, faster student. With `teacher` set to the same trained reranker, this is "
                "layer-dropping distillation. Must be between 1 and the model's number of layers."})
    student_layer_ids: list[int] | None = field(default=None, metadata={
        "help": "Which of `model`'s layers the student keeps (0-based, in order), e.g. [0, 4, 5]: the layers next "
                "to the scoring head often start the student closer to its teacher than the first ones. Default: "
                "the first `student_layers`. Setting it alone sets `student_layers` to its length."})
    attention_dropout: float | None = field(default=None, metadata={
        "help": "Dropout on the attention probabilities while training (default: the model's own, 0.1 for BERT "
                "models). 0 lets PyTorch use its fused attention kernel: on a CPU that trains BERT-size models "
                "about 1.6x faster (docs/RESULTS.md); choose it on dev."})
    hidden_dropout: float | None = field(default=None, metadata={
        "help": "Dropout on the hidden states while training (default: the model's own, 0.1 for BERT models)."})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "Recompute activations in the backward pass: less memory, ~30% slower."})

    # --- objective
    loss: Literal[LOSS_NAMES] = field(  # the registry in losses.py
        default="listwise", metadata={
            "help": "listwise: softmax cross-entropy over 1 positive + n negatives; bce: pointwise binary "
                    "cross-entropy; ranknet / margin: pairwise; margin_mse (MSE between the student's and the "
                    "teacher's pos - neg score margins) / listwise_kl (KL between their softmax distributions over "
                    "each group): distillation from `teacher`'s scores, or without a teacher from the first-stage "
                    "scores in the training file."})
    temperature: float = field(default=1.0, metadata={"help": "Scores are divided by this in the listwise loss."})
    label_smoothing: float = field(default=0.0, metadata={
        "help": "listwise (and the label loss mixed into distillation): the target puts 1 - e on the positive and "
                "spreads e over the group's documents, positive included; 0: all on the positive. Softer targets "
                "guard against mined negatives that are in fact relevant."})
    teacher: str | None = field(default=None, metadata={
        "help": "A trained reranker (folder or Hub id) to distil from: it scores every training group once before "
                "training (cached in output_dir, rescored when the training file or the teacher changes) and the "
                "loss must be margin_mse or listwise_kl. Usually `model` is the same reranker, cut by "
                "`student_layers`."})
    distill_temperature: float = field(default=1.0, metadata={
        "help": "listwise_kl: student and teacher scores are divided by this before the softmax (higher: softer "
                "targets); the loss is scaled by its square so gradients keep their size (Hinton et al. 2015)."})
    label_loss_weight: float = field(default=0.0, metadata={
        "help": "Distillation only: weight w of the listwise label loss (the mined positive against its negatives) "
                "mixed in: (1 - w) x distillation + w x listwise. 0: the teacher's scores alone."})
    pos_weight: float | None = field(default=None, metadata={
        "help": "bce: weight of the positive term; default num_negatives (balances 1 positive vs n negatives)."})
    margin: float = field(default=1.0, metadata={"help": "margin loss: required gap positive - negative."})

    # --- optimisation
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak learning rate (AdamW)."})
    head_learning_rate: float | None = field(default=None, metadata={
        "help": "Peak learning rate of the freshly initialised scoring head (default: learning_rate). A higher one "
                "lets the head catch up with the pretrained body in the few hundred steps a small domain gives."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (not on biases/norms)."})
    warmup_ratio: float = field(default=0.1, metadata={"help": "Fraction of the steps spent warming up."})
    lr_scheduler: Literal["linear", "cosine", "constant"] = field(default="linear", metadata={
        "help": "Decay after warmup."})
    batch_size: int = field(default=8, metadata={
        "help": "Groups per step and process (each group = 1 + num_negatives pairs)."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Steps accumulated per update."})
    num_epochs: float = field(default=1.0, metadata={"help": "Passes over the training groups."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many updates (overrides epochs)."})
    max_minutes: float | None = field(default=None, metadata={
        "help": "Time budget: train for this many minutes of updates (dev evaluations and checkpoints not counted; "
                "summed across resumptions), so a faster machine trains longer in the same time. Warmup and decay "
                "are re-planned after every update at the speed measured so far; the run stops within one update "
                "of the budget, or at max_steps / num_epochs if it gets there first. Learning-rate trials on dev "
                "get a third of it each. None: no budget."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping."})
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = field(default="auto", metadata={
        "help": "auto: bf16 where the hardware has it natively (CUDA GPUs with bf16, CPUs with AVX512-BF16 or "
                "AMX), fp16 on other GPUs, else no (fp32). An explicit bf16 where it would "
                "be emulated (e.g. an AVX2 CPU: ~10x slower) runs with a warning; fp16 needs a GPU. accelerate "
                "launch's own mixed precision setting is not used."})
    group_by_length: bool = field(default=True, metadata={
        "help": "Batch groups of similar length together (less padding), in shuffled order."})
    seed: int = field(default=42, metadata={"help": "Seeds data order, dev split, head init and dropout."})

    # --- evaluation, checkpoints, output
    output_dir: str = field(default="outputs/reranker", metadata={"help": "Where the trained reranker goes."})
    eval_steps: int = field(default=100, metadata={"help": "Evaluate on the dev split every N updates (0: never)."})
    eval_minutes: float | None = field(default=None, metadata={
        "help": "Also evaluate on the dev split every this many minutes of updates (as max_minutes counts them): "
                "with a time budget, how many updates a run gets is known only as it goes. On small data with "
                "max_minutes, a tenth of it. None: by eval_steps only."})
    save_steps: int = field(default=100, metadata={
        "help": "Save a resumable checkpoint every N updates (0: never); rerunning the command resumes."})
    keep_best: bool = field(default=True, metadata={
        "help": "Keep the weights with the best dev nDCG@10 (else the last)."})
    early_stopping_patience: int | None = field(default=None, metadata={
        "help": "Stop after this many evaluations without dev improvement."})
    learning_rate_search: list[float] | None = field(default=None, metadata={
        "help": "Learning rates tried on the dev split before the run, each for `search_steps` updates from the same "
                "start; the one with the best dev nDCG@10 becomes learning_rate (head_learning_rate scales with it), "
                "and the trials' dev figures go into metrics.json and the card. None: searched on small data only "
                "(see small_data_queries)."})
    search_steps: int | None = field(default=None, metadata={
        "help": "Updates per learning-rate trial; None: a third of the run's."})
    small_data_queries: int = field(default=300, metadata={
        "help": "With a dev split and fewer training queries than this, the choices that matter on small data are "
                "made on dev: the learning rate among learning_rate x 0.5, 1, 2 (unless learning_rate_search is "
                "set), and how long to train by a dev evaluation every tenth of the run, keep_best and "
                "early_stopping_patience 3 (unless set). 0: never."})
    fit_combination: bool = field(default=True, metadata={
        "help": "After training, fit on the dev split how the served ranking weighs the reranker's score against "
                "the first stage's dense / BM25 scores (train/combining.py; the first stage alone where dev does "
                "not show the reranker helps); saved in rerankforge.json, used by eval, the demo and serve."})
    calibrate: bool = field(default=True, metadata={
        "help": "After training, fit Platt scaling on the dev split's candidates so the reranker's scores read as "
                "probabilities of relevance (serve's relevance_score and min_relevance); saved in rerankforge.json."})
    eval_batch_size: int = field(default=64, metadata={"help": "Pairs per forward pass when scoring."})
    log_steps: int = field(default=10, metadata={"help": "Log loss, lr and throughput every N updates."})
    report_to: Literal["none", "wandb"] = field(default="none", metadata={
        "help": "Experiment tracker; wandb works without an account when WANDB_MODE=offline."})
    project: str | None = field(default=None, metadata={
        "help": "W&B project (default: $WANDB_PROJECT, else rerankforge)."})
    run_name: str | None = field(default=None, metadata={
        "help": "W&B run name (default: $WANDB_NAME, else the output folder's name)."})
    wandb_entity: str | None = field(default=None, metadata={
        "help": "W&B team or user the run belongs to (default: $WANDB_ENTITY, else your W&B default)."})
    run_group: str | None = field(default=None, metadata={
        "help": "W&B run group, e.g. one per sweep or per accelerate multi-node job (default: $WANDB_RUN_GROUP)."})
    tags: list[str] | None = field(default=None, metadata={
        "help": "W&B run tags (default: $WANDB_TAGS, comma-separated)."})
    tracker_dir: str | None = field(default=None, metadata={
        "help": "Folder W&B writes its run files under (default: $WANDB_DIR, else output_dir)."})
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the output folder to the Hub at the end."})
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub repo id (org/name) for push_to_hub."})
    hub_private: bool = field(default=True, metadata={"help": "Create the Hub repo as private."})
    data_license: str | None = field(default=None, metadata={
        "help": "License of the training data, for the model card, as a Hub id or as written (e.g. cc-by-nc-2.0 or "
                "'CC BY-NC 2.0' for SciFact). Unset: known for scifact, medline and npl (train/provenance.py). The "
                "card's license is the more restrictive of this and the base model's; unknown gives 'other'."})
    language: list[str] = field(default_factory=lambda: ["en"], metadata={
        "help": "Language(s) of the training data, ISO 639-1/2/3 codes (or 'multilingual'), for the model card."})


def load_config(argv: list[str]) -> TrainConfig:
    """`[--config FILE.yaml] [--key value ...]`: the YAML's values, overridden by the command line,
    fully checked (see data_prep/config_files.py)."""
    config = load_typed_config(TrainConfig, argv, prog=PROG, description=DESCRIPTION)
    check_config(config)
    return config


PROG = "rerankforge train"
DESCRIPTION = ("Fine-tune a cross-encoder reranker. Values come from --config FILE.yaml; any key can be overridden "
               "on the command line: --key value.")


def check_config(config: TrainConfig) -> None:
    """Cross-field and file checks; model-dependent checks (LoRA targets) are in `check_model_fields`."""
    if not config.train_file:
        raise ConfigError("train_file is required (a .jsonl or .parquet written by `rerankforge mine`)")
    if not config.train_file.startswith("hf:") and not Path(config.train_file).expanduser().exists():
        raise ConfigError(f"train_file: no such file: {config.train_file} (expected a file from `rerankforge mine`, "
                          f"a .jsonl/.parquet/.csv file, a `datasets` save_to_disk folder, or hf:NAME)")
    if config.extra_qrels is not None and not Path(config.extra_qrels).expanduser().is_file():
        raise ConfigError(f"extra_qrels: no such file: {config.extra_qrels} (expected a labels file, "
                          f"query-id<TAB>corpus-id<TAB>score[<TAB>time<TAB>annotator] per line)")
    positive = {"num_negatives": config.num_negatives, "max_length": config.max_length,
                "batch_size": config.batch_size, "gradient_accumulation_steps": config.gradient_accumulation_steps,
                "eval_batch_size": config.eval_batch_size, "dev_depth": config.dev_depth, "lora_r": config.lora_r,
                "log_steps": config.log_steps}
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"{key} must be at least 1, got {value}")
    non_negative = {"dev_queries": config.dev_queries, "eval_steps": config.eval_steps,
                    "save_steps": config.save_steps, "weight_decay": config.weight_decay}
    for key, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"{key} must be 0 or more, got {value}")
    for key in ("learning_rate", "head_learning_rate"):
        value = getattr(config, key)
        if value is not None and not 0 < value < 1:
            raise ConfigError(f"{key} must be in (0, 1), got {value}")
    if not 0 <= config.warmup_ratio < 1:
        raise ConfigError(f"warmup_ratio must be in [0, 1), got {config.warmup_ratio}")
    if config.max_steps is None and config.num_epochs <= 0:
        raise ConfigError(f"num_epochs must be positive (or set max_steps), got {config.num_epochs}")
    if config.max_steps is not None and config.max_steps < 1:
        raise ConfigError(f"max_steps must be at least 1, got {config.max_steps}")
    if config.eval_minutes is not None and not config.eval_minutes > 0:
        raise ConfigError(f"eval_minutes must be positive (or none), got {config.eval_minutes}")
    if config.max_minutes is not None and not config.max_minutes > 0:
        raise ConfigError(f"max_minutes must be positive (or none for no time budget), got {config.max_minutes}")
    if config.dev_query_ids is not None and len(set(config.dev_query_ids)) != config.dev_queries:
        raise ConfigError(f"dev_query_ids: {len(set(config.dev_query_ids))} distinct ids, but dev_queries is "
                          f"{config.dev_queries}; expected the two to agree")
    if config.learning_rate_search is not None and not all(0 < lr < 1 for lr in config.learning_rate_search):
        raise ConfigError(f"learning_rate_search: expected learning rates in (0, 1), got {config.learning_rate_search}")
    if config.search_steps is not None and config.search_steps < 1:
        raise ConfigError(f"search_steps must be at least 1, got {config.search_steps}")
    if config.small_data_queries < 0:
        raise ConfigError(f"small_data_queries must be 0 or more, got {config.small_data_queries}")
    for key in ("temperature", "distill_temperature"):
        if getattr(config, key) <= 0:
            raise ConfigError(f"{key} must be positive, got {getattr(config, key)}")
    check_distillation(config)
    if config.push_to_hub and not config.hub_model_id:
        raise ConfigError("push_to_hub: true needs hub_model_id (org/name)")
    bad = [code for code in config.language if not re.fullmatch(r"[a-z]{2,3}|multilingual", code)]
    if bad or not config.language:
        raise ConfigError(f"language: expected ISO 639 codes such as en or de (or multilingual), got "
                          f"{bad or config.language}")
    check_output_folder(config.output_dir, "output_dir")  # a file there would fail only after training


def check_distillation(config: TrainConfig) -> None:
    if config.teacher is not None and config.loss not in DISTILLATION_LOSSES:
        raise ConfigError(f"teacher: distillation needs loss {' or '.join(DISTILLATION_LOSSES)}, got loss "
                          f"{config.loss}")
    if config.teacher is not None and not config.teacher.strip():
        raise ConfigError("teacher: expected a trained reranker folder or Hub id, got an empty value")
    ids = config.student_layer_ids
    if ids is not None:
        if any(i < 0 for i in ids) or sorted(set(ids)) != list(ids):
            raise ConfigError(f"student_layer_ids: expected distinct layer numbers from 0 up, in increasing order, "
                              f"got {ids}")
        if config.student_layers is None:
            config.student_layers = len(ids)
        elif config.student_layers != len(ids):
            raise ConfigError(f"student_layers ({config.student_layers}) and student_layer_ids ({ids}) disagree: "
                              f"expected {len(ids)} layers, or one of the two keys only")
    if config.student_layers is not None and config.student_layers < 1:
        raise ConfigError(f"student_layers must be at least 1, got {config.student_layers}")
    if not 0 <= config.label_smoothing < 1:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {config.label_smoothing}")
    if config.label_smoothing and config.loss not in ("listwise", *DISTILLATION_LOSSES):
        raise ConfigError(f"label_smoothing softens the listwise loss's target; expected loss listwise (or a "
                          f"distillation loss with label_loss_weight), got loss {config.loss}")
    if not 0 <= config.label_loss_weight <= 1:
        raise ConfigError(f"label_loss_weight must be in [0, 1], got {config.label_loss_weight}")
    if config.label_loss_weight and config.loss not in DISTILLATION_LOSSES:
        raise ConfigError(f"label_loss_weight mixes the label loss into a distillation loss; expected loss "
                          f"{' or '.join(DISTILLATION_LOSSES)} with it, got loss {config.loss}")


def check_model_fields(config: TrainConfig, model_folder: str) -> None:
    """Checks that need the model's architecture (its config, not its weights): LoRA target modules,
    student layers."""
    if config.student_layers is not None:
        layers = model_layers(model_folder)
        if layers is None:
            raise ConfigError(f"student_layers: model {config.model} has no num_hidden_layers in its config; "
                              f"expected a transformer encoder whose layers can be cut")
        if config.student_layers > layers:
            raise ConfigError(f"student_layers must be between 1 and the {layers} layers of model {config.model}, "
                              f"got {config.student_layers}")
        if config.student_layer_ids and config.student_layer_ids[-1] >= layers:
            raise ConfigError(f"student_layer_ids: model {config.model} has layers 0 to {layers - 1}, got "
                              f"{config.student_layer_ids}")
    if not config.lora:
        return
    names = module_names(model_folder)
    missing = [t for t in config.lora_target_modules if t not in names]
    if missing:
        linear = sorted(names)
        raise ConfigError(f"lora_target_modules: {missing} not in model {config.model}; its linear layers are "
                          f"named {', '.join(linear)}")


def module_names(model_folder: str) -> set[str]:
    """Last path components of the model's linear layers, from its config alone (built on the meta
    device: no weights are read)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    model_config = AutoConfig.from_pretrained(model_folder, num_labels=1)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(model_config)
    return {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and name}


def model_layers(model_folder: str) -> int | None:
    """The number of transformer layers of a model, from its config."""
    from transformers import AutoConfig

    return getattr(AutoConfig.from_pretrained(model_folder), "num_hidden_layers", None)


def to_dict(config: TrainConfig) -> dict:
    return dataclasses.asdict(config)
