"""Headers ↔ gRPC metadata and Grpc-Timeout (contract §7; reliability notes H3-H16, H19)."""

from __future__ import annotations

import re

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from transcoder.errors import GatewayError
from transcoder.metadata import (
    METADATA_PREFIX,
    TRAILER_PREFIX,
    Metadata,
    deadline,
    outgoing_metadata,
    parse_grpc_timeout,
    response_headers,
)

FORWARD = frozenset(
    {
        "authorization",
        "x-request-id",
        "traceparent",
        "tracestate",
        "accept-language",
        "last-event-id",
    }
)
EVERYTHING_BLOCKED = [
    *("connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding"),
    *("upgrade", "host", "content-type", "content-length", "content-encoding", "cookie"),
    *("proxy-authorization", "grpc-timeout", "grpc-status", "grpc-message", "grpc-encoding"),
    "grpc-status-details-bin",
]


def raw(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in pairs]


def outgoing(
    *pairs: tuple[str, str],
    forward: frozenset[str] = FORWARD,
    client_host: str | None = None,
) -> Metadata:
    return outgoing_metadata(raw(*pairs), forward=forward, client_host=client_host)


OUTGOING_CASES: list[tuple[str, list[tuple[str, str]], frozenset[str], str | None, Metadata]] = [
    ("nothing", [], FORWARD, None, ()),
    (
        "listed-authorization",
        [("authorization", "Bearer t")],
        FORWARD,
        None,
        (("authorization", "Bearer t"),),
    ),
    ("unlisted-dropped", [("x-custom", "1"), ("accept", "*/*")], FORWARD, None, ()),
    ("listed-custom", [("x-custom", "1")], frozenset({"x-custom"}), None, (("x-custom", "1"),)),
    ("prefix-stripped", [("grpc-metadata-tenant", "acme")], FORWARD, None, (("tenant", "acme"),)),
    (
        "prefix-key-lowercased",
        [("Grpc-Metadata-Tenant", "acme")],
        FORWARD,
        None,
        (("tenant", "acme"),),
    ),
    ("prefix-not-needing-list", [("grpc-metadata-x", "1")], frozenset(), None, (("x", "1"),)),
    (
        "repeats-kept-in-order",
        [("grpc-metadata-a", "1"), ("x-request-id", "r"), ("grpc-metadata-a", "2")],
        FORWARD,
        None,
        (("a", "1"), ("x-request-id", "r"), ("a", "2")),
    ),
    ("last-event-id", [("last-event-id", "41")], FORWARD, None, (("last-event-id", "41"),)),
    ("empty-value", [("grpc-metadata-a", "")], FORWARD, None, (("a", ""),)),
    ("printable-ascii", [("grpc-metadata-a", " !~ x")], FORWARD, None, (("a", " !~ x"),)),
    ("key-punctuation", [("grpc-metadata-a.b_c-d9", "1")], FORWARD, None, (("a.b_c-d9", "1"),)),
    ("underscore-not-normalised", [("x_request_id", "1")], FORWARD, None, ()),
    ("bin-padded", [("grpc-metadata-t-bin", "AAEC")], FORWARD, None, (("t-bin", b"\x00\x01\x02"),)),
    ("bin-unpadded", [("grpc-metadata-t-bin", "AAE")], FORWARD, None, (("t-bin", b"\x00\x01"),)),
    ("bin-padding", [("grpc-metadata-t-bin", "AAE=")], FORWARD, None, (("t-bin", b"\x00\x01"),)),
    ("bin-two-pad", [("grpc-metadata-t-bin", "AA==")], FORWARD, None, (("t-bin", b"\x00"),)),
    ("bin-url-safe", [("grpc-metadata-t-bin", "-_8")], FORWARD, None, (("t-bin", b"\xfb\xff"),)),
    ("bin-standard", [("grpc-metadata-t-bin", "+/8=")], FORWARD, None, (("t-bin", b"\xfb\xff"),)),
    ("bin-empty", [("grpc-metadata-t-bin", "")], FORWARD, None, (("t-bin", b""),)),
    (
        "bin-listed",
        [("x-trace-bin", "AQ")],
        frozenset({"x-trace-bin"}),
        None,
        (("x-trace-bin", b"\x01"),),
    ),
    (
        "user-agent-listed",
        [("user-agent", "curl/8")],
        frozenset({"user-agent"}),
        None,
        (("x-forwarded-user-agent", "curl/8"),),
    ),
    ("user-agent-unlisted", [("user-agent", "curl/8")], FORWARD, None, ()),
    (
        "user-agent-prefixed",
        [("grpc-metadata-user-agent", "x")],
        FORWARD,
        None,
        (("x-forwarded-user-agent", "x"),),
    ),
    ("xff-peer-only", [], FORWARD, "10.0.0.1", (("x-forwarded-for", "10.0.0.1"),)),
    (
        "xff-appended",
        [("x-forwarded-for", "1.2.3.4")],
        FORWARD,
        "10.0.0.1",
        (("x-forwarded-for", "1.2.3.4, 10.0.0.1"),),
    ),
    (
        "xff-two-lines",
        [("x-forwarded-for", "1.1.1.1, 2.2.2.2"), ("x-forwarded-for", "3.3.3.3")],
        FORWARD,
        "10.0.0.1",
        (("x-forwarded-for", "1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.1"),),
    ),
    (
        "xff-no-peer",
        [("x-forwarded-for", "1.2.3.4")],
        FORWARD,
        None,
        (("x-forwarded-for", "1.2.3.4"),),
    ),
    (
        "xff-empty-ignored",
        [("x-forwarded-for", " ")],
        FORWARD,
        "::1",
        (("x-forwarded-for", "::1"),),
    ),
    (
        "xff-prefixed-dropped",
        [("grpc-metadata-x-forwarded-for", "6.6.6.6")],
        FORWARD,
        "10.0.0.1",
        (("x-forwarded-for", "10.0.0.1"),),
    ),
    (
        "xff-listed-not-doubled",
        [("x-forwarded-for", "1.2.3.4")],
        frozenset({"x-forwarded-for"}),
        "10.0.0.1",
        (("x-forwarded-for", "1.2.3.4, 10.0.0.1"),),
    ),
]


