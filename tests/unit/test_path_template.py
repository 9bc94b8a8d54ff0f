"""Path template grammar: parse, canonical printing, errors (contract §2)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transcoder.path_template import (
    DoubleWildcard,
    Literal,
    PathTemplate,
    Segment,
    TemplateError,
    Variable,
    Wildcard,
    parse,
)

L = Literal
W = Wildcard()
DW = DoubleWildcard()

VALID: list[tuple[str, tuple[Segment, ...], tuple[Variable, ...], str | None]] = [
    ("/", (), (), None),
    ("/v1", (L("v1"),), (), None),
    ("/v1/shelves/books", (L("v1"), L("shelves"), L("books")), (), None),
    ("/v1/*", (L("v1"), W), (), None),
    ("/v1/*/x/**", (L("v1"), W, L("x"), DW), (), None),
    ("/v1/{a}", (L("v1"), W), (Variable(("a",), 1, 2),), None),
    ("/v1/{a.b.c}/x", (L("v1"), W, L("x")), (Variable(("a", "b", "c"), 1, 2),), None),
    ("/v1/{a=x/*}", (L("v1"), L("x"), W), (Variable(("a",), 1, 3),), None),
    ("/v1/{a=x/*/**}", (L("v1"), L("x"), W, DW), (Variable(("a",), 1, 4, True),), None),
    ("/v1/{a=**}", (L("v1"), DW), (Variable(("a",), 1, 2, True),), None),
    ("/v1/{a=x}", (L("v1"), L("x")), (Variable(("a",), 1, 2),), None),
    (
        "/v1/{a}/{b_2=y/*}:publish",
        (L("v1"), W, L("y"), W),
        (Variable(("a",), 1, 2), Variable(("b_2",), 2, 4)),
        "publish",
    ),
    ("/v1/{name=**}:get", (L("v1"), DW), (Variable(("name",), 1, 2, True),), "get"),
    ("/v1/a%20b/%2A/%2F/%25", (L("v1"), L("a b"), L("*"), L("/"), L("%")), (), None),
    ("/v1/caf%C3%A9", (L("v1"), L("café")), (), None),
    ("/v1/a=b/.././@!$&'()+,;~", (L("v1"), L("a=b"), L(".."), L("."), L("@!$&'()+,;~")), (), None),
    ("/pkg.v1.Service/Method", (L("pkg.v1.Service"), L("Method")), (), None),
    ("/v1/x:%70ub", (L("v1"), L("x")), (), "pub"),
]


@pytest.mark.parametrize(
    ("template", "segments", "variables", "verb"), VALID, ids=[v[0] for v in VALID]
)
def test_valid_template_parses(
    template: str,
    segments: tuple[Segment, ...],
    variables: tuple[Variable, ...],
    verb: str | None,
) -> None:
    parsed = parse(template)
    assert parsed == PathTemplate(segments, variables, verb)
    assert parse(str(parsed)) == parsed


CANONICAL = [
    "/",
    "/v1/*/x/**",
    "/v1/{a}",
    "/v1/{a.b.c}/x",
    "/v1/{a=x/*/**}",
    "/v1/{a=**}:get",
    "/v1/a%20b/%2A/%2F/%25",
    "/v1/caf%C3%A9",
]


@pytest.mark.parametrize("template", CANONICAL)
def test_canonical_template_prints_back_unchanged(template: str) -> None:
    assert str(parse(template)) == template


@pytest.mark.parametrize(
    ("template", "canonical"),
    [
        ("/v1/{a=*}", "/v1/{a}"),
        ("/v1/%65verything", "/v1/everything"),
        ("/v1/%2a/%c3%a9", "/v1/%2A/%C3%A9"),
        ("/v1/x:%70ub", "/v1/x:pub"),
    ],
)
def test_non_canonical_template_prints_canonical_form(template: str, canonical: str) -> None:
    assert str(parse(template)) == canonical


def test_multi_segment_variable() -> None:
    single, inner_literal, several, double = parse("/{a}/{b=x}/{c=x/*}/{d=**}").variables
    assert not single.multi_segment
    assert not inner_literal.multi_segment
    assert several.multi_segment
    assert double.multi_segment


INVALID = [
    ("v1/books", "must start with '/'"),
    ("", "must start with '/'"),
    ("/v1//books", "empty segment at position 4"),
    ("/v1/books/", "trailing '/'"),
    ("//", "empty segment"),
    ("/v1/**/x", "'**' must be the last segment in '/v1/**/x'"),
    ("/v1/{a=**}/x", "'**' must be the last segment"),
    ("/**/**", "'**' may appear only once"),
    ("/v1/{a=**}/{b=**}", "'**' may appear only once"),
    ("/v1/{a={b}}", "nested '{'"),
    ("/v1/{a{b}}", "nested '{'"),
    ("/v1/{a", "unclosed '{' at position 4"),
    ("/v1/{a=x/*", "unclosed '{'"),
    ("/v1/{}", "empty variable name"),
    ("/v1/{=x}", "empty variable name"),
    ("/v1/{1a}", "'1a' is not an identifier"),
    ("/v1/{a-b}", "'a-b' is not an identifier"),
    ("/v1/{a..b}", "empty name in field path"),
    ("/v1/{a=}", "empty segment in variable"),
    ("/v1/{a=x//y}", "empty segment in variable"),
    ("/v1/{a}/{a}", "field 'a' is bound twice"),
    ("/v1/{a.b=x}/{a.b}", "field 'a.b' is bound twice"),
    ("/v1/a:b/c", "'/' in the verb"),
    ("/v1/a:b:c", "':' in the verb"),
    ("/v1/a:", "empty verb"),
    ("/v1/{a:b}", "':' inside a variable"),
    ("/v1/a{b}", "a variable must be a whole segment"),
    ("/v1/{a}b", "a variable must be a whole segment"),
    ("/v1/a}", "unmatched '}'"),
    ("/v1/a*", "'*' must be a whole segment"),
    ("/v1/***", "'*' must be a whole segment"),
    ("/v1/%zz", "malformed percent-escape '%zz' at position 4"),
    ("/v1/a%", "malformed percent-escape '%'"),
    ("/v1/%C", "malformed percent-escape '%C'"),
    ("/v1/%C3", "not UTF-8"),
    ("/v1/a b", "character ' ' is not allowed"),
    ("/v1/café", "character 'é' is not allowed"),
    ("/v1/a?b", "character '?' is not allowed"),
    ("/:verb", "empty segment"),
]


@pytest.mark.parametrize(("template", "message"), INVALID, ids=[i[0] or "empty" for i in INVALID])
def test_invalid_template_raises_template_error(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        parse(template)
    assert message in str(info.value)
    assert repr(template) in str(info.value)


def test_template_error_is_value_error() -> None:
    assert issubclass(TemplateError, ValueError)


# Generated canonical templates, printed by an encoder independent of the module's.
_SAFE = "-._~!$&'()+,;=@"
_idents = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True)


def _encode(value: str) -> str:
    return quote(value.encode("utf-8"), safe=_SAFE)


_literals = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=6).map(_encode)
_plain = st.one_of(_literals, st.just("*"))


@st.composite
def canonical_templates(draw: st.DrawFn) -> str:
    parts: list[str] = []
    used: set[tuple[str, ...]] = set()
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            parts.append(draw(_plain))
            continue
        field_path = tuple(draw(st.lists(_idents, min_size=1, max_size=3)))
        if field_path in used:
            continue
        used.add(field_path)
        inner = draw(st.lists(_plain, min_size=1, max_size=3))
        name = ".".join(field_path)
        parts.append(f"{{{name}}}" if inner == ["*"] else f"{{{name}={'/'.join(inner)}}}")
    if draw(st.booleans()):
        name = draw(_idents)
        if (name,) in used or draw(st.booleans()):
            parts.append("**")
        else:
            parts.append(f"{{{name}=" + "/".join([*draw(st.lists(_plain, max_size=2)), "**"]) + "}")
    if not parts:
        return "/"
    verb = draw(st.one_of(st.none(), _literals))
    return "/" + "/".join(parts) + ("" if verb is None else ":" + verb)


@given(canonical_templates())
def test_canonical_templates_round_trip(template: str) -> None:
    parsed = parse(template)
    assert str(parsed) == template
    assert parse(str(parsed)) == parsed


@given(st.text(alphabet=st.sampled_from("/{}=*.:%aZ_1-éF2 "), max_size=20) | st.text())
def test_any_text_parses_or_raises_template_error(text: str) -> None:
    try:
        parsed = parse(text)
    except TemplateError:
        return
    assert parse(str(parsed)) == parsed
