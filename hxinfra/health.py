"""Health of running hosts: the basics every host has (uptime, load, memory, disks, failed units)
and what each component says it runs (its services, its ports, real probes: an HTTPS request
through nginx, a TLS handshake with PostgreSQL, the gateway's liveliness, a domain user's lookup).

Every check of a host runs in one shell script, one round trip: each prints its own output,
then a marker line with its exit code. The engine knows no component: each declares its checks
as a pure function of host data (``Component.health``).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from hxinfra.secrets import escape_html

MARK = "@@hxinfra-check"
BASICS = "basics"
# every real filesystem's use (and /'s), as disk=<mount> <percent> lines
DISKS = r"""
df -P -x tmpfs -x devtmpfs -x overlay -x squashfs 2>/dev/null | awk 'NR > 1 {sub("%", "", $5); print "disk=" $6 " " $5}'
df -P / | awk 'NR == 2 {sub("%", "", $5); print "disk=/ " $5}'
"""
# uptime, load, memory, disks and failed units, as key=value lines
BASICS_SCRIPT = (
    r"""
read -r up _ < /proc/uptime; echo "uptime=${up%.*}"
read -r l1 l5 l15 _ < /proc/loadavg; echo "load=$l1 $l5 $l15"
echo "cpus=$(nproc)"
awk '/^MemTotal:/ {t=$2} /^MemAvailable:/ {a=$2} END {printf "mem_total_mb=%d\nmem_used_pct=%d\n", t/1024, (t-a)*100/t}' /proc/meminfo
"""  # noqa: E501
    + DISKS
    + r"""
systemctl list-units --state=failed --no-legend --plain 2>/dev/null | awk '{print "failed_unit=" $1}'
"""
)


@dataclass(frozen=True)
class Check:
    """One check on a host: a shell command whose exit code 0 means healthy; its output is the
    evidence shown with the result. ``service`` groups checks for ``--services``."""

    name: str
    command: str
    service: str = ""


def service_active(unit: str, service: str = "") -> Check:
    return Check(f"service {unit} is active", f"systemctl is-active {shlex.quote(unit)}", service or unit)


def port_listening(port: int, service: str, address: str = "") -> Check:
    where = f"{address}:{port}" if address else str(port)
    sport = f"sport = :{int(port)}"
    return Check(f"port {where} is listening", f"ss -ltnH {shlex.quote(sport)} | grep -q . && echo listening", service)


def cert_days(path: str, service: str, warn_days: int = 30) -> Check:
    """Days left on a certificate (fails under ``warn_days``)."""
    q = shlex.quote(path)
    return Check(
        f"certificate {path} has {warn_days}+ days left",
        f"end=$(openssl x509 -enddate -noout -in {q} | cut -d= -f2) && "
        f'echo "days_left=$(( ($(date -d "$end" +%s) - $(date +%s)) / 86400 ))" && '
        f"openssl x509 -checkend {int(warn_days) * 86400} -noout -in {q} >/dev/null",
        service,
    )


@dataclass
class CheckResult:
    name: str
    service: str
    ok: bool
    output: list[str]


@dataclass
class HostHealth:
    host: str
    reachable: bool = True
    basics: dict[str, Any] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        if not self.reachable:
            return ["unreachable"]
        return [c.name for c in self.checks if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "ok": self.ok,
            "reachable": self.reachable,
            "basics": self.basics,
            "checks": [c.__dict__ for c in self.checks],
            "failures": self.failures,
        }


def script(checks: Iterable[Check]) -> str:
    """One shell script for every check of a host; each in a subshell, followed by its marker."""
    parts = [f"( {BASICS_SCRIPT} ) 2>&1; echo '{MARK} {BASICS} 0'"]
    for i, check in enumerate(checks):
        parts.append(f'( {check.command} ) 2>&1 </dev/null; echo "{MARK} {i} $?"')
    return "\n".join(parts)


def marked(lines: Iterable[str]) -> Iterator[tuple[str, str, list[str]]]:
    """``(which, exit code, output lines)`` of each part of a marked script (this module's, the
    audit's): every part's output, then its marker line."""
    chunk: list[str] = []
    for line in lines:
        if not line.startswith(MARK + " "):
            chunk.append(line.rstrip())
            continue
        parts = line.split()
        if len(parts) == 3:
            yield parts[1], parts[2], chunk
        chunk = []


def parse(host: str, checks: list[Check], lines: Iterable[str], disk_threshold: int) -> HostHealth:
    """The results of :func:`script`'s output: the basics, and each check with its evidence."""
    result = HostHealth(host)
    for which, rc, chunk in marked(lines):
        if which == BASICS:
            result.basics = basics(chunk)
        elif (index := integer(which)) is not None and index < len(checks):
            check = checks[index]
            result.checks.append(CheckResult(check.name, check.service, rc == "0", [c for c in chunk if c]))
    for mount, pct in result.basics.get("disks", {}).items():
        result.checks.insert(
            0, CheckResult(f"disk {mount} under {disk_threshold}%", "system", pct < disk_threshold, [f"used={pct}%"])
        )
    failed = result.basics.get("failed_units", [])
    result.checks.insert(0, CheckResult("no failed systemd units", "system", not failed, failed))
    unparsed = result.basics.get("unparsed", [])
    if unparsed:
        result.checks.insert(0, CheckResult("the host's basics read as numbers", "system", False, unparsed))
    return result


# what a host prints is read as ASCII numbers only: ``str.isdigit()`` takes "²", which int() refuses
INTEGER = re.compile(r"[0-9]{1,18}", re.ASCII)
DECIMAL = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,12})?", re.ASCII)


