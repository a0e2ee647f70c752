"""Compliance audits: read-only controls on running hosts, each mapped to the requirements of the
standards it serves (a CIS-style baseline, PCI DSS v4.0, SOC 2's trust criteria), with the
evidence of each result.

A control is a shell command whose exit code 0 means "compliant" and whose output is the
evidence. The engine has the controls every host shares (files, accounts, sudoers, pending
security updates, what listens as root); each component adds its own (``Component.audit``: sshd's
effective settings, the firewall's rules, pg_hba without ``trust``...), as pure functions of host
data. All controls of a host run in one script, one round trip, the health checks' way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hxinfra.health import MARK, declared, integer, marked
from hxinfra.secrets import escape_html

STANDARDS = {
    "cis_basic": "CIS-style Debian baseline (level 1)",
    "pci_dss": "PCI DSS v4.0",
    "soc2": "SOC 2 trust services criteria (2017)",
}


@dataclass(frozen=True)
class Control:
    """One read-only control: ``command`` exits 0 when compliant; its output is the evidence.
    ``requirements``: standard -> the requirement it evidences (e.g. ``{"pci_dss": "8.3.1"}``)."""

    id: str
    title: str
    command: str
    requirements: Mapping[str, str] = field(default_factory=dict)


@dataclass
class ControlResult:
    id: str
    title: str
    passed: bool
    evidence: list[str]
    requirements: Mapping[str, str]


@dataclass
class HostAudit:
    host: str
    reachable: bool = True
    results: list[ControlResult] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return ["unreachable"] if not self.reachable else [r.id for r in self.results if not r.passed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "reachable": self.reachable,
            "passed": not self.failed,
            "controls": [{**r.__dict__, "requirements": dict(r.requirements)} for r in self.results],
        }


# the controls every host shares (the components add theirs)
BASE: tuple[Control, ...] = (
    Control(
        "config-not-world-writable",
        "No world-writable files in /etc",
        "f=$(find /etc -xdev -type f -perm -0002 2>/dev/null | head -n 20); "
        '[ -z "$f" ] && echo \'none\' || { echo "$f"; false; }',
        {"cis_basic": "7.1.11", "pci_dss": "2.2.6", "soc2": "CC6.1"},
    ),
    Control(
        "no-empty-passwords",
        "No account has an empty password",
        'e=$(awk -F: \'($2 == "") {print $1}\' /etc/shadow); [ -z "$e" ] && echo \'none\' || { echo "$e"; false; }',
        {"cis_basic": "7.2.2", "pci_dss": "8.3.1", "soc2": "CC6.1"},
    ),
    Control(
        "only-root-uid-0",
        "root is the only account with UID 0",
        'u=$(awk -F: \'($3 == 0) {print $1}\' /etc/passwd); echo "$u"; [ "$u" = root ]',
        {"cis_basic": "7.2.9", "pci_dss": "8.2.2", "soc2": "CC6.1"},
    ),
    Control(
        "sudoers-valid",
        "sudoers parse (visudo -c), no rule for everyone",
        "visudo -c >/dev/null && ! grep -rhsE '^[[:space:]]*ALL[[:space:]]+ALL' /etc/sudoers /etc/sudoers.d/ "
        "&& echo 'sudoers parse; no ALL ALL rule'",
        {"cis_basic": "5.2.3", "pci_dss": "7.2.1", "soc2": "CC6.3"},
    ),
    Control(
        "security-updates-applied",
        "No pending security update (the Debian security archive's index)",
        "p=$(apt-get -s -o Debug::NoLocking=1 upgrade 2>/dev/null | awk '/^Inst / && /-security/ "
        '{o=$3; n=$4; gsub(/[][]/, "", o); gsub(/[(]/, "", n); print $2, o, "->", n}\'); '
        '[ -z "$p" ] && echo \'none pending\' || { echo "$p"; false; }',
        {"cis_basic": "1.2.2", "pci_dss": "6.3.3", "soc2": "CC7.1"},
    ),
)


def select(controls: Iterable[Control], standard: str | None) -> list[Control]:
    """The controls that evidence ``standard`` (all of them when none is named)."""
    return [c for c in controls if standard is None or standard in c.requirements]


# root may always run sshd (the controller's way in), systemd and its resolver, and a Samba AD DC's
# processes (its tasks: rpc[master], kdc(0)...); the components add theirs (Component.root_listeners)
ROOT_LISTENERS = ("sshd", "systemd", "systemd-resolve", "smbd", "samba")


def root_listeners_control(allowed: Iterable[str]) -> Control:
    """Network services running as root are only the expected ones: these process names, and a
    kernel-like task name (``name[...]``, ``name(N)``)."""
    names = "|".join(n for n in dict.fromkeys(allowed) if re.fullmatch(r"[a-z0-9_.-]+", n))  # literal in awk
    pattern = f"^({names}|[a-z_]+(\\[[^]]*\\]|\\([0-9]+\\)))$"
    return Control(
        "root-listeners-expected",
        "Network services running as root are only the expected ones",
        "l=$(ss -ltnpH 2>/dev/null | awk '$4 !~ /^(127\\.|\\[::1\\])/' | grep -o 'pid=[0-9]*' | cut -d= -f2 | "
        'sort -u | while read -r p; do echo "$(ps -o user= -p "$p") $(ps -o comm= -p "$p")"; done | sort -u); '
        'echo "${l:-no network service outside loopback}"; '
        f'bad=$(echo "$l" | awk \'$1 == "root" && $2 !~ /{pattern}/\'); '
        '[ -z "$bad" ]',
        {"cis_basic": "2.1.22", "pci_dss": "2.2.4", "soc2": "CC6.8"},
    )


def host_controls(
    components: Iterable[Any], groups: Iterable[str], data: Mapping[str, Any], host: str
) -> list[Control]:
    """The shared controls, then each applying component's (in the registry's order)."""
    components, groups = list(components), list(groups)
    # every component's, not only those of the host's groups: a component deployed on a host by hand
    # (hxinfra deploy nginx --limit HOST) runs there all the same
    own = [n for c in components for n in getattr(c, "root_listeners", ())]
    listeners = root_listeners_control([*ROOT_LISTENERS[:3], *own, *ROOT_LISTENERS[3:]])
    return [*BASE, listeners, *declared(components, groups, data, host, "audit")]


def script(controls: Iterable[Control]) -> str:
    """One read-only script for every control of a host, each followed by its marker."""
    return "\n".join(f'( {c.command} ) 2>&1 </dev/null; echo "{MARK} {i} $?"' for i, c in enumerate(controls))


def parse(host: str, controls: list[Control], lines: Iterable[str]) -> HostAudit:
    result = HostAudit(host)
    for which, rc, chunk in marked(lines):
        if (index := integer(which)) is not None and index < len(controls):
            c = controls[index]
            result.results.append(
                ControlResult(c.id, c.title, rc == "0", [x for x in chunk if x][-20:], c.requirements)
            )
    seen = {r.id for r in result.results}
    for c in controls:  # a control whose marker never came (the script was cut short) did not pass
        if c.id not in seen:
            result.results.append(ControlResult(c.id, c.title, False, ["no result"], c.requirements))
    return result


def table(audits: list[HostAudit], standard: str | None) -> list[str]:
    lines = []
    for a in audits:
        if not a.reachable:
            lines.append(f"{a.host:<14} UNREACHABLE")
            continue
        passed = sum(r.passed for r in a.results)
        lines.append(f"{a.host:<14} {'PASS' if not a.failed else 'FAIL'}  {passed}/{len(a.results)} controls")
        for r in a.results:
            req = f" [{standard} {r.requirements[standard]}]" if standard and standard in r.requirements else ""
            status = "pass" if r.passed else "FAIL"
            lines.append(
                f"  {status}  {r.id}{req}: {r.title}" + ("" if r.passed else f" -- {' / '.join(r.evidence[-3:])}")
            )
    return lines


def as_json(audits: list[HostAudit], standard: str | None) -> str:
    return json.dumps({"standard": standard, "hosts": [a.as_dict() for a in audits]}, indent=2)


def report_html(audits: list[HostAudit], title: str, standard: str | None) -> str:
    """A standalone page: a bar per host (controls passed / failed), then every control with its
    requirement and evidence."""
    e = escape_html  # redacted, then escaped
    bar, width = 20, 520
    svg = []
    for i, a in enumerate(audits):
        total = max(len(a.results), 1)
        ok = sum(r.passed for r in a.results)
        y = 10 + i * (bar + 8)
        w_ok = int(width * ok / total)
        svg.append(
            f'<text x="0" y="{y + 14}" font-size="12">{e(a.host)}</text>'
            f'<rect x="110" y="{y}" width="{w_ok}" height="{bar}" fill="#2e7d32"/>'
            f'<rect x="{110 + w_ok}" y="{y}" width="{width - w_ok}" height="{bar}" fill="#c62828"/>'
            f'<text x="{120 + width}" y="{y + 14}" font-size="12">{ok}/{len(a.results)}</text>'
        )
    height = 20 + len(audits) * (bar + 8)
    rows = []
    for a in audits:
        for r in a.results:
            req = ", ".join(f"{k} {v}" for k, v in r.requirements.items() if standard in (None, k))
            rows.append(
                f"<tr class='{'pass' if r.passed else 'fail'}'><td>{e(a.host)}</td><td>{e(r.id)}</td>"
                f"<td>{e(r.title)}</td><td>{e(req)}</td><td>{'pass' if r.passed else 'FAIL'}</td>"
                f"<td><pre>{e(chr(10).join(r.evidence))}</pre></td></tr>"
            )
        if not a.reachable:
            rows.append(f"<tr class='fail'><td>{e(a.host)}</td><td colspan='5'>unreachable</td></tr>")
    name = STANDARDS.get(standard or "", "every control")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{e(title)}</title><style>
body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:4px;
vertical-align:top}} tr.fail td{{background:#fdecea}} tr.pass td{{background:#edf7ed}} pre{{margin:0;white-space:pre-wrap}}
</style></head><body><h1>{e(title)}</h1><p>{e(name)}: controls passed (green) and failed (red) per host.</p>
<svg width="{width + 180}" height="{height}" role="img">{"".join(svg)}</svg>
<table><tr><th>host</th><th>control</th><th>what</th><th>requirement</th><th>result</th><th>evidence</th></tr>
{"".join(rows)}</table></body></html>
"""  # noqa: E501
