"""Settings: command line > ``TRANSCODER_*`` environment > YAML file > defaults (contract §1).

Every key lives in a section (``streaming.sse_keepalive_seconds``) except the top-level
``forward_headers``; ``config.example.yaml`` lists them all with their defaults.
The environment spells a key ``TRANSCODER_<SECTION>__<KEY>``::

    TRANSCODER_STREAMING__SSE_KEEPALIVE_SECONDS=5
    TRANSCODER_FORWARD_HEADERS=authorization,x-request-id      # or ["authorization","x-request-id"]

Sources are deep-merged, so an environment variable overrides one key of a section the
YAML file also sets and leaves the others alone. ``load_settings()`` turns every problem
into a one-line ``ConfigError`` naming the key (and where its value came from) or the file.

Choices the contract leaves open:

- The environment is read by our own source, not pydantic-settings' ``EnvSettingsSource``:
  that one ignores unknown top-level variables, reads aliased fields without the prefix
  and wants JSON for lists. Here every ``TRANSCODER_*`` variable must name a key, lists
  take JSON or ``a,b``, an empty value unsets an optional key (``upstream.address``,
  ``streaming.sse_retry_ms``), and a whole section in one variable is refused.
- Environment variable names are matched case-insensitively; YAML keys are exact.
- A YAML section left empty (``streaming:`` with every key commented out) means "no
  settings for that section", like an empty file.
- ``None`` in ``overrides`` means "flag not given" and is dropped.
- Numbers reject booleans (``workers: yes`` is an error, not 1) and nan/inf.
- Header-name lists must hold HTTP tokens; ``forward_headers`` and ``cors.allow_headers``
  are lower-cased.
"""

from __future__ import annotations

import json as jsonlib
import os
import re
import warnings
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from transcoder.errors import ConfigError

ENV_PREFIX = "TRANSCODER_"
ENV_NESTED_DELIMITER = "__"

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 token


def _header_names(values: list[str], *, lower: bool) -> list[str]:
    for name in values:
        if not _HEADER_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid header name")
    return [name.lower() for name in values] if lower else values


