"""Write a first autoscale.yml from Heroku apps' formations and config vars.

`dynoscaler init --app APP [--app APP2 ...] [-o autoscale.yml]` reads through the
Platform API (dynoscaler.heroku's client: three calls per app, the app, its
formation and its config vars) and writes a commented file that passes
check-config:

- a role per process type: `min_dynos` 1 (0 for a role at 0 today or named
  with --scale-to-zero), `max_dynos` twice today's count (1 on eco and basic
  dynos, which run one dyno per process type); `web` with `requests: router`;
- queue sources from the config vars whose values are Redis, AMQP or SQL
  database URLs (REDIS_URL, REDIS_TLS_URL, CLOUDAMQP_URL, RABBITMQ_URL,
  DATABASE_URL and the like), written as `${VAR}` references, never values
  (with several apps, `${APP_VAR}`: each app's server differs);
- the queues init sees there when it can connect (Sidekiq's `queues` set,
  Resque's, RQ's `rq:queues`, Celery's kombu bindings, BullMQ's and
  Dramatiq's keys, RabbitMQ's queue list from its management API, the queue
  names in the SQL job libraries' tables), else a commented placeholder
  saying why; a worker role without a queue is written commented out (a role
  needs something to scale on);
- every guess (a count, a concurrency, which role works which queue) marked
  `# guessed` in a comment.

The values the `${VAR}` references name go to the `.env` beside the file (mode
0600, added to the directory's .gitignore in a git repository, never printed),
with a generated DYNOSCALER_WEBHOOK_TOKEN unless one is set: every command given
the file reads it (dynoscaler/envfile.py), so `check-config` and the scaler run
next with nothing to export. The scaler starts in shadow mode (`scaler.dry_run:
true`); `dynoscaler shadow-report` then says what it would have done. Heroku's 401, 403 and 404,
an app name that is none, and an unreachable source are one-line errors.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import heroku3
import redis
import requests
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry

from dynoscaler import config, envfile, heroku
from dynoscaler.config import ConfigError
from exporter.collectors import address, sql_source
from exporter.collectors.rabbitmq import RabbitMQSource
from exporter.collectors.sql import POSTGRESQL

# Seconds init waits for a queue server before writing a placeholder.
CONNECT_TIMEOUT = 3.0
# Keys a Redis SCAN for BullMQ's and Dramatiq's queues looks at, at most.
SCAN_AT_MOST = 100_000
# Each SQL job library's table and the column naming a job's queue (exporter/collectors/).
SQL_TABLES = {
    "solid_queue": ("solid_queue_jobs", "queue_name"),
    "good_job": ("good_jobs", "queue_name"),
    "delayed_job": ("delayed_jobs", "queue"),
    "que": ("que_jobs", "queue"),
}
# The scaler's webhook secret (scaler/app.py), generated into the .env when unset.
WEBHOOK_TOKEN_ENV = "DYNOSCALER_WEBHOOK_TOKEN"
# Eco and basic dynos run at most one dyno per process type.
ONE_DYNO_SIZES = ("eco", "basic", "free", "hobby")
_APP_NAME = re.compile(r"^[a-z][a-z0-9-]{1,29}$")
_ROLE_NAME = re.compile(r"^[a-z0-9_-]+$")
_REDIS_SCHEMES = ("redis", "rediss")
_AMQP_SCHEMES = ("amqp", "amqps")
# Celery's and RabbitMQ's own queues: no jobs of the app's.
_INTERNAL_QUEUE = re.compile(r"(\.pidbox$|^celeryev\.|^amq\.)")


@dataclass(frozen=True)
class Process:
    type: str
    quantity: int
    size: str
    command: str


@dataclass
class Source:
    """A queue server found in an app's config vars."""

    var: str  # the config var's name on Heroku
    reference: str  # the environment variable the file names
    kind: str  # redis, rabbitmq, sql
    url: str
    queues: list[tuple[str, str]] = field(default_factory=list)  # (name, backend)
    problem: str | None = None  # why its queues are not listed


