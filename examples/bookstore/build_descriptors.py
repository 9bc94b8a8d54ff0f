"""Rebuild ``bookstore.pb`` from ``bookstore.proto`` with grpcio-tools.

Run ``python examples/bookstore/build_descriptors.py`` after editing the proto
(needs ``grpcio-tools``, part of the ``test`` extra).  The set holds every
import (``--include_imports``); only ``bookstore.proto`` keeps its source info
(``--include_source_info``: its comments become OpenAPI descriptions), the
imports' is dropped to keep the committed file small.
"""

from __future__ import annotations

import site
import sys
import sysconfig
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

HERE = Path(__file__).resolve().parent
PROTO = HERE / "bookstore.proto"
DESCRIPTOR_SET = HERE / "bookstore.pb"


def include_dirs() -> list[str]:
    """This directory, grpcio-tools' well-known types, googleapis-common-protos' google/api."""
    dirs = [str(HERE), str(Path(protoc.__file__).parent / "_proto")]
    for candidate in [sysconfig.get_paths()["purelib"], *site.getsitepackages()]:
        if (Path(candidate) / "google" / "api" / "annotations.proto").exists():
            dirs.append(candidate)
            break
    else:
        raise RuntimeError(
            "google/api/annotations.proto not found: is googleapis-common-protos installed?"
        )
    return dirs


def build(out: Path) -> Path:
    """Compile bookstore.proto into the FileDescriptorSet file ``out``."""
    args = [
        "protoc",
        *(f"-I{d}" for d in include_dirs()),
        "--include_imports",
        "--include_source_info",
        f"--descriptor_set_out={out}",
        PROTO.name,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO.name}")
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    for file in fds.file:
        if file.name != PROTO.name:
            file.ClearField("source_code_info")
    out.write_bytes(fds.SerializeToString(deterministic=True))
    return out


def main() -> None:
    out = build(Path(sys.argv[1]) if len(sys.argv) > 1 else DESCRIPTOR_SET)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
