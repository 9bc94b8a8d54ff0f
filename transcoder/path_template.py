"""The ``google.api.http`` path template grammar: text → ``PathTemplate`` and back.

Grammar (``google/api/http.proto``)::

    Template  = "/" Segments [ Verb ] ;     also the bare template "/"
    Segments  = Segment { "/" Segment } ;
    Segment   = "*" | "**" | LITERAL | Variable ;
    Variable  = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb      = ":" LITERAL ;

Worked example::

    >>> t = parse("/v1/{name=shelves/*/books/*}:publish")
    >>> t.segments
    (Literal(value='v1'), Literal(value='shelves'), Wildcard(), Literal(value='books'), Wildcard())
    >>> t.variables
    (Variable(field_path=('name',), start=1, end=5, double_wildcard=False),)
    >>> t.verb, str(t)
    ('publish', '/v1/{name=shelves/*/books/*}:publish')

Rules beyond the grammar:

- ``{var}`` means ``{var=*}`` and prints back as ``{var}``.
- ``**`` may appear once, as the last segment (before the verb).
- A variable is a whole segment (``a{b}`` is an error), variables do not nest, and a
  field path is bound at most once per template.
- A LITERAL is a run of RFC 3986 ``pchar`` characters other than ``/ { } : *``;
  ``%XX`` escapes are decoded (as UTF-8) into ``Literal.value``.  ``*`` is only ever a
  wildcard segment: write ``%2A`` for a literal star.  The verb is a LITERAL too.
- ``str()`` is canonical: literals are re-escaped with upper-case hex only where a
  character is not allowed raw, so ``str(parse(t)) == t`` for canonical ``t`` and
  ``parse(str(parse(t))) == parse(t)`` for every valid ``t``.

Every problem raises ``TemplateError`` (a ``ValueError``) saying what is wrong and where;
the caller turns it into a ``ConfigError`` naming the method.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DoubleWildcard",
    "Literal",
    "PathTemplate",
    "Segment",
    "TemplateError",
    "Variable",
    "Wildcard",
    "parse",
]


class TemplateError(ValueError):
    """A path template that does not follow the grammar."""


@dataclass(frozen=True, slots=True)
class Literal:
    """A fixed segment; ``value`` is already percent-decoded."""

    value: str


@dataclass(frozen=True, slots=True)
class Wildcard:
    """``*``: exactly one segment."""


@dataclass(frozen=True, slots=True)
class DoubleWildcard:
    """``**``: the rest of the path (one or more segments, see ``routing``)."""


Segment = Literal | Wildcard | DoubleWildcard


@dataclass(frozen=True, slots=True)
class Variable:
    """A field bound to ``PathTemplate.segments[start:end]``."""

    field_path: tuple[str, ...]
    start: int
    end: int
    double_wildcard: bool = False  # its segments include "**"

    @property
    def multi_segment(self) -> bool:
        """True when the value may span several segments (then ``%2F`` stays encoded)."""
        return self.double_wildcard or self.end - self.start > 1


@dataclass(frozen=True, slots=True)
class PathTemplate:
    segments: tuple[Segment, ...]
    variables: tuple[Variable, ...]
    verb: str | None

    def __str__(self) -> str:
        parts: list[str] = []
        by_start = {v.start: v for v in self.variables}
        i = 0
        while i < len(self.segments):
            variable = by_start.get(i)
            if variable is None:
                parts.append(_segment_text(self.segments[i]))
                i += 1
                continue
            inner = self.segments[variable.start : variable.end]
            name = ".".join(variable.field_path)
            if inner == (Wildcard(),):
                parts.append(f"{{{name}}}")
            else:
                parts.append(f"{{{name}={'/'.join(_segment_text(s) for s in inner)}}}")
            i = variable.end
        verb = "" if self.verb is None else ":" + _escape(self.verb)
        return "/" + "/".join(parts) + verb


# RFC 3986 pchar minus the characters the grammar gives a meaning ("/" "{" "}" ":" "*");
# "%" only as the start of an escape.
_LITERAL_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()+,;=@"
)
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_IDENT_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_IDENT_CHARS = _IDENT_START | frozenset("0123456789")


def _escape(value: str) -> str:
    """Canonical text of a literal: raw where allowed, upper-case ``%XX`` otherwise."""
    if all(c in _LITERAL_CHARS for c in value):
        return value
    out: list[str] = []
    for c in value:
        if c in _LITERAL_CHARS:
            out.append(c)
        else:
            out.extend(f"%{b:02X}" for b in c.encode("utf-8"))
    return "".join(out)


def _segment_text(segment: Segment) -> str:
    if isinstance(segment, Literal):
        return _escape(segment.value)
    return "*" if isinstance(segment, Wildcard) else "**"


class _Parser:
    """One pass over the template text; ``error()`` quotes the template and the position."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.segments: list[Segment] = []
        self.variables: list[Variable] = []

    def error(self, what: str, pos: int | None = None) -> TemplateError:
        where = "" if pos is None else f" at position {pos}"
        return TemplateError(f"{what}{where} in {self.template!r}")

    def literal(self, text: str, pos: int) -> str:
        """Decode one LITERAL that starts at ``pos`` in the template."""
        if not text:
            raise self.error("empty segment", pos)
        for i, c in enumerate(text):
            if c == "%":
                digits = text[i + 1 : i + 3]
                if len(digits) != 2 or not set(digits) <= _HEX_DIGITS:
                    raise self.error(f"malformed percent-escape {text[i : i + 3]!r}", pos + i)
            elif c == "*":
                raise self.error(
                    "'*' must be a whole segment (use %2A for a literal star)", pos + i
                )
            elif c not in _LITERAL_CHARS:
                raise self.error(f"character {c!r} is not allowed", pos + i)
        if "%" not in text:
            return text
        raw = bytearray()
        i = 0
        while i < len(text):
            if text[i] == "%":
                raw.append(int(text[i + 1 : i + 3], 16))
                i += 3
            else:
                raw.append(ord(text[i]))
                i += 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(f"literal {text!r} is not UTF-8 once decoded", pos) from None

    def plain_segment(self, text: str, pos: int) -> Segment:
        if text == "*":
            return Wildcard()
        if text == "**":
            return DoubleWildcard()
        return Literal(self.literal(text, pos))

    def field_path(self, text: str, pos: int) -> tuple[str, ...]:
        if not text:
            raise self.error("empty variable name", pos)
        idents = tuple(text.split("."))
        offset = pos
        for ident in idents:
            if not ident:
                raise self.error(f"empty name in field path {text!r}", offset)
            if ident[0] not in _IDENT_START or not set(ident) <= _IDENT_CHARS:
                raise self.error(f"{ident!r} is not an identifier", offset)
            offset += len(ident) + 1
        return idents

    def variable(self, pos: int) -> int:
        """Parse the variable whose "{" is at ``pos``; return the position after its "}"."""
        t = self.template
        close = t.find("}", pos + 1)
        nested = t.find("{", pos + 1)
        if close < 0:
            raise self.error("unclosed '{'", pos)
        if 0 <= nested < close:
            raise self.error("nested '{' (variables cannot contain variables)", nested)
        name, eq, inner = t[pos + 1 : close].partition("=")
        field_path = self.field_path(name, pos + 1)
        if any(v.field_path == field_path for v in self.variables):
            raise self.error(f"field {'.'.join(field_path)!r} is bound twice", pos)
        start = len(self.segments)
        if not eq:
            self.segments.append(Wildcard())
        else:
            inner_pos = pos + 1 + len(name) + 1
            for text in inner.split("/"):
                if not text:
                    raise self.error("empty segment in variable", inner_pos)
                self.segments.append(self.plain_segment(text, inner_pos))
                inner_pos += len(text) + 1
        double = any(isinstance(s, DoubleWildcard) for s in self.segments[start:])
        self.variables.append(Variable(field_path, start, len(self.segments), double))
        return close + 1

    def parse(self) -> PathTemplate:
        t = self.template
        if not t.startswith("/"):
            raise self.error("a template must start with '/'")
        if t == "/":
            return PathTemplate((), (), None)
        body_end, verb = self.split_verb()
        pos = 1
        while True:
            if pos >= body_end:
                raise self.error("trailing '/'" if pos > 1 else "empty segment", pos)
            if t[pos] == "{":
                pos = self.variable(pos)
                if pos < body_end and t[pos] != "/":
                    raise self.error("a variable must be a whole segment", pos)
            else:
                end = t.find("/", pos, body_end)
                end = body_end if end < 0 else end
                text = t[pos:end]
                brace = next((i for i, c in enumerate(text) if c in "{}"), -1)
                if brace >= 0 and text[brace] == "{":
                    raise self.error("a variable must be a whole segment", pos + brace)
                if brace >= 0:
                    raise self.error("unmatched '}'", pos + brace)
                if not text:
                    raise self.error("empty segment", pos)
                self.segments.append(self.plain_segment(text, pos))
                pos = end
            if pos >= body_end:
                break
            pos += 1  # the "/"
        self.check_double_wildcard()
        return PathTemplate(tuple(self.segments), tuple(self.variables), verb)

    def split_verb(self) -> tuple[int, str | None]:
        """The end of the segments and the decoded verb, found at the first ':' outside "{}"."""
        t = self.template
        depth = 0
        for i, c in enumerate(t):
            if c == "{":
                depth += 1
            elif c == "}":
                depth = max(depth - 1, 0)
            elif c == ":":
                if depth:
                    raise self.error("':' inside a variable", i)
                text = t[i + 1 :]
                if not text:
                    raise self.error("empty verb", i)
                bad = next((j for j, c2 in enumerate(text) if c2 in "/{}:"), -1)
                if bad >= 0:
                    raise self.error(
                        f"{text[bad]!r} in the verb (the verb must end the template)", i + 1 + bad
                    )
                return i, self.literal(text, i + 1)
        return len(t), None

    def check_double_wildcard(self) -> None:
        doubles = [i for i, s in enumerate(self.segments) if isinstance(s, DoubleWildcard)]
        if len(doubles) > 1:
            raise self.error("'**' may appear only once")
        if doubles and doubles[0] != len(self.segments) - 1:
            raise self.error("'**' must be the last segment")


def parse(template: str) -> PathTemplate:
    """Parse a ``google.api.http`` path template; raise ``TemplateError`` if invalid."""
    return _Parser(template).parse()
