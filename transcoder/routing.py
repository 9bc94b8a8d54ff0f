"""A frozen route table: (HTTP method, raw request path) → target and path variables.

Templates are compiled at ``build()`` into a segment trie (a dict of literal children, one
``*`` child and one ``**`` leaf set per node; leaves keyed by custom verb, then by HTTP
method), so ``match`` costs a few dict lookups per segment whatever the number of routes.

Worked example, for a table of four routes::

    route                           request                      match
    GET  /v1/precedence/literal     GET /v1/precedence/literal   that route, no bindings
    GET  /v1/precedence/{x}         GET /v1/precedence/a%2Fb     x = "a/b"
    GET  /v1/precedence/{x=**}      GET /v1/precedence/a%2Fb/c   x = "a%2Fb/c"
    POST /v1/books/{id}:publish     GET /v1/books/1:publish      MethodMismatch(("POST",))

Rules (contract §2):

- Precedence: at each segment a literal child beats ``*``, which beats ``**``; a branch
  that fails deeper backtracks.  Precedence is per method: the best template among those
  bound to the request's method (or to ``*``, any method) wins, and on one template an
  exact method beats ``*``.  If templates match the path but none for the method, the
  answer is ``MethodMismatch`` with the sorted union of their methods (405 + ``Allow``).
- One trailing ``/`` is stripped (unless the path is ``/``).  Nothing else is
  normalised: ``//``, ``.`` and ``..`` are ordinary segments.
- Empty segments (decision): ``*`` never matches an empty segment, and ``**`` matches one
  or more segments, none of them empty.  So ``/v1/files/{x=**}`` does not match
  ``/v1/files`` (nor ``/v1/files/``), nor ``/v1/files/a//b``.
- Custom verb: the raw text after the last ``:`` of the last segment is a verb only when
  some template declares it (compared after decoding, so ``:%70ublish`` is ``publish``);
  otherwise the colon belongs to the segment.  The split is on the raw path, so ``%3A``
  never separates a verb.  A template with verb V matches only requests with verb V; one
  without a verb only requests without a registered verb.
- Decoding: one percent-decoding pass over the raw bytes (``raw_path`` is the ASGI
  ``raw_path`` decoded as latin-1, so each character is one byte), then UTF-8.  Literals
  compare with the decoded segment.  A variable bound to one segment is fully decoded
  (``a%2Fb`` → ``a/b``, ``%252F`` → ``%2F``).  A multi-segment variable (``**`` or ``/``
  in its braces) is its raw segments joined with ``/`` and decoded except ``%2F`` /
  ``%2f``, which stay exactly as sent (case kept), so the value still tells a separator
  from an escaped slash.
- A malformed escape or non-UTF-8 bytes: in a segment the matched route binds to a
  variable, ``GatewayError.invalid_argument(field, ...)`` (400); elsewhere the segment
  matches no literal (a bare ``*`` still matches it).
- Shadowing: a later route with the same method, segments and verb as an earlier one
  (whatever its variable names) can never match; the earlier wins and the pair is listed
  in ``RouteTable.shadowed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from transcoder.errors import GatewayError
from transcoder.path_template import DoubleWildcard, Literal, PathTemplate, Wildcard

__all__ = ["MethodMismatch", "RouteMatch", "RouteTable", "RouteTableBuilder"]

T = TypeVar("T")

ANY_METHOD = "*"

Bindings = tuple[tuple[tuple[str, ...], str], ...]


@dataclass(frozen=True, slots=True)
class RouteMatch(Generic[T]):
    target: T
    bindings: Bindings  # (field path, decoded value) per template variable, in template order


@dataclass(frozen=True, slots=True)
class MethodMismatch:
    allow: tuple[str, ...]  # sorted methods of every template matching the path


# Every two-character hex pair, any case, → its byte.
_HEX_PAIRS: dict[str, int] = {
    f"{a}{b}": int(f"{a}{b}", 16)
    for a in "0123456789abcdefABCDEF"
    for b in "0123456789abcdefABCDEF"
}


def _decode(raw: str, keep_slash: bool = False) -> str | None:
    """One percent-decoding pass over a latin-1 raw string, then UTF-8; None if malformed.

    With ``keep_slash``, ``%2F``/``%2f`` is kept as sent.
    """
    if "%" not in raw:
        if raw.isascii():
            return raw
        try:
            return raw.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return None
    parts = raw.split("%")
    try:
        out = bytearray(parts[0].encode("latin-1"))
        for part in parts[1:]:
            byte = _HEX_PAIRS.get(part[:2])
            if byte is None:
                return None
            if byte == 0x2F and keep_slash:
                out += b"%"
                out += part.encode("latin-1")
            else:
                out.append(byte)
                out += part[2:].encode("latin-1")
        return out.decode("utf-8")
    except UnicodeError:
        return None


@dataclass(frozen=True, slots=True)
class _Binding:
    field_path: tuple[str, ...]
    name: str  # ".".join(field_path), for errors
    start: int
    stop: int | None  # None: to the end of the path (holds "**")
    multi: bool


@dataclass(frozen=True, slots=True)
class _Entry(Generic[T]):
    target: T
    bindings: tuple[_Binding, ...]
    fixed: RouteMatch[T] | None  # the whole answer when the template has no variables


class _Leaf(Generic[T]):
    """The routes of one template shape and verb, by method."""

    __slots__ = ("allow", "any", "methods")

    def __init__(self) -> None:
        self.methods: dict[str, _Entry[T]] = {}
        self.any: _Entry[T] | None = None
        self.allow: frozenset[str] = frozenset()


class _Node(Generic[T]):
    __slots__ = ("double", "leaves", "literals", "wildcard")

    def __init__(self) -> None:
        self.literals: dict[str, _Node[T]] = {}
        self.wildcard: _Node[T] | None = None
        self.double: dict[str | None, _Leaf[T]] | None = None  # "**" is always last
        self.leaves: dict[str | None, _Leaf[T]] = {}


class RouteTable(Generic[T]):
    """The frozen table made by ``RouteTableBuilder.build()``."""

    __slots__ = ("_root", "shadowed", "verbs")

    def __init__(
        self, root: _Node[T], shadowed: tuple[tuple[T, T], ...], verbs: frozenset[str]
    ) -> None:
        self._root = root
        self.shadowed = shadowed  # (shadowed target, winning target)
        self.verbs = verbs

    def match(self, method: str, raw_path: str) -> RouteMatch[T] | MethodMismatch | None:
        """Route a request; ``raw_path`` is still percent-encoded, without the query."""
        if not raw_path.startswith("/"):
            return None
        if len(raw_path) > 1 and raw_path[-1] == "/":
            raw_path = raw_path[:-1]
        verb: str | None = None
        colon = raw_path.rfind(":")
        if colon >= 0 and self.verbs and raw_path.find("/", colon) < 0:
            candidate = _decode(raw_path[colon + 1 :])
            if candidate in self.verbs:
                verb = candidate
                raw_path = raw_path[:colon]
        segments = raw_path[1:].split("/") if len(raw_path) > 1 else []
        if "%" in raw_path or not raw_path.isascii():
            decoded: Sequence[str | None] = [_decode(s) for s in segments]
        else:
            decoded = segments
        # "**" needs its segments non-empty: it may start only after the last empty one.
        double_from = len(segments) - segments[::-1].index("") if "" in segments else 0
        entry = _find(self._root, segments, decoded, 0, double_from, verb, method, None)
        if entry is None:
            allow: set[str] = set()
            _find(self._root, segments, decoded, 0, double_from, verb, method, allow)
            return MethodMismatch(tuple(sorted(allow))) if allow else None
        if entry.fixed is not None:
            return entry.fixed
        return RouteMatch(entry.target, _bind(entry.bindings, segments, decoded))


def _find(
    node: _Node[T],
    segments: list[str],
    decoded: Sequence[str | None],
    i: int,
    double_from: int,
    verb: str | None,
    method: str,
    allow: set[str] | None,
) -> _Entry[T] | None:
    """Depth-first, literal > ``*`` > ``**``: the first entry for ``method``.

    With ``allow`` given, walk every matching template instead and collect its methods.
    """
    if i == len(segments):
        leaf = node.leaves.get(verb)
        if leaf is None:
            return None
        if allow is not None:
            allow |= leaf.allow
            return None
        return leaf.methods.get(method) or leaf.any
    literal = decoded[i]
    if literal is not None:
        child = node.literals.get(literal)
        if child is not None:
            found = _find(child, segments, decoded, i + 1, double_from, verb, method, allow)
            if found is not None:
                return found
    if node.wildcard is not None and segments[i]:
        found = _find(node.wildcard, segments, decoded, i + 1, double_from, verb, method, allow)
        if found is not None:
            return found
    if node.double is not None and i >= double_from:
        leaf = node.double.get(verb)
        if leaf is not None:
            if allow is not None:
                allow |= leaf.allow
                return None
            return leaf.methods.get(method) or leaf.any
    return None


def _bind(
    bindings: tuple[_Binding, ...], segments: list[str], decoded: Sequence[str | None]
) -> Bindings:
    values: list[tuple[tuple[str, ...], str]] = []
    for b in bindings:
        value: str | None
        if b.multi:
            value = _decode("/".join(segments[b.start : b.stop]), keep_slash=True)
        else:
            value = decoded[b.start]
        if value is None:
            raise GatewayError.invalid_argument(b.name, "invalid percent-encoding in path")
        values.append((b.field_path, value))
    return tuple(values)


def _shape(template: PathTemplate) -> tuple[object, ...]:
    """What matching sees of a template: its segments and verb, not its variable names."""
    return (template.segments, template.verb)


class RouteTableBuilder(Generic[T]):
    """Collects routes, then ``build()`` freezes them into a ``RouteTable``."""

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self._winners: dict[tuple[str, tuple[object, ...]], T] = {}
        self._shadowed: list[tuple[T, T]] = []
        self._verbs: set[str] = set()
        self._built = False

    def add(self, method: str, template: PathTemplate, target: T) -> None:
        """Bind ``method`` (upper-case, a custom kind, or ``*`` for any) + ``template``."""
        if self._built:
            raise RuntimeError("RouteTableBuilder.add() after build()")
        if not method:
            raise ValueError("empty HTTP method")
        key = (method, _shape(template))
        if key in self._winners:
            self._shadowed.append((target, self._winners[key]))
            return
        self._winners[key] = target
        if template.verb is not None:
            self._verbs.add(template.verb)
        leaf = self._leaf(template)
        entry = _entry(template, target)
        if method == ANY_METHOD:
            leaf.any = entry
        else:
            leaf.methods[method] = entry
        leaf.allow = leaf.allow | {method}

    def _leaf(self, template: PathTemplate) -> _Leaf[T]:
        node = self._root
        for segment in template.segments:
            if isinstance(segment, Literal):
                node = node.literals.setdefault(segment.value, _Node())
            elif isinstance(segment, Wildcard):
                if node.wildcard is None:
                    node.wildcard = _Node()
                node = node.wildcard
            else:
                assert isinstance(segment, DoubleWildcard)
                if node.double is None:
                    node.double = {}
                return node.double.setdefault(template.verb, _Leaf())
        return node.leaves.setdefault(template.verb, _Leaf())

    def build(self) -> RouteTable[T]:
        if self._built:
            raise RuntimeError("RouteTableBuilder.build() called twice")
        self._built = True
        return RouteTable(self._root, tuple(self._shadowed), frozenset(self._verbs))


def _entry(template: PathTemplate, target: T) -> _Entry[T]:
    bindings = tuple(
        _Binding(
            field_path=v.field_path,
            name=".".join(v.field_path),
            start=v.start,
            stop=None if v.double_wildcard else v.end,  # "**" is always last
            multi=v.multi_segment,
        )
        for v in template.variables
    )
    fixed = None if bindings else RouteMatch(target, ())
    return _Entry(target, bindings, fixed)
