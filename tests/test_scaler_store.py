"""The decision store on SQLite and on a real PostgreSQL (its own database)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import psycopg2
import pytest
from scaler_support import PG_ADMIN, postgres_database

from dynoscaler.config import ConfigError
from scaler.store import (
    STORE_ERRORS,
    Decision,
    Limit,
    Store,
    owner_alive,
    process_identity,
)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with postgres_database("dynoscaler_scaler") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'decisions.sqlite3'}"
    return request.getfixturevalue("postgres_url")


def decision(app: str, role: str, to: int | None, at: float) -> Decision:
    return Decision(
        time=at,
        source="webhook",
        app=app,
        role=role,
        inputs={"alerts": [{"labels": {"app": app}}]},
        settings={"max_dynos": 10},
        from_count=1,
        to_count=to,
        reason="test",
        outcome="success" if to is not None else "none",
        answer={"formation": {role: to}} if to is not None else None,
    )


def test_records_survive_a_new_store_and_filter(store_url: str) -> None:
    store = Store(store_url)
    store.record([decision("shop", "worker", 3, 1.0), decision("shop", "web", None, 2.0)])
    store.record([decision("dialer", "calls", 5, 3.0)])
    store.close()
    reopened = Store(store_url)
    rows = reopened.decisions()
    assert [(r["app"], r["role"], r["to_count"]) for r in rows] == [
        ("dialer", "calls", 5),
        ("shop", "web", None),
        ("shop", "worker", 3),
    ]
    assert rows[2]["inputs"] == {"alerts": [{"labels": {"app": "shop"}}]}
    assert rows[2]["answer"] == {"formation": {"worker": 3}}
    assert rows[1]["answer"] is None
    assert [r["role"] for r in reopened.decisions(app="shop", limit=1)] == ["web"]
    assert [r["role"] for r in reopened.decisions(app="shop", role="worker")] == ["worker"]


def test_in_flight_mark_and_finish(store_url: str) -> None:
    store = Store(store_url)
    with store.locked_app("shop", ["worker", "web"]) as lock:
        assert lock.states["worker"].state.current is None
        lock.mark_in_flight("worker", 4, 100.0)
    state = store.states("shop")["worker"].state
    assert (state.in_flight, state.in_flight_since) == (4, 100.0)
    store.finish(
        "shop", {"worker": 4, "web": None}, 101.0, True, [decision("shop", "worker", 4, 101.0)]
    )
    states = store.states("shop")
    assert states["worker"].state.current == 4
    assert states["worker"].state.last_action_at == 101.0
    assert states["worker"].state.in_flight is None
    assert states["worker"].current_at == 101.0
    assert states["web"].state.current is None
    assert [(r["role"], r["to_count"]) for r in store.decisions()] == [("worker", 4)]


def test_failed_action_leaves_count_and_cooldown_unchanged(store_url: str) -> None:
    store = Store(store_url)
    store.finish("shop", {"worker": 2}, 50.0, True, [])
    with store.locked_app("shop", ["worker"]) as lock:
        lock.mark_in_flight("worker", 5, 60.0)
    store.finish("shop", {"worker": None}, 61.0, False, [])
    state = store.states("shop")["worker"].state
    assert (state.current, state.last_action_at, state.in_flight) == (2, 50.0, None)


def test_lock_serialises_two_connections(store_url: str) -> None:
    """Two stores (as two processes would) racing: the second sees the first's mark."""
    first, second = Store(store_url), Store(store_url)
    seen: list[int | None] = []
    entered = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with first.locked_app("shop", ["worker"]) as lock:
            entered.set()
            release.wait(5)
            lock.mark_in_flight("worker", 7, 1.0)

    holder = threading.Thread(target=hold)
    holder.start()
    assert entered.wait(5)

    def contend() -> None:
        with second.locked_app("shop", ["worker"]) as lock:
            seen.append(lock.states["worker"].state.in_flight)

    contender = threading.Thread(target=contend)
    contender.start()
    contender.join(0.3)
    assert contender.is_alive(), "the second transaction must wait for the lock"
    release.set()
    holder.join(5)
    contender.join(5)
    assert seen == [7]


def test_writable_check_and_bad_urls(tmp_path) -> None:
    Store(f"sqlite:///{tmp_path / 'ok.sqlite3'}").check_writable()
    with pytest.raises(ConfigError, match="neither sqlite:///path nor postgresql"):
        Store("mysql://somewhere/db")
    with pytest.raises(ConfigError, match="cannot open SQLite file"):
        Store(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.sqlite3'}")


def test_postgresql_restart_costs_one_failure_then_reconnects(postgres_url: str) -> None:
    store = Store(postgres_url)
    store.record([decision("shop", "worker", 3, 1.0)])
    name = postgres_url.rsplit("/", 1)[1]
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    admin.cursor().execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    )
    admin.close()
    with pytest.raises(STORE_ERRORS):
        store.record([decision("shop", "worker", 4, 2.0)])
    store.record([decision("shop", "worker", 5, 3.0)])
    assert [r["to_count"] for r in store.decisions()] == [5, 3]


