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

import base64
import hashlib
import hmac
import ipaddress
import os
import re
import shlex
import uuid
from collections.abc import Mapping
from typing import Any

from pyinfra import host, logger, state
from pyinfra.api import FactBase, StringCommand, deploy, operation
from pyinfra.operations import apt, server, systemd
from typing_extensions import override

from deploys import templates_root
from hxinfra.components import Component
from hxinfra.deploytools import component_data, is_deploy_file, step
from hxinfra.errors import HxError
from hxinfra.operations import Absent, ConfigItem, ManagedFile, config_set, upload_commands
from hxinfra.render import render
from hxinfra.validate import abs_path, choice, collect, host_or_ip, one_line, port
from hxinfra.validate import name as validate_name
from hxinfra.vault import MASK, Vaulted, reveal

DEFAULTS: dict[str, Any] = {
    # PostgreSQL major version and cluster (Debian: /etc/postgresql/<version>/<cluster>).
    # Debian 12 ships 15; the fleet runs 17 from the PGDG repository (pg_auth_pgdg: true).
    "pg_auth_version": 15,
    "pg_auth_cluster": "main",
    # Add the PGDG apt repository (its key comes with Debian's postgresql-common package), and
    # its suite for the hosts' release.
    "pg_auth_pgdg": False,
    "pg_auth_pgdg_suite": "bookworm-pgdg",
    # Addresses to listen on (listen_addresses; changing it needs a restart, done for you).
    "pg_auth_listen_addresses": ["*"],
    "pg_auth_port": 5432,
    # TLS: absolute paths. "" uses Debian's self-signed snakeoil pair (ssl-cert package); the HX
    # way is a CA-issued pair from ca_trust_host_certs (key_group ssl-cert, key_mode "0640").
    "pg_auth_ssl_cert": "",
    "pg_auth_ssl_key": "",
    # CA file for client certificates ("" = none).
    "pg_auth_ssl_ca": "",
    "pg_auth_ssl_min_protocol": "TLSv1.2",
    "pg_auth_ssl_ciphers": "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:!aNULL:!eNULL:!MD5:!SHA1",
    # Log every connection and disconnection (who, from where, for how long).
    "pg_auth_log_connections": True,
    # More settings for the drop-in (name: value); they are validated like the rest.
    "pg_auth_settings": {},
    # Remote access rules, in order, each {database, user, address, method, type, options}:
    # type hostssl (default) or hostgssenc (Kerberos, after the domain join); method
    # scram-sha-256 (default), gss or cert. Anything else remote is rejected.
    "pg_auth_hba": [],
    # Roles: {name, password (a !vault value), login (true), connection_limit (-1), present (true)}.
    "pg_auth_roles": [],
    # Databases: {name, owner, connect: [roles that may connect and use schema public]}.
    "pg_auth_databases": [],
    # Before changing roles, keep `pg_dumpall --roles-only` in /var/backups/hxinfra/postgresql/.
    "pg_auth_backup_roles": True,
}

COMPONENT_TAGS = ("packages", "config", "security", "service", "roles", "databases")
NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")  # role and database names (always fullmatch)
CLUSTER = re.compile(r"[A-Za-z0-9_-]+")
HBA_OPTIONS = re.compile(r"clientcert=verify-(ca|full)|map=[A-Za-z0-9_-]+|include_realm=[01]|krb_realm=[A-Za-z0-9.-]+")
SSL_PROTOCOLS = ("TLSv1.2", "TLSv1.3")
HBA_TYPES = {"hostssl", "hostgssenc"}
HBA_METHODS = {"scram-sha-256", "gss", "cert", "reject"}
SCRAM_ITERATIONS = 4096
TPL = "pg_auth"  # templates/pg_auth/etc/postgresql/version/cluster/... mirror /etc/postgresql/<v>/<cluster>/


class PgAuthError(HxError):
    """Data the deploy refuses before any host is touched."""


# ------------------------------------------------------------------------------ pure parts
def paths(data: Mapping[str, Any]) -> dict[str, str]:
    v, c = data["pg_auth_version"], data["pg_auth_cluster"]
    return {
        "conf_dir": f"/etc/postgresql/{v}/{c}",
        "dropin": f"/etc/postgresql/{v}/{c}/conf.d/hx-auth.conf",
        "hba": f"/etc/postgresql/{v}/{c}/pg_hba.conf",
        "data_dir": f"/var/lib/postgresql/{v}/{c}",
        "postgres": f"/usr/lib/postgresql/{v}/bin/postgres",
        "service": f"postgresql@{v}-{c}.service",
    }


