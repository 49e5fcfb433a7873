"""Generators for `Pipeline.ask`: an OpenAI-compatible chat endpoint (vLLM, Ollama, OpenAI, TGI...), a
local transformers causal LM (a folder, or a GGUF file dequantised by transformers), or none; the clients
themselves are data_prep/llm.py's."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from rerankforge.core.errors import ConfigError
from rerankforge.core.llm import GeneratorError, LocalCausalLM, OpenAIChat  # noqa: F401 (serve's names)


@dataclass
class GeneratorConfig:
    generator: Literal["none", "openai", "local"] = field(default="none", metadata={
        "help": "none: return the prompt and sources only; openai: an OpenAI-compatible chat endpoint; local: a "
                "transformers causal LM folder or .gguf file."})
    generator_model: str | None = field(default=None, metadata={
        "help": "openai: the model name the endpoint serves; local: a folder or a .gguf file path."})
    generator_base_url: str | None = field(default=None, metadata={
        "help": "openai: base URL, e.g. http://localhost:8000/v1 (default: $OPENAI_BASE_URL)."})
    generator_api_key_env: str = field(default="OPENAI_API_KEY", metadata={
        "help": "openai: the environment variable holding the API key (keys are never put in config files)."})
    max_new_tokens: int = field(default=256, metadata={"help": "Longest answer, in tokens."})
    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature (0: greedy)."})
    answer_prefix: str | None = field(default=None, metadata={
        "help": "local: text the answer is made to start with (the model continues it). Small models that ignore "
                "the citation instruction do cite when the answer starts 'According to source ['."})
    generator_timeout: float = field(default=60.0, metadata={"help": "openai: seconds to wait for an answer."})


def build_generator(config: GeneratorConfig):
    if config.generator == "none":
        return None
    if not config.generator_model:
        raise ConfigError(f"generator_model is required with generator: {config.generator}")
    if config.generator == "openai":
        base_url = config.generator_base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise ConfigError("generator_base_url (or $OPENAI_BASE_URL) is required with generator: openai")
        return OpenAIChat(base_url, config.generator_model, os.environ.get(config.generator_api_key_env),
                          config.max_new_tokens, config.temperature, config.generator_timeout)
    return LocalCausalLM(config.generator_model, config.max_new_tokens, config.temperature, config.answer_prefix)


