"""Load, validate and resolve autoscale.yml.

Settings inherit global `defaults` -> app -> role; the most specific wins.
Strings may reference environment variables as ${NAME} or ${NAME:-fallback},
from the process environment or, where it lacks them, the `.env` beside the file
(dynoscaler/envfile.py); a variable in neither without a fallback is an error, so
a secret is never silently empty, and so is a malformed reference or a value the
environment leaves empty.

`load` is the one check: `check-config` and every service (scaler serve,
reconcile, exporter) call it at start, so whatever starts has passed
check-config and whatever check-config passes starts. The checks a service's
own constructors need (store URL, notifier requirements) live here and are
called from there too (`store_problem`, `notifier_problem`). The file is read
strictly: UTF-8, no duplicate keys, aliases that expand to at most
MAX_YAML_NODES values; numbers must be finite and counts whole.
"""

from __future__ import annotations

import datetime
import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import psycopg2.extensions
import redis.connection
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from dynoscaler import envfile
from dynoscaler.config_schema import MAX_SECONDS, POLICY_PROPERTIES, SCHEMA, SQL_BACKENDS
from dynoscaler.prices import Prices, UnknownDynoType
from dynoscaler.schedules import Schedule, ScheduleError
from dynoscaler.schedules import parse as parse_schedule

DEFAULT_TARGET_QUEUE_TIME = 0.1  # seconds, p95 of web requests' queue time
BUILTIN_DEFAULTS: dict[str, Any] = {
    "min_dynos": 0,
    "max_dynos": 10,
    "target_deadline": 60,
    "target_queue_time": DEFAULT_TARGET_QUEUE_TIME,
    "boot_time": 45,
    "concurrency": 1,
    "miss_ratio": 0.01,
    "max_step": 10,
    "scale_down_when_busy": "allow",
}

# ${NAME} or ${NAME:-fallback}; a fallback holds no "}" and no "${" (no nesting).
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-((?:[^}$]|\$(?!\{))*))?\}")

# Values (scalars, lists, mappings) a document may hold with its aliases expanded:
# a real file has a few thousand; an alias bomb has billions.
MAX_YAML_NODES = 100_000

POSTGRES_PREFIXES = ("postgresql://", "postgres://")
# The databases each SQL job library runs on, by URL scheme (MySQL's as Rails and
# Heroku's add-ons write them; MariaDB is MySQL here).
POSTGRES_SCHEMES = ("postgresql", "postgres")
MYSQL_SCHEMES = ("mysql", "mysql2", "trilogy", "mariadb")
SQL_SCHEMES: dict[str, tuple[str, ...]] = {
    "solid_queue": POSTGRES_SCHEMES + MYSQL_SCHEMES,
    "good_job": POSTGRES_SCHEMES,
    "delayed_job": POSTGRES_SCHEMES + MYSQL_SCHEMES,
    "que": POSTGRES_SCHEMES,
}
SQLITE_PREFIX = "sqlite:///"


class ConfigError(Exception):
    """A settings file that cannot be used; the message names file, path and problem."""


@dataclass(frozen=True)
class QueueSettings:
    name: str
    backend: str
    url: str
    # The backend's key prefix when not its default: RQ's RQ_KEY_PREFIX, the Resque
    # namespace, kombu's global_keyprefix (Celery on Redis).
    prefix: str | None = None


@dataclass(frozen=True)
class SizeOption:
    """A dyno size a role may run at: `concurrency` slots per dyno, each `speed`
    times as fast as a slot of speed 1 (a job of S seconds there takes S / speed)."""

    size: str
    concurrency: int
    speed: float = 1.0

    @property
    def capacity(self) -> float:
        """Slots of speed 1 one dyno of this size is worth."""
        return self.concurrency * self.speed


@dataclass(frozen=True)
class RoleSettings:
    app: str
    role: str
    min_dynos: int
    max_dynos: int
    target_deadline: float
    boot_time: float
    concurrency: int
    miss_ratio: float
    scale_down_window: float
    cooldown: float
    max_step: int
    queues: tuple[QueueSettings, ...] = ()
    requests: str | None = None
    middleware: str | None = None  # the Redis URL of the exporter.web middleware's hashes
    # None: no web sizing on queue time (dynoscaler.model; the rules without its gauge)
    target_queue_time: float | None = DEFAULT_TARGET_QUEUE_TIME
    # The dyno sizes the scaler chooses from (empty: the size is left alone);
    # concurrency is then the largest size's.
    sizes: tuple[SizeOption, ...] = ()
    size_cooldown: float = 0.0
    scale_down_when_busy: str = "allow"
    schedules: tuple[Schedule, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.app, self.role)

    def size(self, name: str | None) -> SizeOption | None:
        """The listed size called `name` (Heroku's names are case-insensitive), or None."""
        if name is None:
            return None
        return next((s for s in self.sizes if s.size.lower() == name.lower()), None)


@dataclass(frozen=True)
class NotifierSettings:
    type: str
    url: str | None = None
    account_id: str | None = None
    insert_key: str | None = None
    timeout: float = 5.0
    # slack: a bot token (files:write) and channel id to upload snapshots to
    token: str | None = None
    channel: str | None = None
    api_url: str | None = None  # default https://slack.com/api


@dataclass(frozen=True)
class ExporterSettings:
    source_timeout: float = 2.0
    formation_interval: float = 10.0


DEFAULT_BUDGET_SHARE = {"shared": 0.5, "dedicated": 0.9}


@dataclass(frozen=True)
class HerokuSettings:
    """The Platform API budget (dynoscaler.heroku_budget): `budget_share` of the
    account's refill (`rate_limit` tokens an hour), for the exporter and the scaler
    together; by default half of it on a shared account, 0.9 on a dedicated one."""

    token_scope: str = "shared"
    budget_share: float | None = None
    rate_limit: int = 4500

    @property
    def share(self) -> float:
        if self.budget_share is not None:
            return self.budget_share
        return DEFAULT_BUDGET_SHARE[self.token_scope]


@dataclass(frozen=True)
class ScalerSettings:
    dry_run: bool = False
    store: str = "sqlite:///dynoscaler.sqlite3"
    prometheus_url: str = "http://127.0.0.1:9090"
    reconcile_interval: float = 30.0
    stale_after: float = 120.0
    notifiers: tuple[NotifierSettings, ...] = ()


@dataclass(frozen=True)
class Config:
    path: str
    roles: tuple[RoleSettings, ...]
    exporter: ExporterSettings = field(default_factory=ExporterSettings)
    scaler: ScalerSettings = field(default_factory=ScalerSettings)
    heroku: HerokuSettings = field(default_factory=HerokuSettings)
    prices: Prices = field(default_factory=Prices)

    def role(self, app: str, role: str) -> RoleSettings | None:
        return next((r for r in self.roles if r.app == app and r.role == role), None)

    @property
    def apps(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.app for r in self.roles))


