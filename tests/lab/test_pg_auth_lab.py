"""PostgreSQL authentication proven with real logins from another host."""

from __future__ import annotations

import shlex

import pytest

pytestmark = pytest.mark.lab

# Debian 12's PostgreSQL 15 (the primary, hx-db-01, runs the fleet's 17 on Debian 13: the web UI's tests)
DB, APP, OTHER = "hx-db-02", "hx-app-01", "hx-web-02"
FQDN = f"{DB}.lab.hxinfra.test"
HBA = "/etc/postgresql/15/main/pg_hba.conf"


@pytest.fixture(scope="module")
def pg(lab):
    from hxinfra.lab.inventory import lab_vault

    # ca_trust on all three (clients verify the server against the system store), pg_auth on the db host
    r, report = lab.hx_deploy("site", "--limit", f"{DB}:{APP}:{OTHER}")
    # changed, or already converged by the AD tests (Kerberos logins)
    assert {h["host"]: h["status"] for h in report["hosts"]}[DB] in ("changed", "ok"), r.stderr[-3000:]
    lab.apt_install(APP, "postgresql-client-15")
    lab.apt_install(OTHER, "postgresql-client-15")
    return str(lab_vault(lab.lab)["vault_lab_pg_webui_password"].reveal())


def login(lab, client: str, password: str, user: str = "hx_webui", sslmode: str = "verify-full", db: str = "hx_webui"):
    conninfo = (
        f"host={FQDN} hostaddr={lab.ip(DB)} port=5432 dbname={db} user={user} sslmode={sslmode} "
        "sslrootcert=/etc/ssl/certs/ca-certificates.crt connect_timeout=5 gssencmode=disable"
    )
    sql = "SELECT current_user || ' ssl=' || ssl || ' ' || version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    cmd = f"PGPASSWORD={shlex.quote(password)} psql -X -At {shlex.quote(conninfo)} -c {shlex.quote(sql)}"
    return lab.ssh(client, cmd, check=False)


def start_time(lab) -> str:
    return lab.ssh(DB, "runuser -u postgres -- psql -XAtc 'SELECT pg_postmaster_start_time()'").stdout.strip()


def test_app_role_logs_in_with_verified_tls_and_second_run_changes_nothing(lab, pg):
    ok = login(lab, APP, pg)
    assert ok.returncode == 0 and ok.stdout.strip().startswith("hx_webui ssl=true TLSv1."), ok.stderr
    r, again = lab.hx_deploy("site", "--limit", DB, "--detailed-exitcode")
    assert again["hosts"][0]["changed"] == 0, r.stderr[-3000:]
    assert pg not in r.stdout + r.stderr
    # drop-in, not a rewritten postgresql.conf; no trust anywhere; SQL files gone
    source = lab.ssh(
        DB,
        "runuser -u postgres -- psql -XAtc \"SELECT setting || ' from ' || sourcefile FROM pg_settings "
        "WHERE name = 'ssl_cert_file'\"",
    ).stdout.strip()
    assert source == "/etc/ssl/hx/postgresql.crt from /etc/postgresql/15/main/conf.d/hx-auth.conf"
    host = lab.host(DB)
    assert not host.file("/etc/postgresql/15/main/postgresql.conf").contains("managed by hxinfra")
    hba = host.file(HBA)
    assert hba.user == "postgres" and hba.mode == 0o640 and not hba.contains(r"^[^#].*\btrust\b")
    assert host.file("/etc/ssl/hx/private/postgresql.key").mode == 0o640
    assert host.service("postgresql@15-main").is_running and host.service("postgresql@15-main").is_enabled
    assert host.socket("tcp://0.0.0.0:5432").is_listening
    assert lab.ssh(DB, "ls /var/lib/postgresql/.hxinfra-* 2>/dev/null | wc -l").stdout.strip() == "0"
    dumps = lab.ssh(DB, "stat -c '%a %U' /var/backups/hxinfra/postgresql/roles-*.sql | sort -u").stdout.split("\n")
    assert dumps[0] == "600 root"  # pg_dumpall --roles-only before the role changes, private
    assert (
        lab.ssh(
            DB,
            "runuser -u postgres -- psql -XAtc \"SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid "
            "WHERE rolname = 'hx_webui'\"",
        ).stdout.strip()
        == "t"
    )


