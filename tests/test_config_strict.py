"""Settings that would defeat the guardrails are refused by the one check (issue 15, item 2).

Every number finite, counts whole, a value for every string, URLs and the store
the services can open, environment references well formed, a strict YAML reader.
"""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from dynoscaler import config
from dynoscaler.config import ConfigError, NotifierSettings
from scaler.notifiers import Notifiers
from scaler.store import Store

BASE = """
defaults:
  target_deadline: 60
apps:
  shop:
    roles:
      worker:
        max_dynos: 5
        queues:
          - {name: default, backend: sidekiq, url: "redis://127.0.0.1:6379/0"}
      consumer:
        queues:
          - {name: orders, backend: rabbitmq, url: "http://guest:guest@127.0.0.1:15672/%2F"}
exporter:
  source_timeout: 2
scaler:
  store: "sqlite:///decisions.sqlite3"
  prometheus_url: "http://127.0.0.1:9090"
  stale_after: 120
  reconcile_interval: 30
  notifiers:
    - {type: webhook, url: "http://127.0.0.1:9099/events"}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "autoscale.yml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def refused(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    """The ConfigError message for `text`; it starts with the file's name."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        config.load(path, environ or {})
    message = str(raised.value)
    assert message.startswith(f"{path}:"), message
    return message


def test_the_base_settings_load(tmp_path):
    settings = config.load(write(tmp_path, BASE), {})
    assert settings.role("shop", "worker").max_dynos == 5


# -- numbers -------------------------------------------------------------------


@pytest.mark.parametrize("value", [".nan", ".NaN", ".inf", "-.inf"])
@pytest.mark.parametrize(
    ("old", "where"),
    [
        ("stale_after: 120", "scaler.stale_after"),
        ("target_deadline: 60", "defaults.target_deadline"),
        ("max_dynos: 5", "apps.shop.roles.worker.max_dynos"),
        ("source_timeout: 2", "exporter.source_timeout"),
        ("reconcile_interval: 30", "scaler.reconcile_interval"),
    ],
)
def test_non_finite_numbers_are_refused(tmp_path, old, where, value):
    key = old.split(":")[0]
    message = refused(tmp_path, BASE.replace(old, f"{key}: {value}"))
    assert f"{where}: " in message
    assert "is not a finite number" in message


@pytest.mark.parametrize(
    "key", ["cooldown", "miss_ratio", "boot_time", "scale_down_window", "target_deadline"]
)
def test_nan_is_refused_for_every_policy_setting(tmp_path, key):
    text = BASE.replace("        max_dynos: 5\n", f"        max_dynos: 5\n        {key}: .nan\n")
    message = refused(tmp_path, text)
    assert f"apps.shop.roles.worker.{key}: nan is not a finite number" in message


@pytest.mark.parametrize("key", ["max_dynos", "min_dynos", "concurrency", "max_step"])
def test_counts_are_whole_numbers_not_floats(tmp_path, key):
    text = BASE.replace("        max_dynos: 5\n", f"        {key}: 5.0\n")
    message = refused(tmp_path, text)
    assert f"apps.shop.roles.worker.{key}: 5.0 is not a whole number (write 5)" in message


def test_a_loaded_count_is_a_python_int(tmp_path):
    role = config.load(write(tmp_path, BASE), {}).role("shop", "worker")
    assert type(role.max_dynos) is int  # sent to Heroku as {"quantity": 5}, never 5.0


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("stale_after: 120", "stale_after: 1.0e+300", "is greater than the maximum"),
        ("max_dynos: 5", "max_dynos: 1000000000000", "is greater than the maximum"),
        ("stale_after: 120", "stale_after: true", "True is not a number"),
    ],
)
def test_numbers_stay_in_range(tmp_path, old, new, message):
    assert message in refused(tmp_path, BASE.replace(old, new))


# -- what the services open ----------------------------------------------------


