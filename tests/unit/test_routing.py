"""Route table matching: precedence, verbs, decoding, 404/405 (contract §2, §5)."""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from transcoder.errors import GatewayError
from transcoder.path_template import DoubleWildcard, Literal, PathTemplate, Wildcard, parse
from transcoder.routing import MethodMismatch, RouteMatch, RouteTable, RouteTableBuilder

Route = tuple[str, str]  # (method, template); the target is "METHOD template"


def build(*routes: Route) -> RouteTable[str]:
    builder: RouteTableBuilder[str] = RouteTableBuilder()
    for method, template in routes:
        builder.add(method, parse(template), f"{method} {template}")
    return builder.build()


def target(table: RouteTable[str], method: str, path: str) -> str:
    result = table.match(method, path)
    assert isinstance(result, RouteMatch), result
    return result.target


def bindings(table: RouteTable[str], method: str, path: str) -> dict[str, str]:
    result = table.match(method, path)
    assert isinstance(result, RouteMatch), result
    return {".".join(field_path): value for field_path, value in result.bindings}


PRECEDENCE = build(
    ("GET", "/v1/precedence/literal"),
    ("GET", "/v1/precedence/{x}"),
    ("GET", "/v1/precedence/{x=**}"),
    ("GET", "/v1/deep/lit/end"),
    ("GET", "/v1/deep/{a}/other"),
    ("GET", "/v1/deep/{a}/{b=**}"),
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/precedence/literal", "GET /v1/precedence/literal"),
        ("/v1/precedence/x", "GET /v1/precedence/{x}"),
        ("/v1/precedence/a/b", "GET /v1/precedence/{x=**}"),
        ("/v1/precedence/literal/b", "GET /v1/precedence/{x=**}"),
        ("/v1/deep/lit/end", "GET /v1/deep/lit/end"),
        ("/v1/deep/lit/other", "GET /v1/deep/{a}/other"),
        ("/v1/deep/lit/zzz", "GET /v1/deep/{a}/{b=**}"),
        ("/v1/deep/lit/end/more", "GET /v1/deep/{a}/{b=**}"),
    ],
)
def test_literal_beats_wildcard_beats_double_wildcard(path: str, expected: str) -> None:
    assert target(PRECEDENCE, "GET", path) == expected


def test_failed_literal_branch_falls_back_to_wildcard() -> None:
    assert bindings(PRECEDENCE, "GET", "/v1/deep/lit/other") == {"a": "lit"}
    assert bindings(PRECEDENCE, "GET", "/v1/deep/lit/x/y") == {"a": "lit", "b": "x/y"}


def test_precedence_is_per_method() -> None:
    table = build(("POST", "/v1/books/special"), ("GET", "/v1/books/{id}"))
    assert target(table, "GET", "/v1/books/special") == "GET /v1/books/{id}"
    assert target(table, "POST", "/v1/books/special") == "POST /v1/books/special"
    assert table.match("PUT", "/v1/books/special") == MethodMismatch(("GET", "POST"))
    assert table.match("PUT", "/v1/books/other") == MethodMismatch(("GET",))


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/shelves", "GET /v1/shelves"),
        ("/v1/shelves/", "GET /v1/shelves"),
        ("/v1/shelves/7/", "GET /v1/shelves/{id}"),
        ("/", "GET /"),
    ],
)
def test_one_trailing_slash_is_ignored(path: str, expected: str) -> None:
    table = build(("GET", "/v1/shelves"), ("GET", "/v1/shelves/{id}"), ("GET", "/"))
    assert target(table, "GET", path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/v1/shelves//",
        "//v1/shelves",
        "/v1//shelves",
        "/v1/./shelves",
        "/v1/x/../shelves",
        "/v1/shelves/.",
        "v1/shelves",
        "",
        "*",
    ],
)
def test_no_other_normalisation(path: str) -> None:
    table = build(("GET", "/v1/shelves"))
    assert table.match("GET", path) is None


def test_dot_segments_are_ordinary_segments() -> None:
    table = build(("GET", "/v1/{x}/end"), ("GET", "/v1/../up"))
    assert bindings(table, "GET", "/v1/../end") == {"x": ".."}
    assert bindings(table, "GET", "/v1/./end") == {"x": "."}
    assert target(table, "GET", "/v1/../up") == "GET /v1/../up"


