"""The decision store: every input, setting and decision, and each role's state.

SQLite by default (WAL, one file, survives restarts); PostgreSQL by URL
(postgresql://...) so an HA pair of scalers shares one store. The role state
(current count, last action, count in flight) is read and marked inside one
locked transaction per app, so two scalers, or two gunicorn workers (or two
threads of one), given the same alert take one action between them. An
in-flight mark carries the identity of the process that set it, so a mark left
by a process that is gone is recognised at once; a role also keeps the limit
Heroku's 422 cannot_run_above_limit named.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg2

from dynoscaler.config import POSTGRES_PREFIXES, SQLITE_PREFIX, ConfigError, store_problem
from scaler.guardrails import State

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS decisions (
        id {serial} PRIMARY KEY,
        time DOUBLE PRECISION NOT NULL,
        source TEXT NOT NULL,
        app TEXT NOT NULL,
        role TEXT NOT NULL,
        inputs TEXT NOT NULL,
        settings TEXT NOT NULL,
        from_count INTEGER,
        to_count INTEGER,
        reason TEXT NOT NULL,
        outcome TEXT NOT NULL,
        answer TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS decisions_app_role ON decisions (app, role, id)",
    """CREATE TABLE IF NOT EXISTS role_state (
        app TEXT NOT NULL,
        role TEXT NOT NULL,
        current INTEGER,
        current_at DOUBLE PRECISION,
        last_action_at DOUBLE PRECISION,
        in_flight INTEGER,
        in_flight_since DOUBLE PRECISION,
        PRIMARY KEY (app, role)
    )""",
    "CREATE TABLE IF NOT EXISTS heartbeat (id INTEGER PRIMARY KEY, at DOUBLE PRECISION)",
    # Per Heroku account (scaler.actuator.Actuator.account): no call before `until`
    # (unix time), after a 429; every worker and the reconcile loop read it.
    """CREATE TABLE IF NOT EXISTS heroku_hold (
        account TEXT PRIMARY KEY,
        until DOUBLE PRECISION NOT NULL
    )""",
)
# Columns added to role_state after its first release (added to older stores on start).
_ADDED_COLUMNS = (
    ("in_flight_owner", "TEXT"),
    ("limit_count", "INTEGER"),
    ("limit_at", "DOUBLE PRECISION"),
    ("limit_until", "DOUBLE PRECISION"),
    ("limit_key", "TEXT"),
)
_STATE_COLUMNS = (
    "role, current, current_at, last_action_at, in_flight, in_flight_since, "
    "in_flight_owner, limit_count, limit_at, limit_until, limit_key"
)

_SCHEMA_LOCK = 0x64796E6F  # "dyno"

COLUMNS = (
    "id",
    "time",
    "source",
    "app",
    "role",
    "inputs",
    "settings",
    "from_count",
    "to_count",
    "reason",
    "outcome",
    "answer",
)
_JSON_COLUMNS = ("inputs", "settings", "answer")


@dataclass
class Decision:
    """One record of the log. outcome: none | success | failure | limit | dry_run."""

    time: float
    source: str
    app: str
    role: str
    inputs: dict[str, Any]
    settings: dict[str, Any]
    from_count: int | None
    to_count: int | None
    reason: str
    outcome: str = "none"
    answer: dict[str, Any] | None = field(default=None)


@dataclass(frozen=True)
class Limit:
    """Heroku's limit for a role: `count` dynos, learned at `at`, holding until
    `until`, for the settings and account `key` it was learned under."""

    count: int
    at: float
    until: float
    key: str


@dataclass(frozen=True)
class StoredState:
    """A role's state as stored, plus when `current` was last confirmed, who set
    the in-flight mark, and the stored limit with the key it was learned under."""

    state: State
    current_at: float | None
    in_flight_owner: str | None = None
    limit_at: float | None = None
    limit_key: str | None = None

    @property
    def limit(self) -> Limit | None:
        s = self.state
        if s.limit is None or self.limit_at is None or s.limit_until is None:
            return None
        return Limit(s.limit, self.limit_at, s.limit_until, self.limit_key or "")


def _stored(row: tuple[Any, ...]) -> tuple[str, StoredState]:
    (role, current, current_at, last_action, in_flight, since, owner) = row[:7]
    limit, limit_at, limit_until, limit_key = row[7:]
    state = State(current, last_action, in_flight, since, limit, limit_until)
    return role, StoredState(state, current_at, owner, limit_at, limit_key)


_IDENTITY: tuple[int, str] | None = None


def process_identity() -> str:
    """This process as "host|boot id|pid|start time": unique across restarts and reboots."""
    global _IDENTITY
    pid = os.getpid()
    if _IDENTITY is None or _IDENTITY[0] != pid:
        _IDENTITY = (pid, f"{socket.gethostname()}|{_boot_id()}|{pid}|{_process_stat(pid)[1]}")
    return _IDENTITY[1]


def owner_alive(owner: str | None) -> bool | None:
    """Whether the process named by `process_identity()` still runs.

    None when that cannot be known here: no owner recorded, or another host
    (the other scaler of an HA pair); the mark's age decides then.
    """
    if not owner:
        return None
    parts = owner.split("|")
    if len(parts) != 4 or parts[0] != socket.gethostname():
        return None
    _, boot, pid_text, start = parts
    if boot and boot != _boot_id():
        return False  # the machine restarted since
    try:
        pid = int(pid_text)
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError, OSError):
        return None
    state, started = _process_stat(pid)
    if state in ("Z", "X"):
        return False  # killed, not yet reaped by its parent (gunicorn's master)
    # A pid reused by a later process has another start time.
    return not start or started == start


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as file:
            return file.read().strip()
    except OSError:
        return ""


def _process_stat(pid: int) -> tuple[str, str]:
    """The process's state letter and start time in clock ticks since boot
    (/proc/PID/stat fields 3 and 22); empty strings when unreadable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as file:
            stat = file.read()
    except OSError:
        return "", ""
    # The command name may hold spaces and parentheses: fields follow the last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    return (fields[0] if fields else "", fields[19] if len(fields) > 19 else "")