@dataclass
class AppFound:
    name: str
    processes: list[Process]
    config_vars: dict[str, str]
    sources: list[Source] = field(default_factory=list)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--app", action="append", required=True, help="a Heroku app (repeat for more)"
    )
    parser.add_argument(
        "-o", "--output", default="autoscale.yml", help="file to write ('-': standard output)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.add_argument(
        "--scale-to-zero",
        action="append",
        default=[],
        metavar="APP/ROLE",
        help="a role that may go to 0 dynos when idle (min_dynos 0)",
    )


def run(args: argparse.Namespace) -> int:
    apps = list(dict.fromkeys(args.app))
    for name in apps:
        if not _APP_NAME.match(name):
            raise ConfigError(f"--app {name!r}: not a Heroku app name (a-z, 0-9, -; 2-30)")
    to_zero = set(args.scale_to_zero)
    unknown = {r for r in to_zero if r.partition("/")[0] not in apps or "/" not in r}
    if unknown:
        raise ConfigError(f"--scale-to-zero {sorted(unknown)[0]}: not APP/ROLE of an --app")
    if args.output != "-" and os.path.exists(args.output) and not args.force:
        raise ConfigError(f"{args.output} exists: give --force to overwrite it, or -o another")
    connection = heroku.client(user="cli")
    found = [read_app(connection, name) for name in apps]
    roles = {f"{app.name}/{process.type}" for app in found for process in app.processes}
    if to_zero - roles:
        raise ConfigError(f"--scale-to-zero {sorted(to_zero - roles)[0]}: no such process type")
    for app in found:
        app.sources = find_sources(app, qualified=len(found) > 1)
        for source in app.sources:
            discover(source)
    text = render(found, to_zero)
    _check(text, found)
    if args.output == "-":
        sys.stdout.write(text)
        for line in environment_lines(found):
            print(line, file=sys.stderr)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:
        raise ConfigError(f"{args.output}: cannot write: {error.strerror}") from None
    print(f"wrote {args.output}: {_summary(found)}", file=sys.stderr)
    print(write_env_file(envfile.beside(args.output), found), file=sys.stderr)
    return 0


def write_env_file(env_file: str, apps: Sequence[AppFound]) -> str:
    """Write the references' values (and a webhook token, unless one is set) to the
    .env; what was done, naming the variables, never their values."""
    values = found_values(apps)
    if WEBHOOK_TOKEN_ENV not in envfile.environment(env_file, os.environ):
        values[WEBHOOK_TOKEN_ENV] = secrets.token_hex(32)
    if not values:
        return f"nothing to write to {env_file}"
    envfile.write(env_file, values)
    ignored = "; added to .gitignore" if envfile.ignore_in_git(env_file) else ""
    names = ", ".join(values)
    return f"wrote {env_file} (mode 0600, values not shown): {names}{ignored}"


# -- Heroku ------------------------------------------------------------------------------


def read_app(connection: heroku3.api.Heroku, name: str) -> AppFound:
    """The app's formation and config vars; ConfigError naming Heroku's refusal."""
    try:
        app = connection.app(name)
        processes = [
            Process(f.type, int(f.quantity), str(f.size), str(getattr(f, "command", "") or ""))
            for f in app.process_formation()
        ]
        config_vars = dict(app.config().to_dict())
    except requests.HTTPError as error:
        raise ConfigError(f"--app {name}: {_refusal(error.response)}") from None
    except heroku3.api.RateLimitExceeded:
        raise ConfigError(f"--app {name}: Heroku's rate limit is spent; try in a minute") from None
    except requests.RequestException as error:
        where = heroku.api_url()
        raise ConfigError(f"cannot reach the Heroku API at {where}: {_first_line(error)}") from None
    return AppFound(name, sorted(processes, key=lambda p: p.type), config_vars)


def _refusal(response: requests.Response | None) -> str:
    if response is None:
        return "no answer from Heroku"
    try:
        message = str(response.json().get("message", "")).strip()
    except ValueError:
        message = ""
    meaning = {
        401: "Heroku refused the key (401): check HEROKU_API_KEY",
        403: "the key may not read this app (403): it needs the read-protected scope "
        "(config vars) on an account of the app's owner or team",
        404: "no such app on this account (404)",
    }.get(response.status_code, f"Heroku answered {response.status_code}")
    return f"{meaning}{': ' + message if message else ''}"