@pytest.mark.parametrize(
    ("headers", "forward", "client_host", "expected"),
    [case[1:] for case in OUTGOING_CASES],
    ids=[case[0] for case in OUTGOING_CASES],
)
def test_outgoing_metadata(
    headers: list[tuple[str, str]],
    forward: frozenset[str],
    client_host: str | None,
    expected: Metadata,
) -> None:
    assert outgoing(*headers, forward=forward, client_host=client_host) == expected


@pytest.mark.parametrize("name", EVERYTHING_BLOCKED)
def test_blocked_names_are_never_forwarded_listed_or_prefixed(name: str) -> None:
    everything_listed = FORWARD | set(EVERYTHING_BLOCKED)
    headers = [(name, "1S"), (METADATA_PREFIX + name, "1S")]
    assert outgoing(*headers, forward=everything_listed) == ()


ERROR_CASES: list[tuple[str, list[tuple[str, str]], frozenset[str], str]] = [
    ("empty-key", [("grpc-metadata-", "x")], FORWARD, "grpc-metadata-"),
    ("space-in-key", [("grpc-metadata-a b", "x")], FORWARD, "grpc-metadata-a b"),
    ("colon-in-key", [("grpc-metadata-a:b", "x")], FORWARD, "grpc-metadata-a:b"),
    ("non-ascii-key", [("grpc-metadata-\xe9", "x")], FORWARD, "grpc-metadata-\xe9"),
    ("bad-key-listed", [("x/y", "1")], frozenset({"x/y"}), "x/y"),
    ("cr-value", [("grpc-metadata-a", "x\ry")], FORWARD, "grpc-metadata-a"),
    ("lf-value", [("grpc-metadata-a", "x\ny")], FORWARD, "grpc-metadata-a"),
    ("nul-value", [("grpc-metadata-a", "x\x00y")], FORWARD, "grpc-metadata-a"),
    ("control-value", [("grpc-metadata-a", "x\x01")], FORWARD, "grpc-metadata-a"),
    ("del-value", [("grpc-metadata-a", "x\x7f")], FORWARD, "grpc-metadata-a"),
    ("tab-value", [("grpc-metadata-a", "x\ty")], FORWARD, "grpc-metadata-a"),
    ("non-ascii-value", [("grpc-metadata-a", "caf\xe9")], FORWARD, "grpc-metadata-a"),
    ("non-ascii-listed", [("accept-language", "fr-\xe9")], FORWARD, "accept-language"),
    ("bad-xff", [("x-forwarded-for", "1.2.3.4\x01")], FORWARD, "x-forwarded-for"),
    ("bin-bad-chars", [("grpc-metadata-t-bin", "!!!!")], FORWARD, "grpc-metadata-t-bin"),
    ("bin-length-1-mod-4", [("grpc-metadata-t-bin", "AAAAA")], FORWARD, "grpc-metadata-t-bin"),
    ("bin-wrong-padding", [("grpc-metadata-t-bin", "QQ=")], FORWARD, "grpc-metadata-t-bin"),
    ("bin-too-much-padding", [("grpc-metadata-t-bin", "QQ===")], FORWARD, "grpc-metadata-t-bin"),
    ("bin-only-padding", [("grpc-metadata-t-bin", "====")], FORWARD, "grpc-metadata-t-bin"),
    ("bin-padding-inside", [("grpc-metadata-t-bin", "QQ==QQ==")], FORWARD, "grpc-metadata-t-bin"),
    ("bin-space", [("grpc-metadata-t-bin", "QQ QQ")], FORWARD, "grpc-metadata-t-bin"),
    (
        "two-authorization",
        [("authorization", "Bearer a"), ("authorization", "Bearer b")],
        FORWARD,
        "authorization",
    ),
    (
        "two-authorization-unlisted",
        [("authorization", "a"), ("authorization", "b")],
        frozenset(),
        "authorization",
    ),
    (
        "authorization-and-prefixed",
        [("authorization", "a"), ("grpc-metadata-authorization", "b")],
        FORWARD,
        "grpc-metadata-authorization",
    ),
]


