"""PostgreSQL auth, host side: roles and grants (a hash of each verifier, never the verifier),
running settings and the running cluster's port.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from pyinfra.api import FactBase
from typing_extensions import override

from deploys.pg_auth.config import _psql


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
            # CASE: SQL does not promise to test the role's existence before asking its privilege
            "WHERE CASE WHEN r IN (SELECT rolname FROM pg_roles WHERE NOT rolsuper) "
            "THEN has_database_privilege(r, d.oid, 'CONNECT') ELSE false END), ''), '', '' "
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
                out["roles"][name] = {
                    "login": a == "1",
                    "connlimit": int(b),
                    "iterations": c,
                    "salt": d,
                    "verifier_sha256": e,
                }
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


class PgRunningPort(FactBase[int]):
    """The port the running cluster listens on (0 when it does not run)."""

    @override
    def command(self, version: int, cluster: str) -> str:
        # the cluster name is data: it reaches awk as a variable (-v), never inside the program text
        program = '$1 == v && $2 == c && $4 == "online" {print $3}'
        return (
            f"pg_lsclusters -h 2>/dev/null | awk -v v={int(version)} -v c={shlex.quote(cluster)} {shlex.quote(program)}"
        )

    @override
    def process(self, output: list[str]) -> int:
        return int(output[0]) if output and output[0].strip().isdigit() else 0


class PgKeytab(FactBase[str]):
    """``not-joined`` (no host keytab: not a domain member yet), ``ready`` (PostgreSQL's keytab
    holds the principal) or ``missing``."""

    @override
    def command(self, keytab: str, principal: str) -> str:
        q = shlex.quote
        return (
            f"if [ ! -s /etc/krb5.keytab ]; then echo not-joined; "
            f"elif klist -k {q(keytab)} 2>/dev/null | grep -q {q(' ' + principal + '@')}; then echo ready; "
            "else echo missing; fi"
        )

    @override
    def process(self, output: list[str]) -> str:
        return output[0].strip() if output else "missing"
