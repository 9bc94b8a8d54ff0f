"""Fixtures shared by unit and end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pool

from tests.protos import compile_test_protos
from transcoder.descriptors import load_pool

PACKAGE = "transcoder.testing.v1"


@pytest.fixture(scope="session")
def descriptor_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test protos compiled once per session into a FileDescriptorSet file."""
    return compile_test_protos(tmp_path_factory.mktemp("protos"))


@pytest.fixture(scope="session")
def pool(descriptor_set: Path) -> descriptor_pool.DescriptorPool:
    return load_pool([descriptor_set])
