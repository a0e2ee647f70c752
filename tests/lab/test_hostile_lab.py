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
# lists the backups as ever, after planting a file in the newest one
SMUGGLER = """#!/bin/sh
if [ "$1" = list ]; then
  newest=$({real} list | tail -n1); touch "/var/backups/hx/$newest/"{planted}; {real} list; exit 0
fi
exec {real} "$@"
"""
WRAPPER = """#!/bin/sh
if [ "$1" = list ]; then {real} list; echo '{climbing}'; exit 0; fi
exec {real} "$@"
"""


def test_a_climbing_backup_id_and_smuggled_names_write_nothing_outside_dest(lab, tmp_path):
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
    # a real backup, then a listing that smuggles in a name ls prints as "..", or a file SHA256SUMS lacks
    for planted, reason in (("\"$(printf 'a\\n..')\"", "not single file names"), ("unlisted.bin", "not listed")):
        lab.ssh(DB, f"cp -p {BACKUP} {BACKUP}.real")
        try:
            script = SMUGGLER.format(real=f"{BACKUP}.real", planted=planted)
            lab.ssh(DB, f"printf '%s' {shlex.quote(script)} > {BACKUP} && chmod 0755 {BACKUP}")
            r = lab.hxinfra("backup", "run", "--env", "lab", "--limit", DB, "--dest", str(dest), "--json", check=False)
            result = json.loads(r.stdout)[0]
            assert r.returncode == 1 and not result["ok"] and reason in result["detail"], r.stdout + r.stderr
        finally:
            lab.ssh(DB, f"mv -f {BACKUP}.real {BACKUP}; rm -f /var/backups/hx/*/a* /var/backups/hx/*/unlisted.bin")
    assert all(p.resolve().is_relative_to(tmp_path) for p in tmp_path.rglob("*"))
    r = lab.hxinfra("backup", "run", "--env", "lab", "--limit", DB, "--dest", str(dest), "--json", check=False)
    assert r.returncode == 0 and json.loads(r.stdout)[0]["ok"], r.stdout + r.stderr  # a clean one copies as ever


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
