"""The SQL job libraries' tables and rows, as the libraries write them: for the tests and
`dynoscaler bench sql`, never used by the exporter itself.

The DDL is written from each library's published schema (Rails `datetime` is
`timestamp(6)` on PostgreSQL and `datetime(6)` on MySQL/MariaDB, `string` is
`varchar(255)`), with the indexes the library ships:

- Solid Queue: rails/solid_queue lib/generators/solid_queue/install/templates/db/queue_schema.rb
  (the tables the exporter reads);
- GoodJob: bensheldon/good_job
  lib/generators/good_job/templates/install/migrations/create_good_jobs.rb.erb, plus
  update/migrations/05_add_index_good_jobs_finished_at_for_cleanup.rb.erb;
- Delayed Job: collectiveidea/delayed_job_active_record
  lib/generators/delayed_job/templates/migration.rb;
- Que: que-rb/que lib/que/migrations/1..7 (the table as `structure.sql` dumps it
  after Que 2's migrations; its notify triggers are left out).
"""

from __future__ import annotations

from typing import Any

SCHEMAS: dict[tuple[str, str], list[str]] = {
    ("solid_queue", "postgresql"): [
        """CREATE TABLE solid_queue_jobs (id bigserial PRIMARY KEY,
            queue_name varchar(255) NOT NULL, class_name varchar(255) NOT NULL, arguments text,
            priority integer DEFAULT 0 NOT NULL, active_job_id varchar(255),
            scheduled_at timestamp(6), finished_at timestamp(6), concurrency_key varchar(255),
            created_at timestamp(6) NOT NULL, updated_at timestamp(6) NOT NULL)""",
        "CREATE INDEX index_solid_queue_jobs_on_finished_at ON solid_queue_jobs (finished_at)",
        "CREATE INDEX index_solid_queue_jobs_for_filtering ON solid_queue_jobs "
        "(queue_name, finished_at)",
        "CREATE INDEX index_solid_queue_jobs_for_alerting ON solid_queue_jobs "
        "(scheduled_at, finished_at)",
        """CREATE TABLE solid_queue_ready_executions (id bigserial PRIMARY KEY,
            job_id bigint NOT NULL REFERENCES solid_queue_jobs ON DELETE CASCADE,
            queue_name varchar(255) NOT NULL, priority integer DEFAULT 0 NOT NULL,
            created_at timestamp(6) NOT NULL)""",
        "CREATE UNIQUE INDEX index_solid_queue_ready_executions_on_job_id "
        "ON solid_queue_ready_executions (job_id)",
        "CREATE INDEX index_solid_queue_poll_all ON solid_queue_ready_executions "
        "(priority, job_id)",
        "CREATE INDEX index_solid_queue_poll_by_queue ON solid_queue_ready_executions "
        "(queue_name, priority, job_id)",
        """CREATE TABLE solid_queue_scheduled_executions (id bigserial PRIMARY KEY,
            job_id bigint NOT NULL REFERENCES solid_queue_jobs ON DELETE CASCADE,
            queue_name varchar(255) NOT NULL, priority integer DEFAULT 0 NOT NULL,
            scheduled_at timestamp(6) NOT NULL, created_at timestamp(6) NOT NULL)""",
        "CREATE INDEX index_solid_queue_dispatch_all ON solid_queue_scheduled_executions "
        "(scheduled_at, priority, job_id)",
        """CREATE TABLE solid_queue_blocked_executions (id bigserial PRIMARY KEY,
            job_id bigint NOT NULL REFERENCES solid_queue_jobs ON DELETE CASCADE,
            queue_name varchar(255) NOT NULL, priority integer DEFAULT 0 NOT NULL,
            concurrency_key varchar(255) NOT NULL, expires_at timestamp(6) NOT NULL,
            created_at timestamp(6) NOT NULL)""",
        "CREATE INDEX index_solid_queue_blocked_executions_for_maintenance "
        "ON solid_queue_blocked_executions (expires_at, concurrency_key)",
        """CREATE TABLE solid_queue_claimed_executions (id bigserial PRIMARY KEY,
            job_id bigint NOT NULL REFERENCES solid_queue_jobs ON DELETE CASCADE,
            process_id bigint, created_at timestamp(6) NOT NULL)""",
        "CREATE INDEX index_solid_queue_claimed_executions_on_process_id_and_job_id "
        "ON solid_queue_claimed_executions (process_id, job_id)",
        """CREATE TABLE solid_queue_failed_executions (id bigserial PRIMARY KEY,
            job_id bigint NOT NULL REFERENCES solid_queue_jobs ON DELETE CASCADE,
            error text, created_at timestamp(6) NOT NULL)""",
        """CREATE TABLE solid_queue_pauses (id bigserial PRIMARY KEY,
            queue_name varchar(255) NOT NULL UNIQUE, created_at timestamp(6) NOT NULL)""",
        """CREATE TABLE solid_queue_processes (id bigserial PRIMARY KEY,
            kind varchar(255) NOT NULL, last_heartbeat_at timestamp(6) NOT NULL,
            supervisor_id bigint, pid integer NOT NULL, hostname varchar(255), metadata text,
            created_at timestamp(6) NOT NULL, name varchar(255) NOT NULL)""",
    ],
    ("good_job", "postgresql"): [
        """CREATE TABLE good_jobs (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            queue_name text, priority integer, serialized_params jsonb,
            scheduled_at timestamp(6), performed_at timestamp(6), finished_at timestamp(6),
            error text, created_at timestamp(6) NOT NULL, updated_at timestamp(6) NOT NULL,
            active_job_id uuid, concurrency_key text, cron_key text, retried_good_job_id uuid,
            cron_at timestamp(6), batch_id uuid, batch_callback_id uuid, is_discrete boolean,
            executions_count integer, job_class text, error_event smallint)""",
        "CREATE INDEX index_good_jobs_on_scheduled_at ON good_jobs (scheduled_at) "
        "WHERE finished_at IS NULL",
        "CREATE INDEX index_good_jobs_on_queue_name_and_scheduled_at ON good_jobs "
        "(queue_name, scheduled_at) WHERE finished_at IS NULL",
        "CREATE INDEX index_good_jobs_jobs_on_finished_at ON good_jobs (finished_at) "
        "WHERE retried_good_job_id IS NULL AND finished_at IS NOT NULL",
        "CREATE INDEX index_good_jobs_jobs_on_priority_created_at_when_unfinished ON good_jobs "
        "(priority DESC NULLS LAST, created_at) WHERE finished_at IS NULL",
        "CREATE INDEX index_good_jobs_jobs_on_finished_at_only ON good_jobs (finished_at) "
        "WHERE finished_at IS NOT NULL",
    ],
    ("que", "postgresql"): [
        """CREATE TABLE que_jobs (priority smallint DEFAULT 100 NOT NULL,
            run_at timestamptz DEFAULT now() NOT NULL, id bigserial PRIMARY KEY,
            job_class text NOT NULL, error_count integer DEFAULT 0 NOT NULL,
            last_error_message text, queue text DEFAULT 'default' NOT NULL,
            last_error_backtrace text, finished_at timestamptz, expired_at timestamptz,
            args jsonb DEFAULT '[]' NOT NULL, data jsonb DEFAULT '{}' NOT NULL,
            job_schema_version integer NOT NULL, kwargs jsonb DEFAULT '{}' NOT NULL)""",
        "CREATE INDEX que_poll_idx ON que_jobs (queue, priority, run_at, id) "
        "WHERE finished_at IS NULL AND expired_at IS NULL",
        "CREATE INDEX que_poll_idx_with_job_schema_version ON que_jobs "
        "(job_schema_version, queue, priority, run_at, id) "
        "WHERE finished_at IS NULL AND expired_at IS NULL",
    ],
}
SCHEMAS[("delayed_job", "postgresql")] = [
    """CREATE TABLE delayed_jobs (id bigserial PRIMARY KEY,
        priority integer DEFAULT 0 NOT NULL, attempts integer DEFAULT 0 NOT NULL,
        handler text NOT NULL, last_error text, run_at timestamp(6), locked_at timestamp(6),
        failed_at timestamp(6), locked_by varchar(255), queue varchar(255),
        created_at timestamp(6), updated_at timestamp(6))""",
    "CREATE INDEX delayed_jobs_priority ON delayed_jobs (priority, run_at)",
]


