"""`rerankforge score-teacher`: a mined file with a teacher's scores in place of the first stage's, to distil from.

    rerankforge score-teacher --input mined.jsonl --output mined.teacher.jsonl --teacher outputs/big-reranker
    rerankforge train --config ... --train_file mined.teacher.jsonl --loss listwise_kl   # distils from them

Teachers (`--kind`):
- cross-encoder: any cross-encoder folder or Hub id (a `rerankforge train` folder, a LoRA adapter folder);
- served: a `rerankforge train` folder's served ranking -- its score combined with the first stage's order (or,
  in older folders, its dense and BM25 scores) as fitted on its dev split (reranker/combiner.py) -- the ensemble,
  standardised over each row's documents, taken in their first-stage order (from the row's first-stage scores);
  needs --data, the collection the file was mined from;
- causal-lm: a local LLM judge (transformers folder / Hub id, or a .gguf file), yes/no next-token logits;
- openai: an LLM judge behind an OpenAI-compatible endpoint (--base_url, --teacher names the model).

Scores are cached as they come, pair by pair, in OUTPUT.teacher-cache.jsonl (keyed by the teacher, its prompt
and the pair's texts), so an interrupted run resumes where it stopped and a rerun costs nothing; the output is
written atomically at the end. Under `accelerate launch` the processes score a share of the pairs each, appending
to the one cache (core/processes.py). Each row keeps its first-stage scores as first_stage_positive_score /
first_stage_negative_scores and names its teacher."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rerankforge.core.commands import add_command
from rerankforge.core.errors import ConfigError, DataError
from rerankforge.core.hardware import use_cpu_threads
from rerankforge.core.processes import processes
from rerankforge.core.llm import read_prompt
from rerankforge.core.models import DEFAULT_BI_ENCODER

from .judges import JudgePrompt

logger = logging.getLogger(__name__)

SCORE_TEACHER_HELP = ("Add a teacher's scores to a mined n-tuple file for distillation: a cross-encoder, a trained "
                      "reranker's served ranking (as fitted on its dev split), or an LLM judge (local causal LM or an "
                      "OpenAI-compatible endpoint). Resumable: scores are cached as they come.")
CHUNK = 256  # pairs per scoring call: progress, and what an interruption can lose


@dataclass
class ScoreTeacherArgs:
    input: str = field(metadata={"help": "Mined n-tuple file (.jsonl or .parquet) from `rerankforge mine`."})
    output: str = field(metadata={"help": "The file to write (.jsonl): the same rows with the teacher's scores."})
    teacher: str = field(metadata={
        "help": "cross-encoder / served: a reranker folder or Hub id; causal-lm: a folder, Hub id or .gguf file; "
                "openai: the model name the endpoint serves."})
    kind: Literal["cross-encoder", "served", "causal-lm", "openai"] = field(default="cross-encoder", metadata={
        "help": "What the teacher is (see the module's doc: `rerankforge score-teacher --help`)."})
    data: str | None = field(default=None, metadata={
        "help": "served: the collection the file was mined from (its dense and BM25 scores of each row's ids)."})
    first_stage_model: str = field(default=DEFAULT_BI_ENCODER, metadata={
        "help": "served: the bi-encoder of the dense score (the one its served ranking was fitted with)."})
    base_url: str | None = field(default=None, metadata={
        "help": "openai: the API's base URL, e.g. http://localhost:8000/v1."})
    api_key_env: str | None = field(default=None, metadata={
        "help": "openai: environment variable holding the API key (never the key itself on the command line)."})
    prompt: str | None = field(default=None, metadata={
        "help": "LLM judges: a YAML file with `system` and `user` (with {query} and {passage}); default a plain "
                "yes/no relevance question."})
    max_length: int | None = field(default=None, metadata={
        "help": "cross-encoder / served: tokens per pair (default the model's own); causal-lm: passage tokens "
                "(default 512)."})
    batch_size: int = field(default=32, metadata={"help": "Pairs per forward pass (local models)."})
    concurrency: int = field(default=4, metadata={"help": "openai: requests in flight at once."})


def add_score_teacher_parser(subparsers) -> None:
    add_command(subparsers, "score-teacher", SCORE_TEACHER_HELP, [ScoreTeacherArgs], run_score_teacher,
                shares_work=True)


def run_score_teacher(args: ScoreTeacherArgs) -> int:
    from rerankforge.core.progress import progress_bar
    from rerankforge.data_prep.training_files.writing import write_rows

    from rerankforge.data_prep.training_files import read_training_rows

    output = _check_output(args)
    prompt = read_prompt(args.prompt, JudgePrompt) if args.kind in ("causal-lm", "openai") else None
    rows = read_training_rows(args.input)
    if args.kind == "served":
        _check_ids(rows, args.input)
    logger.info(f"using {use_cpu_threads()}")
    scorer, identity = _load_teacher(args, prompt)
    pairs = list(dict.fromkeys((row["query"], doc) for row in rows for doc in [row["positive"], *row["negatives"]]))
    team = processes()  # under a launcher, each process scores a share of the pairs into the one cache
    cache = _open_cache(team, cache_path(output), identity)
    todo = [pair for pair in pairs if cache.key(*pair) not in cache.scores]
    logger.info(f"{len(pairs)} distinct pairs in {len(rows)} rows; {len(pairs) - len(todo)} already scored "
                f"({cache.path.name}), {len(todo)} to score with {args.kind} teacher {args.teacher}"
                + (f" across {team.count} processes" if team.count > 1 else ""))
    share = team.share(todo)
    with progress_bar(total=len(share), desc="teacher scores", unit="pair") as progress:
        for start in range(0, len(share), CHUNK):
            chunk = share[start:start + CHUNK]
            cache.add(chunk, [float(s) for s in scorer.score(chunk)])
            progress.update(len(chunk))
    if team.count > 1:  # the other processes' scores, which this one's cache has not seen
        scored = team.gather([cache.scores[cache.key(*pair)] for pair in share])
        cache.scores.update((cache.key(*pair), score) for pair, score in zip(todo, scored))
    raw = {pair: cache.scores[cache.key(*pair)] for pair in pairs}
    combined = _served(args, rows, raw, scorer) if args.kind == "served" else None
    if not team.is_main:
        return 0
    written = write_rows(output, (_with_scores(row, i, raw, combined, f"{args.kind}: {args.teacher}")
                                  for i, row in enumerate(rows)))
    agreement = statistics.fmean(
        row_scores[0] > max(row_scores[1:], default=float("-inf"))
        for row_scores in (_row_scores(row, i, raw, combined) for i, row in enumerate(rows)))
    print(f"wrote {written} rows to {output}; the teacher ranks the labelled positive above every negative in "
          f"{agreement:.1%} of them")
    return 0


class ScoreCache:
    """Teacher scores of (query, document) pairs, appended to a JSONL file as they are computed: a header line
    naming the teacher, then {"k": key, "s": score} lines. A file made by another teacher is started afresh; a
    line cut short by an interruption is ignored (that pair is scored again)."""

    def __init__(self, path: Path, identity: str):
        self.path, self.identity = path, identity
        self.scores: dict[str, float] = {}
        header = json.dumps({"teacher": identity})
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        lines = text.splitlines()
        if lines[:1] == [header]:
            for line in lines[1:]:
                try:
                    item = json.loads(line)
                    self.scores[item["k"]] = float(item["s"])
                except (ValueError, KeyError, TypeError):
                    continue
            if not text.endswith("\n"):
                with path.open("a", encoding="utf-8") as f:  # finish the torn line so appends start clean
                    f.write("\n")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(header + "\n", encoding="utf-8")

    def key(self, query: str, doc: str) -> str:
        digest = hashlib.sha256(self.identity.encode())
        for text in (query, doc):
            digest.update(b"\x00" + text.encode("utf-8", "surrogatepass"))
        return digest.hexdigest()[:32]

    def add(self, pairs: list[tuple[str, str]], scores: list[float]) -> None:
        lines = []
        for pair, score in zip(pairs, scores, strict=True):
            key = self.key(*pair)
            self.scores[key] = score
            lines.append(json.dumps({"k": key, "s": score}) + "\n")
        with self.path.open("a", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # processes sharing the cache append whole chunks, never interleaved
            f.writelines(lines)
            f.flush()
            os.fsync(f.fileno())


def _open_cache(team, path: Path, identity: str) -> ScoreCache:
    """The cache, opened by the first process before the others (it starts the file afresh for a new teacher)."""
    cache = ScoreCache(path, identity) if team.is_main else None
    team.barrier()
    return cache or ScoreCache(path, identity)


def cache_path(output: Path) -> Path:
    return output.with_name(output.name + ".teacher-cache.jsonl")


def _check_output(args: ScoreTeacherArgs) -> Path:
    from rerankforge.core.outputs import check_output_file

    output = Path(args.output)
    if output.suffix != ".jsonl":
        raise ConfigError(f"--output {output}: expected a .jsonl file, got {output.suffix or 'no extension'}")
    if Path(args.input).resolve() == output.resolve():
        raise ConfigError(f"--output {output}: is the --input file; expected a new file (the input stays as it is)")
    check_output_file(output, "--output")
    if args.kind == "served" and not args.data:
        raise ConfigError("--data: the served teacher combines dense and BM25 scores of each row's documents; "
                          "expected the collection the file was mined from")
    if args.kind == "openai" and not args.base_url:
        raise ConfigError("--base_url: the openai teacher needs the endpoint, e.g. http://localhost:8000/v1")
    return output


def _check_ids(rows: list[dict], path: str) -> None:
    lacking = next((i for i, row in enumerate(rows) if "positive_id" not in row or "negative_ids" not in row), None)
    if lacking is not None:
        raise DataError(f"{path}: row {lacking + 1} has no positive_id / negative_ids; the served teacher needs "
                        f"the documents' ids (files from `rerankforge mine` carry them)")


def _load_teacher(args: ScoreTeacherArgs, prompt: JudgePrompt | None):
    """(something with `score(pairs)`, the identity its cache is keyed by)."""
    if args.kind == "openai":
        from .judges import OpenAIJudge

        judge = OpenAIJudge(args.base_url, args.teacher, prompt, args.api_key_env, concurrency=args.concurrency)
        return judge, json.dumps(["openai", args.base_url, args.teacher, prompt.system, prompt.user])
    if args.kind == "causal-lm":
        from .judges import CausalLMJudge

        judge = CausalLMJudge(args.teacher, prompt, max_length=args.max_length or 512, batch_size=args.batch_size)
        return judge, json.dumps(["causal-lm", _fingerprint(args.teacher), judge.max_length, prompt.system,
                                  prompt.user])
    from rerankforge.reranker.scoring import Reranker

    reranker = Reranker.load(args.teacher, max_length=args.max_length, batch_size=args.batch_size)
    return reranker, json.dumps(["cross-encoder", _fingerprint(args.teacher), reranker.max_length])


def _fingerprint(ref: str) -> str:
    """The teacher's files (a folder's scoring files, a .gguf file), or its Hub id as given."""
    from .teacher import model_fingerprint

    path = Path(ref)
    if path.is_dir():
        return model_fingerprint(str(path))
    if path.is_file():
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    return ref


def _served(args: ScoreTeacherArgs, rows: list[dict], raw: dict, reranker) -> list[dict[str, float]]:
    """Each row's documents ranked by the teacher folder's served ranking: doc id -> combined score."""
    from rerankforge.data_prep.first_stage import PARTS, FirstStage
    from rerankforge.data_prep.retrieval import RetrieverConfig

    combiner = reranker.combiner
    if not combiner.uses_reranker:
        logger.warning(f"{args.teacher}'s served ranking does not use its reranker ({combiner.describe()}): the "
                       "teacher is the first stage")
    corpus = _corpus(args.data)
    queries = {str(i): row["query"] for i, row in enumerate(rows)}
    ids = {str(i): [str(row["positive_id"]), *map(str, row["negative_ids"])] for i, row in enumerate(rows)}
    unknown = sorted({d for docs in ids.values() for d in docs if d not in corpus})
    if unknown:
        raise DataError(f"{args.input}: {len(unknown)} document ids are not in {args.data} (e.g. {unknown[0]}); "
                        f"is --data the collection the file was mined from?")
    kinds = [kind for kind in PARTS if kind in combiner.signals]
    signals = FirstStage.build(corpus, kinds, RetrieverConfig(model=args.first_stage_model)).signals(queries, ids, kinds)
    out = []
    for i, row in enumerate(rows):
        qid, texts = str(i), [row["positive"], *row["negatives"]]
        model = {doc: raw[(row["query"], text)] for doc, text in zip(ids[qid], texts)}
        order = _first_stage_order(args, row, i, ids[qid]) if "position" in combiner.signals else ids[qid]
        out.append(dict(combiner.rank(order, {"reranker": model, **{k: v[qid] for k, v in signals.items()}})))
    return out


def _first_stage_order(args: ScoreTeacherArgs, row: dict, index: int, ids: list[str]) -> list[str]:
    """A row's documents in its first stage's order (best first), from the first-stage scores the mined file
    carries: the served ranking weighs that order, and the row's own order (positive first) would give it away."""
    positive = row.get("first_stage_positive_score", row.get("positive_score"))
    negatives = row.get("first_stage_negative_scores", row.get("negative_scores"))
    if positive is None or not isinstance(negatives, list) or len(negatives) != len(ids) - 1:
        raise DataError(f"{args.input}: row {index + 1}: --kind served weighs the first stage's order, so it needs the "
                        f"row's first-stage scores (positive_score and negative_scores, as `rerankforge mine` writes "
                        f"them); got {'none' if positive is None else 'scores that do not match the documents'}")
    scores = dict(zip(ids, [positive, *negatives]))
    return sorted(ids, key=lambda doc: -scores[doc])