# -- sources and their queues ------------------------------------------------------------


def find_sources(app: AppFound, qualified: bool) -> list[Source]:
    """Queue servers and SQL databases in the config vars, one per server or database
    (Heroku Redis' REDIS_TLS_URL and REDIS_URL name the same one, Heroku Postgres'
    HEROKU_POSTGRESQL_<COLOR>_URL DATABASE_URL's), in the vars' order of preference."""
    kinds = {
        **dict.fromkeys(_REDIS_SCHEMES, "redis"),
        **dict.fromkeys(_AMQP_SCHEMES, "rabbitmq"),
        **dict.fromkeys(config.SQL_SCHEMES["solid_queue"], "sql"),
    }
    by_server: dict[tuple[str, str], Source] = {}
    for var in sorted(app.config_vars, key=_preference):
        url = app.config_vars[var]
        parts = urlsplit(url)
        kind = kinds.get(parts.scheme.lower())
        if kind is None:
            continue
        server = (kind, f"{parts.hostname}{parts.path if kind == 'sql' else ''}")
        by_server.setdefault(server, Source(var, _reference(app, var, qualified), kind, url))
    return list(by_server.values())


def _reference(app: AppFound, var: str, qualified: bool) -> str:
    """The environment variable the file names for an app's config var (with several
    apps, prefixed by the app's name: each app's REDIS_URL is another server)."""
    return f"{app.name.upper().replace('-', '_')}_{var}" if qualified else var


def _preference(var: str) -> tuple[int, str]:
    """REDIS_TLS_URL before REDIS_URL (the same server, with TLS), DATABASE_URL before
    its HEROKU_POSTGRESQL_<COLOR>_URL, then by name."""
    order = ("REDIS_TLS_URL", "REDIS_URL", "CLOUDAMQP_URL", "RABBITMQ_URL", "DATABASE_URL")
    return (order.index(var) if var in order else len(order), var)


def discover(source: Source) -> None:
    """List the source's queues with their backend, or say why it cannot."""
    try:
        if source.kind == "redis":
            source.queues = redis_queues(source.url)
        elif source.kind == "sql":
            source.queues = sql_queues(source.url)
        else:
            source.queues = rabbitmq_queues(management_url(source.url))
    except Exception as error:  # any driver's failure to connect or read: a placeholder
        source.problem = f"could not read {address(source.url)}: {_first_line(error)}"
        if source.kind == "redis" and "CERTIFICATE_VERIFY_FAILED" in str(error):
            # Heroku Redis' certificates are self-signed; Heroku's docs turn verification off
            source.problem += f' (self-signed: url "${{{source.reference}}}?ssl_cert_reqs=none")'
        return
    if not source.queues:
        source.problem = f"no queues of a known library at {address(source.url)} yet"


def redis_queues(url: str) -> list[tuple[str, str]]:
    """(queue, backend) of every library's queues on a Redis server, as each library
    lists them (their default key prefixes)."""
    client = redis.Redis.from_url(
        url,
        socket_timeout=CONNECT_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )
    try:
        found = [(q, "sidekiq") for q in client.smembers("queues")]
        found += [(q, "resque") for q in client.smembers("resque:queues")]
        found += [(q.removeprefix("rq:queue:"), "rq") for q in client.smembers("rq:queues")]
        for key in _scan(client, "_kombu.binding.*"):
            # members: routing key, pattern, queue, separated by kombu's "\x06\x16"
            for member in client.smembers(key):
                queue = member.split("\x06\x16")[-1]
                if queue and not _INTERNAL_QUEUE.search(queue):
                    found.append((queue, "celery"))
        found += [(k[len("bull:") : -len(":meta")], "bullmq") for k in _scan(client, "bull:*:meta")]
        for key in _scan(client, "dramatiq:*.msgs"):
            name = key[len("dramatiq:") : -len(".msgs")]
            if not name.endswith((".DQ", ".XQ")):
                found.append((name, "dramatiq"))
    finally:
        client.close()
    return sorted(set(found), key=lambda q: (q[1], q[0]))


def _scan(client: redis.Redis, pattern: str) -> list[str]:
    keys = []
    for seen, key in enumerate(client.scan_iter(match=pattern, count=1000)):
        if seen >= SCAN_AT_MOST:
            break
        keys.append(key)
    return keys


