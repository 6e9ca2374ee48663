"""`dynoscaler init` against the fake Heroku (real HTTP), real Redis (DB 15) and RabbitMQ."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pymysql
import pytest
import redis
import requests
import yaml
from dotenv import dotenv_values
from exporter_helpers import flushed_redis
from scaler_support import PG_ADMIN

from dynoscaler import cli, config, heroku
from dynoscaler.init import (
    MANAGEMENT_SED,
    AppFound,
    Process,
    Source,
    discover,
    listed_queues,
    management_url,
    rabbitmq_queues,
    redis_queues,
    render,
    sql_queues,
    write_env_file,
)
from dynoscaler.processes import free_port, stop, wait_until_answering
from exporter.sql_libraries import create
from scaler.fake_heroku import FakeHeroku, FakeHerokuServer

pytestmark = pytest.mark.timeout(120)
KEY = "init-key-0123"
REDIS_URL = "redis://127.0.0.1:6379/15"
RABBITMQ_API = "http://guest:guest@127.0.0.1:15672"
# The account: what the fake Heroku serves (its formations start at min_dynos).
ACCOUNT = """
apps:
  shop:
    roles:
      worker: {min_dynos: 3, queues: [{name: x, backend: sidekiq, url: "redis://h/0"}]}
  front:
    roles:
      web: {min_dynos: 2, requests: router}
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHerokuServer]:
    (tmp_path / "account.yml").write_text(ACCOUNT)
    account = config.load(tmp_path / "account.yml")
    server = FakeHerokuServer(FakeHeroku(account, KEY), access_log=False).start()
    monkeypatch.setenv("HEROKU_API_URL", server.url)
    monkeypatch.setenv("HEROKU_API_KEY", KEY)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def db15() -> Iterator[redis.Redis]:
    yield from flushed_redis(REDIS_URL)


def init(*args: str) -> int:
    return cli.main(["init", *args])


def test_from_an_account_to_a_dry_run_scaler_in_three_commands(fake, db15, tmp_path):
    """The issue's goal: two apps (a Sidekiq worker, a web role) to a serving dry-run scaler,
    the user's three commands run as written in a git checkout, with only the Heroku key
    (and the fake's address) in the environment: init's .env holds the rest."""
    db15.sadd("queues", "default", "mailers")
    db15.lpush("queue:default", '{"class": "Mail", "enqueued_at": 1}')
    redis_url = "redis://default:s3cret-pw@127.0.0.1:6379/15"  # a password (nopass: accepted)
    shop = heroku.client().app("shop")
    shop.update_config({"REDIS_URL": redis_url, "SIDEKIQ_CONCURRENCY": "8", "SECRET": "s3cret"})
    heroku.client().app("front").update_config({"WEB_CONCURRENCY": "3"})
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DYNOSCALER_", "SHOP_"))},
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    dynoscaler = [sys.executable, "-m", "dynoscaler"]

    def command(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*dynoscaler, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )

    started = time.monotonic()
    first = command("init", "--app", "shop", "--app", "front")
    assert first.returncode == 0, first.stderr
    second = command("check-config", "autoscale.yml")
    assert second.returncode == 0, second.stderr
    port = free_port()
    serve = [*dynoscaler, "scaler", "serve", "--config", "autoscale.yml", "--port", str(port)]
    third = subprocess.Popen(serve, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL)
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/healthz", third, timeout=60)
        answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()
    finally:
        stop(third)
    elapsed = time.monotonic() - started
    print(f"init, check-config, scaler serve answering /healthz: {elapsed:.1f} s")
    assert answer["heroku"] == "dry run"
    assert elapsed < 600

    text, env_file = (tmp_path / "autoscale.yml").read_text(), tmp_path / ".env"
    for output in (text, first.stderr, second.stdout, second.stderr):
        assert "s3cret" not in output  # no password, no other config var: never printed
    assert f"wrote {env_file} (mode 0600, values not shown): SHOP_REDIS_URL, " in first.stderr
    assert env_file.stat().st_mode & 0o777 == 0o600
    values = dotenv_values(env_file)
    assert values["SHOP_REDIS_URL"] == redis_url
    assert len(values["DYNOSCALER_WEBHOOK_TOKEN"]) == 64  # generated: none was set
    ignored = subprocess.run(["git", "-C", str(tmp_path), "check-ignore", "-q", ".env"])
    assert ignored.returncode == 0 and "added to .gitignore" in first.stderr
    written_urls = [
        q["url"]
        for r in yaml.safe_load(text)["apps"]["shop"]["roles"].values()
        for q in r.get("queues", [])
    ]
    assert written_urls == ["${SHOP_REDIS_URL}"] * 2  # references, never values
    settings = config.load(tmp_path / "autoscale.yml", {})  # from the .env alone
    worker, web = settings.role("shop", "worker"), settings.role("front", "web")
    assert (worker.min_dynos, worker.max_dynos, worker.concurrency) == (1, 6, 8)
    assert {(q.name, q.backend, q.url) for q in worker.queues} == {
        ("default", "sidekiq", redis_url),
        ("mailers", "sidekiq", redis_url),
    }
    assert (web.min_dynos, web.max_dynos, web.concurrency, web.requests) == (1, 4, 3, "router")
    assert settings.scaler.dry_run is True
    assert "guessed: the only worker role works every queue found" in text
    # the process environment wins over the .env (on Heroku, the real config vars)
    elsewhere = "redis://127.0.0.1:6379/14"
    settings = config.load(tmp_path / "autoscale.yml", {"SHOP_REDIS_URL": elsewhere})
    assert {q.url for q in settings.role("shop", "worker").queues} == {elsewhere}