def _corpus(data: str) -> dict:
    """The corpus of --data: a BEIR folder's or dataset's corpus.jsonl (whatever splits it has), else the
    documents of a pairs file or Hugging Face dataset."""
    from rerankforge.data_prep.beir import load_corpus
    from rerankforge.data_prep.sources import load_collection, resolve_dataset_dir

    path = Path(data)
    if path.is_dir():
        return load_corpus(path)
    if not path.exists() and not data.startswith("hf:"):
        return load_corpus(resolve_dataset_dir(data))
    return load_collection(data, split="train").corpus


def _row_scores(row: dict, i: int, raw: dict, combined: list[dict[str, float]] | None) -> list[float]:
    if combined is not None:
        return [combined[i][str(row["positive_id"])], *(combined[i][str(d)] for d in row["negative_ids"])]
    return [raw[(row["query"], text)] for text in [row["positive"], *row["negatives"]]]


def _with_scores(row: dict, i: int, raw: dict, combined, teacher: str) -> dict:
    scores = _row_scores(row, i, raw, combined)
    out = {k: v for k, v in row.items() if k not in ("positive_score", "negative_scores")}
    if "positive_score" in row and "first_stage_positive_score" not in row:
        out["first_stage_positive_score"] = row["positive_score"]
        out["first_stage_negative_scores"] = row.get("negative_scores")
    return {**out, "positive_score": scores[0], "negative_scores": scores[1:], "teacher": teacher}
