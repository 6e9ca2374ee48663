"""Load, validate and resolve autoscale.yml.

Settings inherit global `defaults` -> app -> role; the most specific wins.
Strings may reference environment variables as ${NAME} or ${NAME:-fallback};
an unset variable without a fallback is an error, so a secret is never silently
empty.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import yaml

from dynoscaler.config_schema import POLICY_PROPERTIES, SCHEMA

BUILTIN_DEFAULTS: dict[str, Any] = {
    "min_dynos": 0,
    "max_dynos": 10,
    "target_deadline": 60,
    "boot_time": 45,
    "concurrency": 1,
    "miss_ratio": 0.01,
    "max_step": 10,
}

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """A settings file that cannot be used; the message names file, path and problem."""


@dataclass(frozen=True)
class QueueSettings:
    name: str
    backend: str
    url: str


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

    @property
    def key(self) -> tuple[str, str]:
        return (self.app, self.role)


@dataclass(frozen=True)
class NotifierSettings:
    type: str
    url: str | None = None
    account_id: str | None = None
    insert_key: str | None = None
    timeout: float = 5.0


@dataclass(frozen=True)
class ExporterSettings:
    source_timeout: float = 2.0
    formation_interval: float = 10.0


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

    def role(self, app: str, role: str) -> RoleSettings | None:
        return next((r for r in self.roles if r.app == app and r.role == role), None)

    @property
    def apps(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.app for r in self.roles))


def load(path: str | os.PathLike[str], environ: dict[str, str] | None = None) -> Config:
    """Read, validate and resolve a settings file; raise ConfigError on any problem."""
    path = str(path)
    document = _read_yaml(path)
    return parse(document, path, os.environ if environ is None else environ)


def parse(document: Any, path: str, environ: dict[str, str]) -> Config:
    _validate(document, path)
    document = _expand_env(document, path, environ, ())
    roles = tuple(_resolve_roles(document, path))
    scaler = dict(document.get("scaler", {}))
    notifiers = tuple(
        NotifierSettings(**{**n, **_stringify(n, "account_id")})
        for n in scaler.pop("notifiers", [])
    )
    return Config(
        path=path,
        roles=roles,
        exporter=ExporterSettings(**document.get("exporter", {})),
        scaler=ScalerSettings(**scaler, notifiers=notifiers),
    )


def _stringify(mapping: dict[str, Any], key: str) -> dict[str, str]:
    return {key: str(mapping[key])} if key in mapping else {}


def _read_yaml(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from None


def _dotted(parts: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in parts) or "(top level)"


def _validate(document: Any, path: str) -> None:
    if document is None:
        raise ConfigError(f"{path}: the file is empty")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [f"{path}: {_dotted(list(e.absolute_path))}: {_describe(e)}" for e in errors]
        raise ConfigError("\n".join(lines))


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        hint = f" (known keys: {', '.join(known)})" if known else ""
        return f"unknown key {', '.join(map(repr, unknown))}{hint}"
    if error.validator == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return f"{error.instance!r} is not one of: {allowed}"
    if error.validator == "pattern":
        # Only names (of apps and roles) carry patterns in the schema.
        return f"{error.instance!r} is not a valid name (expected {error.validator_value})"
    return error.message


def _expand_env(value: Any, path: str, environ: dict[str, str], where: tuple[Any, ...]) -> Any:
    if isinstance(value, dict):
        return {k: _expand_env(v, path, environ, (*where, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, path, environ, (*where, i)) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, fallback = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if fallback is not None:
            return fallback
        raise ConfigError(f"{path}: {_dotted(where)}: environment variable {name} is not set")

    return _ENV_REFERENCE.sub(substitute, value)


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
            if not queues and role.get("requests") is None:
                raise ConfigError(f"{where}: needs queues or requests: router to scale on")
            _check_unique_queues(queues, where)
            roles.append(
                RoleSettings(
                    app=app_name,
                    role=role_name,
                    queues=queues,
                    requests=role.get("requests"),
                    **settings,
                )
            )
    return roles


def _check_unique_queues(queues: tuple[QueueSettings, ...], where: str) -> None:
    seen = set()
    for queue in queues:
        if (queue.backend, queue.url, queue.name) in seen:
            raise ConfigError(f"{where}.queues: queue {queue.name!r} is listed twice")
        seen.add((queue.backend, queue.url, queue.name))
