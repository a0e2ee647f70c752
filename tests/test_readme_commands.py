"""Every command example of README.md that can run offline is run here, as a user types it.

The README's ``sh`` blocks are read line by line. Each command is one of:
- offline: run in a copy of the project (its inventories, its deploys), in the README's order, and
  it must exit as the README says (0 unless the table below says otherwise);
- needs hosts: it connects to an environment's hosts or boots lab hosts (the lab tests run those);
- a synopsis: a line that names a placeholder (``FILE``, ``edit|view``) rather than a value.
A new example that fits none of them fails the first test, so the README cannot drift from the tool.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# verbs (and sub-verbs) that connect to hosts, or need the lab, with the reason
NEEDS_HOSTS = {
    ("make", "demo"): "boots the lab",
    ("make", "test"): "the tests themselves",
    ("make", "promote"): "deploys environments",
    ("make", "prod-deploy"): "deploys an environment",
    ("pyinfra",): "pyinfra connects to every host, --dry included",
    ("hxinfra", "deploy"): "connects (--check included)",
    ("hxinfra", "drift"): "a check run on the hosts",
    ("hxinfra", "audit"): "reads the hosts",
    ("hxinfra", "restore"): "changes hosts",
    ("hxinfra", "run"): "runs on hosts",
    ("hxinfra", "known-hosts", "scan"): "asks each host's sshd",
    ("hxinfra", "pki", "expiry"): "reads the certificates the hosts serve",
    ("hxinfra", "pki", "renew"): "deploys certificates",
    ("hxinfra", "lab", "up"): "boots lab hosts",
    ("hxinfra", "lab", "ssh"): "logs in to a lab host",
    ("hxinfra", "lab", "ca"): "the running lab's CA",
    ("hxinfra", "lab", "down"): "removes lab hosts",
    ("hxinfra", "doctor"): "logs in to every host (--offline: run here)",
    ("hxinfra", "watch", "run"): "runs drift, health and the certificates' check on the hosts",
    (
        "hxinfra",
        "watch",
        "install",
    ): "writes and starts systemd units on this machine (tests/test_watch.py: --unit-dir)",
    ("hxinfra", "watch", "remove"): "stops and removes systemd units of this machine (tests/test_watch.py: --unit-dir)",
    (".venv/bin/python", "bench/bench.py"): "the benchmark itself (minutes; make its numbers with it)",
}
# offline commands whose README-documented exit is not 0
EXIT = {"hxinfra doctor --env staging --offline": 1}  # "the list": an environment with findings
# what some of them leave (a file under the project) or say (on stdout or stderr), beyond their exit
LEAVES = {
    "hxinfra plan --env production --out plan/production": "plan/production/hx-web-01.plan",
    "hxinfra import-ansible ../ansible/inventories/prod --env prod-imported": "inventories/prod-imported.py",
    "hxinfra vault create inventories/staging/group_vars/all/vault.yml": "inventories/staging/group_vars/all/vault.yml",
    "hxinfra dashboard --out dashboard": "dashboard/index.html",
    "hxinfra pki init --dir pki/testing --cn 'HX Testing Root CA'": "pki/testing/private/ca.key",
}
SAYS = {
    "hxinfra inventory host hx-web-01 --env development --explain": "nginx_",
    "hxinfra inventory graph --env staging": "web_servers",
    "hxinfra history show 42": "deploy",
    "hxinfra history --env production --since 7d": "production",
    "hxinfra vault encrypt-string --name vault_pg_auth_app_password": "$ANSIBLE_VAULT;1.1;AES256",
    "hxinfra doctor --env staging --offline": "vault",
}
SYNOPSIS = re.compile(r"\b[A-Z]{3,}\b(?!=)|\w\|\w|\.\.\.|~/")  # FILE, NAME..., edit|view, ~/.hx/pass


def readme_commands() -> list[str]:
    """The commands of the README's ``sh`` blocks, comments dropped, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s\[[^\]]*\]", "", line)  # an optional part: [--json], [NAME...]
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                words = words[1:]  # VAR=value before the command
            if words and words[0] in ("hxinfra", "make", "pyinfra", ".venv/bin/python"):
                out.append(shlex.join(words))
    return out


