"""The demo's web dynos and router: real gunicorn processes behind a real proxy."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from dynoscaler.demo.supervisor import Supervisor, free_port
from dynoscaler.demo.web import PORTS_KEY, router_argv, web_dyno_argv
from exporter.timing import BUCKET_FIELDS
from exporter.web import QUEUE, SERVICE, web_timing_key

pytestmark = pytest.mark.timeout(60)

REDIS_DB14 = "redis://127.0.0.1:6379/14"


def test_requests_through_the_router_wait_at_a_busy_dyno_and_are_timed(tmp_path):
    client = redis.Redis.from_url(REDIS_DB14)
    client.flushdb()
    port = free_port()
    with Supervisor(tmp_path, env={"DEMO_WEB_SERVICE": "0.05"}) as supervisor:
        router = supervisor.start("router", router_argv(REDIS_DB14, port))
        url = f"http://127.0.0.1:{port}/"
        supervisor.wait_ready(router, lambda: requests.get(url, timeout=2).status_code == 503)
        dyno = supervisor.start("dyno-web.1", web_dyno_argv(REDIS_DB14, "web", 2, 0))
        supervisor.wait_ready(dyno, lambda: requests.get(url, timeout=2).status_code == 200)
        with ThreadPoolExecutor(16) as pool:  # 16 at once on 2 slots: most wait
            statuses = list(
                pool.map(lambda _: requests.get(url, timeout=10).status_code, range(16))
            )
        time.sleep(2.5)  # the dyno's flush, once a second
        fields = {k.decode(): float(v) for k, v in client.hgetall(web_timing_key("web")).items()}
        supervisor.stop(dyno)
        assert client.scard(PORTS_KEY) == 0  # a stopped dyno takes no more requests
    client.flushdb()
    assert statuses == [200] * 16
    queued = [fields.get(QUEUE + f, 0) for f in BUCKET_FIELDS]
    assert sum(queued) >= 17  # every request stamped by the router, the readiness checks too
    assert sum(queued[BUCKET_FIELDS.index("le:0.05") :]) >= 4  # 16 on 2 slots of ~50 ms
    assert sum(fields.get(SERVICE + f, 0) for f in BUCKET_FIELDS) == sum(queued)
