"""The cross-encoder being trained: any Hugging Face encoder as a single-logit sequence classifier,
optionally cut to its first layers (a distillation student), optionally wrapped with LoRA adapters.
Saving it is the reranker folder's business (rerankforge.reranker.folder.save_reranker)."""

from __future__ import annotations

from rerankforge.reranker.folder import new_head_expected

from .config import TrainConfig


def load_model(config: TrainConfig, folder: str):
    """(model, tokenizer) for training, from a resolved model folder."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

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

