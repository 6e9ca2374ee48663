"""Settings: inheritance, environment references, and every kind of error."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dynoscaler import config
from dynoscaler.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent

VALID = """
defaults:
  max_dynos: 8
  target_deadline: 60
apps:
  shop:
    max_dynos: 25
    roles:
      worker:
        concurrency: 10
        queues:
          - {name: default, backend: sidekiq, url: "${REDIS_URL}"}
      web:
        min_dynos: 2
        requests: router
  blog:
    roles:
      worker:
        queues:
          - {name: mail, backend: rq, url: "${BLOG_REDIS:-redis://127.0.0.1:6379/9}"}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "autoscale.yml"
    path.write_text(textwrap.dedent(text))
    return path


def load_text(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> config.Config:
    return config.load(write(tmp_path, text), environ or {"REDIS_URL": "redis://r:6379/0"})


def test_settings_inherit_defaults_then_app_then_role(tmp_path):
    settings = load_text(tmp_path, VALID)
    worker = settings.role("shop", "worker")
    web = settings.role("shop", "web")
    blog = settings.role("blog", "worker")
    assert (worker.max_dynos, worker.concurrency, worker.min_dynos) == (25, 10, 0)
    assert (web.min_dynos, web.max_dynos, web.requests) == (2, 25, "router")
    assert (blog.max_dynos, blog.concurrency, blog.target_deadline) == (8, 1, 60)
    assert blog.boot_time == config.BUILTIN_DEFAULTS["boot_time"]
    assert settings.apps == ("shop", "blog")


def test_scale_down_window_and_cooldown_default_to_the_roles_boot_time(tmp_path):
    text = VALID.replace(
        "        concurrency: 10\n", "        concurrency: 10\n        boot_time: 20\n"
    )
    text = text.replace(
        "        min_dynos: 2\n",
        "        min_dynos: 2\n        scale_down_window: 300\n        cooldown: 90\n",
    )
    settings = load_text(tmp_path, text)
    worker, web = settings.role("shop", "worker"), settings.role("shop", "web")
    blog = settings.role("blog", "worker")
    assert (worker.scale_down_window, worker.cooldown) == (20, 20)
    assert (web.scale_down_window, web.cooldown) == (300, 90)
    default_boot = config.BUILTIN_DEFAULTS["boot_time"]
    assert (blog.scale_down_window, blog.cooldown) == (default_boot, default_boot)


def test_environment_references_and_fallbacks_are_expanded(tmp_path):
    settings = load_text(tmp_path, VALID)
    assert settings.role("shop", "worker").queues[0].url == "redis://r:6379/0"
    assert settings.role("blog", "worker").queues[0].url == "redis://127.0.0.1:6379/9"


def test_example_file_is_valid():
    settings = config.load(ROOT / "autoscale.example.yml", {})
    assert len(settings.roles) == 6
    assert settings.scaler.notifiers[0].type == "webhook"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("max_dynos: 25", "max_dynos: -1"),
            "apps.shop.max_dynos: -1 is less than the minimum of 0",
        ),
        (
            ("min_dynos: 2", "min_dynos: 30"),
            "apps.shop.roles.web: min_dynos (30) is above max_dynos",
        ),
        (("concurrency: 10", "concurency: 10"), "apps.shop.roles.worker: unknown key 'concurency'"),
        (
            ("backend: sidekiq", "backend: kafka"),
            "queues.0.backend: 'kafka' is not one of: sidekiq",
        ),
        (("target_deadline: 60", "target_deadline: 0"), "defaults.target_deadline: 0 is less than"),
        (("concurrency: 10", "concurrency: 2.5"), "apps.shop.roles.worker.concurrency: 2.5 is not"),
        (("requests: router", "requests: nginx"), "apps.shop.roles.web.requests: 'nginx'"),
        (("      web:", "      Web!:"), "apps.shop.roles: 'Web!' is not a valid name"),
    ],
)
def test_errors_name_the_file_the_path_and_the_problem(tmp_path, change, message):
    old, new = change
    assert old in VALID
    with pytest.raises(ConfigError) as raised:
        load_text(tmp_path, VALID.replace(old, new, 1))
    assert str(raised.value).startswith(str(tmp_path / "autoscale.yml"))
    assert message in str(raised.value)


