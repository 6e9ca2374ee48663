"""The HTTP API fuzzed: schemathesis from scaler/openapi.yml, hypothesis on near-valid
alerts and on any body. Zero 5xx; no decision ever acts for anything but a valid firing
ScaleRole with severity "scale" and direction "up" or "down"; no scale-down on an alert
whose age is unknown or stale."""

from __future__ import annotations

import json
import pathlib
import tempfile
import time

import schemathesis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scaler_support import SETTINGS, TOKEN, alert, payload, write_settings
from schemathesis.config import SchemathesisConfig

from dynoscaler import config
from scaler.app import create_app
from scaler.store import Store

AUTH = {"Authorization": f"Bearer {TOKEN}"}
_DIR = pathlib.Path(tempfile.mkdtemp(prefix="dynoscaler-fuzz-"))
# No cooldown: a scale-down waits for nothing but the data's age.
SETTINGS_FILE = config.load(
    write_settings(_DIR, f"sqlite:///{_DIR / 'fuzz.sqlite3'}", {"cooldown": 0}, dry_run=True)
)
STORE = Store(SETTINGS_FILE.scaler.store)
APP = create_app(SETTINGS_FILE, store=STORE, notify=lambda event: None, token=TOKEN)
# A schema-valid payload may still name an unknown app or role or a bad desired_dynos,
# which the contract answers with 422 (scaler/openapi.yml) and no action.
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "422"]}}}
)
schema = schemathesis.openapi.from_wsgi("/openapi.yml", APP, config=CONFIG)

KNOWN = {(a, r) for a, app in SETTINGS["apps"].items() for r in app["roles"]}


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_contract(case) -> None:
    """Every check of schemathesis, server errors included, with and without credentials."""
    case.call_and_validate(headers=AUTH)


def valid_count(text: str) -> bool:
    """The contract: ASCII digits, optionally '.0' (Prometheus' "%.0f" renders integers)."""
    whole, _, fraction = text.strip().partition(".")
    return whole.isascii() and whole.isdigit() and len(whole) <= 6 and set(fraction) <= {"0"}


roles = st.sampled_from(sorted(KNOWN) + [("shop", "nope"), ("ghost", "worker")])
counts = st.one_of(
    st.integers(-3, 40).map(str),
    st.sampled_from(["4.0", "3.5", "NaN", "inf", "", " 7 ", "1e3", "0x10", "1_0", "\u0663", "5."]),
    st.text(max_size=5),
)
MISSING = None
# endsAt: which ones give a fresh age is decided when the example runs (the wall clock).
ENDS = ["zero", "zero", "fresh", "stale", "naive", "date", "garbage", "missing"]


def ends_at(kind: str, now: float) -> str | None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 5))
    old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 600))
    return {
        "zero": "0001-01-01T00:00:00Z",
        "fresh": stamp + "Z",
        "stale": old,
        "naive": stamp,
        "date": stamp[:10],
        "garbage": "later",
        "missing": MISSING,
    }[kind]


def near_valid(role, desired, name, status, severity, direction, ends) -> dict:
    body = alert(role[0], role[1], desired, name, status)
    body["endsAt"] = ends  # the kind; made a time in the test
    for label, value in (("severity", severity), ("direction", direction)):
        if value is MISSING:
            del body["labels"][label]
        else:
            body["labels"][label] = value
    return body


alerts = st.builds(
    near_valid,
    roles,
    counts,
    st.sampled_from(["ScaleRole", "ScaleRole", "DeadlineUnmeetable", "SourceDown"]),
    st.sampled_from(["firing", "firing", "resolved"]),
    st.sampled_from(["scale", "scale", "scale", "ops", "Scale", MISSING]),
    st.sampled_from(["up", "down", "up", "down", "sideways", "", MISSING]),
    st.sampled_from(ENDS),
)

