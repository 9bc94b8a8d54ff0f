"""Settings: defaults, precedence, validation and one-line errors (contract §1, §9)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from transcoder.config import Settings, load_settings
from transcoder.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"
FILE = "config.yaml"  # written in tmp_path, which is the working directory

DEFAULTS: dict[str, Any] = {
    "listen.host": "127.0.0.1",
    "listen.port": 8080,
    "listen.workers": 1,
    "upstream.address": None,
    "upstream.timeout_seconds": 30,
    "upstream.max_timeout_seconds": 300,
    "upstream.stream_timeout_seconds": 0,
    "upstream.max_receive_message_bytes": 4194304,
    "upstream.max_reconnect_backoff_seconds": 5,
    "descriptors.files": [],
    "descriptors.reflection": False,
    "routes.unannotated": True,
    "routes.services": [],
    "request.ignore_unknown_query_parameters": False,
    "request.ignored_query_parameters": [],
    "request.case_insensitive_enums": False,
    "request.patch_field_mask": True,
    "json.use_proto_names": False,
    "json.emit_unpopulated": True,
    "json.use_enum_numbers": False,
    "json.ignore_unknown_fields": False,
    "json.max_depth": 64,
    "errors.include_debug_info": False,
    "http.max_request_body_bytes": 4194304,
    "http.max_header_bytes": 16384,
    "http.max_headers": 100,
    "http.max_url_bytes": 8192,
    "http.header_timeout_seconds": 10,
    "http.body_timeout_seconds": 30,
    "http.shutdown_grace_seconds": 10,
    "streaming.sse_keepalive_seconds": 15,
    "streaming.ndjson_keepalive_seconds": 0,
    "streaming.sse_error_event": "stream-error",
    "streaming.sse_retry_ms": None,
    "streaming.ndjson_envelope": False,
    "streaming.send_timeout_seconds": 30,
    "streaming.max_concurrent_streams": 10000,
    "forward_headers": [
        "authorization",
        "x-request-id",
        "traceparent",
        "tracestate",
        "accept-language",
        "last-event-id",
    ],
    "cors.allow_origins": [],
    "cors.allow_headers": [
        "authorization",
        "content-type",
        "grpc-timeout",
        "x-request-id",
        "traceparent",
        "tracestate",
        "last-event-id",
    ],
    "cors.expose_headers": [],
    "cors.allow_credentials": False,
    "cors.max_age_seconds": 600,
    "docs.enabled": True,
    "metrics.enabled": True,
    "logging.level": "info",
    "logging.format": "plain",
    "logging.access_log": True,
}


# --- helpers -------------------------------------------------------------------------


def model_keys(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """Every leaf key of ``model`` (dotted) with its annotation."""
    keys: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.update(model_keys(annotation, f"{prefix}{name}."))
        else:
            keys[prefix + name] = annotation
    return keys


def mapping_keys(data: Mapping[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, value in data.items():
        if isinstance(value, Mapping):
            keys |= mapping_keys(value, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


FLOAT_KEYS = sorted(key for key, annotation in model_keys(Settings).items() if annotation is float)


def value_at(settings: BaseModel, key: str) -> Any:
    node: Any = settings
    for part in key.split("."):
        node = getattr(node, part)
    return node


def nested(key: str, value: Any) -> dict[str, Any]:
    """``nested("a.b", 1)`` -> ``{"a": {"b": 1}}``."""
    *sections, leaf = key.split(".")
    data: dict[str, Any] = {leaf: value}
    for section in reversed(sections):
        data = {section: data}
    return data


def env_name(key: str) -> str:
    return "TRANSCODER_" + key.upper().replace(".", "__")


def typed(raw: str) -> Any:
    """What a YAML parser or argparse would make of ``raw``."""
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def write(text: str, name: str = FILE) -> str:
    Path(name).write_text(text, encoding="utf-8")
    return name


def config_error(
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(config_file, overrides)
    message = str(info.value)
    assert "\n" not in message
    assert "\r" not in message
    return message


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No TRANSCODER_* variable from the real environment; files land in tmp_path."""
    for name in list(os.environ):
        if name.upper().startswith("TRANSCODER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


# --- defaults and the example file ---------------------------------------------------


@pytest.mark.parametrize(("key", "expected"), DEFAULTS.items(), ids=list(DEFAULTS))
def test_default_value(key: str, expected: Any) -> None:
    assert value_at(Settings(), key) == expected
    assert value_at(load_settings(), key) == expected


def test_defaults_table_covers_every_key() -> None:
    assert set(DEFAULTS) == set(model_keys(Settings))


def test_load_settings_with_nothing_set_equals_settings() -> None:
    assert load_settings() == Settings()


def test_example_file_loads_to_the_defaults() -> None:
    assert load_settings(EXAMPLE) == Settings()


def test_example_file_lists_every_key_and_no_other() -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert mapping_keys(data) == set(model_keys(Settings))


def test_example_file_comments_every_key() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    keys = [line for line in lines if re.match(r"^\s*[a-z_]+:", line)]
    assert keys
    assert [line for line in keys if "#" not in line and not line.endswith(":")] == []
    sections = {line.rstrip(":") for line in keys if line.endswith(":")}
    assert sections <= {n for n in Settings.model_fields if n != "forward_headers"}


# --- precedence ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("in_file", "in_env", "on_command_line", "expected"),
    [
        pytest.param(None, None, None, 8080, id="default_when_nothing_sets_it"),
        pytest.param(9000, None, None, 9000, id="file_beats_default"),
        pytest.param(None, 9100, None, 9100, id="environment_beats_default"),
        pytest.param(9000, 9100, None, 9100, id="environment_beats_file"),
        pytest.param(9000, None, 9200, 9200, id="command_line_beats_file"),
        pytest.param(9000, 9100, 9200, 9200, id="command_line_beats_environment"),
    ],
)
def test_precedence_command_line_environment_file_default(
    monkeypatch: pytest.MonkeyPatch,
    in_file: int | None,
    in_env: int | None,
    on_command_line: int | None,
    expected: int,
) -> None:
    config_file = write(f"listen:\n  port: {in_file}\n") if in_file is not None else None
    if in_env is not None:
        monkeypatch.setenv("TRANSCODER_LISTEN__PORT", str(in_env))
    overrides = {"listen": {"port": on_command_line}} if on_command_line is not None else None
    assert load_settings(config_file, overrides).listen.port == expected


