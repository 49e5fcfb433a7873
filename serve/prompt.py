"""The prompt of `Pipeline.ask`: the top-n passages, numbered so the answer can cite them as [1], [2]..."""

from __future__ import annotations

SYSTEM = ("You answer questions using only the numbered sources given. Cite the sources you use with their "
          "numbers in square brackets, like [1] or [2][3]. If the sources do not contain the answer, say so.")


def build_messages(query: str, passages) -> list[dict[str, str]]:
    """Chat messages (system + user) holding the question and the numbered sources."""
    sources = "\n\n".join(f"[{i}] {p.title + ': ' if p.title else ''}{p.text.strip()}"
                          for i, p in enumerate(passages, 1))
    user = (f"Question: {query.strip()}\n\nSources:\n\n{sources}\n\n"
            "Answer the question using the sources, citing their numbers in square brackets, like [1].")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def cited(answer: str, count: int) -> list[int]:
    """The source numbers (1..count) that `answer` cites, in order of first citation."""
    import re

    numbers = [int(n) for group in re.findall(r"\[(\d+(?:\s*,\s*\d+)*)\]", answer or "")
               for n in re.split(r"\s*,\s*", group)]
    return list(dict.fromkeys(n for n in numbers if 1 <= n <= count))
