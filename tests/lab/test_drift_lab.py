"""Drift, the run history and the dashboard on lab hosts: hand changes found exactly, a deploy
puts them back, every run is in the history, a broken history never fails a deploy, and the
dashboard renders in a real browser (headless Chromium) with the hosts and their states."""

from __future__ import annotations

import json
import sqlite3
import subprocess

import pytest
from browser import browser as headless

from hxinfra import history

pytestmark = pytest.mark.lab

A, B = "hx-web-03", "hx-web-04"
LIMIT = ("--limit", A, "--limit", B)
MONITOR = "/usr/local/sbin/hx-ca-trust-expiry"
SSHD = "/etc/ssh/sshd_config.d/00-hxinfra.conf"
EDIT = "# edited by hand on the host"
REMOVE = "apt-get remove -y -qq unattended-upgrades >/dev/null 2>&1"


def drift(lab, *args: str, env: dict | None = None):
    r = subprocess.run(
        [*lab.hxinfra_argv, "drift", "--env", "lab", *LIMIT, "--json", *args],
        cwd=lab.root,
        env=env or lab.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return r, (json.loads(r.stdout) if r.stdout.strip() else {})


def found(report: dict) -> dict[str, set[tuple[str, str, str]]]:
    return {h["host"]: {(f["kind"], f["name"], f["detail"]) for f in h["findings"]} for h in report["hosts"]}


@pytest.fixture(scope="module")
def converged(lab):
    lab.hx_deploy("site", *LIMIT)
    yield
    lab.hx_deploy("site", *LIMIT)  # whatever a test left changed by hand


def test_drift_names_exactly_the_hand_changes_and_a_deploy_puts_them_back(lab, converged):
    r, clean = drift(lab)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert {h["host"]: h["status"] for h in clean["hosts"]} == {A: "clean", B: "clean"}

    lab.ssh(
        A,
        f"echo {EDIT!r} >> {MONITOR}; systemctl stop fail2ban; {REMOVE}",
    )
    lab.ssh(
        B,
        f"echo {EDIT!r} >> {SSHD}; systemctl disable -q nftables; {REMOVE}",
    )
    before = {h: lab.ssh(h, f"sha256sum {MONITOR} {SSHD}").stdout for h in (A, B)}
    r, report = drift(lab)
    assert r.returncode == 2, r.stdout + r.stderr[-3000:]
    assert found(report) == {
        A: {
            ("path", MONITOR, "content"),
            ("package", "unattended-upgrades", "not installed"),
            ("service", "fail2ban.service", "not running"),
        },
        B: {
            ("path", SSHD, "content"),
            ("package", "unattended-upgrades", "not installed"),
            ("service", "nftables.service at boot", "not enabled"),
        },
    }
    monitor = next(f for f in report["hosts"][0]["findings"] if f["name"] == MONITOR)
    assert f"-{EDIT}" in monitor["diff"] and monitor["diff"][0] == f"--- a{MONITOR}"  # the way back, as a diff
    assert {h: lab.ssh(h, f"sha256sum {MONITOR} {SSHD}").stdout for h in (A, B)} == before  # read-only
    assert not lab.host(A).service("fail2ban").is_running  # nothing started either
    text = lab.hxinfra("drift", "--env", "lab", *LIMIT, check=False)
    assert text.returncode == 2 and f"~ path {MONITOR}: content" in text.stdout and f"        -{EDIT}" in text.stdout

    r, report = lab.hx_deploy("site", *LIMIT)
    assert {h["host"]: h["status"] for h in report["hosts"]} == {A: "changed", B: "changed"}
    r, after = drift(lab)
    assert r.returncode == 0 and all(h["findings"] == [] for h in after["hosts"]), r.stdout

    runs = history.runs(env="lab", host=A, limit=10)
    drifts = [x for x in runs if x["verb"] == "drift"]
    assert [x["outcome"] for x in drifts[:4]] == ["ok", "drift", "drift", "ok"]  # newest first
    deploy = next(x for x in runs if x["verb"] == "deploy")
    assert deploy["outcome"] == "changed" and deploy["selection"] == f"{A},{B}"
    shown = history.show(deploy["id"])
    items = {(i["kind"], i["name"]) for h in shown["hosts"] if h["host"] == A for i in h["items"]}
    assert {("path", MONITOR), ("package", "unattended-upgrades"), ("service", "fail2ban.service")} <= items
    assert all(EDIT not in i["name"] + i["detail"] for h in shown["hosts"] for i in h["items"])  # names only


def test_a_broken_or_locked_history_never_fails_a_deploy(lab, converged, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir(mode=0o700)
    (broken / history.FILE).write_bytes(b"not a database\n" * 200)
    env = {**lab.env, history.STATE_ENV: str(broken)}
    args = [*lab.hxinfra_argv, "deploy", "site", "--env", "lab", *LIMIT, "--json"]
    r = subprocess.run(args, cwd=lab.root, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "hxinfra: warning: this run is not in the history" in r.stderr
    assert all(h["status"] == "ok" for h in json.loads(r.stdout)["hosts"])

    locked = tmp_path / "locked"
    env = {**lab.env, history.STATE_ENV: str(locked)}
    history.connect(locked / history.FILE).close()
    holder = sqlite3.connect(locked / history.FILE, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another writer that does not let go
    try:
        r = subprocess.run(args, cwd=lab.root, env=env, capture_output=True, text=True, timeout=600)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert r.returncode == 0 and "database is locked" in r.stderr, r.stderr[-3000:]


def test_the_dashboard_of_the_lab_renders_in_chromium_with_the_hosts_and_their_states(lab, converged, tmp_path):
    r, _ = drift(lab)  # the last word on A and B: clean
    assert r.returncode == 0, r.stdout
    site = tmp_path / "dashboard"
    lab.hxinfra("dashboard", "--out", str(site), "--env", "lab")
    page = site / "env-lab.html"
    browser = headless()
    dom = subprocess.run(
        [*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    for host in (A, B):
        assert f'data-host="{host}" data-state="clean"' in dom, dom[:2000]
    assert 'data-outcome="drift"' in dom and 'data-outcome="changed"' in dom
    for width, name in ((1280, "desktop"), (390, "phone")):
        png = tmp_path / f"dashboard-{name}.png"  # kept out of the tree
        subprocess.run(
            [*browser, f"--window-size={width},1600", f"--screenshot={png}", page.as_uri()],
            capture_output=True,
            timeout=120,
            check=True,
        )
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000, png
    print(f"dashboard screenshots: {tmp_path}/dashboard-desktop.png, dashboard-phone.png")


def test_a_watch_alerts_once_on_a_hand_edit_and_resolves_it_after_a_deploy(lab, converged, tmp_path):
    """The watch's own run on the lab, its webhook a real HTTP receiver here: a hand edit on A is
    sent once as firing (the next run sends nothing), a deploy puts it back and the next run sends
    it resolved; every run is in the history."""
    from receivers import Receiver

    receiver = Receiver()
    channels = tmp_path / "channels.yml"
    channels.write_text(f"hx_watch_channels: [{{webhook: '{receiver.url}'}}]\n")
    argv = [*lab.hxinfra_argv, "watch", "run", "--env", "lab", "--limit", f"{A}:{B}", "--checks", "drift"]

    def watch() -> dict:
        r = subprocess.run(
            [*argv, "-e", f"@{channels}", "--json"],
            cwd=lab.root,
            env=lab.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stdout + r.stderr[-3000:]
        return json.loads(r.stdout)

    try:
        assert watch()["conditions"] == [], "the converged hosts should be clean"
        lab.ssh(A, f"echo {EDIT!r} >> {MONITOR}")
        first = watch()
        assert first["firing"] == [f"drift/{A}"] and len(receiver.bodies) == 1, first
        assert f"FIRING drift/{A}: drifted: path {MONITOR}" in receiver.bodies[0]["text"]  # type: ignore[index]
        assert watch()["firing"] == [] and len(receiver.bodies) == 1  # still drifted: nothing new sent
        lab.hx_deploy("site", "--limit", A)
        resolved = watch()
        assert resolved["resolved"] == [f"drift/{A}"] and len(receiver.bodies) == 2, resolved
        assert f"RESOLVED drift/{A}" in receiver.bodies[1]["text"]  # type: ignore[index]
        runs = json.loads(lab.hxinfra("history", "--env", "lab", "--json").stdout)
        assert [r["outcome"] for r in runs if r["verb"] == "watch"][:4] == ["ok", "alerting", "alerting", "ok"]
    finally:
        receiver.close()
