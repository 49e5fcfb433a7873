"""The model card (README.md) written beside a trained reranker, as the Hub reads it.

Built with huggingface_hub's ModelCard: metadata (license, base_model, datasets, language, pipeline_tag,
library_name, tags) and a model-index of the evaluation results -- the dev split the training run carved from
the training queries, and the test split of a `rerankforge eval` report when one is given (`rerankforge push
--eval_report`). Nothing in it is a path on this machine: models and data are named by Hub id or by name."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from rerankforge.core.errors import ConfigError, DataError
from rerankforge.core.files import atomic_write_text
from rerankforge.core.models import hub_id_of
from rerankforge.reranker.folder import (ADAPTER_CONFIG, ADAPTER_DIR, SETTINGS, local_adapter_base,
                                         write_sentence_transformers_config)

from ..config import TrainConfig
from ..losses import DISTILLATION_LOSSES, LOSSES
from .provenance import (KNOWN_DATASETS, base_model_license, card_license, data_license, dataset_hub_ids,
                         dataset_key)

HYPERPARAMETERS = ("num_negatives", "max_length", "learning_rate", "lr_scheduler", "warmup_ratio", "weight_decay",
                   "batch_size", "gradient_accumulation_steps", "num_epochs", "max_steps", "temperature",
                   "label_smoothing", "mixed_precision", "seed")
LORA = ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")
DISTILLATION = ("student_layers", "distill_temperature", "label_loss_weight")
TAGS = ["sentence-transformers", "cross-encoder", "reranker", "text-ranking", "rerankforge"]
# Metrics of the model-index, by their names in rerankforge's reports -> the ids MTEB's cards use.
METRIC_IDS = {"nDCG@10": "ndcg_at_10", "MRR@10": "mrr_at_10", "MAP@100": "map_at_100"}
TASK = {"task_type": "text-ranking", "task_name": "Reranking"}


def model_card(config: TrainConfig, metrics: dict, hub_model_id: str | None = None,
               eval_report: dict | None = None):
    """The card of the reranker `config` trained, with its `metrics` (metrics.json) and, optionally, the test
    figures of an eval report (`read_eval_report`). `hub_model_id` (default: config.hub_model_id) is the repo the
    usage snippet loads."""
    from huggingface_hub import ModelCard, ModelCardData

    repo = hub_model_id or config.hub_model_id
    folder_name = Path(config.output_dir).name
    name = repo.split("/")[-1] if repo else folder_name
    base_id, base_name = base_model(config.model)
    data = data_name(config.data)
    known = KNOWN_DATASETS.get(dataset_key(config.data))
    data_licence, licence_note = data_license(config.data_license, known)
    licence = card_license(data_licence, data, base_model_license(config.model, base_id), base_name)
    names = {folder_name, name, *([repo] if repo else [])}  # how `rerankforge eval` may have named this reranker
    results = dev_results(config, metrics, data) + report_results(eval_report or {}, names)
    card_data = ModelCardData(
        license=licence.license, license_name=licence.license_name, base_model=base_id,
        datasets=list(dataset_hub_ids(config.data)) or None, language=list(config.language),
        library_name="sentence-transformers", pipeline_tag="text-ranking", tags=list(TAGS),
        model_name=name if results else None, eval_results=results or None)
    body = _body(config, metrics, repo, name, base_name, data, licence, licence_note, eval_report, names)
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")


def write_model_card(output_dir: str | Path, config: TrainConfig, metrics: dict, hub_model_id: str | None = None,
                     eval_report: dict | None = None) -> Path:
    """Write README.md into `output_dir` (and the LoRA adapter's own card into adapter/), atomically."""
    path = Path(output_dir) / "README.md"
    card = model_card(config, metrics, hub_model_id, eval_report)
    atomic_write_text(path, card.content)
    adapter = Path(output_dir) / ADAPTER_DIR
    if (adapter / ADAPTER_CONFIG).is_file():
        atomic_write_text(adapter / "README.md", adapter_card(card, adapter, hub_model_id or config.hub_model_id))
    return path


def refresh_model_card(folder: str | Path, hub_model_id: str, eval_report: str | Path | None = None) -> Path | None:
    """Rewrite the card of a `rerankforge train` folder for its upload to `hub_model_id`, adding the test figures
    of `eval_report` (a `rerankforge eval` output folder or its metrics.json). None where the folder has no
    train_config.json (not trained here: its own card is left as it is)."""
    folder = Path(folder)
    saved = folder / "train_config.json"
    if not saved.is_file():
        if eval_report is not None:
            raise ConfigError(f"eval_report: the card can only be rebuilt for a folder written by `rerankforge "
                              f"train`; expected {saved}, found none")
        return None
    config = saved_config(saved)
    if not (folder / "config_sentence_transformers.json").is_file():  # trained before the folder carried them
        write_sentence_transformers_config(folder)
    metrics_file = folder / "metrics.json"
    metrics = _read_json(metrics_file) if metrics_file.is_file() else {}
    report = read_eval_report(eval_report) if eval_report is not None else None
    return write_model_card(folder, config, metrics, hub_model_id, report)


def saved_config(path: Path) -> TrainConfig:
    """The TrainConfig a run saved (train_config.json); keys this version does not know are ignored."""
    values = _read_json(path)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in values.items() if k in fields})
    return dataclasses.replace(config, output_dir=str(path.parent))