@pytest.mark.parametrize(
    "store",
    [
        "mysql://somewhere/db",
        "sqlite://relative.db",
        "sqlite:///",
        "sqlite:///:memory:",
        "postgresql://u:secret@db:port/x",
        "postgresql://db/x?nonsense=1",
    ],
)
def test_a_store_the_scaler_cannot_open_is_refused_by_both(tmp_path, store):
    message = refused(tmp_path, BASE.replace("sqlite:///decisions.sqlite3", store))
    assert "scaler.store: " in message
    assert "secret" not in message
    # scaler.store.Store refuses it with the same check (config.store_problem).
    with pytest.raises(ConfigError, match="scaler.store: "):
        Store(store)


@pytest.mark.parametrize(
    ("notifier", "message"),
    [
        ("{type: slack}", "scaler.notifiers.0: a slack notifier needs a url"),
        ("{type: webhook}", "scaler.notifiers.0: a webhook notifier needs a url"),
        (
            "{type: newrelic, account_id: 1}",
            "scaler.notifiers.0: a newrelic notifier needs account_id and insert_key",
        ),
        ("{type: webhook, url: example.com/x}", "scaler.notifiers.0: url 'example.com/x' is not"),
        ("{type: slack, url: 'https://'}", "scaler.notifiers.0: url 'https://' names no host"),
        (
            "{type: slack, url: 'https://h/x', token: xoxb-1}",
            "scaler.notifiers.0: a slack notifier uploading snapshots needs both token and channel",
        ),
        (
            "{type: webhook, url: 'https://h/x', channel: C1}",
            "scaler.notifiers.0: token, channel and api_url are for slack notifiers, not webhook",
        ),
        (
            "{type: slack, url: 'https://h/x', token: t, channel: C1, api_url: slack.com}",
            "scaler.notifiers.0: api_url 'slack.com' is not",
        ),
    ],
)
def test_a_notifier_that_cannot_send_is_refused_by_both(tmp_path, notifier, message):
    text = BASE.replace('{type: webhook, url: "http://127.0.0.1:9099/events"}', notifier)
    assert message in refused(tmp_path, text)
    # The scaler's Notifiers refuse the same settings with the same check.
    fields = {k: str(v) for k, v in yaml.safe_load(notifier).items()}
    problem = message.split(": ", 1)[1]
    with pytest.raises(ConfigError, match=re.escape(f"scaler.notifiers: {problem}")):
        Notifiers((NotifierSettings(**fields),))


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("redis://127.0.0.1:6379/0", "http://127.0.0.1:6379", "queues.0.url: 'http://"),
        ("redis://127.0.0.1:6379/0", "redis://:pw@cache:63x9", "queues.0.url: 'redis://:***@"),
        ("redis://127.0.0.1:6379/0", "redis://", "queues.0.url: 'redis://' names no host"),
        ("http://guest:guest@127.0.0.1:15672/%2F", "redis://r", "roles.consumer.queues.0.url:"),
        ("http://127.0.0.1:9090", "127.0.0.1:9090", "scaler.prometheus_url: '127.0.0.1:9090'"),
        ("http://127.0.0.1:9090", "http://[::1", "scaler.prometheus_url: 'http://[::1'"),
    ],
)
def test_invalid_urls_are_refused(tmp_path, old, new, where):
    message = refused(tmp_path, BASE.replace(old, new))
    assert where in message
    assert ":pw@" not in message


# -- environment references ----------------------------------------------------


