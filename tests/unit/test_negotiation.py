"""Accept negotiation for server streams (contract §6)."""

from __future__ import annotations

import re
import time
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transcoder.negotiation import StreamFormat, choose

NDJSON, SSE = StreamFormat.NDJSON, StreamFormat.SSE

CASES: list[tuple[str, list[str], StreamFormat]] = [
    ("no-accept", [], NDJSON),
    ("empty-string", [""], NDJSON),
    ("browser-eventsource", ["text/event-stream"], SSE),
    ("ndjson", ["application/x-ndjson"], NDJSON),
    ("curl-any", ["*/*"], NDJSON),
    ("text-wildcard", ["text/*"], SSE),
    ("application-wildcard", ["application/*"], NDJSON),
    ("json-only", ["application/json"], NDJSON),
    (
        "browser-navigation",
        ["text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"],
        NDJSON,
    ),
    ("sse-preferred-by-q", ["application/x-ndjson;q=0.5, text/event-stream"], SSE),
    ("ndjson-preferred-by-q", ["application/x-ndjson, text/event-stream;q=0.999"], NDJSON),
    ("equal-q-tie", ["text/event-stream;q=0.5, application/x-ndjson;q=0.5"], NDJSON),
    ("wildcard-lower-than-type", ["*/*;q=0.1, text/*;q=0.2"], SSE),
    ("exact-beats-type-wildcard", ["text/*;q=1, text/event-stream;q=0.1, */*;q=0.05"], SSE),
    ("exact-q0-excludes-despite-wildcards", ["text/*, */*, text/event-stream;q=0"], NDJSON),
    ("ndjson-q0-leaves-sse", ["*/*, application/x-ndjson;q=0"], SSE),
    ("both-q0", ["text/event-stream;q=0, application/x-ndjson;q=0"], NDJSON),
    ("all-q0", ["*/*;q=0"], NDJSON),
    ("tiny-q-still-acceptable", ["text/event-stream;q=0.001"], SSE),
    ("several-lines", ["application/json", "text/event-stream"], SSE),
    ("several-lines-exclusion", ["text/event-stream", "*/*;q=0.1", "text/event-stream;q=0"], SSE),
    (
        "duplicate-range-highest-q",
        ["text/event-stream;q=0.2, text/event-stream;q=0.8, */*;q=0.5"],
        SSE,
    ),
    ("params-before-q", ["text/event-stream;charset=utf-8;q=0.9, application/x-ndjson;q=0.8"], SSE),
    ("params-after-q", ["text/event-stream;q=0.9;level=1, application/x-ndjson;q=0.8"], SSE),
    ("uppercase", ["TEXT/EVENT-STREAM"], SSE),
    ("mixed-case-q", ["Text/Event-Stream;Q=0.9, application/x-ndjson;q=0.5"], SSE),
    ("whitespace", ["  text/event-stream ; q = 0.9 ,\tapplication/x-ndjson\t;\tq=0.5 "], SSE),
    ("q-1.000-valid", ["text/event-stream;q=1.000"], SSE),
    ("q-0.-valid", ["application/x-ndjson;q=0., text/event-stream;q=0.001"], SSE),
    ("invalid-q-1.0001-ignored", ["text/event-stream;q=1.0001"], NDJSON),
    ("invalid-q-negative-ignored", ["*/*;q=0.5, text/event-stream;q=-1"], NDJSON),
    ("invalid-q-nan-ignored", ["text/event-stream;q=NaN"], NDJSON),
    ("invalid-q-empty-ignored", ["text/event-stream;q="], NDJSON),
    ("invalid-q-bare-ignored", ["text/event-stream;q"], NDJSON),
    ("invalid-q-leading-dot-ignored", ["text/event-stream;q=.5"], NDJSON),
    ("invalid-q-four-decimals-ignored", ["text/event-stream;q=0.5000"], NDJSON),
    ("invalid-q-above-one-ignored", ["text/event-stream;q=2"], NDJSON),
    ("invalid-q-quoted-ignored", ['text/event-stream;q="0.5"'], NDJSON),
    ("invalid-q-exponent-ignored", ["text/event-stream;q=1e-3"], NDJSON),
    ("invalid-q-does-not-exclude", ["text/*, text/event-stream;q=-0"], SSE),
    ("first-q-counts", ["text/event-stream;q=0.1;q=1, application/x-ndjson;q=0.5"], NDJSON),
    ("garbage", ["\x00garbage;;;,,,/"], NDJSON),
    ("garbage-then-sse", ["garbage, text/event-stream"], SSE),
    ("empty-ranges", [",,, text/event-stream ,,"], SSE),
    ("no-subtype", ["text, text/"], NDJSON),
    ("star-subtype-invalid", ["*/event-stream"], NDJSON),
    ("star-alone-invalid", ["*"], NDJSON),
    ("java-default", ["text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2"], NDJSON),
    ("space-inside-type", ["text / event-stream"], NDJSON),
    ("kelvin-sign-not-k", ["te\u212at/*"], NDJSON),
    ("quoted-comma", ['text/event-stream;x="a,b";q=0.4, application/x-ndjson;q=0.5'], NDJSON),
    ("quoted-semicolon", ['text/event-stream;x="a;q=0";q=0.9'], SSE),
    ("escaped-quote", ['text/event-stream;x="a\\",b";q=0.3, application/x-ndjson;q=0.4'], NDJSON),
    ("unterminated-quote", ['application/x-ndjson;x="a, text/event-stream'], NDJSON),
    ("other-ndjson-name", ["application/ndjson, application/jsonl"], NDJSON),
]