def hba_rules(data: Mapping[str, Any]) -> list[dict[str, str]]:
    """The data's rules, checked and completed (type hostssl, method scram-sha-256)."""
    rules = []
    for i, raw in enumerate(data["pg_auth_hba"]):
        what = f"pg_auth_hba[{i}]"
        if not isinstance(raw, Mapping) or not {"database", "user", "address"} <= set(raw):
            raise PgAuthError(f"{what}: needs database, user and address")
        extra = set(raw) - {"database", "user", "address", "method", "type", "options"}
        if extra:
            raise PgAuthError(f"{what}: unknown field(s) {sorted(extra)}")
        rule = {"type": "hostssl", "method": "scram-sha-256", "options": "", **{k: str(v) for k, v in raw.items()}}
        if rule["type"] not in HBA_TYPES:
            raise PgAuthError(f"{what}: type {rule['type']!r} not allowed (use {sorted(HBA_TYPES)})")
        if rule["method"] not in HBA_METHODS:
            raise PgAuthError(f"{what}: method {rule['method']!r} not allowed (use {sorted(HBA_METHODS)}; never trust)")
        try:
            ipaddress.ip_network(rule["address"], strict=True)
        except ValueError as e:
            raise PgAuthError(f"{what}: address {rule['address']!r} is not a network in CIDR form: {e}") from e
        for key in ("database", "user"):
            if not re.fullmatch(r"[A-Za-z0-9_+,.@-]+", rule[key]):
                raise PgAuthError(f"{what}: {key} {rule[key]!r} has characters pg_hba.conf cannot take")
        for option in one_line(rule["options"], f"{what}: options").split():
            if not HBA_OPTIONS.fullmatch(option):
                raise PgAuthError(f"{what}: option {option[:40]!r} is not one of clientcert=verify-ca|verify-full, "
                                  "map=NAME, include_realm=0|1, krb_realm=REALM")  # fmt: skip
        rules.append(rule)
    return rules


