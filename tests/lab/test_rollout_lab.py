"""The rollout engine on real hosts: serial batches that stop, fail percentage, tags, unreachable hosts."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.lab

MARKER = "tests/lab/deploys/marker.py"
FOUR = ["hx-web-01", "hx-web-02", "hx-web-03", "hx-web-04"]


def marker(lab, name: str) -> str:
    return lab.ssh(name, "cat /etc/hx-test/marker 2>/dev/null || true").stdout


def test_serial_1_stops_at_the_failing_host_and_never_touches_the_rest(lab):
    run = uuid.uuid4().hex
    lab.ssh("hx-web-02", "mkdir -p /etc/hx-test && touch /etc/hx-test/fail-here")
    try:
        r, report = lab.hx_deploy(
            MARKER,
            "--limit",
            "~hx-web-0[1-4]",
            "--serial",
            "1",
            "-e",
            f"fake_run={run}",
            "--detailed-exitcode",
            check=False,
        )
    finally:
        lab.ssh("hx-web-02", "rm -f /etc/hx-test/fail-here")
    assert r.returncode == 1
    status = {h["host"]: (h["status"], h["batch"]) for h in report["hosts"]}
    assert status == {
        "hx-web-01": ("changed", 1),
        "hx-web-02": ("failed", 2),
        "hx-web-03": ("skipped", 0),
        "hx-web-04": ("skipped", 0),
    }
    assert report["batches"] == [[h] for h in FOUR]
    assert "never started: hx-web-03, hx-web-04" in report["stopped"]
    assert "rollout stopped" in r.stderr and "== batch 2/4: hx-web-02" in r.stderr and "batch 3/4" not in r.stderr
    assert "== progress: 1/4 hosts done, 0 failed\n" in r.stderr
    assert "== progress: 2/4 hosts done, 1 failed (hx-web-02)\n" in r.stderr
    assert run in marker(lab, "hx-web-01")
    for name in ("hx-web-02", "hx-web-03", "hx-web-04"):
        assert run not in marker(lab, name)


def test_max_fail_percentage_lets_the_rollout_continue(lab):
    run = uuid.uuid4().hex
    lab.ssh("hx-web-02", "mkdir -p /etc/hx-test && touch /etc/hx-test/fail-here")
    try:
        r, report = lab.hx_deploy(
            MARKER,
            "--limit",
            "hx-web-0[!5]",
            "--serial",
            "50%",
            "--max-fail-percentage",
            "50",
            "-e",
            f"fake_run={run}",
            check=False,
        )
    finally:
        lab.ssh("hx-web-02", "rm -f /etc/hx-test/fail-here")
    assert r.returncode == 1 and report["stopped"] is None  # 1 of 2 failed: 50% is not above 50%
    assert [h["status"] for h in report["hosts"]] == ["changed", "failed", "changed", "changed"]
    assert all(run in marker(lab, n) for n in ("hx-web-01", "hx-web-03", "hx-web-04"))


def test_detailed_exitcode_values(lab):
    run = uuid.uuid4().hex
    args = (MARKER, "--limit", "hx-web-03", "-e", f"fake_run={run}", "--detailed-exitcode")
    assert lab.hx_deploy(*args, "--check", check=False)[0].returncode == 2  # changes pending
    assert run not in marker(lab, "hx-web-03")  # check mode changed nothing
    assert lab.hx_deploy(*args, check=False)[0].returncode == 2  # changes made
    assert lab.hx_deploy(*args, check=False)[0].returncode == 0  # converged
    assert lab.hx_deploy(*args, "--check", check=False)[0].returncode == 0


INSTALL = "nginx | Install the nginx package and curl (for the check after a pool switch)"


def test_tags_select_steps_under_both_clis(lab):
    r, report = lab.hx_deploy("nginx", "--limit", "hx-web-04", "--tags", "packages", "--check")
    assert [op["name"] for op in report["operations"]] == [INSTALL]
    r, report = lab.hx_deploy("nginx", "--limit", "hx-web-04", "--skip-tags", "packages,service", "--check")
    names = [op["name"] for op in report["operations"]]
    assert names and all("Install" not in n and "Start" not in n for n in names) and any("Write" in n for n in names)
    r = lab.hxinfra("deploy", "nginx", "--env", "lab", "--tags", "confg", check=False)
    assert r.returncode == 1 and "unknown tag(s) confg" in r.stderr
    dry = lab.pyinfra("deploys.nginx.nginx", "--limit", "hx-web-04", "--data", "hx_tags=packages", "--dry", "--json")
    assert [op["name"] for op in json.loads(dry.stdout)["plan"]] == [INSTALL]


def test_unreachable_host_is_named_and_the_others_finish(lab):
    ip = lab.ip("hx-web-04")
    ns = lab.lab.get("hx-web-04").netns
    subprocess.run(["ip", "-n", ns, "addr", "del", f"{ip}/24", "dev", "eth0"], check=True)
    try:
        run = uuid.uuid4().hex
        r, report = lab.hx_deploy(MARKER, "--limit", "hx-web-03:hx-web-04", "-e", f"fake_run={run}", check=False)
    finally:
        subprocess.run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0"], check=True)
    assert r.returncode == 1
    status = {h["host"]: h["status"] for h in report["hosts"]}
    assert status == {"hx-web-03": "changed", "hx-web-04": "unreachable"}
    assert run in marker(lab, "hx-web-03")
    assert "1 changed, 1 unreachable" in r.stderr


def test_unknown_limit_is_an_error_before_connecting(lab):
    r = lab.hxinfra("deploy", "site", "--env", "lab", "--limit", "web_severs", check=False)
    assert r.returncode == 1 and "matches no host or group" in r.stderr and "Connecting" not in r.stderr


SNAPSHOT = (
    "find /etc /usr/local /var/backups /var/log/hx -xdev \\( -type f -o -type l \\) "
    "-printf '%p %m %U %G %s %T@ %l\\n' 2>/dev/null | sort | sha256sum; "
    "find /etc /usr/local -xdev -type f -print0 | sort -z | xargs -0 cat | sha256sum"
)


def test_check_diff_on_changed_hosts_leaves_them_byte_for_byte_unchanged(lab):
    lab.hx_deploy("site", "--limit", "hx-web-01")
    lab.ssh("hx-web-01", "chmod 600 /etc/nginx/conf.d/hx-webui.conf")  # drift: owner/mode only
    before = {n: lab.ssh(n, SNAPSHOT).stdout for n in FOUR}
    r, report = lab.hx_deploy(
        "site",
        "--limit",
        "~hx-web-0[1-4]",
        "--check",
        "--diff",
        "-e",
        "nginx_client_max_body_size=99m",
        "-e",
        "nginx_tls=false",
    )
    assert report["hosts"][0]["status"] == "pending" and report["hosts"][0]["changes"]
    assert "--- a/etc/nginx/sites-available/webui.conf" in r.stderr and "+    client_max_body_size 99m;" in r.stderr
    assert "-    listen 443 ssl http2;" in r.stderr  # TLS off would drop the HTTPS server block
    assert "Will set /etc/nginx/conf.d/hx-webui.conf to root:root 0644 (was root:root 0600)" in r.stderr
    assert "~ HX site | nginx | Write the nginx site, its conf.d file and links" in r.stderr  # per-host summary
    assert {n: lab.ssh(n, SNAPSHOT).stdout for n in FOUR} == before
    lab.ssh("hx-web-01", "chmod 644 /etc/nginx/conf.d/hx-webui.conf")


def test_promotion_flow_check_deploy_validate(lab):
    """The documented promotion command, on the lab (it only ever reaches lab hosts here)."""
    r = lab.run(
        "make",
        "--no-print-directory",
        "promote",
        "PROMOTE_ENVS=lab",
        "LIMIT=hx-web-03",
        "SERIAL=1",
        f"HX={sys.executable} -m hxinfra",
    )
    assert "== lab: check" in r.stdout and "== lab: deploy" in r.stdout and "== lab: validate" in r.stdout
    assert "== lab: gate before" in r.stdout and "== lab: gate after" in r.stdout
    assert "promoted site through: lab" in r.stdout
