"""Fir's telemetry drains: OTLP/HTTP logs at POST /otlp/<app>/v1/logs."""

from __future__ import annotations

import gzip
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from exporter_helpers import DRAIN_AUTH, DRAIN_TOKEN, exporter, labels, write_config
from google.protobuf.json_format import MessageToJson
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from test_exporter_logdrain import LINES, logplex, post

from exporter import otlp
from exporter.logdrain import RouterStats, router_fields, router_message_fields
from exporter.server import MAX_DRAIN_BODY

pytestmark = pytest.mark.timeout(60)

FIXTURE = Path(__file__).parent / "fixtures" / "fir_router_logs.json"
ROLES = {"web": {"requests": "router"}, "api": {"requests": "router"}}
PROTOBUF = {"Content-Type": "application/x-protobuf"}


def fir_message(cedar_line: str, dyno_names: dict[str, str]) -> str:
    """A Cedar router line as Fir's router log record body: no syslog header, Fir dyno names."""
    message = cedar_line.partition(" heroku router - ")[2] or cedar_line
    for cedar, fir in dyno_names.items():
        message = message.replace(f"dyno={cedar} ", f"dyno={fir} ")
    return message


FIR_DYNOS = {
    "web.1": "web-12a34b56d-e78f9",
    "web.2": "web-12a34b56d-x7k2p",
    "api.1": "api-7f9c8d6b5-q4w2e",
    "admin.1": "admin-5d4c3b2a1-m3n4b",
}
# LINES (test_exporter_logdrain) as Fir sends them; the last one, the app's own
# output, stays as it is (it does not start with at=).
FIR_MESSAGES = [fir_message(line, FIR_DYNOS) for line in LINES]


def otlp_post(
    url: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = DRAIN_AUTH,
) -> requests.Response:
    return requests.post(url, data=body, headers=headers or PROTOBUF, auth=auth, timeout=5)


def sdk_export(url: str, messages: list[str], compression: Compression) -> list[int]:
    """Emit `messages` as log records through the OpenTelemetry SDK's OTLP/HTTP exporter
    (protobuf) to `url`, with the drain secret as a bearer token; the statuses answered."""
    statuses: list[int] = []
    session = requests.Session()
    session.hooks["response"].append(lambda response, **_: statuses.append(response.status_code))
    exporter_ = OTLPLogExporter(
        endpoint=url,
        headers={"Authorization": f"Bearer {DRAIN_TOKEN}"},
        compression=compression,
        session=session,
    )
    resource = Resource({"service.name": "shop", "cloud.provider": "heroku"})
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter_))
    logger = provider.get_logger("heroku-router")
    for message in messages:
        logger.emit(LogRecord(body=message, severity_number=SeverityNumber.INFO))
    provider.force_flush()
    provider.shutdown()
    return statuses


def request_of(messages: list[str]) -> ExportLogsServiceRequest:
    """An OTLP logs request with one record a message (opentelemetry-proto's classes)."""
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    for message in messages:
        scope.log_records.add().body.string_value = message
    return request


# --- the parser: one for both generations ------------------------------------------------


def test_a_fir_message_parses_like_the_cedar_line_it_stands_for():
    for cedar, fir in zip(LINES, FIR_MESSAGES, strict=True):
        assert router_message_fields(fir.encode()) == router_fields(cedar.encode()), fir
    assert router_message_fields(FIR_MESSAGES[0].encode()) == (b"web", 0.023)


@pytest.mark.parametrize(
    ("dyno", "role"),
    [
        ("web-12a34b56d-e78f9", b"web"),
        ("web.12", b"web"),
        ("web-api-58b6d4b99d-x7k2p", b"web-api"),  # a process type with a dash
        ("web-api.3", b"web-api"),
        ("worker_web-12a34b56d-e78f9", b"worker_web"),
        ("run.2345", b"run"),
    ],
)
def test_the_process_type_of_both_dyno_name_forms(dyno, role):
    message = f"at=info method=GET path=/ host=x dyno={dyno} connect=0ms service=12ms status=200"
    assert router_message_fields(message.encode()) == (role, 0.012)


@pytest.mark.parametrize(
    "message",
    [
        "service=5ms dyno=web-12a34b56d-e78f9 hello",  # the app's own output
        "at=info method=GET path=/ dyno=web connect=0ms service=3ms",  # no dyno number or id
        "at=info method=GET path=/ dyno=web-12a34b56d connect=0ms service=3ms",  # no suffix
        'at=info method=GET path="/ dyno=web.1 service=3ms" status=200',  # a client's path
    ],
)
def test_other_messages_are_not_requests(message):
    assert router_message_fields(message.encode()) is None


