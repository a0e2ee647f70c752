"""The cost curve on real lab hosts: hxinfra, plain pyinfra and Ansible running the same deploy.

For each fleet size N, on N fresh lab hosts of their own lab (``bench``; the other labs are left
alone), each tool runs the CA trust deploy (``deploys/ca_trust``; Ansible: ``bench/ansible/
ca_trust.yml``, the same steps and files, forks = N, pipelining on):

- cold: on hosts booted just before, nothing of the deploy on them yet (each has the full python3
  that Ansible's modules need, installed untimed for all three: the lab's base has python3-minimal);
- no-op: on converged hosts (the run must change nothing);
- check: ``hxinfra deploy --check --diff``, ``pyinfra --dry --diff``, ``ansible-playbook --check --diff``.

Runs are repeated, and the tools alternate (the order rotates every repetition), so a slow
minute of the machine does not land on one tool. Each run records its wall time and the peak
memory of the controller: the sum of the resident sizes of the tool's whole process tree
(Ansible's forks included), sampled every 50 ms. Commands per host are counted once per tool
on a no-op run (pyinfra's and hxinfra's ``-vv`` echo of each command; Ansible's ``-vvv`` echo
of each SSH command).

ansible-core goes into a virtual environment of its own, outside the checkout (under
``HXINFRA_CACHE``, default ``~/.cache/hxinfra``), with matplotlib for the chart.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LAB = "bench"
TOOLS = ("hxinfra", "pyinfra", "ansible")
MODES = ("cold", "noop", "check")
ANSIBLE_CORE = "ansible-core>=2.19,<2.20"


def bench_venv() -> Path:
    """The benchmark's own venv (ansible-core, matplotlib), made once and kept in the cache."""
    from hxinfra.paths import cache_root

    venv = cache_root() / "bench-venv"
    stamp = venv / ".hxinfra-bench-ready"
    if not stamp.is_file() or stamp.read_text() != ANSIBLE_CORE:
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", ANSIBLE_CORE, "matplotlib"], check=True)
        stamp.write_text(ANSIBLE_CORE)
    return venv


def hx_env() -> dict[str, str]:
    return {**os.environ, "HXINFRA_LAB": LAB, "PYINFRA_PROGRESS": "off"}


def hx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hxinfra", *args], cwd=ROOT, env=hx_env(), text=True, capture_output=True, check=True
    )


def boot(n: int) -> dict[str, str]:
    """N fresh hosts: every host of the bench lab destroyed, then bench-001..N booted; name -> address."""
    hx("lab", "down")
    names = [f"bench-{i:03d}" for i in range(1, n + 1)]
    hx("lab", "up", *names)
    status = [line.split() for line in hx("lab", "status").stdout.splitlines()]
    # the full python3 that Ansible's modules need (the lab's base has python3-minimal), on every
    # host before any tool's cold run: all three start from the same hosts, untimed
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pyinfra",
            "inventories/lab.py",
            "exec",
            "-y",
            "--",
            "python3 -c 'import shutil, json' 2>/dev/null || { apt-get update -qq && "
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null; }",
        ],
        cwd=ROOT,
        env=hx_env(),
        check=True,
        capture_output=True,
    )
    return {f[0]: f[1] for f in status if len(f) >= 3 and f[0] in names and f[2] == "running"}


# ---------------------------------------------------------------------------- measuring


