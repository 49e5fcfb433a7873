"""The cross-encoder being trained: any Hugging Face encoder as a single-logit sequence classifier,
optionally cut to its first layers (a distillation student), optionally wrapped with LoRA adapters.
Saving it is the reranker folder's business (rerankforge.reranker.folder.save_reranker)."""

from __future__ import annotations

from rerankforge.core.errors import ConfigError
from rerankforge.reranker.folder import new_head_expected

from .config import TrainConfig


def load_model(config: TrainConfig, folder: str):
    """(model, tokenizer) for training, from a resolved model folder."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    # A student keeps the first `student_layers` layers: the config says fewer layers, so from_pretrained copies
    # the embeddings, those layers and the head, and leaves the later layers' weights unread. Chosen layers
    # (`student_layer_ids`) are picked from the full model instead.
    ids = config.student_layer_ids
    cut = {"num_hidden_layers": config.student_layers} if config.student_layers is not None and not ids else {}
    dropout, own_dropout = dropout_overrides(config, folder)
    with new_head_expected():  # starting from an encoder, the scoring head is new; a student drops layers
        model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, **cut, **dropout)
    # The modules keep the training dropout; the saved config keeps the model's own, for whoever trains it next.
    model.config.update(own_dropout)
    if ids:
        keep_layers(model, ids)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model.config.id2label, model.config.label2id = {0: "LABEL_0"}, {"LABEL_0": 0}
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.lora:
        model = add_lora(model, config)
    return model, tokenizer


# Config attribute names of the two dropouts, across the encoder families (BERT, RoBERTa, XLM-R, ELECTRA, DeBERTa
# use the first; DistilBERT and ModernBERT the others).
DROPOUT_KEYS = {"attention_dropout": ("attention_probs_dropout_prob", "attention_dropout"),
                "hidden_dropout": ("hidden_dropout_prob", "dropout", "mlp_dropout")}


def dropout_overrides(config: TrainConfig, folder: str) -> tuple[dict[str, float], dict[str, float]]:
    """(from_pretrained keyword arguments for the dropouts `config` sets, the model's own values of those keys)."""
    from transformers import AutoConfig

    model_config = AutoConfig.from_pretrained(folder)
    overrides = {}
    for option, keys in DROPOUT_KEYS.items():
        value = getattr(config, option)
        if value is None:
            continue
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{option}: expected a probability in [0, 1), got {value!r}")
        present = [key for key in keys if hasattr(model_config, key)]
        if not present:
            raise ConfigError(f"{option}: the {model_config.model_type} model in {folder} has none of the config "
                              f"keys {', '.join(keys)}; leave {option} unset to train with its own dropout")
        overrides.update({key: value for key in present})
    return overrides, {key: getattr(model_config, key) for key in overrides}


def keep_layers(model, ids: list[int]) -> None:
    """Cut `model` to its transformer layers `ids` (in order); saved, it reads back as a plain smaller model."""
    import torch

    stack = _layer_stack(model)
    if stack is None:
        raise ConfigError(f"student_layer_ids: found no list of transformer layers in {type(model).__name__}; "
                          f"expected a BERT-like encoder (encoder.layer), or use student_layers alone")
    parent, name, layers = stack
    setattr(parent, name, torch.nn.ModuleList([layers[i] for i in ids]))
    for index, layer in enumerate(getattr(parent, name)):  # attention modules that know their place
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = index
    model.config.num_hidden_layers = len(ids)


def _layer_stack(model):
    """(parent module, attribute, ModuleList) of the encoder's layers: the first ModuleList as long as the model
    has layers (BERT's encoder.layer, XLM-R's likewise); None if there is none."""
    import torch

    for module in model.modules():
        for name, child in module.named_children():
            if isinstance(child, torch.nn.ModuleList) and len(child) == model.config.num_hidden_layers:
                return module, name, child
    return None


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

