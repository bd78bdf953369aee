r"""Outside text made safe to show: the one cleaner every server-sent string goes through before it
reaches a log line, an exception, an XCom report, a trigger event or the metadata DB.

:func:`clean_text` does, in this order and in linear time:

1. **read at most** :data:`READ_LIMIT` characters (a 1 MiB body costs what 16 KiB cost);
2. **strip** ANSI escape sequences and every control or formatting character (C0, C1, NEL,
   U+2028/2029, bidi overrides and isolates, zero-width characters...): line breaks and other
   spacing become one space, the rest is dropped, so no text can forge a log line or hide in
   one;
3. **scrub** known secrets (:func:`scrub`) in every form a server may echo them back (the
   characters of step 2 are stripped again after decoding, so neither a zero-width character
   nor an escaped one can split a secret past the scrubbing);
4. **shorten** to a stated bound, with a marker saying how much was cut (after scrubbing, so a
   cut never leaves the start of a secret behind).

A server that quotes a token in an error body rarely quotes it as sent: PHP's ``json_encode``
writes ``/`` as ``\/``, other encoders write ``+`` as ``\u002b``, a URL carries it
percent-encoded (``%2B``, or ``%252B`` once more), an HTML page as ``&#43;``, a form as ``+``
for a space, and a body nested in another escapes it twice (``\\u002b``). :func:`scrub` first
decodes all of those (a bounded number of passes, each one linear: a run of backslashes or of
``%25`` collapses in one step) and then looks for the secrets literally, so a run of backslashes
costs what any other text costs. A text that quoted a secret is shown decoded, with the secret
replaced by :data:`REDACTED`; any other text is shown as it came.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import unquote

REDACTED = "***"
MIN_SECRET_LENGTH = 4
"""Shorter values are not scrubbed: they would blank out ordinary words."""
READ_LIMIT = 16_384
"""Characters of an outside text that are read at all; the rest is cut before any other step
(only its length is kept, for the marker)."""
TEXT_LIMIT = 500
"""Default bound of a cleaned text (a server's message, an error's text), marker included."""
STATUS_LIMIT = 80
"""Bound of a job's raw status as shown (a status is a word or two)."""
DECODE_PASSES = 8
"""Layers of encoding undone: each pass decodes one layer of every encoding at once (runs of
backslashes and of ``%25`` in one step, whatever their length)."""

# ------------------------------------------------------------------ characters
_ANSI = re.compile(
    # CSI (ESC [ params intermediates final), OSC (ESC ] ... BEL or ESC \), two-byte ESC x.
    # The classes do not overlap, and every run belongs to one ESC: linear.
    r"\x1b\[[0-?]*[ -/]*[@-~]?|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -~]?"
)


def strip_controls(text: str) -> str:
    """``text`` without ANSI escape sequences and without any character Python does not call
    printable (controls, format characters such as bidi overrides and zero-width ones, line and
    paragraph separators, surrogates, unassigned code points); spacing of any kind becomes one
    space and runs of spaces collapse."""
    if not text.isprintable():
        text = _ANSI.sub("", text)
        if not text.isprintable():
            text = "".join(
                char if char.isprintable() else (" " if char.isspace() else "") for char in text
            )
    return " ".join(text.split()) if "  " in text or text[:1] == " " or text[-1:] == " " else text


# ------------------------------------------------------------------ decoding
_BACKSLASH_RUN = re.compile(r"\\{2,}")
_JSON_PAIR = re.compile(r"\\[uU]([dD][89abAB][0-9a-fA-F]{2})\\[uU]([dD][c-fC-F][0-9a-fA-F]{2})")
_JSON_ONE = re.compile(r"\\[uU]([0-9a-fA-F]{4})")
_JSON_SHORT = re.compile(r'\\(["/\'])')
_HTML_ZEROS = re.compile(r"&#([xX]?)0+(?=[0-9a-fA-F])")
_HTML_NUMBER = re.compile(r"&#(?:([0-9]{1,7})|[xX]([0-9a-fA-F]{1,6}));")
_HTML_NAMES = {"amp": "&", "quot": '"', "lt": "<", "gt": ">", "apos": "'"}
_HTML_NAME = re.compile(r"&(amp|quot|lt|gt|apos);", re.IGNORECASE)
_PERCENT_RUN = re.compile(r"%(?:25)+(?=[0-9A-Fa-f]{2})")


def _char(code: int) -> str:
    """The character ``code``, or U+FFFD for what is none (a lone surrogate, past U+10FFFF)."""
    return chr(code) if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"


def _pair(match: re.Match[str]) -> str:
    high, low = int(match[1], 16), int(match[2], 16)
    return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))


def _html_number(match: re.Match[str]) -> str:
    return _char(int(match[1]) if match[1] else int(match[2], 16))