def management_url(amqp_url: str) -> str:
    """The management API of an AMQP URL's server (a guess): https://host/vhost for amqps
    (CloudAMQP serves it there), http://host:15672/vhost for amqp, same credentials."""
    parts = urlsplit(amqp_url)
    credentials = parts.netloc.rpartition("@")[0]
    host = parts.hostname or ""
    netloc = host if parts.scheme == "amqps" else f"{host}:15672"
    netloc = f"{credentials}@{netloc}" if credentials else netloc
    vhost = parts.path.strip("/") or "%2F"
    scheme = "https" if parts.scheme == "amqps" else "http"
    return urlunsplit((scheme, netloc, f"/{vhost}", "", ""))


# What management_url does, as a sed -E program for the exports init prints.
MANAGEMENT_SED = (
    r"s#^amqps://([^/]*@)?([^/:]+)(:[0-9]+)?#https://\1\2#; "
    r"s#^amqp://([^/]*@)?([^/:]+)(:[0-9]+)?#http://\1\2:15672#"
)


def rabbitmq_queues(api_url: str) -> list[tuple[str, str]]:
    """(queue, backend) of a RabbitMQ vhost: Dramatiq's where `<q>.DQ`/`<q>.XQ` exist,
    Celery's where Celery's own queues (pidbox, celeryev) do, else plain rabbitmq."""
    api = RabbitMQSource(api_url, [], CONNECT_TIMEOUT)  # its endpoint and credentials
    response = api.session.get(
        api.endpoint, params={"columns": "name"}, auth=api.auth, timeout=CONNECT_TIMEOUT
    )
    response.raise_for_status()
    names = {entry["name"] for entry in response.json()}
    celery = any(_INTERNAL_QUEUE.search(n) and not n.startswith("amq.") for n in names)
    found = []
    for name in sorted(names):
        if _INTERNAL_QUEUE.search(name) or name.endswith((".DQ", ".XQ")):
            continue
        dramatiq = f"{name}.DQ" in names or f"{name}.XQ" in names
        found.append((name, "dramatiq" if dramatiq else "celery" if celery else "rabbitmq"))
    return found


def sql_queues(url: str) -> list[tuple[str, str]]:
    """(queue, backend) of the SQL job libraries whose table is in the database (on a
    database the library runs on), from the queue names its rows carry."""
    database = sql_source.connect(url, CONNECT_TIMEOUT)
    try:
        postgresql = sql_source.dialect_of(url) is POSTGRESQL
        schema = "ANY(current_schemas(false))" if postgresql else "DATABASE()"
        listed = database.query(
            f"SELECT table_name FROM information_schema.tables WHERE table_schema = {schema}", {}
        )
        tables = {str(row[0]) for row in listed}
        scheme = urlsplit(url).scheme
        found = []
        for backend, (table, column) in SQL_TABLES.items():
            if table in tables and scheme in config.SQL_SCHEMES[backend]:
                rows = database.query(
                    f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL", {}
                )
                found += [(str(row[0]), backend) for row in rows]
    finally:
        database.close()
    return sorted(found, key=lambda q: (q[1], q[0]))


# -- the file ----------------------------------------------------------------------------


def render(apps: Sequence[AppFound], to_zero: set[str]) -> str:
    lines = [
        "# Written by `dynoscaler init` from the Heroku Platform API. Lines marked `guessed`",
        "# are init's guesses: read them before trusting the scaler with dynos.",
        "# Check it with: dynoscaler check-config <this file>",
        "# It names secrets as ${VAR}, their values in the .env beside it (never commit",
        "# it); where the exporter and scaler run elsewhere, set them there:",
        *(f"#   {line}" for line in environment_lines(apps)),
        "",
        "defaults:",
        "  target_deadline: 60     # guessed: seconds from enqueue to done your jobs must meet",
        "  boot_time: 45           # seconds from a formation change to a dyno taking jobs",
        "",
        "apps:",
    ]
    written = [_app_lines(app, to_zero) for app in apps]
    if not any(active for _, active in written):
        raise ConfigError(
            "nothing to scale in "
            + ", ".join(a.name for a in apps)
            + ": no web process type and no queue init could read"
            + "".join(f"; {s.var}: {s.problem}" for a in apps for s in a.sources if s.problem)
        )
    for app_lines, _ in written:
        lines += app_lines
    lines += [
        "",
        "heroku:",
        "  token_scope: shared     # the key's account also serves people, deploys, other tools",
        "",
        "scaler:",
        "  # Shadow mode: decide and record, change nothing. `dynoscaler shadow-report` shows",
        "  # what it would have done; set false once you trust it.",
        "  dry_run: true",
        '  store: "${DYNOSCALER_STORE:-sqlite:///dynoscaler.sqlite3}"   # or postgresql://...',
        '  prometheus_url: "${PROMETHEUS_URL:-http://127.0.0.1:9090}"',
    ]
    return "\n".join(lines) + "\n"