def test_wildcards_never_match_empty_segments() -> None:
    table = build(("GET", "/v1/{x}/end"), ("GET", "/v1/files/{path=**}"), ("GET", "/v2/*"))
    assert table.match("GET", "/v1//end") is None
    assert table.match("GET", "/v2/") is None
    assert table.match("GET", "/v2//") is None
    assert table.match("GET", "/v1/files") is None
    assert table.match("GET", "/v1/files/") is None
    assert table.match("GET", "/v1/files/a//b") is None
    assert table.match("GET", "/v1/files//a") is None
    assert bindings(table, "GET", "/v1/files/a") == {"path": "a"}
    assert bindings(table, "GET", "/v1/files/a/b/") == {"path": "a/b"}


VERBS = build(
    ("GET", "/v1/books/{id}"),
    ("POST", "/v1/books/{id}:publish"),
    ("POST", "/v1/{name=**}:archive"),
    ("GET", "/v1/items/{id}"),
)


def test_registered_verb_is_split_off() -> None:
    assert target(VERBS, "POST", "/v1/books/1:publish") == "POST /v1/books/{id}:publish"
    assert bindings(VERBS, "POST", "/v1/books/1:publish") == {"id": "1"}
    assert bindings(VERBS, "POST", "/v1/a/b:archive") == {"name": "a/b"}
    assert bindings(VERBS, "POST", "/v1/books/a:b:publish") == {"id": "a:b"}
    assert bindings(VERBS, "POST", "/v1/books/1:publish/") == {"id": "1"}
    assert bindings(VERBS, "POST", "/v1/books/1:%70ublish") == {"id": "1"}


def test_unregistered_verb_stays_in_the_segment() -> None:
    assert bindings(VERBS, "GET", "/v1/items/a:b") == {"id": "a:b"}
    assert bindings(VERBS, "GET", "/v1/books/1:unknown") == {"id": "1:unknown"}


def test_template_without_verb_does_not_match_a_registered_verb() -> None:
    assert VERBS.match("GET", "/v1/items/1:publish") is None
    assert VERBS.match("GET", "/v1/books/1:publish") == MethodMismatch(("POST",))


def test_escaped_colon_is_not_a_verb_separator() -> None:
    assert bindings(VERBS, "GET", "/v1/books/1%3Apublish") == {"id": "1:publish"}
    assert VERBS.match("POST", "/v1/books/1%3Apublish") == MethodMismatch(("GET",))


def test_colon_before_the_last_segment_is_not_a_verb() -> None:
    table = build(("GET", "/v1/{a}/{b}"), ("POST", "/v1/{a}:publish"))
    assert bindings(table, "GET", "/v1/x:publish/y") == {"a": "x:publish", "b": "y"}


def test_table_lists_its_verbs() -> None:
    assert VERBS.verbs == frozenset({"publish", "archive"})
    assert build(("GET", "/v1")).verbs == frozenset()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/one/a%2Fb", "a/b"),
        ("/v1/one/a%2fb", "a/b"),
        ("/v1/one/%252F", "%2F"),
        ("/v1/one/a%20b+c", "a b+c"),
        ("/v1/one/caf%C3%A9", "café"),
        ("/v1/one/caf\xc3\xa9", "café"),  # raw UTF-8 bytes, as latin-1 text
        ("/v1/one/%3A%40", ":@"),
        ("/v1/lit/%41", "A"),
    ],
)
def test_single_segment_variable_is_fully_decoded(path: str, expected: str) -> None:
    table = build(("GET", "/v1/one/{x}"), ("GET", "/v1/lit/{x=*}"))
    assert bindings(table, "GET", path) == {"x": expected}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/many/a/b%2Fc", "a/b%2Fc"),
        ("/v1/many/a/b%2fc", "a/b%2fc"),
        ("/v1/many/%252F/%20", "%2F/ "),
        ("/v1/many/caf%C3%A9/x", "café/x"),
        ("/v1/shelves/s%2F1/books/b%2f2", "shelves/s%2F1/books/b%2f2"),
        ("/v1/%73helves/1/books/2", "shelves/1/books/2"),
    ],
)
def test_multi_segment_variable_keeps_escaped_slash(path: str, expected: str) -> None:
    table = build(("GET", "/v1/many/{x=**}"), ("GET", "/v1/{x=shelves/*/books/*}"))
    assert bindings(table, "GET", path) == {"x": expected}


