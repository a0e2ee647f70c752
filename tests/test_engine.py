"""hxinfra's runs through pyinfra's API, on this machine itself (pyinfra's ``@local``) and on
loopback ports that answer no SSH: each host's outcome read from pyinfra's state, never from its
printed output. Each run is a process of its own (``python -m hxinfra``), as an operator runs it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

INVENTORY = """
from deploys import components as _components
from hxinfra.inventory import environment as _environment

_env = _environment(
    __file__,
    data={{"hx_environment": "demo", "hx_domain": "demo.example"}},
    hosts={{"@local": {{"groups": []}}{more}}},
    components=_components(),
)
globals().update(_env.pyinfra_groups())
"""
CLOSED = ', "closed": {"address": "127.0.0.1", "groups": [], "data": {"ssh_port": PORT}}'

GOOD = """
from pyinfra.operations import files

files.directory(name="Make the output directory", path="{out}")
files.put(name="Put the greeting", src="{src}", dest="{out}/greeting")
"""
FAILING = """
from pyinfra.operations import files, server

files.put(name="Put the greeting", src="{src}", dest="{out}/greeting")
server.shell(name="Check the greeting, then fail", commands=["echo checked; echo 'greeting is stale' >&2; exit 3"])
server.shell(name="Never reached", commands=["touch {out}/reached"])
"""
REFUSING = """
from pyinfra.api import operation
from pyinfra.operations import files

from hxinfra.ops.refusal import refuse


@operation()
def refusing():
    yield from refuse("domain controller(s) 10.0.0.1 unreachable: membership not verified")


