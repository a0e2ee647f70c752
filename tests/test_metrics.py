"""hxinfra metrics: samples from the basics script, the period, the summary and the plot."""

from __future__ import annotations

import json
import subprocess
import time

import click
import pytest
from click.testing import CliRunner

from hxinfra.cli import main
from hxinfra.cli.metrics import period_seconds, plot, sample, summary
from hxinfra.health import BASICS_SCRIPT


def test_a_sample_from_the_basics_script_run_here():
    lines = subprocess.run(["sh", "-c", BASICS_SCRIPT], capture_output=True, text=True).stdout.splitlines()
    s = sample("h1", lines, 100.0)
    assert s["host"] == "h1" and s["time"] == 100.0 and 0 <= s["mem_used_pct"] <= 100 and s["disk_max_pct"] > 0


def test_period_summary_and_plot():
    assert period_seconds("24h") == 86400 and period_seconds("7d") == 604800 and period_seconds("2w") == 1209600
    with pytest.raises(click.BadParameter):
        period_seconds("7 days")
    samples = [
        {"time": 1.0, "host": "a", "load1": 1.0, "mem_used_pct": 10, "disk_max_pct": 50},
        {"time": 2.0, "host": "a", "load1": 3.0, "mem_used_pct": 30, "disk_max_pct": 50},
        {"time": 2.0, "host": "b", "load1": 0.5, "mem_used_pct": 5, "disk_max_pct": 70},
    ]
    result = summary(samples)
    assert result["a"]["samples"] == 2 and result["a"]["load1"] == {"avg": 2.0, "max": 3.0}
    assert result["b"]["disk_max_pct"] == {"avg": 70.0, "max": 70.0}
    svg = plot(samples, "load1")
    assert svg.startswith("<svg") and svg.count("<polyline") == 2


def test_report_reads_only_the_period(tmp_path):
    store = tmp_path / "m.jsonl"
    now = time.time()
    store.write_text(
        "".join(
            json.dumps({"time": t, "host": "a", "load1": 1, "mem_used_pct": 1, "disk_max_pct": 1}) + "\n"
            for t in (now - 10 * 86400, now - 3600, now - 60)
        )
    )
    r = CliRunner().invoke(
        main,
        [
            "metrics",
            "report",
            "--env",
            "x",
            "--store",
            str(store),
            "--period",
            "1d",
            "--json",
            "--html",
            str(tmp_path / "m.html"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["hosts"]["a"]["samples"] == 2
    assert "<polyline" in (tmp_path / "m.html").read_text()
