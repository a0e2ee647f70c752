"""PostgreSQL auth, desired state: the defaults, the cluster's paths, the drop-in settings and
pg_hba rules (checked: no trust, known options), the PGDG source, and PostgreSQL's own validation
command, all computed from host data alone.
"""

from __future__ import annotations

import ipaddress
import pickle
import re
import shlex
from collections.abc import Mapping
from typing import Any

from deploys.ca_trust.config import host_cert_paths
from deploys.common import declared_codename, templates_root
from hxinfra.components import Backup, Opening
from hxinfra.desired import Absent, ConfigItem, ManagedFile
from hxinfra.errors import HxError
from hxinfra.memo import IdentityCache, lru
from hxinfra.render import render, template_context
from hxinfra.secrets import Vaulted
from hxinfra.validate import (
    abs_path,
    choice,
    collect,
    host_or_ip,
    one_line,
    port,
)
from hxinfra.validate import name as validate_name

DEFAULTS: dict[str, Any] = {
    # PostgreSQL major version and cluster (Debian: /etc/postgresql/<version>/<cluster>).
    # Debian 12 ships 15; the fleet runs 17 from the PGDG repository (pg_auth_pgdg: true).
    "pg_auth_version": 15,
    "pg_auth_cluster": "main",
    # Add the PGDG apt repository (its key comes with Debian's postgresql-common package), and
    # its suite: "" = "<codename>-pgdg" of the host's release, read from the host at deploy time
    # (Debian 12: bookworm-pgdg, 13: trixie-pgdg; Ubuntu 22.04: jammy-pgdg, 24.04: noble-pgdg).
    "pg_auth_pgdg": False,
    "pg_auth_pgdg_suite": "",
    # Addresses to listen on (listen_addresses; changing it needs a restart, done for you).
    "pg_auth_listen_addresses": ["*"],
    "pg_auth_port": 5432,
    # TLS: absolute paths. "" uses Debian's self-signed snakeoil pair (ssl-cert package); the HX
    # way is a CA-issued pair from ca_trust_host_certs (key_group ssl-cert, key_mode "0640").
    # TLS: the CA trust service certificate of this name (the HX way: ca_trust_host_certs entry
    # "postgresql", key_group ssl-cert, key_mode "0640"); "" = Debian's self-signed snakeoil pair;
    # explicit absolute paths in pg_auth_ssl_cert/pg_auth_ssl_key win over both.
    "pg_auth_ssl_host_cert": "",
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
    # Remote access rules, in order, each {database, user, address or group, method, type,
    # options}: "group" allows each host of that inventory group (one /32 rule per host, from its
    # address); type hostssl (default) or hostgssenc (Kerberos, after the domain join); method
    # scram-sha-256 (default), gss or cert. Anything else remote is rejected.
    "pg_auth_hba": [],
    # Roles: {name, password (a !vault value), login (true), connection_limit (-1), present (true)}.
    "pg_auth_roles": [],
    # Databases: {name, owner, connect: [roles that may connect and use schema public]}.
    "pg_auth_databases": [],
    # Before changing roles, keep `pg_dumpall --roles-only` in /var/backups/hxinfra/postgresql/.
    "pg_auth_backup_roles": True,
    # Kerberos (GSSAPI) logins on a domain member: after the AD join, the service principal
    # postgres/<fqdn> is added to the host's computer account (adcli), its keys alone are written
    # to this keytab (0600 postgres) and krb_server_keyfile points at it. Then "hostgssenc ... gss"
    # rules in pg_auth_hba let a user with a ticket in (a role of the same name, include_realm=0).
    "pg_auth_kerberos": False,
    # Archive every WAL segment to this directory (0700 postgres; "" = no archiving), for
    # point-in-time recovery from the backups' base backups (deploys/backup: hx-backup restore-time).
    "pg_auth_wal_archive": "",
    "pg_auth_keytab": "/etc/postgresql/krb5.keytab",
}


COMPONENT_TAGS = ("packages", "config", "security", "service", "roles", "databases")


NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")  # role and database names (always fullmatch)


CLUSTER = re.compile(r"[A-Za-z0-9_-]+")


HBA_OPTIONS = re.compile(r"clientcert=verify-(ca|full)|map=[A-Za-z0-9_-]+|include_realm=[01]|krb_realm=[A-Za-z0-9.-]+")


SSL_PROTOCOLS = ("TLSv1.2", "TLSv1.3")


HBA_TYPES = {"hostssl", "hostgssenc"}


HBA_METHODS = {"scram-sha-256", "gss", "cert", "reject"}


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
    """The data's rules, checked and completed (type hostssl, method scram-sha-256).

    A ``group`` rule lists every member host, so on N database hosts of a fleet of N clients this is
    N x N work: the result is kept for the same rules and the same members mapping (the inventory
    shares one for every host), and is read-only for its callers.
    """
    members = data.get("hx_members") or {}
    try:
        spec = pickle.dumps(data["pg_auth_hba"], protocol=5)
    except (pickle.PicklingError, TypeError, AttributeError):
        return _hba_rules(data)
    return _RULES.get(members, lambda: _hba_rules(data), spec)


_RULES: IdentityCache[list[dict[str, str]]] = IdentityCache(limit=256)


def _hba_rules(data: Mapping[str, Any]) -> list[dict[str, str]]:
    rules = []
    for i, entry in enumerate(data["pg_auth_hba"]):
        what = f"pg_auth_hba[{i}]"
        if (
            not isinstance(entry, Mapping)
            or not {"database", "user"} <= set(entry)
            or ("address" in entry) == ("group" in entry)
        ):
            raise PgAuthError(f"{what}: needs database, user and either address or group")
        extra = set(entry) - {"database", "user", "address", "group", "method", "type", "options"}
        if extra:
            raise PgAuthError(f"{what}: unknown field(s) {sorted(extra)}")
        if "group" in entry:  # checked once, then one rule per member host
            checked = _hba_rule({**{k: v for k, v in entry.items() if k != "group"}, "address": "0.0.0.0/0"}, what)
            rules += [
                {**checked, "address": raw["address"]} for raw in _hba_expand(entry, data.get("hx_members") or {}, what)
            ]
        else:
            rules.append(_hba_rule(entry, what))
    return rules


def _hba_expand(entry: Mapping[str, Any], members: Mapping[str, Any], what: str) -> list[dict[str, Any]]:
    """A ``group`` entry as one rule per member host (its address as a /32 or /128)."""
    if "group" not in entry:
        return [dict(entry)]
    rest = {k: v for k, v in entry.items() if k != "group"}
    hosts = members.get(str(entry["group"]), [])
    out = []
    for member in hosts:
        network = _host_network(str(member["address"]))
        if network is None:
            raise PgAuthError(
                f"{what}: host {member['name']} of group {entry['group']} has no IP address "
                f"({member['address']!r}); pg_hba.conf needs one"
            )
        out.append({**rest, "address": network})
    return out


