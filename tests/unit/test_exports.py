"""The package's public names: what an embedding application may import."""

from __future__ import annotations

import importlib.metadata

import transcoder


def test_public_names() -> None:
    assert transcoder.__all__ == [
        "ConfigError",
        "GatewayError",
        "Settings",
        "__version__",
        "create_app",
        "load_settings",
    ]
    for name in transcoder.__all__:
        assert hasattr(transcoder, name), name


def test_version_matches_the_distribution() -> None:
    assert transcoder.__version__ == importlib.metadata.version("transcoder")
