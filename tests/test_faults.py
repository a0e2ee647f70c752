"""What a run does when the world misbehaves, as logic: the kept versions are all-or-nothing, a
failed package refresh fails and stamps nothing, and a failed host's report has one line of cause.
The same faults on real hosts are in tests/lab/test_faults_lab.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hxinfra.engine import HOST_KEY, cause_from_output
from hxinfra.ops.configset import REASON_AWK
from hxinfra.ops.kept import ABSENT, PART, RUN_STAMP, keep_previous_commands
from hxinfra.ops.system import refresh_lists_script
from hxinfra.sshlink import DEAD_AFTER_ENV, dead_after


def sh(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, env={**os.environ, **env})


def test_the_previous_versions_are_kept_all_together(tmp_path):
    a, b, gone = tmp_path / "a.conf", tmp_path / "b.conf", tmp_path / "new.conf"
    a.write_text("a1\n")
    b.write_text("b1\n")
    kept = tmp_path / "kept"
    backups = {str(p): f"{kept}{p}" for p in (a, b, gone)}
    r = sh(keep_previous_commands(backups, "run-1"))
    assert r.returncode == 0, r.stderr
    assert Path(backups[str(a)]).read_text() == "a1\n" and Path(backups[str(b)]).read_text() == "b1\n"
    assert Path(backups[str(gone)] + ABSENT).exists() and not Path(backups[str(gone)]).exists()
    assert Path(backups[str(a)] + RUN_STAMP).read_text() == "run-1\n"
    assert not list(kept.rglob(f"*{PART}"))


def test_a_failure_half_way_leaves_the_last_kept_versions_as_they_were(tmp_path):
    """As on a full disk: the second copy cannot be written. The first path's kept version must
    still be the previous run's, not this run's (and never a truncated one), and no part is left."""
    (tmp_path / "sub").mkdir()
    a, b = tmp_path / "a.conf", tmp_path / "sub" / "b.conf"
    kept = tmp_path / "kept"
    backups = {str(a): f"{kept}{a}", str(b): f"{kept}{b}"}
    a.write_text("a1\n")
    b.write_text("b1\n")
    assert sh(keep_previous_commands(backups, "run-1")).returncode == 0
    a.write_text("a2\n")
    b.write_text("b2\n")
    sub = Path(backups[str(b)]).parent  # b's kept copy cannot be written, as on a full disk
    for f in sub.iterdir():
        f.unlink()
    sub.rmdir()
    sub.write_text("")
    r = sh(keep_previous_commands(backups, "run-2"))
    assert r.returncode != 0
    assert "hxinfra: could not keep the previous versions, nothing was changed: " in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("hxinfra: could not keep")  # its cause on the last line
    assert Path(backups[str(a)]).read_text() == "a1\n"
    assert Path(backups[str(a)] + RUN_STAMP).read_text() == "run-1\n"
    assert not list(kept.rglob(f"*{PART}"))


@pytest.fixture
def fake_apt(tmp_path):
    """An apt-get on PATH that prints what a run against a dead proxy prints, and exits ``$RC``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "apt-get"
    tool.write_text(
        "#!/bin/sh\necho 'Ign:1 http://deb.debian.org/debian bookworm InRelease'\n"
        '[ "$RC" = 0 ] && exit 0\n'
        "echo 'E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  "
        "Could not connect to 10.0.0.1:8888 (10.0.0.1). - connect (111: Connection refused)' >&2\n"
        "echo 'E: Some index files failed to download.' >&2\nexit 100\n"
    )
    tool.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_a_refresh_that_cannot_fetch_fails_with_apts_line_and_stamps_nothing(tmp_path, fake_apt):
    stamp = tmp_path / "update-success-stamp"
    r = sh(refresh_lists_script(str(stamp)), RC="100", **fake_apt)
    assert r.returncode == 100
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("hxinfra: the package lists could not be refreshed, nothing was installed")
    assert "Could not connect to 10.0.0.1:8888" in last  # apt's own words name the proxy
    assert not stamp.exists()
    ok = sh(refresh_lists_script(str(stamp)), RC="0", **fake_apt)
    assert ok.returncode == 0 and stamp.exists()
    assert "touch" not in refresh_lists_script(None)