def _tree_rss_kb(root_pid: int) -> int:
    """The resident size of ``root_pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/statm") as f:
                pages = int(f.read().split()[1])
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE") // 1024
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def run(cmd: Sequence[str], env: dict[str, str]) -> dict[str, Any]:
    """One timed run: wall seconds, peak resident memory of the process tree, exit code, output."""
    peak = [0]
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], _tree_rss_kb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    seconds = time.monotonic() - started
    done.set()
    sampler.join()
    return {"seconds": round(seconds, 3), "peak_mb": round(peak[0] / 1024, 1), "rc": proc.returncode, "out": out}


# ---------------------------------------------------------------------------- the three tools


class Ansible:
    """The equivalent playbook: an inventory and host_vars written from the lab and the deploy's
    own pure functions, in a private temporary directory (the host keys are in there)."""

    def __init__(self, venv: Path, work: Path) -> None:
        self.venv, self.work = venv, work

    def prepare(self, ips: dict[str, str]) -> None:
        os.environ["HXINFRA_LAB"] = LAB
        from deploys.ca_trust import COMPONENT
        from deploys.ca_trust.config import (
            HEADER,
            ca_files,
            host_cert_files,
            monitor_files,
            resolve_cas,
            resolve_host_certs,
            trust_update_commands,
        )
        from hxinfra.deploytools import component_data
        from hxinfra.desired import Absent, ManagedFile
        from hxinfra.inventory import load_environment
        from hxinfra.lab.core import Lab

        def files(items: list[Any]) -> list[dict[str, str]]:
            return [
                {"path": i.path, "content": str(i.content), "mode": i.mode, "user": i.user, "group": i.group}
                for i in items
                if isinstance(i, ManagedFile)
            ]

        env = load_environment(ROOT / "inventories" / "lab.py")
        ssh = Lab(LAB).ssh_data()
        vars_dir = self.work / "host_vars"
        vars_dir.mkdir(parents=True, exist_ok=True)
        lines = ["[all]"]
        for name in sorted(ips):
            data = component_data(COMPONENT, env.host_data(name, with_defaults=True))
            cas = resolve_cas(data)
            host_vars = {
                "ca_trust_dir": data["ca_trust_dir"],
                "cert_dir": data["ca_trust_host_cert_dir"],
                "managed_header": HEADER,
                "ca_files": files([i for i in ca_files(data, cas, []) if not isinstance(i, Absent)]),
                "monitor_files": files(monitor_files(data)),
                "cert_files": files(host_cert_files(data, resolve_host_certs(data))),
                "update_trust": " && ".join(trust_update_commands(data, cas)),  # the deploy's own commands
            }
            path = vars_dir / f"{name}.json"
            path.touch(mode=0o600)
            path.write_text(json.dumps(host_vars))
            lines.append(f"{name} ansible_host={ips[name]}")
        lines += [
            "[all:vars]",
            "ansible_user=root",
            f"ansible_ssh_private_key_file={ssh['ssh_key']}",
            f"ansible_ssh_common_args='-o UserKnownHostsFile={ssh['ssh_known_hosts_file']} "
            "-o StrictHostKeyChecking=yes'",
        ]
        (self.work / "hosts.ini").write_text("\n".join(lines) + "\n")

    def cmd(self, mode: str, n: int, verbose: bool = False) -> list[str]:
        cmd = [
            str(self.venv / "bin" / "ansible-playbook"),
            "-i",
            str(self.work / "hosts.ini"),
            "--forks",
            str(n),
            str(ROOT / "bench" / "ansible" / "ca_trust.yml"),
        ]
        cmd += ["--check", "--diff"] if mode == "check" else []
        return cmd + (["-vvv"] if verbose else [])

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "bench" / "ansible" / "ansible.cfg"),
            "ANSIBLE_LOCAL_TEMP": str(self.work / "tmp"),
            "ANSIBLE_NOCOLOR": "1",
        }


def tool_cmd(tool: str, mode: str, n: int, ansible: Ansible, verbose: bool = False) -> tuple[list[str], dict[str, str]]:
    if tool == "ansible":
        return ansible.cmd(mode, n, verbose), ansible.env()
    v = ["-vv"] if verbose else []
    if tool == "hxinfra":
        extra = ["--check", "--diff"] if mode == "check" else []
        return [sys.executable, "-m", "hxinfra", "deploy", "ca_trust", "--env", "lab", *extra, *v], hx_env()
    extra = ["--dry", "--diff"] if mode == "check" else ["-y"]
    return [sys.executable, "-m", "pyinfra", "inventories/lab.py", "deploys.ca_trust.ca_trust", *extra, *v], hx_env()


def changes(tool: str, mode: str, out: str) -> int:
    """How many changes a run reports (a no-op or check run on converged hosts must report none)."""
    if tool == "pyinfra" and mode == "check":
        return 0  # its dry run prints no per-host count; hxinfra's check of the same deploy stands for it
    if tool == "ansible":
        return sum(int(m) for m in re.findall(r"changed=(\d+)", out))
    if tool == "hxinfra":
        return sum(int(m) for m in re.findall(r"(?:changed|would change) (\d+)", out))
    return len(re.findall(r"\] Success", out))


def commands_per_host(tool: str, out: str, hosts: list[str], ips: dict[str, str]) -> float:
    if tool == "ansible":  # each SSH command Ansible runs is echoed with -vvv: "<ip> SSH: EXEC ssh ..."
        counts = [len(re.findall(rf"<{re.escape(ips[h])}> SSH: EXEC", out)) for h in hosts]
    else:
        counts = [len(re.findall(rf"\[{re.escape(h)}\] >>> ", out)) for h in hosts]
    return statistics.mean(counts)


# ---------------------------------------------------------------------------- the curve


def curve(  # noqa: C901 - one benchmark run, step by step, in the order it happens
    sizes: Sequence[int], repeat: int, cold_repeat: int, log: Any = print, tools: Sequence[str] = TOOLS
) -> list[dict[str, Any]]:
    """Every run of ``tools`` (all three by default) at every size; the rows of the results."""
    unknown = set(tools) - set(TOOLS)
    if unknown or not tools:
        raise SystemExit(f"--tools: choose among {', '.join(TOOLS)} (not {', '.join(sorted(unknown)) or 'none'})")
    tools = [t for t in TOOLS if t in tools]
    venv = bench_venv()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hxinfra-bench-ansible-") as tmp:
        ansible = Ansible(venv, Path(tmp))
        for n in sizes:
            for rep in range(cold_repeat):
                order = tools[rep % len(tools) :] + tools[: rep % len(tools)]
                for tool in order:
                    ips = boot(n)
                    if len(ips) != n:
                        raise SystemExit(f"lab up: {len(ips)} of {n} hosts run")
                    ansible.prepare(ips)
                    cmd, env = tool_cmd(tool, "cold", n, ansible)
                    r = run(cmd, env)
                    if r["rc"] != 0:
                        raise SystemExit(f"{tool} cold run on {n} host(s) failed:\n{r['out'][-3000:]}")
                    rows.append({"tool": tool, "mode": "cold", "hosts": n, "rep": rep, **_numbers(r)})
                    log(f"N={n:<3} {tool:<8} cold   {r['seconds']:7.2f} s {r['peak_mb']:7.1f} MB")
            # converged by the last cold run: one more untimed run of two tools, then every no-op and
            # check run of every tool must change nothing
            for tool in [t for t in ("ansible", "hxinfra") if t in tools] or tools[:1]:
                cmd, env = tool_cmd(tool, "noop", n, ansible)
                if (r := run(cmd, env))["rc"] != 0:
                    raise SystemExit(f"{tool}: converging {n} host(s) failed:\n{r['out'][-3000:]}")
            for rep in range(repeat):
                order = tools[rep % len(tools) :] + tools[: rep % len(tools)]
                for mode in ("noop", "check"):
                    for tool in order:
                        cmd, env = tool_cmd(tool, mode, n, ansible)
                        r = run(cmd, env)
                        if r["rc"] != 0 or changes(tool, mode, r["out"]):
                            raise SystemExit(
                                f"{tool} {mode} run on {n} host(s) failed or changed something:\n{r['out'][-3000:]}"
                            )
                        rows.append({"tool": tool, "mode": mode, "hosts": n, "rep": rep, **_numbers(r)})
                        log(f"N={n:<3} {tool:<8} {mode:<6} {r['seconds']:7.2f} s {r['peak_mb']:7.1f} MB")
            for tool in tools:
                cmd, env = tool_cmd(tool, "noop", n, ansible, verbose=True)
                r = run(cmd, env)
                per_host = commands_per_host(tool, r["out"], sorted(ips), ips)
                rows.append({"tool": tool, "mode": "commands", "hosts": n, "commands_per_host": round(per_host, 1)})
                log(f"N={n:<3} {tool:<8} {per_host:.1f} commands per host (no-op)")
        hx("lab", "down")
    return rows


def _numbers(r: dict[str, Any]) -> dict[str, Any]:
    return {"seconds": r["seconds"], "peak_mb": r["peak_mb"]}


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median, min and max per tool, mode and size; commands per host beside them."""
    out = []
    sizes = sorted({r["hosts"] for r in rows})
    for n in sizes:
        for mode in MODES:
            for tool in TOOLS:
                runs = [r for r in rows if (r["tool"], r["mode"], r["hosts"]) == (tool, mode, n)]
                if not runs:
                    continue
                secs = [r["seconds"] for r in runs]
                cmds = [
                    r["commands_per_host"] for r in rows if (r["tool"], r["mode"], r["hosts"]) == (tool, "commands", n)
                ]
                out.append(
                    {
                        "hosts": n,
                        "mode": mode,
                        "tool": tool,
                        "runs": len(runs),
                        "median": round(statistics.median(secs), 2),
                        "min": min(secs),
                        "max": max(secs),
                        "peak_mb": max(r["peak_mb"] for r in runs),
                        "commands_per_host": cmds[0] if cmds else None,
                    }
                )
    return out


