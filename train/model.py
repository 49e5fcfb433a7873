"""The cross-encoder being trained: any Hugging Face encoder as a single-logit sequence classifier,
optionally cut to its first layers (a distillation student), optionally wrapped with LoRA adapters,
and saved as a plain folder that
`sentence_transformers.CrossEncoder(path)` (and transformers, and TEI) load.

With LoRA, the output folder holds the merged model (so it loads like any reranker) and an
`adapter/` subfolder holds the adapter with its scoring head (peft `modules_to_save`)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from rerankforge.data_prep.runs import readable_by_all

from .config import TrainConfig

ADAPTER_DIR = "adapter"


def load_model(config: TrainConfig, folder: str):
    """(model, tokenizer) for training, from a resolved model folder."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rerankforge.eval.reranking import new_head_expected

    # A student keeps the first `student_layers` layers: the config says fewer layers, so from_pretrained copies
    # the embeddings, those layers and the head, and leaves the later layers' weights unread.
    cut = {"num_hidden_layers": config.student_layers} if config.student_layers is not None else {}
    with new_head_expected():  # starting from an encoder, the scoring head is new; a student drops layers
        model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, **cut)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model.config.id2label, model.config.label2id = {0: "LABEL_0"}, {"LABEL_0": 0}
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.lora:
        model = add_lora(model, config)
    return model, tokenizer


def add_lora(model, config: TrainConfig):
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(task_type=TaskType.SEQ_CLS, r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=list(config.lora_target_modules))
    if config.gradient_checkpointing:
        model.enable_input_require_grads()
    return get_peft_model(model, lora)


def scoring_head_names(model) -> list[str]:
    """Names of the parameters of the scoring head (trained in full, also under LoRA)."""
    return [name for name, _ in model.named_parameters() if "classifier" in name or name.startswith("score.")]


def save_reranker(model, tokenizer, output_dir: str | Path, base_model: str) -> list[str]:
    """Write the reranker into `output_dir` (created or updated), file by file through a staging
    folder, so an interrupted save never leaves a half-written weights file. Returns the files written."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output_dir, prefix=".staging-"))
    try:
        if is_peft(model):
            adapter = staging / ADAPTER_DIR
            model.save_pretrained(adapter)
            tokenizer.save_pretrained(adapter)
            _set_adapter_base(adapter, base_model)
            merged = _merged_copy(model)
            merged.save_pretrained(staging)
        else:
            model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
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
    """Point the adapter at the base model as the user named it (a Hub id stays portable)."""
    import json

    config_file = adapter / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = base_model
    config_file.write_text(json.dumps(config, indent=2) + "\n")
