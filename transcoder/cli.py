"""``transcoder serve | routes | openapi | demo``: the only module that prints or exits.

Configuration problems end the process before it listens with exactly one line
on stderr naming the key or file, and a non-zero status (contract §1).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from transcoder.errors import ConfigError

EXIT_CONFIG = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, like every other configuration error (argparse prints usage too).
        raise ConfigError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="transcoder", description="gRPC-to-REST transcoding gateway")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def descriptor_flags(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--descriptor-set",
            action="append",
            metavar="FILE",
            help="a serialized FileDescriptorSet (repeatable)",
        )
        command.add_argument(
            "--reflection",
            action="store_true",
            default=None,
            help="load descriptors from the upstream's server reflection",
        )
        command.add_argument("--upstream", metavar="HOST:PORT", help="the gRPC upstream")
        command.add_argument("--config", metavar="FILE", help="a YAML configuration file")

    serve = commands.add_parser("serve", help="run the gateway")
    descriptor_flags(serve)
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8080)")
    serve.add_argument("--workers", type=int, help="worker processes sharing the port (default 1)")
    descriptor_flags(commands.add_parser("routes", help="print the route table"))
    descriptor_flags(commands.add_parser("openapi", help="print the OpenAPI document"))
    demo = commands.add_parser("demo", help="run the bundled example upstream and the gateway")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The flags actually given, as a nested settings dict (they beat env and file)."""
    given: dict[str, Any] = {}

    def put(section: str, key: str, value: object) -> None:
        if value is not None:
            given.setdefault(section, {})[key] = value

    put("descriptors", "files", args.descriptor_set)
    put("descriptors", "reflection", args.reflection)
    put("upstream", "address", args.upstream)
    put("listen", "host", getattr(args, "host", None))
    put("listen", "port", getattr(args, "port", None))
    put("listen", "workers", getattr(args, "workers", None))
    return given


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.command == "demo":
            from transcoder.demo import run_demo

            return run_demo(args.host, args.port)
        return _run(args)
    except ConfigError as exc:
        print(f"transcoder: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    from transcoder.app import create_app, load
    from transcoder.config import load_settings

    settings = load_settings(args.config, _overrides(args))
    if args.command == "serve":
        if not settings.upstream.address:
            raise ConfigError("upstream.address: give --upstream HOST:PORT")
        from transcoder.server import serve, serve_workers

        if settings.listen.workers > 1:
            load(settings)  # refuse a bad configuration here, before any worker starts
            serve_workers(settings)
        else:
            serve(settings)
        return 0
    descriptors = load(settings)
    app = create_app(settings, descriptors)
    if args.command == "routes":
        print(format_routes(app.plan))
    else:
        from transcoder.openapi import openapi_document

        document = app.document or openapi_document(app.plan, descriptors, settings)
        print(json.dumps(document, indent=2))
    return 0


def format_routes(plan: Any) -> str:
    rows = [("METHOD", "PATH", "RPC", "BODY", "KIND")]
    for route in plan.routes:
        body = "-" if route.body is None else route.body
        rows.append(
            (route.http_method, str(route.template), route.rpc_name, body, route.kind.value)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows
    ]
    if plan.skipped:
        lines += ["", "Skipped:"]
        lines += [f"  {s.rpc_name}: {s.reason}" for s in plan.skipped]
    if plan.shadowed:
        lines += ["", "Shadowed (the first binding wins):"]
        lines += [
            f"  {shadowed.describe()} by {winner.describe()}" for shadowed, winner in plan.shadowed
        ]
    return "\n".join(lines)
