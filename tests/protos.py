"""Compile the project's .proto files with grpcio-tools (tests and examples)."""

from __future__ import annotations

import site
import sysconfig
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
TEST_PROTOS = ROOT / "protos"


def include_dirs() -> list[str]:
    """grpcio-tools' well-known types and googleapis-common-protos' google/api, google/rpc."""
    dirs = [str(Path(protoc.__file__).parent / "_proto")]
    candidates = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    for candidate in candidates:
        if (Path(candidate) / "google" / "api" / "annotations.proto").exists():
            dirs.append(candidate)
            break
    return dirs


def compile_descriptor_set(root: Path, protos: list[Path], out: Path) -> Path:
    """protoc --include_imports --include_source_info for ``protos`` under ``root``."""
    args = [
        "protoc",
        f"-I{root}",
        *(f"-I{d}" for d in include_dirs()),
        "--include_imports",
        "--include_source_info",
        f"--descriptor_set_out={out}",
        *(str(p.relative_to(root)) for p in protos),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed for {protos}")
    return out


def compile_test_protos(out_dir: Path) -> Path:
    protos = sorted(TEST_PROTOS.rglob("*.proto"))
    return compile_descriptor_set(TEST_PROTOS, protos, out_dir / "testing.pb")
