"""Generators for `Pipeline.ask`: an OpenAI-compatible chat endpoint (vLLM, Ollama, OpenAI, TGI...), a
local transformers causal LM (a folder, or a GGUF file dequantised by transformers), or none."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rerankforge.data_prep.errors import ConfigError, RerankforgeError


class GeneratorError(RerankforgeError):
    """The generator could not answer (endpoint down, bad key, ...)."""


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


class OpenAIChat:
    """POST {base_url}/chat/completions, the API that vLLM, Ollama, TGI, llama.cpp's server and OpenAI share."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, max_new_tokens: int = 256,
                 temperature: float = 0.0, timeout: float = 60.0):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key = model, api_key
        self.max_new_tokens, self.temperature, self.timeout = max_new_tokens, temperature, timeout
        self.name = f"openai:{model}"

    def generate(self, messages: list[dict[str, str]]) -> str:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {"model": self.model, "messages": messages, "max_tokens": self.max_new_tokens,
                "temperature": self.temperature}
        try:
            response = httpx.post(self.url, json=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as error:
            raise self._failed(f"request failed ({type(error).__name__}: {error})") from None
        if response.status_code != 200:
            raise self._failed(f"HTTP {response.status_code}: {response.text[:300]}")
        try:
            return response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise self._failed(f"expected an OpenAI chat completion, got {response.text[:300]}") from None

    def _failed(self, what: str) -> GeneratorError:
        """The error for the server log (clients never see it), without our key should the upstream echo it."""
        message = f"generator {self.url}: {what}"
        return GeneratorError(message.replace(self.api_key, "***") if self.api_key else message)


class LocalCausalLM:
    """A transformers causal LM with a chat template, greedy by default. A `.gguf` path is loaded through
    transformers' GGUF support (needs the `gguf` package; weights are dequantised)."""

    def __init__(self, path: str, max_new_tokens: int = 256, temperature: float = 0.0,
                 answer_prefix: str | None = None):
        import threading

        from transformers import AutoModelForCausalLM, AutoTokenizer

        source = Path(path)
        if not source.exists():
            raise ConfigError(f"generator_model: no such folder or .gguf file: {path}")
        kwargs = {"gguf_file": source.name} if source.suffix == ".gguf" else {}
        folder = source.parent if kwargs else source
        self.tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        self.model = AutoModelForCausalLM.from_pretrained(folder, **kwargs).eval()
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.answer_prefix = answer_prefix or ""
        self.name = f"local:{source.name}"
        self._lock = threading.Lock()  # one generation at a time: the model is not re-entrant

    def generate(self, messages: list[dict[str, str]]) -> str:
        import torch

        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        encoded = self.tokenizer(prompt + self.answer_prefix, return_tensors="pt", add_special_tokens=False)
        inputs = {key: encoded[key] for key in ("input_ids", "attention_mask")}  # not token_type_ids
        sampling = {"do_sample": True, "temperature": self.temperature} if self.temperature > 0 else {"do_sample": False}
        with self._lock, torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens,
                                         pad_token_id=self.tokenizer.eos_token_id, **sampling)
        answer = self.tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        return (self.answer_prefix + answer).strip()
