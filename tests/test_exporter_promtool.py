"""`promtool check metrics` finds nothing to complain about in a real scrape."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import redis
import requests
from exporter_helpers import DRAIN_AUTH, RABBITMQ_API, REDIS_DB1, exporter, write_config
from test_exporter_logdrain import LINES, logplex

from exporter.timing import JobTimer

pytestmark = pytest.mark.timeout(60)


# What Prometheus 2.42 sends with every scrape.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def test_promtool_accepts_a_scrape_with_every_kind_of_series(tmp_path):
    client = redis.Redis.from_url(REDIS_DB1)
    client.flushdb()
    try:
        client.lpush("queue:default", json.dumps({"class": "W", "enqueued_at": time.time()}))
        client.rpush("emails", "x")
        JobTimer(client, queue="emails").record(0.3)
        config = write_config(
            tmp_path,
            {"shop": {"roles": {
                "worker": {"queues": [
                    {"name": "default", "backend": "sidekiq", "url": REDIS_DB1},
                    {"name": "emails", "backend": "redis_list", "url": REDIS_DB1},
                    {"name": "reports", "backend": "rq", "url": REDIS_DB1},
                    {"name": "celery", "backend": "celery", "url": REDIS_DB1},
                    {"name": "twilio", "backend": "resque", "url": REDIS_DB1},
                    {"name": "mail", "backend": "bullmq", "url": REDIS_DB1},
                    {"name": "jobs", "backend": "dramatiq", "url": REDIS_DB1},
                    {"name": "absent", "backend": "rabbitmq", "url": RABBITMQ_API},
                    {"name": "down", "backend": "redis_list", "url": "redis://127.0.0.1:1/0"},
                ]},
                "web": {"requests": "router"},
            }}},
        )  # fmt: skip
        with exporter(config) as running:
            drained = requests.post(
                f"{running.url}/logs/shop", data=logplex(LINES), auth=DRAIN_AUTH, timeout=5
            )
            assert drained.status_code == 200, drained.text
            # Prometheus asks for OpenMetrics first: the page is the faster text format
            page = requests.get(
                f"{running.url}/metrics", headers={"Accept": PROMETHEUS_ACCEPT}, timeout=10
            )
            text = page.text
    finally:
        client.flushdb()
        client.close()
    for metric in (
        "dynoscaler_job_duration_seconds_bucket",
        "dynoscaler_router_service_seconds_bucket",
        "dynoscaler_queue_oldest_age_seconds",
        "dynoscaler_jobs_completed_total",
        "dynoscaler_policy_scale_down_window_seconds",
        'dynoscaler_queue_dead{app="shop",backend="bullmq",queue="mail",role="worker"} 0.0',
        'dynoscaler_queue_depth{app="shop",backend="dramatiq",queue="jobs",role="worker"} 0.0',
        'dynoscaler_source_up{app="shop",backend="redis_list",role="worker",'
        'source="redis://127.0.0.1:1/0"} 0.0',
    ):
        assert metric in text
    assert page.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert (check.returncode, check.stdout, check.stderr) == (0, "", "")