@pytest.mark.parametrize("reference", ["${REDIS", "${1BAD}", "${REDIS:x}", "${A:-${B}}", "${}"])
def test_malformed_references_are_refused_not_kept_literally(tmp_path, reference):
    text = BASE.replace("redis://127.0.0.1:6379/0", reference)
    message = refused(tmp_path, text, {"REDIS": "redis://r", "A": "redis://a", "B": "x"})
    assert "apps.shop.roles.worker.queues.0.url: malformed environment reference" in message


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("redis://127.0.0.1:6379/0", "${EMPTY}", "apps.shop.roles.worker.queues.0.url"),
        ("name: default", 'name: "${EMPTY}"', "apps.shop.roles.worker.queues.0.name"),
        ("sqlite:///decisions.sqlite3", "${EMPTY}", "scaler.store"),
        ("http://127.0.0.1:9090", "${EMPTY}", "scaler.prometheus_url"),
        ("http://127.0.0.1:9099/events", "${EMPTY}", "scaler.notifiers.0"),
    ],
)
def test_a_variable_expanding_to_nothing_where_a_value_is_required(tmp_path, old, new, where):
    message = refused(tmp_path, BASE.replace(old, new), {"EMPTY": ""})
    assert f"{where}" in message
    assert "environment variable EMPTY is empty" in message


def test_an_empty_fallback_is_named_too(tmp_path):
    text = BASE.replace("sqlite:///decisions.sqlite3", "sqlite:///${DB_PATH:-}")
    message = refused(tmp_path, text)
    assert "scaler.store: 'sqlite:///' names no file" in message
    assert "DB_PATH is not set and its fallback is empty" in message


def test_a_part_of_a_url_expanding_to_nothing_names_the_variable(tmp_path):
    text = BASE.replace("redis://127.0.0.1:6379/0", "redis://${HOST}:6379/0")
    message = refused(tmp_path, text, {"HOST": ""})
    assert "queues.0.url: 'redis://:6379/0' names no host" in message
    assert "environment variable HOST is empty" in message


def test_urls_are_checked_after_expansion(tmp_path):
    text = BASE.replace("redis://127.0.0.1:6379/0", "${REDIS_URL}")
    message = refused(tmp_path, text, {"REDIS_URL": "http://not-redis"})
    assert "queues.0.url: 'http://not-redis' is not a Redis URL" in message
    assert "from ${REDIS_URL}" in message
    assert config.load(write(tmp_path, text), {"REDIS_URL": "redis://r:1/2"})


@pytest.mark.parametrize("backend", ["celery", "dramatiq"])
def test_the_amqp_url_of_a_rabbitmq_broker_points_at_the_management_api(tmp_path, backend):
    entry = f"{{name: default, backend: {backend}, url: 'amqp://guest:secret@mq:5672/'}}"
    text = BASE.replace('{name: default, backend: sidekiq, url: "redis://127.0.0.1:6379/0"}', entry)
    message = refused(tmp_path, text)
    assert (
        f"queues.0.url: 'amqp://guest:***@mq:5672/' is the broker's AMQP URL: {backend} on "
        "RabbitMQ is read through the management API" in message
    )
    assert "secret" not in message


def test_a_dollar_sign_without_a_brace_stays_literal(tmp_path):
    text = BASE.replace("guest:guest@", "guest:pa$$word@")
    settings = config.load(write(tmp_path, text), {})
    assert "pa$$word" in settings.role("shop", "consumer").queues[0].url


# -- reading the file ----------------------------------------------------------


def test_duplicate_keys_are_refused_with_their_line(tmp_path):
    text = BASE.replace("        max_dynos: 5\n", "        max_dynos: 5\n        max_dynos: 50\n")
    message = refused(tmp_path, text)
    assert ":9:9: not valid YAML: duplicate key 'max_dynos' (first at line 8)" in message


def test_merge_keys_still_override(tmp_path):
    merged = "      worker:\n        <<: {max_dynos: 3, min_dynos: 1}\n"
    text = BASE.replace("      worker:\n", merged)
    role = config.load(write(tmp_path, text), {}).role("shop", "worker")
    assert (role.min_dynos, role.max_dynos) == (1, 5)


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "autoscale.yml"
    path.write_bytes(b"apps:\n  shop: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"autoscale.yml:2:12: not UTF-8 text \(byte 0xe9\)"):
        config.load(path, {})


def alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{aliases}]")
    # Under a key the schema reads: validating it, or its error message, expands it all.
    lines.append(f"apps: {{shop: {{roles: *a{levels}}}}}")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_quickly_with_a_short_message(tmp_path):
    started = time.monotonic()
    message = refused(tmp_path, alias_bomb())
    assert time.monotonic() - started < 2
    assert "aliases expand the document past" in message
    assert len(message) < 300


