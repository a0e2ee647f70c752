"""The web UI app (apps/hx-webui) routes before it works: an unknown path costs no database
connection and no gateway call, /health asks the gateway's liveness (never a paid completion, never
with the key), and / makes at most one completion per cache window. The app runs as a real server
on loopback in front of a counting gateway; its database driver is a stand-in that counts connects."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import ROOT

DRIVER = """
import os
class OperationalError(Exception):
    pass
def connect(*args, **kwargs):
    with open(os.environ["DB_COUNT"], "a") as f:
        f.write("connect\\n")
    raise OperationalError("no database here")
"""


class Gateway(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, bool]] = []

    def _answer(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        Gateway.seen.append(("GET", self.path, "Authorization" in self.headers))
        self._answer({"status": "healthy"})

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Gateway.seen.append(("POST", self.path, "Authorization" in self.headers))
        self._answer({"choices": [{"message": {"content": "hi"}}]})

    def log_message(self, *args: object) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def app(tmp_path):
    Gateway.seen = []
    gateway = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    release = tmp_path / "release"
    release.mkdir()
    shutil.copy(ROOT / "apps/hx-webui/app.py", release / "app.py")
    (release / "VERSION").write_text("9.9.9\n")
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "psycopg2.py").write_text(DRIVER)
    count = tmp_path / "db-connects"
    count.write_text("")
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(stub),
        "PORT": str(port),
        "HX_LISTEN": "127.0.0.1",
        "HX_DATABASE_URL": "postgresql://u@127.0.0.1:1/x",
        "HX_GATEWAY_URL": f"http://127.0.0.1:{gateway.server_address[1]}",
        "HX_GATEWAY_KEY": "sk-test-key-0123456789",
        "DB_COUNT": str(count),
    }
    proc = subprocess.Popen([sys.executable, str(release / "app.py")], env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield base, count
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        gateway.shutdown()


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - loopback test server
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_unknown_paths_cost_nothing_health_asks_liveness_and_the_page_is_cached(app):
    base, count = app
    for path in ("/nosuch", "/favicon.ico", "/health/x", "/..%2fetc"):
        assert get(base + path) == 404
    assert count.read_text() == "" and Gateway.seen == []  # no database connection, no gateway call
    assert get(base + "/health") == 503  # the database stand-in refuses: failing, truthfully
    assert Gateway.seen == [("GET", "/health/liveliness", False)]  # liveness, without the key
    assert count.read_text().count("connect") == 1
    assert get(base + "/") == 200 and get(base + "/") == 200 and get(base + "/?x=1") == 200
    completions = [s for s in Gateway.seen if s[1] == "/v1/chat/completions"]
    assert completions == [("POST", "/v1/chat/completions", True)]  # one paid call for three pages


def test_a_plain_http_gateway_off_the_host_is_refused(tmp_path):
    sys.path.insert(0, str(tmp_path))
    (tmp_path / "psycopg2.py").write_text(DRIVER)
    release = tmp_path / "rel"
    release.mkdir()
    shutil.copy(ROOT / "apps/hx-webui/app.py", release / "hxwebui_app.py")
    (release / "VERSION").write_text("1\n")
    sys.path.insert(0, str(release))
    try:
        import hxwebui_app

        os.environ["HX_GATEWAY_URL"] = "http://192.0.2.1:4000"
        os.environ["HX_GATEWAY_KEY"] = "sk-x"
        assert hxwebui_app.completion() == {"ok": False, "error": "GatewayNotTLS"}
        assert hxwebui_app.gateway_alive() == {"ok": False, "error": "GatewayNotTLS"}
    finally:
        sys.path.remove(str(tmp_path))
        sys.path.remove(str(release))
        sys.modules.pop("hxwebui_app", None)
        sys.modules.pop("psycopg2", None)
        os.environ.pop("HX_GATEWAY_URL", None)
        os.environ.pop("HX_GATEWAY_KEY", None)
