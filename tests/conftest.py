"""Fixtures shared by unit and end-to-end tests."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf import descriptor_pool

from tests.protos import compile_test_protos
from tests.upstream import TestUpstream
from transcoder.descriptors import load_pool

PACKAGE = "transcoder.testing.v1"


@pytest.fixture(scope="session")
def descriptor_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test protos compiled once per session into a FileDescriptorSet file."""
    return compile_test_protos(tmp_path_factory.mktemp("protos"))


@pytest.fixture(scope="session")
def pool(descriptor_set: Path) -> descriptor_pool.DescriptorPool:
    return load_pool([descriptor_set])


@pytest.fixture
async def upstream(pool: descriptor_pool.DescriptorPool) -> AsyncIterator[TestUpstream]:
    """A started test upstream (tests/upstream.py) on 127.0.0.1, stopped afterwards."""
    server = TestUpstream(pool)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def dead_upstream() -> str:
    """The address of a loopback port bound then closed: nothing listens there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="run the reliability tests (tests/reliability) at soak size instead of CI size",
    )


@pytest.fixture(scope="session")
def soak(pytestconfig: pytest.Config) -> bool:
    """True under ``pytest --soak``: reliability tests run at full (soak) size."""
    return bool(pytestconfig.getoption("--soak"))
