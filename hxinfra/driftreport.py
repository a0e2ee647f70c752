"""A drift run's findings per host, as a table, JSON and a self-contained HTML page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hxinfra.drift import Finding, Findings
from hxinfra.history import HostResult
from hxinfra.secrets import escape_html

STATUS = {"pending": "drifted", "ok": "clean", "changed": "drifted", "failed": "failed", "unreachable": "unreachable"}


@dataclass
class DriftHost:
    """One host's drift: what differs (findings of the engine's operations) and which other
    operations would run."""

    host: str
    status: str  # clean | drifted | unreachable | failed
    findings: list[Finding] = field(default_factory=list)
    operations: list[str] = field(default_factory=list)
    cause: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "status": self.status,
            "findings": [f.as_dict() for f in self.findings],
            "operations": self.operations,
            **({"cause": self.cause} if self.cause else {}),
        }

    def as_history(self) -> HostResult:
        items = [(f.kind, f.name, f.detail) for f in self.findings]
        items += [("operation", name, "would run") for name in self.operations]
        return HostResult(self.host, self.status, changed=len(self.operations), cause=self.cause, items=items)


def drift_hosts(report: Any, findings: Findings) -> list[DriftHost]:
    """Each host of a check run's report with what its operations found."""
    out = []
    for name, h in report.hosts.items():
        found = findings.of(name) if h.status not in ("failed", "unreachable") else []
        status = STATUS.get(h.status, h.status)
        if status == "clean" and found:  # noted, though no operation counted it: still a difference
            status = "drifted"
        out.append(DriftHost(name, status, found, list(h.changes), h.cause))
    return out


def report_table(hosts: list[DriftHost]) -> list[str]:
    lines = []
    width = max([len(h.host) for h in hosts] + [4])
    for h in hosts:
        extra = (
            f"  {len(h.findings)} finding(s), {len(h.operations)} operation(s) would run"
            if h.findings or h.operations
            else ""
        )
        lines.append(f"{h.host:<{width}}  {h.status}{extra}")
        if h.cause:
            lines.append(f"    cause: {h.cause}")
        for f in h.findings:
            lines.append(f"    ~ {f.kind} {f.name}: {f.detail}")
            lines.extend(f"        {d}" for d in f.diff)
        for op in h.operations:
            lines.append(f"    > {op}")
    counts: dict[str, int] = {}
    for h in hosts:
        counts[h.status] = counts.get(h.status, 0) + 1
    lines.append(f"{len(hosts)} host(s): " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return lines


COLOURS = {"clean": "#2e7d32", "drifted": "#ef6c00", "failed": "#c62828", "unreachable": "#6a1b9a"}


def report_html(hosts: list[DriftHost], title: str) -> str:
    """A standalone page: a summary bar per status, then each host's findings with their diffs."""
    e = escape_html  # redacted, then escaped
    sections = []
    for h in hosts:
        items = []
        for f in h.findings:
            diff = "".join(
                f"<span class='{'add' if d.startswith('+') else 'del' if d.startswith('-') else 'ctx'}'>{e(d)}</span>\n"
                for d in f.diff
            )
            items.append(
                f"<li><b>{e(f.kind)}</b> <code>{e(f.name)}</code>: {e(f.detail)}"
                + (f"<pre>{diff}</pre>" if diff else "")
                + "</li>"
            )
        items += [f"<li><b>operation</b> {e(op)}</li>" for op in h.operations]
        cause = f"<p class='cause'>{e(h.cause)}</p>" if h.cause else ""
        sections.append(
            f"<section id='host-{e(h.host)}' data-host='{e(h.host)}' data-status='{e(h.status)}'>"
            f"<h2>{e(h.host)} <span class='badge' style='background:{COLOURS.get(h.status, '#555')}'>"
            f"{e(h.status)}</span></h2>{cause}<ul>{''.join(items)}</ul></section>"
        )
    counts = {s: sum(1 for h in hosts if h.status == s) for s in COLOURS}
    total = max(len(hosts), 1)
    x, bars = 0.0, []
    for s, n in counts.items():
        w = 600 * n / total
        if n:
            bars.append(
                f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="24" fill="{COLOURS[s]}"><title>{n} {s}</title></rect>'
            )
        x += w
    legend = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{e(title)}</title><style>
body{{font-family:system-ui,sans-serif;margin:1.5em;max-width:1100px}} pre{{background:#f6f8fa;padding:.5em;overflow-x:auto}}
.add{{color:#1a7f37}} .del{{color:#cf222e}} .ctx{{color:#57606a}} .badge{{color:#fff;border-radius:4px;padding:0 .4em;font-size:.8em}}
.cause{{color:#c62828}} svg{{max-width:100%;height:auto}}
</style></head><body><h1>{e(title)}</h1><p>{e(legend)}</p>
<svg viewBox="0 0 600 24" width="600" height="24" role="img" aria-label="{e(legend)}">{"".join(bars)}</svg>
{"".join(sections)}</body></html>
"""  # noqa: E501
