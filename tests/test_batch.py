"""Batched facts: many paths, units or packages read in one command, reused until something changes.

The operations run for real on ``@local`` (pyinfra's API, in a child process, on files under
``tmp_path``); every fact command pyinfra sends is counted there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from hxinfra.batch import InstalledPackages, PathStates, UnitStates

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent("""
    import grp, json, os, pwd, sys
    from pyinfra.api import Config, Inventory, State
    from pyinfra.api.connect import connect_all, disconnect_all
    from pyinfra.api.host import Host
    from pyinfra.api.operation import add_op
    from pyinfra.api.operations import run_ops
    from hxinfra.desired import ManagedFile
    from hxinfra.ops import configset, system

    base = sys.argv[1]
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    facts = []
    real_get_fact = Host.get_fact
    def counting(self, cls, *args, **kwargs):
        facts.append(cls.__name__)
        return real_get_fact(self, cls, *args, **kwargs)
    Host.get_fact = counting

    state = State(Inventory((["@local"], {})), Config(), check_for_changes=False)  # as `pyinfra -y` runs
    connect_all(state)
    for name in ("a", "b", "c"):
        add_op(state, system.directory, name=f"Create {name}", path=f"{base}/{name}", user=user, group=group,
               mode="0750")
    add_op(state, configset.config_set, name="Write f", items=[ManagedFile(f"{base}/a/f", "hello\\n", "0640", user,
                                                                     group)])
    run_ops(state)
    host = state.inventory.get_host("@local")
    changed = [state.ops[host][h].operation_meta.did_change() for h in state.get_op_order()]
    disconnect_all(state)
    print(json.dumps({"facts": facts, "changed": changed}))
""")


def run_ops(base: Path) -> dict[str, list]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(base)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_paths_of_a_run_are_read_once_and_again_only_after_a_change(tmp_path):
    first = run_ops(tmp_path)
    assert first["changed"] == [True, True, True, True]
    # the first directory reads all four paths; each later operation follows a change: read again
    assert first["facts"].count("PathStates") == 4
    assert oct((tmp_path / "b").stat().st_mode & 0o777) == "0o750"
    assert (tmp_path / "a" / "f").read_text() == "hello\n"

    second = run_ops(tmp_path)
    assert second["changed"] == [False, False, False, False]
    assert second["facts"] == ["PathStates"]  # nothing changed: one command for every path of the run

    (tmp_path / "c").chmod(0o700)  # drift on one path: found and mended, the others untouched
    third = run_ops(tmp_path)
    assert third["changed"] == [False, False, True, False]
    assert oct((tmp_path / "c").stat().st_mode & 0o777) == "0o750"


def test_a_file_where_a_directory_belongs_fails_the_operation(tmp_path):
    (tmp_path / "b").write_text("not a directory")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert r.returncode != 0 and "is not a directory" in r.stdout + r.stderr
    assert (tmp_path / "b").read_text() == "not a directory"


def test_path_states_reads_directories_here(tmp_path):
    (tmp_path / "d").mkdir(mode=0o711)
    (tmp_path / "d").chmod(0o711)
    cmd = PathStates().command([str(tmp_path / "d"), str(tmp_path / "none")])
    out = PathStates().process(subprocess.run(["sh", "-c", cmd], capture_output=True, text=True).stdout.splitlines())
    assert out[str(tmp_path / "d")]["kind"] == "D" and out[str(tmp_path / "d")]["mode"] == 0o711
    assert out[str(tmp_path / "none")] == {"kind": "N"}


def test_path_states_reads_every_kind_of_path_here(tmp_path):
    """Files (one with a space, one with a backslash, which sha256sum escapes, one empty), a link
    to a file, a directory, a missing path: each as stat and a digest computed here say."""
    import hashlib
    import os

    files = {"plain.conf": b"a = 1\n", "with space": b"x", "back\\slash": b"\\n", "empty": b""}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        (tmp_path / name).chmod(0o640)
    (tmp_path / "link").symlink_to(tmp_path / "plain.conf")
    (tmp_path / "dir").mkdir()
    paths = [str(tmp_path / n) for n in [*files, "link", "dir", "gone"]]
    cmd = PathStates().command(paths)
    out = PathStates().process(subprocess.run(["sh", "-c", cmd], capture_output=True, text=True).stdout.splitlines())
    assert set(out) == set(paths)
    for name, data in files.items():
        state = out[str(tmp_path / name)]
        assert state["kind"] == "F" and state["mode"] == 0o640, name
        assert state["sha256"] == hashlib.sha256(data).hexdigest(), name
        assert state["user"] == (tmp_path / name).owner()
    assert out[str(tmp_path / "link")] == {"kind": "L", "target": os.readlink(tmp_path / "link")}
    assert out[str(tmp_path / "dir")]["kind"] == "D" and out[str(tmp_path / "gone")] == {"kind": "N"}


def test_unit_states_parse_one_block_per_unit():
    output = [
        "Id=nginx.service",
        "LoadState=loaded",
        "ActiveState=active",
        "SubState=running",
        "UnitFileState=enabled",
        "",
        "Id=nope.service",
        "LoadState=not-found",
        "ActiveState=inactive",
        "SubState=dead",
        "UnitFileState=",
    ]
    units = UnitStates().process(output)
    assert units["nginx.service"] == {"load": "loaded", "active": "active", "sub": "running", "file": "enabled"}
    assert units["nope.service"]["load"] == "not-found" and units["nope.service"]["file"] == ""
    assert "-- nginx.service 'a b'" in UnitStates().command(["nginx.service", "a b"])


def test_installed_packages_lists_only_installed_ones_here():
    """dpkg-query of this machine: an installed package is listed with its version, an unknown
    name and a removed-but-configured one are not."""
    cmd = InstalledPackages().command(["dpkg", "no-such-package-hx"])
    out = InstalledPackages().process(
        subprocess.run(["sh", "-c", cmd], capture_output=True, text=True).stdout.splitlines()
    )
    assert list(out) == ["dpkg"] and out["dpkg"]
    parsed = InstalledPackages().process(["a\tinstall ok installed\t1.0", "b\tdeinstall ok config-files\t2.0"])
    assert parsed == {"a": "1.0"}
