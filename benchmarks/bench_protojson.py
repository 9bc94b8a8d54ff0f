"""µs per conversion: transcoder.protojson vs json_format (python-stack notes §2 method).

Run from the repository root: ``python benchmarks/bench_protojson.py``.  The
benchmark's messages (``benchsvc.v1`` small and medium) are compiled with
grpcio-tools into a temporary directory; the medium body is the harness's
``fixtures/medium.json`` (copied below).  Each figure is the fastest of 7
repeats of a loop calibrated to ~0.2 s: on a shared machine the minimum tracks
CPU cost, where a median also measures the neighbours.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from google.protobuf import json_format

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.protos import compile_descriptor_set
from transcoder.descriptors import load_pool
from transcoder.protojson import Codecs, JsonOptions, loads

PROTO = """
syntax = "proto3";
package benchsvc.v1;
message SmallMessage {
  string id = 1; string name = 2; int32 count = 3; bool flag = 4; double score = 5;
}
enum Status {
  STATUS_UNSPECIFIED = 0; STATUS_ACTIVE = 1; STATUS_SUSPENDED = 2; STATUS_DELETED = 3;
}
message Address {
  string street = 1; string city = 2; string postal_code = 3; string country_code = 4;
}
message LineItem {
  string sku = 1; string title = 2; int32 quantity = 3; int64 price_micros = 4; Status status = 5;
  repeated string attributes = 6;
}
message MediumMessage {
  string id = 1; int64 created_unix_ms = 2; int64 account_number = 3; Status status = 4;
  string customer_name = 5; string customer_email = 6; Address shipping_address = 7;
  repeated LineItem line_items = 8; repeated string tags = 9; map<string, string> labels = 10;
  double total_amount = 11; bool gift = 12; string note = 13;
}
"""

SMALL = b'{"id":"abc-123","name":"bench","count":42,"flag":true,"score":1.5}'

LINE_ITEMS = [
    (
        "SKU-000123",
        "Difference engine gear, brass",
        12,
        "4990000",
        "STATUS_ACTIVE",
        ["brass", "m3"],
    ),
    ("SKU-000456", "Punched card stack (100)", 3, "12500000", "STATUS_ACTIVE", ["paper"]),
    (
        "SKU-000789",
        "Analytical engine manual",
        1,
        "39000000",
        "STATUS_SUSPENDED",
        ["book", "hardcover", "1843"],
    ),
    ("SKU-001011", "Crank handle, oak", 2, "7250000", "STATUS_DELETED", []),
]
# The harness's fixtures/medium.json, byte for byte (1,366 bytes, indented).
MEDIUM = (
    b"{\n"
    + b"".join(
        b"  " + line + b"\n"
        for line in [
            b'"id": "ord-7f3a9c21-4be0-4d7e-9a51-2c6f0e8b1d44",',
            b'"createdUnixMs": "1732176000123",',
            b'"accountNumber": "9007199254740993",',
            b'"status": "STATUS_ACTIVE",',
            b'"customerName": "Ada Lovelace",',
            b'"customerEmail": "ada.lovelace@example.com",',
            b'"shippingAddress": {',
            b'  "street": "12 St James\'s Square",',
            b'  "city": "London",',
            b'  "postalCode": "SW1Y 4JH",',
            b'  "countryCode": "GB"',
            b"},",
            b'"lineItems": [',
            b",\n  ".join(
                b"  "
                + json.dumps(
                    {
                        "sku": sku,
                        "title": title,
                        "quantity": quantity,
                        "priceMicros": price,
                        "status": status,
                        "attributes": attributes,
                    }
                ).encode()
                for sku, title, quantity, price, status, attributes in LINE_ITEMS
            ),
            b"],",
            b'"tags": ["priority", "gift-wrap", "international", "fragile"],',
            b'"labels": {"channel": "web", "region": "eu-west", "campaign": "autumn-sale"},',
            b'"totalAmount": 173780.5,',
            b'"gift": true,',
            b'"note": "Please deliver to the front desk between 9:00 and 17:00; call ahead if '
            b'the parcel does not fit the letterbox."',
        ]
    )
    + b"}\n"
)


def per_call(fn: Callable[[], Any]) -> float:
    """µs per call: the fastest of 7 repeats of a loop calibrated to ~0.2 s."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        if time.perf_counter() - start > 0.05:
            break
        loops *= 2
    loops = max(1, int(loops * 0.2 / (time.perf_counter() - start)))
    samples = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        samples.append((time.perf_counter() - start) / loops * 1e6)
    return min(samples)


def _strict_json(body: bytes) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(items)
        if len(result) != len(items):
            raise ValueError("duplicate key")
        return result

    return json.loads(body, object_pairs_hook=pairs)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "bench.proto").write_text(PROTO)
        pool = load_pool([compile_descriptor_set(root, [root / "bench.proto"], root / "bench.pb")])
    codecs = Codecs(pool, JsonOptions())
    rows = []
    for label, type_name, body in (
        ("small", "benchsvc.v1.SmallMessage", SMALL),
        ("medium", "benchsvc.v1.MediumMessage", MEDIUM),
    ):
        codec = codecs.codec(pool.FindMessageTypeByName(type_name))
        cls = codec.message_class
        message = codec.decode(loads(body, max_depth=64))
        assert message == json_format.Parse(body, cls(), descriptor_pool=pool)
        expected = json_format.MessageToDict(
            message, always_print_fields_with_no_presence=True, descriptor_pool=pool
        )
        assert codec.encode(message) == expected

        def ours_decode(body: bytes = body, codec: Any = codec) -> Any:
            return codec.decode(loads(body, max_depth=64))

        def reference_decode(body: bytes = body, cls: Any = cls) -> Any:
            return json_format.Parse(body, cls(), descriptor_pool=pool)

        def reference_encode(message: Any = message) -> bytes:
            return orjson.dumps(
                json_format.MessageToDict(
                    message, always_print_fields_with_no_presence=True, descriptor_pool=pool
                )
            )

        def ours_encode(codec: Any = codec, message: Any = message) -> bytes:
            return bytes(codec.dumps(message))

        figures = {
            "loads: orjson.loads": per_call(partial(orjson.loads, body)),
            "loads: json.loads + duplicate hook": per_call(partial(_strict_json, body)),
            "loads: protojson.loads": per_call(partial(loads, body, max_depth=64)),
            "decode: json_format.Parse": per_call(reference_decode),
            "decode: protojson loads + decode": per_call(ours_decode),
            "encode: orjson.dumps(MessageToDict)": per_call(reference_encode),
            "encode: codec.dumps": per_call(ours_encode),
        }
        rows.append((label, figures))
    names = list(rows[0][1])
    print(f"{'µs per call':40} {'small':>8} {'medium':>8}")
    for name in names:
        print(f"{name:40} {rows[0][1][name]:8.1f} {rows[1][1][name]:8.1f}")
    for label, figures in rows:
        decode = figures["decode: json_format.Parse"] / figures["decode: protojson loads + decode"]
        encode = figures["encode: orjson.dumps(MessageToDict)"] / figures["encode: codec.dumps"]
        print(f"{label}: decode {decode:.1f}x, encode {encode:.1f}x faster than json_format")


if __name__ == "__main__":
    main()