files.directory(name="Make the output directory", path="{out}")
refusing(name="Refuse to go on")
files.put(name="Put the greeting", src="{src}", dest="{out}/greeting")
"""
RAISING = """
print("a stray print from the deploy")
raise ValueError("the deploy's data is wrong")
"""


@pytest.fixture
def world(tmp_path: Path):
    project, out = tmp_path / "project", tmp_path / "out"
    (project / "inventories/demo").mkdir(parents=True)
    (project / "inventories/demo/known_hosts").write_text("")
    (project / "deploys").mkdir()
    src = tmp_path / "greeting.txt"
    src.write_text("hello\n")
    values = {"src": src, "out": out}
    for name, body in (("good", GOOD), ("failing", FAILING), ("raising", RAISING), ("refusing", REFUSING)):
        (project / f"deploys/{name}.py").write_text(body.format(**values))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HXINFRA_PROJECT": str(project),
        "HXINFRA_STATE": str(tmp_path / "state"),
        "PYINFRA_PROGRESS": "off",
    }

    def inventory(more: str = "") -> None:
        (project / "inventories/demo.py").write_text(INVENTORY.format(more=more))

    def hx(*args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
        r = subprocess.run(
            [sys.executable, "-m", "hxinfra", "deploy", *args, "--env", "demo", "--json"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
        )
        assert "Traceback" not in r.stderr, r.stderr
        return r, json.loads(r.stdout)  # stdout is the report, whatever the deploy printed

    inventory()
    return type(
        "World", (), {"hx": staticmethod(hx), "inventory": staticmethod(inventory), "out": out, "project": project}
    )


def hosts(report: dict) -> dict[str, dict]:
    return {h["host"]: h for h in report["hosts"]}


def test_a_run_changes_then_a_second_changes_nothing_and_check_names_the_change(world):
    r, report = world.hx("good")
    assert r.returncode == 0, r.stderr
    local = hosts(report)["@local"]
    assert local["status"] == "changed" and local["changes"] == ["Make the output directory", "Put the greeting"]
    assert (world.out / "greeting").read_text() == "hello\n"
    assert [op["changed"] for op in report["operations"]] == [["@local"], ["@local"]]
    r, report = world.hx("good", "--detailed-exitcode")
    assert r.returncode == 0 and hosts(report)["@local"] | {"batch": 1} == {
        "host": "@local",
        "status": "ok",
        "changed": 0,
        "ok": 2,
        "failed": 0,
        "batch": 1,
        "changes": [],
    }
    (world.out / "greeting").write_text("edited by hand\n")
    r, report = world.hx("good", "--check", "--diff", "--detailed-exitcode")
    assert r.returncode == 2, r.stderr  # changes to make
    assert hosts(report)["@local"]["status"] == "pending" and hosts(report)["@local"]["changes"] == ["Put the greeting"]
    assert "- edited by hand" in r.stderr and "+ hello" in r.stderr  # the diff, as pyinfra shows it
    assert (world.out / "greeting").read_text() == "edited by hand\n"  # a check changes nothing


def test_a_failed_operation_fails_its_host_with_the_line_it_wrote(world):
    r, report = world.hx("failing")
    assert r.returncode == 1
    local = hosts(report)["@local"]
    assert local["status"] == "failed" and local["cause"] == "greeting is stale", local
    assert local["changes"] == ["Put the greeting"]
    assert not (world.out / "reached").exists()  # nothing after the failure ran
    assert "cause: greeting is stale" in r.stderr


def test_a_deploy_that_raises_runs_nowhere_and_names_the_error(world):
    r, report = world.hx("raising")
    assert r.returncode == 1
    local = hosts(report)["@local"]
    assert local["status"] == "failed" and local["cause"] == "ValueError: the deploy's data is wrong", local
    assert report["operations"] == []
    assert "a stray print from the deploy" in r.stderr  # a print is log text, never the report


def test_a_host_that_does_not_answer_is_unreachable_and_the_others_run(world):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    world.inventory(CLOSED.replace("PORT", str(port)))
    r, report = world.hx("good")
    assert r.returncode == 1
    closed, local = hosts(report)["closed"], hosts(report)["@local"]
    assert closed["status"] == "unreachable" and "Could not connect" in closed["cause"], closed
    assert local["status"] == "changed" and (world.out / "greeting").is_file()


# ------------------------------------------------------------------ pyinfra's helpers, replaced
def _orders(state):
    """pyinfra's own operation order and hxinfra's, asked from the same frame (one line)."""
    from pyinfra.api.util import get_operation_order_from_stack

    from hxinfra.engine import stack_order

    return get_operation_order_from_stack(state), stack_order(state)


def _nested(depth, state):
    return _nested(depth - 1, state) if depth else _orders(state)


@pytest.mark.parametrize("cli", [True, False])
@pytest.mark.parametrize("deploy_file", [__file__, "", "/no/such/deploy.py"])
def test_stack_order_is_pyinfras_own_answer(monkeypatch, cli, deploy_file):
    """The same list as pyinfra's ``get_operation_order_from_stack`` from any depth: with the deploy
    file on the stack, with none set, and with one that is not on the stack (pyinfra's loop then
    keeps only the innermost frame)."""
    import types

    import pyinfra

    monkeypatch.setattr(pyinfra, "is_cli", cli)
    state = types.SimpleNamespace(current_deploy_filename=deploy_file, current_op_file_number=7)
    for depth in (0, 1, 5):
        theirs, ours = _nested(depth, state)
        assert ours == theirs
        if deploy_file == "/no/such/deploy.py":  # no frame: only the CLI's operation number
            assert theirs == ([7] if cli else [])
        else:  # this file's frames at least, innermost last
            assert len(theirs) >= depth + 2 and theirs[-1] == _orders.__code__.co_firstlineno + 6


def test_cached_global_arguments_are_pyinfras_and_put_back():
    """During a run pyinfra's ``all_global_arguments`` answers from a cache: the same pairs, a new
    list each call (pyinfra's callers may keep it); after the run the originals are back."""
    import importlib

    from pyinfra.api import arguments, facts, operation

    from hxinfra.engine import _faster_pyinfra

    op_module = importlib.import_module("pyinfra.api.operation")
    before = (arguments.all_global_arguments, facts.all_global_arguments, op_module.get_operation_order_from_stack)
    expected = arguments.all_global_arguments()
    replaced = _faster_pyinfra()
    try:
        first, second = arguments.all_global_arguments(), facts.all_global_arguments()
        assert first == second == expected and first is not second
        assert arguments.all_global_arguments is not before[0]
    finally:
        for module, name, original in replaced:
            setattr(module, name, original)
    assert (
        arguments.all_global_arguments,
        facts.all_global_arguments,
        op_module.get_operation_order_from_stack,
    ) == before
    assert operation is not op_module  # pyinfra.api.operation is the decorator; the module is imported by name


@pytest.mark.parametrize(
    "kwargs", [{}, {"_sudo": False, "name": "x"}, {"_ignore_errors": True, "_timeout": 5}, {"_su_user": "pg"}]
)
def test_global_arguments_are_pyinfras_own_answer_through_the_held_keys(kwargs):
    """``pop_global_arguments`` during a run: pyinfra's own function, given the host's data through
    _HeldKeys, answers as pyinfra does with global arguments in every data layer (host, group,
    override, a deploy's defaults) and in the call, and pops the same keys from the call's kwargs."""
    import importlib

    from pyinfra.api import Config, Inventory, State

    from hxinfra.engine import _faster_pyinfra

    arguments = importlib.import_module("pyinfra.api.arguments")
    modules = [importlib.import_module(f"pyinfra.api.{m}") for m in ("operation", "facts", "deploy")]
    inventory = Inventory(
        (["web", ("db", {"_sudo": True, "_timeout": 30})], {}),
        databases=(["db"], {"_su_user": "postgres", "_sudo": False}),
        webs=(["web"], {"_ignore_errors": True}),
    )
    state = State(inventory, Config())  # type: ignore[no-untyped-call]
    db = inventory.get_host("db")
    db.data._retries = 2  # an override, as a deploy sets one
    db.current_deploy_data = {"_shell_executable": "bash", "_timeout": 7}  # a @deploy's data defaults

    def answers() -> list[tuple[Any, Any, Any]]:
        out = []
        for name in ("db", "web"):
            given = dict(kwargs)
            args, found = modules[0].pop_global_arguments(state, inventory.get_host(name), given)
            out.append((dict(args), sorted(found), given))
        return out

    theirs = answers()
    assert theirs[0][0]["_sudo"] is kwargs.get("_sudo", True) and theirs[0][0]["_retries"] == 2
    replaced = _faster_pyinfra()
    try:
        assert all(m.pop_global_arguments is not arguments.pop_global_arguments for m in modules)
        assert answers() == theirs
    finally:
        for module, name, original in replaced:
            setattr(module, name, original)
    assert all(m.pop_global_arguments is arguments.pop_global_arguments for m in modules)


def test_a_component_runs_on_the_hosts_of_its_groups_only(world):
    """``hxinfra deploy nginx`` in an environment without a web server: every host left out and
    named, nothing connects, nothing fails (an Ansible play whose ``hosts:`` match no host)."""
    world.inventory(CLOSED.replace("PORT", "1"))  # a host that would be unreachable, were it tried
    (world.project / "deploys/nginx").mkdir()
    (world.project / "deploys/nginx/__init__.py").write_text("")  # the name resolves; nothing imports it here
    r, report = world.hx("nginx")
    assert r.returncode == 0, r.stderr
    assert report["hosts"] == [] and report["operations"] == []
    assert "nginx applies to the hosts of web_servers: left out @local, closed (no host is in them)" in r.stderr
    assert "Connected" not in r.stderr
    # a host that --limit names runs it wherever it is (the lab's spare hosts), with a note: here it is tried
    r, report = world.hx("nginx", "--limit", "closed")
    assert r.returncode == 1 and [(h["host"], h["status"]) for h in report["hosts"]] == [("closed", "unreachable")]
    assert "--limit names hosts outside them, which run it: closed" in r.stderr


@pytest.mark.parametrize("check", [False, True])
def test_an_operations_refusal_fails_its_host_with_its_words(world, check):
    """An operation's refusal (the host cannot be brought to the state asked): that host fails with
    the operation's own line, in a run (a command that fails with it) and in a check (pyinfra's
    OperationError while changes are detected, which the engine keeps to that host), and nothing
    after it runs there."""
    r, report = world.hx("refusing", *(["--check"] if check else []))
    assert r.returncode == 1, r.stderr
    local = hosts(report)["@local"]
    assert local["status"] == "failed", local
    assert local["cause"] == "hxinfra: domain controller(s) 10.0.0.1 unreachable: membership not verified", local
    assert "the deploy raised" not in r.stderr
    assert not (world.out / "greeting").exists()
    assert (world.out).is_dir() != check  # the run made the directory before the refusal; a check made nothing
