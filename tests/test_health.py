"""hxinfra health's pure parts: one script per host, its output parsed into checks, the reports."""

from __future__ import annotations

import subprocess

from hxinfra.health import Check, parse, report_html, report_table, script, select


def test_script_runs_every_check_and_parse_reads_each_result():
    checks = [
        Check("passes", "echo fine", "a"),
        Check("fails", "echo broken; exit 3", "b"),
        Check("exits early", "exit 0", "a"),
    ]
    out = subprocess.run(["sh", "-c", script(checks)], capture_output=True, text=True).stdout.splitlines()
    result = parse("h1", checks, out, disk_threshold=101)
    by_name = {c.name: c for c in result.checks}
    assert by_name["passes"].ok and by_name["passes"].output == ["fine"]
    assert not by_name["fails"].ok and by_name["fails"].output == ["broken"]
    assert by_name["exits early"].ok
    assert result.basics["mem_total_mb"] > 0 and "/" in result.basics["disks"]
    assert result.failures == ["fails"]


def test_disk_threshold_and_failed_units_become_checks():
    lines = [
        "uptime=3600",
        "load=0.5 0.4 0.3",
        "mem_total_mb=1000",
        "mem_used_pct=40",
        "disk=/ 95",
        "disk=/srv 10",
        "failed_unit=broken.service",
        "@@hxinfra-check basics 0",
    ]
    result = parse("h1", [], lines, disk_threshold=90)
    assert set(result.failures) == {"no failed systemd units", "disk / under 90%"}
    assert "disk /srv under 90%" not in result.failures
    table = report_table([result])
    assert table[0].startswith("h1") and "FAILED 2" in table[0] and "disk max 95%" in table[0]
    assert "  FAIL no failed systemd units: broken.service" in table
    page = report_html([result], "t")
    assert "<svg" in page and "disk 95%" in page and "broken.service" in page


def test_select_keeps_the_named_services():
    checks = [Check("x", "true", "nginx"), Check("y", "true", "postgresql"), Check("z", "true", "hx-webui")]
    assert [c.name for c in select(checks, ["nginx", "hx-"])] == ["x", "z"]
    assert len(select(checks, [""])) == 3
