"""The HX web UI (lab and test build): one page that proves the chain behind it.

It reads its database over TLS as its own role (``HX_DATABASE_URL``, ``sslmode=verify-full``) and
asks the LiteLLM gateway, over TLS verified against the HX CA (``HX_GATEWAY_URL``, ``HX_GATEWAY_CA``),
for a completion (``HX_GATEWAY_KEY``/``HX_GATEWAY_MODEL``), shown on ``/`` and kept for
``HX_ANSWER_CACHE_SECONDS`` (30). ``/health`` checks the database and the gateway's liveness, no
completion (200 only when both answer). Any other path is a 404 that touches neither.
Its version is the ``VERSION`` file of its release; its colour and port come from the unit.
Secrets never reach a page or a log line.
"""

from __future__ import annotations

import html
import json
import os
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg2

HERE = Path(__file__).resolve().parent
VERSION = (HERE / "VERSION").read_text().strip()
BROKEN = (HERE / "BROKEN").exists()  # a test build whose health always fails
COLOR = os.environ.get("HX_COLOR", "")


def database() -> dict[str, object]:
    """Who we are on the database, and whether the session is TLS (pg_stat_ssl)."""
    try:
        with psycopg2.connect(os.environ["HX_DATABASE_URL"], connect_timeout=5) as conn, conn.cursor() as cur:
            cur.execute("SELECT current_user, ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            user, ssl, tls = cur.fetchone()
            return {"ok": True, "user": user, "ssl": bool(ssl), "tls": tls}
    except Exception as e:  # noqa: BLE001 - shown on the page, the secret-free class name only
        return {"ok": False, "error": type(e).__name__}


def _gateway(path: str, body: bytes | None = None) -> urllib.request.Request | None:
    """A request to the gateway over TLS only (``HX_GATEWAY_URL`` is https; plain http is taken only
    for a gateway on this host's loopback)."""
    base = os.environ["HX_GATEWAY_URL"].rstrip("/")
    if not base.startswith(("https://", "http://127.0.0.1:", "http://localhost:")):
        return None
    headers = {"Content-Type": "application/json"}
    if body is not None:  # the key goes with a completion only, never with a liveness probe
        headers["Authorization"] = "Bearer " + os.environ["HX_GATEWAY_KEY"]
    return urllib.request.Request(base + path, data=body, headers=headers)  # noqa: S310 - scheme checked


def _tls() -> ssl.SSLContext:
    """The gateway's certificate is verified against the HX CA (the bundle ``HX_GATEWAY_CA`` names)."""
    return ssl.create_default_context(cafile=os.environ.get("HX_GATEWAY_CA") or None)


def completion() -> dict[str, object]:
    """One chat completion through the gateway (a paid call: made for ``/`` only, and cached)."""
    body = json.dumps(
        {
            "model": os.environ.get("HX_GATEWAY_MODEL", "hx-chat"),
            "messages": [{"role": "user", "content": f"hello from hx-webui {VERSION}"}],
        }
    ).encode()
    req = _gateway("/v1/chat/completions", body)
    if req is None:
        return {"ok": False, "error": "GatewayNotTLS"}
    try:
        with urllib.request.urlopen(req, timeout=10, context=_tls()) as r:  # noqa: S310 - checked above
            answer = json.load(r)["choices"][0]["message"]["content"]
            return {"ok": True, "answer": answer}
    except Exception as e:  # noqa: BLE001
        return {"ok": False, "error": type(e).__name__}


def gateway_alive() -> dict[str, object]:
    """The gateway's liveness endpoint: no key, no completion, no cost."""
    req = _gateway("/health/liveliness")
    if req is None:
        return {"ok": False, "error": "GatewayNotTLS"}
    try:
        with urllib.request.urlopen(req, timeout=5, context=_tls()) as r:  # noqa: S310 - checked above
            return {"ok": r.status == 200}
    except Exception as e:  # noqa: BLE001
        return {"ok": False, "error": type(e).__name__}


class Cached:
    """A value computed at most once per ``seconds`` (the page's completion: one paid call per
    window, whatever the number of visitors); failures are not kept."""

    def __init__(self, compute: Callable[[], dict[str, object]], seconds: float) -> None:
        self.compute, self.seconds = compute, seconds
        self.lock = threading.Lock()
        self.value: dict[str, object] | None = None
        self.at = 0.0

    def get(self) -> dict[str, object]:
        with self.lock:
            if self.value is None or time.monotonic() - self.at >= self.seconds:
                value = self.compute()
                self.value, self.at = (value, time.monotonic()) if value.get("ok") else (None, 0.0)
                return value
            return self.value


ANSWER = Cached(completion, float(os.environ.get("HX_ANSWER_CACHE_SECONDS", "30")))


class Handler(BaseHTTPRequestHandler):
    server_version = "hx-webui"

    def _send(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-HX-Release", f"{VERSION} {COLOR}")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        # routed first: an unknown path costs no database connection and no gateway call
        path = self.path.split("?", 1)[0]
        if path == "/health":
            db, gw = database(), gateway_alive()
            healthy = db["ok"] and gw["ok"] and not BROKEN
            state = {
                "status": "ok" if healthy else "failing",
                "version": VERSION,
                "color": COLOR,
                "database": db,
                "gateway": gw,
            }
            self._send(200 if healthy else 503, json.dumps(state).encode(), "application/json")
            return
        if path != "/":
            self._send(404, b"not found\n", "text/plain")
            return
        db, gw = database(), ANSWER.get()
        e = html.escape
        page = (
            f"<!doctype html><title>HX web UI</title><h1>HX web UI {e(VERSION)} ({e(COLOR)})</h1>"
            f"<p>database: {e(json.dumps(db))}</p><p>gateway: {e(json.dumps(gw))}</p>"
        )
        self._send(200, page.encode(), "text/html; charset=utf-8")

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    ThreadingHTTPServer((os.environ.get("HX_LISTEN", "127.0.0.1"), int(os.environ["PORT"])), Handler).serve_forever()


if __name__ == "__main__":
    main()