# What a store call raises when the database is unavailable.
STORE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, psycopg2.Error)


class Store:
    """A decision store on SQLite or PostgreSQL; one connection per thread and process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith(POSTGRES_PREFIXES)
        if problem := store_problem(url):
            raise ConfigError(f"scaler.store: {problem}")
        self._local = threading.local()
        with self._transaction() as cursor:
            if self.postgres:
                # Two workers creating the tables at once would collide in pg_type.
                cursor.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            for statement in _SCHEMA:
                serial = "BIGSERIAL" if self.postgres else "INTEGER"
                cursor.execute(statement.format(serial=serial))
        # A transaction of its own: ALTER TABLE's exclusive lock on role_state must
        # not be waited for while holding CREATE INDEX's share lock on decisions
        # (a request holding role_state rows and inserting a decision would deadlock).
        with self._transaction() as cursor:
            if self.postgres:
                cursor.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            self._add_columns(cursor)

    def _add_columns(self, cursor: _Cursor) -> None:
        # Looked up first: ALTER TABLE locks the table exclusively even when the
        # column exists, and every worker opens the store while others serve.
        if self.postgres:
            cursor.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = 'role_state'"
            )
            present = {row[0] for row in cursor.fetchall()}
        else:
            cursor.execute("PRAGMA table_info(role_state)")
            present = {row[1] for row in cursor.fetchall()}
        for name, kind in _ADDED_COLUMNS:
            if name not in present:
                cursor.execute(f"ALTER TABLE role_state ADD COLUMN {name} {kind}")

    # -- connections ---------------------------------------------------------

    def _connect(self) -> Any:
        if self.postgres:
            try:
                return psycopg2.connect(self.url, connect_timeout=5)
            except psycopg2.OperationalError as error:
                raise ConfigError(f"scaler.store: cannot connect to PostgreSQL: {error}") from None
        path = self.url[len(SQLITE_PREFIX) :]
        try:
            connection = sqlite3.connect(path, timeout=30, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as error:
            raise ConfigError(f"scaler.store: cannot open SQLite file {path!r}: {error}") from None
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    def _connection(self) -> Any:
        # A connection must not cross a fork (gunicorn workers): key it by pid.
        # psycopg2 marks a connection closed once it saw the server go away:
        # the next call reconnects, so a PostgreSQL restart costs one failure.
        stale = getattr(self._local, "pid", None) != os.getpid()
        if stale or getattr(self._local.connection, "closed", 0):
            self._local.connection = self._connect()
            self._local.pid = os.getpid()
        return self._local.connection

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.postgres else statement

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A write transaction; on SQLite it holds the database's write lock throughout."""
        connection = self._connection()
        cursor = connection.cursor()
        if not self.postgres:
            cursor.execute("BEGIN IMMEDIATE")
        try:
            yield _Cursor(cursor, self._sql)
        except BaseException:
            if not getattr(connection, "closed", 0):
                connection.rollback()
            raise
        connection.commit()

    def close(self) -> None:
        if getattr(self._local, "pid", None) == os.getpid():
            self._local.connection.close()
            self._local.pid = None

    # -- role state ----------------------------------------------------------

    @contextmanager
    def locked_app(self, app: str, roles: list[str]) -> Iterator[AppLock]:
        """Lock the roles' state of one app; what the block marks is committed together."""
        with self._transaction() as cursor:
            for role in sorted(roles):
                self._ensure_row(cursor, app, role)
            lock = " FOR UPDATE" if self.postgres else ""
            marks = ",".join("?" for _ in roles)
            cursor.execute(
                f"SELECT {_STATE_COLUMNS} "
                f"FROM role_state WHERE app = ? AND role IN ({marks}) ORDER BY role{lock}",
                (app, *roles),
            )
            states = dict(_stored(row) for row in cursor.fetchall())
            yield AppLock(cursor, app, states)

    def finish(
        self,
        app: str,
        counts: dict[str, int | None],
        now: float,
        acted: bool | dict[str, bool],
        decisions: list[Decision],
        limits: dict[str, Limit | None] | None = None,
    ) -> None:
        """Clear the in-flight marks, store Heroku's confirmed counts (None: unchanged),
        the roles' limits (a Limit, or None to forget one; roles not named keep
        theirs) and record the decisions, all in one transaction. `acted`: whether
        a role's count changed (its cooldown starts), for all roles or per role."""
        limits = limits or {}
        with self._transaction() as cursor:
            # Rows in role order, as locked_app takes them: no deadlock between the two.
            for role, count in sorted(counts.items()):
                self._ensure_row(cursor, app, role)
                changed = acted.get(role, False) if isinstance(acted, dict) else acted
                cursor.execute(
                    "UPDATE role_state SET current = COALESCE(?, current), "
                    "current_at = CASE WHEN ? THEN ? ELSE current_at END, "
                    "last_action_at = CASE WHEN ? THEN ? ELSE last_action_at END, "
                    "in_flight = NULL, in_flight_since = NULL, in_flight_owner = NULL "
                    "WHERE app = ? AND role = ?",
                    (count, count is not None, now, changed, now, app, role),
                )
            for role, limit in sorted(limits.items()):
                self._ensure_row(cursor, app, role)
                values = (
                    (None,) * 4
                    if limit is None
                    else (limit.count, limit.at, limit.until, limit.key)
                )
                cursor.execute(
                    "UPDATE role_state SET limit_count = ?, limit_at = ?, limit_until = ?, "
                    "limit_key = ? WHERE app = ? AND role = ?",
                    (*values, app, role),
                )
            _insert(cursor, decisions)

    @staticmethod
    def _ensure_row(cursor: _Cursor, app: str, role: str) -> None:
        cursor.execute(
            "INSERT INTO role_state (app, role) VALUES (?, ?) ON CONFLICT DO NOTHING", (app, role)
        )

    def states(self, app: str) -> dict[str, StoredState]:
        cursor = _Cursor(self._connection().cursor(), self._sql)
        cursor.execute(f"SELECT {_STATE_COLUMNS} FROM role_state WHERE app = ?", (app,))
        rows = cursor.fetchall()
        self._connection().commit()
        return dict(_stored(row) for row in rows)

    # -- Heroku's 429 hold, shared ------------------------------------------

    def held_until(self, account: str) -> float:
        """Unix time before which no process may call Heroku for `account` (0: none)."""
        cursor = _Cursor(self._connection().cursor(), self._sql)
        cursor.execute("SELECT until FROM heroku_hold WHERE account = ?", (account,))
        rows = cursor.fetchall()
        self._connection().commit()
        return float(rows[0][0]) if rows else 0.0

    def hold(self, account: str, until: float) -> None:
        """Hold every call to Heroku for `account` until `until` (unix time), or later
        if another process already holds longer."""
        later = "GREATEST" if self.postgres else "MAX"
        with self._transaction() as cursor:
            cursor.execute(
                "INSERT INTO heroku_hold (account, until) VALUES (?, ?) ON CONFLICT (account) "
                f"DO UPDATE SET until = {later}(heroku_hold.until, excluded.until)",
                (account, until),
            )

    # -- decisions -----------------------------------------------------------

    def record(self, decisions: list[Decision]) -> None:
        with self._transaction() as cursor:
            _insert(cursor, decisions)

    def decisions(
        self,
        app: str | None = None,
        role: str | None = None,
        limit: int | None = 100,
        since: float | None = None,
        until: float | None = None,
        actions: bool = False,
    ) -> list[dict[str, Any]]:
        """The newest `limit` records (None: all) first, optionally for one app and role,
        taken from `since` to `until` (Unix times, inclusive), and with `actions`
        only those with a target count (sent, or in a dry run would have been)."""
        where, params = (["to_count IS NOT NULL"] if actions else []), []
        for condition, value in (
            ("app = ?", app),
            ("role = ?", role),
            ("time >= ?", since),
            ("time <= ?", until),
        ):
            if value is not None:
                where.append(condition)
                params.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        clause += " ORDER BY id DESC"
        cursor = _Cursor(self._connection().cursor(), self._sql)
        if limit is not None:
            clause += " LIMIT ?"
            params.append(limit)
        cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM decisions{clause}", tuple(params))
        rows = cursor.fetchall()
        self._connection().commit()
        return [_decode(dict(zip(COLUMNS, row, strict=True))) for row in rows]

    def check_writable(self) -> None:
        """Raise if the store cannot take a write (for /healthz)."""
        with self._transaction() as cursor:
            cursor.execute("DELETE FROM heartbeat WHERE id = 1")
            cursor.execute("INSERT INTO heartbeat (id, at) VALUES (1, 0)")


