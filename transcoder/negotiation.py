"""``Accept`` header lines → the output format of a server stream (contract §6).

Each candidate (``application/x-ndjson``, ``text/event-stream``) takes the ``q``
of the most specific media range that matches it (``type/subtype`` >
``type/*`` > ``*/*``); the higher ``q`` wins; a tie, no ``Accept``, or nothing
acceptable gives NDJSON. For example::

    Accept: text/event-stream                         → SSE  (a browser EventSource)
    Accept: */*                                       → NDJSON (tie at q=1)
    Accept: application/x-ndjson;q=0.5, text/*;q=0.9  → SSE
    Accept: text/*, text/event-stream;q=0             → NDJSON (SSE excluded)

Rules the contract leaves open, decided here:

- Among equally specific ranges for one candidate (``text/event-stream;q=0.2,
  text/event-stream;q=0.8``) the highest ``q`` counts, whatever the order.
- ``q`` follows RFC 9110 §12.4.2: ``0``, ``0.`` to ``0.999``, ``1``, ``1.`` to
  ``1.000``; the parameter name is case-insensitive and may have spaces around it
  and its ``=``. A range with an invalid ``q`` (``q=1.0001``, ``q=-1``,
  ``q=NaN``, ``q=``, ``q=.5``, ``q="0.5"``) is ignored, as is one whose type is not
  ``token/token`` or is ``*/subtype``. Only the first ``q`` parameter counts.
- Parameters other than ``q`` (before or after it) neither restrict the match nor
  make a range more specific.
- Commas and semicolons inside quoted parameter values do not split.

The parse is one pass over each line; the work is linear in the header's length.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable


class StreamFormat(enum.Enum):
    NDJSON = "application/x-ndjson"
    SSE = "text/event-stream"


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9a-z]+"
# ASCII-only case folding: a Unicode-aware lower() would turn the Kelvin sign into "k".
_MEDIA_RANGE = re.compile(rf"({_TOKEN})/({_TOKEN})", re.ASCII | re.IGNORECASE)
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")

_OWS = " \t"  # HTTP's optional whitespace; str.strip() would also eat NBSP and NEL

# Specificity of a range for a candidate; 0 = does not match.
_EXACT, _TYPE, _ANY = 3, 2, 1


def choose(accept_values: Iterable[str]) -> StreamFormat:
    """The stream format for these ``Accept`` header values (one per header line)."""
    # Per candidate: (specificity, q in thousandths) of the best range seen so far.
    ndjson = sse = (0, 0)
    for value in accept_values:
        for media_range in _split(value, ","):
            parsed = _parse_range(media_range)
            if parsed is None:
                continue
            main, sub, q = parsed
            ndjson = _better(ndjson, _specificity(main, sub, "application", "x-ndjson"), q)
            sse = _better(sse, _specificity(main, sub, "text", "event-stream"), q)
    return StreamFormat.SSE if sse[1] > ndjson[1] else StreamFormat.NDJSON


def _parse_range(media_range: str) -> tuple[str, str, int] | None:
    """``type/subtype;params`` → (type, subtype, q in thousandths), or None if invalid."""
    media_type, *params = _split(media_range, ";")
    match = _MEDIA_RANGE.fullmatch(media_type.strip(_OWS))
    if match is None:
        return None
    main, sub = match.group(1).lower(), match.group(2).lower()
    if main == "*" and sub != "*":
        return None
    for param in params:
        name, equals, raw = param.partition("=")
        if name.strip(_OWS).lower() == "q":
            q = _QVALUE.fullmatch(raw.strip(_OWS)) if equals else None
            if q is None:
                return None
            return main, sub, _thousandths(q.group())
    return main, sub, 1000


def _thousandths(qvalue: str) -> int:
    whole, _, fraction = qvalue.partition(".")
    return int(whole) * 1000 + int(fraction.ljust(3, "0"))


def _specificity(main: str, sub: str, want_main: str, want_sub: str) -> int:
    if main == "*":
        return _ANY
    if main != want_main:
        return 0
    if sub == "*":
        return _TYPE
    return _EXACT if sub == want_sub else 0


def _better(best: tuple[int, int], specificity: int, q: int) -> tuple[int, int]:
    if specificity == 0 or specificity < best[0]:
        return best
    if specificity > best[0]:
        return (specificity, q)
    return (specificity, max(q, best[1]))


def _split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside double-quoted strings (RFC 9110 §5.6.4)."""
    if '"' not in text:
        return text.split(separator)
    parts: list[str] = []
    start = 0
    quoted = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted:
            if char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == separator:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts
