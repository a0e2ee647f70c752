"""PostgreSQL authentication on Debian's packaged PostgreSQL: TLS, SCRAM, pg_hba, roles and databases.

The old role replaced Debian's postgresql.conf, used removed settings and relative TLS paths, and
created a database before its owner. This deploy never touches postgresql.conf: its settings go
to a drop-in in the cluster's ``conf.d/``; ``pg_hba.conf`` is managed whole (peer for local
``postgres``, loopback, ``hostssl`` rules from data with scram-sha-256, every other remote
non-SSL connection rejected, no ``trust``). New files are checked by PostgreSQL itself
(``postgres -C`` parses the configuration, ``pg_hba_file_rules`` and ``pg_file_settings`` report
errors) and rolled back on error. A reload follows every validated change; a restart only when
PostgreSQL says a setting is ``pending_restart`` (and the run says which).

Roles come before databases; CONNECT is revoked from PUBLIC and granted per role; schema
privileges are granted inside each database (PostgreSQL 15 no longer gives CREATE on public).
Passwords come from data (the vault), are turned into SCRAM verifiers on the controller and
reach the host only inside a 0600 SQL file, never a command line. A second run compares the
stored verifier and reports zero changes.
"""

from __future__ import annotations

import shlex
from typing import Any

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.operations import server

from deploys.ca_trust.config import CERT_DIR
from deploys.common import OS_RELEASE, declared_codename, os_release_fields
from deploys.pg_auth.config import (
    COMPONENT_TAGS,
    DEFAULTS,
    PGDG_SOURCES,
    PgAuthError,
    _psql,
    audit,
    backup,
    check_data,
    databases,
    desired_config,
    health,
    keytab_command,
    openings,
    paths,
    pgdg_suite,
    plan,
    repo_files,
    restart_reasons,
    roles,
    rollback,
    service_principal,
    settings,
    validate_command,
)
from deploys.pg_auth.facts import PgKeytab, PgRunningPort, PgSettings
from deploys.pg_auth.operations import pg_sql
from deploys.pg_auth.sql import sql_plan
from hxinfra import batch
from hxinfra.components import Component
from hxinfra.deploytools import component_data, step
from hxinfra.ops import system
from hxinfra.ops.configset import config_set

COMPONENT = Component(
    "pg_auth",
    DEFAULTS,
    groups=("database_servers",),
    check=check_data,
    tags=COMPONENT_TAGS,
    plan=plan,
    health=health,
    serves=True,
    rollback=rollback,
    audit=audit,
    openings=openings,
    backup=backup,
    ansible={"hx_pg_ca_path": "pg_auth_ssl_ca"},
)


def _codename(data: dict[str, Any]) -> str | None:
    """The host's release codename, from its /etc/os-release (the PGDG suite follows it; a declared
    ``hx_os_release`` only says what the offline plan shows, and a host that differs is named)."""
    release = batch.lookup("contents", [OS_RELEASE])[OS_RELEASE] or ""
    codename = os_release_fields(release).get("VERSION_CODENAME") or None
    if data["pg_auth_pgdg"] and pgdg_suite(data, codename) is None:
        raise PgAuthError(f"{host.name}: /etc/os-release names no VERSION_CODENAME: set pg_auth_pgdg_suite")
    declared = declared_codename(data)
    if declared and codename and declared != codename:
        logger.warning(f"{host.print_prefix}hx_os_release says {declared}, the host runs {codename}: {codename} used")
    return codename