@pytest.mark.parametrize(
    ("file_text", "env", "overrides", "expected"),
    [
        pytest.param(
            "upstream:\n  address: up:50051\n  timeout_seconds: 10\n",
            {"TRANSCODER_UPSTREAM__TIMEOUT_SECONDS": "7"},
            None,
            {"upstream.address": "up:50051", "upstream.timeout_seconds": 7},
            id="environment_key_merges_into_file_section",
        ),
        pytest.param(
            "listen:\n  host: 0.0.0.0\n  workers: 2\n",
            {"TRANSCODER_LISTEN__WORKERS": "3"},
            {"listen": {"port": 9000}},
            {"listen.host": "0.0.0.0", "listen.workers": 3, "listen.port": 9000},
            id="command_line_key_merges_into_environment_and_file_section",
        ),
        pytest.param(
            "descriptors:\n  files: [a.pb, b.pb]\n  reflection: true\n",
            {},
            {"descriptors": {"files": ["c.pb"]}},
            {"descriptors.files": ["c.pb"], "descriptors.reflection": True},
            id="command_line_list_replaces_file_list",
        ),
        pytest.param(
            "listen:\n  port: 9000\n",
            {},
            {"listen": {"port": None, "host": None}, "upstream": None},
            {"listen.port": 9000, "listen.host": "127.0.0.1"},
            id="none_in_overrides_means_flag_not_given",
        ),
        pytest.param(
            "upstream:\n  address: up:50051\n",
            {"TRANSCODER_UPSTREAM__ADDRESS": ""},
            None,
            {"upstream.address": None},
            id="empty_environment_value_unsets_optional_key",
        ),
    ],
)
def test_sources_deep_merge(
    monkeypatch: pytest.MonkeyPatch,
    file_text: str,
    env: dict[str, str],
    overrides: dict[str, Any] | None,
    expected: dict[str, Any],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(write(file_text), overrides)
    assert {key: value_at(settings, key) for key in expected} == expected


@pytest.mark.parametrize(
    ("file_text", "expected"),
    [
        pytest.param("", {}, id="empty_file_means_no_settings"),
        pytest.param("# nothing here\n", {}, id="comment_only_file_means_no_settings"),
        pytest.param("streaming:\n", {}, id="empty_section_means_no_settings"),
        pytest.param(
            "streaming:\n  sse_retry_ms: 250\n  sse_error_event: oops\n",
            {"streaming.sse_retry_ms": 250, "streaming.sse_error_event": "oops"},
            id="file_sets_optional_and_string_keys",
        ),
        pytest.param(
            "logging:\n  level: WARNING\n  format: JSON\n",
            {"logging.level": "warning", "logging.format": "json"},
            id="logging_names_are_case_insensitive",
        ),
    ],
)
def test_file_values(file_text: str, expected: dict[str, Any]) -> None:
    settings = load_settings(write(file_text))
    assert {key: value_at(settings, key) for key in expected} == expected
    untouched = set(DEFAULTS) - set(expected)
    assert {k: value_at(settings, k) for k in untouched} == {k: DEFAULTS[k] for k in untouched}


def test_config_file_may_be_a_path_object(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("listen:\n  port: 9000\n", encoding="utf-8")
    assert load_settings(path).listen.port == 9000


def test_file_is_not_read_by_later_settings() -> None:
    load_settings(write("listen:\n  port: 9000\n"))
    assert Settings().listen.port == 8080


# --- environment ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "key", "expected"),
    [
        pytest.param(
            "TRANSCODER_STREAMING__SSE_KEEPALIVE_SECONDS",
            "5",
            "streaming.sse_keepalive_seconds",
            5.0,
            id="section_key",
        ),
        pytest.param(
            "TRANSCODER_JSON__USE_ENUM_NUMBERS",
            "true",
            "json.use_enum_numbers",
            True,
            id="json_section_despite_shadowing",
        ),
        pytest.param("TRANSCODER_DOCS__ENABLED", "0", "docs.enabled", False, id="boolean"),
        pytest.param(
            "transcoder_listen__host", "0.0.0.0", "listen.host", "0.0.0.0", id="lower_case_name"
        ),
        pytest.param(
            "TRANSCODER_FORWARD_HEADERS",
            '["Authorization", "x-b3"]',
            "forward_headers",
            ["authorization", "x-b3"],
            id="top_level_list_as_json",
        ),
        pytest.param(
            "TRANSCODER_FORWARD_HEADERS",
            "Authorization, x-b3,",
            "forward_headers",
            ["authorization", "x-b3"],
            id="top_level_list_comma_separated",
        ),
        pytest.param("TRANSCODER_FORWARD_HEADERS", "", "forward_headers", [], id="empty_list"),
        pytest.param(
            "TRANSCODER_DESCRIPTORS__FILES",
            "a.pb,b.pb",
            "descriptors.files",
            ["a.pb", "b.pb"],
            id="section_list_comma_separated",
        ),
        pytest.param(
            "TRANSCODER_CORS__ALLOW_ORIGINS",
            '["*"]',
            "cors.allow_origins",
            ["*"],
            id="section_list_as_json",
        ),
        pytest.param(
            "TRANSCODER_STREAMING__SSE_RETRY_MS",
            "250",
            "streaming.sse_retry_ms",
            250,
            id="optional_integer",
        ),
    ],
)
def test_environment_value(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, key: str, expected: Any
) -> None:
    monkeypatch.setenv(name, value)
    assert value_at(load_settings(), key) == expected
    assert value_at(Settings(), key) == expected


def test_unprefixed_variable_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JSON__USE_ENUM_NUMBERS", "true")
    monkeypatch.setenv("LISTEN__PORT", "1")
    assert load_settings() == Settings()


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        pytest.param(
            "TRANSCODER_NOPE",
            "1",
            "unknown environment variable TRANSCODER_NOPE: no configuration key 'nope'",
            id="unknown_top_level_variable",
        ),
        pytest.param(
            "TRANSCODER_STREAMING__NOPE",
            "1",
            "unknown environment variable TRANSCODER_STREAMING__NOPE: "
            "no configuration key 'streaming.nope'",
            id="unknown_section_key",
        ),
        pytest.param(
            "TRANSCODER_STREAMING__SSE_KEEPALIVE_SECONDS__X",
            "1",
            "unknown environment variable TRANSCODER_STREAMING__SSE_KEEPALIVE_SECONDS__X: "
            "no configuration key 'streaming.sse_keepalive_seconds.x'",
            id="too_deep",
        ),
        pytest.param(
            "TRANSCODER_FORWARD_HEADERS__X",
            "1",
            "unknown environment variable TRANSCODER_FORWARD_HEADERS__X: "
            "no configuration key 'forward_headers.x'",
            id="key_below_a_list",
        ),
        pytest.param(
            "transcoder_nope",
            "1",
            "unknown environment variable transcoder_nope: no configuration key 'nope'",
            id="unknown_lower_case_variable",
        ),
        pytest.param(
            "TRANSCODER_STREAMING",
            '{"sse_keepalive_seconds": 5}',
            "TRANSCODER_STREAMING: streaming is a section; "
            "set its keys one by one (TRANSCODER_STREAMING__<KEY>)",
            id="whole_section_in_one_variable",
        ),
        pytest.param(
            "TRANSCODER_FORWARD_HEADERS",
            '["a", ',
            "forward_headers (from TRANSCODER_FORWARD_HEADERS): not a valid JSON list: ",
            id="list_with_broken_json",
        ),
        pytest.param(
            "TRANSCODER_FORWARD_HEADERS",
            '["a", 1]',
            "forward_headers (from TRANSCODER_FORWARD_HEADERS): must be a list of strings",
            id="json_list_of_non_strings",
        ),
        pytest.param(
            "TRANSCODER_FORWARD_HEADERS",
            "a b",
            "forward_headers (from TRANSCODER_FORWARD_HEADERS): 'a b' is not a valid header name",
            id="invalid_header_name",
        ),
    ],
)
def test_environment_error_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    assert config_error().startswith(expected)


