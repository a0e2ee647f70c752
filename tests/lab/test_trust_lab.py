"""Trust on real hosts: hostile data never runs, unknown host keys are refused, a failed run blocks nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.lab

TARGET = "hx-web-02"
CANARY = "/tmp/PWNED"
HOSTILE = {
    "nginx_site_name": "../../../../tmp/x",
    "nginx_security_headers": {"X-A": 'x" always; location /leak { alias /etc/; autoindex on; } #'},
    "nginx_server_name": f"$(touch {CANARY})",
    "nginx_upstream_host": f"127.0.0.1:3000; `touch {CANARY}`",
    "pg_auth_cluster": f"main'; touch {CANARY}; echo '",
    "pg_auth_hba": [
        {"database": "a", "user": "b", "address": "10.0.0.1/32", "options": "\nhost all all 0.0.0.0/0 trust"}
    ],
    "ad_join_sudo_rules": [{"group": "ops,ALL", "commands": "ALL"}],
    "ad_join_domain": f"x`touch {CANARY}`",
    "ad_join_dns_servers": ["10.0.0.1\nnameserver 6.6.6.6"],
    "ca_trust_log_dir": f"/var/log/hx; touch {CANARY} #",
    "ca_trust_host_certs": [{"name": "w", "cert": "c", "key": "k", "key_group": f"root;touch {CANARY};true"}],
}


@pytest.mark.parametrize("key", sorted(HOSTILE))
def test_hostile_values_are_refused_before_connecting_and_nothing_runs(lab, tmp_path, key):
    extra = tmp_path / "hostile.yml"
    extra.write_text(yaml.safe_dump({key: HOSTILE[key]}))
    for deploy, check in (("site", ()), ("site", ("--check", "--diff"))):
        r = lab.hxinfra("deploy", deploy, "--env", "lab", "--limit", TARGET, "-e", f"@{extra}", *check, check=False)
        assert r.returncode == 1, r.stderr[-2000:]
        assert key in r.stderr and "Connecting" not in r.stderr, r.stderr[-2000:]
    assert lab.ssh(TARGET, f"test -e {CANARY}", check=False).returncode == 1
    assert not Path(CANARY).exists()


def test_a_directory_where_a_file_belongs_is_refused_and_the_next_run_is_not_blocked(lab):
    conf = "/etc/nginx/conf.d/hx-webui.conf"
    lab.hx_deploy("nginx", "--limit", TARGET)  # nginx installed and converged first
    lab.ssh(TARGET, f"rm -f {conf} && mkdir -p {conf} && touch {conf}/keep")
    r, report = lab.hx_deploy("nginx", "--limit", TARGET, check=False)
    assert r.returncode == 1 and "not a regular file or symlink" in r.stderr, r.stderr[-3000:]
    assert lab.ssh(TARGET, f"test -f {conf}/keep", check=False).returncode == 0  # nothing removed
    assert lab.ssh(TARGET, f"ls /var/backups/hxinfra{conf} 2>/dev/null", check=False).stdout == ""  # nor copied
    lab.ssh(TARGET, f"rm -rf {conf}")
    r, report = lab.hx_deploy("nginx", "--limit", TARGET)
    assert report["hosts"][0]["status"] == "changed" and lab.ssh(TARGET, "nginx -t", check=False).returncode == 0
    r, again = lab.hx_deploy("nginx", "--limit", TARGET)
    assert again["hosts"][0]["changed"] == 0


def test_lab_hosts_are_checked_against_the_keys_recorded_at_creation(lab, tmp_path):
    known = lab.lab.known_hosts
    text = known.read_text()
    ip = lab.ip(TARGET)
    assert any(line.startswith(f"{ip},{TARGET},") for line in text.splitlines())
    # the key the host presents is the recorded one (seen through the real client)
    scanned = lab.run("ssh-keyscan", "-t", "ed25519", ip).stdout.split()
    assert scanned[2] in text
    # an unknown key: that host is unreachable with a clear message, and nothing runs on it
    forged = tmp_path / "known_hosts"
    forged.write_text(
        "".join(
            line.replace(line.split()[2], "AAAAC3NzaC1lZDI1NTE5AAAAIB7h1f2vbeVlO2Z9vX0m0bq2rG3bUuQm6mO0b1b3c4d5")
            if line.startswith(f"{ip},")
            else line
            for line in text.splitlines(keepends=True)
        )
    )
    r, report = lab.hx_deploy(
        "nginx", "--limit", TARGET, "-e", json.dumps({"ssh_known_hosts_file": str(forged)}), check=False
    )
    assert r.returncode == 1 and report["hosts"][0]["status"] == "unreachable", r.stderr[-3000:]
    assert "host key" in r.stderr and TARGET in r.stderr
    forged.write_text("")  # no key at all: refused too, never learned
    r, report = lab.hx_deploy(
        "nginx", "--limit", TARGET, "-e", json.dumps({"ssh_known_hosts_file": str(forged)}), check=False
    )
    assert r.returncode == 1 and report["hosts"][0]["status"] == "unreachable"
    assert forged.read_text() == ""


def test_known_hosts_scan_shows_fingerprints_and_agrees_with_the_lab(lab):
    r = lab.hxinfra("known-hosts", "scan", "--env", "lab", "--limit", TARGET, "--json")
    rows = json.loads(r.stdout)["hosts"]
    assert rows[0]["host"] == TARGET and rows[0]["status"] == "ok"
    fp = lab.ssh(TARGET, "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1]
    assert any(fp in line for line in rows[0]["fingerprints"])