def test_unset_environment_variable_is_an_error(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"apps\.shop\.roles\.worker\.queues\.0\.url: "
        r"environment variable REDIS_URL is not set",
    ):
        config.load(write(tmp_path, VALID), {})


def test_role_without_anything_to_scale_on_is_an_error(tmp_path):
    text = "apps:\n  shop:\n    roles:\n      worker: {concurrency: 2}\n"
    with pytest.raises(
        ConfigError, match="apps.shop.roles.worker: needs queues, requests: router or middleware"
    ):
        load_text(tmp_path, text)


def test_duplicate_queue_is_an_error(tmp_path):
    queue = '{name: a, backend: redis_list, url: "redis://x"}'
    text = f"apps:\n  shop:\n    roles:\n      worker:\n        queues: [{queue}, {queue}]\n"
    with pytest.raises(ConfigError, match="queue 'a' is listed twice"):
        load_text(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("apps: [unclosed", ":1:"),
        ("defaults: {}\n", "(top level): 'apps' is a required property"),
        ("apps: {}\nextra: 1\n", "unknown key 'extra'"),
    ],
)
def test_malformed_files(tmp_path, text, message):
    with pytest.raises(ConfigError) as raised:
        load_text(tmp_path, text)
    assert message in str(raised.value)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynoscaler", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        timeout=60,
    )


def test_check_config_prints_resolved_settings_and_redacts_passwords(tmp_path):
    text = VALID.replace("${REDIS_URL}", "redis://:hunter2@cache:6379/0")
    result = run_cli("check-config", str(write(tmp_path, text)))
    assert result.returncode == 0, result.stderr
    assert "OK, 3 role(s) in 2 app(s)" in result.stdout
    assert "shop/worker: min_dynos=0, max_dynos=25, target_deadline=60" in result.stdout
    assert "redis://:***@cache:6379/0" in result.stdout
    assert "hunter2" not in result.stdout


def test_check_config_prints_a_queue_s_key_prefix(tmp_path):
    text = VALID.replace("${REDIS_URL}", "redis://cache:6379/0").replace(
        '{name: mail, backend: rq, url: "${BLOG_REDIS:-redis://127.0.0.1:6379/9}"}',
        '{name: mail, backend: bullmq, url: "redis://127.0.0.1:6379/9", prefix: blog-bull}',
    )
    result = run_cli("check-config", str(write(tmp_path, text)))
    assert result.returncode == 0, result.stderr
    assert "queue mail (bullmq, prefix blog-bull) at redis://127.0.0.1:6379/9" in result.stdout


@pytest.mark.parametrize(
    "text",
    [VALID.replace("max_dynos: 25", "max_dynos: many"), "apps: [unclosed", VALID],
)
def test_check_config_exits_2_without_traceback(tmp_path, text):
    # VALID fails here too: REDIS_URL is not in the child's environment.
    result = run_cli("check-config", str(write(tmp_path, text)))
    assert result.returncode == 2
    assert result.stderr.startswith("dynoscaler: ")
    assert "Traceback" not in result.stderr


def test_check_config_on_a_missing_file(tmp_path):
    result = run_cli("check-config", str(tmp_path / "nope.yml"))
    assert result.returncode == 2
    assert "nope.yml: cannot read: No such file or directory" in result.stderr


ALIAS_BOMB = "\n".join(
    ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 10)]
    + ["apps: {shop: {roles: *a9}}"]
)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"apps:\n  shop: caf\xe9\n", "autoscale.yml:2:12: not UTF-8 text (byte 0xe9)"),
        (ALIAS_BOMB.encode(), "aliases expand the document past 100000 values"),
    ],
    ids=["latin-1", "alias-bomb"],
)
def test_check_config_refuses_unreadable_files_quickly_without_traceback(
    tmp_path, content, message
):
    path = tmp_path / "autoscale.yml"
    path.write_bytes(content)
    started = time.monotonic()
    result = run_cli("check-config", str(path))
    assert time.monotonic() - started < 10
    assert result.returncode == 2
    assert result.stderr.startswith("dynoscaler: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr) < 500