def test_unknown_variable_stops_settings_built_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSCODER_NOPE", "1")
    with pytest.raises(ConfigError, match="TRANSCODER_NOPE"):
        Settings()


# --- validation ----------------------------------------------------------------------

INVALID: list[tuple[str, str, str]] = [
    ("listen.host", "", "at least 1 character"),
    ("listen.port", "-1", "greater than or equal to 0"),
    ("listen.port", "65536", "less than or equal to 65535"),
    ("listen.workers", "0", "greater than or equal to 1"),
    ("upstream.timeout_seconds", "-1", "greater than or equal to 0"),
    ("upstream.max_timeout_seconds", "0", "greater than 0"),
    ("upstream.stream_timeout_seconds", "-1", "greater than or equal to 0"),
    ("upstream.max_receive_message_bytes", "0", "greater than 0"),
    ("upstream.max_reconnect_backoff_seconds", "0", "greater than 0"),
    ("json.max_depth", "0", "greater than 0"),
    ("json.max_depth", "1.5", "must be a valid integer"),
    ("http.max_request_body_bytes", "0", "greater than 0"),
    ("http.max_header_bytes", "0", "greater than 0"),
    ("http.max_headers", "0", "greater than 0"),
    ("http.max_url_bytes", "0", "greater than 0"),
    ("http.header_timeout_seconds", "0", "greater than 0"),
    ("http.body_timeout_seconds", "0", "greater than 0"),
    ("http.shutdown_grace_seconds", "0", "greater than 0"),
    ("streaming.sse_keepalive_seconds", "0", "must be greater than 0 (got "),
    ("streaming.sse_keepalive_seconds", "-1", "must be greater than 0 (got "),
    ("streaming.sse_keepalive_seconds", "abc", "must be a valid number"),
    ("streaming.ndjson_keepalive_seconds", "-1", "greater than or equal to 0"),
    ("streaming.sse_error_event", "", "must not be empty"),
    ("streaming.sse_error_event", "a\nb", "must not contain CR, LF or ':'"),
    ("streaming.sse_error_event", "a\rb", "must not contain CR, LF or ':'"),
    ("streaming.sse_error_event", "data:x", "must not contain CR, LF or ':'"),
    ("streaming.sse_retry_ms", "-1", "greater than or equal to 0"),
    ("streaming.send_timeout_seconds", "0", "greater than 0"),
    ("streaming.max_concurrent_streams", "0", "greater than 0"),
    ("cors.max_age_seconds", "-1", "greater than or equal to 0"),
    ("logging.level", "verbose", "must be 'debug', 'info', 'warning' or 'error'"),
    ("logging.format", "xml", "must be 'plain' or 'json'"),
    *(
        (key, raw, "must be a finite number")
        for key in FLOAT_KEYS
        for raw in ("nan", "inf", "1e309")
    ),
]


