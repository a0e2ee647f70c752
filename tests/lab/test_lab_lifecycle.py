"""hxinfra lab: boot, ssh, status, recovery after a killed run, and a teardown that leaves nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab


def _leftovers(tag: str) -> list[str]:
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {line}" for line in netns.splitlines() if tag in line]
    with open("/proc/self/mounts") as f:
        found += [f"mount {line.split()[1]}" for line in f if f"/labs/{tag}/" in line]
    procs = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    found += [f"process {line}" for line in procs.splitlines() if f"/labs/{tag}/" in line and "ps -eo" not in line]
    return found


def test_lab_cli_up_ssh_status_recover_down(lab):
    env = {**lab.env, "HXINFRA_LAB": "pytest-life"}

    def hx(*args, check=True):
        r = subprocess.run(
            [sys.executable, "-m", "hxinfra", "lab", *args],
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=300,
        )
        assert not check or r.returncode == 0, r.stderr
        return r

    try:
        hx("up", "life1")
        status = json.loads(hx("status", "--json").stdout)
        assert status == [{"name": "life1", "ip": status[0]["ip"], "state": "running"}]
        assert hx("ssh", "life1", "hostname", "-f").stdout.strip() == "life1.lab.hxinfra.test"
        assert hx("ssh", "life1", "systemctl", "is-system-running").stdout.strip() in ("running", "degraded")

        # a killed run: the supervisor and the container die without cleanup
        pid = int(Path("/var/lib/hxinfra/lab/labs/pytest-life/life1/supervisor.pid").read_text())
        os.killpg(os.getpgid(pid), signal.SIGKILL)
        subprocess.run(["pkill", "-KILL", "-f", "labs/pytest-life/life1/root"], check=False)
        time.sleep(0.5)
        assert json.loads(hx("status", "--json").stdout)[0]["state"] == "stopped"
        hx("ssh", "life1", "touch", "/root/kept", check=False)
        up = hx("up", "life1")
        assert "recovering life1" in up.stderr
        assert hx("ssh", "life1", "true").returncode == 0
    finally:
        hx("down", check=False)
    assert _leftovers("pytest-life") == []
    assert json.loads(hx("status", "--json").stdout) == []


def test_lab_up_refuses_unknown_host_names(lab):
    r = subprocess.run(
        [sys.executable, "-m", "hxinfra", "lab", "up", "Bad_Name"],
        env=lab.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "invalid host name 'Bad_Name'" in r.stderr
