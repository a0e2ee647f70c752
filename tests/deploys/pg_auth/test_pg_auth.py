"""pg_auth's pure parts: SCRAM verifiers, pg_hba rules, settings, and the role/database SQL plan."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from deploys.pg_auth.config import DEFAULTS, PgAuthError, desired_config, hba_rules, restart_reasons, settings
from deploys.pg_auth.sql import masked_sql, scram_verifier, sql_plan
from hxinfra.errors import HxError


def data(**kw):
    return {**DEFAULTS, "hx_domain": "x.test", **kw}


def test_scram_verifier_matches_rfc7677_example():
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = scram_verifier("pencil", salt, 4096)
    assert verifier.startswith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$")
    server_key = base64.b64decode(verifier.rsplit(":", 1)[1])
    auth_message = (
        "n=user,r=rOprNGfwEbeRWgbNEkqO,"
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    )
    signature = hmac.new(server_key, auth_message.encode(), hashlib.sha256).digest()
    assert base64.b64encode(signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"database": "a", "user": "b", "address": "10.0.0.300/32"}, "not a network in CIDR form"),
        ({"database": "a", "user": "b", "address": "10.0.0.1/24"}, "not a network in CIDR form"),  # host bits set
        ({"database": "a", "user": "b", "address": "10.0.0.0/24", "method": "trust"}, "never trust"),
        ({"database": "a", "user": "b", "address": "10.0.0.0/24", "type": "host"}, "type 'host' not allowed"),
        ({"database": "a b", "user": "b", "address": "10.0.0.0/24"}, "characters pg_hba.conf cannot take"),
        ({"database": "a", "user": "b"}, "needs database, user and either address or group"),
    ],
)
def test_bad_hba_rules(rule, message):
    with pytest.raises(PgAuthError, match=message):
        hba_rules(data(pg_auth_hba=[rule]))


def test_files_keep_rejects_before_data_rules_and_absolute_tls_paths():
    d = data(pg_auth_hba=[{"database": "hxapp", "user": "hx_app", "address": "10.1.2.3/32"}])
    dropin, hba = desired_config(d, "db1")
    assert dropin.path == "/etc/postgresql/15/main/conf.d/hx-auth.conf" and dropin.user == "postgres"
    assert "password_encryption = 'scram-sha-256'" in dropin.content and "ssl = on" in dropin.content
    assert "ssl_cert_file = '/etc/ssl/certs/ssl-cert-snakeoil.pem'" in dropin.content
    assert "ssl_min_protocol_version = 'TLSv1.2'" in dropin.content and "log_connections = on" in dropin.content
    lines = [line for line in hba.content.splitlines() if line and not line.startswith("#")]
    assert lines.index("hostnossl    all       all       0.0.0.0/0        reject") < len(lines) - 1
    assert lines[-1].split() == ["hostssl", "hxapp", "hx_app", "10.1.2.3/32", "scram-sha-256"]
    assert hba.mode == "0640" and not any("trust" in line for line in lines)
    with pytest.raises(HxError, match="must be an absolute path"):
        settings(data(pg_auth_ssl_cert="server.crt"))


ROLES = [{"name": "hx_app", "password": "s3cret-pw"}, {"name": "hx_read", "password": "r34d-pw", "login": True}]
DBS = [{"name": "hxapp", "owner": "hx_app", "connect": ["hx_read"]}]


def converged(password: str = "s3cret-pw") -> dict:
    salt = b"0123456789abcdef"
    digest = {
        "hx_app": hashlib.sha256(scram_verifier(password, salt).encode()).hexdigest(),
        "hx_read": hashlib.sha256(scram_verifier("r34d-pw", salt).encode()).hexdigest(),
    }
    role = {"login": True, "connlimit": -1, "iterations": "4096", "salt": base64.b64encode(salt).decode()}
    return {
        "roles": {name: {**role, "verifier_sha256": digest[name]} for name in digest},
        "databases": {
            "hxapp": {
                "owner": "hx_app",
                "public_connect": False,
                "connect": ["hx_app", "hx_read"],
                "schema": {"hx_app": (True, True), "hx_read": (True, False)},
            }
        },
    }


def test_sql_plan_from_nothing_puts_roles_before_databases():
    stmts = sql_plan(data(pg_auth_roles=ROLES, pg_auth_databases=DBS), {})
    create_db = stmts.index('CREATE DATABASE "hxapp" OWNER "hx_app";')
    assert all(s.startswith("CREATE ROLE") for s in stmts[:2]) and create_db == 2
    assert 'REVOKE CONNECT, TEMPORARY ON DATABASE "hxapp" FROM PUBLIC;' in stmts
    assert stmts[-3:] == [
        '\\connect "hxapp"',
        'GRANT USAGE, CREATE ON SCHEMA public TO "hx_app";',
        'GRANT USAGE ON SCHEMA public TO "hx_read";',
    ]
    assert "s3cret-pw" not in "".join(stmts) and "SCRAM-SHA-256$4096:" in stmts[0]
    assert all("SCRAM" not in s for s in masked_sql(stmts))


def test_sql_plan_is_empty_when_converged_and_sees_a_new_password():
    d = data(pg_auth_roles=ROLES, pg_auth_databases=DBS)
    assert sql_plan(d, converged()) == []
    stmts = sql_plan(d, converged(password="old-pw"))
    assert len(stmts) == 1 and stmts[0].startswith('ALTER ROLE "hx_app" WITH PASSWORD \'SCRAM-SHA-256$4096:')
    gone = data(pg_auth_roles=[*ROLES[1:], {"name": "hx_app", "present": False}], pg_auth_databases=[])
    assert 'DROP ROLE "hx_app";' in sql_plan(gone, converged())


def test_restart_only_for_postmaster_settings_that_differ():
    running = {
        "listen_addresses": ("postmaster", "*"),
        "port": ("postmaster", "5432"),
        "ssl_ciphers": ("sighup", "HIGH"),
    }
    desired = settings(data(pg_auth_listen_addresses=["localhost", "10.0.0.5"], pg_auth_ssl_ciphers="OTHER"))
    assert restart_reasons(desired, running) == ["listen_addresses ('*' -> 'localhost,10.0.0.5')"]
    assert restart_reasons(settings(data()), running) == []


def test_tls_paths_derive_from_the_ca_trust_service_certificate():
    """Written once, in ca_trust: a service certificate's name gives PostgreSQL its paths."""
    from deploys.ca_trust.config import DEFAULTS as CA_TRUST

    derived = settings(
        data(pg_auth_ssl_host_cert="postgresql", ca_trust_host_cert_dir=CA_TRUST["ca_trust_host_cert_dir"])
    )
    assert derived["ssl_cert_file"] == "'/etc/ssl/hx/postgresql.crt'"
    assert derived["ssl_key_file"] == "'/etc/ssl/hx/private/postgresql.key'"
    assert settings(data())["ssl_cert_file"] == "'/etc/ssl/certs/ssl-cert-snakeoil.pem'"  # none: Debian's pair