def slopes(summary: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Seconds per extra host between consecutive fleet sizes, per tool and run (medians): a cost
    that stays flat or falls as the fleet grows shows as equal or falling numbers."""
    result: dict[str, list[dict[str, Any]]] = {}
    for mode in MODES:
        for tool in TOOLS:
            pts = sorted((s["hosts"], s["median"]) for s in summary if (s["tool"], s["mode"]) == (tool, mode))
            result[f"{tool} {mode}"] = [
                {"from": a[0], "to": b[0], "seconds_per_host": round((b[1] - a[1]) / (b[0] - a[0]), 4)}
                for a, b in zip(pts, pts[1:], strict=False)
            ]
    return result


def ratios(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """hxinfra against plain pyinfra, and Ansible against hxinfra, per size and run (medians)."""
    med = {(s["hosts"], s["mode"], s["tool"]): s["median"] for s in summary}
    out = []
    for n, mode in dict.fromkeys((s["hosts"], s["mode"]) for s in summary):
        hx_, py, an = (med.get((n, mode, t)) for t in TOOLS)
        out.append(
            {
                "hosts": n,
                "mode": mode,
                "hxinfra_vs_pyinfra": round(hx_ / py, 2) if hx_ and py else None,
                "ansible_vs_hxinfra": round(an / hx_, 1) if an and hx_ else None,
            }
        )
    return out


def ansible_version() -> str:
    out = subprocess.run([str(bench_venv() / "bin" / "ansible-playbook"), "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0] if out.stdout else "?"


CHART = """
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
summary = json.load(open(sys.argv[1]))
fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
for ax, mode in zip(axes, ("cold", "noop", "check")):
    for tool, colour in (("hxinfra", "#1e88e5"), ("pyinfra", "#43a047"), ("ansible", "#e53935")):
        pts = sorted((s["hosts"], s["median"], s["min"], s["max"]) for s in summary
                     if s["tool"] == tool and s["mode"] == mode)
        if not pts:
            continue
        xs = [p[0] for p in pts]
        ax.plot(xs, [p[1] for p in pts], marker="o", color=colour, label=tool)
        ax.fill_between(xs, [p[2] for p in pts], [p[3] for p in pts], color=colour, alpha=0.15)
    ax.set_title({"cold": "cold run", "noop": "no-op re-run", "check": "check / dry run with diff"}[mode])
    ax.set_xlabel("hosts")
    ax.set_ylabel("seconds (median; band: min-max; log scale)")
    ax.set_yscale("log")
    ax.set_xticks(sorted({s["hosts"] for s in summary}))
    ax.grid(alpha=0.3)
    ax.legend()
fig.suptitle("CA trust deploy on lab hosts: time against fleet size")
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
"""


def chart(summary: list[dict[str, Any]], png: Path) -> None:
    venv = bench_venv()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(summary, f)
    try:
        subprocess.run([str(venv / "bin" / "python"), "-c", CHART, f.name, str(png)], check=True)
    finally:
        os.unlink(f.name)
