"""The HTTP API fuzzed: schemathesis from scaler/openapi.yml, and hypothesis on near-valid
alerts. Zero 5xx, and no decision ever acts for anything but a valid firing ScaleRole."""

from __future__ import annotations

import json
import pathlib
import tempfile

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scaler_support import SETTINGS, TOKEN, alert, payload, write_settings
from schemathesis.config import SchemathesisConfig

from dynoscaler import config
from scaler.app import create_app
from scaler.store import Store

AUTH = {"Authorization": f"Bearer {TOKEN}"}
_DIR = pathlib.Path(tempfile.mkdtemp(prefix="dynoscaler-fuzz-"))
SETTINGS_FILE = config.load(
    write_settings(_DIR, f"sqlite:///{_DIR / 'fuzz.sqlite3'}", dry_run=True)
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
alerts = st.builds(
    lambda role, desired, name, status: alert(role[0], role[1], desired, name, status),
    roles,
    counts,
    st.sampled_from(["ScaleRole", "ScaleRole", "DeadlineUnmeetable", "SourceDown"]),
    st.sampled_from(["firing", "firing", "resolved"]),
)


@given(st.lists(alerts, min_size=1, max_size=4))
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_near_valid_alerts_never_act_wrongly(batch) -> None:
    client = APP.test_client()
    body = payload(*batch)
    response = client.post("/alerts", data=json.dumps(body), headers=AUTH)
    scale = [
        a for a in batch if a["status"] == "firing" and a["labels"]["alertname"] == "ScaleRole"
    ]
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
    for d in response.json["decisions"]:
        if d["to"] is not None:
            role = SETTINGS_FILE.role(d["app"], d["role"])
            assert role.min_dynos <= d["to"] <= role.max_dynos