@pytest.mark.parametrize(
    ("key", "raw", "fragment"), INVALID, ids=[f"{k}={r!r}" for k, r, _ in INVALID]
)
@pytest.mark.parametrize("source", ["file", "environment", "command_line"])
def test_invalid_value_is_rejected_naming_key_and_source(
    monkeypatch: pytest.MonkeyPatch, source: str, key: str, raw: str, fragment: str
) -> None:
    if source == "file":
        message = config_error(write(yaml.safe_dump(nested(key, typed(raw)))))
        origin = FILE
    elif source == "environment":
        monkeypatch.setenv(env_name(key), raw)
        message = config_error()
        origin = env_name(key)
    else:
        message = config_error(overrides=nested(key, typed(raw)))
        origin = "the command line"
    assert message.startswith(f"{key} (from {origin}): ")
    assert fragment in message


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        pytest.param("sse_keepalive_seconds: 0", "must be greater than 0 (got 0)", id="zero"),
        pytest.param("sse_keepalive_seconds: 1e309", "finite number (got '1e309')", id="1e309"),
        pytest.param("sse_keepalive_seconds: 1.0e+309", "finite number (got inf)", id="overflow"),
        pytest.param("sse_keepalive_seconds: .nan", "finite number (got nan)", id="yaml_nan"),
        pytest.param("sse_keepalive_seconds: -.inf", "finite number (got -inf)", id="yaml_inf"),
        pytest.param("sse_keepalive_seconds: abc", "valid number", id="text"),
        pytest.param("sse_keepalive_seconds: true", "not a boolean", id="boolean_float"),
        pytest.param("max_concurrent_streams: yes", "not a boolean", id="boolean_integer"),
        pytest.param("sse_retry_ms: false", "not a boolean", id="boolean_optional_integer"),
        pytest.param("sse_error_event: 5", "valid string", id="number_for_string"),
        pytest.param("ndjson_envelope: maybe", "valid boolean", id="text_for_boolean"),
    ],
)
def test_invalid_file_scalar(line: str, fragment: str) -> None:
    message = config_error(write(f"streaming:\n  {line}\n"))
    assert message.startswith(f"streaming.{line.split(':')[0]} (from {FILE}): ")
    assert fragment in message