@pytest.mark.parametrize(("lines", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_choose(lines: list[str], expected: StreamFormat) -> None:
    assert choose(lines) is expected


def test_choose_reads_an_iterator_once() -> None:
    assert choose(iter(["application/json", "text/event-stream"])) is SSE


@pytest.mark.parametrize(
    "header",
    [
        ", ".join(["application/json;q=0.5"] * 10_000 + ["text/event-stream"]),
        ";".join(["text/event-stream"] + ["a=b"] * 10_000),
        '"' * 200_000,
        'text/event-stream;x="' + "\\a" * 100_000,
        ",".join(["*/*;q=0.5"] * 10_000),
    ],
    ids=["10k-ranges", "10k-params", "200k-quotes", "long-escapes", "10k-wildcards"],
)
def test_choose_is_fast_on_huge_headers(header: str) -> None:
    start = time.perf_counter()
    choose([header])
    assert time.perf_counter() - start < 1.0


def test_stream_format_values_are_the_media_types() -> None:
    assert NDJSON.value == "application/x-ndjson"
    assert SSE.value == "text/event-stream"


# An independent reference: collect every valid range, then ask per candidate for the
# ranges at each specificity level in turn.

_TCHAR = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-zA-Z]+")


def reference(lines: list[str]) -> StreamFormat:
    ranges: list[tuple[str, str, Decimal]] = []
    for line in lines:
        for media_range in line.split(","):
            pieces = [piece.strip(" \t") for piece in media_range.split(";")]
            kind = pieces[0].split("/")
            if len(kind) != 2 or not all(_TCHAR.fullmatch(part) for part in kind):
                continue
            main, sub = kind[0].lower(), kind[1].lower()
            if main == "*" and sub != "*":
                continue
            q: Decimal | None = Decimal(1)
            for param in pieces[1:]:
                key, _, value = param.partition("=")
                if key.strip(" \t").lower() != "q":
                    continue
                value = value.strip(" \t")
                ok = re.fullmatch(r"[0-9](\.[0-9]{0,3})?", value) and Decimal(value) <= 1
                q = Decimal(value) if ok else None
                break
            if q is not None:
                ranges.append((main, sub, q))

    def weight(candidate: str) -> Decimal:
        main, sub = candidate.split("/")
        for wanted in ((main, sub), (main, "*"), ("*", "*")):
            found = [q for m, s, q in ranges if (m, s) == wanted]
            if found:
                return max(found)
        return Decimal(0)

    return SSE if weight(SSE.value) > weight(NDJSON.value) else NDJSON


_TYPES = st.sampled_from(["text", "application", "*", "TEXT", "Application", "image", "", "t ext"])
_SUBTYPES = st.sampled_from(
    ["event-stream", "x-ndjson", "*", "Event-Stream", "X-NDJSON", "json", ""]
)
_VALID_QS = ["0", "0.", "0.0", "0.001", "0.1", "0.5", "0.50", "0.999", "1", "1.", "1.0", "1.000"]
_INVALID_QS = ["1.0001", "-1", "NaN", "", ".5", "2", "0.1234", "1.001", "01", "1e0"]
_QS = st.sampled_from([*_VALID_QS, *_INVALID_QS])
_OTHER_PARAMS = st.sampled_from(["charset=utf-8", "level=1", "x", "", "=q"])
_WS = st.sampled_from(["", " ", "\t", "  "])


@st.composite
def media_ranges(draw: st.DrawFn) -> str:
    text = f"{draw(_WS)}{draw(_TYPES)}/{draw(_SUBTYPES)}{draw(_WS)}"
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            name = draw(st.sampled_from(["q", "Q", " q "]))
            text += f";{draw(_WS)}{name}={draw(_WS)}{draw(_QS)}{draw(_WS)}"
        else:
            text += f";{draw(_WS)}{draw(_OTHER_PARAMS)}"
    return text


accept_lines = st.lists(
    st.one_of(
        st.lists(media_ranges(), max_size=6).map(",".join),
        st.text(alphabet="textvn-sramd*/;q=0.1 ,\tQ", max_size=40),
    ),
    max_size=4,
)


@given(accept_lines)
def test_choose_agrees_with_a_reference_implementation(lines: list[str]) -> None:
    assert choose(lines) is reference(lines)
