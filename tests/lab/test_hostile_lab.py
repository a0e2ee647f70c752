"""Hostile hosts, for real: a database server whose hx-backup prints a climbing backup id, a backup
directory whose listing smuggles in names that are not files of the backup, and a front end whose
basics are junk. The controller writes nothing outside --dest, says what the host did wrong, and
every other host of the run is reported as usual."""

from __future__ import annotations

import json
import secrets
import shlex
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

DB = "hx-db-01"
WEB = "hx-web-01"
BACKUP = "/usr/local/sbin/hx-backup"
WRAPPER = """#!/bin/sh
if [ "$1" = list ]; then {real} list; echo '{climbing}'; exit 0; fi
exec {real} "$@"
"""


def test_a_climbing_backup_id_and_smuggled_names_write_nothing_outside_dest(lab, tmp_path, monkeypatch):
    token = secrets.token_hex(4)
    target = Path("/tmp") / f"hx-pwned-{token}"
    climbing = f"../../../../../../..{target}"
    dest = tmp_path / "dest"
    lab.ssh(DB, f"cp -p {BACKUP} {BACKUP}.real")
    try:
        # hx-backup that makes its backup as usual, then lists a climbing id as the newest
        script = WRAPPER.format(real=f"{BACKUP}.real", climbing=climbing)
        lab.ssh(DB, f"printf '%s' {shlex.quote(script)} > {BACKUP} && chmod 0755 {BACKUP}")
        r = lab.hxinfra("backup", "run", "--env", "lab", "--limit", DB, "--dest", str(dest), "--json", check=False)
        result = json.loads(r.stdout)[0]
        assert r.returncode == 1 and not result["ok"] and "not a backup id" in result["detail"], r.stdout + r.stderr
        assert not list(Path("/tmp").glob(f"hx-pwned-{token}*"))
    finally:
        lab.ssh(DB, f"mv -f {BACKUP}.real {BACKUP}")
    # a real backup whose directory then holds a name ls prints as "..", and a file SHA256SUMS does not list
    r = lab.hxinfra("backup", "run", "--env", "lab", "--limit", DB, "--dest", str(dest), "--json", check=False)
    assert r.returncode == 0 and json.loads(r.stdout)[0]["ok"], r.stdout + r.stderr  # a clean one copies as ever
    made = json.loads(r.stdout)[0]["id"]
    directory = f"/var/backups/hx/{made}"
    from hxinfra.adhoc import Session  # the copy of that backup again, as backup run copies it
    from hxinfra.cli.backup import _copy
    from hxinfra.inventory import load_environment

    monkeypatch.setenv("HXINFRA_LAB", lab.lab.name)
    env = load_environment(lab.root / "inventories/lab.py", extra_vars={})
    try:
        lab.ssh(DB, f"touch {directory}/\"$(printf 'a\\n..')\" {directory}/unlisted.bin")
        with Session(env, [DB]) as session:
            result = _copy(session, env, DB, made, tmp_path / "again")
        assert result["ok"] is False and "not single file names" in result["detail"], result
        lab.ssh(DB, f"rm -f {directory}/a*")
        with Session(env, [DB]) as session:
            result = _copy(session, env, DB, made, tmp_path / "again")
        assert result["ok"] is False and "not listed: ['unlisted.bin']" in result["detail"], result
        assert all(p.resolve().is_relative_to(tmp_path) for p in tmp_path.rglob("*"))
    finally:
        lab.ssh(DB, f"rm -f {directory}/a* {directory}/unlisted.bin", check=False)


def test_a_host_printing_junk_numbers_is_a_finding_not_a_crash(lab, tmp_path):
    # nproc (which the basics read) answers "²" on one front end: /usr/local/bin comes first in PATH
    lab.ssh(WEB, "printf '#!/bin/sh\\necho ²\\n' > /usr/local/bin/nproc && chmod 0755 /usr/local/bin/nproc")
    try:
        r = lab.hxinfra(
            "health", "--env", "lab", "--limit", f"{WEB}:hx-web-02", "--services", "system", "--json", check=False
        )
        results = {h["host"]: h for h in json.loads(r.stdout)["hosts"]}
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert "the host's basics read as numbers" in results[WEB]["failures"]
        assert results[WEB]["basics"]["unparsed"] == ["cpus=²"]
        assert "the host's basics read as numbers" not in results["hx-web-02"]["failures"]
        store = tmp_path / "samples.jsonl"
        r = lab.hxinfra("metrics", "collect", "--env", "lab", "--limit", WEB, "--store", str(store), check=False)
        assert r.returncode == 0 and "not a number" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert json.loads(store.read_text().splitlines()[-1])["host"] == WEB
    finally:
        lab.ssh(WEB, "rm -f /usr/local/bin/nproc")
