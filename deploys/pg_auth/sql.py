"""PostgreSQL auth, roles and databases: SCRAM verifiers computed on the controller, and the SQL
that brings roles, databases and privileges to the data (roles first), from the current state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from typing import Any

from deploys.pg_auth.config import databases, roles
from hxinfra.secrets import MASK, reveal

SCRAM_ITERATIONS = 4096


def scram_verifier(password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores (RFC 5802/7677), computed on the controller."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    return f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}${b64(stored_key).decode()}:{b64(server_key).decode()}"


def qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_plan(data: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:  # noqa: C901 - one branch per kind of SQL change, in the order run
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
    return bool(hashlib.sha256(mine.encode()).hexdigest() == have["verifier_sha256"])


def masked_sql(stmts: list[str]) -> list[str]:
    return [re.sub(r"PASSWORD '[^']*'", f"PASSWORD {MASK}", s) for s in stmts]