def base_model(ref: str) -> tuple[str | None, str]:
    """(Hub id or None, how the card names it) of the model training started from. A local `rerankforge train`
    folder (a distillation teacher cut to a student, say) that was never pushed derives, on the Hub, from the
    model it was itself trained from."""
    hub_id = hub_id_of(ref)
    if hub_id is not None:
        return hub_id, hub_id
    name = f"local model `{Path(ref).name}`"
    saved = Path(ref) / "train_config.json"
    if saved.is_file():
        parent = _read_json(saved).get("model")
        if isinstance(parent, str) and parent != ref:
            parent_id, parent_name = base_model(parent)
            return parent_id, f"local reranker `{Path(ref).name}`, trained from {parent_name}"
    return None, name


def data_name(data: str) -> str:
    """How the card names the training data: a known collection's name, else its name without the folders."""
    known = KNOWN_DATASETS.get(dataset_key(data))
    return known.pretty_name if known else dataset_key(data)


def dev_results(config: TrainConfig, metrics: dict, data: str) -> list:
    """Model-index entries of the dev split: the first stage's candidates as ranked, and reranked."""
    first, reranked = metrics.get("dev_first_stage"), metrics.get("dev_reranked")
    if not first or not reranked:
        return []
    queries = metrics.get("dev_queries", config.dev_queries)
    dataset = {"dataset_type": _dataset_type(config.data), "dataset_split": config.split,
               "dataset_name": f"{data} (dev: {queries} {config.split} queries held out of training)"}
    stage = f"{config.first_stage} top-{config.dev_depth}"
    return (_results(first, dataset, f"first stage: {stage}", config.first_stage)
            + _results(reranked, dataset, f"reranked: {stage}", f"{config.first_stage} >> reranker"))


def report_results(report: dict, names: set[str]) -> list:
    """Model-index entries of an eval report: each ranking of this reranker (named one of `names` there), raw and
    served, and the first stages it reranked."""
    if not report:
        return []
    systems = _report_systems(report, names)
    dataset = {"dataset_type": _dataset_type(report["collection"]), "dataset_split": report["split"],
               "dataset_name": f"{data_name(report['collection'])} ({report['split']}: "
                               f"{report.get('judged_queries', '?')} judged queries)"}
    depth = report.get("settings", {}).get("depth")
    results = []
    for system_name, system in systems:
        stage = f"{system['first_stage']} top-{depth}" if depth else system["first_stage"]
        kind = "served ranking" if system_name.endswith("(served)") else "reranked"
        label = (f"first stage: {system['first_stage']}" if system.get("reranker") is None else
                 f"{kind}: {stage}, {system.get('combination') or 'reranker'}")
        results += _results(system["metrics"], dataset, label, system_name)
    return results


