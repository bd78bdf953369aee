"""How this provider words what it tells users: short texts cut at a word boundary, counts with
the right plural. Pure functions, no I/O."""

from __future__ import annotations

ELLIPSIS = "…"


def shorten(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, cut at a word boundary and ending in "…" when
    cut (mid-word only when one word is longer than most of the limit)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    room = max(0, limit - len(ELLIPSIS))
    cut = text[: room + 1].rsplit(" ", 1)[0] if " " in text[: room + 1] else ""
    if len(cut) < room // 2:  # no usable word boundary: cut the long word itself
        cut = text[:room]
    return cut.rstrip(" ,;:.—-") + ELLIPSIS


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 attempt``, ``3 attempts``."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"