def _quote_setting(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    return "'" + str(value).replace("'", "''") + "'"


def settings(data: Mapping[str, Any]) -> dict[str, str]:
    """The drop-in's settings, quoted for postgresql.conf."""
    cert = data["pg_auth_ssl_cert"] or "/etc/ssl/certs/ssl-cert-snakeoil.pem"
    key = data["pg_auth_ssl_key"] or "/etc/ssl/private/ssl-cert-snakeoil.key"
    for name, path in (
        ("pg_auth_ssl_cert", cert),
        ("pg_auth_ssl_key", key),
        ("pg_auth_ssl_ca", data["pg_auth_ssl_ca"]),
    ):
        if path:  # relative paths would resolve in the data directory
            abs_path(path, name)
    out = {
        "listen_addresses": data["pg_auth_listen_addresses"],
        "port": data["pg_auth_port"],
        "password_encryption": "scram-sha-256",
        "ssl": True,
        "ssl_cert_file": cert,
        "ssl_key_file": key,
        "ssl_ca_file": data["pg_auth_ssl_ca"],
        "ssl_min_protocol_version": data["pg_auth_ssl_min_protocol"],
        "ssl_ciphers": data["pg_auth_ssl_ciphers"],
        "ssl_prefer_server_ciphers": True,
        "log_connections": data["pg_auth_log_connections"],
        "log_disconnections": data["pg_auth_log_connections"],
        **dict(data["pg_auth_settings"]),
    }
    for name in out:
        if not re.fullmatch(r"[a-z_][a-z0-9_.]*", name):
            raise PgAuthError(f"pg_auth_settings: {name!r} is not a PostgreSQL setting name")
    return {k: _quote_setting(v) for k, v in out.items()}


PGDG_SOURCES = "/etc/apt/sources.list.d/pgdg.sources"


def repo_files(data: Mapping[str, Any]) -> list[ConfigItem]:
    """The PGDG apt source when asked for, else its removal."""
    if not data["pg_auth_pgdg"]:
        return [Absent(PGDG_SOURCES)]
    return [ManagedFile(PGDG_SOURCES, render(templates_root(), f"{TPL}{PGDG_SOURCES}.j2", data))]


def desired_config(data: Mapping[str, Any], host_name: str) -> list[ConfigItem]:
    p = paths(data)
    context = {**data, "settings": settings(data), "rules": hba_rules(data)}
    return [
        ManagedFile(
            p["dropin"],
            render(templates_root(), f"{TPL}/etc/postgresql/version/cluster/conf.d/hx-auth.conf.j2", context),
            user="postgres",
            group="postgres",
        ),  # fmt: skip
        ManagedFile(
            p["hba"],
            render(templates_root(), f"{TPL}/etc/postgresql/version/cluster/pg_hba.conf.j2", context),
            mode="0640",
            user="postgres",
            group="postgres",
        ),  # fmt: skip
    ]


def scram_verifier(password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores (RFC 5802/7677), computed on the controller."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    return f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}${b64(stored_key).decode()}:{b64(server_key).decode()}"


def roles(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for i, raw in enumerate(data["pg_auth_roles"]):
        if not isinstance(raw, Mapping) or "name" not in raw:
            raise PgAuthError(f"pg_auth_roles[{i}]: needs a name")
        extra = set(raw) - {"name", "password", "login", "connection_limit", "present"}
        if extra:
            raise PgAuthError(f"pg_auth_roles[{i}]: unknown field(s) {sorted(extra)}")
        role = {"login": True, "connection_limit": -1, "present": True, "password": None, **raw}
        try:  # a name in a whole-file vault is checked when the deploy decrypts it
            validate_name(role["name"], f"pg_auth_roles[{i}]: role name", NAME)
        except HxError:
            raise PgAuthError(f"pg_auth_roles[{i}]: role name {str(role['name'])[:40]!r} must match "
                              f"{NAME.pattern}") from None  # fmt: skip
        limit = role["connection_limit"]
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < -1:
            raise PgAuthError(f"pg_auth_roles[{i}] ({role['name']}): connection_limit must be an integer >= -1")
        for flag in ("login", "present"):
            if not isinstance(role[flag], bool):
                raise PgAuthError(f"pg_auth_roles[{i}] ({role['name']}): {flag} must be true or false")
        out.append(role)
    return out


def databases(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    known = {r["name"] for r in roles(data) if r["present"]}
    sealed = any(isinstance(r, Vaulted) for r in known)  # names still encrypted: checked at deploy time
    out = []
    for i, raw in enumerate(data["pg_auth_databases"]):
        if not isinstance(raw, Mapping) or not {"name", "owner"} <= set(raw):
            raise PgAuthError(f"pg_auth_databases[{i}]: needs name and owner")
        extra = set(raw) - {"name", "owner", "connect"}
        if extra:
            raise PgAuthError(f"pg_auth_databases[{i}]: unknown field(s) {sorted(extra)}")
        db = {"connect": [], **raw}
        for role in [db["owner"], *db["connect"]]:
            if role not in known and not sealed and not isinstance(role, Vaulted):
                raise PgAuthError(f"pg_auth_databases[{i}] ({db['name']}): role {role!r} is not in pg_auth_roles")
        if not isinstance(db["name"], Vaulted) and (not isinstance(db["name"], str) or not NAME.fullmatch(db["name"])):
            raise PgAuthError(f"pg_auth_databases[{i}]: database name {db['name']!r} must match {NAME.pattern}")
        out.append(db)
    return out


def check_data(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every value that reaches a config file, a path or a command has its shape."""
    return collect(data, {
        "pg_auth_version": lambda d: 9 <= d["pg_auth_version"] <= 99 or _fail("pg_auth_version: 9 to 99"),
        "pg_auth_cluster": lambda d: validate_name(d["pg_auth_cluster"], "pg_auth_cluster", CLUSTER),
        "pg_auth_pgdg_suite": lambda d: validate_name(d["pg_auth_pgdg_suite"], "pg_auth_pgdg_suite"),
        "pg_auth_port": lambda d: port(d["pg_auth_port"], "pg_auth_port"),
        "pg_auth_listen_addresses": lambda d: [
            a if a in ("*", "localhost") else host_or_ip(a, "pg_auth_listen_addresses[]")
            for a in d["pg_auth_listen_addresses"]
        ],
        "pg_auth_ssl_min_protocol": lambda d: choice(d["pg_auth_ssl_min_protocol"], "pg_auth_ssl_min_protocol",
                                                     SSL_PROTOCOLS),
        "pg_auth_hba": hba_rules,
        "pg_auth_settings": settings,
        "pg_auth_roles": roles,
        "pg_auth_databases": databases,
    })  # fmt: skip


def _fail(message: str) -> bool:
    raise PgAuthError(message)


def qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_plan(data: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The SQL that brings roles and databases to the data (empty when they already are).

    ``current`` is the :class:`PgAuthState` fact. Roles first, then databases, then privileges
    (schema ones after ``\\connect`` to each database).
    """
    stmts: list[str] = []
    have_roles = current.get("roles", {})
    for role in roles(data):
        name, have = role["name"], have_roles.get(role["name"])
        if not role["present"]:
            if have:
                stmts.append(f"DROP ROLE {qi(name)};")
            continue
        attrs = f"{'LOGIN' if role['login'] else 'NOLOGIN'} CONNECTION LIMIT {int(role['connection_limit'])}"
        password = reveal(role["password"])
        if have is None:
            pw = f" PASSWORD '{scram_verifier(str(password), os.urandom(16))}'" if password else ""
            stmts.append(f"CREATE ROLE {qi(name)} WITH {attrs}{pw};")
            continue
        if (have["login"], have["connlimit"]) != (bool(role["login"]), int(role["connection_limit"])):
            stmts.append(f"ALTER ROLE {qi(name)} WITH {attrs};")
        if password and not _verifier_matches(str(password), have):
            stmts.append(f"ALTER ROLE {qi(name)} WITH PASSWORD '{scram_verifier(str(password), os.urandom(16))}';")
    have_dbs = current.get("databases", {})
    for db in databases(data):
        name, owner, have = db["name"], db["owner"], have_dbs.get(db["name"])
        if have is None:
            stmts.append(f"CREATE DATABASE {qi(name)} OWNER {qi(owner)};")
            have = {"owner": owner, "public_connect": True, "connect": [], "schema": {}}
        elif have["owner"] != owner:
            stmts.append(f"ALTER DATABASE {qi(name)} OWNER TO {qi(owner)};")
        if have["public_connect"]:
            stmts.append(f"REVOKE CONNECT, TEMPORARY ON DATABASE {qi(name)} FROM PUBLIC;")
        for role in [owner, *db["connect"]]:
            if role not in have["connect"]:
                stmts.append(f"GRANT CONNECT ON DATABASE {qi(name)} TO {qi(role)};")
        inside = []
        for role in [owner, *db["connect"]]:
            usage, create = have["schema"].get(role, (False, False))
            wants_create = role == owner
            if not usage or (wants_create and not create):
                privs = "USAGE, CREATE" if wants_create else "USAGE"
                inside.append(f"GRANT {privs} ON SCHEMA public TO {qi(role)};")
        if inside:
            stmts += [f"\\connect {qi(name)}", *inside]
    return stmts


def _verifier_matches(password: str, have: Mapping[str, Any]) -> bool:
    try:
        iterations, salt = int(have["iterations"]), base64.b64decode(have["salt"])
    except (ValueError, TypeError, KeyError):
        return False
    mine = scram_verifier(password, salt, iterations)
    return hashlib.sha256(mine.encode()).hexdigest() == have["verifier_sha256"]


def masked_sql(stmts: list[str]) -> list[str]:
    return [re.sub(r"PASSWORD '[^']*'", f"PASSWORD {MASK}", s) for s in stmts]


# ------------------------------------------------------------------------------ host side
def _psql(port: int, sql: str, db: str = "postgres") -> str:
    return f"runuser -u postgres -- psql -X -A -t -q -F '|' -p {int(port)} -d {shlex.quote(db)} -c {shlex.quote(sql)}"


class PgAuthState(FactBase[dict[str, Any]]):
    """Roles (login, limit, SCRAM salt/iterations and a hash of the verifier), databases and grants.

    The verifier itself never leaves the host; its SHA-256 lets the controller compare.
    """

    default = dict

    @override
    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "psql"

    @override
    def command(self, port: int, role_names: list[str], db_names: list[str]) -> str:
        names = ",".join("'" + r + "'" for r in role_names) or "NULL"
        dbs = ",".join("'" + d + "'" for d in db_names) or "NULL"
        sql = (
            "SELECT 'role', rolname::text, rolcanlogin::int::text, rolconnlimit::text, "  # noqa: S608 - names validated
            "coalesce(split_part(split_part(rolpassword, '$', 2), ':', 1), ''), "
            "coalesce(split_part(split_part(rolpassword, '$', 2), ':', 2), ''), "
            "coalesce(encode(sha256(convert_to(rolpassword, 'UTF8')), 'hex'), '') "
            f"FROM pg_authid WHERE rolname IN ({names}) "
            "UNION ALL SELECT 'db', datname::text, pg_get_userbyid(datdba)::text, "
            "has_database_privilege('public', oid, 'CONNECT')::int::text, "
            f"coalesce((SELECT string_agg(r, ',') FROM unnest(ARRAY[{names}]::text[]) r "
            "WHERE r IN (SELECT rolname FROM pg_roles) AND has_database_privilege(r, d.oid, 'CONNECT') "
            "AND (SELECT NOT rolsuper FROM pg_roles WHERE rolname = r)), ''), '', '' "
            f"FROM pg_database d WHERE datname IN ({dbs})"
        )
        schema_sql = (
            "SELECT 'schema', current_database(), r, has_schema_privilege(r, 'public', 'USAGE')::int, "  # noqa: S608
            f"has_schema_privilege(r, 'public', 'CREATE')::int, '', '' FROM unnest(ARRAY[{names}]::text[]) r "
            "WHERE r IN (SELECT rolname FROM pg_roles)"
        )
        per_db = " ; ".join(f"{{ {_psql(port, schema_sql, d)} 2>/dev/null || true; }}" for d in db_names)
        return f"{_psql(port, sql)}" + (f" ; {per_db}" if per_db else "")

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"roles": {}, "databases": {}}
        schema: dict[str, dict[str, tuple[bool, bool]]] = {}
        for line in output:
            parts = line.split("|")
            if len(parts) != 7:
                continue
            kind, name, a, b, c, d, e = parts
            if kind == "role":
                out["roles"][name] = {"login": a == "1", "connlimit": int(b), "iterations": c, "salt": d,
                                      "verifier_sha256": e}  # fmt: skip
            elif kind == "db":
                out["databases"][name] = {
                    "owner": a,
                    "public_connect": b == "1",
                    "connect": [x for x in c.split(",") if x],
                }
            elif kind == "schema":
                schema.setdefault(name, {})[a] = (b == "1", c == "1")
        for name, db in out["databases"].items():
            db["schema"] = schema.get(name, {})
        return out


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
    script = f"cd / && {backup}runuser -u postgres -- psql -X -q -p {int(port)} -d postgres -f {q(path)}; rc=$?; rm -f {q(path)}; exit $rc"
    yield StringCommand("sh", "-c", q(script))


def validate_command(data: Mapping[str, Any], running_port: int) -> str:
    """PostgreSQL's own checks of the files on disk, while the old config still runs."""
    p = paths(data)
    sql = (
        "SELECT 'pg_hba.conf line ' || line_number || ': ' || error FROM pg_hba_file_rules WHERE error IS NOT NULL "
        "UNION ALL SELECT f.sourcefile || ' line ' || f.sourceline || ': ' || f.name || ': ' || f.error "
        "FROM pg_file_settings f LEFT JOIN pg_settings s ON s.name = f.name WHERE f.error IS NOT NULL "
        "AND NOT (f.error = 'setting could not be applied' AND s.context = 'postmaster')"
    )
    q = shlex.quote
    parse = (
        f"cd / && runuser -u postgres -- {q(p['postgres'])} -D {q(p['data_dir'])} "
        f"-c config_file={q(p['conf_dir'] + '/postgresql.conf')} -C data_directory >/dev/null"
    )
    return f'{parse} && errs=$({_psql(running_port, sql)}) && [ -z "$errs" ] || {{ echo "$errs" >&2; false; }}'


class PgSettings(FactBase[dict[str, tuple[str, str]]]):
    """Running values and contexts (``postmaster`` = restart only) of some settings."""

    default = dict

    @override
    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "psql"

    @override
    def command(self, port: int, names: list[str]) -> str:
        listed = ",".join("'" + n + "'" for n in names if re.fullmatch(r"[a-z_][a-z0-9_.]*", n)) or "NULL"
        sql = f"SELECT name, context, setting FROM pg_settings WHERE name IN ({listed})"  # noqa: S608 - names checked
        return _psql(port, sql) + " 2>/dev/null || true"

    @override
    def process(self, output: list[str]) -> dict[str, tuple[str, str]]:
        out = {}
        for line in output:
            name, _, rest = line.partition("|")
            context, _, setting = rest.partition("|")
            out[name] = (context, setting)
        return out


def _unquote(value: str) -> str:
    return value[1:-1].replace("''", "'") if value.startswith("'") and value.endswith("'") else value


def restart_reasons(desired: Mapping[str, str], running: Mapping[str, tuple[str, str]]) -> list[str]:
    """Restart-only settings whose running value differs from the drop-in's: ``name (old -> new)``."""
    reasons = []
    for name, value in desired.items():
        context, current = running.get(name, ("", ""))
        if context == "postmaster" and _unquote(value) != current:
            reasons.append(f"{name} ({current!r} -> {_unquote(value)!r})")
    return reasons


class PgRunningPort(FactBase[int]):
    """The port the running cluster listens on (0 when it does not run)."""

    @override
    def command(self, version: int, cluster: str) -> str:
        # the cluster name is data: it reaches awk as a variable (-v), never inside the program text
        program = '$1 == v && $2 == c && $4 == "online" {print $3}'
        return (f"pg_lsclusters -h 2>/dev/null | awk -v v={int(version)} -v c={shlex.quote(cluster)} "
                f"{shlex.quote(program)}")  # fmt: skip

    @override
    def process(self, output: list[str]) -> int:
        return int(output[0]) if output and output[0].strip().isdigit() else 0


# ------------------------------------------------------------------------------ deploy
def plan(data: Mapping[str, Any], host_name: str) -> list[ConfigItem]:
    """The offline plan: the PGDG source, the drop-in and pg_hba.conf."""
    data = dict(data)
    return repo_files(data) + desired_config(data, host_name)


COMPONENT = Component(
    "pg_auth", DEFAULTS, groups=("database_servers",), check=check_data, tags=COMPONENT_TAGS, plan=plan
)


@deploy("PostgreSQL authentication", data_defaults=DEFAULTS)
def pg_auth() -> None:
    """Install PostgreSQL, converge TLS/SCRAM settings and pg_hba.conf, then roles and databases."""
    data = component_data(COMPONENT, host.data)
    p = paths(data)
    version = int(data["pg_auth_version"])
    if step(COMPONENT, host.data, "packages"):
        apt.packages(
            name="Install postgresql-common and ssl-cert (the PGDG key ships in postgresql-common)",
            packages=["postgresql-common", "ssl-cert"],
            update=True,
            cache_time=24 * 3600,
        )
        repo = config_set(name=f"Write {PGDG_SOURCES} (removed unless pg_auth_pgdg)", items=repo_files(data))
        apt.update(name="Update the apt lists after a repository change", _if=repo.did_change)
        apt.packages(
            name="Install the PostgreSQL server and client of pg_auth_version",
            packages=[f"postgresql-{version}", f"postgresql-client-{version}"],
        )
    running_port = host.get_fact(PgRunningPort, version=version, cluster=data["pg_auth_cluster"]) or int(
        data["pg_auth_port"]
    )
    config = None
    if step(COMPONENT, host.data, "config", "security"):
        config = config_set(
            name="Write the PostgreSQL drop-in and pg_hba.conf, validated by PostgreSQL",
            items=desired_config(data, host.name),
            validate=validate_command(data, running_port),
        )
    if step(COMPONENT, host.data, "service"):
        systemd.service(name="Start and enable the PostgreSQL cluster's service", service=p["service"], running=True,
                        enabled=True)  # fmt: skip
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
                f'sleep 1; pending=$({pending}) || true; if [ -n "$pending" ]; then '
                f"systemctl restart {service}; fi",
            ],
            _if=config.did_change,
        )
    if step(COMPONENT, host.data, "roles", "databases"):
        names = [r["name"] for r in roles(data)]
        dbs = [d["name"] for d in databases(data)]
        # read on the port that runs now; the SQL runs after a restart, on the configured port
        current = host.get_fact(PgAuthState, port=running_port, role_names=names, db_names=dbs)
        pg_sql(
            name="Create/alter roles, then databases and their privileges (SQL from a 0600 file)",
            statements=sql_plan(data, current),
            port=int(data["pg_auth_port"]),
            backup_roles=bool(data["pg_auth_backup_roles"]),
        )


if is_deploy_file(globals()):
    pg_auth()
