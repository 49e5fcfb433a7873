"""The model card (README.md) written beside a trained reranker."""

from __future__ import annotations

from pathlib import Path

from rerankforge.data_prep.runs import atomic_write_text
from rerankforge.reranker.folder import SETTINGS

from .config import DISTILLATION_LOSSES, TrainConfig

LOSS_NAMES = {
    "listwise": "listwise softmax cross-entropy (1 positive + n hard negatives per group)",
    "bce": "pointwise binary cross-entropy",
    "ranknet": "pairwise RankNet (logistic) loss",
    "margin": "pairwise margin (hinge) loss",
    "margin_mse": "margin-MSE distillation (student vs teacher pos - neg score margins)",
    "listwise_kl": "listwise KL distillation (teacher vs student softmax over each group)",
}
HYPERPARAMETERS = ("num_negatives", "max_length", "learning_rate", "lr_scheduler", "warmup_ratio", "weight_decay",
                   "batch_size", "gradient_accumulation_steps", "num_epochs", "max_steps", "temperature",
                   "mixed_precision", "seed")
LORA = ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")
DISTILLATION = ("student_layers", "distill_temperature", "label_loss_weight")


def model_card(config: TrainConfig, metrics: dict) -> str:
    name = Path(config.output_dir).name
    license_line = config.data_license or "see the dataset's own terms"
    distilled = config.loss in DISTILLATION_LOSSES
    hyper = {k: getattr(config, k) for k in HYPERPARAMETERS + (LORA if config.lora else ())
             + (DISTILLATION if distilled else ())}
    lines = [
        "---",
        "library_name: sentence-transformers",
        "pipeline_tag: text-ranking",
        f"base_model: {config.model}",
        "tags: [cross-encoder, reranker, rerankforge]",
        "---",
        "",
        f"# {name}",
        "",
        f"A cross-encoder reranker fine-tuned with [rerankforge](https://github.com/rerankforge/rerankforge) "
        f"from `{config.model}` on `{config.data}` ({config.split} split). It scores a (query, passage) pair; "
        "use it to rerank the top candidates of a first-stage retriever.",
        "",
        "## Usage",
        "",
        "```python",
        "from sentence_transformers import CrossEncoder",
        "",
        f"model = CrossEncoder({config.hub_model_id or name!r})",
        'scores = model.predict([("query", "passage one"), ("query", "passage two")])',
        "```",
        "",
        "## Training",
        "",
        f"- Base model: `{config.model}`" + (" with LoRA adapters (merged here; the adapter is in `adapter/`)"
                                             if config.lora else " (all weights)"),
        f"- Data: `{config.train_file}`, hard negatives mined from `{config.data}`; license: {license_line}",
        f"- Loss: {LOSS_NAMES[config.loss]}" + (f", mixed with the listwise label loss at weight "
                                                 f"{config.label_loss_weight}" if distilled and config.label_loss_weight
                                                 else ""),
        *([_distilled_from(config)] if distilled else []),
        f"- Steps: {metrics.get('steps')}; best dev step: {metrics.get('best_step')}; "
        f"training throughput (median): {_num(metrics.get('train_pairs_per_s_median'))} pairs/s",
        "",
        "| hyperparameter | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in hyper.items()],
        "",
        "## Evaluation",
        "",
        f"Dev split: {config.dev_queries} queries held out from the training split (never trained on), "
        f"first-stage candidates: {config.first_stage} top-{config.dev_depth} (bi-encoder `{config.first_stage_model}`).",
        "",
        "| ranking | nDCG@10 | MRR@10 |",
        "|---|---|---|",
    ]
    for label, values in ((f"first stage ({config.first_stage})", metrics.get("dev_first_stage")),
                          ("reranked (this model)", metrics.get("dev_reranked"))):
        if values:
            lines.append(f"| {label} | {_num(values.get('nDCG@10'))} | {_num(values.get('MRR@10'))} |")
    combination = metrics.get("combination")
    if combination:
        lines += ["", f"The served ranking (saved in `{SETTINGS}`, applied by `rerankforge eval`, the demo and `serve`) "
                  f"combines z-standardised scores, fitted on the dev split: {combination['message']}."]
    lines += [
        "",
        "## Intended use and limits",
        "",
        f"Reranking passages of the domain of `{config.data}` for search and retrieval-augmented generation. "
        "Scores are raw logits: compare them within one query, not across queries. Quality outside the training "
        "domain is not measured here; evaluate on your own data with `rerankforge eval`.",
        "",
    ]
    return "\n".join(lines)


def _distilled_from(config: TrainConfig) -> str:
    source = f"the trained reranker `{config.teacher}`" if config.teacher else "the first-stage scores in the data"
    kept = (f"layers {', '.join(map(str, config.student_layer_ids))} (0-based) of the"
            if config.student_layer_ids else f"first {config.student_layers} transformer layers of")
    layers = f"; the student keeps the {kept} `{config.model}`" if config.student_layers else ""
    return f"- Distilled from {source} (its scores of every training group are the targets){layers}"


def write_model_card(output_dir: str | Path, config: TrainConfig, metrics: dict) -> Path:
    path = Path(output_dir) / "README.md"
    atomic_write_text(path, model_card(config, metrics))
    return path


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
