"""check-config and the services agree (issue 15, item 2).

Whatever starts has passed `check-config`, and whatever `check-config` passes
starts. Hypothesis writes settings files (numbers with NaN, infinities and
floats for counts; environment references, malformed ones too; unknown store
schemes; notifiers with and without their URL; invalid URLs) and runs each
through `dynoscaler check-config` and through every service's own start in
this process: `scaler serve` up to its gunicorn worker building the app
(create_app), `scaler reconcile` up to its first pass, `exporter` up to
listening. Only binding a port and the loops are left out. All four must give
the same exit code: 0, or 2 with a message.

The store is generated as SQLite files in a directory that exists, or as URLs
refused before any connection: a database that is down is the one start-up
failure a settings check cannot see.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any
from unittest import mock

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynoscaler import cli
from dynoscaler.config_schema import BACKENDS, POLICY_PROPERTIES

CHECK = ["check-config"]
SERVICES = {
    "scaler serve": ["scaler", "serve", "--port", "0"],
    "scaler reconcile": ["scaler", "reconcile", "--once"],
    "exporter": ["exporter", "--port", "0"],
}

_DIR = Path(tempfile.mkdtemp(prefix="dynoscaler-agreement-"))
STORE_FILE = f"sqlite:///{_DIR / 'decisions.sqlite3'}"


def mostly(valid: st.SearchStrategy[Any], other: st.SearchStrategy[Any], odds: int = 9) -> Any:
    """`valid` odds times out of odds + 1: enough files pass for both directions to be tried."""
    return st.sampled_from([True] * odds + [False]).flatmap(lambda ok: valid if ok else other)


def choose(*values: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


anything = st.one_of(
    st.integers(-3, 20_000),
    choose(5.0, 2.5, 0.5, 1e300, float("nan"), float("inf"), -float("inf"), True, "10", None),
    st.floats(allow_nan=True, allow_infinity=True),
)
seconds = st.one_of(st.integers(1, 600), st.floats(0.5, 600))
VALID_POLICY = {
    "min_dynos": st.integers(0, 2),
    "max_dynos": st.integers(3, 12),
    "concurrency": st.integers(1, 8),
    "max_step": st.integers(1, 5),
    "miss_ratio": st.floats(0.001, 0.4),
}
policies = st.dictionaries(
    st.sampled_from(sorted(POLICY_PROPERTIES)), st.none(), max_size=2
).flatmap(
    lambda keys: st.fixed_dictionaries(
        {key: mostly(VALID_POLICY.get(key, seconds), anything, 19) for key in keys}
    )
)

# Environment references, well and badly formed; a string is sometimes one of
# these or a few pieces joined.
_REFERENCES = ("${UNSET}", "${EMPTY}", "${UNSET:-}", "${VAR", "${1BAD}", "${VAR:x}", "${A:-${B}}")


def strings(valid: tuple[str, ...], invalid: tuple[str, ...]) -> st.SearchStrategy[str]:
    pieces = st.sampled_from([*valid, *invalid, *_REFERENCES])
    other = st.one_of(pieces, st.lists(pieces, min_size=2, max_size=3).map("".join))
    return mostly(st.sampled_from(valid), other)


queue_urls = strings(
    (
        "redis://127.0.0.1:6379/0",
        "rediss://cache:6380/1",
        "unix:///tmp/redis.sock",
        "${REDIS_URL:-redis://127.0.0.1:6379/2}",
        "${UNSET:-redis://fallback:6379}",
    ),
    ("redis://", "redis://:pw@h:6x79", "http://", "mysql://db", "", "${REDIS_URL}"),
)
rabbitmq_urls = strings(
    ("http://guest:guest@127.0.0.1:15672/%2F", "https://rabbit/vhost"),
    ("redis://r", "http://", "rabbit:15672", "https://${HOST}/x"),
)
http_urls = strings(
    ("http://127.0.0.1:9099/events", "https://hooks.example.com/x", "${HOOK_URL:-http://h/x}"),
    ("127.0.0.1:9090", "http://", "ftp://files", "http://h:9x", "${HOOK_URL}", "http://${HOST}/"),
)
# Stores: files in a directory that exists, or URLs refused before any connection
# (a path in a missing directory, like a database that is down, is found at start).
stores = mostly(
    choose(STORE_FILE, f"sqlite:///{_DIR}/${{EMPTY}}other.sqlite3", "${STORE:-" + STORE_FILE + "}"),
    st.one_of(
        choose(
            "sqlite:///",
            "sqlite:///:memory:",
            "mysql://x/y",
            "postgresql://h:abc/db",
            "postgresql://h/db?nonsense=1",
            "${STORE}",
        ),
        st.tuples(choose("sqlite:///", "", "mysql://"), choose("", *_REFERENCES)).map("".join),
    ),
)
queues = st.builds(
    lambda name, backend, redis_url, rabbitmq_url: {
        "name": name,
        "backend": backend,
        "url": rabbitmq_url if backend == "rabbitmq" else redis_url,
    },
    strings(("default", "mail"), ("", "${EMPTY}")),
    mostly(st.sampled_from(BACKENDS), choose("kafka", "Sidekiq"), 19),
    queue_urls,
    rabbitmq_urls,
)
roles = st.builds(
    lambda policy, qs, router: {
        **policy,
        **({"queues": qs} if qs else {}),
        **({"requests": router} if router else {}),
    },
    policies,
    mostly(st.lists(queues, min_size=1, max_size=2), st.just([])),
    mostly(choose(None, "router"), choose("nginx")),
)
apps = st.builds(
    lambda policy, rs: {**policy, "roles": rs},
    policies,
    st.dictionaries(
        mostly(choose("worker", "web"), choose("Bad Name"), 19), roles, min_size=1, max_size=2
    ),
)
notifiers = st.one_of(
    st.fixed_dictionaries(
        {"type": mostly(choose("webhook", "slack"), choose("email")), "url": http_urls},
        optional={"timeout": mostly(seconds, anything)},
    ),
    st.fixed_dictionaries(
        {"type": st.just("newrelic")},
        optional={
            "url": http_urls,
            "account_id": mostly(choose(12345, "12345", "${NR_ACCOUNT}"), choose("", 1.5)),
            "insert_key": strings(("NRII-key", "${NR_KEY}"), ("",)),
        },
    ),
    st.fixed_dictionaries({"type": choose("webhook", "slack")}),
)
scaler_sections = st.fixed_dictionaries(
    {"store": stores},
    optional={
        "dry_run": mostly(st.booleans(), choose(1.0, "yes")),
        "prometheus_url": http_urls,
        "reconcile_interval": mostly(seconds, anything),
        "stale_after": mostly(seconds, anything),
        "notifiers": st.lists(notifiers, max_size=2),
    },
)
documents = st.fixed_dictionaries(
    {
        "apps": st.dictionaries(
            mostly(choose("shop", "blog"), choose("X!"), 19), apps, min_size=1, max_size=2
        ),
        "scaler": scaler_sections,
    },
    optional={
        "defaults": policies,
        "exporter": st.fixed_dictionaries(
            {},
            optional={
                "source_timeout": mostly(seconds, anything),
                "formation_interval": mostly(seconds, anything),
            },
        ),
    },
)
environments = st.fixed_dictionaries(
    {
        "EMPTY": st.just(""),
        "REDIS_URL": choose("redis://r:6379/1", "http://not-redis", "", "redis://r:6x"),
        "HOST": choose("cache", "", "[::1]", "a b"),
        "HOOK_URL": choose("https://hooks.example.com/T", "", "hooks.example.com"),
        "STORE": choose(STORE_FILE, "", "oracle://x", "sqlite:///"),
        "NR_ACCOUNT": choose("42", ""),
        "NR_KEY": choose("NRII-k", ""),
    }
)


class _Server:
    """What exporter.server.serve returns, without a socket: serve_forever returns at once."""

    server_port = 0

    def serve_forever(self) -> None:
        pass

    def server_close(self) -> None:
        pass


@contextlib.contextmanager
def without_listening() -> Any:
    """Each service runs its whole start but for binding a port and looping."""

    def build_worker_app(server: Any) -> None:
        server.load()  # what each gunicorn worker runs after the fork: create_app(load(...))

    parser = cli.build_parser()  # once: the same commands every time, and faster
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch("dynoscaler.cli.build_parser", return_value=parser))
        stack.enter_context(mock.patch("scaler.serve._Server.run", build_worker_app))
        stack.enter_context(mock.patch("scaler.serve._multiprocess_metrics"))
        stack.enter_context(mock.patch("scaler.reconcile.reconcile_once", return_value=True))
        stack.enter_context(mock.patch("exporter.cli.serve", return_value=_Server()))
        stack.enter_context(mock.patch("signal.signal"))
        yield


def run(argv: list[str]) -> tuple[int, str]:
    """Exit code and stderr of `dynoscaler argv` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, err.getvalue()


def test_check_config_and_the_services_agree():
    outcomes: Counter[int] = Counter()
    path = _DIR / "autoscale.yml"
    base_env = {k: v for k, v in os.environ.items() if k != "HEROKU_API_KEY"}
    base_env |= {"DYNOSCALER_WEBHOOK_TOKEN": "webhook-secret", "DYNOSCALER_DRAIN_TOKEN": "drain"}

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(documents, environments)
    def agree(document: dict[str, Any], environ: dict[str, str]) -> None:
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        with mock.patch.dict(os.environ, {**base_env, **environ}, clear=True):
            check, message = run([*CHECK, str(path)])
            assert check in (0, 2), message
            assert check == 0 or message.startswith(f"dynoscaler: {path}"), message
            for name, argv in SERVICES.items():
                code, error = run([*argv, "--config", str(path)])
                assert code == check, f"check-config {check}, {name} {code}: {error or message}"
        outcomes[check] += 1

    with without_listening():
        agree()
    # Both directions were exercised.
    assert outcomes[0] >= 10, outcomes
    assert outcomes[2] >= 10, outcomes
