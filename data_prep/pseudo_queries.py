"""Pseudo-queries drawn from the corpus itself, for a warm start without labels (inverse cloze).

A passage with a title gives its title as the query and its text as the positive; one without gives one of its
sentences, cut out of it (Lee et al. 2019, "Latent Retrieval for Weakly Supervised Open Domain QA"): the query is
then never a substring of its positive, so what a reranker learns from it is to match meaning, not to find a copy.
A passage of one long sentence (no punctuation, as in NPL) gives a span of its words, cut out likewise. Passages
too short to leave a query and a passage are skipped. Deterministic in the seed: the same corpus and seed give
the same queries on any machine."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Literal

from .collection import Document

QuerySource = Literal["auto", "title", "sentence"]
QUERY_SOURCE_HELP = ("auto: a passage's title where it has one, else one of its sentences (or a span of its words) "
                     "cut out of it; title: titled passages only; sentence: a sentence cut out of every passage.")

MIN_QUERY_WORDS = 4
MAX_QUERY_WORDS = 32
MIN_REST_WORDS = 12  # what is left of the passage must still be one
SPAN_WORDS = (6, 14)  # a span cut from a passage with no sentence to take
# A sentence ends at . ! ? followed by a space (MEDLINE writes " . " between its sentences).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class PseudoQuery:
    query_id: str
    doc_id: str
    query: str
    positive: str  # the passage as the reranker sees it, the query cut out (or its text without the title)
    from_title: bool  # the query is the title: every document of its group is shown without its title


def pseudo_queries(corpus: dict[str, Document], limit: int, source: QuerySource = "auto",
                   seed: int = 13) -> list[PseudoQuery]:
    """Up to `limit` pseudo-queries, from passages drawn at random (seeded), one query per passage."""
    ids = sorted(corpus)
    random.Random(seed).shuffle(ids)
    made = []
    for doc_id in ids:
        if len(made) >= limit:
            break
        rng = random.Random(f"{seed}\x00{doc_id}")  # per passage: a query does not depend on the others drawn
        query = _from_passage(corpus[doc_id], source, rng)
        if query is not None:
            text, positive, from_title = query
            made.append(PseudoQuery(f"pseudo-{doc_id}", doc_id, text, positive, from_title))
    return made


def _from_passage(doc: Document, source: QuerySource, rng: random.Random) -> tuple[str, str, bool] | None:
    title, text = " ".join(doc.title.split()), " ".join(doc.text.split())
    if source != "sentence" and title:
        if _words(title) >= MIN_QUERY_WORDS and _words(text) >= MIN_REST_WORDS:
            return title, text, True
        return None
    if source == "title":
        return None
    return _cut_sentence(doc.full_text if source == "sentence" else text, rng)


def _cut_sentence(passage: str, rng: random.Random) -> tuple[str, str, bool] | None:
    """(a sentence, the passage without it) -- or a span of words where there is no sentence to take."""
    sentences = [s for s in _SENTENCE_END.split(passage) if s.strip()]
    fits = [i for i, s in enumerate(sentences) if MIN_QUERY_WORDS <= _words(s) <= MAX_QUERY_WORDS]
    if len(sentences) > 1 and fits:
        i = rng.choice(fits)
        rest = " ".join(sentences[:i] + sentences[i + 1:])
        if _words(rest) >= MIN_REST_WORDS:
            return _clean(sentences[i]), rest, False
    words = passage.split()
    size = rng.randint(*SPAN_WORDS)
    if len(words) < size + MIN_REST_WORDS:
        return None
    start = rng.randrange(len(words) - size + 1)
    return " ".join(words[start:start + size]), " ".join(words[:start] + words[start + size:]), False


def _clean(sentence: str) -> str:
    return sentence.strip().rstrip(" .")


def _words(text: str) -> int:
    return len(text.split())