@deploy("PostgreSQL authentication", data_defaults=DEFAULTS)
def pg_auth() -> None:
    """Install PostgreSQL, converge TLS/SCRAM settings and pg_hba.conf, then roles and databases."""
    data = component_data(
        COMPONENT,
        host.data,
        extra_keys=(*CERT_DIR, "hx_members", "hx_domain", "hx_realm", "hx_os_release"),
        defaults=CERT_DIR,
    )
    p = paths(data)
    version = int(data["pg_auth_version"])
    batch.want("contents", [OS_RELEASE])
    if step(COMPONENT, host.data, "packages"):
        codename = _codename(data)
        system.packages(
            name="Install postgresql-common and ssl-cert (the PGDG key ships in postgresql-common)",
            packages=["postgresql-common", "ssl-cert"],
            update=True,
            cache_time=24 * 3600,
        )
        repo = config_set(name=f"Write {PGDG_SOURCES} (removed unless pg_auth_pgdg)", items=repo_files(data, codename))
        system.package_lists(name="Update the apt lists after a repository change", _if=repo.did_change)
        system.packages(
            name="Install the PostgreSQL server and client of pg_auth_version",
            packages=[f"postgresql-{version}", f"postgresql-client-{version}"],
        )
    running_port = host.get_fact(PgRunningPort, version=version, cluster=data["pg_auth_cluster"]) or int(
        data["pg_auth_port"]
    )
    # started before its files are checked: PostgreSQL's own check of pg_hba.conf and the settings
    # asks the running server, and a cluster found stopped comes back first with its last good config
    if step(COMPONENT, host.data, "service"):
        system.service(
            name="Start and enable the PostgreSQL cluster's service", service=p["service"], running=True, enabled=True
        )
    config = None
    if step(COMPONENT, host.data, "config", "security"):
        system.directory(
            name="Create the WAL archive directory (0700 postgres) when pg_auth_wal_archive is set",
            path=data["pg_auth_wal_archive"] or "/nonexistent",
            user="postgres",
            group="postgres",
            mode="0700",
            _if=lambda: bool(data["pg_auth_wal_archive"]),
        )
        config = config_set(
            name="Write the PostgreSQL drop-in and pg_hba.conf, validated by PostgreSQL",
            items=desired_config(data, host.name),
            validate=validate_command(data, running_port),
            validate_label="PostgreSQL's own check of the files (postgres -C, pg_hba_file_rules, pg_file_settings)",
        )
    if config is not None:
        # PostgreSQL decides: settings it reports pending_restart after the reload force a restart;
        # the restart-only settings that differ from the running values are named up front
        running: dict[str, tuple[str, str]] = host.get_fact(PgSettings, port=running_port, names=list(settings(data)))
        reasons = restart_reasons(settings(data), running)
        if reasons:
            logger.info(f"{host.print_prefix}{p['service']}: restart needed for {', '.join(reasons)}")
        pending = _psql(running_port, "SELECT string_agg(name, ', ') FROM pg_settings WHERE pending_restart")
        service = shlex.quote(p["service"])
        server.shell(
            name="Reload PostgreSQL after a validated change (restart when a restart-only setting changed)",
            commands=[
                f"systemctl restart {service}" if reasons else f"systemctl reload {service}",
                f'sleep 1; pending=$({pending}) || true; if [ -n "$pending" ]; then systemctl restart {service}; fi',
            ],
            _if=config.did_change,
        )
    if step(COMPONENT, host.data, "config", "security"):
        principal = service_principal(data, host.name)

        def keytab_missing() -> bool:
            """Asked when the step runs, after this run's AD join: a new member gets its keytab now."""
            if not data["pg_auth_kerberos"]:
                return False
            found = host.get_fact(PgKeytab, keytab=data["pg_auth_keytab"], principal=principal)
            if found == "not-joined":
                logger.warning(
                    f"{host.print_prefix}pg_auth_kerberos: not a domain member (no /etc/krb5.keytab): "
                    f"no {principal} yet"
                )
            return found == "missing"

        server.shell(
            name="Add the postgres service principal after the AD join and write its keytab (pg_auth_kerberos)",
            commands=[keytab_command(data, host.name)],
            _if=keytab_missing,
        )
    if step(COMPONENT, host.data, "roles", "databases"):
        pg_sql(
            name="Create/alter roles, then databases and their privileges (SQL from a 0600 file)",
            plan=lambda current: sql_plan(data, current),
            role_names=[r["name"] for r in roles(data)],
            db_names=[d["name"] for d in databases(data)],
            version=version,
            cluster=data["pg_auth_cluster"],
            backup_roles=bool(data["pg_auth_backup_roles"]),
        )