def _mysql(statements: list[str]) -> list[str]:
    """The PostgreSQL DDL above in MySQL/MariaDB's words."""
    words = {
        "bigserial PRIMARY KEY": "BIGINT AUTO_INCREMENT PRIMARY KEY",
        "timestamp(6)": "datetime(6)",
        "REFERENCES solid_queue_jobs ON DELETE CASCADE": "",
        "UNIQUE,": ",",
    }
    converted = []
    for statement in statements:
        for postgresql, mysql in words.items():
            statement = statement.replace(postgresql, mysql)
        converted.append(statement)
    return converted


for _library in ("solid_queue", "delayed_job"):
    SCHEMAS[(_library, "mysql")] = _mysql(SCHEMAS[(_library, "postgresql")])


# Not shipped by the libraries: what an app whose backlog runs to 100,000 jobs can add
# (CONCURRENTLY on a live PostgreSQL table) so that the exporter's read is an index-only
# scan of the waiting jobs (the visibility map set by vacuum) instead of a pass over their
# rows (docs/exporter.md, "The SQL job libraries"). On PostgreSQL each is the backend's
# WAITING_INDEX: the exporter reads each queue from its ranges when an index starting with
# those columns is there. Que's `que_poll_idx` already holds every column Que's read needs.
EXTRA_INDEXES: dict[tuple[str, str], str] = {
    ("solid_queue", "postgresql"): "CREATE INDEX dynoscaler_ready_by_age "
    "ON solid_queue_ready_executions (queue_name, created_at)",
    ("good_job", "postgresql"): "CREATE INDEX dynoscaler_good_jobs_waiting ON good_jobs "
    "(queue_name, performed_at, scheduled_at) INCLUDE (created_at) WHERE finished_at IS NULL",
    ("delayed_job", "postgresql"): "CREATE INDEX dynoscaler_delayed_jobs_waiting "
    "ON delayed_jobs (queue, locked_at, run_at) INCLUDE (locked_by) WHERE failed_at IS NULL",
    # InnoDB's secondary indexes hold the primary key, and MySQL has no partial index
    ("solid_queue", "mysql"): "CREATE INDEX dynoscaler_ready_by_age "
    "ON solid_queue_ready_executions (queue_name, created_at)",
    ("delayed_job", "mysql"): "CREATE INDEX dynoscaler_delayed_jobs_waiting "
    "ON delayed_jobs (failed_at, queue, locked_at, run_at, locked_by)",
}


def create(cursor: Any, library: str, dialect: str, extra_index: bool = False) -> None:
    """The library's tables and shipped indexes, and with `extra_index` its EXTRA_INDEXES one."""
    for statement in SCHEMAS[(library, dialect)]:
        cursor.execute(statement)
    if extra_index and (library, dialect) in EXTRA_INDEXES:
        cursor.execute(EXTRA_INDEXES[(library, dialect)])
