"""`rerankforge generate-queries`: synthetic queries for a corpus nobody has labelled -- the first step of the
GPL / InPars recipe. An LLM writes, for passages sampled from the corpus, a question each one answers; filters
drop empty, too short or too long, duplicate and copied queries (a query that is a span of its passage teaches
a reranker to match words, not to judge relevance); what is kept is a BEIR folder

    OUT/corpus.jsonl  queries.jsonl  qrels/train.tsv  generation.summary.json

that `mine-negatives --data OUT --split train`, `score-teacher` and `train` take like any collection. Every
generated query is appended to OUT/.generated.jsonl as it comes, so an interrupted run resumes."""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from rerankforge.core.errors import ConfigError
from rerankforge.core.llm import read_prompt
from rerankforge.core.outputs import check_output_folder

FILTERS = ("empty", "too_short", "too_long", "copied", "duplicate")
OURS = {"corpus.jsonl", "queries.jsonl", "qrels", "generation.summary.json", ".generated.jsonl"}


@dataclass
class GenerationPrompt:
    """The chat the generator is given; {passage} is filled in (a YAML file with these keys)."""

    system: str = field(default="You write search queries. Reply with the query only.", metadata={
        "help": "System message."})
    user: str = field(default="Write one question that the following passage answers. Use your own words; do not "
                              "copy sentences from it.\n\nPassage: {passage}\n\nQuestion:", metadata={
        "help": "User message, with {passage}."})

    def __post_init__(self):
        if "{passage}" not in self.user:
            raise ConfigError(f"prompt user: expected the placeholder {{passage}} in the user message, got {self.user!r}")

    def messages(self, passage: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user.replace(
            "{passage}", passage)}]


@dataclass
class GenerateQueriesArgs:
    data: str = field(metadata={"help": "The corpus: a BEIR folder or dataset name (only its corpus.jsonl is read)."})
    output: str = field(metadata={"help": "Folder to write the synthetic collection into (new or empty, or an "
                                          "earlier run of the same command, which is resumed)."})
    generator: Literal["causal-lm", "openai"] = field(metadata={
        "help": "causal-lm: a local transformers folder, Hub id or .gguf file; openai: an OpenAI-compatible "
                "endpoint (--base_url)."})
    model: str = field(metadata={"help": "causal-lm: the folder / .gguf file; openai: the model name it serves."})
    base_url: str | None = field(default=None, metadata={"help": "openai: base URL, e.g. http://localhost:8000/v1."})
    api_key_env: str | None = field(default=None, metadata={"help": "openai: environment variable with the API key."})
    prompt: str | None = field(default=None, metadata={
        "help": "A YAML file with `system` and `user` (with {passage}); default a plain 'write a question' prompt."})
    num_passages: int = field(default=1000, metadata={"help": "Passages sampled from the corpus (at most all)."})
    max_passage_chars: int = field(default=2000, metadata={"help": "Passage text given to the generator, cut here."})
    max_new_tokens: int = field(default=48, metadata={"help": "Longest query, in tokens."})
    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature (0: greedy)."})
    min_words: int = field(default=3, metadata={"help": "Queries with fewer words are dropped (too_short)."})
    max_words: int = field(default=40, metadata={"help": "Queries with more words are dropped (too_long)."})
    max_copied: float = field(default=0.8, metadata={
        "help": "Queries whose word trigrams appear in their passage in at least this share (or that are a span "
                "of it) are dropped (copied)."})
    seed: int = field(default=13, metadata={"help": "Seeds the passage sample."})