class _Cursor:
    """A DB-API cursor that takes `?` placeholders on both databases."""

    def __init__(self, cursor: Any, translate: Any) -> None:
        self._cursor = cursor
        self._translate = translate

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        self._cursor.execute(self._translate(statement), params)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall()


class AppLock:
    """The locked state of one app's roles inside `Store.locked_app`."""

    def __init__(self, cursor: _Cursor, app: str, states: dict[str, StoredState]) -> None:
        self._cursor = cursor
        self.app = app
        self.states = states

    def record(self, decisions: list[Decision]) -> None:
        """Record decisions in the same transaction as the state they were taken on."""
        _insert(self._cursor, decisions)

    def confirm(self, role: str, count: int | None, at: float) -> None:
        """Store a count read from Heroku at `at`, unless a newer one is stored."""
        self._cursor.execute(
            "UPDATE role_state SET current = ?, current_at = ? WHERE app = ? AND role = ? "
            "AND (current_at IS NULL OR current_at < ?)",
            (count, at, self.app, role, at),
        )

    def mark_in_flight(self, role: str, target: int, now: float, owner: str | None = None) -> None:
        """Mark `target` as sent by `owner` (default: this process, see process_identity)."""
        self._cursor.execute(
            "UPDATE role_state SET in_flight = ?, in_flight_since = ?, in_flight_owner = ? "
            "WHERE app = ? AND role = ?",
            (target, now, owner or process_identity(), self.app, role),
        )


def _insert(cursor: _Cursor, decisions: list[Decision]) -> None:
    for d in decisions:
        cursor.execute(
            f"INSERT INTO decisions ({', '.join(COLUMNS[1:])}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                d.time,
                d.source,
                d.app,
                d.role,
                json.dumps(d.inputs, sort_keys=True),
                json.dumps(d.settings, sort_keys=True),
                d.from_count,
                d.to_count,
                d.reason,
                d.outcome,
                None if d.answer is None else json.dumps(d.answer, sort_keys=True),
            ),
        )


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for column in _JSON_COLUMNS:
        if row[column] is not None:
            row[column] = json.loads(row[column])
    return row
