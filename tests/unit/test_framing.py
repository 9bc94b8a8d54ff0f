"""NDJSON and SSE frames, byte for byte, against sse-starlette and a strict SSE parser."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sse_starlette.event import ServerSentEvent

from transcoder import framing


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"a":1}', b'{"a":1}\n'),
        (b"{}", b"{}\n"),
        (b"", b"\n"),
        (b'{"s":"\xc3\xa9"}', b'{"s":"\xc3\xa9"}\n'),
    ],
    ids=["object", "empty-object", "empty", "utf-8"],
)
def test_ndjson_line_appends_one_newline(data: bytes, expected: bytes) -> None:
    assert framing.ndjson_line(data) == expected


SSE_EVENTS: list[tuple[bytes, int | None, str | None, bytes]] = [
    (b'{"a":1}', None, None, b'data: {"a":1}\n\n'),
    (b'{"a":1}', 1, None, b'id: 1\ndata: {"a":1}\n\n'),
    (b'{"a":1}', 0, None, b'id: 0\ndata: {"a":1}\n\n'),
    (b"{}", 12345678901234, None, b"id: 12345678901234\ndata: {}\n\n"),
    (b'{"trailers":{}}', None, "end", b'event: end\ndata: {"trailers":{}}\n\n'),
    (b'{"code":13}', 7, "stream-error", b'id: 7\nevent: stream-error\ndata: {"code":13}\n\n'),
    (b"", None, None, b"data: \n\n"),
    (b"a\nb", None, None, b"data: a\ndata: b\n\n"),
    (b"a\r\nb", None, None, b"data: a\ndata: b\n\n"),
    (b"a\rb", None, None, b"data: a\ndata: b\n\n"),
    (b"a\n\nb", None, None, b"data: a\ndata: \ndata: b\n\n"),
    (b"a\n", None, None, b"data: a\ndata: \n\n"),
    (b"\n", None, None, b"data: \ndata: \n\n"),
    (b" leading space", None, None, b"data:  leading space\n\n"),
    (b"x: y", None, None, b"data: x: y\n\n"),
    (
        b'"\xc3\xa9\xe2\x82\xac"',
        3,
        "caf\xe9",
        b'id: 3\nevent: caf\xc3\xa9\ndata: "\xc3\xa9\xe2\x82\xac"\n\n',
    ),
]
SSE_IDS = [
    "data-only",
    "with-id",
    "id-zero",
    "big-id",
    "end-event",
    "id-and-event",
    "empty-data",
    "lf",
    "crlf",
    "lone-cr",
    "blank-line-inside",
    "trailing-lf",
    "only-lf",
    "leading-space",
    "colon-in-data",
    "utf-8",
]


@pytest.mark.parametrize(("data", "id", "event", "expected"), SSE_EVENTS, ids=SSE_IDS)
def test_sse_event_bytes(data: bytes, id: int | None, event: str | None, expected: bytes) -> None:
    assert framing.sse_event(data, id=id, event=event) == expected


@pytest.mark.parametrize(("data", "id", "event", "expected"), SSE_EVENTS, ids=SSE_IDS)
def test_sse_event_matches_sse_starlette(
    data: bytes, id: int | None, event: str | None, expected: bytes
) -> None:
    oracle = ServerSentEvent(
        data=data.decode(), id=None if id is None else str(id), event=event, sep="\n"
    ).encode()
    assert framing.sse_event(data, id=id, event=event) == oracle == expected


@pytest.mark.parametrize("event", ["a\nb", "a\rb", "end\r\n"], ids=["lf", "cr", "crlf"])
def test_sse_event_name_with_line_break_is_refused(event: str) -> None:
    with pytest.raises(ValueError, match="line break"):
        framing.sse_event(b"{}", event=event)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("keepalive", b": keepalive\n\n"),
        ("", b": \n\n"),
        ("a\nb", b": a\n: b\n\n"),
        ("a\r\nb", b": a\n: b\n\n"),
        ("caf\xe9", b": caf\xc3\xa9\n\n"),
    ],
    ids=["keepalive", "empty", "two-lines", "crlf", "utf-8"],
)
def test_sse_comment_bytes(text: str, expected: bytes) -> None:
    assert framing.sse_comment(text) == expected
    assert ServerSentEvent(comment=text, sep="\n").encode() == expected


@pytest.mark.parametrize(
    ("ms", "expected"),
    [(0, b"retry: 0\n\n"), (3000, b"retry: 3000\n\n")],
    ids=["zero", "three-seconds"],
)
def test_sse_retry_bytes(ms: int, expected: bytes) -> None:
    assert framing.sse_retry(ms) == expected
    assert ServerSentEvent(retry=ms, sep="\n").encode() == expected


def test_sse_retry_refuses_negative() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        framing.sse_retry(-1)


def test_keepalive_constants() -> None:
    assert framing.KEEPALIVE_SSE == framing.sse_comment("keepalive") == b": keepalive\n\n"
    assert framing.KEEPALIVE_NDJSON == b"\n"


# A strict, incremental SSE parser after WHATWG HTML §9.2.6, fed arbitrary chunks.


@dataclass(frozen=True, slots=True)
class Parsed:
    data: str
    id: str | None
    event: str


class StrictSSEParser:
    """Accepts only the fields we emit; line ends may be split across chunks."""

    def __init__(self) -> None:
        self.buffer = b""
        self.events: list[Parsed] = []
        self.comments: list[str] = []
        self.retries: list[int] = []
        self._data: list[str] = []
        self._id: str | None = None
        self._event = ""
        self._fields = 0

    def feed(self, chunk: bytes) -> None:
        self.buffer += chunk
        while True:
            match = re.search(rb"\r\n|\r|\n", self.buffer)
            if match is None:
                return
            if match.group() == b"\r" and match.end() == len(self.buffer):
                return  # a CR that may be the first half of CRLF: wait for more bytes
            line, self.buffer = self.buffer[: match.start()], self.buffer[match.end() :]
            self._line(line.decode())

    def close(self) -> None:
        assert self.buffer in (b"", b"\r"), f"unterminated line {self.buffer!r}"
        if self.buffer:
            self.buffer = b""
            self._line("")
        assert self._fields == 0, "stream ended inside an event"

    def _line(self, line: str) -> None:
        if not line:
            if self._data:
                self.events.append(Parsed("\n".join(self._data), self._id, self._event))
            else:
                assert self._fields == 0, "a block without data"
            self._data, self._id, self._event, self._fields = [], None, "", 0
            return
        if line.startswith(":"):
            assert line.startswith(": "), line
            self.comments.append(line[2:])
            return
        name, colon, value = line.partition(":")
        assert colon, f"field without colon {line!r}"
        value = value.removeprefix(" ")
        self._fields += 1
        if name == "data":
            self._data.append(value)
        elif name == "id":
            assert "\0" not in value
            self._id = value
        elif name == "event":
            self._event = value
        elif name == "retry":
            assert re.fullmatch(r"[0-9]+", value), value
            self.retries.append(int(value))
            self._fields -= 1
        else:
            raise AssertionError(f"unknown field {name!r}")


def _normalise_line_ends(text: str) -> str:
    return "\n".join(re.split(r"\r\n|\r|\n", text))


@dataclass(frozen=True, slots=True)
class Event:
    data: str
    id: int | None
    event: str | None

    def encode(self) -> bytes:
        return framing.sse_event(self.data.encode(), id=self.id, event=self.event)

    def encode_crlf(self) -> bytes:
        oracle = ServerSentEvent(
            self.data, id=None if self.id is None else str(self.id), event=self.event, sep="\r\n"
        )
        return oracle.encode()


@dataclass(frozen=True, slots=True)
class Comment:
    text: str

    def encode(self) -> bytes:
        return framing.sse_comment(self.text)

    def encode_crlf(self) -> bytes:
        return ServerSentEvent(comment=self.text, sep="\r\n").encode()


@dataclass(frozen=True, slots=True)
class Retry:
    ms: int

    def encode(self) -> bytes:
        return framing.sse_retry(self.ms)

    def encode_crlf(self) -> bytes:
        return ServerSentEvent(retry=self.ms, sep="\r\n").encode()


Frame = Event | Comment | Retry

any_text = st.text(st.characters(codec="utf-8"))
frame_strategy: st.SearchStrategy[Frame] = st.one_of(
    st.builds(
        Event,
        any_text,
        st.none() | st.integers(min_value=0, max_value=2**63),
        st.none() | st.text(st.characters(codec="utf-8", exclude_characters="\r\n")),
    ),
    st.builds(Comment, any_text),
    st.builds(Retry, st.integers(min_value=0, max_value=2**31)),
)


def _parse_in_chunks(stream: bytes, data: st.DataObject) -> StrictSSEParser:
    cuts = sorted(data.draw(st.sets(st.integers(min_value=0, max_value=len(stream)))))
    parser = StrictSSEParser()
    start = 0
    for cut in [*cuts, len(stream)]:
        parser.feed(stream[start:cut])
        start = cut
    parser.close()
    return parser


def _expected(frames: list[Frame]) -> tuple[list[Parsed], list[str], list[int]]:
    events: list[Parsed] = []
    comments: list[str] = []
    retries: list[int] = []
    for frame in frames:
        if isinstance(frame, Event):
            data = _normalise_line_ends(frame.data)
            id = None if frame.id is None else str(frame.id)
            events.append(Parsed(data, id, frame.event or ""))
        elif isinstance(frame, Comment):
            comments.extend(re.split(r"\r\n|\r|\n", frame.text))
        else:
            retries.append(frame.ms)
    return events, comments, retries


@given(st.lists(frame_strategy, max_size=8), st.data())
def test_sse_frames_round_trip_through_a_strict_parser_in_any_chunks(
    frames: list[Frame], data: st.DataObject
) -> None:
    stream = b"".join(frame.encode() for frame in frames)
    assert b"\r" not in stream  # "\n" line ends only
    parser = _parse_in_chunks(stream, data)
    assert (parser.events, parser.comments, parser.retries) == _expected(frames)


@given(st.lists(frame_strategy, max_size=8), st.data())
def test_strict_parser_reads_crlf_frames_cut_between_cr_and_lf(
    frames: list[Frame], data: st.DataObject
) -> None:
    """The parser itself, on sse-starlette's CRLF frames: cuts fall between CR and LF too."""
    stream = b"".join(frame.encode_crlf() for frame in frames)
    parser = _parse_in_chunks(stream, data)
    assert (parser.events, parser.comments, parser.retries) == _expected(frames)


def test_strict_parser_waits_for_the_lf_after_a_chunk_ending_in_cr() -> None:
    parser = StrictSSEParser()
    for chunk in (b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"):
        parser.feed(chunk)
    parser.close()
    assert parser.events == [Parsed("a\nb", None, "")]


@pytest.mark.parametrize(
    ("key", "data", "expected"),
    [
        ("result", b'{"a":1}', b'{"result":{"a":1}}\n'),
        ("error", b'{"code":5}', b'{"error":{"code":5}}\n'),
    ],
    ids=["result", "error"],
)
def test_ndjson_envelope_wraps_one_line(key: str, data: bytes, expected: bytes) -> None:
    assert framing.ndjson_envelope(key, data) == expected