def load(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read, validate and resolve a settings file; raise ConfigError on any problem.

    The one check of a settings file: `check-config` and every service call it at start.
    """
    path = str(path)
    try:
        document = _read_yaml(path)
        environ = envfile.environment(path, os.environ if environ is None else environ)
        return parse(document, path, environ, env_file=envfile.beside(path))
    except RecursionError:
        raise ConfigError(f"{path}: the document is nested too deeply") from None


def parse(
    document: Any, path: str, environ: Mapping[str, str], env_file: str | None = None
) -> Config:
    """Validate a loaded document, expand its references (from `environ`, which holds the
    .env `env_file`'s values) and resolve it; raise ConfigError."""
    _validate(document, path)  # as written: structure, types, finite numbers, ranges
    expanded, sources = _expand_env(document, path, environ, env_file)
    _validate(expanded, path, sources)  # again with the environment's values (none empty)
    roles = tuple(_resolve_roles(expanded, path))
    scaler = dict(expanded.get("scaler", {}))
    notifiers = tuple(
        NotifierSettings(**{**n, **_stringify(n, "account_id")})
        for n in scaler.pop("notifiers", [])
    )
    settings = Config(
        path=path,
        roles=roles,
        exporter=ExporterSettings(**expanded.get("exporter", {})),
        scaler=ScalerSettings(**scaler, notifiers=notifiers),
        heroku=HerokuSettings(**expanded.get("heroku", {})),
        prices=Prices(expanded.get("prices", {})),
    )
    _check_values(settings, path, sources)
    return settings


def _stringify(mapping: dict[str, Any], key: str) -> dict[str, str]:
    return {key: str(mapping[key])} if key in mapping else {}


# -- reading YAML --------------------------------------------------------------

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and aliases expanding past MAX_YAML_NODES."""

    def compose_mapping_node(self, anchor: str | None) -> MappingNode:
        node = super().compose_mapping_node(anchor)
        first: dict[tuple[str, str], yaml.Mark] = {}
        for key, _ in node.value:
            if not isinstance(key, ScalarNode) or key.tag == _MERGE_TAG:
                continue
            mark = first.setdefault((key.tag, key.value), key.start_mark)
            if mark is not key.start_mark:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"duplicate key {key.value!r} (first at line {mark.line + 1})",
                    key.start_mark,
                )
        return node

    def compose_document(self) -> Node:
        node = super().compose_document()
        _check_expanded_size(node)
        return node


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expanded_size(root: Node) -> None:
    """Refuse a node graph that refers to itself or expands past MAX_YAML_NODES values.

    Aliases make the composed document a graph: each node's expanded size is
    counted once (memoised), so an alias bomb is refused in time linear in the file.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_YAML_NODES:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"aliases expand the document past {MAX_YAML_NODES} values (an alias bomb?)",
                    node.start_mark,
                )
        elif key in open_nodes:
            raise yaml.composer.ComposerError(
                None, None, "an alias refers to a value that contains it", node.start_mark
            )
        elif key not in sizes:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))


def _read_yaml(path: str) -> Any:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - data.rfind(b"\n", 0, error.start)
        raise ConfigError(
            f"{path}:{line}:{column}: not UTF-8 text (byte 0x{data[error.start]:02x}); "
            "save the file as UTF-8"
        ) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        raise ConfigError(
            f"{path}:{line}: not valid YAML: unacceptable character #x{error.character:04x}"
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from None


# -- validation ----------------------------------------------------------------

Where = tuple[Any, ...]
Problem = tuple[Where, str]


def _is_number(checker: Any, value: Any) -> bool:
    """A finite int or float (not a bool): NaN would pass every comparison the schema makes."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _is_integer(checker: Any, value: Any) -> bool:
    """A Python int: jsonschema's own check takes 5.0, which Heroku refuses as a quantity."""
    return isinstance(value, int) and not isinstance(value, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"number": _is_number, "integer": _is_integer}
    ),
)
_VALIDATOR = _Validator(SCHEMA)

_TYPE_WORDS = {
    "number": "a number",
    "integer": "a whole number",
    "string": "text",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
}


def _dotted(parts: Where | list[Any]) -> str:
    return ".".join(str(p) for p in parts) or "(top level)"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _raise(path: str, problems: list[Problem], sources: dict[Where, list[_Reference]]) -> None:
    if problems:
        lines = [
            f"{path}: {_dotted(where)}: {message}{_environment_note(where, sources)}"
            for where, message in sorted(problems, key=lambda p: list(map(str, p[0])))
        ]
        raise ConfigError("\n".join(lines))