@pytest.mark.parametrize(
    ("headers", "forward", "header"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_outgoing_metadata_refuses_with_400_naming_the_header(
    headers: list[tuple[str, str]], forward: frozenset[str], header: str
) -> None:
    with pytest.raises(GatewayError) as caught:
        outgoing(*headers, forward=forward, client_host="10.0.0.1")
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.http_status == 400
    assert caught.value.message.startswith(f"{header}: ")


def test_unlisted_header_with_bad_value_is_ignored_not_refused() -> None:
    assert outgoing(("x-other", "caf\xe9\x00")) == ()


_GRPC_KEY = re.compile(r"[0-9a-z._-]+")
_GRPC_TEXT = re.compile(r"[\x20-\x7e]*")
header_names = st.one_of(
    st.sampled_from(sorted(FORWARD | {"user-agent", "x-forwarded-for", *EVERYTHING_BLOCKED})),
    st.text(alphabet="abcXYZ-_.:/ \xe9", max_size=6).map(lambda key: METADATA_PREFIX + key),
    st.sampled_from(EVERYTHING_BLOCKED).map(lambda key: METADATA_PREFIX + key),
    st.just(METADATA_PREFIX + "t-bin"),
)
header_values = st.text(st.characters(max_codepoint=0xFF), max_size=8)


@given(st.lists(st.tuples(header_names, header_values), max_size=6), st.none() | st.just("::1"))
def test_any_headers_give_valid_metadata_or_a_400(
    headers: list[tuple[str, str]], client_host: str | None
) -> None:
    try:
        metadata = outgoing(*headers, forward=FORWARD | {"user-agent"}, client_host=client_host)
    except GatewayError as exc:
        error: GatewayError | None = exc
    else:
        error = None
    if error is not None:
        assert error.http_status == 400
        return
    for key, value in metadata:
        assert _GRPC_KEY.fullmatch(key)
        assert not key.startswith(("grpc-", "content-"))
        assert key not in EVERYTHING_BLOCKED
        if key.endswith("-bin"):
            assert isinstance(value, bytes)
        else:
            assert isinstance(value, str)
            assert _GRPC_TEXT.fullmatch(value)
    assert sum(key == "x-forwarded-for" for key, _ in metadata) <= 1


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1H", 3600.0),
        ("1M", 60.0),
        ("1S", 1.0),
        ("1m", 0.001),
        ("1u", 1e-6),
        ("1n", 1e-9),
        ("250m", 0.25),
        ("0S", 0.0),
        ("00000001S", 1.0),
        ("99999999H", 99999999 * 3600.0),
    ],
    ids=[
        "hours",
        "minutes",
        "seconds",
        "millis",
        "micros",
        "nanos",
        "250ms",
        "zero",
        "8-digits",
        "max",
    ],
)
def test_parse_grpc_timeout(value: str, seconds: float) -> None:
    assert parse_grpc_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "S",
        "1",
        "1s",
        "1h",
        "-1S",
        "+1S",
        "1.5S",
        "123456789S",
        "\uff11S",
        "\u0661S",
        " 1S",
        "1S ",
        "1S\n",
        "1MS",
    ],
    ids=[
        "empty",
        "unit-only",
        "digits-only",
        "lowercase-s",
        "lowercase-h",
        "negative",
        "plus",
        "fraction",
        "nine-digits",
        "fullwidth-digit",
        "arabic-indic-digit",
        "leading-space",
        "trailing-space",
        "trailing-newline",
        "two-units",
    ],
)
def test_parse_grpc_timeout_refuses(value: str) -> None:
    with pytest.raises(GatewayError, match=r"^grpc-timeout: "):
        parse_grpc_timeout(value)


