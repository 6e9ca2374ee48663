"""`dynoscaler demo --scenario web`: the closed loop for a web role.

The stack of the demo (fake Heroku, exporter, Prometheus, Alertmanager, scaler)
with demo-web.yml's web role: the fake Heroku's formation starts and stops web
dynos (gunicorn processes, dynoscaler.demo.web), the router sends them a Poisson
stream of requests with X-Request-Start, the middleware times each request, and
dynoscaler scales the role on the p95 of queue time (prometheus/rules/web.yml).
The load: WARM_RATE requests/s for the warm-up, STEP_RATE for STEP_SECONDS, then
WARM_RATE again for COOL_SECONDS. Each line shows the rate served, the dynos,
the desired count and the last minute's p95 queue time; the report gives the
reaction to the step and the share of minutes whose p95 was within target.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from dynoscaler.demo import measure
from dynoscaler.demo.supervisor import free_port
from dynoscaler.demo.web import DEFAULT_SERVICE_SECONDS, WebLoad, router_argv

if TYPE_CHECKING:
    from dynoscaler.demo.stack import Stack

DEMO_WEB_SETTINGS = Path(__file__).with_name("demo-web.yml")
WARM_RATE, STEP_RATE = 8.0, 60.0
STEP_SECONDS, COOL_SECONDS = 150.0, 60.0


def run_web(stack: Stack, warmup: float, interrupted: threading.Event) -> int:
    """Drive the web load through the router and report; 0, or 1 if a service died."""
    (role,) = [r for r in stack.settings.roles if r.middleware]
    port = free_port()
    router = stack.supervisor.start("router", router_argv(stack.options.redis_url, port))
    stack.supervisor.wait_ready(router, lambda: "listening" in router.log_path.read_text())
    duration = warmup + STEP_SECONDS + COOL_SECONDS
    load = WebLoad(
        f"http://127.0.0.1:{port}/",
        lambda t: STEP_RATE if warmup <= t < warmup + STEP_SECONDS else WARM_RATE,
        duration,
    )
    started = time.time()
    initial = stack.formation()[role.key]
    print(
        f"demo: web: {WARM_RATE:g} requests/s of {DEFAULT_SERVICE_SECONDS:g} s, {STEP_RATE:g} from "
        f"{warmup:g} s for {STEP_SECONDS:g} s; {role.concurrency} per dyno, p95 queue time "
        f"within {role.target_queue_time:g} s"
    )
    load.start()
    selector = f'{{app="{role.app}",role="{role.role}"}}'
    status = 0
    while time.time() - started < duration and not interrupted.is_set():
        if stack.crashed():
            status = 1
            break
        rate = _value(stack, f"app_role:dynoscaler_arrival_rate:rate1m{selector}")
        desired = _value(stack, f"app_role:dynoscaler_desired_dynos{selector}")
        p95 = _value(stack, f"app_role:dynoscaler_web_queue_seconds:p95_1m{selector}")
        print(
            f"{time.time() - started:5.0f}s {role.app}/{role.role}: {_shown(rate, '.1f')} req/s"
            f" | dynos {stack.formation()[role.key]:2d}, desired {_shown(desired, 'g')}"
            f" | p95 queue {_shown(p95, '.3f')} s",
            flush=True,
        )
        interrupted.wait(5)
    load.stop()
    elapsed = int(time.time() - started)
    within = _value(
        stack,
        f"avg_over_time((app_role:dynoscaler_web_queue_seconds:p95_1m{selector}"
        f" <= bool on (app, role) app_role:dynoscaler_policy_target_queue_seconds{selector})"
        f"[{elapsed}s:60s])",
    )
    reaction = measure.reaction_time(stack.patches(), role.role, started + warmup, initial)
    print(f"demo: web: answers by status {dict(sorted(load.statuses.items()))}")
    print(f"demo: web: step -> formation PATCH {stack.describe_reaction(reaction)}")
    print(f"demo: web: minutes with p95 queue time within target: {_shown(within, '.0%')}")
    return status


def _value(stack: Stack, query: str) -> float | None:
    found = stack.query(query)
    return float(found[0]["value"][1]) if found else None


def _shown(value: float | None, spec: str) -> str:
    return "?" if value is None else format(value, spec)