def read_eval_report(path: str | Path) -> dict:
    """The metrics.json of a `rerankforge eval` report (the folder or the file), checked for what the card uses."""
    path = Path(path)
    file = path / "metrics.json" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(f"eval_report: expected a `rerankforge eval` output folder or its metrics.json, got {path}")
    report = _read_json(file)
    for key, kind in (("collection", str), ("split", str), ("systems", dict)):
        if not isinstance(report.get(key), kind):
            raise DataError(f"{file}: {key}: expected {kind.__name__}, got {report.get(key)!r:.80}")
    for system_name, system in report["systems"].items():
        if not isinstance(system, dict) or not isinstance(system.get("metrics"), dict) \
                or not isinstance(system.get("first_stage"), str):
            raise DataError(f"{file}: systems.{system_name}: expected first_stage and metrics, got {system!r:.80}")
    return report


def adapter_card(card, adapter: Path, repo: str | None) -> str:
    """The LoRA adapter's own card: the model card's metadata, as a peft adapter of its base's Hub id."""
    from huggingface_hub import ModelCard, ModelCardData

    base = _read_json(adapter / ADAPTER_CONFIG).get("base_model_name_or_path")
    data = card.data.to_dict()
    data.pop("model-index", None)
    data.update(library_name="peft", base_model=None if local_adapter_base(adapter.parent) else base,
                tags=[*data.get("tags", []), "lora"])
    data = {k: v for k, v in data.items() if v is not None}
    merged = f"[{repo}](https://huggingface.co/{repo})" if repo else "the folder above"
    body = (f"# LoRA adapter of {merged}\n\nThe LoRA adapter (with its scoring head) that {merged} merges into its "
            f"base model; the model card there has the training details, evaluation and usage. "
            f"rerankforge loads this folder as a reranker (`rerankforge eval --rerankers PATH/adapter`).\n")
    return ModelCard(f"---\n{ModelCardData(**data).to_yaml()}\n---\n\n{body}").content


def _report_systems(report: dict, names: set[str]) -> list[tuple[str, dict]]:
    """The report's rankings by this reranker (named one of `names`), after the first stages they rerank."""
    ours = [(n, s) for n, s in report["systems"].items() if s.get("reranker") in names]
    if not ours:
        rerankers = sorted({s["reranker"] for s in report["systems"].values() if s.get("reranker")})
        raise DataError(f"eval report on {report['collection']}/{report['split']}: expected results of the reranker "
                        f"{' or '.join(sorted(names))} (its folder's or repo's name), got rerankers "
                        f"{rerankers or 'none'}")
    stages = {s["first_stage"] for _, s in ours}
    firsts = [(n, s) for n, s in report["systems"].items() if s.get("reranker") is None and s["first_stage"] in stages]
    return firsts + ours


def _results(values: dict, dataset: dict, label: str, config: str) -> list:
    from huggingface_hub import EvalResult

    return [EvalResult(**TASK, **dataset, metric_type=metric_id, metric_value=round(float(values[metric]), 4),
                       metric_name=f"{metric} ({label})", metric_config=config)
            for metric, metric_id in METRIC_IDS.items() if isinstance(values.get(metric), (int, float))]


def _dataset_links(data: str) -> str:
    ids = dataset_hub_ids(data)
    return "; on the Hub: " + ", ".join(f"[{i}](https://huggingface.co/datasets/{i})" for i in ids) if ids else ""


def _dataset_type(data: str) -> str:
    """The Hub dataset whose split names the results follow (BeIR/scifact: test = SciFact's dev claims), else
    the data's name."""
    ids = dataset_hub_ids(data)
    return ids[-1] if ids else dataset_key(data)


