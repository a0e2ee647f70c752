"""config_set's change planning and diff output (pure logic, no host)."""

from __future__ import annotations

import hashlib
import shlex
import subprocess
from pathlib import Path

from hxinfra.batch import PathStates
from hxinfra.desired import Absent, ManagedFile, ManagedLink
from hxinfra.ops.configset import _plan, unified_diff
from hxinfra.ops.kept import ABSENT, RUN_STAMP, undo_script


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
    assert changes == {
        "/etc/b": "content",
        "/etc/c": "meta",
        "/etc/d": "content",
        "/etc/l2": "link",
        "/etc/present": "absent",
    }


def test_path_states_fact_parses_its_own_output():
    fact = PathStates()
    cmd = fact.command(["/etc/a b", "/x"])
    assert "'/etc/a b'" in cmd
    out = fact.process(["L\t/l\t/t", "N\t/x", "O\t/d", "F\t/etc/a b\t640 root www-data", "ab" * 32 + "  /etc/a b"])
    assert out["/etc/a b"] == {"kind": "F", "mode": 0o640, "user": "root", "group": "www-data", "sha256": "ab" * 32}
    assert out["/l"] == {"kind": "L", "target": "/t"} and out["/x"]["kind"] == "N" and out["/d"]["kind"] == "O"


def test_unified_diff_has_file_headers():
    lines = unified_diff("/etc/x.conf", "a\nb\n", "a\nc\n")
    assert lines[0] == "--- a/etc/x.conf\n" and lines[1] == "+++ b/etc/x.conf\n"
    assert "-b\n" in lines and "+c\n" in lines
    created = unified_diff("/etc/new", None, "x\n")
    assert created[0] == "--- /dev/null\n" and created[1] == "+++ b/etc/new\n"


def test_private_file_upload_never_passes_through_a_readable_file():
    from pyinfra.api import FileUploadCommand, StringCommand

    from hxinfra.ops.configset import upload_commands

    cmds = upload_commands(ManagedFile("/etc/hx/token", "s3cret\n", mode="0640"), "/tmp/pyinfra-abc")
    kinds = [type(c).__name__ for c in cmds]
    assert kinds == ["StringCommand", "StringCommand", "StagedUpload", "StringCommand", "StringCommand"]
    precreate, stage, upload, cleanup, install = cmds
    # the sudo temp file is created 0600 by the login user (no sudo), refusing to reuse an existing one
    assert precreate.connector_arguments == {"_sudo": False}
    assert "umask 077" in str(precreate) and "set -C" in str(precreate) and "/tmp/pyinfra-abc" in str(precreate)
    assert "umask 077" in str(stage) and "/etc/hx/token.hxinfra-new" in str(stage)
    assert isinstance(upload, FileUploadCommand) and upload.remote_temp_filename == "/tmp/pyinfra-abc"
    assert upload.dest == "/etc/hx/token.hxinfra-new"
    assert isinstance(cleanup, StringCommand) and cleanup.connector_arguments == {"_sudo": False}
    assert "chmod 0640" in str(install) and "mv -f" in str(install)
    assert [type(c).__name__ for c in upload_commands(ManagedFile("/etc/motd", "hi\n"))] == [
        "StringCommand",
        "StagedUpload",
        "StringCommand",
    ]
    assert ManagedFile("/x", "", mode="0600").private and not ManagedFile("/x", "").private
    assert ManagedFile("/x", "", sensitive=True).private


def test_private_diff_masks_old_values_that_disappear():
    from hxinfra.ops.configset import mask_removed_values

    old = "# header\ntoken = old-secret-123\ncache = False\nurl = https://dc.example\n"
    new = "# header\ntoken = new-secret-456\ncache = True\nurl = https://dc.example\n"
    lines = mask_removed_values(unified_diff("/etc/x", old, new))
    removed = [line for line in lines if line.startswith("-") and not line.startswith("---")]
    assert removed == ["-token = ********\n", "-cache = ********\n"]  # keys stay, every old value is masked
    assert not any("old-secret" in line for line in lines)


def test_probe_command_waits_for_200_and_fails_naming_why(http_health):
    """The readiness probe a host runs (its own python3), run here against a real local server."""
    import subprocess

    from hxinfra.ops.probe import probe_command

    base = f"http://127.0.0.1:{http_health}"
    ok = subprocess.run(["sh", "-c", probe_command(f"{base}/ok", 5)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(["sh", "-c", probe_command(f"{base}/down", 2)], capture_output=True, text=True)
    assert bad.returncode == 1 and f"{base}/down: not ready after 2s: HTTP Error 503" in bad.stderr
    hostile = probe_command("http://h/'; touch /tmp/x; '", 1, unit="a b")
    assert "'\"'\"'" in hostile and "-u 'a b'" in hostile  # every value quoted


def _kept(backup: Path, path: str, content: str | None, run: str) -> None:
    """What config_set leaves for a changed path: the previous version (or none) and the run's stamp."""
    kept = backup / path.lstrip("/")
    kept.parent.mkdir(parents=True, exist_ok=True)
    if content is None:
        Path(f"{kept}{ABSENT}").write_text("")
    else:
        kept.write_text(content)
    Path(f"{kept}{RUN_STAMP}").write_text(run + "\n")


def test_undo_puts_back_only_the_newest_change_checks_it_and_goes_forward_again(tmp_path):
    live, backup = tmp_path / "etc", tmp_path / "kept"
    live.mkdir()
    a, b, c = (str(live / n) for n in ("a.conf", "b.conf", "c.conf"))
    Path(a).write_text("a v2\n")  # changed by an older run: its kept version is two deploys old
    Path(b).write_text("b v3\n")  # changed by the newest run
    Path(c).write_text("c new\n")  # created by the newest run
    _kept(backup, a, "a v1\n", "20261130T010000Z-1")
    _kept(backup, b, "b v2\n", "20261201T010000Z-9")
    _kept(backup, c, None, "20261201T010000Z-9")
    script = undo_script([a, b, c], "true", "echo applied", "demo", backup_dir=str(backup))
    r = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "applied" in r.stdout and f"restored {b}" in r.stdout and f"restored {c}" in r.stdout
    assert Path(a).read_text() == "a v2\n" and Path(b).read_text() == "b v2\n" and not Path(c).exists()
    r = subprocess.run(["sh", "-c", script], capture_output=True, text=True)  # again: forward
    assert r.returncode == 0 and Path(b).read_text() == "b v3\n" and Path(c).read_text() == "c new\n"


def test_undo_that_fails_its_check_changes_nothing_and_says_why(tmp_path):
    live, backup = tmp_path / "etc", tmp_path / "kept"
    live.mkdir()
    a = str(live / "a.conf")
    Path(a).write_text("good\n")
    _kept(backup, a, "broken\n", "20261201T010000Z-9")
    check = f"grep -q good {shlex.quote(a)} || {{ echo 'a.conf: broken'; false; }}"
    r = subprocess.run(
        ["sh", "-c", undo_script([a], check, "echo applied", "demo", str(backup))], capture_output=True, text=True
    )
    assert r.returncode == 1 and "a.conf: broken" in r.stderr and "the current one stays" in r.stderr
    assert "applied" not in r.stdout and Path(a).read_text() == "good\n"
    nothing = undo_script([str(live / "other.conf")], "true", "true", "demo", str(backup))
    r = subprocess.run(["sh", "-c", nothing], capture_output=True, text=True)
    assert r.returncode == 1 and "no previous version of demo's config" in r.stderr
