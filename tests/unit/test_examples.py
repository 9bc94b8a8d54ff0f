"""The bundled bookstore example: its descriptor set is current, its server answers."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import grpc
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor_pool import DescriptorPool
from google.rpc import error_details_pb2, status_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from transcoder.descriptors import load_pool, message_class

EXAMPLE = Path(__file__).resolve().parent.parent.parent / "examples" / "bookstore"
SERVICE = "bookstore.v1.Bookstore"


def load(name: str) -> ModuleType:
    """Load ``examples/bookstore/<name>.py`` by path, as ``transcoder demo`` does."""
    spec = importlib.util.spec_from_file_location(
        f"bookstore_example_{name}", EXAMPLE / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_descriptors = load("build_descriptors")
server = load("server")


def read_set(path: Path) -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())


def test_committed_descriptor_set_is_current(tmp_path: Path) -> None:
    """bookstore.pb is what build_descriptors.py makes of bookstore.proto today.

    The imports (google/api, google/protobuf) are compared by name only: their
    content comes from the installed grpcio-tools and googleapis-common-protos.
    """
    built = read_set(build_descriptors.build(tmp_path / "bookstore.pb"))
    committed = read_set(build_descriptors.DESCRIPTOR_SET)
    assert [f.name for f in built.file] == [f.name for f in committed.file]
    mine = [f for f in built.file if f.name == "bookstore.proto"]
    assert mine == [f for f in committed.file if f.name == "bookstore.proto"]
    assert mine[0].source_code_info.location, "comments are kept for OpenAPI descriptions"


class Client:
    """Generic calls to the bookstore, message classes from its descriptor set."""

    def __init__(self, channel: grpc.aio.Channel, pool: DescriptorPool) -> None:
        self.channel = channel
        self.service = pool.FindServiceByName(SERVICE)

    def request(self, method: str, **fields: Any) -> Any:
        cls: Any = message_class(self.service.FindMethodByName(method).input_type)
        return cls(**fields)

    def unary(self, method: str, **fields: Any) -> Any:
        response: Any = message_class(self.service.FindMethodByName(method).output_type)
        call = self.channel.unary_unary(
            f"/{SERVICE}/{method}",
            request_serializer=_serialize,
            response_deserializer=response.FromString,
        )
        return call(self.request(method, **fields))

    def stream(self, method: str, **fields: Any) -> Any:
        response: Any = message_class(self.service.FindMethodByName(method).output_type)
        call = self.channel.unary_stream(
            f"/{SERVICE}/{method}",
            request_serializer=_serialize,
            response_deserializer=response.FromString,
        )
        return call(self.request(method, **fields))


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


@pytest.fixture
async def bookstore() -> AsyncIterator[str]:
    grpc_server, address = await server.start_server()
    yield address
    await grpc_server.stop(None)


@pytest.fixture
async def client(bookstore: str) -> AsyncIterator[Client]:
    async with grpc.aio.insecure_channel(bookstore) as channel:
        yield Client(channel, load_pool([build_descriptors.DESCRIPTOR_SET]))


async def test_start_server_binds_loopback(bookstore: str) -> None:
    host, _, port = bookstore.rpartition(":")
    assert host == "127.0.0.1"
    assert int(port) > 0


async def test_get_shelf(client: Client) -> None:
    shelf = await client.unary("GetShelf", shelf=1)
    assert (shelf.id, shelf.theme, shelf.book_count) == (1, "Fiction", 3)


async def test_list_shelves(client: Client) -> None:
    response = await client.unary("ListShelves")
    assert [(s.theme, s.book_count) for s in response.shelves] == [("Fiction", 3), ("Science", 2)]


async def test_list_books_pages_and_filters(client: Client) -> None:
    first = await client.unary("ListBooks", shelf=1, page_size=2)
    assert [b.title for b in first.books] == ["The Left Hand of Darkness", "Invisible Cities"]
    assert first.books[0].published.ToJsonString() == "1969-03-01T00:00:00Z"
    rest = await client.unary("ListBooks", shelf=1, page_token=first.next_page_token)
    assert [b.title for b in rest.books] == ["Ficciones"]
    assert rest.next_page_token == ""
    assert len((await client.unary("ListBooks", shelf=2, genre="SCIENCE")).books) == 2
    assert len((await client.unary("ListBooks", shelf=2, genre="POETRY")).books) == 0


async def test_create_update_delete_book(client: Client) -> None:
    book = await client.unary("CreateBook", shelf=2, book={"title": "Cosmos", "author": "?"})
    assert book.id > 5
    changed = await client.unary(
        "UpdateBook",
        shelf=2,
        book={"id": book.id, "author": "Carl Sagan", "title": "ignored"},
        update_mask={"paths": ["author"]},
    )
    assert (changed.title, changed.author) == ("Cosmos", "Carl Sagan")
    await client.unary("DeleteBook", shelf=2, book=book.id)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.unary("GetBook", shelf=2, book=book.id)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("method", "fields", "code", "detail"),
    [
        ("GetShelf", {"shelf": 99}, grpc.StatusCode.NOT_FOUND, error_details_pb2.ResourceInfo),
        (
            "GetBook",
            {"shelf": 1, "book": 99},
            grpc.StatusCode.NOT_FOUND,
            error_details_pb2.ResourceInfo,
        ),
        (
            "CreateBook",
            {"shelf": 1, "book": {"author": "Nobody"}},
            grpc.StatusCode.INVALID_ARGUMENT,
            error_details_pb2.BadRequest,
        ),
        (
            "UpdateBook",
            {"shelf": 1, "book": {"id": 1}, "update_mask": {"paths": ["title"]}},
            grpc.StatusCode.INVALID_ARGUMENT,
            error_details_pb2.BadRequest,
        ),
        (
            "UpdateBook",
            {"shelf": 1, "book": {"id": 1}, "update_mask": {"paths": ["isbn"]}},
            grpc.StatusCode.INVALID_ARGUMENT,
            error_details_pb2.BadRequest,
        ),
        (
            "ListBooks",
            {"shelf": 1, "page_token": "x"},
            grpc.StatusCode.INVALID_ARGUMENT,
            error_details_pb2.BadRequest,
        ),
    ],
    ids=[
        "no-shelf",
        "no-book",
        "create-empty-title",
        "update-empty-title",
        "update-unknown-field",
        "bad-page-token",
    ],
)
async def test_errors_carry_details(
    client: Client, method: str, fields: dict[str, Any], code: grpc.StatusCode, detail: Any
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.unary(method, **fields)
    assert info.value.code() == code
    values = [v for k, v in info.value.trailing_metadata() or () if k == server.DETAILS_KEY]
    assert len(values) == 1
    assert isinstance(values[0], bytes)
    status = status_pb2.Status.FromString(values[0])
    assert (status.code, status.message) == (code.value[0], info.value.details())
    unpacked = detail()
    assert status.details[0].Unpack(unpacked)


async def test_watch_shelf_first_events(client: Client) -> None:
    call = client.stream("WatchShelf", shelf=1, interval_ms=10)
    events = []
    with anyio.fail_after(5):
        async for event in call:
            events.append(event)
            if len(events) == 2:
                break
    call.cancel()
    borrowed = events[0].DESCRIPTOR.fields_by_name["kind"].enum_type.values_by_name["BORROWED"]
    assert [(e.kind, e.book.title) for e in events] == [
        (borrowed.number, "The Left Hand of Darkness"),
        (borrowed.number, "Invisible Cities"),
    ]
    assert all(e.HasField("at") for e in events)


async def test_watch_shelf_fails_after(client: Client) -> None:
    call = client.stream("WatchShelf", shelf=2, interval_ms=1, fail_after=1)
    events: list[Any] = []
    error: grpc.aio.AioRpcError | None = None
    with anyio.fail_after(5):
        try:
            async for event in call:
                events.append(event)
        except grpc.aio.AioRpcError as exc:
            error = exc
    assert len(events) == 1
    assert error is not None
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "after 1 event" in (error.details() or "")


async def test_reflection_lists_the_service(bookstore: str) -> None:
    async with grpc.aio.insecure_channel(bookstore) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        with anyio.fail_after(5):
            responses = [r async for r in stub.ServerReflectionInfo(iter([request]))]
    assert SERVICE in {s.name for s in responses[0].list_services_response.service}
