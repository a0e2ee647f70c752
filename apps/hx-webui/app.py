"""The HX web UI (lab and test build): one page that proves the chain behind it.

It reads its database over TLS as its own role (``HX_DATABASE_URL``, ``sslmode=verify-full``),
asks the LiteLLM gateway for a completion (``HX_GATEWAY_URL``/``HX_GATEWAY_KEY``/
``HX_GATEWAY_MODEL``), and shows both on ``/`` and in ``/health`` (200 only when both answer).
Its version is the ``VERSION`` file of its release; its colour and port come from the unit.
Secrets never reach a page or a log line.
"""

from __future__ import annotations

import html
import json
import os
import urllib.request
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


def completion() -> dict[str, object]:
    """One chat completion through the gateway."""
    body = json.dumps(
        {
            "model": os.environ.get("HX_GATEWAY_MODEL", "hx-chat"),
            "messages": [{"role": "user", "content": f"hello from hx-webui {VERSION}"}],
        }
    ).encode()
    url = os.environ["HX_GATEWAY_URL"].rstrip("/") + "/v1/chat/completions"
    if not url.startswith(("http://", "https://")):  # the unit sets it; never a file: or custom scheme
        return {"ok": False, "error": "GatewayURLScheme"}
    req = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url,
        data=body,
        headers={"Authorization": "Bearer " + os.environ["HX_GATEWAY_KEY"], "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - checked above
            answer = json.load(r)["choices"][0]["message"]["content"]
            return {"ok": True, "answer": answer}
    except Exception as e:  # noqa: BLE001
        return {"ok": False, "error": type(e).__name__}


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
        db, gw = database(), completion()
        healthy = db["ok"] and gw["ok"] and not BROKEN
        if self.path == "/health":
            state = {
                "status": "ok" if healthy else "failing",
                "version": VERSION,
                "color": COLOR,
                "database": db,
                "gateway": gw,
            }
            self._send(200 if healthy else 503, json.dumps(state).encode(), "application/json")
            return
        if self.path != "/":
            self._send(404, b"not found\n", "text/plain")
            return
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