def test_literals_compare_decoded() -> None:
    table = build(("GET", "/v1/everything"), ("GET", "/v1/a%2Fb"), ("GET", "/v1/caf%C3%A9"))
    assert target(table, "GET", "/v1/%65verything") == "GET /v1/everything"
    assert target(table, "GET", "/v1/a%2fb") == "GET /v1/a%2Fb"
    assert target(table, "GET", "/v1/caf\xc3\xa9") == "GET /v1/caf%C3%A9"
    assert table.match("GET", "/v1/a/b") is None


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/one/%zz", "book.name"),
        ("/v1/one/a%", "book.name"),
        ("/v1/one/%C", "book.name"),
        ("/v1/one/%C3", "book.name"),
        ("/v1/one/\xff", "book.name"),
        ("/v1/many/ok/%zz", "path"),
        ("/v1/many/%C3/%A9", "path"),
    ],
)
def test_malformed_escape_in_a_variable_is_invalid_argument(path: str, field: str) -> None:
    table = build(("GET", "/v1/one/{book.name}"), ("GET", "/v1/many/{path=**}"))
    with pytest.raises(GatewayError) as info:
        table.match("GET", path)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.http_status == 400
    assert info.value.message == f"{field}: invalid percent-encoding in path"


def test_malformed_escape_outside_variables_is_no_match() -> None:
    table = build(("GET", "/v1/lit/end"), ("GET", "/v1/*/star"))
    assert table.match("GET", "/v1/%zz/end") is None
    assert table.match("GET", "/v1/lit/%") is None
    assert target(table, "GET", "/v1/%zz/star") == "GET /v1/*/star"


def test_no_route_for_the_path_is_none() -> None:
    table = build(("GET", "/v1/books/{id}"))
    assert table.match("GET", "/v1/shelves/1") is None
    assert table.match("GET", "/v1/books/1/2") is None
    assert build().match("GET", "/") is None


def test_wrong_method_lists_every_method_of_matching_templates() -> None:
    table = build(
        ("GET", "/v1/books/{id}"),
        ("DELETE", "/v1/books/{id}"),
        ("PATCH", "/v1/books/{book.id}"),
        ("POST", "/v1/books/special"),
        ("SEARCH", "/v1/{path=**}"),
        ("PUT", "/v1/books/{id}:publish"),
    )
    assert table.match("PUT", "/v1/books/special") == MethodMismatch(
        ("DELETE", "GET", "PATCH", "POST", "SEARCH")
    )
    assert table.match("PUT", "/v1/books/7") == MethodMismatch(("DELETE", "GET", "PATCH", "SEARCH"))
    assert table.match("GET", "/v1/books/7:publish") == MethodMismatch(("PUT",))
    assert target(table, "SEARCH", "/v1/books/7") == "SEARCH /v1/{path=**}"


def test_any_method_route_matches_every_method() -> None:
    table = build(("*", "/v1/any/{x}"), ("GET", "/v1/any/{x}"), ("POST", "/v1/any/lit"))
    assert target(table, "GET", "/v1/any/1") == "GET /v1/any/{x}"
    assert target(table, "PUT", "/v1/any/1") == "* /v1/any/{x}"
    assert target(table, "FROB", "/v1/any/lit") == "* /v1/any/{x}"
    assert target(table, "POST", "/v1/any/lit") == "POST /v1/any/lit"


def test_same_method_and_template_first_wins_and_is_recorded() -> None:
    table = build(
        ("GET", "/v1/books/{id}"),
        ("POST", "/v1/books/{id}"),
        ("GET", "/v1/books/{id}"),
        ("GET", "/v1/books/{other}"),
        ("GET", "/v1/books/{id}:publish"),
    )
    assert table.shadowed == (
        ("GET /v1/books/{id}", "GET /v1/books/{id}"),
        ("GET /v1/books/{other}", "GET /v1/books/{id}"),
    )
    assert bindings(table, "GET", "/v1/books/1") == {"id": "1"}


