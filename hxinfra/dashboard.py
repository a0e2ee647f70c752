"""``hxinfra dashboard``: a static site of the fleet's state, built from the run history.

Per environment: each host's last drift check, last successful deploy and last health check; a
timeline of the runs with their outcome; drift over time as a chart; a page per host with its runs.
Plain HTML and inline SVG from Jinja2 templates (``hxinfra/report_templates/dashboard/``): it
opens from a file, needs no server and no JavaScript, and reads on a phone as on a desktop.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from hxinfra.secrets import redact

TEMPLATES = Path(__file__).parent / "report_templates" / "dashboard"
COLOURS = {
    "ok": "#2e7d32",
    "changed": "#1565c0",
    "pending": "#ef6c00",
    "drift": "#ef6c00",
    "drifted": "#ef6c00",
    "clean": "#2e7d32",
    "failed": "#c62828",
    "unreachable": "#6a1b9a",
    "error": "#c62828",
}
SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def slug(text: str) -> str:
    """A file name for an environment or a host (names are checked already; this keeps it so)."""
    return SAFE.sub("_", text) or "_"


@dataclass
class HostState:
    """What the history knows of one host of one environment."""

    name: str
    last_drift: dict[str, Any] | None = None  # {"run", "when", "status", "items"}
    last_deploy: dict[str, Any] | None = None  # the last deploy that did not fail (not a check)
    last_health: dict[str, Any] | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)  # newest first: {"run", "when", "what", "status"}

    @property
    def state(self) -> str:
        """One word for the fleet table: the worst of its last drift and health."""
        words = [s["status"] for s in (self.last_drift, self.last_health) if s]
        for bad in ("unreachable", "failed", "drifted"):
            if bad in words:
                return bad
        return "clean" if words else "unknown"


@dataclass
class EnvState:
    name: str
    hosts: dict[str, HostState] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)  # newest first

    def drift_series(self) -> list[tuple[float, int, int]]:
        """(when, drifted hosts, checked hosts) of each drift run, oldest first."""
        out = []
        for r in reversed(self.runs):
            if r["verb"] == "drift":
                bad = sum(1 for h in r["hosts"] if h["status"] != "clean")
                out.append((r["started"], bad, len(r["hosts"])))
        return out


def build_states(runs: Sequence[dict[str, Any]], items: dict[tuple[int, str], int]) -> dict[str, EnvState]:
    """The environments' states from the history's runs (newest first, as :func:`history.runs`
    gives them); ``items`` counts what each (run, host) changed or found."""
    envs: dict[str, EnvState] = {}
    for r in runs:
        env = envs.setdefault(r["env"] or "-", EnvState(r["env"] or "-"))
        env.runs.append(r)
        what = f"{r['verb']} {r['target']}".strip() + (" --check" if r["check_mode"] else "")
        for h in r["hosts"]:
            hs = env.hosts.setdefault(h["host"], HostState(h["host"]))
            entry = {
                "run": r["id"],
                "when": r["started"],
                "what": what,
                "status": h["status"],
                "found": items.get((r["id"], h["host"]), 0),
                "cause": h["cause"],
            }
            hs.runs.append(entry)
            if r["verb"] == "drift" and hs.last_drift is None:
                hs.last_drift = entry
            elif r["verb"] == "health" and hs.last_health is None:
                hs.last_health = {**entry, "status": "clean" if h["status"] == "ok" else h["status"]}
            elif (
                r["verb"] == "deploy"
                and not r["check_mode"]
                and h["status"] in ("ok", "changed")
                and hs.last_deploy is None
            ):
                hs.last_deploy = entry
    return envs


def timeline_svg(runs: Sequence[dict[str, Any]], width: int = 960, height: int = 60) -> list[dict[str, Any]]:
    """Dots on a time axis, one per run, coloured by outcome (the template draws them)."""
    if not runs:
        return []
    t0 = min(r["started"] for r in runs)
    t1 = max(r["started"] for r in runs)
    span = max(t1 - t0, 1.0)
    return [
        {
            "x": round(10 + (width - 20) * (r["started"] - t0) / span, 1),
            "y": height / 2,
            "colour": COLOURS.get(r["outcome"], "#555"),
            "title": f"#{r['id']} {r['verb']} {r['target']} {r['outcome']} {when(r['started'])}",
            "run": r["id"],
        }
        for r in runs
    ]


def drift_chart(series: Sequence[tuple[float, int, int]], width: int = 960, height: int = 160) -> dict[str, Any]:
    """Bars of drifted hosts per drift run (of the hosts checked), for the template."""
    if not series:
        return {"bars": [], "width": width, "height": height, "top": 0}
    top = max(max(c for _, _, c in series), 1)
    step = (width - 40) / max(len(series), 1)
    bars = []
    for i, (t, bad, checked) in enumerate(series):
        h_all = (height - 30) * checked / top
        h_bad = (height - 30) * bad / top
        x = 30 + i * step
        bars.append(
            {
                "x": round(x, 1),
                "w": round(max(step * 0.7, 2), 1),
                "y_all": round(height - 20 - h_all, 1),
                "h_all": round(h_all, 1),
                "y_bad": round(height - 20 - h_bad, 1),
                "h_bad": round(h_bad, 1),
                "title": f"{when(t)}: {bad} of {checked} host(s) drifted",
            }
        )
    return {"bars": bars, "width": width, "height": height, "top": top}


def when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        # every value is redacted before it is escaped (an escaped secret would no longer match)
        finalize=lambda value: redact(value) if isinstance(value, str) else value,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["slug"] = slug
    env.globals["colours"] = COLOURS
    return env


# a run's host list longer than this is folded (a <details> that says how many); an environment of
# more hosts than FOLD_CLEAN shows the hosts that need a look first and folds the clean ones
FOLD_HOSTS, FOLD_CLEAN = 8, 20


def _hosts_listed(e: EnvState) -> dict[str, list[Any]]:
    """An environment page's hosts: every one in order, or, past FOLD_CLEAN of them, those that
    are not clean (drifted, failed, unreachable, unknown) and then the clean ones folded."""
    hosts = [e.hosts[h] for h in sorted(e.hosts)]
    if len(hosts) <= FOLD_CLEAN:
        return {"hosts": hosts, "folded": []}
    return {
        "hosts": [h for h in hosts if h.state != "clean"],
        "folded": [h for h in hosts if h.state == "clean"],
    }


def render_site(envs: dict[str, EnvState], out: Path, generated: float | None = None) -> list[Path]:
    """Write the site into ``out``: index.html, one page per environment and per host. Returns
    the files written. Every page is redacted again before it is written."""
    out.mkdir(parents=True, exist_ok=True)
    jenv = _environment()
    stamp = when(generated or time.time())
    written = []

    def page(name: str, template: str, **context: Any) -> None:
        path = out / name
        path.write_text(redact(jenv.get_template(template).render(generated=stamp, **context)), encoding="utf-8")
        written.append(path)

    ordered = [envs[k] for k in sorted(envs)]
    jenv.globals["fold_hosts"] = FOLD_HOSTS
    all_runs = sorted((r for e in ordered for r in e.runs), key=lambda r: (-r["started"], -r["id"]))
    page("index.html", "index.html.j2", envs=ordered, runs=all_runs[:50], dots=timeline_svg(all_runs))
    for e in ordered:
        page(
            f"env-{slug(e.name)}.html",
            "env.html.j2",
            env=e,
            **_hosts_listed(e),
            dots=timeline_svg(e.runs),
            chart=drift_chart(e.drift_series()),
        )
        for h in e.hosts.values():
            page(f"host-{slug(e.name)}-{slug(h.name)}.html", "host.html.j2", env=e, host=h)
    return written
