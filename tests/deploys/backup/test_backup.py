"""The backup component's files from host data alone, and its program checked as a shell script."""

from __future__ import annotations

import subprocess

import pytest

from deploys.backup import COMPONENT
from deploys.backup.config import DEFAULTS, check_data, desired_config

BASE = {**DEFAULTS, "backup_key": "k" * 32, "pg_auth_databases": [{"name": "hx_webui", "owner": "hx_webui"}]}


def files(data):
    return {i.path: i for i in desired_config(data)}


def test_key_is_private_and_the_program_is_valid_bash(tmp_path):
    items = files(BASE)
    key = items["/etc/hx-backup/key"]
    assert key.mode == "0600" and key.sensitive and key.content == "k" * 32 + "\n"
    program = items["/usr/local/sbin/hx-backup"]
    assert program.mode == "0755" and program.content.startswith("#!/bin/bash\n# managed by hxinfra")
    (tmp_path / "hx-backup").write_text(program.content)
    assert subprocess.run(["bash", "-n", str(tmp_path / "hx-backup")]).returncode == 0
    assert "DATABASES=(hx_webui )" in program.content
    assert "DATABASES=()" in files({**BASE, "pg_auth_databases": []})["/usr/local/sbin/hx-backup"].content
    timer = items["/etc/systemd/system/hx-backup.timer"].content
    assert "OnCalendar=*-*-* 02:30:00" in timer and "Persistent=true" in timer


def test_the_program_refuses_unknown_verbs_and_bad_ids(tmp_path):
    program = tmp_path / "hx-backup"
    program.write_text(files(BASE)["/usr/local/sbin/hx-backup"].content.replace("/var/backups/hx", str(tmp_path)))
    usage = subprocess.run(["bash", str(program), "nope"], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage: hx-backup" in usage.stderr
    bad = subprocess.run(["bash", str(program), "verify", "../etc"], capture_output=True, text=True)
    assert bad.returncode == 1 and "no backup ../etc" in bad.stderr


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("backup_key", "short", "at least 24"),
        ("backup_dir", "relative/dir", "absolute"),
        ("backup_retention_days", 0, ">= 1"),
        ("backup_schedule", "daily; rm -rf /", "calendar"),
        ("backup_paths", ["/etc", "x"], "absolute"),
    ],
)
def test_values_of_the_wrong_shape_are_refused(key, value, message):
    problems = dict(check_data({**BASE, key: value}))
    assert key in problems and message in problems[key]


def test_component_needs_a_key_on_every_backed_up_host():
    assert "backup_key" in COMPONENT.required and COMPONENT.groups == ("backup_clients",)
    assert check_data(BASE) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["restore", "-e", "target_hosts=hx-web-01", "--config", "ad_join"],
            "--config 'ad_join': one of firewall, hardening, litellm, nginx, node_exporter, pg_auth",
        ),
        (
            ["restore", "-e", "bogus=1", "--config", "nginx"],
            "-e: restore takes target_hosts, recovery_point; not bogus",
        ),
        (["restore", "--config", "nginx"], "say which hosts: --limit PATTERN (or -e target_hosts=PATTERN)"),
        (["restore", "-l", "hx-db-01", "--config", "nginx"], "--config nginx: no host of 'hx-db-01' runs it"),
        (["restore", "-e", "target_hosts=hx-db-01", "-e", "recovery_point=yesterday"], "--to-time 'yesterday'"),
        (["restore", "-l", "hx-db-01", "--config", "nginx", "--key-from", "production"], "--key-from decrypts a"),
        (["backup", "run", "-e", "backup_services=redis"], "--services: redis unknown here"),
        (
            ["backup", "run", "-e", "recovery_point=x"],
            "-e: backup run takes target_hosts, backup_services; not recovery_point",
        ),
    ],
)
def test_the_guides_variables_and_config_restore_are_checked_before_connecting(args, message):
    from click.testing import CliRunner

    from hxinfra.cli import main

    r = CliRunner().invoke(main, [*args, "--env", "development"], catch_exceptions=False)
    assert r.exit_code == 2 and message in r.output and "Connecting" not in r.output


def test_the_backup_holds_what_the_components_declare():
    """Each component's configuration (its Backup declaration), the data's extra paths after them,
    and the databases its database component declares with their cluster."""
    from deploys import COMPONENTS, component

    program = files({**BASE, "backup_paths": ["/srv/extra", "/etc/nginx"]})["/usr/local/sbin/hx-backup"].content
    declared = [
        p for name in COMPONENTS if (c := component(name)[0]).backup for p in c.backup({**c.defaults}, "h").paths
    ]
    assert "/etc/nginx" in declared and "/etc/postgresql" in declared
    paths = next(line for line in program.splitlines() if line.startswith("PATHS="))
    assert paths == "PATHS=(" + " ".join([*dict.fromkeys([*declared, "/srv/extra"])]) + " )"
    assert "DATABASES=(hx_webui )" in program and "PG_PORT=5432" in program


def test_one_restore_may_read_another_key_and_the_program_keeps_its_own(tmp_path):
    """``HX_BACKUP_KEY_FILE`` names another key for one command (``restore --key-from``); without
    it the program's own key file. A backup encrypted under one key decrypts under it only."""
    program = tmp_path / "hx-backup"
    text = files(BASE)["/usr/local/sbin/hx-backup"].content
    # the program's own functions, run on their own: its key, encrypt and decrypt
    head = text.split("pick()")[0].replace("set -euo pipefail", "set -uo pipefail")
    program.write_text(head + 'case "$1" in key) echo "$KEY";; enc) enc "$2";; dec) dec "$2";; esac\n')
    own = subprocess.run(["bash", str(program), "key"], capture_output=True, text=True).stdout.strip()
    assert own == "/etc/hx-backup/key"
    drill = tmp_path / "drill.key"
    drill.write_text("d" * 32 + "\n")
    env = {"PATH": "/usr/bin:/bin", "HX_BACKUP_KEY_FILE": str(drill), "GNUPGHOME": str(tmp_path)}
    said = subprocess.run(["bash", str(program), "key"], capture_output=True, text=True, env=env).stdout.strip()
    assert said == str(drill)
    sealed = tmp_path / "x.gpg"
    try:
        _round_trip(program, sealed, env, tmp_path)
    finally:  # the agent gpg started for this test's home
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, check=False)


def _round_trip(program, sealed, env, tmp_path):
    subprocess.run(["bash", str(program), "enc", str(sealed)], input="rows", text=True, env=env, check=True)
    assert (
        subprocess.run(["bash", str(program), "dec", str(sealed)], capture_output=True, text=True, env=env).stdout
        == "rows"
    )
    other = tmp_path / "other.key"
    other.write_text("o" * 32 + "\n")
    wrong = subprocess.run(
        ["bash", str(program), "dec", str(sealed)],
        capture_output=True,
        text=True,
        env={**env, "HX_BACKUP_KEY_FILE": str(other)},
    )
    assert wrong.returncode != 0 and wrong.stdout == ""