def test_finish_and_lock_in_both_orders_never_deadlock(store_url: str) -> None:
    """finish and locked_app take the rows of several roles in the same order."""
    first, second = Store(store_url), Store(store_url)
    failures: list[BaseException] = []

    def finishing() -> None:
        try:
            for n in range(150):
                first.finish("shop", {"worker": n, "web": n}, float(n), True, [])
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    def locking() -> None:
        try:
            for n in range(150):
                with second.locked_app("shop", ["worker", "web"]) as lock:
                    lock.mark_in_flight("web", n, float(n))
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    threads = [threading.Thread(target=finishing), threading.Thread(target=locking)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == []


def test_in_flight_mark_names_its_process_and_a_dead_one_is_known(store_url: str) -> None:
    store = Store(store_url)
    with store.locked_app("shop", ["worker", "web"]) as lock:
        lock.mark_in_flight("worker", 4, 100.0)
        lock.mark_in_flight("web", 3, 100.0, owner=dead_process())
    states = store.states("shop")
    assert states["worker"].in_flight_owner == process_identity()
    assert owner_alive(states["worker"].in_flight_owner) is True
    assert owner_alive(states["web"].in_flight_owner) is False
    # Another host (the other scaler of an HA pair): not known here, the mark's age decides.
    assert owner_alive("elsewhere|boot|1|1") is None
    store.finish("shop", {"worker": 4, "web": None}, 101.0, {"worker": True}, [])
    assert store.states("shop")["worker"].in_flight_owner is None


def dead_process() -> str:
    """The identity of a process that ran here and has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    host, boot, _, _ = process_identity().split("|")
    with open(f"/proc/{child.pid}/stat", encoding="utf-8") as file:
        start = file.read().rsplit(")", 1)[1].split()[19]
    child.wait()
    return f"{host}|{boot}|{child.pid}|{start}"


def test_a_killed_process_not_yet_reaped_is_not_alive() -> None:
    # gunicorn's master reaps a killed worker a moment later; until then the
    # pid is a zombie's, whose /proc entry keeps its start time.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    host, boot, _, _ = process_identity().split("|")
    with open(f"/proc/{child.pid}/stat", encoding="utf-8") as file:
        start = file.read().rsplit(")", 1)[1].split()[19]
    owner = f"{host}|{boot}|{child.pid}|{start}"
    assert owner_alive(owner) is True
    child.kill()
    time.sleep(0.3)  # dead, and not waited for: a zombie
    assert owner_alive(owner) is False
    child.wait()


def test_a_pid_reused_by_another_process_is_not_the_owner() -> None:
    host, boot, pid, start = process_identity().split("|")
    assert owner_alive(f"{host}|{boot}|{pid}|{int(start) - 1}") is False
    assert owner_alive(f"{host}|another-boot|{pid}|{start}") is False


def test_limits_are_stored_kept_and_forgotten(store_url: str) -> None:
    store = Store(store_url)
    store.finish("shop", {"worker": 8}, 10.0, True, [], {"worker": Limit(8, 10.0, 610.0, "k")})
    stored = store.states("shop")["worker"]
    assert (stored.state.limit, stored.state.limit_until) == (8, 610.0)
    assert stored.limit == Limit(8, 10.0, 610.0, "k")
    store.finish("shop", {"worker": 8}, 20.0, False, [])  # no limits named: kept
    assert store.states("shop")["worker"].limit == Limit(8, 10.0, 610.0, "k")
    store.finish("shop", {"worker": 9}, 30.0, True, [], {"worker": None})
    assert store.states("shop")["worker"].limit is None


def test_a_store_of_the_first_schema_gains_the_new_columns(store_url: str) -> None:
    if store_url.startswith("sqlite"):
        old = sqlite3.connect(store_url[len("sqlite:///") :])
    else:
        old = psycopg2.connect(store_url)
    cursor = old.cursor()
    cursor.execute(
        "CREATE TABLE role_state (app TEXT NOT NULL, role TEXT NOT NULL, current INTEGER, "
        "current_at DOUBLE PRECISION, last_action_at DOUBLE PRECISION, in_flight INTEGER, "
        "in_flight_since DOUBLE PRECISION, PRIMARY KEY (app, role))"
    )
    cursor.execute("INSERT INTO role_state (app, role, current) VALUES ('shop', 'worker', 3)")
    old.commit()
    old.close()
    store = Store(store_url)
    assert store.states("shop")["worker"].state.current == 3
    with store.locked_app("shop", ["worker"]) as lock:
        lock.mark_in_flight("worker", 5, 1.0)
    assert store.states("shop")["worker"].in_flight_owner == process_identity()
