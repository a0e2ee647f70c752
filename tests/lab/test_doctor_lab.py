"""hxinfra doctor on the lab: clean once the lab is up and converged; it names the host whose recorded
host key is removed, and the host whose sshd is stopped (real SSH logins, no mock)."""

from __future__ import annotations

import json
import time

import pytest

from tests.lab.conftest import STACK

pytestmark = pytest.mark.lab

HOST = "hx-web-03"


def doctor(lab, *args: str):
    r = lab.hxinfra("doctor", "--env", "lab", "--json", *args, check=False)
    return r, (json.loads(r.stdout) if r.stdout.strip() else {})


def test_doctor_is_clean_on_the_lab_and_names_what_breaks(lab):
    r, report = doctor(lab)
    assert r.returncode == 0 and report["ready"], json.dumps(report.get("findings"), indent=1) + r.stderr[-2000:]
    assert "ssh" in report["checked"] and {*STACK, HOST, "hx-web-01"} <= set(report["hosts"])

    known = lab.lab.known_hosts
    saved = known.read_text()
    ip = lab.ip(HOST)
    known.write_text("".join(line for line in saved.splitlines(True) if not line.startswith((f"{ip} ", f"{ip},"))))
    try:
        r, report = doctor(lab, "--limit", HOST)
    finally:
        known.write_text(saved)
    assert r.returncode == 1
    checks = {f["check"]: f for f in report["findings"]}
    assert checks["known-hosts"]["hosts"] == [HOST]
    assert checks["known-hosts"]["fix"] == f"hxinfra known-hosts scan --env lab --limit {HOST} --record"
    assert checks["ssh"]["hosts"] == [HOST]  # strict checking: no login without the recorded key

    # sshd stopped (a timer on the host starts it again in 30 s)
    lab.ssh(HOST, "systemd-run --quiet --on-active=30 systemctl start ssh.service && systemctl stop ssh.service")
    try:
        r, report = doctor(lab, "--limit", HOST, "--limit", "hx-web-01")
        assert r.returncode == 1
        (finding,) = report["findings"]
        assert finding["check"] == "ssh" and finding["hosts"] == [HOST] and "cannot log in" in finding["problem"]
    finally:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and lab.ssh(HOST, "true", check=False).returncode != 0:
            time.sleep(3)
    r, report = doctor(lab, "--limit", HOST)
    assert r.returncode == 0 and report["ready"], report
