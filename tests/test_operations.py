"""config_set's change planning and diff output (pure logic, no host)."""

from __future__ import annotations

import hashlib

from hxinfra.operations import Absent, ManagedFile, ManagedLink, PathStates, _plan, unified_diff


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def test_plan_detects_content_meta_link_and_absent_changes():
    f_same = ManagedFile("/etc/a", "x\n")
    f_content = ManagedFile("/etc/b", "new\n")
    f_meta = ManagedFile("/etc/c", "c\n", mode="0600")
    f_missing = ManagedFile("/etc/d", "d\n")
    link_ok = ManagedLink("/etc/l1", "/etc/a")
    link_wrong = ManagedLink("/etc/l2", "/etc/a")
    gone = Absent("/etc/gone")
    present = Absent("/etc/present")
    states = {
        "/etc/a": {"kind": "F", "mode": 0o644, "user": "root", "group": "root", "sha256": sha("x\n")},
        "/etc/b": {"kind": "F", "mode": 0o644, "user": "root", "group": "root", "sha256": sha("old\n")},
        "/etc/c": {"kind": "F", "mode": 0o644, "user": "root", "group": "root", "sha256": sha("c\n")},
        "/etc/d": {"kind": "N"},
        "/etc/l1": {"kind": "L", "target": "/etc/a"},
        "/etc/l2": {"kind": "L", "target": "/etc/other"},
        "/etc/gone": {"kind": "N"},
        "/etc/present": {"kind": "L", "target": "/x"},
    }
    items = [f_same, f_content, f_meta, f_missing, link_ok, link_wrong, gone, present]
    changes = {i.path: c for i, c in _plan(items, states)}
    assert changes == {"/etc/b": "content", "/etc/c": "meta", "/etc/d": "content", "/etc/l2": "link",
                       "/etc/present": "absent"}


def test_path_states_fact_parses_its_own_output():
    fact = PathStates()
    cmd = fact.command(["/etc/a b", "/x"])
    assert "'/etc/a b'" in cmd
    out = fact.process(["F\t/etc/a b\t640 root www-data\t" + "ab" * 32, "L\t/l\t/t", "N\t/x", "O\t/d"])
    assert out["/etc/a b"] == {"kind": "F", "mode": 0o640, "user": "root", "group": "www-data", "sha256": "ab" * 32}
    assert out["/l"] == {"kind": "L", "target": "/t"} and out["/x"]["kind"] == "N" and out["/d"]["kind"] == "O"


def test_unified_diff_has_file_headers():
    lines = unified_diff("/etc/x.conf", "a\nb\n", "a\nc\n")
    assert lines[0] == "--- a/etc/x.conf\n" and lines[1] == "+++ b/etc/x.conf\n"
    assert "-b\n" in lines and "+c\n" in lines
    created = unified_diff("/etc/new", None, "x\n")
    assert created[0] == "--- /dev/null\n" and created[1] == "+++ b/etc/new\n"
