"""Text from outside (API bodies and parameters, the command line) before it reaches the store.

NUL and other control characters have no place in a name, a legal basis or a reason: PostgreSQL
cannot store NUL, a terminal obeys escape sequences when an audit export is printed, and a
carriage return or a bidirectional override makes one text display as another (a reviewer
reading "authorised by" must see what is stored). One rule, used by the API's request models
(``openlfr.api.schemas.In``), its parameters, and the command line (``openlfr.cli.inputs``):

* single-line text (names, references, who authorised): no character of Unicode's control
  category (C0, DEL, C1), no lone surrogate, no line or paragraph separator, no bidirectional
  embedding, override or isolate;
* free text (reasons, notes, descriptions): the same, but line feeds and tabs are allowed.
  Carriage returns are not: browsers send a textarea's line breaks as line feeds.

>>> text_problem("MCA 1980 s.1\\x00")
'control character U+0000 is not allowed'
>>> text_problem("seen twice\\nat the station", multiline=True) is None
True
"""

from __future__ import annotations

import re

# Control characters (Cc), lone surrogates (a JSON "\ud800" decodes to one), line and
# paragraph separators, and the bidirectional embeddings, overrides and isolates.
_FORBIDDEN = r"\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069"
_SINGLE_LINE = re.compile(f"[{_FORBIDDEN}\\t\\n]")
_MULTILINE = re.compile(f"[{_FORBIDDEN}]")


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` may not be stored, or None; ``multiline`` allows line feeds and tabs."""
    found = (_MULTILINE if multiline else _SINGLE_LINE).search(value)
    if found is None:
        return None
    char = found.group()
    kind = "control character" if ord(char) < 0xA0 else "character"
    return f"{kind} U+{ord(char):04X} is not allowed"
