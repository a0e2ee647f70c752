"""Shared fixtures: a throw-away project tree for inventory tests, and the project root."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def private_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The suite's runs (and its children's) go into a run history of its own, never the operator's."""
    state = tmp_path_factory.mktemp("state")
    os.environ["HXINFRA_STATE"] = str(state)
    return state


@pytest.fixture
def fresh_keyring(monkeypatch: pytest.MonkeyPatch):
    """No vault password from the environment, and a new default keyring before and after the test."""
    from hxinfra import secrets as vault

    for var in (vault.PASSWORD_FILE_ENV, vault.VAULT_IDS_ENV, vault.PASSWORDS_FD_ENV):
        monkeypatch.delenv(var, raising=False)
    vault.set_default_keyring(None)
    yield
    vault.set_default_keyring(None)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A minimal project (inventories/ + deploys/) with a writer for its files."""
    (tmp_path / "inventories").mkdir()
    (tmp_path / "deploys").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HXINFRA_EXTRA_VARS", raising=False)
    monkeypatch.setenv("HXINFRA_PROJECT", str(tmp_path))

    def write(rel: str, text: str) -> Path:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    write.root = tmp_path  # type: ignore[attr-defined]
    return write


INVENTORY = """
from deploys import components as _components
from hxinfra.inventory import environment as _environment

_env = _environment(
    __file__,
    data={"hx_environment": "demo", "hx_domain": "demo.example", "nginx_upstream_port": 3100},
    hosts={
        "web1": {"address": "192.0.2.10", "groups": ["web_servers"], "data": {"nginx_http_port": 8080}},
        "web2": {"address": "192.0.2.11", "groups": ["web_servers", "canary"]},
        "db1": {"address": "192.0.2.20", "groups": ["database_servers"]},
    },
    components=_components(),
)
globals().update(_env.pyinfra_groups())
"""


@pytest.fixture
def http_health():
    """A local HTTP server: 200 on ``/health`` and ``/ok``, 503 on anything else; yields its port."""
    import http.server
    import threading

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200 if self.path in ("/health", "/ok") else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