def test_group_rules_allow_each_member_host_only():
    members = {
        "application_servers": [{"name": "app1", "address": "10.0.0.40"}, {"name": "app2", "address": "fd00::41"}]
    }
    rules = hba_rules(
        data(hx_members=members, pg_auth_hba=[{"database": "w", "user": "w", "group": "application_servers"}])
    )
    assert [r["address"] for r in rules] == ["10.0.0.40/32", "fd00::41/128"]
    assert hba_rules(data(hx_members={}, pg_auth_hba=[{"database": "w", "user": "w", "group": "nobody"}])) == []
    with pytest.raises(PgAuthError, match="has no IP address"):
        hba_rules(
            data(
                hx_members={"g": [{"name": "h", "address": "h.example"}]},
                pg_auth_hba=[{"database": "w", "user": "w", "group": "g"}],
            )
        )
    with pytest.raises(PgAuthError, match="either address or group"):
        hba_rules(data(pg_auth_hba=[{"database": "w", "user": "w", "group": "g", "address": "10.0.0.0/24"}]))


def test_kerberos_rules_come_before_the_reject_and_the_keytab_is_postgres_own():
    from deploys.pg_auth.config import keytab_command, service_principal

    gss = {
        "type": "hostgssenc",
        "database": "postgres",
        "user": "alice",
        "address": "10.0.0.40/32",
        "method": "gss",
        "options": "include_realm=0 krb_realm=X.TEST",
    }
    d = data(
        pg_auth_kerberos=True,
        hx_realm="X.TEST",
        pg_auth_hba=[{"database": "w", "user": "w", "address": "10.0.0.40/32"}, gss],
    )
    dropin, hba = desired_config(d, "db1")
    assert "krb_server_keyfile = '/etc/postgresql/krb5.keytab'" in dropin.content
    assert "krb_server_keyfile" not in desired_config(data(), "db1")[0].content
    lines = [line.split() for line in hba.content.splitlines() if line and not line.startswith("#")]
    gss_at = lines.index(
        ["hostgssenc", "postgres", "alice", "10.0.0.40/32", "gss", "include_realm=0", "krb_realm=X.TEST"]
    )
    assert gss_at < lines.index(["hostnossl", "all", "all", "0.0.0.0/0", "reject"])  # only encrypted GSS matches it
    assert lines[-1][0] == "hostssl"
    assert service_principal(d, "db1") == "postgres/db1.x.test"
    cmd = keytab_command(d, "db1")
    assert "adcli update --domain=x.test --add-service-principal=postgres/db1.x.test" in cmd
    assert "install -o postgres -g postgres -m 0600" in cmd and "umask 077" in cmd


@pytest.mark.parametrize(
    ("release", "codename"),
    [("debian 12", "bookworm"), ("debian 13", "trixie"), ("ubuntu 22.04", "jammy"), ("Ubuntu  24.04", "noble")],
)
def test_the_pgdg_suite_follows_the_release(release, codename):
    """Every release the fleet runs: the suite the host's release gives at deploy time, the same the
    plan renders when the environment declares that release; a pinned suite wins over both."""
    from deploys.common import declared_codename
    from deploys.pg_auth.config import plan, repo_files

    on = data(pg_auth_pgdg=True, hx_os_release=release)
    (deployed,) = repo_files(on, codename)  # what the deploy writes from the host's /etc/os-release
    assert f"Suites: {codename}-pgdg\n" in deployed.content
    assert declared_codename(on) == codename
    planned = {i.path: i for i in plan(on, "hx-db-01")}["/etc/apt/sources.list.d/pgdg.sources"]
    assert planned.content == deployed.content
    pinned = repo_files(data(pg_auth_pgdg=True, pg_auth_pgdg_suite="bookworm-pgdg-testing"), codename)[0]
    assert "Suites: bookworm-pgdg-testing\n" in pinned.content


def test_an_undeclared_release_is_the_hosts_at_deploy_time_in_the_plan():
    from deploys.pg_auth.config import check_data, plan

    planned = {i.path: i for i in plan(data(pg_auth_pgdg=True), "hx-db-01")}["/etc/apt/sources.list.d/pgdg.sources"]
    assert "Suites: <codename>-pgdg (from the host's release at deploy time)\n" in planned.content
    assert "bookworm" not in planned.content
    problems = dict(check_data(data(hx_os_release="debian 11")))
    assert "one of debian 12, debian 13, ubuntu 22.04, ubuntu 24.04" in problems["hx_os_release"]
