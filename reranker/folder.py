"""The reranker folder: what `rerankforge train` writes and every stage loads.

A plain model folder that `sentence_transformers.CrossEncoder(path)` (and transformers, and TEI) load:
a single-logit sequence classifier with its tokenizer, plus

    rerankforge.json   RerankerSettings: the length trained at, the served ranking's combination of the
                       reranker with the first stage's signals and the calibration, both fitted on dev
    bm25_statistics.json
                       where the request ranking weighs BM25: the corpus's BM25 statistics (core/lexical.py),
                       what a rerank request's documents are scored with
    adapter/           with LoRA: the adapter with its scoring head (peft `modules_to_save`), whose
                       base is the merged model's starting point; it carries the same rerankforge.json

The folder is also a sentence-transformers CrossEncoder as version 6 saves one: config_sentence_transformers.json
(model_type CrossEncoder, `activation_fn` Sigmoid -- what `predict` applies), modules.json (one Transformer module
at the root) and sentence_bert_config.json (sequence classification, logits as scores). config.json repeats the
activation under `sentence_transformers`, where versions 4 and 5 read it. The tokenizer's `model_max_length` is
the length trained at, so `CrossEncoder(path)` truncates as in training.

With LoRA the folder itself holds the merged model, so it loads like any reranker. An adapter folder
is loaded by merging it into its base (`load_adapter_merged`), so scoring costs the same either way."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rerankforge.core.errors import DataError, ModelNotFoundError
from rerankforge.core.files import atomic_write_text, readable_by_all
from rerankforge.core.lexical import BM25_STATISTICS, BM25Statistics

from .calibration import SIGMOID, Calibration
from .combiner import Combiner, check_weights

SETTINGS = "rerankforge.json"
ADAPTER_DIR = "adapter"
ADAPTER_CONFIG = "adapter_config.json"  # peft's name: its presence makes a folder an adapter
# What CrossEncoder.predict applies to the logit: the sigmoid, its own default for one label, written down so the
# folder says it rather than a library default (a Platt-calibrated probability is rerankforge.json's business).
ACTIVATION_FN = "torch.nn.modules.activation.Sigmoid"


@dataclass
class RerankerSettings:
    """What a reranker folder says about how to use its model, beyond the weights (rerankforge.json)."""

    max_length: int | None = field(default=None, metadata={
        "help": "Max tokens of a (query, document) pair, as trained; None: the tokenizer's length (at most 512)."})
    fusion_weight: float = field(default=1.0, metadata={
        "help": "Written before fusion_weights: the weight of the reranker's score against the candidate list's "
                "own (z-standardised per query, 0..1; 1.0 the reranker alone). Read where fusion_weights is absent."})
    fusion_weights: dict[str, float] | None = field(default=None, metadata={
        "help": "The served ranking (reranker/combiner.py): a weight per signal -- reranker, dense, bm25, "
                "first_stage -- each signal z-standardised over a query's candidates; fitted on dev. None: "
                "fusion_weight says it."})
    fusion_first_stage: str | None = field(default=None, metadata={
        "help": "The first stage the fusion weights were fitted on (hybrid, dense or bm25): serve retrieves with "
                "it by default. None: not recorded."})
    request_fusion_weights: dict[str, float] | None = field(default=None, metadata={
        "help": "The ranking rerank requests get when their documents come in first-stage order: weights of the "
                "reranker, position (the order sent) and bm25 (scored from the documents' text with the folder's "
                "bm25_statistics.json) only, fitted on dev. None: the served ranking where it needs nothing else, "
                "else the reranker alone."})
    fusion_chosen_on: str | None = field(default=None, metadata={
        "help": "Where the fusion weights were chosen (e.g. 'dev split (40 train queries)'); None: not chosen."})
    calibration_scale: float | None = field(default=None, metadata={
        "help": "Platt scaling (reranker/calibration.py): relevance probability = sigmoid(scale x raw score + "
                "bias), fitted on dev; None: the plain sigmoid of the raw score."})
    calibration_bias: float | None = field(default=None, metadata={"help": "See calibration_scale."})
    calibration_fitted_on: str | None = field(default=None, metadata={
        "help": "Where the calibration was fitted (e.g. 'dev split (80 train queries, 4000 candidates)')."})
    relevance_targets: dict | None = field(default=None, metadata={
        "help": "The relevance threshold that reached each target precision and recall on the same dev candidates: "
                "{\"precision\": {\"0.80\": 0.42, ...}, \"recall\": {...}}, what min_precision / min_recall "
                "read (reranker/calibration.py)."})

    @property
    def combiner(self) -> Combiner:
        """How the served ranking combines the reranker with the first stage: `fusion_weights`, else the
        one-number `fusion_weight` (reranker vs the candidate list's own score)."""
        if self.fusion_weights is not None:
            return Combiner(self.fusion_weights, self.fusion_chosen_on, self.fusion_first_stage)
        return Combiner.with_first_stage(self.fusion_weight, self.fusion_chosen_on, self.fusion_first_stage)

    def request_combiner_for(self, bm25: bool) -> Combiner:
        """The ranking for rerank requests whose documents come in first-stage order (`request_fusion_weights`),
        in a folder with (`bm25`) or without the corpus's BM25 statistics: where `request_fusion_weights` is
        unset, the served ranking if a request can apply it, else the reranker alone."""
        if self.request_fusion_weights is not None:
            return Combiner(self.request_fusion_weights, self.fusion_chosen_on, self.fusion_first_stage)
        return self.combiner.for_requests(bm25)

    @property
    def calibration(self) -> Calibration:
        """The fitted calibration, or the plain sigmoid where none was fitted."""
        if self.calibration_scale is None:
            return SIGMOID
        return Calibration(self.calibration_scale, self.calibration_bias or 0.0, self.calibration_fitted_on,
                           self.relevance_targets)


def read_settings(folder: str | Path) -> RerankerSettings:
    """The settings in `folder`'s rerankforge.json; the defaults where it has none. Keys this version does
    not know are ignored, so a folder written by a newer rerankforge still loads."""
    path = Path(folder) / SETTINGS
    if not path.is_file():
        return RerankerSettings()
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: expected a JSON object, got unreadable JSON ({e})") from None
    if not isinstance(values, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(values).__name__}")
    settings = RerankerSettings(**{f.name: values[f.name] for f in dataclasses.fields(RerankerSettings)
                                   if f.name in values})
    _check(settings, path)
    return settings


def write_settings(folder: str | Path, settings: RerankerSettings) -> None:
    """Write `settings` as `folder`'s rerankforge.json, atomically; unset (None) fields are left out."""
    _check(settings, SETTINGS)
    values = {k: v for k, v in dataclasses.asdict(settings).items() if v is not None}
    atomic_write_text(Path(folder) / SETTINGS, json.dumps(values, indent=2) + "\n")


def write_bm25_statistics(folder: str | Path, statistics: BM25Statistics | None) -> None:
    """`folder`'s bm25_statistics.json: `statistics` written atomically, or, with None, any earlier file removed
    (a request ranking that does not weigh BM25 needs none)."""
    if statistics is None:
        (Path(folder) / BM25_STATISTICS).unlink(missing_ok=True)
    else:
        statistics.save(folder)


def _check(settings: RerankerSettings, where: object) -> None:
    length, weight, chosen_on = settings.max_length, settings.fusion_weight, settings.fusion_chosen_on
    if length is not None and (type(length) is not int or length < 1):
        raise DataError(f"{where}: max_length: expected a positive whole number or null, got {length!r}")
    if type(weight) not in (int, float) or not 0 <= weight <= 1:
        raise DataError(f"{where}: fusion_weight: expected a number from 0 to 1, got {weight!r}")
    if settings.fusion_weights is not None:
        check_weights(settings.fusion_weights, f"{where}: fusion_weights")
    if settings.request_fusion_weights is not None:
        check_weights(settings.request_fusion_weights, f"{where}: request_fusion_weights")
        if not Combiner(settings.request_fusion_weights).request_ready:
            raise DataError(f"{where}: request_fusion_weights: expected weights of reranker, position and bm25 only "
                            f"(what a rerank request carries), got {settings.request_fusion_weights!r}")
    if settings.fusion_first_stage not in (None, "hybrid", "dense", "bm25"):
        raise DataError(f"{where}: fusion_first_stage: expected hybrid, dense, bm25 or null, got "
                        f"{settings.fusion_first_stage!r}")
    if chosen_on is not None and not isinstance(chosen_on, str):
        raise DataError(f"{where}: fusion_chosen_on: expected a string or null, got {chosen_on!r}")
    for key in ("calibration_scale", "calibration_bias"):
        value = getattr(settings, key)
        if value is not None and (type(value) not in (int, float) or not math.isfinite(value)):
            raise DataError(f"{where}: {key}: expected a finite number or null, got {value!r}")
    if (settings.calibration_scale is None) != (settings.calibration_bias is None):
        raise DataError(f"{where}: expected calibration_scale and calibration_bias together, got only one")
    _check_targets(settings.relevance_targets, where)


def _check_targets(targets: object, where: object) -> None:
    """None, or {"precision"|"recall": {"0.80": a threshold from 0 to 1, ...}}."""
    if targets is None:
        return
    shape = 'an object such as {"precision": {"0.80": 0.42}, "recall": {"0.50": 0.1}}'
    if not isinstance(targets, dict) or not set(targets) <= {"precision", "recall"}:
        raise DataError(f"{where}: relevance_targets: expected {shape}, got {targets!r}"[:300])
    for metric, table in targets.items():
        if not isinstance(table, dict):
            raise DataError(f"{where}: relevance_targets.{metric}: expected {shape}, got {table!r}"[:300])
        for target, threshold in table.items():
            try:
                fine = 0 < float(target) < 1 and type(threshold) in (int, float) and 0 <= threshold <= 1
            except ValueError:
                fine = False
            if not fine:
                raise DataError(f"{where}: relevance_targets.{metric}: expected a target from 0 to 1 mapped to a "
                                f"threshold from 0 to 1, got {target!r}: {threshold!r}")


def save_reranker(model, tokenizer, output_dir: str | Path, base_model: str,
                  settings: RerankerSettings | None = None, bm25: BM25Statistics | None = None) -> list[str]:
    """Write the reranker into `output_dir` (created or updated), file by file through a staging
    folder, so an interrupted save never leaves a half-written weights file. A peft model is saved
    merged, with its adapter in `adapter/` pointing at `base_model` as the user named it. `settings`,
    if given, go into rerankforge.json (the adapter's too), and `bm25` -- the corpus's statistics, where the
    request ranking weighs BM25 -- into bm25_statistics.json (`write_bm25_statistics`). Returns the files
    written."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for stale in output_dir.glob(".staging-*"):  # of a save that was killed: only ever half a model
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=output_dir, prefix=".staging-"))
    try:
        folders = [staging]
        if is_peft(model):
            adapter = staging / ADAPTER_DIR
            model.save_pretrained(adapter)
            (adapter / "README.md").unlink(missing_ok=True)  # peft's stub names the local base; the card replaces it
            tokenizer.save_pretrained(adapter)
            _set_adapter_base(adapter, base_model)
            merged = _merged_copy(model)
            merged.save_pretrained(staging)
            folders.append(adapter)
        else:
            model.save_pretrained(staging)
        write_sentence_transformers_config(staging)
        if settings is not None and settings.max_length is not None:
            tokenizer.model_max_length = settings.max_length  # CrossEncoder(path) then truncates as in training
        tokenizer.save_pretrained(staging)
        if settings is not None:
            for folder in folders:  # the adapter scores like the merged model, so it carries the same settings
                write_settings(folder, settings)
                write_bm25_statistics(folder, bm25)
            for folder in (output_dir, output_dir / ADAPTER_DIR):  # an earlier run's, which these settings don't use
                if bm25 is None:
                    (folder / BM25_STATISTICS).unlink(missing_ok=True)
        written = []
        for path in sorted(staging.rglob("*")):
            if path.is_file():
                target = output_dir / path.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                readable_by_all(path)
                os.replace(path, target)
                written.append(str(target.relative_to(output_dir)))
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def is_peft(model) -> bool:
    return hasattr(model, "peft_config")


def _merged_copy(peft_model):
    """A plain model with the adapters merged in, leaving the training model untouched."""
    import copy

    return copy.deepcopy(peft_model).merge_and_unload()


def _set_adapter_base(adapter: Path, base_model: str) -> None:
    """Point the adapter at its base model's Hub id (a packaged or cached copy of a Hub model included), so the
    adapter is portable; a base that exists only on this machine stays as the user named it, and `rerankforge
    push` leaves such an adapter out (train/hub.py)."""
    from rerankforge.core.models import hub_id_of

    config_file = adapter / ADAPTER_CONFIG
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = hub_id_of(base_model) or base_model
    config_file.write_text(json.dumps(config, indent=2) + "\n")


def local_adapter_base(folder: str | Path) -> str | None:
    """The base model of `folder`'s LoRA adapter where that base exists only on this machine (not a Hub id, so the
    adapter cannot be published); None where there is no adapter or its base is a Hub id."""
    from rerankforge.core.models import hub_id_of

    config_file = Path(folder) / ADAPTER_DIR / ADAPTER_CONFIG
    if not config_file.is_file():
        return None
    base = json.loads(config_file.read_text()).get("base_model_name_or_path")
    if isinstance(base, str) and hub_id_of(base) == base:
        return None
    return base if isinstance(base, str) else f"none ({config_file} has no base_model_name_or_path)"


# sentence-transformers 6's own CrossEncoder save (CrossEncoder.save_pretrained), file for file, less __version__
ST_MODULES = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"}]
ST_MODULE_CONFIG = {"transformer_task": "sequence-classification",
                    "modality_config": {"text": {"method": "forward", "method_output_name": "logits"}},
                    "module_output_name": "scores"}


def write_sentence_transformers_config(folder: Path) -> None:
    """Make `folder` a CrossEncoder as sentence-transformers saves one (version 6's files, and config.json's
    `sentence_transformers` block for versions 4 and 5), so CrossEncoder(path) applies the intended activation."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name, package in (("sentence_transformers", "sentence-transformers"), ("transformers", "transformers"),
                          ("pytorch", "torch")):
        try:
            versions[name] = version(package)
        except PackageNotFoundError:
            pass
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    config["sentence_transformers"] = {"activation_fn": ACTIVATION_FN,
                                       **({"version": versions["sentence_transformers"]}
                                          if "sentence_transformers" in versions else {})}
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    st_config = {"__version__": versions, "activation_fn": ACTIVATION_FN, "default_prompt_name": None,
                 "model_type": "CrossEncoder", "prompts": {}}
    for name, content in (("config_sentence_transformers.json", st_config), ("modules.json", ST_MODULES),
                          ("sentence_bert_config.json", ST_MODULE_CONFIG)):
        (folder / name).write_text(json.dumps(content, indent=2) + "\n")


def load_adapter_merged(folder: Path, dtype=None):
    """A LoRA adapter folder (written by `rerankforge train` with `lora: true`) merged into its base."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from rerankforge.core.models import resolve_model

    config = json.loads((folder / ADAPTER_CONFIG).read_text())
    base_ref = config.get("base_model_name_or_path")
    if not base_ref:
        raise ModelNotFoundError(f"{folder / ADAPTER_CONFIG}: expected 'base_model_name_or_path', got none")
    with new_head_expected():  # the base's head is replaced by the adapter's saved one
        base = AutoModelForSequenceClassification.from_pretrained(resolve_model(base_ref), num_labels=1, dtype=dtype)
    return PeftModel.from_pretrained(base, folder).merge_and_unload()


@contextmanager
def new_head_expected():
    """Silence transformers' "newly initialized: classifier" report where a fresh head is expected."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
