"""JSON ↔ one message type, built by ``Codecs``; its fallback is the one ``json_format`` call."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from transcoder.descriptors import message_class
from transcoder.errors import GatewayError
from transcoder.field_json import Converter, Encoder, _Invalid
from transcoder.protojson_codegen import (
    _DECODE_HELPERS,
    _ENCODE_HELPERS,
    _attribute,
    _value_expression,
)
from transcoder.strict_json import JsonValue

if TYPE_CHECKING:
    from transcoder.protojson import Codecs

__all__ = ["MessageCodec"]

Maker = Callable[[Any, int], Message]
Entry = tuple[str, Converter, str | None, Any]  # proto name, converter, oneof, value for null


class MessageCodec:
    """JSON ↔ one message type, under the options of the ``Codecs`` that built it."""

    __slots__ = (
        "_codecs",
        "_encode",
        "_field_encoders",
        "_links",
        "_make",
        "_namespace",
        "_strict_make",
        "_strict_value",
        "_table",
        "_value",
        "descriptor",
        "message_class",
    )

    def __init__(self, codecs: Codecs, descriptor: Descriptor) -> None:
        self.descriptor = descriptor
        self.message_class: type[Message] = message_class(descriptor)
        self._codecs = codecs
        # The fast pass (_value) leaves some values for the constructor to check;
        # the strict pass (_strict_value) converts and checks each one itself.
        self._value: Converter = _unlinked
        self._strict_value: Converter = _unlinked
        self._make: Maker = self._construct
        self._strict_make: Maker = self._construct_strict
        self._table: dict[str, Entry] = {}  # JSON and proto names → entry, for the strict pass
        self._encode: Encoder = _unlinked
        self._namespace: dict[str, Any] = {**_ENCODE_HELPERS, **_DECODE_HELPERS}
        self._links: dict[str, str] = {}  # generated name → full name of the type it encodes
        self._field_encoders: dict[str, Encoder] = {}

    def decode(self, value: JsonValue, *, path: str = "") -> Message:
        """The message for ``value``; a GatewayError 400 names the JSON path of a bad value.

        ``path`` prefixes that path, for a body bound to a field ("book.title: ...").
        """
        try:
            return self._make(value, 0)
        except _Invalid as exc:
            raise self._invalid(exc, path) from None
        except (TypeError, ValueError, OverflowError):
            pass  # the constructor refused a value left to it
        try:
            return self._strict_make(value, 0)
        except _Invalid as exc:
            raise self._invalid(exc, path) from None
        except (TypeError, ValueError, OverflowError):
            return self._decode_fallback(value, path)

    def encode(self, message: Message) -> JsonValue:
        """The JSON value (a dict, or a WKT's JSON form) for ``orjson.dumps``."""
        return self._encode(message)

    def encode_field(self, message: Message, field_name: str) -> JsonValue:
        """One field's JSON value (``response_body``); an unset field gives its default."""
        encoder = self._field_encoders.get(field_name)
        if encoder is None:
            field = self.descriptor.fields_by_name[field_name]
            expression = _value_expression(field, _attribute("m", field.name), self)
            encoder = eval(f"lambda m: {expression}", self._namespace)
            self._codecs._link_encoders(self)
            self._field_encoders[field_name] = encoder
        return encoder(message)

    def dumps(self, message: Message) -> bytes:
        """Compact one-line JSON: unary bodies and stream frames alike (contract §4)."""
        return orjson.dumps(self._encode(message))

    def _construct(self, value: Any, depth: int) -> Message:
        return self.message_class(**self._value(value, depth))

    def _construct_strict(self, value: Any, depth: int) -> Message:
        return self.message_class(**self._strict_value(value, depth))

    def _invalid(self, exc: _Invalid, path: str) -> GatewayError:
        return GatewayError.invalid_argument(exc.path(path) or self.descriptor.name, exc.reason)

    def _decode_fallback(self, value: Any, path: str) -> Message:
        """The constructor refused values we checked (our bug): json_format decides."""
        options = self._codecs.options
        message = self.message_class()
        try:
            json_format.ParseDict(
                value,
                message,
                ignore_unknown_fields=options.ignore_unknown_fields,
                descriptor_pool=self._codecs.pool,
                max_recursion_depth=options.max_depth,
            )
        except Exception as exc:  # ParseDict lets TypeError, KeyError... through
            reason = (str(exc).strip().splitlines() or ["invalid value"])[0]
            raise GatewayError.invalid_argument(path or self.descriptor.name, reason) from None
        return message


def _unlinked(value: Any, depth: int = 0) -> Any:
    raise AssertionError("a codec was used before it was linked")  # pragma: no cover
