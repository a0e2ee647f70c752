"""Benchmarks: wall time and peak memory of the things operators wait for.

Run from the project root (after ``make install``)::

    .venv/bin/python bench/bench.py                      # offline plan: every environment, 10..10,000 hosts
    .venv/bin/python bench/bench.py --lab 1,8,32,64      # and the cost curve on lab hosts (root; ~1 hour)

It writes ``bench/results/results.json`` (every run), ``bench/results/curve.png`` and
``bench/RESULTS.md`` (tables: median, min, max; ratios; commands per host; peak memory; the
machine). The lab curve is :mod:`curve` (hxinfra, plain pyinfra and Ansible on the same deploy).

Each measurement runs ``hxinfra`` in a fresh process, as an operator or CI does, and reads that
process's peak RSS from the kernel (``wait4``). Timed assertions do not belong in tests (they
fail on a busy machine and prove nothing); numbers belong here, where they are compared by eye
or by a script across commits.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's hxinfra and deploys, whatever is installed
HXINFRA = [sys.executable, "-m", "hxinfra"]
REAL_ENVS = ("production", "staging", "development", "testing")

# One synthetic host in every group of the HX topology, repeated: a realistic mix of components.
ROLES = [
    ("web", ["web_servers", "domain_members"]),
    ("db", ["database_servers", "domain_members"]),
    ("app", ["application_servers", "domain_members"]),
    ("api", ["api_servers", "domain_members"]),
]

SYNTHETIC = '''"""A synthetic fleet for the benchmark (written by bench/bench.py, never committed)."""
from deploys import components as _components
from hxinfra.inventory import environment as _environment

_ROLES = {roles!r}
_env = _environment(
    __file__,
    data={{"hx_environment": "bench", "hx_domain": "bench.example", "hx_realm": "BENCH.EXAMPLE",
           "hx_subnet": "10.0.0.0/8"}},
    # generated, as a large fleet's inventory is (a literal of 10,000 hosts costs Python's compiler 70 MB)
    hosts={{
        f"bench-{{_ROLES[i % len(_ROLES)][0]}}-{{i:05d}}": {{
            "address": f"10.{{i // 65536}}.{{i // 256 % 256}}.{{i % 256}}", "groups": list(_ROLES[i % len(_ROLES)][1])}}
        for i in range({n})
    }},
    components=_components(),
)
globals().update(_env.pyinfra_groups())
'''


def measure(args: list[str], env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)) -> dict[str, float]:
    """Run one command: wall time, and the peak RSS of the largest process of its tree.

    Linux's ``wait4`` reports the maximum over the child and the descendants it waited for,
    so ``hxinfra deploy`` is measured together with the pyinfra process it runs.
    """
    started = time.monotonic()
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    rc = os.waitstatus_to_exitcode(status)
    if rc not in ok:
        raise SystemExit(f"{' '.join(args)} failed (exit {rc}):\n{stderr[-2000:]}")
    return {"seconds": round(seconds, 3), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def synthetic_project(tmp: Path, n: int) -> Path:
    """A project tree whose only inventory is ``bench`` with ``n`` hosts (shared group_vars kept)."""
    project = tmp / f"fleet-{n}"
    (project / "inventories").mkdir(parents=True)
    shutil.copytree(ROOT / "inventories" / "group_vars", project / "inventories" / "group_vars")
    (project / "inventories" / "bench.py").write_text(SYNTHETIC.format(roles=ROLES, n=n))
    return project


# An ordinary Ansible inventory of the guide's groups, as a large fleet has it: two domain
# controllers and one CA, the rest web, application, API and database servers (the first database
# server the primary), every host a backup client and all but the DCs domain members.
FIXED_ROLES = [
    ("hx-dc-01", ["domain_controllers", "backup_clients"]),
    ("hx-dc-02", ["domain_controllers", "backup_clients"]),
    ("hx-ca-01", ["ca_servers", "domain_members", "backup_clients"]),
]
MEMBER = ["domain_members", "backup_clients"]
FLEET_ROLES = [
    ("api", "api_servers"),
    ("db", "database_servers"),
    ("app", "application_servers"),
    ("web", "web_servers"),
]


def ansible_inventory(path: Path, n: int) -> None:
    """``hosts.yml`` of ``n`` hosts in the guide's groups (YAML, as ansible-inventory reads it)."""
    hosts = list(FIXED_ROLES) + [
        (f"hx-{role}-{i:05d}", [group, *MEMBER])
        for i, (role, group) in ((i, FLEET_ROLES[i % len(FLEET_ROLES)]) for i in range(n - len(FIXED_ROLES)))
    ]
    groups: dict[str, list[str]] = {}
    lines = ["all:", "  vars: {hx_domain: big.example, hx_realm: BIG.EXAMPLE, hx_subnet: 10.0.0.0/8}", "  children:"]
    for i, (name, names) in enumerate(hosts):
        for g in names:
            groups.setdefault(g, []).append(
                f"        {name}: {{ansible_host: 10.{i // 65536}.{i // 256 % 256}.{i % 256}}}"
            )
    groups["primary_db"] = groups["database_servers"][:1]
    for g, entries in groups.items():
        lines += [f"    {g}:", "      hosts:", *entries]
    path.mkdir(parents=True, exist_ok=True)
    (path / "hosts.yml").write_text("\n".join(lines) + "\n")