def _app_lines(app: AppFound, to_zero: set[str]) -> tuple[list[str], bool]:
    """The app's lines, and whether it has a role to scale (a role without queues or
    requests fails check-config, so it is written commented out)."""
    roles: list[str] = []
    active = False
    workers = [p for p in app.processes if p.type != "web" and _ROLE_NAME.match(p.type)]
    assignment = assign(app, workers)
    for process in app.processes:
        if not _ROLE_NAME.match(process.type):
            roles.append(f"      # {process.type}: left out (a role name is a-z, 0-9, _ and -)")
            continue
        block = _role_lines(app, process, f"{app.name}/{process.type}" in to_zero)
        if process.type == "web":
            block.append("        requests: router  # scaled on the router log drain")
        else:
            block += _queue_lines(assignment.get(process.type, []), len(workers))
        if process.type == "web" or process.type in assignment:
            active = True
            roles += block
        else:
            roles.append(f"      # {process.type}: no queue found for it; with its queues:")
            roles += [f"      # {line[6:]}" for line in block]
    for source in app.sources:
        if source.problem is not None:
            url = _url_reference(source)
            backend = {"rabbitmq": "rabbitmq", "sql": "good_job"}.get(source.kind, "sidekiq")
            roles.append(f"      # {source.var}: {source.problem}; name its queues by hand:")
            roles.append(f'      #   queues: [{{name: default, backend: {backend}, url: "{url}"}}]')
    if not app.processes:
        roles.append("      # no process types yet: deploy, then run init again")
    if active:
        return [f"  {app.name}:", "    roles:", *roles], True
    return [f"  # {app.name}: nothing to scale on found (no web role, no queue)", *roles], False


def _role_lines(app: AppFound, process: Process, zero: bool) -> list[str]:
    one_dyno = process.size.lower() in ONE_DYNO_SIZES
    low = 0 if zero or process.quantity == 0 else 1
    high = 1 if one_dyno else max(1, 2 * process.quantity)
    why_high = (
        f"{process.size} dynos run one per process type"
        if one_dyno
        else f"guessed: twice today's {process.quantity}"
    )
    why_low = "marked --scale-to-zero" if zero else f"guessed: today {process.quantity}"
    concurrency, why = concurrency_guess(process, app.config_vars)
    command = f"  ({process.command})" if process.command else ""
    return [
        f"      {process.type}:  # {process.size}{command}",
        f"        min_dynos: {low}  # {why_low}",
        f"        max_dynos: {high}  # {why_high}",
        f"        concurrency: {concurrency}  # {why}",
    ]


def concurrency_guess(process: Process, config_vars: dict[str, str]) -> tuple[int, str]:
    """Jobs (or requests) one dyno runs at once, from the vars the libraries read."""

    def number(var: str) -> int | None:
        value = config_vars.get(var, "")
        return int(value) if value.isdigit() and int(value) > 0 else None

    threads = number("RAILS_MAX_THREADS")
    if process.type == "web":
        workers = number("WEB_CONCURRENCY")
        if workers is not None:
            both = workers * (threads or 1)
            by = f"WEB_CONCURRENCY {workers}" + (
                f" x RAILS_MAX_THREADS {threads}" if threads else ""
            )
            return both, f"guessed from {by}"
        return 1, "guessed: set it to the requests one dyno serves at once"
    for var in ("SIDEKIQ_CONCURRENCY", "RAILS_MAX_THREADS"):
        value = number(var)
        if value is not None:
            return value, f"guessed from {var}"
    return 1, "guessed: set it to the jobs one dyno runs at once"