@pytest.mark.parametrize(
    ("headers", "default", "maximum", "expected"),
    [
        ([], 30.0, 300.0, 30.0),
        ([], 0.0, 300.0, None),
        ([], 500.0, 300.0, 300.0),
        ([("grpc-timeout", "5S")], 30.0, 300.0, 5.0),
        ([("grpc-timeout", "5S")], 0.0, 300.0, 5.0),
        ([("grpc-timeout", "1M")], 30.0, 300.0, 60.0),
        ([("grpc-timeout", "1m")], 30.0, 300.0, 0.001),
        ([("grpc-timeout", "0S")], 30.0, 300.0, 0.0),
        ([("grpc-timeout", "99999999H")], 30.0, 300.0, 300.0),
        ([("Grpc-Timeout", "2S")], 30.0, 300.0, 2.0),
        ([("grpc-metadata-grpc-timeout", "2S")], 30.0, 300.0, 30.0),
    ],
    ids=[
        "default",
        "default-zero-is-none",
        "default-capped",
        "header",
        "header-without-default",
        "minutes",
        "millis",
        "zero-is-expired",
        "huge-capped",
        "header-name-any-case",
        "prefixed-is-not-a-deadline",
    ],
)
def test_deadline(
    headers: list[tuple[str, str]], default: float, maximum: float, expected: float | None
) -> None:
    assert deadline(raw(*headers), default_seconds=default, max_seconds=maximum) == expected


