"""The production guard: decided by the loaded environment, one guard for every verb that changes
hosts (and the Python API and the plain pyinfra CLI), host-key trust that no data layer lowers, and
host names that are DNS names. No host is needed: every refusal comes before anything connects."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from conftest import INVENTORY, ROOT

from hxinfra import guard
from hxinfra.cli import main
from hxinfra.errors import HxError, InventoryError
from hxinfra.inventory import load_environment
from hxinfra.options import RunOptions
from hxinfra.runner import run_deploy

SITE = str(ROOT / "deploys" / "site.py")
# every verb and sub-verb of the CLI that changes hosts, with arguments that select no host
CHANGES = {
    "deploy": ["deploy", SITE, "--limit", "nosuchhost"],
    "restore": ["restore", "--limit", "nosuchhost", "--db", "hx_webui"],
    "restore --config": ["restore", "--limit", "nosuchhost", "--config", "nginx"],
    "run": ["run", "--env", "{env}", "nosuchhost", "--", "true"],
    "service": ["service", "nosuchhost", "nginx", "--state", "restarted"],
    "recover": ["recover", "--limit", "nosuchhost"],
    "pki renew": ["pki", "renew", "--limit", "nosuchhost"],
    "backup run": ["backup", "run", "--limit", "nosuchhost"],
    "backup push": ["backup", "push", "--limit", "nosuchhost", "--from", "{backup}"],
}
# the verbs that only read hosts or the controller's files (a new verb must be put in one of the two)
READS = {
    "audit",
    "backup list",
    "backup verify",
    "dashboard",
    "doctor",
    "drift",
    "facts",
    "fetch",
    "health",
    "history show",
    "import-ansible",
    "inventory graph",
    "inventory host",
    "inventory list",
    "known-hosts scan",
    "lab ca",
    "lab dir",
    "lab down",
    "lab ssh",
    "lab status",
    "lab up",
    "logs analyze",
    "metrics collect",
    "metrics report",
    "ping",
    "pki expiry",
    "pki init",
    "pki issue",
    "pki verify",
    "plan",
    "report merge",
    "validate",
    "vault create",
    "vault decrypt",
    "vault edit",
    "vault encrypt",
    "vault encrypt-string",
    "vault rekey",
    "vault view",
    # the watch reads the hosts (drift, health, certificates) and writes units on the controller only
    "watch install",
    "watch remove",
    "watch run",
    "watch status",
}


def commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    out: dict[str, click.Command] = {}
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None
        full = f"{prefix}{name}"
        if isinstance(cmd, click.Group):
            out.update(commands(cmd, full + " "))
        else:
            out[full] = cmd
    return out


@pytest.fixture
def prod(project, tmp_path, monkeypatch):
    """A project whose production inventory addresses TEST-NET hosts (nothing answers there)."""
    monkeypatch.delenv(guard.CONFIRM_VAR, raising=False)
    project("inventories/production.py", INVENTORY)
    project("inventories/development.py", INVENTORY)
    backup = tmp_path / "copies" / "20261201T023000Z"
    backup.mkdir(parents=True)
    (backup / "SHA256SUMS").write_text("")
    project.backup = str(backup)  # type: ignore[attr-defined]
    return project


def invoke(*args: str, env: dict[str, str] | None = None):
    words = list(args)
    if "{env}" in words:  # the verb takes --env before its command (run ... -- COMMAND)
        i = len(words) - 1 - words[::-1].index("--env")
        words[words.index("{env}")] = words[i + 1]
        del words[i : i + 2]
        if "--yes" in words:  # and --yes too
            words.remove("--yes")
            words.insert(1, "--yes")
    return CliRunner().invoke(main, words, input="", env=env)


def test_every_verb_is_known_to_change_hosts_or_only_read():
    found = set(commands(main))
    changing = {name.split(" --")[0] for name in CHANGES}
    assert found == changing | READS, f"classify: {sorted(found ^ (changing | READS))}"
    for name in changing:  # each changing verb takes --yes (and no environment variable stands for it)
        yes = [p for p in commands(main)[name].params if p.name == "yes"]
        assert yes and not getattr(yes[0], "envvar", None), name


@pytest.mark.parametrize("verb", sorted(CHANGES))
def test_every_changing_verb_refuses_production_without_confirmation(prod, verb):
    args = [a.replace("{backup}", prod.backup) for a in CHANGES[verb]]
    r = invoke(*args, "--env", "production")
    assert r.exit_code == 1, r.output
    assert "refusing to" in r.output and "on production" in r.output and "--yes" in r.output, r.output
    # not protected: the same command gets past the guard, to the host selection that matches nothing
    r = invoke(*args, "--env", "development")
    assert "refusing to" not in r.output and "nosuchhost" in r.output, r.output
    # --yes on the command line confirms
    r = invoke(*args, "--env", "production", "--yes")
    assert "refusing to" not in r.output and "nosuchhost" in r.output, r.output


@pytest.mark.parametrize("value", ["1", "yes", "staging", "true"])
def test_the_environment_variable_confirms_only_with_the_environments_name(prod, value):
    r = invoke(*CHANGES["deploy"], "--env", "production", env={guard.CONFIRM_VAR: value})
    assert r.exit_code == 1 and "refusing to" in r.output and f"not {value!r}" in r.output, r.output
    r = invoke(*CHANGES["deploy"], "--env", "production", env={guard.CONFIRM_VAR: "production"})
    assert "refusing to" not in r.output and "nosuchhost" in r.output, r.output


def test_check_mode_needs_no_confirmation(prod):
    r = invoke(*CHANGES["deploy"], "--env", "production", "--check")
    assert "refusing to" not in r.output and "nosuchhost" in r.output, r.output


@pytest.mark.parametrize("spelling", ["./production", "../inventories/production", "production.py", "Production", ""])
def test_env_takes_a_name_only(prod, spelling):
    r = invoke(*CHANGES["deploy"], "--env", spelling)
    assert r.exit_code == 2, r.output
    assert "not an environment name" in r.output and "known: development, production" in r.output, r.output


def test_protection_comes_from_the_environment_not_its_file_name(prod):
    # a copy of production under another name declares itself protected; another says hx_environment
    prod(
        "inventories/prodcopy.py",
        INVENTORY.replace("_environment(\n    __file__,", "_environment(\n    __file__, protected=True,"),
    )
    prod("inventories/other.py", INVENTORY.replace('"hx_environment": "demo"', '"hx_environment": "production"'))
    for name in ("prodcopy", "other"):
        assert load_environment(prod.root / f"inventories/{name}.py").protected
        r = invoke(*CHANGES["deploy"], "--env", name)
        assert r.exit_code == 1 and f"refusing to apply {SITE} on {name}" in r.output, r.output
    assert not load_environment(prod.root / "inventories/development.py").protected


def test_the_python_api_takes_an_explicit_confirmation(prod):
    options = RunOptions(limit=("nosuchhost",))
    with pytest.raises(guard.GuardError, match="confirm='production'"):
        run_deploy(prod.root, "production", SITE, options)
    with pytest.raises(guard.GuardError):
        run_deploy(prod.root, "production", SITE, options, confirm="staging")
    with pytest.raises(HxError, match="nosuchhost"):  # past the guard: the selection matches nothing
        run_deploy(prod.root, "production", SITE, options, confirm="production")
    with pytest.raises(HxError, match="nosuchhost"):
        run_deploy(prod.root, "production", SITE, RunOptions(limit=("nosuchhost",), check=True))
    with pytest.raises(guard.GuardError, match="not an environment name"):
        run_deploy(prod.root, "./production", SITE, options, confirm="./production")


def plain_pyinfra(root, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyinfra", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_plain_pyinfra_refuses_a_protected_inventory_unless_confirmed(prod):
    r = plain_pyinfra(prod.root, "inventories/production.py", SITE, "-y", "--limit", "nosuchhost")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "production is a protected environment" in out and "hx_confirm=production" in out
    for extra in (["--dry"], ["-y", "--data", "hx_confirm=production"], ["-y", "--data=hx_confirm=production"]):
        r = plain_pyinfra(prod.root, "inventories/production.py", SITE, *extra, "--limit", "nosuchhost")
        assert "protected environment" not in r.stdout + r.stderr, (extra, r.stdout + r.stderr)
    r = plain_pyinfra(prod.root, "inventories/production.py", SITE, "-y", "--data", "hx_confirm=staging")
    assert "production is a protected environment" in r.stdout + r.stderr
    r = plain_pyinfra(prod.root, "inventories/development.py", SITE, "-y", "--limit", "nosuchhost")
    assert "protected environment" not in r.stdout + r.stderr


def test_deploy_time_guard_for_pyinfras_api():
    """Someone's own code running a component's @deploy on a protected environment's data."""
    with pytest.raises(guard.GuardError, match="hx_confirm=production"):
        guard.check_plain("production", {"hx_protected": "production"}, argv=["myscript.py"])
    guard.check_plain("production", {"hx_protected": "production", "hx_confirm": "production"}, argv=["x.py"])
    guard.check_plain("production", {}, argv=["/usr/bin/pyinfra", "inv.py", "site.py", "--dry"])
    with guard.engine_run("production"):
        guard.check_plain("production", {"hx_protected": "production"}, argv=["hxinfra"])