def _decode_once(text: str) -> str:
    """One layer of every encoding undone: JSON escapes (any number of backslashes),
    HTML character references, percent-encoding (``%25`` repeated any number of times)."""
    if "\\" in text:
        text = _BACKSLASH_RUN.sub(r"\\", text)
        text = _JSON_PAIR.sub(_pair, text)
        text = _JSON_ONE.sub(lambda m: _char(int(m[1], 16)), text)
        text = _JSON_SHORT.sub(r"\1", text)
    if "&" in text:
        text = _HTML_ZEROS.sub(r"&#\1", text)
        text = _HTML_NUMBER.sub(_html_number, text)
        text = _HTML_NAME.sub(lambda m: _HTML_NAMES[m[1].lower()], text)
    if "%" in text:
        text = unquote(_PERCENT_RUN.sub("%", text), errors="replace")
    return text


def decode(text: str) -> str:
    """``text`` with up to :data:`DECODE_PASSES` layers of encoding undone, and without
    control or format characters (which could otherwise split a secret so it is not seen)."""
    text = strip_controls(text)
    for _ in range(DECODE_PASSES):
        decoded = strip_controls(_decode_once(text))
        if decoded == text:
            break
        text = decoded
    return text


# ------------------------------------------------------------------ secrets
def _usable(secrets: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len))


@lru_cache(maxsize=64)
def _pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    """One pattern for every form of every secret, decoded or as sent: literal characters,
    where ``+`` and a space stand for each other (a form encodes a space as ``+``). No
    repetition, so the cost is at most the text's length times the longest secret's."""
    forms = {form for secret in secrets for form in (secret, decode(secret)) if form}
    if not forms:
        return None

    def literal(form: str) -> str:
        return "".join("[+ ]" if char in "+ " else re.escape(char) for char in form)

    return re.compile("|".join(literal(f) for f in sorted(forms, key=len, reverse=True)))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (raw, JSON-escaped, percent- or HTML-encoded, nested, with
    ``+`` for a space) replaced by :data:`REDACTED`. A text that held one is returned decoded
    (see :func:`decode`); any other text as it was. Linear in ``len(text)``."""
    pattern = _pattern(_usable(secrets))
    if pattern is None:
        return text
    decoded = decode(text)
    if pattern.search(decoded) is None and pattern.search(text) is None:
        return text
    return pattern.sub(REDACTED, decoded)


def _longest(secrets: Iterable[str]) -> int:
    return max((len(s) for s in _usable(secrets)), default=0)


# ------------------------------------------------------------------ the one cleaner
_ESCAPE_TAIL = "\\%&#;xXuU0123456789abcdefABCDEF"


def clean_text(text: object, secrets: Iterable[str] = (), limit: int = TEXT_LIMIT) -> str:
    """Outside ``text`` as it may be shown: read up to :data:`READ_LIMIT`, control and format
    characters stripped, ``secrets`` scrubbed in any encoding, then cut to ``limit``
    characters with a marker saying how many were cut. Linear time; never raises.

    A text cut before scrubbing may end in part of a secret, or in an escape the cut split:
    its decoded form is shown, without its last characters (the longest secret's length, plus
    any escape left unfinished), so no part of a secret survives the cut.
    """
    text = text if isinstance(text, str) else str(text)
    secrets = _usable(secrets)
    total = len(text)
    if total > READ_LIMIT:
        head = _replace(decode(text[:READ_LIMIT]), secrets)
        head = head.rstrip(_ESCAPE_TAIL + " ")
        margin = _longest(secrets) + 8
        head = head[: max(0, len(head) - margin)]
        return _bounded(head, limit, total, cut_before=True)
    cleaned = strip_controls(scrub(strip_controls(text), secrets))
    return _bounded(cleaned, limit, total, cut_before=False)


def _replace(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` (already decoded) with every secret replaced."""
    pattern = _pattern(secrets)
    return text if pattern is None else pattern.sub(REDACTED, text)


def _bounded(text: str, limit: int, total: int, cut_before: bool) -> str:
    """``text`` (cleaned from ``total`` characters) in at most ``limit`` characters; when
    anything is cut (here, or before it was cleaned) it ends in ``… [N characters cut]``,
    ``N`` counting the characters of the original not shown."""
    if len(text) <= limit and not cut_before:
        return text
    if len(_marker(total)) > limit:  # no room to say how much
        return text[: max(0, limit - 1)] + "…" if limit > 0 else ""
    room = limit - len(_marker(total))
    kept = text[:room]
    if len(kept) < len(text):
        space = kept.rfind(" ", room * 3 // 4)
        kept = kept[:space] if space > 0 else kept
    kept = kept.rstrip()
    return kept + _marker(total - len(kept))


def _marker(cut: int) -> str:
    return f"… [{cut} characters cut]"