def imported_project(tmp: Path, n: int) -> tuple[Path, dict[str, float]]:
    """A project with the project's own group_vars whose environment ``big`` is an Ansible inventory
    of ``n`` hosts brought in by ``hxinfra import-ansible`` (timed: the import is part of the move)."""
    project = tmp / f"imported-{n}"
    (project / "inventories").mkdir(parents=True)
    shutil.copytree(ROOT / "inventories" / "group_vars", project / "inventories" / "group_vars")
    ansible_inventory(tmp / f"ansible-{n}", n)
    env = {**os.environ, "HXINFRA_PROJECT": str(project)}
    return project, measure([*HXINFRA, "import-ansible", str(tmp / f"ansible-{n}"), "--env", "big"], env)


def plan_rows(sizes: list[int], repeat: int, log: Any = print) -> list[dict[str, Any]]:
    """The offline plan of every real environment and of synthetic fleets, ``repeat`` times each."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hxinfra-bench-") as tmp_name:
        tmp = Path(tmp_name)
        cases: list[tuple[str, int, dict[str, str] | None, str]] = []
        for env_name in REAL_ENVS:
            count = len(
                json.loads(
                    subprocess.check_output(
                        [*HXINFRA, "inventory", "list", "--env", env_name, "--json"],
                        cwd=ROOT,
                        stderr=subprocess.DEVNULL,
                    )
                )["hosts"]
            )
            cases.append((f"plan --env {env_name}", count, None, env_name))
        for n in sizes:
            project = synthetic_project(tmp, n)
            cases.append(("plan, synthetic fleet", n, {**os.environ, "HXINFRA_PROJECT": str(project)}, "bench"))
            if n <= 1000:  # what the caches buy: the same plan with every cache off (HXINFRA_MEMO=off)
                off = {**os.environ, "HXINFRA_PROJECT": str(project), "HXINFRA_MEMO": "off"}
                cases.append(("plan, synthetic fleet, caches off", n, off, "bench"))
        for n in [s for s in sizes if s >= 1000]:  # an Ansible inventory moved over, then planned
            project, numbers = imported_project(tmp, n)
            rows.append({"what": "import-ansible, guide's groups", "hosts": n, "rep": 0, **numbers})
            log(f"{'import-ansible':<32} {n:>6} host(s) {numbers['seconds']:>8.2f} s {numbers['peak_rss_mb']:>8.1f} MB")
            cases.append(
                ("plan, imported Ansible inventory", n, {**os.environ, "HXINFRA_PROJECT": str(project)}, "big")
            )
        for rep in range(repeat):
            for what, n, env, env_name in cases:
                numbers = measure(
                    [*HXINFRA, "plan", "--env", env_name, "--out", str(tmp / f"plan-{env_name}-{n}-{rep}")], env
                )
                rows.append({"what": what, "hosts": n, "rep": rep, **numbers})
                log(f"{what:<32} {n:>6} host(s) {numbers['seconds']:>8.2f} s {numbers['peak_rss_mb']:>8.1f} MB")
    return rows


def plan_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for what, n in dict.fromkeys((r["what"], r["hosts"]) for r in rows):
        secs = [r["seconds"] for r in rows if (r["what"], r["hosts"]) == (what, n)]
        mem = [r["peak_rss_mb"] for r in rows if (r["what"], r["hosts"]) == (what, n)]
        out.append(
            {
                "what": what,
                "hosts": n,
                "runs": len(secs),
                "median": round(statistics.median(secs), 2),
                "min": min(secs),
                "max": max(secs),
                "peak_mb": max(mem),
                "ms_per_host": round(statistics.median(secs) * 1000 / max(n, 1), 2),
            }
        )
    return out


def drift_rows(lab: str, count: int, repeat: int, log: Any = print) -> list[dict[str, Any]]:
    """``hxinfra drift`` against ``hxinfra deploy site --check --diff`` on the first ``count``
    hosts of a running lab, alternating (the order swaps every repetition): what drift costs on
    top of the check run it is made of (collecting and reporting the findings)."""
    env, hosts, _groups = lab_hosts(lab, count)
    limit = [a for h in hosts for a in ("--limit", h)]
    tools = {
        "check": [*HXINFRA, "deploy", "site", "--env", "lab", *limit, "--check", "--diff", "--json"],
        "drift": [*HXINFRA, "drift", "--env", "lab", *limit, "--json"],
    }
    measure(tools["check"], env, ok=(0, 2))  # warm: the batched reads' names are kept from here on
    rows = []
    for i in range(repeat):
        for mode in ("check", "drift") if i % 2 == 0 else ("drift", "check"):
            m = measure(tools[mode], env, ok=(0, 2))
            rows.append({"mode": mode, "hosts": len(hosts), **m})
            log(f"drift bench: {mode} on {len(hosts)} hosts: {m['seconds']} s, {m['peak_rss_mb']} MB")
    return rows


def spread(secs: list[float]) -> dict[str, Any]:
    """How many runs, their median (rounded as the tables show it), min and max."""
    return {"runs": len(secs), "median": round(statistics.median(secs), 2), "min": min(secs), "max": max(secs)}


def lab_hosts(lab: str, count: int) -> tuple[dict[str, str], list[str], dict[str, list[str]]]:
    """The environment of lab ``lab``, the first ``count`` of its hosts (an error if it has fewer)
    and each host's groups."""
    env = {**os.environ, "HXINFRA_LAB": lab, "HXINFRA_HISTORY": "off", "PYINFRA_PROGRESS": "off"}
    listed = subprocess.run(
        [*HXINFRA, "inventory", "list", "--env", "lab"], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    rows = [line.split(None, 2) for line in listed.stdout.splitlines() if line.strip()]
    groups = {row[0]: row[2].split(", ") if len(row) > 2 else [] for row in rows}
    hosts = list(groups)[:count]
    if len(hosts) < count:
        raise SystemExit(f"lab {lab} has {len(hosts)} host(s), {count} wanted (hxinfra lab up first)")
    return env, hosts, groups


SITE_RUNS = ("hxinfra noop", "pyinfra noop", "hxinfra check", "pyinfra check")
# what runs side by side: the whole site on every host, and the nginx deploy (pyinfra's CLI takes a
# @deploy function by its dotted name) on the hosts of the web servers' group
SIDE_BY_SIDE = (("site", "deploys/site.py", ""), ("nginx", "deploys.nginx.nginx", "web_servers"))


def site_rows(lab: str, count: int, repeat: int, log: Any = print) -> list[dict[str, Any]]:
    """The whole site on the first ``count`` hosts of a converged lab, and the nginx deploy on its
    web servers among them, side by side: ``hxinfra deploy`` (no-op, then ``--check --diff``)
    against the plain ``pyinfra`` command on the same deploy and inventory (``-y``, then ``--dry
    --diff``), alternating (the order rotates every repetition). Each no-op must change nothing."""
    env, hosts, groups = lab_hosts(lab, count)
    rows = []
    for name, pyinfra_target, group in SIDE_BY_SIDE:
        on = [h for h in hosts if not group or group in groups[h]]
        limit = [a for h in on for a in ("--limit", h)]
        pyinfra = [sys.executable, "-m", "pyinfra", "inventories/lab.py", pyinfra_target, *limit]
        hx = [*HXINFRA, "deploy", name, "--env", "lab", *limit, "--detailed-exitcode"]
        runs = {
            "hxinfra noop": hx,
            "hxinfra check": [*hx, "--check", "--diff"],
            "pyinfra noop": [*pyinfra, "-y"],
            "pyinfra check": [*pyinfra, "--dry", "--diff"],
        }
        measure(runs["hxinfra noop"], env)  # warm: converged, and the batched reads' names are kept from here on
        for i in range(repeat):
            order = SITE_RUNS[i % len(SITE_RUNS) :] + SITE_RUNS[: i % len(SITE_RUNS)]
            for run in order:
                m = measure(runs[run], env)  # exit 0: an hxinfra no-op with changes exits 2 and stops the bench
                tool, mode = run.split()
                rows.append({"deploy": name, "tool": tool, "mode": mode, "hosts": len(on), **m})
                log(f"side by side: {name} {run} on {len(on)} hosts: {m['seconds']} s, {m['peak_rss_mb']} MB")
    return rows


def component_rows(lab: str, count: int, log: Any = print) -> list[dict[str, Any]]:
    """Each component's own no-op deploy on those of the first ``count`` hosts of a converged lab
    that are in its groups (as the site applies it): its time and the commands it sends per host
    (``-vv`` echoes each command), so the next component's price is visible."""
    from deploys import COMPONENTS, components

    env, hosts, groups = lab_hosts(lab, count)
    contracts = {c.name: c for c in components()}
    rows = []
    for name in COMPONENTS:
        on = [h for h in hosts if contracts[name].applies_to(groups[h])]
        if not on:
            continue
        started = time.monotonic()
        r = subprocess.run(
            [*HXINFRA, "deploy", name, "--env", "lab", *[a for h in on for a in ("--limit", h)], "-vv", "--json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        seconds = round(time.monotonic() - started, 2)
        if r.returncode != 0:
            raise SystemExit(f"deploy {name} failed (exit {r.returncode}):\n{r.stderr[-2000:]}")
        report = json.loads(r.stdout)
        changed = sum(h["changed"] for h in report["hosts"])
        counts = [len(re.findall(rf"^\s*\[{re.escape(h)}\]\s+>>> ", r.stderr, re.M)) for h in on]
        per_host = round(statistics.mean(counts), 1)
        rows.append(
            {"component": name, "seconds": seconds, "hosts": len(on), "commands_per_host": per_host, "changed": changed}
        )
        log(f"component bench: {name} on {len(on)} hosts: {seconds} s, {per_host} commands per host")
    return rows


def site_results(lab: str, repeat: int, log: Any = print) -> dict[str, Any]:
    """The side-by-side bench and the component bench on 8 hosts of ``lab``, summarised."""
    rows = site_rows(lab, 8, repeat, log)
    summary = []
    for name, _target, _group in SIDE_BY_SIDE:
        for run in SITE_RUNS:
            tool, mode = run.split()
            picked = [r for r in rows if (r["deploy"], r["tool"], r["mode"]) == (name, tool, mode)]
            summary.append(
                {
                    "deploy": name,
                    "hosts": picked[0]["hosts"],
                    "tool": tool,
                    "mode": mode,
                    **spread([r["seconds"] for r in picked]),
                    "peak_mb": max(r["peak_rss_mb"] for r in picked),
                }
            )
    return {"runs": rows, "summary": summary, "components": component_rows(lab, 8, log), "hosts": 8}


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    import platform

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    mem_kb = int(
        next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    )
    release = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    versions = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--format", "json"], capture_output=True, text=True
    ).stdout
    pkgs = {p["name"].lower(): p["version"] for p in json.loads(versions or "[]")}
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "os": release.get("PRETTY_NAME", "").strip('"'),
        "python": platform.python_version(),
        "pyinfra": pkgs.get("pyinfra", "?"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="10,100,1000,10000", help="synthetic fleet sizes for the offline plan")
    parser.add_argument(
        "--lab",
        default="",
        metavar="SIZES",
        help="also the cost curve on lab hosts for these fleet sizes, e.g. 1,8,32,64 (needs root)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (the tools alternate)")
    parser.add_argument("--cold-repeat", type=int, default=1, help="cold runs per tool and size (fresh hosts each)")
    parser.add_argument(
        "--tools",
        default="hxinfra,pyinfra,ansible",
        help="the tools of the lab curve; the others keep their earlier runs (e.g. hxinfra,pyinfra "
        "to measure hxinfra against pyinfra again without Ansible's hour)",
    )
    parser.add_argument(
        "--results",
        default=str(ROOT / "bench" / "results"),
        help="where results.json and curve.png go (bench/RESULTS.md is written from them)",
    )
    parser.add_argument("--no-plan", action="store_true", help="skip the offline plan (keep its earlier results)")
    parser.add_argument(
        "--drift-lab",
        default="",
        metavar="LAB",
        help="also hxinfra drift against a --check of the site on 8 hosts of this running lab (hxinfra lab up)",
    )
    parser.add_argument(
        "--site-lab",
        default="",
        metavar="LAB",
        help="also the site against plain pyinfra, and each component's no-op, on 8 hosts of this converged lab",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: write bench/RESULTS.md and the chart again from results.json",
    )
    parser.add_argument("--json", action="store_true", help="results as JSON on stdout")
    opts = parser.parse_args()
    log = (lambda *_: None) if opts.json else print
    out = Path(opts.results)
    out.mkdir(parents=True, exist_ok=True)
    try:  # what this run does not measure keeps its earlier results
        results: dict[str, Any] = json.loads((out / "results.json").read_text())
    except (OSError, ValueError):
        results = {}
    if opts.report_only:
        if results.get("lab"):
            import curve

            lab = results["lab"]
            lab["slopes"], lab["ratios"] = curve.slopes(lab["summary"]), curve.ratios(lab["summary"])
            curve.chart(lab["summary"], out / "curve.png")
        (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        (ROOT / "bench" / "RESULTS.md").write_text(report(results))
        return
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    commit = commit or "?"
    here = machine()
    if not opts.no_plan or opts.lab:  # the machine section describes the plan's and the curve's runs
        results["machine"] = {**results.get("machine", {}), **here}
    results["date"] = time.strftime("%Y-%m-%d")
    if not opts.no_plan:
        plan = plan_rows([int(x) for x in opts.hosts.split(",") if x.strip()], opts.repeat, log)
        results["plan"] = {"runs": plan, "summary": plan_summary(plan), "commit": commit}
    if opts.drift_lab:
        rows = drift_rows(opts.drift_lab, 8, opts.repeat, log)
        summary = []
        for mode in ("check", "drift"):
            secs = [r["seconds"] for r in rows if r["mode"] == mode]
            summary.append(
                {
                    "mode": mode,
                    "runs": len(secs),
                    "median": round(statistics.median(secs), 2),
                    "min": min(secs),
                    "max": max(secs),
                    "peak_mb": max(r["peak_rss_mb"] for r in rows if r["mode"] == mode),
                }
            )
        results["drift"] = {"runs": rows, "summary": summary, "commit": commit, "hosts": 8, "machine": here}
    if opts.site_lab:
        results["site"] = {**site_results(opts.site_lab, opts.repeat, log), "commit": commit, "machine": here}
    if opts.lab:
        import curve

        tools = [t.strip() for t in opts.tools.split(",") if t.strip()]
        rows = curve.curve([int(x) for x in opts.lab.split(",")], opts.repeat, opts.cold_repeat, log, tools)
        earlier = results.get("lab", {})
        commits = {
            t: c
            for t, c in (earlier.get("commits") or dict.fromkeys(curve.TOOLS, earlier.get("commit"))).items()
            if c and t not in tools
        }
        commits.update(dict.fromkeys(tools, commit))
        rows = [r for r in earlier.get("runs", []) if r["tool"] not in tools] + rows  # the others' runs are kept
        summary = curve.summarise(rows)
        results["lab"] = {
            "runs": rows,
            "summary": summary,
            "slopes": curve.slopes(summary),
            "ratios": curve.ratios(summary),
            "ansible": curve.ANSIBLE_CORE,
            "commits": commits,
        }
        if "ansible" in tools:
            results["machine"]["ansible"] = curve.ansible_version()
        curve.chart(summary, out / "curve.png")
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (ROOT / "bench" / "RESULTS.md").write_text(report(results))
    if opts.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"results: {out / 'results.json'}, bench/RESULTS.md" + (f", {out / 'curve.png'}" if opts.lab else ""))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _commits(lab: dict[str, Any]) -> str:
    """Which commit each tool's runs were measured at (a run of some tools keeps the others' runs)."""
    commits = lab.get("commits") or {"every tool": lab.get("commit", "?")}
    by_commit: dict[str, list[str]] = {}
    for tool, commit in commits.items():
        by_commit.setdefault(commit, []).append(tool)
    return "; ".join(f"{', '.join(tools)}: commit {commit}" for commit, tools in by_commit.items())


def report(results: dict[str, Any]) -> str:
    """bench/RESULTS.md: the machine, the lab curve, the ratios and the plan, from results.json."""
    m = results["machine"]
    parts = [
        "# Benchmark results\n",
        f"Written {results['date']} by `python bench/bench.py` from `bench/results/results.json` (every run).\n",
        "## Machine\n",
        "\n".join(f"- {k}: {v}" for k, v in m.items()) + "\n",
    ]
    drift = results.get("drift")
    if drift:
        by = {r["mode"]: r for r in drift["summary"]}
        parts += [
            f"## Drift against a check run ({drift['hosts']} lab hosts, commit {drift['commit']})\n",
            "`hxinfra drift` is a check run of the site that collects what each operation found; both on the same "
            "converged lab hosts, alternating. Seconds: median (min-max). Measured on: "
            + ", ".join(f"{k} {v}" for k, v in drift.get("machine", {}).items() if k in ("cpu", "memory", "kernel"))
            + ".\n",
            _table(
                ["run", "runs", "median s", "min s", "max s", "peak MB"],
                [[s["mode"], s["runs"], s["median"], s["min"], s["max"], s["peak_mb"]] for s in drift["summary"]],
            ),
            f"drift / check: {by['drift']['median'] / by['check']['median']:.2f}\n",
        ]
    site = results.get("site")
    if site:
        by = {(r.get("deploy", "site"), r["tool"], r["mode"]): r for r in site["summary"]}
        ratios = [
            f"{name}: no-op {by[(name, 'hxinfra', 'noop')]['median'] / by[(name, 'pyinfra', 'noop')]['median']:.2f}, "
            f"check {by[(name, 'hxinfra', 'check')]['median'] / by[(name, 'pyinfra', 'check')]['median']:.2f}"
            for name in dict.fromkeys(r.get("deploy", "site") for r in site["summary"])
        ]
        parts += [
            f"## The site and nginx against plain pyinfra ({site['hosts']} lab hosts, commit {site['commit']})\n",
            "`hxinfra deploy site` against the plain `pyinfra inventories/lab.py deploys/site.py` on the same "
            "converged lab hosts, and `hxinfra deploy nginx` against `pyinfra inventories/lab.py "
            "deploys.nginx.nginx` on their web servers (no-op: `-y`, every run changes nothing; check: `--check "
            "--diff` / `--dry --diff`), the four runs of each alternating. Both send the same commands; "
            "hxinfra's connections set `TCP_NODELAY` (pyinfra's paramiko leaves Nagle's algorithm on, 40 ms per "
            "command), it computes pyinfra's operation order without `inspect.stack` and reads the global "
            "arguments through each host's data layers once a call (see `hxinfra/engine.py`). "
            "Seconds: median (min-max). Measured on: "
            + ", ".join(f"{k} {v}" for k, v in site.get("machine", {}).items() if k in ("cpu", "memory", "kernel"))
            + ".\n",
            _table(
                ["deploy", "hosts", "tool", "run", "runs", "median s", "min s", "max s", "peak MB"],
                [
                    [
                        s.get("deploy", "site"),
                        s.get("hosts", site["hosts"]),
                        s["tool"],
                        s["mode"],
                        s["runs"],
                        s["median"],
                        s["min"],
                        s["max"],
                        s["peak_mb"],
                    ]
                    for s in site["summary"]
                ],
            ),
            "hxinfra / pyinfra (medians): " + "; ".join(ratios) + "\n",
            "Each component's own no-op deploy on the same hosts (one run each, `-vv`): seconds, the hosts it "
            "applies to and the commands it sends to each.\n",
            _table(
                ["component", "seconds", "hosts", "commands/host"],
                [[c["component"], c["seconds"], c["hosts"], c["commands_per_host"]] for c in site["components"]],
            ),
        ]
    lab = results.get("lab")
    if lab:
        parts += [
            f"## Cost curve on lab hosts ({_commits(lab)})\n",
            "The CA trust deploy (`deploys/ca_trust`; Ansible: `bench/ansible/ca_trust.yml`, the same steps and files) "
            "on N lab hosts (systemd-nspawn, SSH), each tool in turn. cold: hosts booted just before; no-op: "
            "converged hosts, the run changes nothing; check: `--check --diff` / `--dry --diff`. Seconds: median "
            "(min-max) of the runs; memory: peak resident size of the tool's whole process tree; commands: per "
            "host on a no-op run.\n",
            "![time against hosts](results/curve.png)\n",
            "Reading it: the lab's hosts and the controller share the machine's cores, so a cold run is mostly "
            "the hosts' own package installation (the same `apt-get` for hxinfra and pyinfra, which send the same "
            "commands): its differences between the two are the machine's noise, and one cold run per tool and "
            "size is what `--cold-repeat` 1 gives. No-op and check runs are the controller's and SSH's work: "
            "there the ratios say what hxinfra costs on top of pyinfra.\n",
            _table(
                ["hosts", "run", "tool", "runs", "median s", "min s", "max s", "peak MB", "commands/host"],
                [
                    [
                        s["hosts"],
                        s["mode"],
                        s["tool"],
                        s["runs"],
                        s["median"],
                        s["min"],
                        s["max"],
                        s["peak_mb"],
                        s["commands_per_host"],
                    ]
                    for s in lab["summary"]
                ],
            ),
            "### Ratios (medians)\n",
            _table(
                ["hosts", "run", "hxinfra / pyinfra", "Ansible / hxinfra"],
                [[r["hosts"], r["mode"], r["hxinfra_vs_pyinfra"], r["ansible_vs_hxinfra"]] for r in lab["ratios"]],
            ),
        ]
        segments: list[dict[str, Any]] = next((segs for segs in lab["slopes"].values() if segs), [])
        if segments:
            parts += [
                "### Time per extra host (slope of the medians between fleet sizes)\n",
                _table(
                    ["tool and run", *[f"{seg['from']} to {seg['to']} hosts" for seg in segments]],
                    [
                        [k, *[f"{seg['seconds_per_host'] * 1000:.0f} ms" for seg in segs]]
                        for k, segs in lab["slopes"].items()
                        if segs
                    ],
                ),
            ]
    plan = results.get("plan", {}).get("summary", [])
    parts += [
        f"## Offline plan (commit {results.get('plan', {}).get('commit', '?')})\n",
        "`hxinfra plan --out DIR` of every environment and of synthetic fleets (one host of each role of the HX "
        "topology, repeated), in a fresh process each time and into a new directory (a first plan), "
        "with its default of one process per core (each with 250 hosts or more); "
        "memory is the peak resident size of the largest of its processes.\n",
        _table(
            ["what", "hosts", "runs", "median s", "min s", "max s", "ms per host", "peak MB"],
            [
                [p["what"], p["hosts"], p["runs"], p["median"], p["min"], p["max"], p["ms_per_host"], p["peak_mb"]]
                for p in plan
            ],
        ),
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    main()