def _body(config, metrics, repo, name, base_name, data, licence, licence_note, report, names) -> str:
    distilled = config.loss in DISTILLATION_LOSSES
    hyper = {k: getattr(config, k) for k in HYPERPARAMETERS + (LORA if config.lora else ())
             + (DISTILLATION if distilled else ())}
    adapter_base = local_adapter_base(config.output_dir)
    lines = [
        f"# {name}", "",
        f"A cross-encoder reranker fine-tuned with [rerankforge](https://github.com/rerankforge/rerankforge) from "
        f"{_model_link(base_name)} on {data} ({config.split} split). It scores a (query, passage) pair; use it to "
        f"rerank the top candidates of a first-stage retriever.", "",
        "## Usage", "",
        "```python",
        "from sentence_transformers import CrossEncoder",
        "",
        f"model = CrossEncoder({repo or 'path/to/' + name!r})",
        'scores = model.predict([("query", "passage one"), ("query", "passage two")])',
        'ranking = model.rank("query", ["passage one", "passage two"])',
        "```", "",
        *_scores_text(config, metrics), "",
        "## Training", "",
        f"- Base model: {_model_link(base_name)}" + (" with LoRA adapters (merged here; the adapter is in "
                                                     "`adapter/`" + ("" if adapter_base is None else
                                                                     ", not uploaded: its base is a local folder")
                                                     + ")" if config.lora else " (all weights)"),
        f"- Data: hard negatives mined from {data} ({config.split} split{_dataset_links(config.data)}) into "
        f"`{Path(config.train_file).name}`",
        f"- Loss: {LOSSES[config.loss].description}" + (f", mixed with the listwise label loss at weight "
                                                 f"{config.label_loss_weight}" if distilled and config.label_loss_weight
                                                 else ""),
        *([_distilled_from(config)] if distilled else []),
        f"- Steps: {metrics.get('steps')}; best dev step: {metrics.get('best_step')}; "
        f"training throughput (median): {_num(metrics.get('train_pairs_per_s_median'))} pairs/s",
        *[f"- {line}" for line in describe_dev_choices(metrics.get("chosen_on_dev") or {})], "",
        "| hyperparameter | value |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in hyper.items()], "",
        *_evaluation_text(config, metrics, report, names),
        "## Intended use and limits", "",
        f"Reranking passages of the domain of {data} for search and retrieval-augmented generation. Quality "
        "outside the training domain is not measured here; evaluate on your own data with `rerankforge eval`.", "",
        "## License", "",
        f"`{licence.license}`" + (f" (`{licence.license_name}`)" if licence.license_name else "")
        + f": {licence.reason}." + (f" Note: {licence_note}." if licence_note else ""), "",
    ]
    return "\n".join(lines)


def _scores_text(config: TrainConfig, metrics: dict) -> list[str]:
    calibration = metrics.get("calibration")
    lines = [
        f"`predict` returns the sigmoid of the model's single logit (config_sentence_transformers.json sets "
        f"`activation_fn` to `torch.nn.Sigmoid`): a number in (0, 1) that orders passages exactly as the logit does. "
        f"Trained with {config.loss} loss, the logit is a ranking score, so compare scores within one query; pass "
        f"`activation_fn=torch.nn.Identity()` for the raw logits. Pairs are truncated to {config.max_length} tokens, "
        f"the length trained at (the tokenizer's `model_max_length`)."]
    if calibration:
        lines[0] += (f" A probability of relevance, calibrated by Platt scaling on the "
                     f"{calibration.get('fitted_on', 'dev split')}, is sigmoid({calibration['scale']:.4f} x logit "
                     f"{calibration['bias']:+.4f}); it is saved in `{SETTINGS}` and applied by rerankforge's "
                     f"`serve` (relevance_score).")
    return lines


