"""The fleet watch: its systemd units, conditions from the checks, news on a change of state only,
and its channels against a real SMTP server (STARTTLS, AUTH) and real HTTP receivers."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
from email import message_from_bytes
from pathlib import Path

import pytest
from receivers import Receiver, free_port

from hxinfra import watch as w

ROOT = Path(__file__).resolve().parent.parent
SMTP_PASSWORD = "s3cret-smtp-pass"  # noqa: S105 - the test server's own


# ------------------------------------------------------------------------------ conditions, news
DRIFT = {
    "env": "demo",
    "hosts": [
        {"host": "web1", "status": "drifted", "findings": [{"kind": "path", "name": "/etc/nginx/nginx.conf"}]},
        {"host": "web2", "status": "clean", "findings": []},
        {"host": "db1", "status": "unreachable", "findings": [], "cause": "Could not connect"},
    ],
}
HEALTH = {"ok": False, "hosts": [{"host": "db1", "ok": False, "reachable": False, "failures": ["unreachable"]}]}
CERTS = [
    {"host": "web1", "name": "web", "path": "/etc/ssl/web.crt", "days_left": 12},
    {"host": "web2", "name": "web", "path": "/etc/ssl/web.crt", "days_left": 300},
    {"host": "db1", "name": "pg", "path": "/etc/ssl/pg.crt", "days_left": None},
]


def test_each_check_says_what_is_wrong_and_a_check_that_did_not_run_says_so():
    keys = [c.key for c in w.conditions("drift", 2, json.dumps(DRIFT), "")]
    assert keys == ["drift/web1", "check-failed/drift/db1"]
    assert w.conditions("drift", 2, json.dumps(DRIFT), "")[0].summary == "drifted: path /etc/nginx/nginx.conf"
    assert [c.key for c in w.conditions("health", 1, json.dumps(HEALTH), "")] == ["unhealthy/db1"]
    certs = w.conditions("certs", 1, json.dumps(CERTS), "")
    assert [c.key for c in certs] == ["certificate/web1//etc/ssl/web.crt", "certificate/db1//etc/ssl/pg.crt"]
    assert "12 day(s) left" in certs[0].summary and "missing or unreadable" in certs[1].summary
    (broken,) = w.conditions("health", 1, "", "Traceback...\nhxinfra: error: vault password wrong\n")
    assert broken.key == "check-failed/health" and "vault password wrong" in broken.summary
    (said,) = w.conditions("drift", 1, json.dumps({"error": "no such environment", "exit_code": 1}), "")
    assert said.key == "check-failed/drift" and "no such environment" in said.summary


def test_news_is_what_changed_only():
    a, b, c = (w.Condition(k, "drift", k, k) for k in ("drift/a", "drift/b", "drift/c"))
    first = w.news({}, [a, b])
    assert [x.key for x in first.firing] == ["drift/a", "drift/b"] and not first.resolved
    same = w.news({a.key: a, b.key: b}, [b, a])
    assert not same  # nothing new, nothing gone: nothing to send
    later = w.news({a.key: a, b.key: b}, [b, c])
    assert [x.key for x in later.firing] == ["drift/c"] and [x.key for x in later.resolved] == ["drift/a"]
    # a run of other checks says nothing of a drift: it stays firing
    assert not w.news({a.key: a}, [], checks=("health", "certs"))
    sick = w.Condition("check-failed/health", "check-failed", "", "the health check did not run")
    assert [x.key for x in w.news({sick.key: sick}, [], checks=("health",)).resolved] == ["check-failed/health"]
    assert [w.check_of(k) for k in ("unhealthy/h", "certificate/h//p", "check-failed/drift/h")] == [
        "health",
        "certs",
        "drift",
    ]


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        ({"webhook": "ftp://x"}, "http:// or https://"),
        ({"webhook": "https://x", "format": "slack"}, "alertmanager or chat"),
        ({"email": ["not an address"], "smtp_host": "smtp.example"}, "list of addresses"),
        ({"email": ["ops@example"], "smtp_host": "smtp example"}, "smtp_host"),
        ({"email": ["ops@example"], "smtp_host": "smtp.example", "smtp_port": "25"}, "smtp_port"),
        ({"sms": "+1"}, "needs webhook: or email:"),
    ],
)
def test_a_channel_that_cannot_work_is_refused_before_anything_runs(entry, said):
    with pytest.raises(w.WatchError, match=said):
        w.channels({"hx_watch_channels": [entry]})


# ------------------------------------------------------------------------------ the units
def test_units_are_what_systemd_reads_and_refuse_what_it_would_misread(tmp_path):
    files = w.units("staging", "15m", ("drift", "health"), sys.executable, ROOT, tmp_path / "state", "/etc/hx/vp")
    service, timer = files["hxinfra-watch-staging.service"], files["hxinfra-watch-staging.timer"]
    assert service.startswith(w.HEADER) and timer.startswith(w.HEADER)
    assert f"ExecStart={sys.executable} -m hxinfra watch run --env staging --checks drift,health\n" in service
    assert "Environment=HXINFRA_VAULT_PASSWORD_FILE=/etc/hx/vp\n" in service
    assert f"Environment=HXINFRA_STATE={tmp_path / 'state'}\n" in service
    assert "OnUnitActiveSec=900s\n" in timer and "Unit=hxinfra-watch-staging.service\n" in timer
    for bad in ("5", "3m", "25h", "15 m"):
        with pytest.raises(w.WatchError, match="--every"):
            w.units("staging", bad, ("drift",), sys.executable, ROOT, tmp_path, "")
    with pytest.raises(w.WatchError, match="cannot stand in a systemd unit"):
        w.units("staging", "1h", ("drift",), sys.executable, Path("/srv/my project"), tmp_path, "")
    with pytest.raises(w.WatchError, match="cannot stand in a systemd unit"):
        w.units("staging", "1h", ("drift",), sys.executable, ROOT, tmp_path, "/etc/100%/vp")
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (the systemd package) is needed to check the units"
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    r = subprocess.run(
        [analyze, "verify", *(str(tmp_path / n) for n in files)], capture_output=True, text=True, timeout=60
    )
    # verify reads the units as systemd would (offline): unknown keys, a command that is not executable
    problems = [line for line in (r.stdout + r.stderr).splitlines() if "hxinfra-watch" in line]
    assert r.returncode == 0 and problems == [], r.stdout + r.stderr


# ------------------------------------------------------------------------------ real receivers
@pytest.fixture
def smtp(tmp_path):
    """aiosmtpd on loopback: STARTTLS required, AUTH (one user) required after it; keeps messages."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from hxinfra.pki import LocalCA

    ca = LocalCA(tmp_path / "pki")
    ca.init("watch test CA")
    cert, key = ca.issue("smtp", ["localhost"], ["127.0.0.1"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    messages: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
            messages.append(envelope.content)
            return "250 OK"

    def auth(server, session, envelope, mechanism, data):
        ok = data.login == b"alerts" and data.password == SMTP_PASSWORD.encode()
        return AuthResult(success=ok)

    port = free_port()
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=auth,
        auth_require_tls=True,
    )
    controller.start()
    yield {"port": port, "cafile": str(ca.cert_path), "messages": messages}
    controller.stop()


def email_channel(smtp, **over):
    entry = {
        "email": ["ops@hx.example"],
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp["port"],
        "smtp_user": "alerts",
        "smtp_password": SMTP_PASSWORD,
        "from": "hxinfra@hx.example",
        "cafile": smtp["cafile"],
        **over,
    }
    return entry


def test_news_reaches_a_real_smtp_server_over_starttls_and_real_webhooks(smtp):
    chat, manager = Receiver(), Receiver()
    try:
        targets = w.channels(
            {
                "hx_watch_channels": [
                    {"webhook": chat.url},
                    {"webhook": manager.url, "format": "alertmanager"},
                    email_channel(smtp),
                ]
            }
        )
        found = w.News(
            firing=[w.Condition("drift/web1", "drift", "web1", "drifted: path /etc/nginx/nginx.conf")],
            resolved=[w.Condition("unhealthy/db1", "unhealthy", "db1", "unhealthy: unreachable")],
        )
        assert w.deliver(targets, "staging", found) == []
        (text,) = chat.bodies
        assert text == {
            "text": "hxinfra watch: staging: 1 firing, 1 resolved\n"
            "FIRING drift/web1: drifted: path /etc/nginx/nginx.conf\n"
            "RESOLVED unhealthy/db1: unhealthy: unreachable"
        }
        (alerts,) = manager.bodies
        assert [a["labels"]["alertname"] for a in alerts] == ["hxinfra_drift", "hxinfra_unhealthy"]
        assert alerts[0]["labels"] | {"key": "-"} == {
            "alertname": "hxinfra_drift",
            "env": "staging",
            "host": "web1",
            "key": "-",
            "severity": "warning",
        }
        assert "endsAt" not in alerts[0] and alerts[1]["endsAt"] == alerts[1]["startsAt"]  # resolved: ended now
        (raw,) = smtp["messages"]
        mail = message_from_bytes(raw)
        assert mail["Subject"] == "hxinfra watch staging: 1 firing, 1 resolved" and mail["To"] == "ops@hx.example"
        assert "FIRING drift/web1" in mail.get_payload()
        # a wrong password, a server without STARTTLS trust, a closed port: each named, none silent
        wrong = w.channels({"hx_watch_channels": [email_channel(smtp, smtp_password="nope")]})
        (why,) = w.deliver(wrong, "staging", found)
        assert "e-mail to ops@hx.example" in why and "nope" not in why
        untrusted = w.channels({"hx_watch_channels": [email_channel(smtp, cafile="")]})
        assert "CERTIFICATE_VERIFY_FAILED" in w.deliver(untrusted, "staging", found)[0]
        closed = w.channels({"hx_watch_channels": [{"webhook": f"http://127.0.0.1:{free_port()}/x"}]})
        assert "webhook (chat)" in w.deliver(closed, "staging", found)[0]
        assert len(smtp["messages"]) == 1 and len(chat.bodies) == 1
    finally:
        chat.close()
        manager.close()


# ------------------------------------------------------------------------------ the verbs
INVENTORY = """
from deploys import components as _components
from hxinfra.inventory import environment as _environment

_env = _environment(
    __file__,
    data={{"hx_environment": "demo", "hx_domain": "demo.example", "hx_watch_channels": {channels}}},
    hosts={{{hosts}}},
    components=_components(),
)
globals().update(_env.pyinfra_groups())
"""


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    (root / "inventories/demo").mkdir(parents=True)
    (root / "inventories/demo/known_hosts").write_text("")
    (root / "deploys").mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HXINFRA_PROJECT": str(root),
        "HXINFRA_STATE": str(tmp_path / "state"),
        "PYINFRA_PROGRESS": "off",
        "HXINFRA_WATCH_UNIT_DIR": str(tmp_path / "units"),
    }

    def inventory(channels: list[dict[str, object]], hosts: str) -> None:
        (root / "inventories/demo.py").write_text(INVENTORY.format(channels=repr(channels), hosts=hosts))

    def hx(*args: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [sys.executable, "-m", "hxinfra", *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        assert "Traceback" not in r.stderr, r.stderr
        return r

    return {"inventory": inventory, "hx": hx, "units": tmp_path / "units"}


def test_install_status_remove(project):
    project["inventory"]([], "")
    hx = project["hx"]
    r = hx("watch", "install", "--env", "demo", "--every", "30m", "--checks", "health,certs", "--no-enable")
    assert r.returncode == 0, r.stderr
    assert "no hx_watch_channels" in r.stderr  # said at install, not found out later
    service = (project["units"] / "hxinfra-watch-demo.service").read_text()
    assert "--env demo --checks health,certs" in service
    shown = json.loads(hx("watch", "status", "--json").stdout)
    assert [(s["env"], s["every"], s["checks"], s["last_run"]) for s in shown] == [
        ("demo", "30m", "health,certs", None)
    ]
    bad = hx("watch", "install", "--env", "demo", "--every", "1m", "--no-enable")
    assert bad.returncode == 1 and "between 5m and 24h" in bad.stderr
    assert hx("watch", "install", "--env", "demo", "--checks", "drift,backups", "--no-enable").returncode == 2
    assert hx("watch", "remove", "--env", "demo").returncode == 0
    assert list(project["units"].iterdir()) == []
    assert hx("watch", "remove", "--env", "demo").returncode == 1


def test_a_watch_sends_news_once_resends_what_did_not_get_through_and_resolves(project, smtp):
    """An unreachable host (a closed port): the first run sends it firing to the webhook and by
    e-mail; the second sends nothing; with the SMTP server unreachable the news is not lost (exit
    1, the next run sends it); the host gone from the inventory, its condition is resolved."""
    chat = Receiver()
    try:
        down = f'"closed": {{"address": "127.0.0.1", "groups": [], "data": {{"ssh_port": {free_port()}}}}}'
        channels = [{"webhook": chat.url}, email_channel(smtp)]
        project["inventory"](channels, down)
        hx = project["hx"]
        first = hx("watch", "run", "--env", "demo", "--checks", "health", "--json")
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["firing"] == ["unhealthy/closed"]
        assert SMTP_PASSWORD not in first.stdout + first.stderr
        assert len(chat.bodies) == 1 and "FIRING unhealthy/closed" in chat.bodies[0]["text"]  # type: ignore[index]
        assert len(smtp["messages"]) == 1
        second = hx("watch", "run", "--env", "demo", "--checks", "health", "--json")
        assert second.returncode == 0 and json.loads(second.stdout)["firing"] == []
        assert len(chat.bodies) == 1 and len(smtp["messages"]) == 1  # nothing new: nothing sent
        status = json.loads(hx("watch", "status", "--json").stdout)
        assert status == []  # no units installed here; the alerts live in the history
        # the host is replaced (by another that does not answer) while the mail server is down:
        # the news (one resolved, one firing) waits for it
        other = down.replace('"closed"', '"gone"')
        project["inventory"]([{"webhook": chat.url}, email_channel(smtp, smtp_port=free_port())], other)
        failed = hx("watch", "run", "--env", "demo", "--checks", "health", "--json")
        assert failed.returncode == 1 and "not sent" in failed.stderr and json.loads(failed.stdout)["not_sent"]
        project["inventory"](channels, other)
        resolved = hx("watch", "run", "--env", "demo", "--checks", "health", "--json")
        said = json.loads(resolved.stdout)
        assert resolved.returncode == 0 and said["resolved"] == ["unhealthy/closed"], resolved.stderr
        assert said["firing"] == ["unhealthy/gone"]
        assert "RESOLVED unhealthy/closed" in chat.bodies[-1]["text"]  # type: ignore[index]
        assert len(smtp["messages"]) == 2 and b"RESOLVED unhealthy/closed" in smtp["messages"][-1]
        again = hx("watch", "run", "--env", "demo", "--checks", "health", "--json")
        assert json.loads(again.stdout)["resolved"] == [] and len(smtp["messages"]) == 2
        listed = json.loads(hx("history", "--json").stdout)
        outcomes = [r["outcome"] for r in listed if r["verb"] == "watch"]  # every run recorded, newest first
        assert outcomes == ["alerting", "alerting", "failed", "alerting", "alerting"]
    finally:
        chat.close()