def _non_finite(value: Any, where: Where = ()) -> list[Problem]:
    """Every NaN or infinity in the document, wherever it is."""
    if isinstance(value, float) and not math.isfinite(value):
        return [(where, f"{value} is not a finite number")]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _non_finite(v, (*where, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _non_finite(v, (*where, i))]
    return []


def _validate(
    document: Any, path: str, sources: dict[Where, list[_Reference]] | None = None
) -> None:
    if document is None:
        raise ConfigError(f"{path}: the file is empty")
    problems = _non_finite(document)
    reported = {where for where, _ in problems}
    for error in _VALIDATOR.iter_errors(document):
        where = tuple(error.absolute_path)
        if where not in reported:
            problems.append((where, _describe(error)))
    _raise(path, problems, sources or {})


def _describe(error: jsonschema.ValidationError) -> str:
    naming = "propertyNames" in error.schema_path
    if error.validator == "type":
        if naming:
            return f"name {_short(error.instance)} is not text (quote it)"
        wanted = (
            [error.validator_value]
            if isinstance(error.validator_value, str)
            else error.validator_value
        )
        words = " or ".join(_TYPE_WORDS.get(t, t) for t in wanted)
        whole = isinstance(error.instance, float) and error.instance.is_integer()
        hint = f" (write {int(error.instance)})" if whole and "integer" in wanted else ""
        if isinstance(error.instance, datetime.date):  # YAML reads an unquoted date as one
            hint = " (quote it: YAML reads an unquoted date and time as a timestamp)"
        return f"{_short(error.instance)} is not {words}{hint}"
    if error.validator == "minLength":
        return "a value is required"
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known), key=str)
        hint = f" (known keys: {', '.join(known)})" if known else ""
        return f"unknown key {', '.join(_short(k) for k in unknown)}{hint}"
    if error.validator == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return f"{_short(error.instance)} is not one of: {allowed}"
    if error.validator == "pattern":
        # Only names (of apps and roles) carry patterns in the schema.
        return f"{_short(error.instance)} is not a valid name (expected {error.validator_value})"
    return error.message if len(error.message) <= 200 else f"{error.message[:197]}..."


# -- environment references ----------------------------------------------------


@dataclass(frozen=True)
class _Reference:
    """One ${NAME} in a string and what it became."""

    name: str
    value: str
    from_environment: bool  # False: the fallback

    def note(self) -> str:
        if self.value:
            return f"from {'' if self.from_environment else 'the fallback of '}${{{self.name}}}"
        if self.from_environment:
            return f"environment variable {self.name} is empty"
        return f"environment variable {self.name} is not set and its fallback is empty"


def _environment_note(where: Where, sources: dict[Where, list[_Reference]]) -> str:
    """Which variables made the value at `where` (or under it), for an error message."""
    notes = [
        ref.note() for at, refs in sources.items() if at[: len(where)] == where for ref in refs
    ]
    return f" ({'; '.join(dict.fromkeys(notes))})" if notes else ""


