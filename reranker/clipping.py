"""Cutting a text to what its first (or last) max_length tokens can span, before the tokenizer reads it.

A fast tokenizer reads every character of a text before it truncates, so a 10 MB document would cost 10 MB of
tokenising to score 512 tokens of it. Texts are therefore cut first, at `CHARS_PER_TOKEN_BOUND` characters per
token. A cut by characters alone is wrong for characters that make no token: 20,000 spaces (or newlines, or
zero-width spaces) before a document's text would fill the cut, and the document would score as an empty one.

So each tokenizer is probed once (`Blanks.of`) for the characters its normaliser and pre-tokenizer turn into
nothing (zero-width space, BOM, soft hyphen, control codes for a BERT tokenizer) or into a mere word boundary
(spaces, tabs, newlines, NBSP, em space), with runs of them checked to tokenise like one. Before the cut, every
run of such characters is collapsed: to one space when it holds a boundary, to nothing otherwise. What the
tokenizer is then given tokenises exactly like the whole text up to the cut, and costs at most the cut's length
plus one pass of the C regex engine over the runs it skipped. A tokenizer for which runs are not inert (a
SentencePiece model that keeps every space as a token) gets no collapsing: there the padding is content.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
import weakref
from dataclasses import dataclass

from rerankforge.core.text import INVISIBLE_CATEGORIES

CHARS_PER_TOKEN_BOUND = 32
"""Characters one token spans at most in ordinary text (English averages about 4, CJK about 1). A text
cut to this many characters per token it may keep tokenises like the whole text up to that many tokens."""


@dataclass(frozen=True)
class Blanks:
    """The characters one tokenizer makes nothing of, found by probing it."""

    separators: str = ""
    """Characters that only mark a word boundary: any run of them tokenises like one space."""
    vanishing: str = ""
    """Characters the tokenizer drops: a run of them between two words joins the words."""

    @staticmethod
    def of(tokenizer) -> "Blanks":
        """The probe's answer for `tokenizer` (cached per tokenizer object)."""
        try:
            return _PROBED[tokenizer]
        except (KeyError, TypeError):
            pass
        blanks = _probe(tokenizer)
        try:
            _PROBED[tokenizer] = blanks
        except TypeError:  # not weak-referenceable: probe again next time
            pass
        return blanks

    @functools.cached_property
    def _runs(self) -> re.Pattern | None:
        if not self.separators and not self.vanishing:
            return None
        every, vanishing = _char_class(self.separators + self.vanishing), _char_class(self.vanishing)
        # Runs of two or more, and single vanishing characters; a lone separator is already collapsed.
        return re.compile(f"{every}{{2,}}" + (f"|{vanishing}" if self.vanishing else ""))

    @functools.cached_property
    def _span(self) -> re.Pattern:
        return re.compile(_char_class(self.separators + self.vanishing) + "*")

    @functools.cached_property
    def _separator(self) -> re.Pattern:
        return re.compile(_char_class(self.separators)) if self.separators else re.compile("(?!)")


@dataclass(frozen=True)
class Clip:
    """A text as cut for the tokenizer."""

    text: str
    """What the tokenizer is given."""
    whole: bool
    """True when nothing was cut off (runs may still have been collapsed)."""


def clip(text: str, max_tokens: int, blanks: Blanks = Blanks(), left: bool = False) -> Clip:
    """`text` cut to what its first (or, `left`, last) `max_tokens` tokens can span, runs of `blanks` collapsed
    so they take no room in the cut. A text short enough is returned as it is."""
    budget = max_tokens * CHARS_PER_TOKEN_BOUND
    if len(text) <= budget:
        return Clip(text, True)
    runs = blanks._runs
    if runs is None:
        return Clip(text[-budget:] if left else text[:budget], False)
    source, n = (text[::-1] if left else text), len(text)
    pieces, kept, pos = [], 0, 0
    while pos < n and kept <= budget:
        window = min(n, pos + budget - kept + 1)  # never read more than one character past the budget
        run = runs.search(source, pos, window)
        stop = run.start() if run else window
        pieces.append(source[pos:stop])
        kept += stop - pos
        if run is None or kept > budget:
            pos = stop
            continue
        pos = blanks._span.match(source, run.end()).end()  # the whole run, past the window if it goes on
        space = " " if blanks._separator.search(source, run.start(), pos) else ""
        pieces.append(space)
        kept += len(space)
    cut = "".join(pieces)
    return Clip(cut[:budget][::-1] if left else cut[:budget], pos >= n and kept <= budget)


def clip_text(text: str, max_tokens: int, blanks: Blanks = Blanks(), left: bool = False) -> str:
    """The text of `clip(text, max_tokens, blanks, left)`."""
    return clip(text, max_tokens, blanks, left).text


_PROBED: "weakref.WeakKeyDictionary[object, Blanks]" = weakref.WeakKeyDictionary()


def _char_class(chars: str) -> str:
    """A regex class of `chars` written as ranges: a class of 250 single characters makes a search 8x slower."""
    points, ranges = sorted(set(map(ord, chars))), []
    for point in points:
        if ranges and ranges[-1][1] == point - 1:
            ranges[-1][1] = point
        else:
            ranges.append([point, point])
    return "[" + "".join(re.escape(chr(a)) + (f"-{re.escape(chr(b))}" if b > a else "") for a, b in ranges) + "]"


@functools.cache
def _candidates() -> str:
    """Every character Unicode counts as space, separator, control or format (about 250)."""
    return "".join(ch for ch in map(chr, range(sys.maxunicode + 1))
                   if unicodedata.category(ch) in INVISIBLE_CATEGORIES or ch.isspace())


def _probe(tokenizer) -> Blanks:
    """Which candidate characters `tokenizer`'s normaliser and pre-tokenizer reduce to a word boundary or to
    nothing, alone and in runs. The vocabulary plays no part (pieces are compared before it is applied), so a
    tiny test vocabulary gives the same answer as the full one."""
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is None or not hasattr(backend, "pre_tokenizer"):
        return Blanks()  # a slow (Python) tokenizer: no probe, a plain cut

    def pieces(text: str) -> list[str]:
        if backend.normalizer is not None:
            text = backend.normalizer.normalize_str(text)
        if backend.pre_tokenizer is None:
            return [text]
        return [piece for piece, _ in backend.pre_tokenizer.pre_tokenize_str(text)]

    try:
        apart, together = pieces("ward kin"), pieces("wardkin")
        separators, vanishing = [], []
        for ch in _candidates():
            one, three = pieces(f"ward{ch}kin"), pieces(f"ward{ch * 3}kin")
            if one == three == apart and pieces(f"{ch}ward{ch}") == pieces("ward"):
                separators.append(ch)
            elif one == three == together and pieces(f"{ch}ward{ch}") == pieces("ward"):
                vanishing.append(ch)
        blanks = Blanks("".join(separators), "".join(vanishing))
        mixed = "".join(separators + vanishing) * 2
        if (pieces(f"ward{mixed}kin") != (apart if separators else together)
                or (vanishing and pieces(f"ward{''.join(vanishing) * 2}kin") != together)):
            return Blanks()  # runs that mix them do not behave like their parts: cut plainly
        return blanks
    except Exception:  # a custom normaliser or pre-tokenizer the probe cannot drive
        return Blanks()