def test_every_redis_library_is_found_with_its_backend(db15):
    db15.sadd("queues", "critical")
    db15.sadd("resque:queues", "twilio")
    db15.sadd("rq:queues", "rq:queue:reports")
    separator = "\x06\x16"
    db15.sadd("_kombu.binding.celery", separator.join(["celery", "", "celery"]))
    db15.sadd("_kombu.binding.celery.pidbox", separator.join(["", "", "abc.celery.pidbox"]))
    db15.hset("bull:emails:meta", "opts.maxLenEvents", 10000)
    db15.hset("dramatiq:default.msgs", "id", "{}")
    db15.hset("dramatiq:default.DQ.msgs", "id", "{}")
    assert redis_queues(REDIS_URL) == [
        ("emails", "bullmq"),
        ("celery", "celery"),
        ("default", "dramatiq"),
        ("twilio", "resque"),
        ("reports", "rq"),
        ("critical", "sidekiq"),
    ]


def test_rabbitmq_queues_by_library_through_the_management_api():
    vhost = f"dynoscaler-init-{uuid.uuid4().hex[:8]}"
    api = requests.Session()
    api.auth = ("guest", "guest")
    api.put(f"{RABBITMQ_API}/api/vhosts/{vhost}", timeout=10).raise_for_status()
    api.put(
        f"{RABBITMQ_API}/api/permissions/{vhost}/guest",
        json={"configure": ".*", "write": ".*", "read": ".*"},
        timeout=10,
    ).raise_for_status()
    try:
        for name in ("orders", "mail", "mail.DQ", "mail.XQ"):
            api.put(f"{RABBITMQ_API}/api/queues/{vhost}/{name}", json={}, timeout=10)
        url = management_url(f"amqp://guest:guest@127.0.0.1:5672/{vhost}")
        assert url == f"http://guest:guest@127.0.0.1:15672/{vhost}"
        assert rabbitmq_queues(url) == [("mail", "dramatiq"), ("orders", "rabbitmq")]
    finally:
        api.delete(f"{RABBITMQ_API}/api/vhosts/{vhost}", timeout=10)
    assert (
        management_url("amqps://u:p@rabbit.cloudamqp.com/vh")
        == "https://u:p@rabbit.cloudamqp.com/vh"
    )
    for amqp in ("amqps://u:p@rabbit.cloudamqp.com:5671/vh", "amqp://u:p@10.0.0.5:5672/vh"):
        # the export init prints turns the config var into the same URL
        sed = subprocess.run(
            ["sed", "-E", MANAGEMENT_SED], input=amqp, text=True, capture_output=True, check=True
        )
        assert sed.stdout.strip() == management_url(amqp)