def assign(app: AppFound, workers: Sequence[Process]) -> dict[str, list[tuple[Source, str, str]]]:
    """Which worker role reads which found queue: the role whose command lists the queue
    by name (listed_queues), else one whose command names the queue's library (one that
    lists no queues first), else the first worker role."""
    queues = [(s, name, backend) for s in app.sources for name, backend in s.queues]
    assignment: dict[str, list[tuple[Source, str, str]]] = {}
    listed = {w.type: listed_queues(w.command) for w in workers}
    for queue in queues:
        _, name, backend = queue
        library = re.compile(rf"\b{backend}\b", re.IGNORECASE)
        candidates = (
            [w for w in workers if name in listed[w.type]]
            + [w for w in workers if library.search(w.command) and not listed[w.type]]
            + [w for w in workers if library.search(w.command)]
            + list(workers[:1])
        )
        if candidates:
            assignment.setdefault(candidates[0].type, []).append(queue)
    return assignment


def listed_queues(command: str) -> set[str]:
    """The queues a worker's command names: Sidekiq's `-q NAME[,WEIGHT]` (`--queue`),
    Celery's `-Q a,b` (`--queues`), Resque's `QUEUE=a,b` (`QUEUES`)."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    names: set[str] = set()
    for word, following in zip(words, [*words[1:], ""], strict=True):
        flag, equals, value = word.partition("=")
        value = value if equals else following
        if flag in ("-q", "--queue"):
            names.add(value.split(",")[0])
        elif flag in ("-Q", "--queues") or (flag in ("QUEUE", "QUEUES") and equals):
            names.update(value.split(","))
    return names - {"", "*"}


def _queue_lines(queues: list[tuple[Source, str, str]], workers: int) -> list[str]:
    if not queues:
        return []
    lines = ["        queues:"]
    if workers > 1:
        lines.append(
            "          # guessed: the role whose command lists the queue or names its "
            "library, else the first"
        )
    elif workers == 1:
        lines.append("          # guessed: the only worker role works every queue found")
    for source, name, backend in queues:
        url = _url_reference(source)
        item = f"{{name: {json.dumps(name)}, backend: {backend}, url: {json.dumps(url)}}}"
        lines.append(f"          - {item}  # seen at {address(source.url)}")
    return lines


def _variable(source: Source) -> str:
    """The environment variable the file's queue URLs name (RabbitMQ's: its management API,
    which no config var holds)."""
    if source.kind == "rabbitmq":
        return f"{source.reference.removesuffix('_URL')}_API_URL"
    return source.reference


def _url_reference(source: Source) -> str:
    return f"${{{_variable(source)}}}"


def environment_lines(apps: Sequence[AppFound]) -> list[str]:
    """The exports the file's references need, each from its app's config var."""
    lines = []
    for app in apps:
        for source in app.sources:
            get = f"heroku config:get {source.var} -a {app.name}"
            if source.kind == "rabbitmq":
                lines.append(
                    f"export {_variable(source)}=\"$({get} | sed -E '{MANAGEMENT_SED}')\"  "
                    "# guessed: its management API"
                )
            else:
                lines.append(f'export {source.reference}="$({get})"')
    return lines


def found_values(apps: Sequence[AppFound]) -> dict[str, str]:
    """The value of each variable the file's references name (RabbitMQ's: its
    management API's URL)."""
    return {
        _variable(source): management_url(source.url) if source.kind == "rabbitmq" else source.url
        for app in apps
        for source in app.sources
    }


def _check(text: str, apps: Sequence[AppFound]) -> None:
    """The written file passes check-config once its references are set."""
    config.parse(yaml.safe_load(text), "(written file)", {**os.environ, **found_values(apps)})


def _summary(apps: Sequence[AppFound]) -> str:
    roles = sum(len(a.processes) for a in apps)
    queues = sum(len(s.queues) for a in apps for s in a.sources)
    return f"{len(apps)} app(s), {roles} role(s), {queues} queue(s) found"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