@pytest.mark.parametrize(
    ("layer", "write"),
    [
        ("-e", None),
        ("inventories/group_vars/all.yml", "inventories/group_vars/all.yml"),
        ("inventories/production/host_vars/web1.yml", "inventories/production/host_vars/web1.yml"),
    ],
)
@pytest.mark.parametrize("value", ["no", "off", "accept-new", False])
def test_no_layer_lowers_strict_host_keys_of_a_protected_environment(prod, layer, write, value):
    extra = None
    if write:
        text = f"ssh_strict_host_key_checking: {value if value is not False else 'false'}\n"
        prod(write, text)
        prod(write.replace("production/", "development/"), text)
    else:
        extra = {"ssh_strict_host_key_checking": value}
    with pytest.raises(InventoryError, match=r"ssh_strict_host_key_checking.*lowers strict host-key checking") as e:
        load_environment(prod.root / "inventories/production.py", extra_vars=extra)
    assert layer in str(e.value)
    env = load_environment(prod.root / "inventories/development.py", extra_vars=extra)  # elsewhere: a warning
    assert any("ssh_strict_host_key_checking" in w and "MITM" in w for w in env.warnings)


def test_no_layer_swaps_the_known_hosts_file_of_a_protected_environment(prod):
    with pytest.raises(InventoryError, match="ssh_known_hosts_file.*trusts only"):
        load_environment(prod.root / "inventories/production.py", extra_vars={"ssh_known_hosts_file": "/dev/null"})
    r = invoke("inventory", "host", "web1", "--env", "production", "-e", "ssh_strict_host_key_checking=no")
    assert r.exit_code == 1 and "lowers strict host-key checking" in r.output
    for key in ("hx_protected", "hx_confirm"):  # the guard's own keys are the engine's
        with pytest.raises(InventoryError, match=key):
            load_environment(prod.root / "inventories/development.py", extra_vars={key: "development"})


