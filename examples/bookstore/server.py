"""The bookstore example's gRPC server: an in-memory store behind ``bookstore.v1.Bookstore``.

No generated code: message classes come from ``bookstore.pb`` next to this
file (through ``transcoder.descriptors.load_pool``) and the methods are served
by a generic handler.  Server reflection is on, so the gateway can also learn
the API from the server itself.

Run it alone with ``python examples/bookstore/server.py [--port 50051]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_reflection.v1alpha import reflection

from transcoder.descriptors import load_pool, message_class

DESCRIPTOR_SET = Path(__file__).resolve().parent / "bookstore.pb"
PACKAGE = "bookstore.v1"
SERVICE = f"{PACKAGE}.Bookstore"
DETAILS_KEY = "grpc-status-details-bin"

Context = grpc.aio.ServicerContext[Any, Any]

SHELVES = [(1, "Fiction"), (2, "Science")]
BOOKS = [
    # shelf, title, author, genre, published (UTC date), tags
    (1, "The Left Hand of Darkness", "Ursula K. Le Guin", "FICTION", (1969, 3, 1), ["sci-fi"]),
    (1, "Invisible Cities", "Italo Calvino", "FICTION", (1972, 11, 1), ["classic"]),
    (1, "Ficciones", "Jorge Luis Borges", "FICTION", (1944, 1, 1), ["short stories", "classic"]),
    (2, "A Brief History of Time", "Stephen Hawking", "SCIENCE", (1988, 4, 1), []),
    (2, "The Selfish Gene", "Richard Dawkins", "SCIENCE", (1976, 1, 1), ["biology"]),
]


class Bookstore:
    """The service: one method per RPC, named as in the proto."""

    def __init__(self, pool: DescriptorPool) -> None:
        self.pool = pool
        self.shelves: dict[int, Any] = {}
        self.books: dict[int, dict[int, Any]] = {}
        self.next_shelf = 1
        self.next_book = 1
        for shelf_id, theme in SHELVES:
            self._add_shelf(self.new("Shelf", id=shelf_id, theme=theme))
        for shelf_id, title, author, genre, (y, m, d), tags in BOOKS:
            book = self.new("Book", title=title, author=author, genre=genre, tags=tags)
            book.published.FromDatetime(datetime(y, m, d, tzinfo=UTC))
            self._add_book(shelf_id, book)

    def new(self, name: str, **fields: Any) -> Any:
        """A new ``bookstore.v1.<name>`` message."""
        cls: Any = message_class(self.pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
        return cls(**fields)

    # -- shelves ---------------------------------------------------------------

    async def ListShelves(self, request: Any, context: Context) -> Any:
        return self.new(
            "ListShelvesResponse", shelves=[self._counted(s) for s in sorted(self.shelves)]
        )

    async def GetShelf(self, request: Any, context: Context) -> Any:
        await self._shelf(request.shelf, context)
        return self._counted(request.shelf)

    async def CreateShelf(self, request: Any, context: Context) -> Any:
        if not request.shelf.theme:
            await invalid_argument(context, "shelf.theme", "a shelf needs a theme")
        shelf = self.new("Shelf", theme=request.shelf.theme)
        self._add_shelf(shelf)
        return self._counted(shelf.id)

    # -- books -----------------------------------------------------------------

    async def ListBooks(self, request: Any, context: Context) -> Any:
        await self._shelf(request.shelf, context)
        if request.page_size < 0:
            await invalid_argument(context, "page_size", "must not be negative")
        after = 0
        if request.page_token:
            if not request.page_token.isdigit():
                await invalid_argument(context, "page_token", "not a token from this API")
            after = int(request.page_token)
        books = [
            book
            for book_id, book in sorted(self.books[request.shelf].items())
            if book_id > after and request.genre in (0, book.genre)
        ]
        response = self.new("ListBooksResponse")
        if request.page_size and len(books) > request.page_size:
            books = books[: request.page_size]
            response.next_page_token = str(books[-1].id)
        response.books.extend(books)
        return response

    async def GetBook(self, request: Any, context: Context) -> Any:
        return await self._book(request.shelf, request.book, context)

    async def CreateBook(self, request: Any, context: Context) -> Any:
        await self._shelf(request.shelf, context)
        if not request.book.title:
            await invalid_argument(context, "book.title", "a book needs a title")
        book = self.new("Book")
        book.CopyFrom(request.book)
        self._add_book(request.shelf, book)
        return book

    async def UpdateBook(self, request: Any, context: Context) -> Any:
        stored = await self._book(request.shelf, request.book.id, context)
        fields = stored.DESCRIPTOR.fields_by_name
        paths = list(request.update_mask.paths) or [name for name in fields if name != "id"]
        for path in paths:
            if path not in fields:
                await invalid_argument(context, "update_mask", f"a book has no field {path!r}")
        updated = self.new("Book")
        updated.CopyFrom(stored)
        for path in paths:
            if path == "id":  # from the URL: names the book, never changes
                continue
            field = fields[path]
            value = getattr(request.book, path)
            updated.ClearField(path)
            if field.is_repeated:
                getattr(updated, path).extend(value)
            elif field.message_type is not None:
                if request.book.HasField(path):
                    getattr(updated, path).CopyFrom(value)
            else:
                setattr(updated, path, value)
        if not updated.title:
            await invalid_argument(context, "book.title", "a book needs a title")
        stored.CopyFrom(updated)
        return stored

    async def DeleteBook(self, request: Any, context: Context) -> Any:
        await self._book(request.shelf, request.book, context)
        del self.books[request.shelf][request.book]
        return message_class(self.pool.FindMessageTypeByName("google.protobuf.Empty"))()

    async def WatchShelf(self, request: Any, context: Context) -> AsyncIterator[Any]:
        """A simulated feed: each book is borrowed, then returned, in turn."""
        await self._shelf(request.shelf, context)
        books = [book for _, book in sorted(self.books[request.shelf].items())]
        if not books:
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, "the shelf is empty")
        count = request.count or 5
        interval = (request.interval_ms or 1000) / 1000
        total = min(count, request.fail_after) if request.fail_after > 0 else count
        for index in range(total):
            if index:
                await asyncio.sleep(interval)
            if request.idle_ms > 0 and index == total // 2 and index:
                await asyncio.sleep(request.idle_ms / 1000)
            book = books[index % len(books)]
            kind = "BORROWED" if (index // len(books)) % 2 == 0 else "RETURNED"
            event = self.new("BookEvent", kind=kind)
            event.book.CopyFrom(book)
            event.at.GetCurrentTime()
            yield event
        if request.fail_after > 0:
            if total:
                await asyncio.sleep(interval)
            await abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                f"the feed of shelf {request.shelf} went away after {total} "
                + ("event" if total == 1 else "events"),
            )

    # -- store -----------------------------------------------------------------

    def _add_shelf(self, shelf: Any) -> None:
        if not shelf.id:
            shelf.id = self.next_shelf
        self.next_shelf = max(self.next_shelf, shelf.id + 1)
        self.shelves[shelf.id] = shelf
        self.books[shelf.id] = {}

    def _add_book(self, shelf_id: int, book: Any) -> None:
        book.id = self.next_book
        self.next_book += 1
        self.books[shelf_id][book.id] = book

    def _counted(self, shelf_id: int) -> Any:
        shelf = self.new("Shelf")
        shelf.CopyFrom(self.shelves[shelf_id])
        shelf.book_count = len(self.books[shelf_id])
        return shelf

    async def _shelf(self, shelf_id: int, context: Context) -> Any:
        shelf = self.shelves.get(shelf_id)
        if shelf is None:
            await not_found(context, "Shelf", f"shelves/{shelf_id}", f"shelf {shelf_id}")
        return shelf

    async def _book(self, shelf_id: int, book_id: int, context: Context) -> Any:
        await self._shelf(shelf_id, context)
        book = self.books[shelf_id].get(book_id)
        if book is None:
            name = f"shelves/{shelf_id}/books/{book_id}"
            await not_found(context, "Book", name, f"book {book_id} on shelf {shelf_id}")
        return book

    # -- wiring ----------------------------------------------------------------

    def handler(self) -> grpc.GenericRpcHandler:
        """A generic handler serving every method of the service."""
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        for method in self.pool.FindServiceByName(SERVICE).methods:
            request_class: Any = message_class(method.input_type)
            behaviour = getattr(self, method.name)
            make = (
                grpc.unary_stream_rpc_method_handler
                if method.server_streaming
                else grpc.unary_unary_rpc_method_handler
            )
            handlers[method.name] = make(
                behaviour,
                request_deserializer=request_class.FromString,
                response_serializer=_serialize,
            )
        return grpc.method_handlers_generic_handler(SERVICE, handlers)


async def abort(
    context: Context, code: grpc.StatusCode, message: str, *details: Message
) -> NoReturn:
    """Fail the call; ``details`` travel as a google.rpc.Status in grpc-status-details-bin."""
    status = status_pb2.Status(code=code.value[0], message=message)
    for detail in details:
        status.details.add().Pack(detail)
    await context.abort(code, message, ((DETAILS_KEY, status.SerializeToString()),))


async def not_found(context: Context, kind: str, name: str, what: str) -> NoReturn:
    info = error_details_pb2.ResourceInfo(
        resource_type=f"{PACKAGE}.{kind}", resource_name=name, description=f"{what} does not exist"
    )
    await abort(context, grpc.StatusCode.NOT_FOUND, f"{what} not found", info)


async def invalid_argument(context: Context, field: str, description: str) -> NoReturn:
    bad_request = error_details_pb2.BadRequest()
    violation = bad_request.field_violations.add()
    violation.field = field
    violation.description = description
    await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {description}", bad_request)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


async def start_server(address: str = "127.0.0.1:0") -> tuple[grpc.aio.Server, str]:
    """Start the bookstore on ``address`` (port 0: any free port); returns the bound address."""
    pool = load_pool([DESCRIPTOR_SET])
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((Bookstore(pool).handler(),))
    reflection.enable_server_reflection((SERVICE, reflection.SERVICE_NAME), server, pool=pool)
    port = server.add_insecure_port(address)
    if not port:
        raise RuntimeError(f"cannot bind {address}")
    await server.start()
    host = address.rpartition(":")[0]
    return server, f"{host}:{port}"


async def serve(address: str) -> None:
    server, bound = await start_server(address)
    print(f"bookstore listening on {bound} (Ctrl-C to stop)")
    try:
        await server.wait_for_termination()
    finally:
        await server.stop(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The bookstore example's gRPC server.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=50051, help="port to bind (default 50051)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(f"{args.host}:{args.port}"))


if __name__ == "__main__":
    main()
