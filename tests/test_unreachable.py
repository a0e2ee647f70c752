"""Hosts that do not answer SSH (nothing listening, or a peer that closes before the banner) are
reported unreachable, host by host, by every verb that connects: never a traceback, never pyinfra's
"No hosts remaining!". Only loopback addresses are used."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from hxinfra.cli import main

INVENTORY = """
from deploys import components as _components
from hxinfra.inventory import environment as _environment

_env = _environment(
    __file__,
    data={{"hx_environment": "demo", "hx_domain": "demo.example"}},
    hosts={{
        "closed": {{"address": "127.0.0.1", "groups": ["web_servers"], "data": {{"ssh_port": {closed}}}}},
        "hangup": {{"address": "127.0.0.1", "groups": ["web_servers"], "data": {{"ssh_port": {hangup}}}}},
    }},
    components=_components(),
)
globals().update(_env.pyinfra_groups())
"""


@pytest.fixture
def ports():
    """A port nothing listens on, and one whose peer accepts and hangs up at once (no SSH banner)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield closed, server.getsockname()[1]
    stop.set()
    thread.join(2)
    server.close()


@pytest.mark.parametrize(
    "verb",
    [["ping", "--json"], ["run", "all", "--json", "--", "true"], ["facts", "all", "server.Os", "--json"]],
)
def test_no_host_answers_each_is_reported_unreachable(project, ports, verb):
    closed, hangup = ports
    project("inventories/demo.py", INVENTORY.format(closed=closed, hangup=hangup))
    (project.root / "inventories/demo").mkdir(exist_ok=True)
    (project.root / "inventories/demo/known_hosts").write_text("")
    r = CliRunner().invoke(main, [verb[0], "--env", "demo", *verb[1:]])
    assert "Traceback" not in r.output and "No hosts remaining" not in r.output, r.output
    assert r.exit_code == 1, r.output
    results = {h["host"]: h for h in json.loads(r.stdout)}
    assert set(results) == {"closed", "hangup"} and not any(h["reachable"] for h in results.values())


DRIVER = """
import json, sys
from click.testing import CliRunner
from hxinfra.cli import main
from hxinfra.inventory import core

built = []
real_init = core.Environment.__init__

def counting(self, *args, **kwargs):
    built.append(self)
    real_init(self, *args, **kwargs)

core.Environment.__init__ = counting
r = CliRunner().invoke(main, sys.argv[1:])
print(json.dumps({"rc": r.exit_code, "report": r.stdout, "built": len(built),
                  "extra": [dict(e.extra_vars) for e in built]}))
"""


def test_pyinfra_loads_the_environment_hxinfra_built_once(project, ports, tmp_path):
    """hxinfra deploy loads and validates the environment (with its -e layer), and pyinfra, run in the
    same process, gets that very object when it runs the inventory file (handoff.reusing): one build,
    and the -e values are the run's, not a stale HXINFRA_EXTRA_VARS'. (In a process of its own:
    pyinfra's CLI patches the standard library for gevent, which a test process must not see.)"""
    closed, hangup = ports
    project("inventories/demo.py", INVENTORY.format(closed=closed, hangup=hangup))
    (project.root / "inventories/demo").mkdir(exist_ok=True)
    (project.root / "inventories/demo/known_hosts").write_text("")
    (project.root / "deploys").rmdir()
    for part in ("deploys", "templates"):  # the project's own deploys, as a real checkout has them
        (project.root / part).symlink_to(Path(__file__).resolve().parents[1] / part)
    env = {**os.environ, "HXINFRA_EXTRA_VARS": '{"nginx_upstream_port": 1}'}  # what a stale shell may hold
    args = ["deploy", "nginx", "--env", "demo", "--check", "-e", "nginx_upstream_port=3999", "--json"]
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, *args], cwd=project.root, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["rc"] == 1  # no host answers
    assert {h["host"]: h["status"] for h in json.loads(result["report"])["hosts"]} == {
        "closed": "unreachable",
        "hangup": "unreachable",
    }
    assert result["built"] == 1, f"the environment was built {result['built']} times"
    assert result["extra"][0]["nginx_upstream_port"] == 3999