def clean_query(text: str) -> str:
    """The generator's reply as a query: its first non-empty line, without a 'Question:' label or quotes."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    line = re.sub(r"^(question|query|q)\s*[:.\-]\s*", "", line, flags=re.IGNORECASE)
    return line.strip().strip("\"'“”‘’`").strip()


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def copied_share(query: str, passage: str) -> float:
    """The share of the query's word trigrams found in the passage (1.0 for a query that is a span of it;
    for queries under three words, the share of their words)."""
    q, p = _words(query), _words(passage)
    n = 3 if len(q) >= 3 else 1
    grams = [tuple(q[i:i + n]) for i in range(len(q) - n + 1)]
    if not grams:
        return 0.0
    have = {tuple(p[i:i + n]) for i in range(len(p) - n + 1)}
    return sum(g in have for g in grams) / len(grams)


def query_filter(query: str, passage: str, seen: set[str], args: GenerateQueriesArgs) -> str | None:
    """Why the query is dropped (one of FILTERS), or None to keep it; a kept query joins `seen`."""
    words = _words(query)
    if not words:
        return "empty"
    if len(words) < args.min_words:
        return "too_short"
    if len(words) > args.max_words:
        return "too_long"
    if copied_share(query, passage) >= args.max_copied:
        return "copied"
    key = " ".join(words)
    if key in seen:
        return "duplicate"
    seen.add(key)
    return None


def build_generator(args: GenerateQueriesArgs):
    from rerankforge.core.llm import LocalCausalLM, OpenAIChat

    if args.generator == "openai":
        import os

        if not args.base_url:
            raise ConfigError("--base_url: the openai generator needs the endpoint, e.g. http://localhost:8000/v1")
        key = os.environ.get(args.api_key_env) if args.api_key_env else None
        if args.api_key_env and not key:
            raise ConfigError(f"--api_key_env: the environment variable {args.api_key_env} is unset or empty")
        return OpenAIChat(args.base_url, args.model, key, args.max_new_tokens, args.temperature)
    return LocalCausalLM(args.model, args.max_new_tokens, args.temperature)


def generate_queries(args: GenerateQueriesArgs, show_progress: bool = True) -> dict:
    """Write the synthetic collection into `args.output`; returns its summary."""
    from rerankforge.core.files import atomic_write_text
    from rerankforge.core.progress import progress_bar
    from .beir import load_corpus
    from .sources import resolve_dataset_dir

    out = check_output_folder(args.output, "--output")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in OURS) if out.is_dir() else []
    if foreign:
        raise ConfigError(f"--output {out}: holds files that are not a generated collection ({', '.join(foreign[:5])}); "
                          "expected a new or empty folder, or the folder of an earlier run to resume")
    prompt = read_prompt(args.prompt, GenerationPrompt)
    if args.num_passages < 1 or args.min_words < 1 or args.max_words < args.min_words or not 0 < args.max_copied <= 1:
        raise ConfigError("expected --num_passages >= 1, 1 <= --min_words <= --max_words and 0 < --max_copied <= 1; "
                          f"got {args.num_passages}, {args.min_words}, {args.max_words}, {args.max_copied}")
    corpus = load_corpus(args.data if Path(args.data).is_dir() else resolve_dataset_dir(args.data))
    doc_ids = sorted(corpus)
    sample = random.Random(args.seed).sample(doc_ids, min(args.num_passages, len(doc_ids)))
    out.mkdir(parents=True, exist_ok=True)
    log = out / ".generated.jsonl"
    settings = {"data": args.data, "generator": args.generator, "model": args.model, "prompt": asdict(prompt),
                "max_passage_chars": args.max_passage_chars, "max_new_tokens": args.max_new_tokens,
                "temperature": args.temperature, "seed": args.seed}
    done = _read_log(log, settings)
    generator = build_generator(args)
    started, todo = time.perf_counter(), [d for d in sample if d not in done]
    with log.open("a", encoding="utf-8") as f, progress_bar(total=len(todo), desc="generating queries",
                                                            unit="passage", disable=not show_progress) as progress:
        for doc_id in todo:
            passage = corpus[doc_id].full_text[:args.max_passage_chars]
            done[doc_id] = generator.generate(prompt.messages(passage))
            f.write(json.dumps({"doc_id": doc_id, "reply": done[doc_id]}, ensure_ascii=False) + "\n")
            f.flush()
            progress.update(1)
    seconds = time.perf_counter() - started

    seen: set[str] = set()
    dropped: Counter[str] = Counter()
    kept: list[tuple[str, str, str]] = []  # (query id, query, doc id)
    for doc_id in sample:
        query = clean_query(done[doc_id])
        reason = query_filter(query, corpus[doc_id].full_text, seen, args)
        if reason:
            dropped[reason] += 1
        else:
            kept.append((f"gen-{len(kept)}", query, doc_id))
    if not kept:
        raise ConfigError(f"generate-queries: every one of the {len(sample)} generated queries was dropped "
                          f"({dict(dropped)}); try another --model or --prompt")
    _write_collection(out, corpus, kept)
    summary = {**settings, "passages": len(sample), "generated_now": len(todo), "seconds": round(seconds, 1),
               "seconds_per_passage": round(seconds / len(todo), 3) if todo else None, "kept": len(kept),
               "dropped": {reason: dropped.get(reason, 0) for reason in FILTERS}}
    atomic_write_text(out / "generation.summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _read_log(path: Path, settings: dict) -> dict[str, str]:
    """Replies of an earlier run with the same settings (doc id -> reply); a log of other settings is restarted.
    A line cut short by an interruption is ignored: that passage is generated again."""
    header = json.dumps({"settings": settings}, sort_keys=True)
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    lines = text.splitlines()
    if lines[:1] != [header]:
        path.write_text(header + "\n", encoding="utf-8")
        return {}
    done = {}
    for line in lines[1:]:
        try:
            item = json.loads(line)
            done[str(item["doc_id"])] = str(item["reply"])
        except (ValueError, KeyError, TypeError):
            continue
    if not text.endswith("\n"):
        with path.open("a", encoding="utf-8") as f:
            f.write("\n")
    return done


def _write_collection(out: Path, corpus: dict, kept: list[tuple[str, str, str]]) -> None:
    """The synthetic collection, each file written atomically: the whole corpus (negatives are mined from it),
    the kept queries, and their source passages as the train split's qrels."""
    from rerankforge.core.files import atomic_write_text

    atomic_write_text(out / "corpus.jsonl", "".join(
        json.dumps({"_id": doc_id, "title": doc.title, "text": doc.text}, ensure_ascii=False) + "\n"
        for doc_id, doc in corpus.items()))
    (out / "qrels").mkdir(exist_ok=True)
    atomic_write_text(out / "queries.jsonl", "".join(json.dumps({"_id": qid, "text": q}, ensure_ascii=False) + "\n"
                                                     for qid, q, _ in kept))
    atomic_write_text(out / "qrels" / "train.tsv", "query-id\tcorpus-id\tscore\n" +
                      "".join(f"{qid}\t{doc_id}\t1\n" for qid, _, doc_id in kept))
