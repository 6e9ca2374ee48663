"""Instant queries to Prometheus' HTTP API (the reconcile loop, the busy check)."""

from __future__ import annotations

from typing import Any

import requests

QUERY_TIMEOUT_SECONDS = 10.0


class PrometheusError(Exception):
    """Prometheus did not answer a query usably."""


def query(
    base_url: str, promql: str, timeout: float = QUERY_TIMEOUT_SECONDS
) -> list[dict[str, Any]]:
    """An instant query; the result vector as Prometheus returns it."""
    url = f"{base_url.rstrip('/')}/api/v1/query"
    try:
        response = requests.get(url, params={"query": promql}, timeout=timeout)
        body = response.json()
    except (requests.RequestException, ValueError) as error:
        raise PrometheusError(f"{url}: {error}") from None
    if response.status_code != 200 or body.get("status") != "success":
        raise PrometheusError(f"{url} {promql!r}: HTTP {response.status_code} {body.get('error')}")
    if body["data"]["resultType"] != "vector":
        raise PrometheusError(f"{promql!r} did not return an instant vector")
    return body["data"]["result"]
