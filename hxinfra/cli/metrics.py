"""``hxinfra metrics collect|report``: the guide's performance reports. ``collect`` takes one sample
per host (load, memory, worst disk, uptime) into a JSON-lines store on the controller (run it from
cron or a CI schedule); ``report --period 7d`` summarises a period per host, with plots."""

from __future__ import annotations

import html
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import click

from hxinfra.adhoc import Session
from hxinfra.cli.common import ENV_OPTION, _load, echo_json
from hxinfra.cli.vault import vault_options
from hxinfra.health import BASICS_SCRIPT, basics
from hxinfra.inventory import select_hosts
from hxinfra.secrets import Keyring, redact

METRICS = ("load1", "mem_used_pct", "disk_max_pct")
PERIOD = re.compile(r"([0-9]+)([hdw])")


def store_option(f: Any) -> Any:
    return click.option(
        "--store",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="The JSON-lines store [default: metrics/<env>.jsonl].",
    )(f)


def sample(host: str, lines: list[str], now: float) -> dict[str, Any]:
    b = basics(lines)
    return {
        "time": round(now, 1),
        "host": host,
        "load1": (b.get("load") or [0.0])[0],
        "mem_used_pct": b.get("mem_used_pct", 0),
        "disk_max_pct": max(b["disks"].values(), default=0),
        "uptime_s": b.get("uptime", 0),
    }


def period_seconds(text: str) -> int:
    m = PERIOD.fullmatch(text)
    if not m:
        raise click.BadParameter(f"{text!r}: a number of hours, days or weeks, e.g. 24h, 7d, 2w")
    return int(m[1]) * {"h": 3600, "d": 86400, "w": 7 * 86400}[m[2]]


def summary(samples: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per host: the number of samples, and each metric's average and maximum."""
    out: dict[str, dict[str, Any]] = {}
    for s in samples:
        out.setdefault(s["host"], {"samples": 0, **{m: [] for m in METRICS}})
        out[s["host"]]["samples"] += 1
        for m in METRICS:
            out[s["host"]][m].append(float(s[m]))
    return {
        h: {"samples": v["samples"], **{m: {"avg": round(sum(v[m]) / len(v[m]), 2), "max": max(v[m])} for m in METRICS}}
        for h, v in sorted(out.items())
    }


def plot(samples: list[dict[str, Any]], metric: str, width: int = 640, height: int = 160) -> str:
    """An inline SVG line plot of one metric over time, one line per host."""
    if not samples:
        return ""
    t0, t1 = min(s["time"] for s in samples), max(s["time"] for s in samples)
    top = max(max(float(s[metric]) for s in samples), 1.0)
    colours = ["#1e88e5", "#e53935", "#43a047", "#fb8c00", "#8e24aa", "#00897b", "#6d4c41", "#546e7a"]
    lines = []
    for i, host in enumerate(sorted({s["host"] for s in samples})):
        pts = [
            (
                40 + (s["time"] - t0) / max(t1 - t0, 1) * (width - 50),
                height - 20 - float(s[metric]) / top * (height - 30),
            )
            for s in samples
            if s["host"] == host
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        c = colours[i % len(colours)]
        lines.append(
            f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{path}"/>'
            f'<text x="{width - 120}" y="{14 + 12 * i}" font-size="11" fill="{c}">{html.escape(host)}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{metric} over time"><text x="0" y="12" font-size="12">{metric} (max {top:g})</text>'
        f'<line x1="40" y1="{height - 20}" x2="{width - 10}" y2="{height - 20}" stroke="#999"/>'
        f"{''.join(lines)}</svg>"
    )


@click.group("metrics")
def metrics() -> None:
    """Performance samples of the hosts, and reports over a period."""


@metrics.command("collect")
@ENV_OPTION
@click.option("--limit", "-l", "pattern", default="all", metavar="PATTERN", help="Ansible host pattern.")
@store_option
@vault_options()
def collect(env_name: str, pattern: str, store: Path | None, keyring: Keyring) -> None:
    """One sample per host (load, memory, worst disk, uptime), appended to the store."""
    env = _load(env_name, keyring=keyring)
    hosts = select_hosts(env, [pattern])
    store = store or Path("metrics") / f"{env.name}.jsonl"
    store.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    with Session(env, hosts) as session:
        results = session.run_each({h: BASICS_SCRIPT for h in hosts}, become=None)
    missing = [r.host for r in results if not r.reachable]
    with store.open("a", encoding="utf-8") as f:
        for r in results:
            if r.reachable:
                f.write(json.dumps(sample(r.host, r.stdout, now)) + "\n")
                for line in basics(r.stdout).get("unparsed", []):  # a finding for that host, not a crash
                    click.echo(redact(f"hxinfra: {r.host}: not a number, left out of its sample: {line}"), err=True)
    click.echo(f"{len(results) - len(missing)} sample(s) added to {store}", err=True)
    if missing:
        click.echo(f"hxinfra: unreachable: {', '.join(missing)}", err=True)
        sys.exit(1)


@metrics.command("report")
@ENV_OPTION
@click.option("--period", default="7d", help="How far back: 24h, 7d, 2w...")
@store_option
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write a self-contained HTML report with a plot per metric.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON to stdout.")
def report(env_name: str, period: str, store: Path | None, html_file: Path | None, as_json: bool) -> None:
    """Samples of the period per host: their number, each metric's average and maximum."""
    given = store is not None
    store = store or Path("metrics") / f"{env_name}.jsonl"
    if given and not store.is_file():  # a path typed by hand that names nothing: a typo, never "no samples"
        raise click.ClickException(f"no such samples file {store}")
    since = time.time() - period_seconds(period)
    lines = store.read_text().splitlines() if store.is_file() else []
    if not lines:  # before the first collect: an empty report (and --json an empty document), not a failure
        click.echo(f"no samples yet in {store} (hxinfra metrics collect --env {env_name})", err=True)
    samples = [s for s in (json.loads(line) for line in lines if line.strip()) if s["time"] >= since]
    result = summary(samples)
    if as_json:
        echo_json(json.dumps({"period": period, "hosts": result}, indent=2))
    else:
        for host, v in result.items():
            click.echo(
                f"{host:<14} samples {v['samples']:<4} "
                + "  ".join(f"{m} avg {v[m]['avg']:g} max {v[m]['max']:g}" for m in METRICS)
            )
    if html_file:
        body = "".join(f"<h2>{m}</h2>{plot(samples, m)}" for m in METRICS)
        html_file.write_text(
            f"<!doctype html><html><head><meta charset='utf-8'><title>metrics {html.escape(env_name)}"
            f"</title></head><body><h1>{html.escape(env_name)}: {html.escape(period)}, "
            f"{len(samples)} samples</h1>{body}</body></html>",
            encoding="utf-8",
        )
        click.echo(f"report: {html_file}", err=True)