def _expand_env(
    document: Any, path: str, environ: Mapping[str, str], env_file: str | None
) -> tuple[Any, dict[Where, list[_Reference]]]:
    """The document with every string's references replaced, and the references per path."""
    problems: list[Problem] = []
    sources: dict[Where, list[_Reference]] = {}

    def expand(value: Any, where: Where) -> Any:
        if isinstance(value, dict):
            return {k: expand(v, (*where, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [expand(v, (*where, i)) for i, v in enumerate(value)]
        if isinstance(value, str):
            return _expand_string(value, environ, env_file, where, problems, sources)
        return value

    expanded = expand(document, ())
    _raise(path, problems, {})
    return expanded, sources


def _expand_string(
    text: str,
    environ: Mapping[str, str],
    env_file: str | None,
    where: Where,
    problems: list[Problem],
    sources: dict[Where, list[_Reference]],
) -> str:
    parts, position = [], 0
    while (start := text.find("${", position)) >= 0:
        match = _ENV_REFERENCE.match(text, start)
        if match is None:
            close = text.find("}", start)
            snippet = text[start : close + 1] if close >= 0 else text[start:]
            problems.append(
                (
                    where,
                    f"malformed environment reference {_short(snippet, 40)}: write ${{NAME}} "
                    "or ${NAME:-fallback}, NAME of letters, digits and _ not starting with a digit",
                )
            )
            return text
        name, fallback = match.groups()
        if name in environ:
            reference = _Reference(name, environ[name], True)
        elif fallback is not None:
            reference = _Reference(name, fallback, False)
        else:
            beside = f" (neither in the environment nor in {env_file})" if env_file else ""
            problems.append((where, f"environment variable {name} is not set{beside}"))
            return text
        sources.setdefault(where, []).append(reference)
        parts += [text[position:start], reference.value]
        position = match.end()
    parts.append(text[position:])
    return "".join(parts)


# -- values the services open: one check, shared with their constructors -------


def redact(url: str) -> str:
    """Hide a password in a URL so output and error messages can be pasted safely."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


def _url_problem(url: str, schemes: tuple[str, ...], what: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number in 0-65535
    except ValueError as error:
        return f"{_short(redact(url))} is not a valid URL: {error}"
    if parts.scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        return f"{_short(redact(url))} is not {what} ({allowed})"
    if not parts.hostname:
        return f"{_short(redact(url))} names no host"
    return None


def http_url_problem(url: str) -> str | None:
    """Why `url` is not an http(s) URL with a host, or None."""
    return _url_problem(url, ("http", "https"), "an HTTP URL")


def _through_management_api(backend: str, url: str) -> bool:
    """RabbitMQ, and Celery or Dramatiq on RabbitMQ (a queue of theirs with an
    http(s) URL): the exporter reads them through the management API."""
    return backend == "rabbitmq" or (
        backend in ("celery", "dramatiq") and urlsplit(url).scheme in ("http", "https")
    )


_PREFIXED = ("rq", "resque", "celery", "bullmq", "dramatiq")


def queue_prefix_problem(queue: QueueSettings) -> str | None:
    """Why a queue's `prefix` means nothing for its backend, or None: only RQ
    (RQ_KEY_PREFIX), Resque (the namespace), Celery on Redis (kombu's
    global_keyprefix), BullMQ (its `prefix` option) and Dramatiq on Redis (the
    RedisBroker's namespace) put a prefix before their keys."""
    if queue.prefix is None:
        return None
    if _through_management_api(queue.backend, queue.url):
        said = queue.backend if queue.backend == "rabbitmq" else f"{queue.backend} on RabbitMQ"
    elif queue.backend not in _PREFIXED:
        said = queue.backend
    else:
        return None
    return f"a key prefix means nothing for {said} (only {', '.join(_PREFIXED)} on Redis have one)"


def queue_url_problem(backend: str, url: str) -> str | None:
    """Why the exporter cannot read a queue of `backend` at `url`, or None."""
    if _through_management_api(backend, url):
        return _url_problem(url, ("http", "https"), "a RabbitMQ management API URL")
    if backend in SQL_BACKENDS:
        databases = "a PostgreSQL" if backend in ("good_job", "que") else "a PostgreSQL or MySQL"
        problem = _url_problem(url, SQL_SCHEMES[backend], f"{databases} URL ({backend})")
        if problem is None and urlsplit(url).scheme in POSTGRES_SCHEMES:
            return _postgres_url_problem(url)
        return problem
    if backend in ("celery", "dramatiq") and urlsplit(url).scheme in ("amqp", "amqps"):
        return (
            f"{_short(redact(url))} is the broker's AMQP URL: {backend} on RabbitMQ is read "
            "through the management API (http://user:password@host:15672/<vhost>)"
        )
    # The Redis-based backends: the exporter opens the URL with redis-py's from_url,
    # whose parser this is.
    try:
        redis.connection.parse_url(url)
    except ValueError as error:
        return f"{_short(redact(url))} is not a Redis URL: {error}"
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return None if parts.path else f"{_short(redact(url))} names no socket path"
    return None if parts.hostname else f"{_short(redact(url))} names no host"


def store_problem(url: str) -> str | None:
    """Why the scaler cannot use `url` as its decision store, or None.

    scaler.store.Store calls it too. It does not connect: an unreachable database
    or an unwritable file is found when the scaler opens it.
    """
    if url.startswith(SQLITE_PREFIX):
        if url[len(SQLITE_PREFIX) :] in ("", ":memory:"):
            # Each connection would get a database of its own: no lock, no in-flight marks.
            return f"{url!r} names no file"
        return None
    if url.startswith(POSTGRES_PREFIXES):
        return _postgres_url_problem(url)
    return f"{_short(redact(url))} is neither {SQLITE_PREFIX}path nor postgresql://..."


def _postgres_url_problem(url: str) -> str | None:
    try:
        psycopg2.extensions.parse_dsn(url)
        urlsplit(url).port  # noqa: B018 - libpq takes any port text until it connects
    except (psycopg2.Error, ValueError) as error:
        return f"{_short(redact(url))} is not a valid PostgreSQL URL: {str(error).strip()}"
    return None


def notifier_problem(notifier: NotifierSettings) -> str | None:
    """Why a notifier cannot send, or None; scaler.notifiers.Notifiers calls it too."""
    if notifier.type == "newrelic":
        if not notifier.account_id or not notifier.insert_key:
            return "a newrelic notifier needs account_id and insert_key"
    elif not notifier.url:
        return f"a {notifier.type} notifier needs a url"
    uploads = (notifier.token, notifier.channel, notifier.api_url)
    if notifier.type != "slack" and any(uploads):
        return f"token, channel and api_url are for slack notifiers, not {notifier.type}"
    if bool(notifier.token) != bool(notifier.channel):
        return "a slack notifier uploading snapshots needs both token and channel"
    for name in ("url", "api_url"):
        url = getattr(notifier, name)
        if url is not None and (problem := http_url_problem(url)):
            return f"{name} {problem}"
    return None


def _check_values(settings: Config, path: str, sources: dict[Where, list[_Reference]]) -> None:
    """What the services' constructors need of the values, after expansion."""
    problems: list[Problem] = []
    for role in settings.roles:
        for index, queue in enumerate(role.queues):
            if problem := queue_url_problem(queue.backend, queue.url):
                where = ("apps", role.app, "roles", role.role, "queues", index, "url")
                problems.append((where, problem))
            if problem := queue_prefix_problem(queue):
                where = ("apps", role.app, "roles", role.role, "queues", index, "prefix")
                problems.append((where, problem))
    for role in settings.roles:
        problems += _size_problems(role, settings.prices)
        # The middleware's hashes are read like a Redis queue backend's keys.
        if role.middleware and (problem := queue_url_problem("redis_list", role.middleware)):
            problems.append((("apps", role.app, "roles", role.role, "middleware", "url"), problem))
    if problem := store_problem(settings.scaler.store):
        problems.append((("scaler", "store"), problem))
    if problem := http_url_problem(settings.scaler.prometheus_url):
        problems.append((("scaler", "prometheus_url"), problem))
    for index, notifier in enumerate(settings.scaler.notifiers):
        if problem := notifier_problem(notifier):
            problems.append((("scaler", "notifiers", index), problem))
    _raise(path, problems, sources)


def _size_problems(role: RoleSettings, prices: Prices) -> list[Problem]:
    """A size listed twice or without a price (the scaler picks the cheapest)."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, option in enumerate(role.sizes):
        where = ("apps", role.app, "roles", role.role, "sizes", index, "size")
        if option.size.lower() in seen:
            problems.append((where, f"size {option.size!r} is listed twice"))
        seen.add(option.size.lower())
        try:
            prices.hourly(option.size)
        except UnknownDynoType as error:
            problems.append((where, str(error)))
    return problems


def _policy(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k in POLICY_PROPERTIES}


def merged_policy(*layers: dict[str, Any]) -> dict[str, Any]:
    """The built-in defaults overridden by each layer in turn (the last wins).

    scale_down_window defaults to boot_time: an idle dyno kept as long as a new one
    takes to boot costs at most what a premature scale-down would (rent or buy).
    cooldown defaults to boot_time too: until then the last scale-up's dynos have
    not served, so a scale-down would only undo it; after it, the scale-down
    window guards against flapping.
    """
    settings = {k: v for layer in (BUILTIN_DEFAULTS, *layers) for k, v in layer.items()}
    settings.setdefault("scale_down_window", settings["boot_time"])
    settings.setdefault("cooldown", settings["boot_time"])
    # After a size change every dyno reboots: S (a 1m rate) reflects the new size a
    # minute after they serve, and the backlog of the restart drains within the
    # deadline; until then the need measured is the change's own.
    size_cooldown = settings["boot_time"] + 60 + settings["target_deadline"]
    settings.setdefault("size_cooldown", min(size_cooldown, MAX_SECONDS))
    return settings


def _resolve_roles(document: dict[str, Any], path: str) -> list[RoleSettings]:
    inherited = _policy(document.get("defaults", {}))
    roles = []
    for app_name, app in document["apps"].items():
        for role_name, role in app["roles"].items():
            where = f"{path}: apps.{app_name}.roles.{role_name}"
            settings = merged_policy(inherited, _policy(app), _policy(role))
            if settings["min_dynos"] > settings["max_dynos"]:
                raise ConfigError(
                    f"{where}: min_dynos ({settings['min_dynos']}) is above "
                    f"max_dynos ({settings['max_dynos']})"
                )
            queues = tuple(QueueSettings(**q) for q in role.get("queues", []))
            middleware = role.get("middleware", {}).get("url")
            if not queues and role.get("requests") is None and middleware is None:
                raise ConfigError(
                    f"{where}: needs queues, requests: router or middleware to scale on"
                )
            _check_unique_queues(queues, where)
            settings["schedules"] = _role_schedules(settings, document, app_name, role_name, path)
            sizes = tuple(SizeOption(**s) for s in role.get("sizes", []))
            if sizes:
                if "concurrency" in role:
                    raise ConfigError(
                        f"{where}: concurrency is set per size under sizes:, not on the role"
                    )
                settings["concurrency"] = max(sizes, key=lambda s: s.capacity).concurrency
            roles.append(
                RoleSettings(
                    app=app_name,
                    role=role_name,
                    queues=queues,
                    requests=role.get("requests"),
                    middleware=middleware,
                    sizes=sizes,
                    **settings,
                )
            )
    return roles


def schedules_of(
    settings: dict[str, Any], origin: Where, now: float
) -> tuple[tuple[Schedule, ...], list[Problem]]:
    """The schedules of resolved policy `settings` (their `schedules` as written at
    `origin`), and the problems of those that cannot be used at `now`."""
    found: list[Schedule] = []
    problems: list[Problem] = []
    for index, entry in enumerate(settings.get("schedules", [])):
        where = (*origin, "schedules", index)
        if any(s.name == entry["name"] for s in found):
            problems.append(((*where, "name"), f"schedule {entry['name']!r} is listed twice"))
        try:
            found.append(parse_schedule(entry, settings["min_dynos"], settings["max_dynos"], now))
        except ScheduleError as error:
            problems.append(((*where, error.key) if error.key else where, str(error)))
    return tuple(found), problems


def _role_schedules(
    settings: dict[str, Any], document: dict[str, Any], app: str, role: str, path: str
) -> tuple[Schedule, ...]:
    """The role's schedules, from the most specific level that lists them."""
    levels = (
        (("apps", app, "roles", role), document["apps"][app]["roles"][role]),
        (("apps", app), document["apps"][app]),
        (("defaults",), document.get("defaults", {})),
    )
    origin = next((where for where, level in levels if "schedules" in level), ())
    found, problems = schedules_of(settings, origin, time.time())
    if origin[:1] == ("defaults",) or len(origin) == 2:
        problems = [(where, f"{message} (for {app}/{role})") for where, message in problems]
    _raise(path, problems, {})
    return found


def _check_unique_queues(queues: tuple[QueueSettings, ...], where: str) -> None:
    seen = set()
    for queue in queues:
        if (queue.backend, queue.url, queue.name) in seen:
            raise ConfigError(f"{where}.queues: queue {queue.name!r} is listed twice")
        seen.add((queue.backend, queue.url, queue.name))
