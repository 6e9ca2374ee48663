"""Queries to Prometheus' HTTP API: instant (the reconcile loop, the busy check)
and over a range (a role's series: dynoscaler.role_series)."""

from __future__ import annotations

from typing import Any

import requests

QUERY_TIMEOUT_SECONDS = 10.0
# Prometheus refuses a range query of more than 11,000 points per series.
MAX_POINTS = 10_000


class PrometheusError(Exception):
    """Prometheus did not answer a query usably."""


def query(
    base_url: str, promql: str, timeout: float = QUERY_TIMEOUT_SECONDS
) -> list[dict[str, Any]]:
    """An instant query; the result vector as Prometheus returns it."""
    return _result(base_url, "query", {"query": promql}, "vector", timeout)


def query_range(
    base_url: str,
    promql: str,
    start: float,
    end: float,
    step: float,
    timeout: float = QUERY_TIMEOUT_SECONDS,
) -> list[dict[str, Any]]:
    """A range query, asked in pieces of at most MAX_POINTS steps; the matrix with
    each series' values (Unix time, value as text) joined."""
    joined: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    piece = start
    while piece <= end:
        last = min(end, piece + step * (MAX_POINTS - 1))
        params = {"query": promql, "start": piece, "end": last, "step": step}
        for series in _result(base_url, "query_range", params, "matrix", timeout):
            key = tuple(sorted(series["metric"].items()))
            joined.setdefault(key, {"metric": series["metric"], "values": []})
            joined[key]["values"] += series["values"]
        piece = last + step
    return list(joined.values())


_KINDS = {"vector": "an instant vector", "matrix": "a range vector"}


def _result(
    base_url: str, endpoint: str, params: dict[str, Any], kind: str, timeout: float
) -> list[dict[str, Any]]:
    url = f"{base_url.rstrip('/')}/api/v1/{endpoint}"
    promql = params["query"]
    try:
        response = requests.get(url, params=params, timeout=timeout)
        body = response.json()
    except (requests.RequestException, ValueError) as error:
        raise PrometheusError(f"{url}: {error}") from None
    if response.status_code != 200 or body.get("status") != "success":
        raise PrometheusError(f"{url} {promql!r}: HTTP {response.status_code} {body.get('error')}")
    if body["data"]["resultType"] != kind:
        raise PrometheusError(f"{promql!r} did not return {_KINDS[kind]}")
    return body["data"]["result"]
