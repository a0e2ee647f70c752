"""PostgreSQL auth operations: SQL run as postgres from a 0600 file (passwords never on a command line)."""

from __future__ import annotations

import shlex
import uuid

from pyinfra import host, logger, state
from pyinfra.api import StringCommand, operation

from deploys.pg_auth.sql import masked_sql
from hxinfra.desired import ManagedFile
from hxinfra.operations import upload_commands


@operation()
def pg_sql(statements: list[str], port: int = 5432, backup_roles: bool = True):  # type: ignore[no-untyped-def]
    """
    Run SQL as postgres from a 0600 file (passwords never on a command line); no-op when empty.

    + statements: SQL statements and psql meta-commands (``\\connect db``)
    + port: the server's port
    + backup_roles: keep ``pg_dumpall --roles-only`` first (0600, /var/backups/hxinfra/postgresql)
    """
    if not statements:
        host.noop("roles and databases already as wanted")
        return
    if state.config.DIFF:
        logger.info(f"{host.print_prefix}Will run as postgres:")
        for s in masked_sql(statements):
            logger.info(f"    {s}")
    path = f"/var/lib/postgresql/.hxinfra-{uuid.uuid4().hex}.sql"
    body = "\\set ON_ERROR_STOP on\n" + "\n".join(statements) + "\n"
    temp = host.get_temp_filename(f"hxinfra-{uuid.uuid4()}")
    yield from upload_commands(ManagedFile(path, body, mode="0600", user="postgres", group="postgres"), temp)
    q = shlex.quote
    backup = (
        "umask 077 && mkdir -p /var/backups/hxinfra/postgresql && runuser -u postgres -- pg_dumpall -p "
        f"{int(port)} --roles-only > /var/backups/hxinfra/postgresql/roles-$(date +%Y%m%dT%H%M%S).sql && "
        if backup_roles
        else ""
    )
    script = f"cd / && {backup}runuser -u postgres -- psql -X -q -p {int(port)} -d postgres -f {q(path)}; rc=$?; rm -f {q(path)}; exit $rc"  # noqa: E501
    yield StringCommand("sh", "-c", q(script))