def test_an_unreachable_redis_is_a_placeholder_and_the_web_role_stays(fake, tmp_path, capsys):
    heroku.client().app("shop").update_config({"REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"})
    written = tmp_path / "out.yml"
    assert init("--app", "shop", "--app", "front", "-o", str(written)) == 0
    text = written.read_text()
    assert "# REDIS_URL: could not read redis://127.0.0.1:1/0" in text
    assert "hunter2" not in text
    # a role with nothing to scale on is written commented out
    assert "      # worker:  # standard-1X" in text
    settings = config.load(written, {**os.environ, "SHOP_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert [r.key for r in settings.roles] == [("front", "web")]
    capsys.readouterr()
    # alone, the worker app has nothing to scale on: a one-line error, no file
    assert init("--app", "shop", "-o", str(tmp_path / "none.yml")) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("dynoscaler: nothing to scale in shop") and "\n" not in error
    assert not (tmp_path / "none.yml").exists()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--app", "nope"], {}, "--app nope: no such app on this account (404)"),
        (["--app", "shop"], {"HEROKU_API_KEY": "wrong"}, "Heroku refused the key (401)"),
        (["--app", "Shop!"], {}, "--app 'Shop!': not a Heroku app name"),
        (["--app", "shop"], {"HEROKU_API_URL": "http://127.0.0.1:1"}, "cannot reach the Heroku"),
        (["--app", "shop", "--scale-to-zero", "front/web"], {}, "not APP/ROLE of an --app"),
    ],
)
def test_bad_apps_keys_and_addresses_are_one_line_errors(
    fake, tmp_path, capsys, monkeypatch, args, env, message
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert init(*args, "-o", str(tmp_path / "out.yml")) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error and "Traceback" not in error


def test_403_and_an_existing_file(fake, tmp_path, capsys):
    requests.post(f"{fake.url}/__fake__/faults", json={"status": 403}, timeout=5)
    assert init("--app", "shop", "-o", str(tmp_path / "out.yml")) == 2
    assert "the key may not read this app (403)" in capsys.readouterr().err
    (tmp_path / "out.yml").write_text("mine")
    assert init("--app", "front", "-o", str(tmp_path / "out.yml")) == 2
    assert "exists: give --force" in capsys.readouterr().err
    assert (tmp_path / "out.yml").read_text() == "mine"
    assert init("--app", "front", "-o", str(tmp_path / "out.yml"), "--force") == 0
    front = yaml.safe_load((tmp_path / "out.yml").read_text())["apps"]["front"]
    assert front["roles"]["web"]["requests"] == "router"


def test_sql_libraries_queues_from_their_tables(tmp_path):
    database = f"dynoscaler_init_test_{os.getpid()}"
    postgres_url = f"postgres://postgres@127.0.0.1:5432/{database}"
    mariadb_url = f"mysql2://root@127.0.0.1:3306/{database}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {database}")
        mariadb = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
        try:
            with psycopg.connect(postgres_url, autocommit=True) as connection:
                create(connection.cursor(), "good_job", "postgresql")
                create(connection.cursor(), "que", "postgresql")
                connection.execute(
                    "INSERT INTO good_jobs (queue_name, created_at, updated_at) VALUES "
                    "('reports', now(), now()), ('reports', now(), now()), ('mail', now(), now())"
                )
                connection.execute(
                    "INSERT INTO que_jobs (job_class, queue, job_schema_version) "
                    "VALUES ('Ping', 'pings', 2)"
                )
            assert sql_queues(postgres_url) == [
                ("mail", "good_job"),
                ("reports", "good_job"),
                ("pings", "que"),
            ]
            cursor = mariadb.cursor()
            cursor.execute(f"DROP DATABASE IF EXISTS {database}")
            cursor.execute(f"CREATE DATABASE {database}")
            mariadb.select_db(database)
            create(cursor, "delayed_job", "mysql")
            cursor.execute(
                "INSERT INTO delayed_jobs (handler, queue) VALUES ('h', 'imports'), ('h', NULL)"
            )
            assert sql_queues(mariadb_url) == [("imports", "delayed_job")]
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            mariadb.cursor().execute(f"DROP DATABASE IF EXISTS {database}")
            mariadb.close()