@lru(65536)
def _host_network(address: str) -> str | None:
    """``address/32`` (or ``/128``) of an IP address, None for a name; parsed once per address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    return f"{ip}/{ip.max_prefixlen}"


def _hba_rule(raw: Mapping[str, Any], what: str) -> dict[str, str]:
    """One rule, checked and completed."""
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
            raise PgAuthError(
                f"{what}: option {option[:40]!r} is not one of clientcert=verify-ca|verify-full, "
                "map=NAME, include_realm=0|1, krb_realm=REALM"
            )
    return rule


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
    if data["pg_auth_ssl_host_cert"]:
        default_cert, default_key = host_cert_paths(data, data["pg_auth_ssl_host_cert"])
    else:
        default_cert, default_key = "/etc/ssl/certs/ssl-cert-snakeoil.pem", "/etc/ssl/private/ssl-cert-snakeoil.key"
    cert = data["pg_auth_ssl_cert"] or default_cert
    key = data["pg_auth_ssl_key"] or default_key
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
        **({"krb_server_keyfile": data["pg_auth_keytab"]} if data["pg_auth_kerberos"] else {}),
        **(_archiving(str(data["pg_auth_wal_archive"])) if data["pg_auth_wal_archive"] else {}),
        **dict(data["pg_auth_settings"]),
    }
    for name in out:
        if not re.fullmatch(r"[a-z_][a-z0-9_.]*", name):
            raise PgAuthError(f"pg_auth_settings: {name!r} is not a PostgreSQL setting name")
    return {k: _quote_setting(v) for k, v in out.items()}


PGDG_SOURCES = "/etc/apt/sources.list.d/pgdg.sources"


# what the offline plan writes for a suite known only when the deploy reads the host's release
SUITE_AT_DEPLOY = "<codename>-pgdg (from the host's release at deploy time)"


def pgdg_suite(data: Mapping[str, Any], codename: str | None) -> str | None:
    """The PGDG suite: ``pg_auth_pgdg_suite`` when set, else ``<codename>-pgdg`` of the release
    (None while the release is not known: the offline plan of an environment that declares none)."""
    if data["pg_auth_pgdg_suite"]:
        return str(data["pg_auth_pgdg_suite"])
    return f"{codename}-pgdg" if codename else None


def repo_files(data: Mapping[str, Any], codename: str | None = None) -> list[ConfigItem]:
    """The PGDG apt source when asked for (its suite from ``codename``, the host's release), else
    its removal."""
    if not data["pg_auth_pgdg"]:
        return [Absent(PGDG_SOURCES)]
    context = {**data, "suite": pgdg_suite(data, codename) or SUITE_AT_DEPLOY}
    return [ManagedFile(PGDG_SOURCES, render(templates_root(), f"{TPL}{PGDG_SOURCES}.j2", context))]


def desired_config(data: Mapping[str, Any], host_name: str) -> list[ConfigItem]:
    p = paths(data)
    context = template_context(data, {"settings": settings(data), "rules": hba_rules(data)})
    return [
        ManagedFile(
            p["dropin"],
            render(templates_root(), f"{TPL}/etc/postgresql/version/cluster/conf.d/hx-auth.conf.j2", context),
            user="postgres",
            group="postgres",
        ),
        ManagedFile(
            p["hba"],
            render(templates_root(), f"{TPL}/etc/postgresql/version/cluster/pg_hba.conf.j2", context),
            mode="0640",
            user="postgres",
            group="postgres",
        ),
    ]


def _release(data: Mapping[str, Any]) -> None:
    try:
        declared_codename(data)
    except ValueError as e:
        raise PgAuthError(str(e)) from None


def check_data(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every value that reaches a config file, a path or a command has its shape."""
    return collect(
        data,
        {
            "pg_auth_version": lambda d: 9 <= d["pg_auth_version"] <= 99 or _fail("pg_auth_version: 9 to 99"),
            "pg_auth_cluster": lambda d: validate_name(d["pg_auth_cluster"], "pg_auth_cluster", CLUSTER),
            "pg_auth_pgdg_suite": lambda d: (
                d["pg_auth_pgdg_suite"] == "" or validate_name(d["pg_auth_pgdg_suite"], "pg_auth_pgdg_suite")
            ),
            "hx_os_release": lambda d: _release(d),
            "pg_auth_port": lambda d: port(d["pg_auth_port"], "pg_auth_port"),
            "pg_auth_listen_addresses": lambda d: [
                a if a in ("*", "localhost") else host_or_ip(a, "pg_auth_listen_addresses[]")
                for a in d["pg_auth_listen_addresses"]
            ],
            "pg_auth_ssl_min_protocol": lambda d: choice(
                d["pg_auth_ssl_min_protocol"], "pg_auth_ssl_min_protocol", SSL_PROTOCOLS
            ),
            "pg_auth_hba": hba_rules,
            "pg_auth_settings": settings,
            "pg_auth_roles": roles,
            "pg_auth_databases": databases,
            "pg_auth_keytab": lambda d: abs_path(d["pg_auth_keytab"], "pg_auth_keytab"),
            "pg_auth_wal_archive": lambda d: (
                d["pg_auth_wal_archive"] and abs_path(d["pg_auth_wal_archive"], "pg_auth_wal_archive")
            ),
        },
    )


def _fail(message: str) -> bool:
    raise PgAuthError(message)


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


# ------------------------------------------------------------------------------ deploy
def _archiving(directory: str) -> dict[str, Any]:
    """WAL archiving into ``directory``: a segment is never overwritten (``test ! -f``)."""
    return {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_timeout": 60,
        "archive_command": f"test ! -f {directory}/%f && cp %p {directory}/%f",
    }


def service_principal(data: Mapping[str, Any], host_name: str) -> str:
    """``postgres/<fqdn>``: the name clients ask the KDC for (libpq's default service name)."""
    return f"postgres/{host_name}.{data['hx_domain']}" if data.get("hx_domain") else f"postgres/{host_name}"


def keytab_command(data: Mapping[str, Any], host_name: str) -> str:
    """Add the service principal to the computer account (its own credentials, from the host
    keytab) and write only that principal's keys to PostgreSQL's keytab."""
    from shlex import quote as q

    principal = service_principal(data, host_name)
    domain = str(data.get("hx_realm") or data.get("hx_domain") or "").lower()
    keytab = str(data["pg_auth_keytab"])
    # ktutil numbers the entries it read from 1; delete every other principal's, highest first
    others = (
        f"klist -k /etc/krb5.keytab | awk -v p={q(principal + '@')} 'NR > 3 && index($2, p) != 1 "
        "{print NR - 3}' | sort -rn"
    )
    return (
        f"set -e; umask 077; adcli update --domain={q(domain)} --add-service-principal={q(principal)}; "
        f"tmp=$(mktemp -u); trap 'rm -f \"$tmp\"' EXIT; "
        f"{{ echo 'rkt /etc/krb5.keytab'; for i in $({others}); do echo \"delent $i\"; done; "
        f'echo "wkt $tmp"; }} | ktutil >/dev/null; '
        f'klist -k "$tmp" | grep -q {q(" " + principal + "@")}; '
        f'install -o postgres -g postgres -m 0600 "$tmp" {q(keytab)}'
    )


def health(data: Mapping[str, Any], host_name: str) -> list[Any]:
    """The cluster runs, listens, answers a query, and its TLS certificate verifies for the host's
    name against the system's trust store (a real handshake: PostgreSQL's STARTTLS)."""
    from shlex import quote as q

    from hxinfra.health import Check, port_listening, service_active

    p, port_ = paths(data), int(data["pg_auth_port"])
    checks = [
        service_active(p["service"], "postgresql"),
        port_listening(port_, "postgresql"),
        Check("PostgreSQL answers a query", f"cd / && {_psql(port_, 'SELECT 1')}", "postgresql"),
    ]
    if data["pg_auth_ssl_host_cert"] or data["pg_auth_ssl_cert"]:
        fqdn = f"{host_name}.{data['hx_domain']}" if data.get("hx_domain") else host_name
        checks.append(
            Check(
                "TLS handshake verifies against the system's CAs",
                f"openssl s_client -starttls postgres -connect 127.0.0.1:{port_} -verify_return_error "
                f"-verify_hostname {q(fqdn)} -CAfile /etc/ssl/certs/ca-certificates.crt </dev/null 2>&1 "
                "| grep -m1 'Verify return code: 0 (ok)'",
                "postgresql",
            )
        )
    return checks


def plan(data: Mapping[str, Any], host_name: str) -> list[ConfigItem]:
    """The offline plan: the PGDG source (its suite from the declared release, if any), the drop-in
    and pg_hba.conf."""
    data = dict(data)
    return repo_files(data, declared_codename(data)) + desired_config(data, host_name)


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
            raise PgAuthError(
                f"pg_auth_roles[{i}]: role name {str(role['name'])[:40]!r} must match {NAME.pattern}"
            ) from None
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


# ------------------------------------------------------------------------------ host side
def _psql(port: int, sql: str, db: str = "postgres") -> str:
    return f"runuser -u postgres -- psql -X -A -t -q -F '|' -p {int(port)} -d {shlex.quote(db)} -c {shlex.quote(sql)}"


def rollback(data: Mapping[str, Any], host_name: str) -> tuple[str, str]:
    """A restored previous config (hxinfra restore --config pg_auth): PostgreSQL's own checks of
    the files while the running cluster keeps its config, then a reload."""
    return validate_command(data, int(data["pg_auth_port"])), f"systemctl reload {shlex.quote(paths(data)['service'])}"


NO_TRUST_SQL = "SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'trust'"


def audit(data: Mapping[str, Any], host_name: str) -> list[Any]:
    """pg_hba without trust, TLS on, passwords stored as SCRAM: from the running cluster itself."""
    from hxinfra.audit import Control

    p, q = paths(data), shlex.quote
    psql = f"runuser -u postgres -- psql -XAt -p {int(data['pg_auth_port'])} -c"
    return [
        Control(
            "postgresql-no-trust",
            "pg_hba.conf has no trust rule (the cluster's own view of it)",
            f"n=$({psql} {q(NO_TRUST_SQL)}) "
            f'&& echo "trust rules: $n" && [ "$n" = 0 ] && ! grep -qE \'^[^#]*[[:space:]]trust([[:space:]]|$)\' {q(p["hba"])}',  # noqa: E501
            {"cis_basic": "PostgreSQL 4.1", "pci_dss": "8.3.1", "soc2": "CC6.1"},
        ),
        Control(
            "postgresql-tls",
            "PostgreSQL serves TLS",
            f'v=$({psql} \'SHOW ssl\'); echo "ssl $v"; [ "$v" = on ]',
            {"pci_dss": "4.2.1", "soc2": "CC6.7"},
        ),
        Control(
            "postgresql-scram",
            "PostgreSQL stores passwords as SCRAM-SHA-256",
            f'v=$({psql} \'SHOW password_encryption\'); echo "password_encryption $v"; [ "$v" = scram-sha-256 ]',
            {"pci_dss": "8.3.2", "soc2": "CC6.1"},
        ),
    ]


_NOT_A_CLIENT = (None, "", "all", "samehost", "samenet")


def openings(data: Mapping[str, Any], host_name: str) -> list[Opening]:
    """The port, open to the addresses of its own pg_hba rules only (nobody else can log in anyway)."""
    clients = {
        str(r["address"])
        for r in hba_rules(data)
        if r.get("type", "hostssl") != "local" and r.get("address") not in _NOT_A_CLIENT
    }
    return [Opening(int(data["pg_auth_port"]), "PostgreSQL from its pg_hba clients", sources=tuple(sorted(clients)))]


def backed_up_databases(data: Mapping[str, Any]) -> list[str]:
    """The databases the host's backups dump: those of the data (unchecked here: a backup declaration
    is read on every host, the check stops bad entries before any deploy)."""
    return [
        str(d["name"])
        for d in data.get("pg_auth_databases") or []
        if isinstance(d, Mapping) and "name" in d and d.get("present", True)
    ]


def backup(data: Mapping[str, Any], host_name: str) -> Backup:
    """Its configuration, every database it manages (with the roles), and the cluster they live in
    (its WAL archive, where there are databases, for point-in-time recovery)."""
    names = backed_up_databases(data)
    cluster = {
        "port": int(data["pg_auth_port"]),
        "version": str(data["pg_auth_version"]),
        "cluster": str(data["pg_auth_cluster"]),
        "wal_archive": str(data.get("pg_auth_wal_archive") or "") if names else "",
    }
    return Backup(paths=("/etc/postgresql",), databases=tuple(names), cluster=cluster)