# --- the goal: Fir's OTLP body gives the metrics the Cedar drain body gives --------------


def router_series(series: dict, app: str) -> dict:
    """The router series of one app, with the app label left out."""
    return {
        (name, key - {("app", app)}): value
        for (name, key), value in series.items()
        if name.startswith("dynoscaler_router_") and ("app", app) in key
    }


def test_a_fir_otlp_body_yields_the_same_metrics_as_the_equivalent_cedar_drain_body(tmp_path):
    config = write_config(tmp_path, {"cedar": {"roles": ROLES}, "fir": {"roles": ROLES}})
    with exporter(config) as running:
        drained = post(f"{running.url}/logs/cedar", logplex(LINES))
        statuses = sdk_export(f"{running.url}/otlp/fir/v1/logs", FIR_MESSAGES, Compression.Gzip)
        series = running.scrape()
    assert drained.status_code == 200
    assert statuses == [200]  # one batch, accepted by the SDK's own exporter
    cedar, fir = router_series(series, "cedar"), router_series(series, "fir")
    assert fir == cedar
    assert fir[("dynoscaler_router_requests_total", labels(role="web"))] == 3
    assert fir[("dynoscaler_router_requests_total", labels(role="api"))] == 1
    assert fir[("dynoscaler_router_service_seconds_sum", labels(role="web"))] == pytest.approx(
        31.524
    )


def test_the_json_encoding_gzipped_or_not_counts_the_captured_format_fixture(tmp_path):
    body = FIXTURE.read_bytes()
    config = write_config(tmp_path, {"shop": {"roles": ROLES}})
    with exporter(config) as running:
        url = f"{running.url}/otlp/shop/v1/logs"
        plain = otlp_post(url, body, {"Content-Type": "application/json"})
        zipped = otlp_post(
            url,
            gzip.compress(body),
            {"Content-Type": "application/json; charset=utf-8", "Content-Encoding": "gzip"},
        )
        series = running.scrape()
    assert (plain.status_code, zipped.status_code) == (200, 200)
    assert plain.headers["Content-Type"] == "application/json"
    assert json.loads(plain.text) == {}  # an ExportLogsServiceResponse: full success
    web, api = labels(app="shop", role="web"), labels(app="shop", role="api")
    assert series[("dynoscaler_router_requests_total", web)] == 6  # 3 records, twice
    assert series[("dynoscaler_router_requests_total", api)] == 2
    assert not [key for key in series if ("role", "admin") in key[1]]


def test_protobuf_is_answered_with_a_protobuf_response(tmp_path):
    config = write_config(tmp_path, {"shop": {"roles": ROLES}})
    body = request_of(FIR_MESSAGES[:2]).SerializeToString()
    with exporter(config) as running:
        answer = otlp_post(f"{running.url}/otlp/shop/v1/logs", body)
        counted = running.scrape()[
            ("dynoscaler_router_requests_total", labels(app="shop", role="web"))
        ]
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/x-protobuf"
    response = ExportLogsServiceResponse()
    response.ParseFromString(answer.content)
    assert not response.HasField("partial_success")
    assert counted == 2


# --- refusals: the secret, the route, the body -------------------------------------------