def test_shadowed_target_pair_names_both_routes() -> None:
    builder: RouteTableBuilder[int] = RouteTableBuilder()
    builder.add("GET", parse("/v1/x"), 1)
    builder.add("GET", parse("/v1/x"), 2)
    builder.add("GET", parse("/v1/%78"), 3)
    assert builder.build().shadowed == ((2, 1), (3, 1))


def test_builder_cannot_be_used_after_build() -> None:
    builder: RouteTableBuilder[str] = RouteTableBuilder()
    builder.build()
    with pytest.raises(RuntimeError):
        builder.add("GET", parse("/v1"), "x")
    with pytest.raises(RuntimeError):
        builder.build()


def test_empty_method_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty HTTP method"):
        RouteTableBuilder[str]().add("", parse("/v1"), "x")


def test_route_without_variables_has_no_bindings() -> None:
    result = build(("GET", "/v1/x")).match("GET", "/v1/x")
    assert result == RouteMatch("GET /v1/x", ())


def test_many_routes_still_match_exactly() -> None:
    routes: list[Route] = []
    for i in range(400):
        routes += [
            ("GET", f"/v1/svc{i}/shelves/{{shelf}}/books/{{book}}"),
            ("POST", f"/v1/svc{i}/shelves/{{shelf}}/books"),
            ("GET", f"/v1/{{name=projects/*/things{i}/*}}"),
            ("POST", f"/v1/{{name=projects/*/things{i}/*}}:publish"),
            ("GET", f"/v1/svc{i}/files/{{path=**}}"),
        ]
    table = build(*routes)
    assert len(routes) == 2000
    assert table.shadowed == ()
    for i in (0, 123, 399):
        assert bindings(table, "GET", f"/v1/svc{i}/shelves/s/books/b") == {
            "shelf": "s",
            "book": "b",
        }
        assert target(table, "POST", f"/v1/svc{i}/shelves/s/books").startswith(f"POST /v1/svc{i}/")
        assert bindings(table, "GET", f"/v1/projects/p/things{i}/t") == {
            "name": f"projects/p/things{i}/t"
        }
        assert target(table, "POST", f"/v1/projects/p/things{i}/t:publish").endswith(":publish")
        assert bindings(table, "GET", f"/v1/svc{i}/files/a/b") == {"path": "a/b"}
        assert table.match("DELETE", f"/v1/svc{i}/shelves/s/books") == MethodMismatch(("POST",))
    assert table.match("GET", "/v1/svc400/shelves/s/books/b") is None


# --- Property tests against a brute-force reference matcher -------------------------------

FIXED_ROUTES: list[Route] = [
    ("GET", "/"),
    ("GET", "/a"),
    ("GET", "/a/{x}"),
    ("POST", "/a/{x}"),
    ("GET", "/a/b/c"),
    ("GET", "/a/{x}/c"),
    ("GET", "/a/*/{y=**}"),
    ("PUT", "/a/{x=b/*}"),
    ("*", "/b/{x=**}"),
    ("GET", "/b/a"),
    ("GET", "/a/{x}:v"),
    ("POST", "/a/{x=**}:v"),
    ("DELETE", "/{p.q}/{r}/{s}"),
    ("GET", "/%61%2Fb/{x}"),
    ("GET", "/caf%C3%A9/{x}"),
    ("GET", "/a/{z}"),  # shadowed by GET /a/{x}
    ("GET", "/a/{x}"),  # shadowed by GET /a/{x}
]
FIXED_TABLE = build(*FIXED_ROUTES)
PARSED = [(method, parse(template), f"{method} {template}") for method, template in FIXED_ROUTES]
REF_VERBS = {t.verb for _, t, _ in PARSED if t.verb is not None}

_STRICT_ESCAPES = re.compile(r"(?:[^%]|%[0-9A-Fa-f]{2})*", re.DOTALL)


def ref_decode(raw: str) -> str | None:
    if not _STRICT_ESCAPES.fullmatch(raw):
        return None
    try:
        return unquote_to_bytes(raw.encode("latin-1")).decode("utf-8")
    except UnicodeError:
        return None


def ref_decode_keep_slash(raw: str) -> str | None:
    pieces = re.split(r"(%2[fF])", raw)
    decoded = [p if i % 2 else ref_decode(p) for i, p in enumerate(pieces)]
    return None if None in decoded else "".join(d for d in decoded if d is not None)


