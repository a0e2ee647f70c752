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
HOSTS = ("hx-web-01", "hx-web-02", "hx-web-03", "hx-web-04", "hx-db-01", "hx-app-01", "hx-dc-01")

UPSTREAM = r'''
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 3000))
s.listen(16)
while True:
    c, _ = s.accept()
    req = c.recv(4096).decode(errors="replace")
    path = req.split(" ")[1] if req.count(" ") >= 2 else "/"
    body = b"upstream ok\n" if path == "/health" else b"<h1>HX web UI (lab upstream)</h1>\n"
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
              % len(body) + body)
    c.close()
'''
UNIT = """[Unit]
Description=Stand-in for the HX web UI (test upstream on 127.0.0.1:3000)
[Service]
ExecStart=/usr/bin/python3 /opt/hx-test-upstream.py
Restart=no
"""


class LabSession:
    def __init__(self) -> None:
        from hxinfra.lab import Lab

        self.lab = Lab(LAB_NAME)
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
            self._hosts[name] = testinfra.get_host(f"ssh://root@{self.ip(name)}", ssh_identity_file=str(self.lab.key),
                                                   ssh_extra_args=extra)  # fmt: skip
        return self._hosts[name]

    def apt_install(self, name: str, *packages: str) -> None:
        """Test tools on a host (once: skipped when already installed)."""
        pkgs = " ".join(packages)
        self.ssh(name, f"dpkg -s {pkgs} >/dev/null 2>&1 || {{ apt-get update -qq && "
                       f"DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {pkgs} >/dev/null; }}")

    @property
    def ca_file(self) -> str:
        from hxinfra.lab.inventory import lab_ca

        return str(lab_ca(self.lab).cert_path)

    def curl_https(self, name: str, path: str = "/", *args: str) -> subprocess.CompletedProcess[str]:
        """curl from this machine to https://<fqdn><path>, trusting only the lab CA."""
        fqdn = f"{name}.{LAB_DOMAIN}"
        return subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", self.ca_file, "--resolve",
                               f"{fqdn}:443:{self.ip(name)}", *args, f"https://{fqdn}{path}"],
                              capture_output=True, text=True)  # fmt: skip

    def ssh(self, name: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = self.lab.ssh(name, command)
        if check and r.returncode != 0:
            raise AssertionError(f"{name}: {command!r} rc={r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(list(args), cwd=ROOT, env=self.env, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=900)
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

    def install_upstream(self, name: str) -> None:
        self.ssh(name, f"cat > /opt/hx-test-upstream.py <<'EOF'\n{UPSTREAM}\nEOF\n"
                       f"cat > /etc/systemd/system/hx-test-upstream.service <<'EOF'\n{UNIT}EOF\n"
                       "systemctl daemon-reload && systemctl restart hx-test-upstream")
        self.wait_upstream(name)

    def wait_upstream(self, name: str) -> None:
        """Until the test upstream accepts connections (the unit starts before it listens)."""
        self.ssh(name, "for i in $(seq 100); do python3 -c \"import socket; socket.create_connection("
                       "('127.0.0.1', 3000), 1)\" 2>/dev/null && exit 0; sleep 0.1; done; exit 1")


@pytest.fixture(scope="session")
def lab():
    from hxinfra.lab import check_prerequisites

    try:
        check_prerequisites()
    except Exception as e:  # the README's test command runs as root with the packages; say why if not
        pytest.fail(f"lab tests need root and the lab packages: {e}")
    from hxinfra.lab.inventory import issue_host_certificates, prepare

    session = LabSession()
    prepare(session.lab, ROOT)  # what `hxinfra lab up` makes: the CA, the vault, a certificate per host
    session.lab.up(list(HOSTS), log=lambda m: print(f"lab: {m}"))
    issue_host_certificates(session.lab)
    try:
        yield session
    finally:
        session.lab.down()