def integer(text: str) -> int | None:
    """``text`` as a whole number when it is one in ASCII digits, else None (never an exception)."""
    text = text.strip()
    return int(text) if INTEGER.fullmatch(text) else None


def decimals(text: str) -> list[float] | None:
    """Space-separated ASCII decimals (``0.10 0.20 0.30``), else None."""
    words = text.split()
    return [float(w) for w in words] if words and all(DECIMAL.fullmatch(w) for w in words) else None


def disks(lines: list[str], bad: list[str] | None = None) -> dict[str, int]:
    """Mount -> use (%) from the ``disk=`` lines of :data:`DISKS` (a line that is not one goes to ``bad``)."""
    out: dict[str, int] = {}
    for line in lines:
        key, _, value = line.partition("=")
        if key == "disk":
            mount, _, pct = value.rpartition(" ")
            number = integer(pct)
            if mount and number is not None:
                out[mount] = number
            elif bad is not None:
                bad.append(line[:120])
    return out


def basics(lines: list[str]) -> dict[str, Any]:
    """The basics of :data:`BASICS_SCRIPT`'s output. The host may print anything: a line that does not
    parse is kept in ``unparsed`` (a finding for that host), never an exception for the run."""
    bad: list[str] = []
    out: dict[str, Any] = {"disks": disks(lines, bad), "failed_units": []}
    for line in lines:
        key, _, value = line.partition("=")
        if key == "failed_unit":
            out["failed_units"].append(value)
        elif key in ("uptime", "cpus", "mem_total_mb", "mem_used_pct"):
            number = integer(value)
            if number is None:
                bad.append(line[:120])
            else:
                out[key] = number
        elif key == "load":
            load = decimals(value)
            if load is None:
                bad.append(line[:120])
            else:
                out["load"] = load
    if bad:
        out["unparsed"] = bad
    return out


def select(checks: list[Check], services: Iterable[str]) -> list[Check]:
    """Only the checks of these services (all when none is named)."""
    wanted = {s.strip() for s in services if s.strip()}
    return [c for c in checks if not wanted or c.service in wanted or any(c.service.startswith(w) for w in wanted)]