def test_the_cause_of_a_failed_operation_is_its_last_own_line():
    out = ["unpacking...", "done"]
    err = ["\x1b[31mmv: cannot create regular file '/etc/x': No space left on device\x1b[0m", ""]
    assert cause_from_output(err, out) == "mv: cannot create regular file '/etc/x': No space left on device"
    own = [*err, "hxinfra: writing /etc/x.hxinfra-new failed: no space left on /; the partial copy was removed"]
    assert cause_from_output(["later noise"], ["hxinfra: a line of ours"]) == "hxinfra: a line of ours"
    assert cause_from_output(own, out).startswith("hxinfra: writing /etc/x.hxinfra-new failed")
    assert cause_from_output([], out) == "done"  # nothing on stderr: the last thing it printed
    assert len(cause_from_output(["x" * 500])) == 300
    assert cause_from_output(["a\tb\r"]) == "a b"  # one line, whatever the output held
    assert cause_from_output([], []) == ""


def test_only_host_key_errors_name_the_host_key():
    assert HOST_KEY.search("No host key for 10.0.0.5 found in known_hosts")
    assert HOST_KEY.search("Host key for 10.0.0.5 does not match")
    assert not HOST_KEY.search("Could not connect (timed out)")
    assert not HOST_KEY.search("Authentication error (no valid key)")


def test_a_watched_link_sends_at_once_and_gives_up_on_silence():
    """A watched connection's socket: no Nagle delay (TCP_NODELAY), a user timeout of the limit,
    and SSH keepalives at a quarter of it; set on a real TCP connection over loopback."""
    import socket

    from hxinfra.sshlink import watch

    class Transport:
        def __init__(self, sock):
            self.sock, self.keepalive = sock, None

        def set_keepalive(self, seconds):
            self.keepalive = seconds

    with socket.create_server(("127.0.0.1", 0)) as server, socket.create_connection(server.getsockname()) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0  # the kernel's default
        transport = Transport(sock)
        watch(transport, 20)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 20_000
        assert transport.keepalive == 5
    watch(Transport(None), 20)  # a proxy command's pipe: nothing to set, no error


def test_the_dead_link_limit_reads_the_environment(monkeypatch):
    monkeypatch.delenv(DEAD_AFTER_ENV, raising=False)
    assert dead_after() == 20
    monkeypatch.setenv(DEAD_AFTER_ENV, "45")
    assert dead_after() == 45
    monkeypatch.setenv(DEAD_AFTER_ENV, "1")
    assert dead_after() == 5  # keepalives need a few seconds between them
    monkeypatch.setenv(DEAD_AFTER_ENV, "soon")
    assert dead_after() == 20


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (
            'psql: error: connection to server on socket "/run/postgresql/.s.PGSQL.5432" failed\n'
            "\tIs the server running locally and accepting connections on that socket?\n",
            'psql: error: connection to server on socket "/run/postgresql/.s.PGSQL.5432" failed',
        ),
        (
            'nginx: [emerg] unknown directive "lisen" in /etc/nginx/sites-enabled/webui.conf:3\n'
            "nginx: configuration file /etc/nginx/nginx.conf test failed\n",
            'nginx: [emerg] unknown directive "lisen" in /etc/nginx/sites-enabled/webui.conf:3',
        ),
        ("starting\n  a detail\nstopped at line 3\n", "stopped at line 3"),
    ],
)
def test_a_failed_validation_is_named_by_the_line_that_says_why(output, reason):
    r = subprocess.run(["awk", REASON_AWK], input=output, capture_output=True, text=True, check=True)
    assert r.stdout.strip() == reason