def test_an_alias_referring_to_itself_is_refused(tmp_path):
    assert "an alias refers to a value that contains it" in refused(tmp_path, "a: &a [*a]\n")


def test_a_few_aliases_are_fine(tmp_path):
    text = BASE.replace(
        '{name: default, backend: sidekiq, url: "redis://127.0.0.1:6379/0"}',
        '&queue {name: default, backend: sidekiq, url: "redis://127.0.0.1:6379/0"}',
    ).replace("      consumer:\n", "      other:\n        queues: [*queue]\n      consumer:\n")
    assert config.load(write(tmp_path, text), {}).role("shop", "other").queues


def test_names_must_be_text(tmp_path):
    text = BASE.replace("      consumer:", "      on:")
    assert "apps.shop.roles: name True is not text (quote it)" in refused(tmp_path, text)


# -- queue key prefixes ----------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "url", "prefix"),
    [
        ("rq", "redis://127.0.0.1:6379/0", "shop-rq"),  # RQ_KEY_PREFIX
        ("resque", "redis://127.0.0.1:6379/0", "resque:shop"),  # the Resque namespace
        ("celery", "redis://127.0.0.1:6379/0", "shop:"),  # kombu's global_keyprefix
        ("bullmq", "redis://127.0.0.1:6379/0", "shop-bull"),  # BullMQ's prefix option
        ("dramatiq", "redis://127.0.0.1:6379/0", "shop-dq"),  # the RedisBroker's namespace
    ],
)
def test_a_queue_prefix_is_read_where_the_backend_has_one(tmp_path, backend, url, prefix):
    entry = f"{{name: default, backend: {backend}, url: {url!r}, prefix: {prefix!r}}}"
    text = BASE.replace('{name: default, backend: sidekiq, url: "redis://127.0.0.1:6379/0"}', entry)
    (queue,) = config.load(write(tmp_path, text), {}).role("shop", "worker").queues
    assert (queue.backend, queue.prefix) == (backend, prefix)


@pytest.mark.parametrize(
    ("backend", "url", "said"),
    [
        ("sidekiq", "redis://127.0.0.1:6379/0", "sidekiq"),
        ("redis_list", "redis://127.0.0.1:6379/0", "redis_list"),
        ("rabbitmq", "http://guest:guest@127.0.0.1:15672/%2F", "rabbitmq"),
        ("celery", "http://guest:guest@127.0.0.1:15672/%2F", "celery on RabbitMQ"),
        ("dramatiq", "http://guest:guest@127.0.0.1:15672/%2F", "dramatiq on RabbitMQ"),
    ],
)
def test_a_queue_prefix_is_refused_where_it_means_nothing(tmp_path, backend, url, said):
    entry = f"{{name: default, backend: {backend}, url: {url!r}, prefix: shop}}"
    text = BASE.replace('{name: default, backend: sidekiq, url: "redis://127.0.0.1:6379/0"}', entry)
    message = refused(tmp_path, text)
    assert (
        f"apps.shop.roles.worker.queues.0.prefix: a key prefix means nothing for {said}" in message
    )


def test_an_empty_queue_prefix_is_refused(tmp_path):
    entry = '{name: default, backend: rq, url: "redis://127.0.0.1:6379/0", prefix: ""}'
    text = BASE.replace('{name: default, backend: sidekiq, url: "redis://127.0.0.1:6379/0"}', entry)
    assert "queues.0.prefix" in refused(tmp_path, text)
