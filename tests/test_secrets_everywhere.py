"""One secret holding ``& < > " '`` fed through every output: stdout, stderr, JSON, the HTML reports,
the run history (its rows and its file), the run log and the dashboard. It is found nowhere.

The host is this machine itself (pyinfra's ``@local``): a real command prints the secret, a real
deploy fails with it in its output, so every path has the plaintext to leak. Each verb runs in a
process of its own, so what masks a secret is that verb's own doing, never an earlier one's."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT

from hxinfra import secrets as vault

INVENTORY = """
from deploys import components as _components
from hxinfra.inventory import environment as _environment

_env = _environment(
    __file__,
    data={"hx_environment": "demo", "hx_domain": "demo.example"},
    hosts={"@local": {"groups": []}},
    components=_components(),
)
globals().update(_env.pyinfra_groups())
"""
# a deploy whose command fails printing what the file holds (the vault's secret, as a host might echo it)
ECHO = """
from pyinfra.operations import server

server.shell(name="Print the secret file, then fail", commands=["cat {path}; echo; exit 3"])
"""


@pytest.fixture
def world(tmp_path, monkeypatch):
    token = secrets.token_hex(6)
    secret = f"Pw&<Oscar{token}>\"'99"  # every character HTML, shells and JSON treat specially
    extra = f"Ex&<Papa{token}>\"'77"  # given with -e only
    broken = f"Br&<Quebec{token}>\"'55"  # given with -e, in an argument that does not parse
    project = tmp_path / "project"
    (project / "inventories/demo/group_vars/all").mkdir(parents=True)
    (project / "deploys").mkdir()
    password = b"correct horse battery staple"
    (project / ".vault_pass").write_bytes(password)
    (project / ".vault_pass").chmod(0o600)
    (project / "inventories/demo.py").write_text(INVENTORY)
    body = f"vault_demo_secret: {json.dumps(secret)}\n".encode()
    (project / "inventories/demo/group_vars/all/vault.yml").write_text(vault.encrypt(body, password))
    (tmp_path / "secret.txt").write_text(secret + "\n")  # what the host holds of the vault's secret
    held = tmp_path / "both.txt"  # and, for the deploy given the -e one, that one too
    held.write_text(secret + "\n" + extra + "\n")
    (project / "deploys/echo.py").write_text(textwrap.dedent(ECHO.format(path=held)))
    state = tmp_path / "state"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HXINFRA_PROJECT": str(project),
        "HXINFRA_STATE": str(state),
        "PYINFRA_PROGRESS": "off",
    }
    env.pop("HXINFRA_EXTRA_VARS", None)
    env.pop(vault.PASSWORD_FILE_ENV, None)
    outputs: list[tuple[str, str]] = []

    def hx(*args: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [sys.executable, "-m", "hxinfra", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
        )
        outputs.append((f"{args[0]} stdout", r.stdout))
        outputs.append((f"{args[0]} stderr", r.stderr))
        return r

    return type(
        "World",
        (),
        {
            "tokens": [f"Oscar{token}", f"Papa{token}", f"Quebec{token}"],
            "secret": secret,
            "extra": extra,
            "broken": broken,
            "hx": staticmethod(hx),
            "outputs": outputs,
            "project": project,
            "state": state,
            "tmp": tmp_path,
        },
    )


def test_a_secret_is_found_in_no_output(world):
    w = world
    log = w.tmp / "run.log"
    # a command on the host prints the vault's secret and the -e one, to stdout and to stderr
    r = w.hx("run", "--env", "demo", "@local", "--", f"cat {w.tmp / 'secret.txt'}; cat {w.tmp / 'secret.txt'} >&2")
    assert r.returncode == 0 and "********" in r.stdout, r.stdout + r.stderr
    r = w.hx("run", "--env", "demo", "--json", "@local", "--", f"cat {w.tmp / 'secret.txt'}")
    assert json.loads(r.stdout)[0]["ok"], r.stdout
    # a deploy that fails printing it, with an -e secret, a run log and its JSON report
    r = w.hx(
        "deploy", "echo", "--env", "demo", "--json", "--log-file", str(log), "-e",
        json.dumps({"ad_join_admin_password": w.extra}),
    )  # fmt: skip
    report = json.loads(r.stdout)
    assert r.returncode == 1 and report["hosts"][0]["status"] == "failed", r.stderr
    assert "********" in report["hosts"][0]["cause"], report
    # an -e argument that does not parse: the error names the key, never the value
    r = w.hx("deploy", "echo", "--env", "demo", "--check", "-e", f"ad_join_admin_password={w.broken}")
    assert r.returncode == 1 and "ad_join_admin_password" in r.stderr, r.stderr
    r = w.hx("deploy", "echo", "--env", "demo", "--check", "-e", f"{{broken: {w.broken}")
    assert r.returncode == 1 and "not shown" in r.stderr, r.stderr
    # the inventory as JSON, the history as JSON and as a table, the dashboard over them
    w.hx("inventory", "host", "@local", "--env", "demo", "--json")
    r = w.hx("history", "--json")
    assert len(json.loads(r.stdout)) == 3, r.stdout  # the three deploys (run is no recorded verb)
    w.hx("history")
    dash = w.tmp / "dash"
    assert w.hx("dashboard", "--out", str(dash)).returncode == 0
    files = [log, *sorted(w.state.rglob("*")), *sorted(dash.rglob("*"))]
    for path in files:
        if path.is_file():
            w.outputs.append((str(path), path.read_bytes().decode("utf-8", "replace")))
    assert any(str(dash) in name and "@local" in text for name, text in w.outputs)  # the pages were written
    assert any("history.sqlite3" in name for name, _ in w.outputs)
    leaks = [(name, token) for name, text in w.outputs for token in w.tokens if token in text]
    assert not leaks, leaks
    # the history is private, as its directory
    assert (w.state.stat().st_mode & 0o777) == 0o700
    assert (w.state / "history.sqlite3").stat().st_mode & 0o777 == 0o600


def test_the_html_reports_redact_before_they_escape(world, fresh_keyring):
    """health, audit and drift reports, fed the secret by a host, with the environment's secrets
    registered the way those verbs register them (the vault opened, nothing asked)."""
    from hxinfra import audit, driftreport, health
    from hxinfra.cli.common import register_secrets
    from hxinfra.inventory import load_environment

    w = world
    token = w.tokens[0]
    os.environ["HXINFRA_PROJECT"] = str(w.project)
    try:
        keyring = vault.keyring_from_sources(project=w.project)
        vault.set_default_keyring(keyring)  # as the verbs' vault options set it
        env = load_environment(w.project / "inventories/demo.py", extra_vars={})
        assert register_secrets(env, keyring) == 1
    finally:
        os.environ.pop("HXINFRA_PROJECT")
    said = [f"password={w.secret}", w.secret]
    pages = [
        health.report_html(
            [health.HostHealth("h1", checks=[health.CheckResult("probe", "web", False, said)])], "health"
        ),
        audit.report_html(
            [audit.HostAudit("h1", results=[audit.ControlResult("c1", "t", False, said, {})])], "audit", None
        ),
        driftreport.report_html([driftreport.DriftHost("h1", "failed", cause=said[0])], "drift"),
    ]
    for page in pages:
        assert token not in page and "********" in page


def test_a_state_directory_left_open_is_tightened_and_a_link_refused(tmp_path):
    from hxinfra import history

    state = tmp_path / "st"
    state.mkdir(mode=0o755)
    db = state / history.FILE
    db.write_bytes(b"")
    db.chmod(0o644)
    state.chmod(0o755)
    history.connect(db).close()
    assert state.stat().st_mode & 0o777 == 0o700 and db.stat().st_mode & 0o777 == 0o600
    other = tmp_path / "other.sqlite3"
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / history.FILE).symlink_to(other)
    with pytest.raises(history.HistoryError, match="symbolic link"):
        history.connect(linked / history.FILE)
    assert not other.exists()
