"""hxinfra logs analyze: the host script's output parsed, and the thresholds."""

from __future__ import annotations

import subprocess

from hxinfra.cli.logs import analysis_script, over, parse


def test_parse_and_thresholds():
    found = parse(
        [
            "errors=73",
            "error_line=2026-12-01T00:00:00 h sshd[1]: boom",
            "auth_failures=3",
            "disk=/ 91",
            "disk=/srv 12",
            "noise",
        ]
    )
    assert found == {
        "errors": 73,
        "auth_failures": 3,
        "latest_errors": ["2026-12-01T00:00:00 h sshd[1]: boom"],
        "disks": {"/": 91, "/srv": 12},
    }
    assert over(found, 50, 20, 90) == ["73 errors (> 50)", "disk / at 91% (>= 90%)"]
    assert over(found, 100, 2, 95) == ["3 SSH authentication failures (> 2)"]


def test_the_script_runs_in_a_plain_shell():
    out = subprocess.run(["sh", "-c", analysis_script(1)], capture_output=True, text=True).stdout.splitlines()
    found = parse(out)
    assert "/" in found["disks"] and isinstance(found["errors"], int)