def kind(command: str) -> str:
    words = shlex.split(command)
    for prefix in sorted(NEEDS_HOSTS, key=len, reverse=True):
        if tuple(words[: len(prefix)]) == prefix:
            if command.endswith("--offline"):
                return "offline"
            return "hosts"
    if SYNOPSIS.search(command.replace("[", " ").replace("]", " ")):
        return "synopsis"
    return "offline"


COMMANDS = readme_commands()
OFFLINE = [c for c in COMMANDS if kind(c) == "offline"]


def test_every_readme_command_is_run_here_or_says_why_not() -> None:
    assert len(COMMANDS) > 40, "the README's sh blocks were read"
    kinds = {c: kind(c) for c in COMMANDS}
    assert len(OFFLINE) >= 15, OFFLINE
    assert set(LEAVES) | set(SAYS) | set(EXIT) <= set(OFFLINE), "every expectation names a README command"
    synopses = [c for c, k in kinds.items() if k == "synopsis"]
    assert all(SYNOPSIS.search(c) for c in synopses)
    assert len(synopses) <= 6, f"a synopsis per verb at most, examples run: {synopses}"


def _runnable(command: str) -> list[str]:
    """The command as typed, ``hxinfra`` from this venv."""
    words = shlex.split(command)
    if words[0] == "hxinfra":
        words[0] = str(BIN / "hxinfra")
    return words


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A copy of the project (its inventories; its deploys and templates linked), an Ansible
    inventory where the README's import example reads one, a vault password, 42 recorded runs."""
    base = tmp_path_factory.mktemp("readme")
    project = base / "project"
    shutil.copytree(ROOT / "inventories", project / "inventories")
    for part in ("deploys", "templates", "apps", "pyproject.toml"):
        (project / part).symlink_to(ROOT / part)
    source = base / "ansible/inventories/prod"
    source.mkdir(parents=True)
    (source / "hosts.yml").write_text(
        textwrap.dedent(
            """\
            all:
              vars: {hx_domain: example.test}
              children:
                web_servers:
                  hosts: {web01: {ansible_host: 192.0.2.50}}
                database_servers:
                  hosts: {db01: {ansible_host: 192.0.2.30}}
            """
        )
    )
    password = base / "vault-pass"
    password.write_text("readme-pw\n")
    password.chmod(0o600)
    editor = base / "editor"
    editor.write_text("#!/bin/sh\nprintf 'vault_readme_example: from-the-editor\\n' > \"$1\"\n")
    editor.chmod(0o755)
    env = {
        **os.environ,
        "HXINFRA_PROJECT": str(project),
        "HXINFRA_STATE": str(base / "state"),
        "HXINFRA_VAULT_PASSWORD_FILE": str(password),
        "HXINFRA_WATCH_UNIT_DIR": str(base / "units"),  # never this machine's systemd
        "EDITOR": str(editor),
        "VISUAL": str(editor),
    }
    env.pop("HXINFRA_EXTRA_VARS", None)
    env.pop("HXINFRA_ENV", None)
    from hxinfra import history

    for i in range(42):  # the history the commands read (HXINFRA_STATE above)
        run = history.Run("deploy", env="production", target="site", check=i % 2 == 0)
        history.write(run, 0, project, path=base / "state" / history.FILE)
    return {"project": project, "env": env}


@pytest.mark.parametrize("command", OFFLINE)
def test_the_readme_command_runs(command: str, sandbox: dict[str, object]) -> None:
    r = subprocess.run(
        _runnable(command),
        cwd=sandbox["project"],  # type: ignore[arg-type]
        env=sandbox["env"],  # type: ignore[arg-type]
        input="an-example-secret\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == EXIT.get(command, 0), f"{command}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    assert "Traceback" not in r.stderr, r.stderr
    if command in LEAVES:
        assert (sandbox["project"] / LEAVES[command]).is_file(), LEAVES[command]  # type: ignore[operator]
    if command in SAYS:
        assert SAYS[command] in r.stdout + r.stderr, (command, r.stdout[-500:], r.stderr[-500:])
    assert "an-example-secret" not in r.stdout + r.stderr  # what it read on stdin is never echoed