def report_table(results: list[HostHealth]) -> list[str]:
    """Plain lines: one per host, then each failed check with its evidence."""
    lines = []
    for r in results:
        if not r.reachable:
            lines.append(f"{r.host:<14} UNREACHABLE")
            continue
        b = r.basics
        load = " ".join(f"{x:.2f}" for x in b.get("load", []))
        worst = max(b.get("disks", {}).values(), default=0)
        status = "ok" if r.ok else f"FAILED {len(r.failures)}"
        lines.append(
            f"{r.host:<14} {status:<9} up {b.get('uptime', 0) // 3600}h  load {load}  "
            f"mem {b.get('mem_used_pct', 0)}%  disk max {worst}%  checks {len(r.checks)}"
        )
        for c in r.checks:
            if not c.ok:
                lines.append(f"  FAIL {c.name}: {' / '.join(c.output[-3:]) or 'no output'}")
    return lines


def report_html(results: list[HostHealth], title: str) -> str:
    """A self-contained page: a chart of memory and worst disk use per host, then every check."""
    e = escape_html  # redacted, then escaped
    width, bar = 640, 18
    rows = []
    for i, r in enumerate(results):
        y = 30 + i * (2 * bar + 14)
        mem = r.basics.get("mem_used_pct", 0)
        disk = max(r.basics.get("disks", {}).values(), default=0)
        colour = "#2e7d32" if r.ok else "#c62828"
        rows.append(
            f'<text x="0" y="{y + bar}" font-size="12" fill="{colour}">{e(r.host)}</text>'
            f'<rect x="130" y="{y}" width="{mem * 4}" height="{bar - 2}" fill="#1e88e5"/>'
            f'<text x="{136 + mem * 4}" y="{y + 13}" font-size="11">mem {mem}%</text>'
            f'<rect x="130" y="{y + bar}" width="{disk * 4}" height="{bar - 2}" fill="#fb8c00"/>'
            f'<text x="{136 + disk * 4}" y="{y + bar + 13}" font-size="11">disk {disk}%</text>'
        )
    height = 40 + len(results) * (2 * bar + 14)
    chart = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="memory and disk use per host"><text x="130" y="14" font-size="12">memory and worst disk '
        f"use, % (0-100)</text>{''.join(rows)}</svg>"
    )
    table = []
    for r in results:
        for c in r.checks or [CheckResult("reachable", "system", False, ["unreachable"])]:
            mark = "pass" if c.ok else "FAIL"
            table.append(
                f"<tr class='{mark}'><td>{e(r.host)}</td><td>{e(c.service)}</td><td>{e(c.name)}</td>"
                f"<td>{mark}</td><td><pre>{e(chr(10).join(c.output[-5:]))}</pre></td></tr>"
            )
    failed = sum(1 for r in results if not r.ok)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px;vertical-align:top}tr.FAIL td{background:#ffebee}pre{margin:0;white-space:pre-wrap}"
        f"</style></head><body><h1>{e(title)}</h1><p>{len(results)} host(s), {failed} failing</p>{chart}"
        "<table><tr><th>host</th><th>service</th><th>check</th><th>result</th><th>evidence</th></tr>"
        f"{''.join(table)}</table></body></html>"
    )


def as_json(results: list[HostHealth]) -> str:
    return json.dumps({"ok": all(r.ok for r in results), "hosts": [r.as_dict() for r in results]}, indent=2)


def declared(
    components: Iterable[Any], groups: Iterable[str], data: Mapping[str, Any], host: str, field_name: str
) -> list[Any]:
    """What every component that applies to a host declares in ``field_name`` (``health``,
    ``audit``: pure functions of host data), in the registry's order, one list."""
    from hxinfra.components import declared as collect

    return [x for _component, found in collect(field_name, data, host, list(groups), components) for x in found]


def component_checks(
    components: Iterable[Any], groups: Iterable[str], data: Mapping[str, Any], host: str
) -> list[Check]:
    """The checks of every component that applies to a host (in the registry's order)."""
    return declared(components, groups, data, host, "health")