def test_refusals(tmp_path):
    config = write_config(tmp_path, {"shop": {"roles": ROLES}})
    good = request_of(FIR_MESSAGES[:1]).SerializeToString()
    bomb = gzip.compress(b"\0" * (otlp.MAX_DECOMPRESSED + 1))
    with exporter(config) as running:
        url = f"{running.url}/otlp/shop/v1/logs"
        answers = {
            "no secret": otlp_post(url, good, auth=None),
            "wrong secret": otlp_post(url, good, auth=("heroku", "wrong")),
            "unknown app": otlp_post(f"{running.url}/otlp/other/v1/logs", good),
            "traces": otlp_post(f"{running.url}/otlp/shop/v1/traces", good),
            "no signal": otlp_post(f"{running.url}/otlp/shop", good),
            "GET": requests.get(url, auth=DRAIN_AUTH, timeout=5),
            "text/plain": otlp_post(url, good, {"Content-Type": "text/plain"}),
            "br": otlp_post(url, good, {**PROTOBUF, "Content-Encoding": "br"}),
            "not protobuf": otlp_post(url, b"\xff\xff\xff"),
            "not JSON": otlp_post(url, b"{", {"Content-Type": "application/json"}),
            "JSON of another shape": otlp_post(
                url, b'{"resourceLogs": 3}', {"Content-Type": "application/json"}
            ),
            "not gzip": otlp_post(url, good, {**PROTOBUF, "Content-Encoding": "gzip"}),
            "gzip cut short": otlp_post(
                url, gzip.compress(good)[:-12], {**PROTOBUF, "Content-Encoding": "gzip"}
            ),
            "gzip bomb": otlp_post(url, bomb, {**PROTOBUF, "Content-Encoding": "gzip"}),
            "over the cap": otlp_post(url, b"\0" * (MAX_DRAIN_BODY + 1)),
        }
        counted = running.scrape()[
            ("dynoscaler_router_requests_total", labels(app="shop", role="web"))
        ]
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "no secret": 401,
        "wrong secret": 401,
        "unknown app": 404,
        "traces": 404,
        "no signal": 404,
        "GET": 405,
        "text/plain": 415,
        "br": 415,
        "not protobuf": 400,
        "not JSON": 400,
        "JSON of another shape": 400,
        "not gzip": 400,
        "gzip cut short": 400,
        "gzip bomb": 413,
        "over the cap": 413,
    }
    assert len(bomb) < MAX_DRAIN_BODY  # under the body cap: refused for what it inflates to
    assert "DYNOSCALER_DRAIN_TOKEN" in answers["wrong secret"].text
    assert "--signals logs,metrics" in answers["traces"].text
    assert counted == 0


OTLP_KEYS = st.sampled_from(
    ["resourceLogs", "scopeLogs", "logRecords", "body", "stringValue", "bytesValue",
     "timeUnixNano", "severityNumber", "attributes", "key", "value", "kvlistValue", "x"]
)  # fmt: skip
# JSON documents of OTLP's keys with values of any type and nesting
OTLP_SHAPED_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(OTLP_KEYS, inner)),
    max_leaves=30,
).map(lambda value: json.dumps({"resourceLogs": value}).encode())


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=400),
        OTLP_SHAPED_JSON,
        st.lists(st.sampled_from(FIR_MESSAGES), max_size=4).map(
            lambda messages: request_of(messages).SerializeToString()
        ),
        st.lists(st.sampled_from(FIR_MESSAGES), max_size=4).map(
            lambda messages: MessageToJson(request_of(messages)).encode()
        ),
    ),
    st.sampled_from(["application/x-protobuf", "application/json"]),
    st.sampled_from(["", "gzip"]),
    st.booleans(),
)
def test_any_body_is_counted_or_refused_as_a_bad_otlp_body(body, content_type, encoding, zipped):
    stats = RouterStats([("shop", "web"), ("shop", "api")])
    if zipped:
        body = gzip.compress(body)
    try:
        counted, _, media = otlp.receive_logs(stats, "shop", body, content_type, encoding)
    except otlp.BadOtlpBody:
        counted, media = 0, content_type
    total = sum(s.value for s in stats.samples() if s.metric == "dynoscaler_router_requests")
    assert total == counted
    assert media == content_type


def test_healthz_and_drain_batches_are_answered_while_a_large_otlp_body_decodes(tmp_path):
    # 1 MiB gzipped can hold 16 MiB of JSON records: seconds of decoding, off the event loop.
    record = MessageToJson(request_of(FIR_MESSAGES[:1]), indent=None)
    count = (otlp.MAX_DECOMPRESSED - 1000) // len(record)
    request = request_of(FIR_MESSAGES[:1] * count)
    large = gzip.compress(MessageToJson(request, indent=None).encode())
    assert len(large) < MAX_DRAIN_BODY
    config = write_config(tmp_path, {"shop": {"roles": ROLES}})
    with exporter(config) as running, ThreadPoolExecutor(1) as pool:
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        started = time.monotonic()
        decoding = pool.submit(otlp_post, f"{running.url}/otlp/shop/v1/logs", large, headers)
        time.sleep(0.3)
        healthz = requests.get(f"{running.url}/healthz", timeout=30)
        drained = post(f"{running.url}/logs/shop", logplex(LINES[:1]))
        answered = time.monotonic() - started
        finished = decoding.result(timeout=55)
        took = time.monotonic() - started
    assert (healthz.status_code, drained.status_code, finished.status_code) == (200, 200, 200)
    assert answered < took - 0.5, (answered, took)  # the small requests did not wait