def test_roles_get_their_library_queues_sizes_and_marked_zero():
    assert listed_queues("celery -A app worker -Q mail,reports") == {"mail", "reports"}
    assert listed_queues("QUEUE=twilio,sms rake resque:work") == {"twilio", "sms"}
    assert listed_queues("bundle exec sidekiq --queue=default") == {"default"}
    app = AppFound(
        "shop",
        [
            Process("jobs", 2, "standard-2X", "bundle exec sidekiq -C config/sidekiq.yml"),
            Process("urgent", 1, "standard-2X", "bundle exec sidekiq -q critical,2 -c 4"),
            Process("reports", 0, "standard-1X", "rq worker reports"),
            Process("web", 1, "Basic", "bundle exec puma"),
        ],
        {"RAILS_MAX_THREADS": "5", "WEB_CONCURRENCY": "2"},
    )
    source = Source("REDIS_URL", "REDIS_URL", "redis", REDIS_URL)
    source.queues = [("reports", "rq"), ("critical", "sidekiq"), ("default", "sidekiq")]
    app.sources = [source]
    text = render([app], {"shop/jobs"})
    settings = config.parse(yaml.safe_load(text), "t.yml", {"REDIS_URL": REDIS_URL})
    jobs, reports, web = (settings.role("shop", r) for r in ("jobs", "reports", "web"))
    assert [q.name for q in jobs.queues] == ["default"]
    assert [q.name for q in reports.queues] == ["reports"]
    assert [q.name for q in settings.role("shop", "urgent").queues] == ["critical"]
    assert (jobs.min_dynos, jobs.max_dynos, jobs.concurrency) == (0, 4, 5)  # marked
    assert (reports.min_dynos, reports.max_dynos) == (0, 1)  # at 0 today
    assert (web.min_dynos, web.max_dynos, web.concurrency) == (1, 1, 10)  # basic: one dyno
    assert "Basic dynos run one per process type" in text


def test_a_self_signed_redis_certificate_gets_herokus_remedy(tmp_path):
    """Heroku Redis' TLS certificates are self-signed: the placeholder names the fix."""
    key, certificate = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key),
         "-out", str(certificate), "-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--tls-cert-file",
         str(certificate), "--tls-key-file", str(key), "--tls-ca-cert-file", str(certificate),
         "--tls-auth-clients", "no", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"rediss://127.0.0.1:{port}"
        source = Source("REDIS_URL", "REDIS_URL", "redis", url)
        for _ in range(50):
            discover(source)
            if "CERTIFICATE_VERIFY_FAILED" in (source.problem or ""):
                break
            time.sleep(0.1)  # not listening yet
        assert source.problem.endswith('(self-signed: url "${REDIS_URL}?ssl_cert_reqs=none")')
        fixed = f"{url}?ssl_cert_reqs=none"
        assert redis_queues(fixed) == []  # the remedy reads the server
        assert config.queue_url_problem("sidekiq", fixed) is None
    finally:
        stop(server)


def test_the_env_file_keeps_a_token_already_set_and_names_no_value(tmp_path, monkeypatch):
    monkeypatch.delenv("DYNOSCALER_WEBHOOK_TOKEN", raising=False)
    app = AppFound("shop", [Process("worker", 1, "standard-1X", "sidekiq")], {})
    app.sources = [Source("REDIS_URL", "REDIS_URL", "redis", "redis://:pw1@10.1.2.3:6379")]
    amqp = Source("CLOUDAMQP_URL", "CLOUDAMQP_URL", "rabbitmq", "amqps://u:pw2@r.example/vh")
    app.sources.append(amqp)
    env_file = tmp_path / ".env"
    env_file.write_text("DYNOSCALER_WEBHOOK_TOKEN='mine'\n")
    said = write_env_file(str(env_file), [app])
    assert said == f"wrote {env_file} (mode 0600, values not shown): REDIS_URL, CLOUDAMQP_API_URL"
    assert dotenv_values(env_file) == {
        "DYNOSCALER_WEBHOOK_TOKEN": "mine",  # the user's, kept
        "REDIS_URL": "redis://:pw1@10.1.2.3:6379",
        "CLOUDAMQP_API_URL": "https://u:pw2@r.example/vh",  # the management API's URL
    }
    monkeypatch.setenv("DYNOSCALER_WEBHOOK_TOKEN", "from-the-environment")
    env_file.unlink()
    write_env_file(str(env_file), [app])
    assert "DYNOSCALER_WEBHOOK_TOKEN" not in dotenv_values(env_file)  # the environment has one