def _evaluation_text(config: TrainConfig, metrics: dict, report: dict | None, names: set[str]) -> list[str]:
    lines = ["## Evaluation", "",
             f"Dev split: {metrics.get('dev_queries', config.dev_queries)} queries held out of the "
             f"{config.split} split (never trained on), first-stage candidates: {config.first_stage} "
             f"top-{config.dev_depth} (bi-encoder {_model_link(_named(config.first_stage_model))}).", "",
             "| ranking | nDCG@10 | MRR@10 |", "|---|---|---|"]
    for label, values in ((f"first stage ({config.first_stage})", metrics.get("dev_first_stage")),
                          ("reranked (this model)", metrics.get("dev_reranked"))):
        if values:
            lines.append(f"| {label} | {_num(values.get('nDCG@10'))} | {_num(values.get('MRR@10'))} |")
    combination = metrics.get("combination")
    if combination:
        lines += ["", f"Two rankings are saved in `{SETTINGS}`, fitted on the dev split and judged out of fold: the "
                  f"request ranking (the rerank endpoints and adapters, for documents sent in first-stage order) "
                  f"weighs the reranker's z-standardised score against the first stage's order (position: 1 / (60 + "
                  f"rank)); the served ranking (`rerankforge eval`, the demo, `/search`) may also weigh the dense and "
                  f"BM25 scores, and where it weighs no dense score requests get it too (their documents' BM25 "
                  f"scored from their text with the corpus's statistics, bm25_statistics.json). "
                  f"{combination['message']}."]
    if report:
        lines += ["", f"Test: `rerankforge eval` on {data_name(report['collection'])} ({report['split']} split, "
                  f"{report.get('judged_queries', '?')} judged queries), candidates: each first stage's "
                  f"top-{report.get('settings', {}).get('depth', '?')}.", "",
                  "| ranking | nDCG@10 | MRR@10 | MAP@100 |", "|---|---|---|---|"]
        for system_name, system in _report_systems(report, names):
            values = system["metrics"]
            lines.append(f"| {system_name} | {_num(values.get('nDCG@10'))} | {_num(values.get('MRR@10'))} | "
                         f"{_num(values.get('MAP@100'))} |")
    return lines + [""]


def _distilled_from(config: TrainConfig) -> str:
    teacher = hub_id_of(config.teacher) if config.teacher else None
    source = ("the first-stage scores in the data" if not config.teacher else
              f"the trained reranker {_model_link(teacher)}" if teacher else
              f"the local trained reranker `{Path(config.teacher).name}`")
    kept = (f"layers {', '.join(map(str, config.student_layer_ids))} (0-based) of the"
            if config.student_layer_ids else f"first {config.student_layers} transformer layers of")
    layers = f"; the student keeps the {kept} {_model_link(base_model(config.model)[1])}" if config.student_layers \
        else ""
    return f"- Distilled from {source} (its scores of every training group are the targets){layers}"


def _named(ref: str) -> str:
    """A model as the card names it: its Hub id, else the local folder's name."""
    return hub_id_of(ref) or f"local model `{Path(ref).name}`"


def _model_link(name: str) -> str:
    """A Hub id as a link; a description of a local model as it is."""
    return name if name.startswith("local ") else f"[{name}](https://huggingface.co/{name})"


def _read_json(path: Path) -> dict:
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: expected a JSON object, got unreadable JSON ({e})") from None
    if not isinstance(values, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(values).__name__}")
    return values


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def describe_dev_choices(record: dict) -> list[str]:
    """Sentences for the model card: what was chosen on dev and on what evidence."""
    lines = []
    if record.get("small_data"):
        updates = record["updates"]
        lines.append(f"Small data ({record['train_queries']} training queries): the number of updates was chosen on "
                     f"dev, evaluating every {updates['eval_steps']} of at most {updates['max_steps']} updates with "
                     f"early stopping after {updates['early_stopping_patience']} evaluations without gain"
                     f"{' and the best evaluation kept' if updates['keep_best'] else ''}.")
    if "learning_rate" in record:
        search = record["learning_rate"]
        figures = ", ".join(f"{lr}: {v:.4f}" for lr, v in search["dev_nDCG@10"].items())
        lines.append(f"Learning rate {search['learning_rate']:g}, chosen on dev among "
                     f"{rates_text(search['candidates'])} by trials of {search['trial_steps']} updates each "
                     f"(dev nDCG@10 {figures}).")
    return lines


def rates_text(rates: list[float]) -> str:
    """Learning rates as the card and the logs write them: 1e-05, 2e-05."""
    return ", ".join(f"{lr:g}" for lr in rates)