# Alerts of the contract with valid counts: the ones that change counts, both ways.
acting = st.builds(
    near_valid,
    st.sampled_from(sorted(KNOWN)),
    st.integers(0, 12).map(str),
    st.just("ScaleRole"),
    st.just("firing"),
    st.just("scale"),
    st.sampled_from(["up", "down"]),
    st.sampled_from(ENDS),
)


def contract(a: dict) -> bool:
    """An alert the scaler acts on (docs/scaler.md, "What is acted on")."""
    labels = a["labels"]
    return (
        a["status"] == "firing"
        and labels["alertname"] == "ScaleRole"
        and labels.get("severity") == "scale"
        and labels.get("direction") in ("up", "down")
    )


@given(st.lists(alerts | acting, min_size=1, max_size=4))
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
def test_near_valid_alerts_never_act_wrongly(batch) -> None:
    client = APP.test_client()
    now = time.time()
    kinds = [a["endsAt"] for a in batch]
    for a, kind in zip(batch, kinds, strict=True):
        a["endsAt"] = ends_at(kind, now)
        if a["endsAt"] is MISSING:
            del a["endsAt"]
    body = payload(*batch)
    response = client.post("/alerts", data=json.dumps(body), headers=AUTH)
    scale = [a for a in batch if contract(a)]
    invalid = [
        a
        for a in scale
        if (a["labels"]["app"], a["labels"]["role"]) not in KNOWN
        or not valid_count(a["annotations"]["desired_dynos"])
    ]
    if invalid:
        assert response.status_code == 422, response.json
        return
    assert response.status_code == 200, response.json
    acted = {(d["app"], d["role"]) for d in response.json["decisions"] if d["to"] is not None}
    asked = {(a["labels"]["app"], a["labels"]["role"]) for a in scale}
    assert acted <= asked
    # A role is held if any of its alerts is of unknown age or stale.
    held = {
        (a["labels"]["app"], a["labels"]["role"])
        for a, kind in zip(batch, kinds, strict=True)
        if contract(a) and kind not in ("zero", "fresh")
    }
    for d in response.json["decisions"]:
        if d["to"] is not None:
            role = SETTINGS_FILE.role(d["app"], d["role"])
            assert role.min_dynos <= d["to"] <= role.max_dynos
            if d["to"] < d["from"]:
                event("scale-down")
                assert (d["app"], d["role"]) not in held, (d, batch)


# Any body: JSON of any shape, nested to any depth, cut or spliced, or not JSON at all.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=30,
)
VALID = json.dumps(payload(alert("shop", "worker", "3"))).encode()


@st.composite
def deep(draw) -> bytes:
    depth = draw(st.integers(1, 4000))
    opener = draw(st.sampled_from([b"[", b'{"a":', b'[{"alerts":']))
    closer = {b"[": b"]", b'{"a":': b"}", b'[{"alerts":': b"}]"}[opener]
    middle = draw(st.sampled_from([b"[]", b"0", b'"x"', VALID]))
    return opener * depth + middle + closer * draw(st.integers(0, depth))


@st.composite
def spliced(draw) -> bytes:
    cut = draw(st.integers(0, len(VALID)))
    return VALID[:cut] + draw(st.binary(max_size=20)) + VALID[cut + draw(st.integers(0, 5)) :]


bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(["version", "status", "alerts"]), json_values).map(
        lambda v: json.dumps({"version": "4", "status": "firing", **v}).encode()
    ),
    deep(),
    spliced(),
    st.binary(max_size=200),
    st.sampled_from([b"NaN", b"[Infinity]", b'"\\ud800"', b"1" * 5000, b'{"a": 1e999}']),
)


@given(bodies)
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_body_gets_a_5xx(body) -> None:
    response = APP.test_client().post("/alerts", data=body, headers=AUTH)
    assert response.status_code in (200, 400, 413, 422), (response.status_code, body[:200])
    assert "error" in response.json or "decisions" in response.json