@pytest.mark.parametrize(
    "headers",
    [[("grpc-timeout", "1S"), ("grpc-timeout", "1S")], [("grpc-timeout", "1.5S")]],
    ids=["two-headers", "invalid"],
)
def test_deadline_refuses(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(GatewayError, match=r"^grpc-timeout: "):
        deadline(raw(*headers), default_seconds=30.0, max_seconds=300.0)


RESPONSE_CASES: list[tuple[str, list[tuple[str, str | bytes]], list[tuple[bytes, bytes]]]] = [
    ("text", [("tenant", "acme")], [(b"grpc-metadata-tenant", b"acme")]),
    ("key-lowercased", [("Tenant", "acme")], [(b"grpc-metadata-tenant", b"acme")]),
    ("bin-bytes", [("t-bin", b"\r\n\x00")], [(b"grpc-metadata-t-bin", b"DQoA")]),
    ("bin-str", [("t-bin", "ab")], [(b"grpc-metadata-t-bin", b"YWI=")]),
    ("bytes-on-text-key", [("t", b"\xff")], [(b"grpc-metadata-t", b"/w==")]),
    ("repeats", [("a", "1"), ("a", "2")], [(b"grpc-metadata-a", b"1"), (b"grpc-metadata-a", b"2")]),
    ("tab-inside-kept", [("a", "x\ty")], [(b"grpc-metadata-a", b"x\ty")]),
    ("outer-space-stripped", [("a", "  x ")], [(b"grpc-metadata-a", b"x")]),
    ("latin-1", [("a", "caf\xe9")], [(b"grpc-metadata-a", b"caf\xe9")]),
    ("cr-dropped", [("a", "x\rSet-Cookie: y")], []),
    ("lf-dropped", [("a", "x\nSet-Cookie: y")], []),
    ("crlf-dropped", [("a", "x\r\nSet-Cookie: y")], []),
    ("nul-dropped", [("a", "x\x00")], []),
    ("control-dropped", [("a", "\x1b[31m")], []),
    ("del-dropped", [("a", "\x7f")], []),
    ("non-latin-1-dropped", [("a", "\u20ac")], []),
    ("grpc-status-skipped", [("grpc-status", "0")], []),
    ("grpc-message-skipped", [("grpc-message", "x")], []),
    ("details-skipped", [("grpc-status-details-bin", b"\x08\x05")], []),
    ("other-grpc-skipped", [("grpc-encoding", "gzip")], []),
    ("content-type-skipped", [("content-type", "application/grpc")], []),
    ("te-skipped", [("te", "trailers")], []),
    ("pseudo-skipped", [(":status", "200")], []),
    ("bad-key-skipped", [("a\r\nb", "x"), ("a b", "x")], []),
    ("good-after-bad", [("a", "\n"), ("b", "ok")], [(b"grpc-metadata-b", b"ok")]),
]


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [case[1:] for case in RESPONSE_CASES],
    ids=[case[0] for case in RESPONSE_CASES],
)
def test_response_headers(
    metadata: list[tuple[str, str | bytes]], expected: list[tuple[bytes, bytes]]
) -> None:
    assert response_headers(metadata, METADATA_PREFIX) == expected


def test_response_headers_trailer_prefix() -> None:
    assert response_headers([("a", "1")], TRAILER_PREFIX) == [(b"grpc-trailer-a", b"1")]


# RFC 9110 §5.5: field-value = *( field-vchar [ 1*( SP / HTAB ) field-vchar ] )
_FIELD_VALUE = re.compile(rb"(?:[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*)?")
_FIELD_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")


@given(
    st.lists(
        st.tuples(
            st.text(max_size=6) | st.just("t-bin"),
            st.text(max_size=8) | st.binary(max_size=8),
        ),
        max_size=6,
    )
)
def test_response_headers_are_always_valid_http_fields(
    metadata: list[tuple[str, str | bytes]],
) -> None:
    for name, value in response_headers(metadata, TRAILER_PREFIX):
        assert _FIELD_NAME.fullmatch(name)
        assert _FIELD_VALUE.fullmatch(value)
