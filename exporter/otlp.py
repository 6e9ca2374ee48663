"""Fir's telemetry drains: router logs over OTLP/HTTP (POST /otlp/<app>/v1/logs).

(HTTP server metrics at /v1/metrics: exporter/otlp_metrics.py, decoded here.)

Heroku's Fir generation has no Logplex drains: an app's logs, the router's
among them, leave through a telemetry drain (`heroku telemetry:add`) as OTLP
over HTTP. Its exporter POSTs an ExportLogsServiceRequest to the drain URL
plus `/v1/logs`, protobuf (`application/x-protobuf`) or JSON
(`application/json`), gzip-compressed or not. The request is decoded with the
OpenTelemetry protocol package (opentelemetry-proto); each log record whose
body is a router line (`at=info method=GET ... dyno=web-12a34b56d-e78f9 ...
service=12ms ...`) counts like the same line from a Cedar drain
(exporter.logdrain.router_message_fields: the one parser of router fields).

The app is the URL's (`/otlp/<app>`), as with `/logs/<app>`: Heroku's
documentation did not settle which resource attribute names the app on every
router record, and the URL cannot be mistaken.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import TypeVar

from google.protobuf.json_format import MessageToJson, Parse, ParseError
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from exporter.logdrain import RouterStats

PREFIX = "/otlp/"
LOGS, METRICS = "/v1/logs", "/v1/metrics"
M = TypeVar("M", bound=Message)
_SIGNALS: dict[type[Message], str] = {
    ExportLogsServiceRequest: "logs",
    ExportMetricsServiceRequest: "metrics",
}
PROTOBUF, JSON = "application/x-protobuf", "application/json"
# The most a body may hold once gunzipped: a gzip bomb (1 MiB of zeros is 1 KiB
# compressed) is refused rather than inflated without end.
MAX_DECOMPRESSED = 16 << 20


class BadOtlpBody(ValueError):
    """A body that is not an OTLP request of its signal; the message says why."""


class UnsupportedMediaType(BadOtlpBody):
    """A Content-Type or Content-Encoding OTLP/HTTP does not define (415)."""


class TooLarge(BadOtlpBody):
    """A body over MAX_DECOMPRESSED once decompressed (413)."""


def route(path: str) -> tuple[str, str] | None:
    """(app, signal path) of /otlp/<app>/v1/...; None for any other path."""
    if not path.startswith(PREFIX):
        return None
    app, slash, rest = path.removeprefix(PREFIX).partition("/")
    return (app, "/" + rest) if app and slash else None


def decode(
    body: bytes, content_type: str, encoding: str, kind: type[M] = ExportLogsServiceRequest
) -> tuple[M, str]:
    """The request (an ExportLogsServiceRequest, or `kind`) of a POST body and its media
    type (the answer's); BadOtlpBody (or a subclass) where it cannot be read."""
    media = content_type.partition(";")[0].strip().lower()
    if media not in (PROTOBUF, JSON):
        raise UnsupportedMediaType(f"Content-Type {content_type!r}: send {PROTOBUF} or {JSON}")
    data = _decompress(body, encoding.strip().lower())
    request = kind()
    try:
        if media == PROTOBUF:
            request.ParseFromString(data)
        else:
            Parse(data, request, ignore_unknown_fields=True)
    except (DecodeError, ParseError, UnicodeDecodeError, RecursionError) as error:
        raise BadOtlpBody(f"not an OTLP {_SIGNALS[kind]} request ({media}): {error}") from None
    return request, media


def answer(response: Message, media: str) -> bytes:
    """An OTLP response message in the request's encoding."""
    if media == PROTOBUF:
        return response.SerializeToString()
    return MessageToJson(response).encode()


def _decompress(body: bytes, encoding: str) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r}: send gzip or none")
    inflate = zlib.decompressobj(wbits=31)  # gzip header and trailer
    try:
        data = inflate.decompress(body, MAX_DECOMPRESSED)
    except zlib.error as error:
        raise BadOtlpBody(f"not gzip: {error}") from None
    if inflate.unconsumed_tail:
        raise TooLarge(f"body over {MAX_DECOMPRESSED} bytes once decompressed")
    if not inflate.eof:
        raise BadOtlpBody("gzip stream ends early")
    return data


def messages(request: ExportLogsServiceRequest) -> Iterator[bytes]:
    """The string (or bytes) bodies of every log record of a request."""
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                kind = record.body.WhichOneof("value")
                if kind == "string_value":
                    yield record.body.string_value.encode()
                elif kind == "bytes_value":
                    yield record.body.bytes_value


def receive_logs(
    router: RouterStats, app: str, body: bytes, content_type: str, encoding: str
) -> tuple[int, bytes, str]:
    """Count the router records of one OTLP logs POST: (count, answer body, its media
    type), the answer an ExportLogsServiceResponse in the request's encoding.
    BadOtlpBody where the body cannot be read: nothing is counted."""
    request, media = decode(body, content_type, encoding)
    counted = router.receive_messages(app, list(messages(request)))
    return counted, answer(ExportLogsServiceResponse(), media), media
