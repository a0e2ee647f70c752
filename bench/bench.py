"""Benchmarks: wall time and peak memory of the things operators wait for.

Run from the project root (after ``make install``)::

    .venv/bin/python bench/bench.py                      # offline: every environment + synthetic fleets
    .venv/bin/python bench/bench.py --hosts 100,1000 --json
    .venv/bin/python bench/bench.py --lab                # also a zero-change deploy on a running lab

Each measurement runs ``hxinfra`` in a fresh process, as an operator or CI does, and reads that
process's peak RSS from the kernel (``wait4``). Timed assertions do not belong in tests (they
fail on a busy machine and prove nothing); numbers belong here, where they are compared by eye
or by a script across commits.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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

_env = _environment(
    __file__,
    data={{"hx_environment": "bench", "hx_domain": "bench.example", "hx_realm": "BENCH.EXAMPLE",
           "hx_subnet": "10.0.0.0/8"}},
    hosts={hosts!r},
    components=_components(),
)
globals().update(_env.pyinfra_groups())
'''


def measure(args: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run one command: wall time, and the peak RSS of the largest process of its tree.

    Linux's ``wait4`` reports the maximum over the child and the descendants it waited for,
    so ``hxinfra deploy`` is measured together with the pyinfra process it runs.
    """
    started = time.monotonic()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        raise SystemExit(f"{' '.join(args)} failed (exit {rc}):\n{stderr[-2000:]}")
    return {"seconds": round(seconds, 3), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def synthetic_project(tmp: Path, n: int) -> Path:
    """A project tree whose only inventory is ``bench`` with ``n`` hosts (shared group_vars kept)."""
    project = tmp / f"fleet-{n}"
    (project / "inventories").mkdir(parents=True)
    shutil.copytree(ROOT / "inventories" / "group_vars", project / "inventories" / "group_vars")
    hosts = {}
    for i in range(n):
        role, groups = ROLES[i % len(ROLES)]
        hosts[f"bench-{role}-{i:05d}"] = {"address": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", "groups": groups}
    (project / "inventories" / "bench.py").write_text(SYNTHETIC.format(hosts=hosts))
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="10,100,1000", help="synthetic fleet sizes for the offline plan")
    parser.add_argument("--lab", action="store_true", help="also time a zero-change deploy on the running lab")
    parser.add_argument("--json", action="store_true", help="results as JSON on stdout")
    opts = parser.parse_args()
    results: list[dict[str, object]] = []

    def record(what: str, hosts: int, numbers: dict[str, float]) -> None:
        row: dict[str, object] = {"what": what, "hosts": hosts, **numbers}
        results.append(row)
        if not opts.json:
            print(f"{what:<44} {hosts:>6} host(s) {numbers['seconds']:>8.2f} s {numbers['peak_rss_mb']:>8.1f} MB")

    with tempfile.TemporaryDirectory(prefix="hxinfra-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for env_name in REAL_ENVS:
            count = len(json.loads(subprocess.check_output([*HXINFRA, "inventory", "list", "--env", env_name,
                                                            "--json"], cwd=ROOT))["hosts"])  # fmt: skip
            record(f"plan --env {env_name}", count, measure([*HXINFRA, "plan", "--env", env_name,
                                                             "--out", str(tmp / env_name)]))  # fmt: skip
        for n in (int(x) for x in opts.hosts.split(",") if x.strip()):
            project = synthetic_project(tmp, n)
            env = {**os.environ, "HXINFRA_PROJECT": str(project)}
            record("plan, synthetic fleet", n, measure([*HXINFRA, "plan", "--env", "bench",
                                                         "--out", str(tmp / f"plan-{n}")], env))  # fmt: skip
            record("inventory list, synthetic fleet", n, measure([*HXINFRA, "inventory", "list", "--env", "bench"],
                                                                 env))  # fmt: skip
        if opts.lab:
            lab = json.loads(subprocess.check_output([*HXINFRA, "inventory", "list", "--env", "lab", "--json"], cwd=ROOT))
            n = len(lab["hosts"])
            if not n:
                raise SystemExit("--lab: no lab hosts are running (make demo first)")
            subprocess.run([*HXINFRA, "deploy", "site", "--env", "lab"], cwd=ROOT, check=True, capture_output=True)
            record("deploy site --env lab (zero changes)", n, measure([*HXINFRA, "deploy", "site", "--env", "lab"]))
            record("deploy site --env lab --check", n, measure([*HXINFRA, "deploy", "site", "--env", "lab", "--check"]))
            record("pyinfra CLI: site on lab, --dry", n, measure([sys.executable, "-m", "pyinfra", "inventories/lab.py",
                                                                  "deploys/site.py", "--dry"]))  # fmt: skip
    if opts.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