def test_refusals(lab, pg):
    wrong = login(lab, APP, pg + "x")
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
    plain = login(lab, APP, pg, sslmode="disable")
    assert plain.returncode != 0 and "no encryption" in plain.stderr
    elsewhere = login(lab, OTHER, pg)  # right password, host not in the rules: the firewall drops it first
    assert elsewhere.returncode != 0 and "timeout expired" in elsewhere.stderr
    superuser = login(lab, APP, pg, user="postgres", db="postgres")
    assert superuser.returncode != 0 and "no pg_hba.conf entry" in superuser.stderr
    other_db = login(lab, APP, pg, db="postgres")  # the role may only reach its own database
    assert other_db.returncode != 0 and "no pg_hba.conf entry" in other_db.stderr


def test_bad_hba_data_is_refused_and_the_cluster_keeps_its_rules(lab, pg):
    r = lab.hxinfra(
        "deploy",
        "site",
        "--env",
        "lab",
        "--limit",
        DB,
        "-e",
        "{pg_auth_hba: [{database: hx_webui, user: hx_webui, address: 10.0.0.300/32}]}",
        check=False,
    )
    assert r.returncode == 1 and "not a network in CIDR form" in r.stderr and "Connecting" not in r.stderr
    before = lab.ssh(DB, f"sha256sum {HBA}").stdout
    app_ip = lab.ip(APP)
    r, report = lab.hx_deploy(
        "site",
        "--limit",
        DB,
        "-e",
        # passes hxinfra's checks (a known option), but PostgreSQL refuses map= with scram
        f"{{pg_auth_hba: [{{database: hx_webui, user: hx_webui, address: {app_ip}/32, options: map=x}}]}}",
        check=False,
    )
    assert r.returncode == 1 and "validation failed" in r.stderr and "previous config restored" in r.stderr
    assert "pg_hba.conf line" in r.stderr  # PostgreSQL's own message names the line
    assert lab.ssh(DB, f"sha256sum {HBA}").stdout == before
    assert login(lab, APP, pg).returncode == 0


def test_hba_change_reloads_listen_change_restarts(lab, pg):
    t0 = start_time(lab)
    rules = (
        f"{{pg_auth_hba: [{{database: hx_webui, user: hx_webui, address: {lab.ip(APP)}/32}}, "
        f"{{database: hx_webui, user: hx_webui, address: {lab.ip(OTHER)}/32}}]}}"
    )
    r, report = lab.hx_deploy("site", "--limit", DB, "-e", rules)
    assert "Reload PostgreSQL after a validated change" in r.stderr and "restart needed for" not in r.stderr
    assert start_time(lab) == t0
    assert login(lab, OTHER, pg).returncode == 0  # the new rule is live after a reload
    r, report = lab.hx_deploy("site", "--limit", DB, "-e", f"{{pg_auth_listen_addresses: [localhost, {lab.ip(DB)}]}}")
    assert f"restart needed for listen_addresses ('*' -> 'localhost,{lab.ip(DB)}')" in r.stderr
    assert start_time(lab) != t0
    assert login(lab, OTHER, pg).returncode != 0 and login(lab, APP, pg).returncode == 0
    r, back = lab.hx_deploy("site", "--limit", DB)  # back to the inventory's settings
    assert back["hosts"][0]["status"] == "changed" and "restart needed for listen_addresses" in r.stderr


def test_the_pgdg_suite_comes_from_each_hosts_release(lab, pg):
    """The PGDG source for Debian 12 (hx-db-02) and Debian 13 (hx-db-01), each from its own
    /etc/os-release at deploy time: a check with pg_auth_pgdg on shows each host's suite in its diff
    and changes nothing (the lab reaches no PGDG mirror, so the source is only shown)."""
    release = {h: lab.ssh(h, ". /etc/os-release && echo $VERSION_CODENAME").stdout.strip() for h in (DB, "hx-db-01")}
    assert release == {DB: "bookworm", "hx-db-01": "trixie"}, release
    lab.hx_deploy("site", "--limit", "hx-db-01")
    r, report = lab.hx_deploy("pg_auth", "--limit", f"{DB}:hx-db-01", "-e", "pg_auth_pgdg=true", "--check", "--diff")
    pending = {h["host"]: h for h in report["hosts"]}
    source = "PostgreSQL authentication | Write /etc/apt/sources.list.d/pgdg.sources (removed unless pg_auth_pgdg)"
    for host in release:
        assert source in pending[host]["changes"], pending[host]
    assert "+Suites: bookworm-pgdg" in r.stderr and "+Suites: trixie-pgdg" in r.stderr, r.stderr[-3000:]
    for host in release:
        assert lab.ssh(host, "ls /etc/apt/sources.list.d/pgdg.sources 2>/dev/null | wc -l").stdout.strip() == "0"
