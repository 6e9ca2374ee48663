"""JSON Schema of autoscale.yml, checked with the jsonschema library.

Policy keys may appear under `defaults`, under an app and under a role; the most
specific one wins (see dynoscaler.config).
"""

from typing import Any

# Job libraries whose queues are tables in a SQL database (exporter/collectors/sql_source.py).
SQL_BACKENDS = ("solid_queue", "good_job", "delayed_job", "que")
BACKENDS = (
    "sidekiq",
    "resque",
    "rq",
    "celery",
    "redis_list",
    "rabbitmq",
    "bullmq",
    "dramatiq",
    *SQL_BACKENDS,
)

# "number" is finite and "integer" a whole number without a fraction part (5,
# not 5.0): dynoscaler.config checks types with its own type checker.
# Bounds far above any real setting keep sums and timers finite: a year of
# seconds, ten thousand dynos.
MAX_SECONDS = 365 * 24 * 3600
MAX_COUNT = 10_000

_seconds = {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SECONDS}
_seconds_or_zero = {"type": "number", "minimum": 0, "maximum": MAX_SECONDS}
_count = {"type": "integer", "minimum": 0, "maximum": MAX_COUNT}
_positive_count = {"type": "integer", "minimum": 1, "maximum": MAX_COUNT}

# A known window with its own floor and budget (dynoscaler.schedules): it opens by
# `cron` (or once, `at` an ISO date and time) in `timezone` and lasts `duration`
# (seconds, or 35m, 2h).
SCHEDULE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "duration"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$"},
        "cron": {"type": "string", "minLength": 1},
        "at": {"type": "string", "minLength": 1},
        "duration": {"type": ["number", "string"]},
        "timezone": {"type": "string", "minLength": 1},
        "min_dynos": _count,
        "max_dynos": _count,
    },
}

POLICY_PROPERTIES: dict[str, Any] = {
    "min_dynos": _count,
    "max_dynos": _count,
    "schedules": {"type": "array", "items": SCHEDULE},
    "target_deadline": _seconds,
    # Web roles: the p95 of request queue time (router to app) to stay under.
    "target_queue_time": _seconds,
    "boot_time": _seconds_or_zero,
    "concurrency": _positive_count,
    # Share of jobs allowed to finish after the deadline; sets the square-root
    # staffing margin (beta) of the capacity model.
    "miss_ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.5},
    # How long the desired count must stay lower before dynos are removed.
    "scale_down_window": _seconds_or_zero,
    # Seconds after an action during which the scaler takes no other scale-down.
    "cooldown": _seconds_or_zero,
    # Most dynos one action may add or remove.
    "max_step": _positive_count,
    # Seconds after a dyno size change during which the scaler changes no size.
    "size_cooldown": _seconds_or_zero,
    # What a scale-down does while jobs run (Heroku stops dynos with SIGTERM, then
    # SIGKILL 30 s later): allow, wait (while the jobs in progress exceed the
    # slots that would remain), wait_long (while any job older than the grace
    # period runs), quiet (the dynos it stops stop fetching first; scaler.quiet).
    # docs/scaler.md, "Scale-downs and running jobs".
    "scale_down_when_busy": {"enum": ["allow", "wait", "wait_long", "quiet"]},
}

# One dyno size a role may run at: its Heroku dyno type, worker slots per dyno and
# speed relative to the others (a job takes S / speed).
SIZE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["size", "concurrency"],
    "properties": {
        "size": {"type": "string", "pattern": "^[A-Za-z0-9.-]+$"},
        "concurrency": _positive_count,
        "speed": {"type": "number", "exclusiveMinimum": 0, "maximum": 1_000},
    },
}

QUEUE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "backend", "url"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "backend": {"enum": list(BACKENDS)},
        "url": {"type": "string", "minLength": 1},
        # The key prefix of rq, resque, celery, bullmq and dramatiq on Redis
        # (config.queue_prefix_problem).
        "prefix": {"type": "string", "minLength": 1},
    },
}

ROLE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **POLICY_PROPERTIES,
        "queues": {"type": "array", "items": QUEUE},
        "requests": {"enum": ["router"]},
        # Web roles: the Redis the exporter.web middleware writes request times to.
        "middleware": {
            "type": "object",
            "additionalProperties": False,
            "required": ["url"],
            "properties": {"url": {"type": "string", "minLength": 1}},
        },
        # Dyno sizes the scaler may choose from (dynoscaler.model.choose_size).
        "sizes": {"type": "array", "minItems": 1, "items": SIZE},
    },
}

APP = {
    "type": "object",
    "additionalProperties": False,
    "required": ["roles"],
    "properties": {
        **POLICY_PROPERTIES,
        "roles": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"type": "string", "pattern": "^[a-z0-9_-]+$"},
            "additionalProperties": ROLE,
        },
    },
}

NOTIFIER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {
        "type": {"enum": ["webhook", "slack", "newrelic"]},
        "url": {"type": "string", "minLength": 1},
        "account_id": {"type": ["string", "integer"], "minLength": 1, "minimum": 0},
        "insert_key": {"type": "string", "minLength": 1},
        "timeout": _seconds,
        "token": {"type": "string", "minLength": 1},
        "channel": {"type": "string", "pattern": "^[A-Z0-9]{2,}$"},
        "api_url": {"type": "string", "minLength": 1},
    },
}

EXPORTER = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "source_timeout": _seconds,
        "formation_interval": _seconds,
    },
}

# The Heroku Platform API budget: how much of the account's rate limit dynoscaler
# (exporter and scaler together) may spend (dynoscaler.heroku_budget).
HEROKU = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        # Share of the account's refill dynoscaler may spend.
        "budget_share": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        # shared: the key's account is also used by people, deploys and other tools;
        # dedicated: an account only dynoscaler uses (its default share is higher).
        "token_scope": {"enum": ["shared", "dedicated"]},
        # The account's limit, tokens per hour (Heroku's default 4,500; raised on request).
        "rate_limit": {"type": "integer", "minimum": 1, "maximum": 10_000_000},
    },
}

SCALER = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "dry_run": {"type": "boolean"},
        "store": {"type": "string", "minLength": 1},
        "prometheus_url": {"type": "string", "minLength": 1},
        "reconcile_interval": _seconds,
        # Inputs older than this are stale: no scale-down on them.
        "stale_after": _seconds,
        "notifiers": {"type": "array", "items": NOTIFIER},
    },
}

# Dollars per dyno-hour per dyno type, over dynoscaler.prices' table.
PRICES = {
    "type": "object",
    "propertyNames": {"type": "string", "pattern": "^[A-Za-z0-9.-]+$"},
    "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1_000},
}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apps"],
    "properties": {
        "defaults": {
            "type": "object",
            "additionalProperties": False,
            "properties": POLICY_PROPERTIES,
        },
        "apps": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"type": "string", "pattern": "^[a-z][a-z0-9-]{1,29}$"},
            "additionalProperties": APP,
        },
        "exporter": EXPORTER,
        "scaler": SCALER,
        "heroku": HEROKU,
        "prices": PRICES,
    },
}