class _Section(BaseModel):
    """A settings section: unknown keys are errors, values are frozen, floats are finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic reads True as 1 in lax mode; `workers: yes` is a mistake, not one worker.
        if isinstance(value, bool) and info.field_name is not None:
            kinds = _union_args(cls.model_fields[info.field_name].annotation)
            if int in kinds or float in kinds:
                raise ValueError("must be a number, not a boolean")
        return value


class ListenSettings(_Section):
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1)


class UpstreamSettings(_Section):
    address: str | None = Field(None, min_length=1)  # HOST:PORT; `serve` requires it
    timeout_seconds: float = Field(30.0, ge=0)  # 0 = no deadline
    max_timeout_seconds: float = Field(300.0, gt=0)
    stream_timeout_seconds: float = Field(0.0, ge=0)  # 0 = no deadline
    max_receive_message_bytes: int = Field(4 * 1024 * 1024, gt=0)
    max_reconnect_backoff_seconds: float = Field(5.0, gt=0)


class DescriptorsSettings(_Section):
    files: list[str] = Field(default_factory=list)
    reflection: bool = False


class RoutesSettings(_Section):
    unannotated: bool = True
    services: list[str] = Field(default_factory=list)  # empty = all services


class RequestSettings(_Section):
    ignore_unknown_query_parameters: bool = False
    ignored_query_parameters: list[str] = Field(default_factory=list)
    case_insensitive_enums: bool = False
    patch_field_mask: bool = True


class JsonSettings(_Section):
    use_proto_names: bool = False
    emit_unpopulated: bool = True
    use_enum_numbers: bool = False
    ignore_unknown_fields: bool = False
    max_depth: int = Field(64, gt=0)


class ErrorsSettings(_Section):
    include_debug_info: bool = False


class HttpSettings(_Section):
    max_request_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    max_header_bytes: int = Field(16 * 1024, gt=0)
    max_headers: int = Field(100, gt=0)
    max_url_bytes: int = Field(8 * 1024, gt=0)
    header_timeout_seconds: float = Field(10.0, gt=0)
    body_timeout_seconds: float = Field(30.0, gt=0)
    shutdown_grace_seconds: float = Field(10.0, gt=0)


class StreamingSettings(_Section):
    sse_keepalive_seconds: float = Field(15.0, gt=0)
    ndjson_keepalive_seconds: float = Field(0.0, ge=0)  # 0 = off
    sse_error_event: str = "stream-error"
    sse_retry_ms: int | None = Field(None, ge=0)
    ndjson_envelope: bool = False
    send_timeout_seconds: float = Field(30.0, gt=0)
    max_concurrent_streams: int = Field(10000, gt=0)

    @field_validator("sse_error_event")
    @classmethod
    def _sse_field_value(cls, value: str) -> str:
        # The name is written as `event: <name>`; CR, LF or ':' would start another field.
        if not value:
            raise ValueError("must not be empty")
        if any(c in value for c in "\r\n:"):
            raise ValueError("must not contain CR, LF or ':'")
        return value


class CorsSettings(_Section):
    allow_origins: list[str] = Field(default_factory=list)  # empty = off; ["*"] = any
    allow_headers: list[str] = Field(
        default_factory=lambda: [
            "authorization",
            "content-type",
            "grpc-timeout",
            "x-request-id",
            "traceparent",
            "tracestate",
            "last-event-id",
        ]
    )
    expose_headers: list[str] = Field(default_factory=list)  # Grpc-Metadata-*/Grpc-Trailer-*
    allow_credentials: bool = False
    max_age_seconds: int = Field(600, ge=0)

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        for origin in values:
            if not origin or any(c.isspace() or c == "," for c in origin):
                raise ValueError(f"{origin!r} is not an origin")
        return values

    @field_validator("allow_headers")
    @classmethod
    def _allow_headers(cls, values: list[str]) -> list[str]:
        return _header_names(values, lower=True)

    @field_validator("expose_headers")
    @classmethod
    def _expose_headers(cls, values: list[str]) -> list[str]:
        return _header_names(values, lower=False)


class DocsSettings(_Section):
    enabled: bool = True


class MetricsSettings(_Section):
    enabled: bool = True


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["plain", "json"] = "plain"
    access_log: bool = True

    @field_validator("level", "format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


# The YAML file's contents while load_settings() builds a Settings. Module level:
# a ContextVar default on a pydantic private attribute breaks instantiation (not picklable).
_YAML_DATA: ContextVar[dict[str, Any] | None] = ContextVar("transcoder_yaml_data", default=None)


# pydantic warns that the field `json` shadows BaseModel.json(); the key is the contract's
# and an alias would make the environment variable skip the prefix. The filter is scoped
# to this class statement.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "json"', category=UserWarning)

    class Settings(BaseSettings):
        """All settings; sections are attributes (``settings.listen.port``)."""

        model_config = SettingsConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

        listen: ListenSettings = Field(default_factory=ListenSettings)
        upstream: UpstreamSettings = Field(default_factory=UpstreamSettings)
        descriptors: DescriptorsSettings = Field(default_factory=DescriptorsSettings)
        routes: RoutesSettings = Field(default_factory=RoutesSettings)
        request: RequestSettings = Field(default_factory=RequestSettings)
        # The contract's key shadows the deprecated BaseModel.json() method.
        json: JsonSettings = Field(default_factory=JsonSettings)  # type: ignore[assignment]
        errors: ErrorsSettings = Field(default_factory=ErrorsSettings)
        http: HttpSettings = Field(default_factory=HttpSettings)
        streaming: StreamingSettings = Field(default_factory=StreamingSettings)
        forward_headers: list[str] = Field(
            default_factory=lambda: [
                "authorization",
                "x-request-id",
                "traceparent",
                "tracestate",
                "accept-language",
                "last-event-id",
            ]
        )
        cors: CorsSettings = Field(default_factory=CorsSettings)
        docs: DocsSettings = Field(default_factory=DocsSettings)
        metrics: MetricsSettings = Field(default_factory=MetricsSettings)
        logging: LoggingSettings = Field(default_factory=LoggingSettings)

        @field_validator("forward_headers")
        @classmethod
        def _forward_headers(cls, values: list[str]) -> list[str]:
            return _header_names(values, lower=True)

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            # Highest priority first: init kwargs (the command line), environment, YAML.
            sources: list[PydanticBaseSettingsSource] = [
                init_settings,
                _EnvironmentSource(settings_cls),
            ]
            if (file_data := _YAML_DATA.get()) is not None:
                sources.append(_MappingSource(settings_cls, file_data))
            return tuple(sources)


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Settings from ``overrides`` (the command line), the environment, ``config_file``.

    ``overrides`` is a nested dict of the flags actually given, e.g.
    ``{"listen": {"port": 9000}}``. Raises ``ConfigError`` (one line) on any problem.
    """
    cli = _given(overrides or {})
    file_name: str | None = None
    file_data: dict[str, Any] = {}
    if config_file is not None:
        file_name = os.fspath(config_file)
        file_data = _read_yaml(file_name)
    token = _YAML_DATA.set(file_data if file_name is not None else None)
    try:
        return Settings(**cli)
    except ValidationError as exc:
        raise _config_error(_explain(exc, cli, file_name, file_data)) from exc
    except SettingsError as exc:
        raise _config_error(str(exc)) from exc
    finally:
        _YAML_DATA.reset(token)


# --- sources -------------------------------------------------------------------------


class _MappingSource(PydanticBaseSettingsSource):
    """Already-loaded YAML data."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class _EnvironmentSource(PydanticBaseSettingsSource):
    """``TRANSCODER_*`` variables; one that names no key raises ``ConfigError``."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return _read_environment(os.environ)[0]


