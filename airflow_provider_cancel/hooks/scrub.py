r"""Remove known secrets from text, in every form a server may echo them back.

A server that quotes a token in an error body rarely quotes it as sent: PHP's ``json_encode``
writes ``/`` as ``\/``, other encoders write ``+`` as ``\u002b``, a URL carries it
percent-encoded, an HTML page as ``&#43;``, and a body nested in another escapes it twice. A
secret is matched character by character in any mix of those forms, so none survives into a
message, a log line or an XCom report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

REDACTED = "***"
MIN_SECRET_LENGTH = 4
"""Shorter values are not scrubbed: they would blank out ordinary words."""

_HTML_NAMES = {"&": "amp", '"': "quot", "<": "lt", ">": "gt", "'": "(?:apos|#39)"}
_JSON_SHORT = {'"': '"', "/": "/"}


def _hex(number: int, width: int) -> str:
    """``number`` in hex, either case, with any number of leading zeros up to ``width``."""
    digits = f"{number:0{width}x}"
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in digits)


def _forms(char: str) -> str:
    """A pattern for one character of a secret in any of its encoded forms."""
    code = ord(char)
    forms = [r"\\+" if char == "\\" else re.escape(char)]  # a backslash, escaped any times
    if code > 0xFFFF:  # JSON escapes it as a surrogate pair
        high, low = divmod(code - 0x10000, 0x400)
        forms.append(rf"\\+u{_hex(0xD800 + high, 4)}\\+u{_hex(0xDC00 + low, 4)}")
    else:
        forms.append(rf"\\+u{_hex(code, 4)}")
    if char in _JSON_SHORT:
        forms.append(rf"\\+{re.escape(_JSON_SHORT[char])}")
    encoded = char.encode("utf-8")
    forms.append("".join(rf"%(?:25)*{_hex(byte, 2)}" for byte in encoded))
    if char == " ":
        forms.append(r"\+")
    forms.append(rf"&#0*{code};|&#[xX]0*{_hex(code, 1)};")
    if char in _HTML_NAMES:
        forms.append(f"&{_HTML_NAMES[char]};")
    return f"(?:{'|'.join(forms)})"


@lru_cache(maxsize=256)
def _pattern(secret: str) -> re.Pattern[str]:
    return re.compile("".join(_forms(char) for char in secret))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (raw, JSON-escaped, percent- or HTML-encoded) replaced."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            text = _pattern(secret).sub(REDACTED, text)
    return text
