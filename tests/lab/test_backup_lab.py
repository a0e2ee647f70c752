"""Backups proven on a real database server (PostgreSQL 17 on Debian 13): rows written, backed up
and copied off the host, the database dropped, restored, compared; a corrupted backup is caught;
a configuration file comes back from the archive."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.lab

DB = "hx-db-01"
ROWS = "SELECT count(*) || ' ' || md5(string_agg(body, ',' ORDER BY id)) FROM notes"


def psql(lab, sql: str, db: str = "litellm") -> str:
    return lab.ssh(DB, f'cd / && runuser -u postgres -- psql -XAtq -d {db} -c "{sql}"').stdout.strip()


def backup(lab, *args: str, check: bool = False):
    return lab.hxinfra(*args, "--env", "lab", "--limit", DB, check=check)


def test_backup_drop_restore_gives_back_the_same_rows(lab, tmp_path):
    r, report = lab.hx_deploy("site", "--limit", DB, "--detailed-exitcode")  # converged with the stack
    assert report["hosts"][0]["changed"] == 0, r.stderr[-3000:]
    host = lab.host(DB)
    assert host.service("hx-backup.timer").is_enabled and host.service("hx-backup.timer").is_running
    key = host.file("/etc/hx-backup/key")
    assert (key.user, key.mode) == ("root", 0o600)
    psql(
        lab,
        "CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text); "
        "INSERT INTO notes (body) SELECT md5(i::text) FROM generate_series(1, 1000) i",
    )
    before = psql(lab, ROWS)
    r = backup(lab, "backup", "run", "--dest", str(tmp_path), "--json")
    made = json.loads(r.stdout)[0]
    assert r.returncode == 0 and made["ok"], r.stderr
    copy = tmp_path / DB / made["id"]
    assert sorted(p.name for p in copy.iterdir()) == [
        "SHA256SUMS",
        "config.tar.gz.gpg",
        "pg-base-wal.tar.gz.gpg",
        "pg-base.tar.gz.gpg",  # base backup: WAL archived
        "pg-hx_webui.dump.gpg",
        "pg-litellm.dump.gpg",
        "pg-roles.sql.gpg",
    ]
    assert b"notes" not in (copy / "pg-litellm.dump.gpg").read_bytes()  # encrypted at rest
    assert lab.secret("vault_lab_backup_key") not in r.stdout + r.stderr
    psql(lab, "DROP DATABASE litellm", db="postgres")
    assert psql(lab, "SELECT count(*) FROM pg_database WHERE datname = 'litellm'", db="postgres") == "0"
    r = backup(lab, "restore", "--db", "litellm")
    assert r.returncode == 0 and f"restored litellm from {made['id']}" in r.stdout
    assert psql(lab, ROWS) == before
    r, report = lab.hx_deploy("site", "--limit", DB, "--detailed-exitcode")  # owner and grants as pg_auth wants
    assert report["hosts"][0]["changed"] == 0, r.stderr[-3000:]


def test_a_backup_made_under_one_key_restores_into_a_database_deployed_under_another(lab, tmp_path):
    """A drill: a backup made under the lab vault's key, the database server then deployed under
    another key (as a staging host is). The host's own key cannot read the backup; with
    ``--key-from lab`` the restore decrypts it with the lab's key, which reaches the host for that
    command only: the host keeps its own key, no copy is left, the key shows nowhere."""
    psql(lab, "CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text)")
    psql(lab, "INSERT INTO notes (body) SELECT md5(random()::text) FROM generate_series(1, 100)")
    before = psql(lab, ROWS)
    r = backup(lab, "backup", "run", "--no-copy", "--json")
    made = json.loads(r.stdout)[0]
    assert r.returncode == 0 and made["ok"], r.stderr
    other = tmp_path / "other-key.yml"
    other.write_text("backup_key: drill-key-of-another-environment-0123456789\n")
    lab.hx_deploy("backup", "--limit", DB, "-e", f"@{other}")
    try:
        own_key = lab.ssh(DB, "sha256sum /etc/hx-backup/key").stdout
        assert "drill-key" in lab.ssh(DB, "cat /etc/hx-backup/key").stdout
        psql(lab, "DROP DATABASE litellm", db="postgres")
        r = backup(lab, "restore", "--db", "litellm", "--id", made["id"])  # the host's own key: no
        assert (
            r.returncode == 1
            and psql(lab, "SELECT count(*) FROM pg_database WHERE datname = 'litellm'", db="postgres") == "0"
        )
        r = backup(lab, "restore", "--db", "litellm", "--id", made["id"], "--key-from", "lab")
        assert r.returncode == 0 and f"restored litellm from {made['id']}" in r.stdout, r.stdout + r.stderr
        assert psql(lab, ROWS) == before
        assert lab.secret("vault_lab_backup_key") not in r.stdout + r.stderr
        assert lab.ssh(DB, "sha256sum /etc/hx-backup/key").stdout == own_key  # its own key kept
        assert lab.ssh(DB, "ls -d /root/.hxinfra-restore-* 2>/dev/null | wc -l").stdout.strip() == "0"
    finally:
        lab.hx_deploy("backup", "--limit", DB)  # the lab's key again
    r, report = lab.hx_deploy("site", "--limit", DB, "--detailed-exitcode")
    assert report["hosts"][0]["changed"] == 0, r.stderr[-3000:]


def test_a_corrupted_backup_is_caught_and_never_restored(lab):
    r = backup(lab, "backup", "run", "--no-copy", "--json")
    backup_id = json.loads(r.stdout)[0]["id"]
    assert backup(lab, "backup", "verify").returncode == 0
    lab.ssh(DB, f"printf X | dd of=/var/backups/hx/{backup_id}/pg-litellm.dump.gpg bs=1 seek=200 conv=notrunc")
    r = backup(lab, "backup", "verify", "--id", backup_id)
    assert r.returncode == 1 and "pg-litellm.dump.gpg: FAILED" in r.stdout
    r = backup(lab, "restore", "--db", "litellm", "--id", backup_id)
    assert r.returncode == 1 and "did NOT match" in r.stdout
    lab.ssh(DB, f"rm -rf /var/backups/hx/{backup_id}")


def test_a_configuration_file_comes_back_from_the_archive(lab):
    conf = "/etc/postgresql/17/main/conf.d/hx-auth.conf"
    before = lab.ssh(DB, f"sha256sum {conf}; stat -c '%a %U' {conf}").stdout
    backup(lab, "backup", "run", "--no-copy", check=True)
    lab.ssh(DB, f"rm {conf}")
    r = backup(lab, "restore", "--path", conf)
    assert r.returncode == 0 and f"restored {conf}" in r.stdout
    assert lab.ssh(DB, f"sha256sum {conf}; stat -c '%a %U' {conf}").stdout == before


def test_point_in_time_recovery_returns_exactly_the_rows_before_the_time(lab):
    """WAL archiving and a base backup: the cluster recovered to a time between two inserts holds
    the first and not the second."""
    lab.hx_deploy("site", "--limit", DB)  # archiving on (pg_auth_wal_archive), the cluster restarted for it
    assert psql(lab, "SHOW archive_mode", db="postgres") == "on"
    psql(lab, "CREATE TABLE IF NOT EXISTS pitr (v text)")
    backup(lab, "backup", "run", "--no-copy", check=True)  # the base backup before both rows
    psql(lab, "INSERT INTO pitr VALUES ('first')")
    lab.ssh(DB, "sleep 2")
    point = lab.ssh(DB, "date -u '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    lab.ssh(DB, "sleep 2")
    psql(lab, "INSERT INTO pitr VALUES ('second')")
    r = backup(lab, "restore", "--to-time", point)
    assert r.returncode == 0 and f"recovered to {point}" in r.stdout, r.stdout + r.stderr
    assert psql(lab, "SELECT string_agg(v, ',') FROM pitr") == "first"
    assert psql(lab, "SELECT pg_is_in_recovery()", db="postgres") == "f"
    r, report = lab.hx_deploy("site", "--limit", DB, "--detailed-exitcode")
    assert report["hosts"][0]["changed"] == 0, r.stderr[-3000:]


def test_disaster_recovery_drill_a_lost_database_server_rebuilt_from_the_controllers_copy(lab, tmp_path):
    """The documented drill: the host is lost with its backups; a new one is booted and deployed, the
    controller's copy is pushed to it and restored: the same rows."""
    from hxinfra.lab.inventory import issue_host_certificates

    lost = "hx-db-02"
    lab.hx_deploy("site", "--limit", lost)
    sql = (
        "CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text); "
        "INSERT INTO notes (body) SELECT md5(i::text) FROM generate_series(1, 777) i"
    )
    lab.ssh(lost, f'cd / && runuser -u postgres -- psql -XAtq -d hx_webui -c "{sql}"')
    rows = f'cd / && runuser -u postgres -- psql -XAtq -d hx_webui -c "{ROWS}"'
    before = lab.ssh(lost, rows).stdout.strip()
    r = lab.hxinfra("backup", "run", "--env", "lab", "--limit", lost, "--dest", str(tmp_path), "--json", check=True)
    copy = tmp_path / lost / json.loads(r.stdout)[0]["id"]
    lab.lab.down([lost])  # the host and everything on it, its backups included, are gone
    lab.lab.up([lost])
    issue_host_certificates(lab.lab)
    lab.hx_deploy("site", "--limit", lost)  # a new, empty server as the data says
    r = lab.hxinfra("backup", "push", "--env", "lab", "--limit", lost, "--from", str(copy), check=False)
    assert r.returncode == 0 and f"{copy.name} -> /var/backups/hx/{copy.name}" in r.stdout, r.stdout + r.stderr
    r = lab.hxinfra("restore", "--env", "lab", "--limit", lost, "--db", "hx_webui", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert lab.ssh(lost, rows).stdout.strip() == before
    r, report = lab.hx_deploy("site", "--limit", lost, "--detailed-exitcode")
    assert report["hosts"][0]["changed"] == 0, r.stderr[-3000:]