def _read_environment(
    environ: Mapping[str, str],
) -> tuple[dict[str, Any], dict[tuple[int | str, ...], str]]:
    """The nested data the ``TRANSCODER_*`` variables give, and which variable set each key."""
    data: dict[str, Any] = {}
    origins: dict[tuple[int | str, ...], str] = {}
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = tuple(name[len(ENV_PREFIX) :].lower().split(ENV_NESTED_DELIMITER))
        key = ".".join(path)
        field = _env_field(name, path)
        raw = environ[name]
        value: Any = raw
        if get_origin(field.annotation) is list:
            value = _env_list(name, key, raw)
        elif raw == "" and type(None) in _union_args(field.annotation):
            value = None
        if len(path) == 1:
            data[path[0]] = value
        else:
            data.setdefault(path[0], {})[path[1]] = value
        origins[path] = name
    return data, origins


def _env_field(name: str, path: tuple[str, ...]) -> FieldInfo:
    unknown = f"unknown environment variable {name}: no configuration key '{'.'.join(path)}'"
    field = Settings.model_fields.get(path[0])
    if field is None or len(path) > 2:
        raise _config_error(unknown)
    section = _section_model(field)
    if len(path) == 1:
        if section is not None:
            raise _config_error(
                f"{name}: {path[0]} is a section; set its keys one by one "
                f"({name}{ENV_NESTED_DELIMITER}<KEY>)"
            )
        return field
    if section is None or path[1] not in section.model_fields:
        raise _config_error(unknown)
    return section.model_fields[path[1]]


def _env_list(name: str, key: str, raw: str) -> list[str]:
    """A list from JSON (``["a","b"]``) or commas (``a, b``); empty means an empty list."""
    if not raw.lstrip().startswith("["):
        return [item.strip() for item in raw.split(",") if item.strip()]
    try:
        value = jsonlib.loads(raw)
    except ValueError as exc:
        raise _config_error(f"{key} (from {name}): not a valid JSON list: {exc}") from exc
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _config_error(f"{key} (from {name}): must be a list of strings")
    return value


def _read_yaml(name: str) -> dict[str, Any]:
    try:
        text = Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise _config_error(f"{name}: cannot read configuration: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise _config_error(f"{name}: cannot read configuration: not UTF-8 text") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
            where = f" (line {exc.problem_mark.line + 1})"
        problem = getattr(exc, "problem", None)
        detail = f": {problem}" if problem else ""
        raise _config_error(f"{name}: not valid YAML{where}{detail}") from exc
    if data is None:  # empty, or only comments
        return {}
    if not isinstance(data, dict):
        raise _config_error(f"{name}: the top level must be a mapping")
    for key in data:
        if not isinstance(key, str):  # pydantic-settings would fail with a TypeError
            raise _config_error(f"unknown configuration key '{key}' (from {name})")
    sections = {n for n, f in Settings.model_fields.items() if _section_model(f) is not None}
    return {k: {} if v is None and k in sections else v for k, v in data.items()}


# --- errors --------------------------------------------------------------------------


def _explain(
    exc: ValidationError,
    cli: Mapping[str, Any],
    file_name: str | None,
    file_data: Mapping[str, Any],
) -> str:
    """The first validation error as one line naming the key and its source."""
    errors = exc.errors()
    error = errors[0]
    loc = error["loc"]
    env_data, env_origins = _read_environment(os.environ)
    origin: str | None = None
    if _provides(cli, loc):
        origin = "the command line"
    elif _provides(env_data, loc):
        origin = next(
            env_origins[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in env_origins
        )
    elif file_name is not None and _provides(file_data, loc):
        origin = file_name
    message = _describe(error, origin)
    if len(errors) > 1:
        more = len(errors) - 1
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return message


def _describe(error: ErrorDetails, origin: str | None) -> str:
    loc = error["loc"]
    where = f" (from {origin})" if origin else ""
    if error["type"] in ("extra_forbidden", "invalid_key"):  # invalid_key: not a string
        key = ".".join([*([_key(loc[:-1])] if len(loc) > 1 else []), str(loc[-1])])
        return f"unknown configuration key '{key}'{where}"
    key = _key(loc)
    text = error["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    shown = repr(error["input"])
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{key}{where}: {text} (got {shown})"


def _key(loc: tuple[int | str, ...]) -> str:
    """``("cors", "allow_headers", 2)`` -> ``cors.allow_headers[2]``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _provides(data: Any, loc: tuple[int | str, ...]) -> bool:
    """Whether ``data`` holds the value at ``loc`` (a list or scalar on the way holds the rest)."""
    if not loc:
        return False
    node = data
    for part in loc:
        if not isinstance(node, Mapping):
            return True
        if part not in node:
            return False
        node = node[part]
    return True


def _config_error(message: str) -> ConfigError:
    # Contract §1: exactly one line, whatever a key, value or file name contains.
    return ConfigError(message.replace("\r", "\\r").replace("\n", "\\n"))


# --- helpers -------------------------------------------------------------------------


def _given(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` without the ``None`` entries (flags not given)."""
    return {
        key: _given(value) if isinstance(value, Mapping) else value
        for key, value in overrides.items()
        if value is not None
    }


def _union_args(annotation: Any) -> tuple[Any, ...]:
    return get_args(annotation) or (annotation,)


def _section_model(field: FieldInfo) -> type[BaseModel] | None:
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None
