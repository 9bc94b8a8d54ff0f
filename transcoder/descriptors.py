"""Descriptor sets → one private ``DescriptorPool``, validated at startup.

Files from several ``FileDescriptorSet`` s (or from server reflection) are merged
by name: identical copies collapse, different copies under one name are a
``ConfigError``.  They are added in dependency order whatever order they came
in (reflection answers in any order; ``DescriptorPool.Add`` refuses a file whose
imports are not loaded yet).  An import missing from the sets is borrowed from
the protobuf runtime's own copy (well-known types, ``google/api``,
``google/rpc``), and ``google/rpc/error_details.proto`` is always added so that
``grpc-status-details-bin`` details resolve through the same pool (contract §5).

Never the default pool: a user's copy of ``google/api/http.proto`` would clash
with googleapis' (python-stack notes §1).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# Imported for their side effect: they register these files in the default pool,
# from where a set that lacks them borrows them.
from google.api import annotations_pb2, http_pb2, httpbody_pb2  # noqa: F401
from google.protobuf import (
    any_pb2,  # noqa: F401
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,  # noqa: F401
    empty_pb2,  # noqa: F401
    field_mask_pb2,  # noqa: F401
    message_factory,
    struct_pb2,  # noqa: F401
    timestamp_pb2,  # noqa: F401
    wrappers_pb2,  # noqa: F401
)
from google.protobuf.descriptor import (
    Descriptor,
    FieldDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2  # noqa: F401

from transcoder.errors import ConfigError

FileProtos = Mapping[str, descriptor_pb2.FileDescriptorProto]

ALWAYS_LOADED = ("google/rpc/status.proto", "google/rpc/error_details.proto")


def read_descriptor_set(path: str | Path) -> list[descriptor_pb2.FileDescriptorProto]:
    """Parse one serialized ``FileDescriptorSet`` file; ConfigError names the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read descriptor set: {exc.strerror}") from None
    try:
        fds = descriptor_pb2.FileDescriptorSet.FromString(data)
    except DecodeError:
        raise ConfigError(f"{path}: not a serialized FileDescriptorSet") from None
    if not fds.file:
        raise ConfigError(f"{path}: the descriptor set holds no files")
    for file in fds.file:
        if not file.name:
            raise ConfigError(f"{path}: not a serialized FileDescriptorSet (a file has no name)")
    return list(fds.file)


def merge_files(
    sources: Iterable[tuple[str, Iterable[descriptor_pb2.FileDescriptorProto]]],
) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """Merge files from several sources by name; identical copies collapse."""
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    origin: dict[str, str] = {}
    for source, protos in sources:
        for proto in protos:
            previous = files.get(proto.name)
            if previous is None:
                files[proto.name] = proto
                origin[proto.name] = source
            elif previous != proto:
                raise ConfigError(
                    f"{source}: {proto.name} differs from the copy in {origin[proto.name]}"
                )
    return files


def build_pool(files: FileProtos) -> descriptor_pool.DescriptorPool:
    """Add every file to a fresh pool in dependency order."""
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    visiting: list[str] = []

    def add(name: str, needed_by: str | None) -> None:
        if name in added:
            return
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name) :], name])
            raise ConfigError(f"{name}: import cycle ({cycle})")
        proto = files.get(name)
        if proto is None:
            proto = _borrow(name, needed_by)
        visiting.append(name)
        for dependency in proto.dependency:
            add(dependency, name)
        visiting.pop()
        try:
            pool.Add(proto)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{name}: invalid descriptor: {_one_line(exc)}") from None
        added.add(name)

    for name in sorted(files):
        add(name, None)
    for name in ALWAYS_LOADED:
        add(name, None)
    return pool


def _borrow(name: str, needed_by: str | None) -> descriptor_pb2.FileDescriptorProto:
    try:
        serialized = descriptor_pool.Default().FindFileByName(name).serialized_pb
    except KeyError:
        who = f"{needed_by}: " if needed_by else ""
        raise ConfigError(f"{who}missing import {name} (not in any descriptor set)") from None
    return descriptor_pb2.FileDescriptorProto.FromString(serialized)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@dataclass(frozen=True, slots=True)
class Descriptors:
    """The loaded pool and the names of the files the user gave (their services are exposed)."""

    pool: descriptor_pool.DescriptorPool
    files: tuple[str, ...]
    # The files as given, with their source info (comments): the pool keeps none.
    protos: tuple[descriptor_pb2.FileDescriptorProto, ...] = ()

    def services(self) -> list[ServiceDescriptor]:
        found: list[ServiceDescriptor] = []
        for name in self.files:
            found.extend(self.pool.FindFileByName(name).services_by_name.values())
        return found


def load_descriptors(
    paths: Iterable[str | Path],
    reflected: Iterable[descriptor_pb2.FileDescriptorProto] = (),
) -> Descriptors:
    """Descriptor set files (``--descriptor-set``) and reflected files → one pool."""
    sources: list[tuple[str, Iterable[descriptor_pb2.FileDescriptorProto]]] = [
        (str(p), read_descriptor_set(p)) for p in paths
    ]
    reflected = list(reflected)
    if reflected:
        sources.append(("server reflection", reflected))
    files = merge_files(sources)
    return Descriptors(build_pool(files), tuple(sorted(files)), tuple(files.values()))


def load_pool(paths: Iterable[str | Path]) -> descriptor_pool.DescriptorPool:
    """Descriptor set files → pool."""
    return load_descriptors(paths).pool


def is_map(field: FieldDescriptor) -> bool:
    """A ``map<K, V>`` field (a repeated field of a synthetic map-entry message)."""
    return (
        field.is_repeated
        and field.message_type is not None
        and field.message_type.GetOptions().map_entry
    )


def message_class(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


def method_options(method: MethodDescriptor) -> descriptor_pb2.MethodOptions:
    """The method's options re-parsed with googleapis' extensions registered.

    ``GetOptions()`` parses once and caches; re-parsing the bytes reads the
    ``google.api.http`` extension whatever the import order was (notes §1).
    """
    return descriptor_pb2.MethodOptions.FromString(method.GetOptions().SerializeToString())
