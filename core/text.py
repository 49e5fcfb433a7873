"""What counts as text: invisible characters (controls, zero-width, separators) are not content."""

from __future__ import annotations

import unicodedata


INVISIBLE_CATEGORIES = {"Cc", "Cf", "Zs", "Zl", "Zp"}
"""Unicode categories that carry no content: controls, format characters (zero-width space, joiners, BOM),
and separators."""


def is_blank(text: str) -> bool:
    """True when `text` holds nothing but whitespace, zero-width or other invisible characters."""
    return all(ch.isspace() or unicodedata.category(ch) in INVISIBLE_CATEGORIES for ch in text)
