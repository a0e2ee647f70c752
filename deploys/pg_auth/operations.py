"""PostgreSQL auth operations: SQL run as postgres from a 0600 file (passwords never on a command line)."""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from pyinfra import host, logger, state
from pyinfra.api import StringCommand, operation

from deploys.pg_auth.facts import PgAuthState, PgRunningPort
from deploys.pg_auth.sql import masked_sql
from hxinfra.desired import ManagedFile
from hxinfra.ops.configset import upload_commands


@operation()
def pg_sql(  # type: ignore[no-untyped-def]
    plan: Callable[[Mapping[str, Any]], list[str]],
    role_names: list[str],
    db_names: list[str],
    version: int,
    cluster: str,
    backup_roles: bool = True,
):
    """
    Run the SQL that brings roles and databases to the data, as postgres from a 0600 file
    (passwords never on a command line); no-op when there is nothing to do.

    The roles and databases are read when the operation runs, on the port the cluster listens on
    then: after this run's restart, and after the cluster was started again by this run when it
    was down when the run began (so the SQL is planned from what is, not from a stopped server).

    + plan: the statements for the current state (``sql_plan(data, current)``)
    + role_names, db_names: the roles and databases the data names (what is read)
    + version, cluster: the cluster (pg_lsclusters)
    + backup_roles: keep ``pg_dumpall --roles-only`` first (0600, /var/backups/hxinfra/postgresql)
    """
    port = host.get_fact(PgRunningPort, version=version, cluster=cluster)
    current = host.get_fact(PgAuthState, port=port, role_names=role_names, db_names=db_names) if port else {}
    statements = plan(current)
    if not statements:
        host.noop("roles and databases already as wanted")
        return
    if state.config.DIFF:
        logger.info(f"{host.print_prefix}Will run as postgres:")
        for s in masked_sql(statements):
            logger.info(f"    {s}")
    if not port:  # the cluster is down now: say so instead of psql's socket error
        message = f"hxinfra: PostgreSQL {int(version)}/{cluster} is not running: roles and databases were not changed"
        yield StringCommand("sh", "-c", shlex.quote(f"echo {shlex.quote(message)} >&2; exit 1"))
        return
    path = f"/var/lib/postgresql/.hxinfra-{uuid.uuid4().hex}.sql"
    body = "\\set ON_ERROR_STOP on\n" + "\n".join(statements) + "\n"
    temp = host.get_temp_filename(f"hxinfra-{uuid.uuid4()}")
    yield from upload_commands(ManagedFile(path, body, mode="0600", user="postgres", group="postgres"), temp)
    q = shlex.quote
    # the roles' dump is written beside its name and kept only when whole (a full disk, a stopped
    # server): an empty dump never sits among the good ones
    dump = "/var/backups/hxinfra/postgresql/roles-$(date +%Y%m%dT%H%M%S).sql"
    backup = (
        "umask 077 && mkdir -p /var/backups/hxinfra/postgresql && "
        f'dump={dump} && {{ runuser -u postgres -- pg_dumpall -p {int(port)} --roles-only > "$dump.part" '
        '&& mv -f "$dump.part" "$dump" || { rm -f "$dump.part"; false; }; } && '
        if backup_roles
        else ""
    )
    script = f"cd / && {backup}runuser -u postgres -- psql -X -q -p {int(port)} -d postgres -f {q(path)}; rc=$?; rm -f {q(path)}; exit $rc"  # noqa: E501
    yield StringCommand("sh", "-c", q(script))
