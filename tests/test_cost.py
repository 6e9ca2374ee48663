"""dynoscaler cost: dyno-hours and money from the decision log and a real Prometheus.

Prometheus runs on two hours of series backfilled with promtool (the exporter's
dynoscaler_dynos and size, the rules' recorded completions, ages and S), so the
command's queries run as they would on a live one.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from history_support import prometheus_on

from dynoscaler import cost
from dynoscaler.config import ConfigError
from dynoscaler.cost import dyno_seconds
from dynoscaler.prices import HOURLY
from dynoscaler.processes import free_port
from scaler.store import Decision, Store

HOUR = 3600


def run_cost(*argv: str) -> int:
    """The command's own parser and run (cli.main turns a ConfigError into exit 2)."""
    parser = argparse.ArgumentParser()
    cost.add_arguments(parser)
    return cost.run(parser.parse_args(argv))


def record(at: float, from_count: int | None, to_count: int | None, outcome: str) -> dict:
    return {"time": at, "from_count": from_count, "to_count": to_count, "outcome": outcome}


def test_dyno_seconds_follow_the_confirmed_counts():
    records = [
        record(50, 1, 3, "success"),  # before the period: 3 at its start
        record(200, 3, 5, "failure"),  # Heroku did not confirm: still 3
        record(300, 3, 6, "success"),
        record(400, 6, None, "none"),
    ]
    assert dyno_seconds(records, 100, 500) == (3 * 200 + 6 * 200, 400)
    assert dyno_seconds(records[2:], 100, 500) == (6 * 200, 200)  # known from 300 on
    assert dyno_seconds([], 100, 500) == (0, 0)


def openmetrics(end: float) -> str:
    """Two hours to `end`, a sample a minute: 2 dynos, then 4; one job a second of 20 s;
    the oldest job 100 s old (past the 60 s deadline) for the last half hour. The
    mailer's workers report enqueue-to-done times: 57 of 60 jobs a minute in time."""
    role = 'app="shop",role="worker"'
    mailer = 'app="shop",role="mailer",queue="m"'
    start = int(end) - 2 * HOUR
    minutes = range(start, int(end) + 1, 60)
    families = {
        f"dynoscaler_dynos{{{role}}}": lambda at: 2 if at < end - HOUR else 4,
        f'dynoscaler_dyno_size_info{{{role},size="Standard-2X"}}': lambda at: 1,
        f"dynoscaler_dyno_hourly_price_dollars{{{role}}}": lambda at: HOURLY["standard-2x"],
        f"app_role:dynoscaler_completions:rate1m{{{role}}}": lambda at: 1,
        f"app_role:dynoscaler_processing_seconds{{{role}}}": lambda at: 20,
        f"app_role:dynoscaler_queue_oldest_age_seconds{{{role}}}": (
            lambda at: 100 if at >= end - HOUR / 2 else 5
        ),
        f"app_role:dynoscaler_policy_target_deadline_seconds{{{role}}}": lambda at: 60,
        f"dynoscaler_job_total_seconds_count{{{mailer}}}": lambda at: (at - start) // 60 * 60,
        f"dynoscaler_jobs_within_deadline_total{{{mailer}}}": lambda at: (at - start) // 60 * 57,
    }
    lines = []
    for series, value in families.items():
        lines.append(f"# TYPE {series.split('{')[0]} gauge")
        lines += [f"{series} {value(at)} {at}" for at in minutes]
    return "\n".join([*lines, "# EOF"]) + "\n"


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, float]]:
    end = time.time() - 60
    with prometheus_on(tmp_path, openmetrics(end)) as url:
        yield url, end


def settings(tmp_path: Path, prometheus_url: str) -> Path:
    queue = {"name": "q", "backend": "sidekiq", "url": "redis://127.0.0.1:6379/11"}
    document = {
        "apps": {
            "shop": {
                "roles": {
                    "worker": {"max_dynos": 10, "queues": [queue]},
                    "mailer": {"max_dynos": 2, "queues": [{**queue, "name": "m"}]},
                }
            }
        },
        "scaler": {
            "store": f"sqlite:///{tmp_path / 's.sqlite3'}",
            "prometheus_url": prometheus_url,
        },
    }
    path = tmp_path / "autoscale.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def decision(at: float, from_count: int, to_count: int) -> Decision:
    return Decision(at, "test", "shop", "worker", {}, {}, from_count, to_count, "test", "success")


def test_cost_from_the_decision_log_and_prometheus(tmp_path, prometheus, capsys):
    url, end = prometheus
    path = settings(tmp_path, url)
    store = Store(f"sqlite:///{tmp_path / 's.sqlite3'}")
    now = time.time()
    store.record([decision(now - 3 * HOUR, 1, 2), decision(now - HOUR, 2, 4)])
    store.close()
    assert (
        run_cost(
            "--config",
            str(path),
            "--since",
            "2h",
            "--before",
            "shop/worker=6",
            "--before",
            "shop/mailer=1",
        )
        == 0
    )
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("shop/worker"))
    cells = row.split()
    price = HOURLY["standard-2x"]
    assert cells[1] == "Standard-2X"
    assert float(cells[2]) == pytest.approx(2.0, abs=0.01)  # hours covered
    assert float(cells[3]) == pytest.approx(6.0, abs=0.02)  # 2 dynos for 1 h, 4 for 1 h
    assert float(cells[4]) == pytest.approx(6.0, abs=0.1)  # Prometheus' average count
    assert float(cells[5]) == pytest.approx(6 * price, abs=0.01)
    assert float(cells[6]) == pytest.approx(6 * price, abs=0.02)  # Prometheus, minute by minute
    assert float(cells[7]) == pytest.approx(10 * 2 * price, abs=0.01)  # at max_dynos
    assert float(cells[8]) == pytest.approx(6 * 2 * price, abs=0.01)  # before: 6 dynos
    assert cells[9] == "70.0%"  # saved against max_dynos
    assert float(cells[10].rstrip("%")) == pytest.approx(75.0, abs=1.5)  # half an hour late
    assert cells[11] == "(estimate)"  # from the oldest age: no enqueue-to-done times
    mailer = next(line for line in out.splitlines() if line.startswith("shop/mailer"))
    assert mailer.split()[-2:] == ["95.0%", "(exact)"]
    assert "app shop: $0.42, at max_dynos $1.39, before dynoscaler $0.83" in out


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--since", "a week"], "--since: 'a week' is not a duration"),
        (["--before", "shop/web=3"], "--before 'shop/web=3': no role 'shop/web'"),
        (["--before", "shop/worker=three"], "the count must be a whole number"),
    ],
)
def test_bad_arguments_are_named(tmp_path, arguments, message):
    path = settings(tmp_path, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ConfigError) as raised:
        run_cost("--config", str(path), *arguments)
    assert message in str(raised.value)


def test_a_dead_prometheus_is_named(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConfigError, match=rf"cannot read Prometheus at {url} \(scaler.prom"):
        run_cost("--config", str(settings(tmp_path, url)))


def test_a_dead_decision_store_is_named(tmp_path):
    path = settings(tmp_path, f"http://127.0.0.1:{free_port()}")
    document = yaml.safe_load(path.read_text())
    document["scaler"]["store"] = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/none"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError) as raised:
        run_cost("--config", str(path))
    assert str(raised.value).startswith("scaler.store: cannot connect to PostgreSQL")
    assert "secret" not in str(raised.value)