@pytest.mark.parametrize(
    ("file_text", "expected"),
    [
        pytest.param(
            "listen: 8080\n",
            "listen (from config.yaml): must be a valid dictionary",
            id="scalar_section",
        ),
        pytest.param(
            "forward_headers: authorization\n",
            "forward_headers (from config.yaml): must be a valid list",
            id="string_for_list",
        ),
        pytest.param(
            "descriptors:\n  files: [a.pb, 7]\n",
            "descriptors.files[1] (from config.yaml): must be a valid string (got 7)",
            id="list_item_names_its_index",
        ),
        pytest.param(
            "cors:\n  allow_origins: ['https://a.example, https://b.example']\n",
            "cors.allow_origins (from config.yaml): ",
            id="origin_with_comma",
        ),
        pytest.param(
            "cors:\n  expose_headers: ['Grpc-Metadata-X: y']\n",
            "cors.expose_headers (from config.yaml): 'Grpc-Metadata-X: y' is not a valid header",
            id="expose_header_not_a_token",
        ),
        pytest.param(
            "listen:\n  port: 0.5\n  workers: 0\n",
            "listen.port (from config.yaml): must be a valid integer, got a number with a "
            "fractional part (got 0.5) (and 1 more problem)",
            id="several_problems_reported_as_first_and_a_count",
        ),
    ],
)
def test_invalid_file_structure(file_text: str, expected: str) -> None:
    assert config_error(write(file_text)).startswith(expected)