@pytest.mark.parametrize("name", ["../../x", '"><script>alert(1)</script>', "a/b", "-web", "web_01", "a..b", "x" * 64])
def test_host_names_are_dns_names(project, name):
    project("inventories/evil.py", INVENTORY.replace('"web1"', repr(name)))
    with pytest.raises(InventoryError, match="not a DNS name"):
        load_environment(project.root / "inventories/evil.py")


def test_import_ansible_refuses_a_host_that_is_no_dns_name(project, tmp_path):
    source = tmp_path / "hosts.ini"
    source.write_text("[web_servers]\n../../../tmp/evilhost ansible_host=192.0.2.1\n")
    r = invoke("import-ansible", str(source), "--env", "evil")
    assert r.exit_code == 1 and "not a DNS name" in r.output and "hosts.ini" in r.output, r.output
    assert not (project.root / "inventories/evil.py").exists()


def test_target_hosts_selects_like_limit_on_deploy(prod):
    r = invoke("deploy", SITE, "--env", "development", "--check", "-e", "target_hosts=nosuchhost")
    assert r.exit_code == 1 and "nosuchhost" in r.output and "matches no host" in r.output, r.output
    r = invoke("deploy", SITE, "--env", "development", "--check", "-e", "target_hosts=web1", "--limit", "db1")
    assert r.exit_code == 1 and "web1:&db1" in r.output, r.output