def ref_ranks(template: PathTemplate, segments: list[str]) -> tuple[int, ...] | None:
    """Precedence key (literal 0, * 1, ** 2 per segment) when the template matches."""
    ranks: list[int] = []
    for i, segment in enumerate(template.segments):
        if isinstance(segment, DoubleWildcard):
            rest = segments[i:]
            return (*ranks, 2) if rest and all(rest) else None
        if i >= len(segments):
            return None
        if isinstance(segment, Literal):
            if ref_decode(segments[i]) != segment.value:
                return None
            ranks.append(0)
        else:
            assert isinstance(segment, Wildcard)
            if not segments[i]:
                return None
            ranks.append(1)
    return tuple(ranks) if len(segments) == len(template.segments) else None


def ref_match(method: str, raw_path: str) -> object:
    """Try every template; the best by precedence for this method wins."""
    if not raw_path.startswith("/"):
        return None
    if len(raw_path) > 1 and raw_path.endswith("/"):
        raw_path = raw_path[:-1]
    last = raw_path.rsplit("/", 1)[-1]
    verb = None
    if ":" in last and ref_decode(last.rsplit(":", 1)[1]) in REF_VERBS:
        verb = ref_decode(last.rsplit(":", 1)[1])
        raw_path = raw_path[: raw_path.rindex(":")]
    segments = raw_path[1:].split("/") if raw_path != "/" else []
    candidates = []
    for index, (route_method, template, name) in enumerate(PARSED):
        ranks = ref_ranks(template, segments)
        if template.verb == verb and ranks is not None:
            candidates.append((ranks, route_method == "*", index, route_method, template, name))
    mine = sorted(c for c in candidates if c[3] in (method, "*"))
    if not mine:
        allow = sorted({c[3] for c in candidates})
        return MethodMismatch(tuple(allow)) if allow else None
    *_, template, name = mine[0]
    values = []
    for variable in template.variables:
        stop = len(segments) if variable.double_wildcard else variable.end
        raw = "/".join(segments[variable.start : stop])
        value = ref_decode_keep_slash(raw) if variable.multi_segment else ref_decode(raw)
        if value is None:
            return ("400", ".".join(variable.field_path))
        values.append((variable.field_path, value))
    return RouteMatch(name, tuple(values))


def actual(method: str, path: str) -> object:
    try:
        return FIXED_TABLE.match(method, path)
    except GatewayError as exc:
        return (
            str(exc.http_status),
            exc.message.removesuffix(": invalid percent-encoding in path"),
        )


_tokens = st.one_of(
    st.sampled_from(["a", "b", "c"]),  # half the segments: the templates' own literals
    st.sampled_from(
        [
            *("x", "", ".", "..", "%61", "%62", "a%2Fb", "%2f", "%252F", "%zz", "%", "%C3"),
            *("%C3%A9", "caf%C3%A9", "caf\xc3\xa9", "\xff", "a:b", "%3Av", ":v", "b:v"),
        ]
    ),
)
_paths = st.builds(
    lambda segments, verb, slash: "/" + "/".join(segments) + verb + slash,
    st.lists(_tokens, max_size=4),
    st.sampled_from(["", "", ":v", ":w", "%3Av", ":%76", ":"]),
    st.sampled_from(["", "", "/"]),
)
_methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"])


def test_reference_matcher_agrees_on_examples() -> None:
    assert ref_match("GET", "/a/b/c") == RouteMatch("GET /a/b/c", ())
    assert ref_match("GET", "/a/b/d/e") == RouteMatch("GET /a/*/{y=**}", ((("y",), "d/e"),))
    assert actual("GET", "/a/%zz") == ("400", "x") == ref_match("GET", "/a/%zz")


@given(_methods, _paths)
def test_matches_agree_with_brute_force_reference(method: str, path: str) -> None:
    assert actual(method, path) == ref_match(method, path)


@given(_methods | st.text(max_size=5), st.text() | st.text(alphabet="/%:aF2.é\xff", max_size=30))
def test_arbitrary_paths_raise_only_gateway_errors(method: str, path: str) -> None:
    result: object
    try:
        result = FIXED_TABLE.match(method, path)
    except GatewayError as exc:
        result = exc
    if isinstance(result, GatewayError):
        assert result.http_status == 400
    else:
        assert result is None or isinstance(result, RouteMatch | MethodMismatch)