@pytest.mark.parametrize(
    ("source", "value", "expected"),
    [
        pytest.param("file", "forward_headers: [X-Request-ID]", ["x-request-id"], id="file"),
        pytest.param(
            "environment",
            "X-Request-ID,TraceParent",
            ["x-request-id", "traceparent"],
            id="environment",
        ),
        pytest.param("command_line", ["Accept-Language"], ["accept-language"], id="command_line"),
    ],
)
def test_forward_headers_are_lower_cased(
    monkeypatch: pytest.MonkeyPatch, source: str, value: Any, expected: list[str]
) -> None:
    if source == "file":
        settings = load_settings(write(value))
    elif source == "environment":
        monkeypatch.setenv("TRANSCODER_FORWARD_HEADERS", value)
        settings = load_settings()
    else:
        settings = load_settings(overrides={"forward_headers": value})
    assert settings.forward_headers == expected


def test_cors_allow_headers_are_lower_cased() -> None:
    settings = load_settings(overrides={"cors": {"allow_headers": ["X-Custom", "Content-Type"]}})
    assert settings.cors.allow_headers == ["x-custom", "content-type"]


# --- unknown keys --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_text", "expected"),
    [
        pytest.param(
            "nope: 1\n", "unknown configuration key 'nope' (from config.yaml)", id="top_level"
        ),
        pytest.param(
            "streaming:\n  sse_keepalive_secs: 3\n",
            "unknown configuration key 'streaming.sse_keepalive_secs' (from config.yaml)",
            id="nested",
        ),
        pytest.param(
            "Listen:\n  port: 1\n",
            "unknown configuration key 'Listen' (from config.yaml)",
            id="wrong_case",
        ),
        pytest.param(
            "1: 2\n", "unknown configuration key '1' (from config.yaml)", id="top_level_number"
        ),
        pytest.param(
            "streaming:\n  1: 2\n",
            "unknown configuration key 'streaming.1' (from config.yaml)",
            id="nested_number",
        ),
        pytest.param(
            "'a\\nb': 1\n",
            "unknown configuration key 'a\\nb' (from config.yaml)",
            id="newline_in_key_stays_on_one_line",
        ),
    ],
)
def test_unknown_file_key_is_rejected(file_text: str, expected: str) -> None:
    assert config_error(write(file_text)) == expected


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param(
            {"nope": 1}, "unknown configuration key 'nope' (from the command line)", id="top_level"
        ),
        pytest.param(
            {"listen": {"prot": 1}},
            "unknown configuration key 'listen.prot' (from the command line)",
            id="nested",
        ),
    ],
)
def test_unknown_override_key_is_rejected(overrides: dict[str, Any], expected: str) -> None:
    assert config_error(overrides=overrides) == expected


# --- files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        pytest.param(
            None,
            "config.yaml: cannot read configuration: No such file or directory",
            id="missing",
        ),
        pytest.param(
            "directory", "config.yaml: cannot read configuration: Is a directory", id="directory"
        ),
        pytest.param(
            "latin-1", "config.yaml: cannot read configuration: not UTF-8 text", id="not_utf8"
        ),
        pytest.param(
            "a: 1\nb: [\n  c: d: e\n", "config.yaml: not valid YAML (line 3)", id="invalid_yaml"
        ),
        pytest.param(
            "listen:\n\tport: 1\n", "config.yaml: not valid YAML (line 2)", id="tab_indent"
        ),
        pytest.param(
            "- listen\n", "config.yaml: the top level must be a mapping", id="list_top_level"
        ),
        pytest.param(
            "8080\n", "config.yaml: the top level must be a mapping", id="scalar_top_level"
        ),
    ],
)
def test_bad_file_is_named(setup: str | None, expected: str) -> None:
    if setup == "directory":
        Path(FILE).mkdir()
    elif setup == "latin-1":
        Path(FILE).write_bytes("listen:\n  host: caf\xe9\n".encode("latin-1"))
    elif setup is not None:
        write(setup)
    assert config_error(FILE).startswith(expected)


# --- immutability --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "attribute"),
    [
        pytest.param(lambda s: s, "listen", id="section"),
        pytest.param(lambda s: s, "forward_headers", id="top_level_list"),
        pytest.param(lambda s: s.listen, "port", id="section_key"),
        pytest.param(lambda s: s.json, "max_depth", id="json_section_key"),
    ],
)
def test_settings_are_frozen(target: Any, attribute: str) -> None:
    obj = target(load_settings())
    with pytest.raises(ValidationError, match="frozen"):
        setattr(obj, attribute, None)
