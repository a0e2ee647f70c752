"""Hosts that do not answer SSH (nothing listening, or a peer that closes before the banner) are
reported unreachable, host by host, by every verb that connects: never a traceback, never pyinfra's
"No hosts remaining!". Only loopback addresses are used."""

from __future__ import annotations

import json
import socket
import threading

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
