"""Lab fixtures: real Debian hosts shared by the whole session (booted once, torn down at the end)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB_NAME = "pytest"
LAB_DOMAIN = "lab.hxinfra.test"
HOSTS = (
    "hx-web-01",
    "hx-web-02",
    "hx-web-03",
    "hx-web-04",
    "hx-db-01",
    "hx-db-02",
    "hx-app-01",
    "hx-app-02",
    "hx-api-01",
    "hx-dc-01",
)
# the application tier every web front end proxies to, deployed once per session
STACK = ("hx-db-01", "hx-api-01", "hx-app-01", "hx-app-02")
# hosts with a disk of their own (MiB) that the fault tests fill: a front end and a database server
SMALL_DISKS = {"hx-web-02": 3072, "hx-db-02": 3072}
# set to 1 while iterating: the lab outlives the session and the next one reuses its running hosts
KEEP = os.environ.get("HXINFRA_TEST_KEEP_LAB") == "1"


class LabSession:
    def __init__(self) -> None:
        from hxinfra.lab import Lab

        self.lab = Lab(LAB_NAME)
        self.root = ROOT
        self.hxinfra_argv = [sys.executable, "-m", "hxinfra"]
        self.env = {**os.environ, "HXINFRA_LAB": LAB_NAME, "HXINFRA_PROJECT": str(ROOT)}
        self.env.pop("HXINFRA_EXTRA_VARS", None)
        self._hosts: dict[str, object] = {}

    def ip(self, name: str) -> str:
        return self.lab.get(name).ip

    def host(self, name: str):
        """A pytest-testinfra host over the lab's SSH (its key, strict checking of the recorded host keys),
        for checks that read like the state they check: ``host.file``, ``host.service``, ``host.socket``."""
        import testinfra

        if name not in self._hosts:
            extra = f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={self.lab.known_hosts} -o LogLevel=ERROR"
            self._hosts[name] = testinfra.get_host(
                f"ssh://root@{self.ip(name)}", ssh_identity_file=str(self.lab.key), ssh_extra_args=extra
            )
        return self._hosts[name]

    def apt_install(self, name: str, *packages: str) -> None:
        """Test tools on a host (once: skipped when already installed)."""
        pkgs = " ".join(packages)
        self.ssh(
            name,
            f"dpkg -s {pkgs} >/dev/null 2>&1 || {{ apt-get update -qq && "
            f"DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {pkgs} >/dev/null; }}",
        )

    @property
    def ca_file(self) -> str:
        from hxinfra.lab.inventory import lab_ca

        return str(lab_ca(self.lab).cert_path)

    def curl_https(self, name: str, path: str = "/", *args: str) -> subprocess.CompletedProcess[str]:
        """curl from this machine to https://<fqdn><path>, trusting only the lab CA."""
        fqdn = f"{name}.{LAB_DOMAIN}"
        return subprocess.run(
            [
                "curl",
                "-sS",
                "--max-time",
                "10",
                "--cacert",
                self.ca_file,
                "--resolve",
                f"{fqdn}:443:{self.ip(name)}",
                *args,
                f"https://{fqdn}{path}",
            ],
            capture_output=True,
            text=True,
        )

    def ssh(self, name: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = self.lab.ssh(name, command)
        if check and r.returncode != 0:
            raise AssertionError(f"{name}: {command!r} rc={r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            list(args), cwd=ROOT, env=self.env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900
        )
        if check and r.returncode != 0:
            raise AssertionError(f"{args} rc={r.returncode}\nSTDOUT:\n{r.stdout}\nSTDERR:\n{r.stderr[-6000:]}")
        return r

    def hxinfra(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "hxinfra", *args, check=check)

    def hx_deploy(self, *args: str, check: bool = True) -> tuple[subprocess.CompletedProcess[str], dict]:
        r = self.hxinfra("deploy", *args, "--env", "lab", "--json", check=check)
        return r, (json.loads(r.stdout) if r.stdout.strip() else {})

    def pyinfra(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "pyinfra", "inventories/lab.py", *args, check=check)

    def build_release(self, version: str, broken: bool = False) -> str:
        """A web UI release in the lab's artifacts/ (the lab inventory lists its checksum)."""
        r = self.run(
            sys.executable,
            str(ROOT / "apps/hx-webui/build.py"),
            version,
            "--out",
            str(self.lab.dir / "artifacts"),
            *(["--broken"] if broken else []),
        )
        return r.stdout.split()[1]

    def secret(self, name: str) -> str:
        """A value of the lab's vault (to check it never shows)."""
        from hxinfra.lab.inventory import lab_vault

        return str(lab_vault(self.lab)[name].reveal())


@pytest.fixture(scope="session")
def lab():
    from hxinfra.lab import check_prerequisites

    try:
        check_prerequisites()
    except Exception as e:  # the README's test command runs as root with the packages; say why if not
        pytest.fail(f"lab tests need root and the lab packages: {e}")
    from hxinfra.lab.inventory import issue_host_certificates, prepare
    from hxinfra.lab.model import start_model_stub

    session = LabSession()
    try:  # a failed set-up leaves no host behind either
        prepare(session.lab, ROOT)  # what `hxinfra lab up` makes: the CA, the vault, a certificate per host
        from hxinfra.inventory import topology_suites

        # hx-db-01 on Debian 13 (PostgreSQL 17), as inventories/fleet.yml says, the others on Debian 12
        session.lab.up(
            list(HOSTS),
            log=lambda m: print(f"lab: {m}"),
            suites=topology_suites(ROOT / "inventories/lab.py"),
            disks=SMALL_DISKS,
        )
        issue_host_certificates(session.lab)
        start_model_stub(session.lab, "hx-api-01")  # as `lab up` does on the API hosts
        session.build_release("1.0.0")
        # the database, the gateway and the web UI: what every web front end proxies to
        r, report = session.hx_deploy("site", *[a for h in STACK for a in ("--limit", h)])
        assert all(h["status"] in ("changed", "ok") for h in report["hosts"]), r.stderr[-4000:]
        yield session
    finally:
        if not KEEP:
            session.lab.down()


class RequestLoop:
    """GET ``url`` over and over from this machine (the lab CA trusted) until stopped, or by
    itself after ``limit`` seconds; counts answers by release and every failure. With ``rate``,
    that many requests a second (a steady load: each request has its time slot, taken by one of
    a few workers, so a slow answer does not slow the pace), else one after another as fast as
    answers come."""

    WORKERS = 8  # enough that answers of a quarter second (a busy controller's TLS) keep the pace

    def __init__(self, url: str, cafile: str, limit: float = 300, rate: float = 0) -> None:
        import collections
        import threading

        self.url, self.cafile, self.limit, self.rate = url, cafile, limit, rate
        self.releases: collections.Counter[str] = collections.Counter()
        self.failures: list[str] = []
        self.answered: list[float] = []  # when each request was answered (or failed), monotonic
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sent = 0
        self._start = 0.0
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(self.WORKERS if rate else 1)]

    def _next_slot(self) -> float:
        with self._lock:
            slot = self._start + self._sent / self.rate
            self._sent += 1
        return slot

    def _run(self) -> None:
        import ssl
        import time
        import urllib.request

        ctx = ssl.create_default_context(cafile=self.cafile)
        end = self._start + self.limit
        while not self._stop.is_set() and time.monotonic() < end:
            if self.rate:
                self._stop.wait(max(0.0, self._next_slot() - time.monotonic()))
                if self._stop.is_set():
                    break
            try:
                with urllib.request.urlopen(self.url, timeout=10, context=ctx) as r:
                    r.read()
                    release = r.headers.get("X-HX-Release", "?")
                with self._lock:
                    self.releases[release] += 1
                    self.answered.append(time.monotonic())
            except Exception as e:  # noqa: BLE001 - every failure is counted and shown
                with self._lock:
                    self.failures.append(str(e))
                    self.answered.append(time.monotonic())

    def __enter__(self) -> RequestLoop:
        import time

        self._start = time.monotonic()
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    @property
    def total(self) -> int:
        return sum(self.releases.values()) + len(self.failures)

    def longest_gap(self, start: float, end: float) -> float:
        """The longest time within ``start``..``end`` in which no request was answered: small when
        the load held for the whole of it, whatever pace the controller could keep."""
        times = sorted(t for t in self.answered if start <= t <= end)
        edges = [start, *times, end]
        return max(b - a for a, b in zip(edges, edges[1:], strict=False))


def run_until(lab: LabSession, args: list[str], marker: str, action, timeout: float = 600, pause: bool = False):
    """Run hxinfra ``args`` (``--json``) in a child and call ``action()`` the moment it starts the
    operation named ``marker``: a fault injected in the middle of a real run. With ``pause`` the
    child is stopped (SIGSTOP) while ``action`` runs, so the fault is in place before the
    operation's next command. Returns the child's result, its JSON report and whether the
    operation started."""
    import signal
    import threading

    proc = subprocess.Popen(
        [sys.executable, "-m", "hxinfra", *args, "--json"],
        cwd=ROOT,
        env=lab.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    err, seen = [], False
    for line in proc.stderr:  # type: ignore[union-attr]
        err.append(line)
        if not seen and "Starting operation:" in line and marker in line:
            seen = True
            if pause:
                os.kill(proc.pid, signal.SIGSTOP)
            try:
                action()
            finally:
                if pause:
                    os.kill(proc.pid, signal.SIGCONT)
    proc.wait(timeout)
    reader.join(30)
    stdout = "".join(out)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, "".join(err))
    return result, (json.loads(stdout) if stdout.strip() else {}), seen
